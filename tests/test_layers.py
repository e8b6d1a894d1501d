"""Every Keras class the package registers, through the shared harness (tests/harness.py): its config round trip,
a `.keras` save and safe load that computes the same, and a gradient for every trainable weight."""
import keras
import pytest

from harness import CASES, check_config_round_trip, check_gradients, check_saving, registered_classes

REGISTERED = registered_classes()


def cases(with_outputs: bool = False) -> list:
    return [pytest.param(name, variant, id="-".join(filter(None, (name, variant))))
            for name in sorted(REGISTERED.keys() & CASES.keys()) for variant, case in CASES[name].items()
            if not (with_outputs and case.config_only)]


@pytest.fixture(autouse=True)
def seeded():
    keras.utils.set_random_seed(0)


def test_every_registered_class_has_a_case():
    assert not REGISTERED.keys() - CASES.keys(), "registered classes without a Case in tests/harness.py"
    assert not CASES.keys() - REGISTERED.keys(), "Cases in tests/harness.py for classes no longer registered"


@pytest.mark.parametrize(("name", "variant"), cases())
def test_config_round_trip(name, variant):
    instance = CASES[name][variant].make()
    assert type(instance) is REGISTERED[name]
    check_config_round_trip(instance)


@pytest.mark.parametrize(("name", "variant"), cases(with_outputs=True))
def test_save_and_safe_load_compute_the_same(name, variant, tmp_path):
    case = CASES[name][variant]
    check_saving(case.make(), case, tmp_path)


@pytest.mark.parametrize(("name", "variant"), cases(with_outputs=True))
def test_every_trainable_weight_gets_a_gradient_from_the_loss(name, variant):
    case = CASES[name][variant]
    check_gradients(case.make(), case)
