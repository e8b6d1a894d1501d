"""A shared harness for the package's Keras classes, in the spirit of keras-hub's `run_layer_test` and
`run_model_saving_test`: every class registered with `register_keras_serializable("captioner")` has a `Case` here
that builds a tiny instance, and the checks run on any instance the same way.

- `check_config_round_trip`: `from_config(get_config())` gives back the same config.
- `check_saving`: a `.keras` file written and loaded with safe_mode gives the same outputs.
- `check_gradients`: every trainable weight gets a non-zero gradient from the training loss.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import captioner
from captioner import names
from captioner.attention import HardAttention, LocalGlobalAttention, SoftAttention
from captioner.attention.scores import AdditiveScore, DotScore, GeneralScore
from captioner.decoder import AttentionLSTMDecoder
from captioner.encoder import CNNEncoder, EncoderHead
from captioner.model import show_attend_tell
from captioner.optimizer import GroupedAdam

PACKAGE = "captioner"
BATCH, GRID, CHANNELS, HIDDEN, UNITS, VOCAB, WORDS = 2, (2, 3), 5, 4, 4, 7, 4
IMAGE_SIZE = 64  # SqueezeNet's smallest comfortable input: a 3x3 grid


def registered_classes() -> dict[str, type]:
    """Every class the package registers, by its registered name without the package prefix. Every module is
    imported first, so a class is found wherever it is defined."""
    for module in pkgutil.walk_packages(captioner.__path__, f"{PACKAGE}."):
        importlib.import_module(module.name)
    prefix = f"{PACKAGE}>"
    return {name.removeprefix(prefix): cls for name, cls in keras.saving.get_custom_objects().items()
            if name.startswith(prefix)}


@dataclass(frozen=True)
class Case:
    """How to test one registered class: a tiny built instance, sample inputs, and what the instance computes.

    `run(instance, inputs, training)` gives its outputs, any nest of tensors; `loss(instance, inputs)` its training
    loss (default: a fixed random projection of `run`'s training outputs, so no output cancels another).
    `config_only` says why a class has no outputs or weights to check (an optimizer).
    """

    make: Callable[[], Any]
    inputs: Callable[[], dict] = dict
    run: Callable[[Any, dict, bool], Any] | None = None
    loss: Callable[[Any, dict], Any] | None = None
    config_only: str | None = None


def check_config_round_trip(instance) -> None:
    config = instance.get_config()
    assert type(instance).from_config(config).get_config() == config


def check_saving(instance, case: Case, directory: Path) -> None:
    path = directory / f"{type(instance).__name__}.keras"
    keras.saving.save_model(instance, path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is type(instance)
    inputs = case.inputs()
    expected, actual = case.run(instance, inputs, False), case.run(loaded, inputs, False)
    tf.nest.map_structure(lambda want, got: np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6),
                          expected, actual)


def check_gradients(instance, case: Case) -> None:
    weights = instance.trainable_weights
    assert weights, f"{type(instance).__name__} has no trainable weights to check"
    inputs = case.inputs()
    with tf.GradientTape() as tape:
        loss = case.loss(instance, inputs) if case.loss else random_projection(case.run(instance, inputs, True))
    for weight, gradient in zip(weights, tape.gradient(loss, weights)):
        assert gradient is not None and np.any(tf.convert_to_tensor(gradient).numpy()), (
            f"{weight.path} gets no gradient from the loss")


def random_projection(outputs) -> tf.Tensor:
    """Σ w·y over every float output y, with fixed random w of y's shape."""
    floats = [tf.convert_to_tensor(y) for y in tf.nest.flatten(outputs)]
    floats = [y for y in floats if y.dtype.is_floating]
    return tf.add_n([tf.reduce_sum(y * tf.random.stateless_normal(tf.shape(y), seed=(index, 0)))
                     for index, y in enumerate(floats)])


def _array(*shape, seed=0, scale=1.0) -> np.ndarray:
    return (scale * np.random.default_rng(seed).normal(size=shape)).astype("float32")


def _grid_inputs() -> dict:
    return {"features": _array(BATCH, GRID[0] * GRID[1], CHANNELS), "hidden": _array(BATCH, HIDDEN, seed=1)}


def _tokens() -> np.ndarray:
    """<start> words <end>, the second caption shorter and padded: (B, WORDS + 1)."""
    tokens = np.random.default_rng(2).integers(3, VOCAB, size=(BATCH, WORDS + 1))
    tokens[:, 0], tokens[:, -1] = 1, 2
    tokens[1, -2:] = [2, 0]
    return tokens


def _built(layer, features_shape=(None, None, CHANNELS), hidden_shape=(None, HIDDEN)):
    layer.build(features_shape, hidden_shape)
    return layer


def _score_case(make) -> Case:
    return Case(lambda: _built(make()), _grid_inputs,
                lambda score, x, training: score.score(score.keys(x["features"]), x["hidden"]))


def _attention_case(make) -> Case:
    return Case(lambda: _built(make()), _grid_inputs,
                lambda attention, x, training: attention.attend(x["features"], x["hidden"], training=training))


def _decoder_case() -> Case:
    def make():
        return AttentionLSTMDecoder(VOCAB, CHANNELS, SoftAttention(UNITS), embedding_dim=UNITS, units=HIDDEN)

    def run(decoder, x, training):
        return decoder(x["features"], x["tokens"][:, :-1], training=training)

    return Case(make, lambda: {"features": _grid_inputs()["features"], "tokens": _tokens()}, run)


def _model_case(kind: str) -> Case:
    def make():
        return show_attend_tell(VOCAB, CHANNELS, GRID, attention=kind, attention_units=UNITS, embedding_dim=UNITS,
                                units=HIDDEN)

    def loss(model, x):
        return model.compute_loss(x, y_pred=model(x, training=True), training=True)

    return Case(make, lambda: {"features": _grid_inputs()["features"], "tokens": _tokens()},
                lambda model, x, training: model(x, training=training), loss)


def _encoder_case() -> Case:
    """SqueezeNet with random weights and its top block trainable: the smallest backbone, and no download."""
    return Case(lambda: CNNEncoder("squeezenet", weights=None, image_size=IMAGE_SIZE, trainable_blocks=1),
                lambda: {"images": _array(1, IMAGE_SIZE, IMAGE_SIZE, 3, scale=60.0) + 128},
                lambda encoder, x, training: encoder(x["images"], training=training))


def _encoder_head_case() -> Case:
    def make():
        return EncoderHead("squeezenet", blocks=1, image_size=IMAGE_SIZE)

    def inputs():
        height, width, channels = make().input_grid
        return {"features": np.abs(_array(BATCH, height * width, channels))}

    return Case(make, inputs, lambda head, x, training: head(x["features"], training=training))


# Registered name → variant → Case. A registered class missing here fails tests/test_layers.py.
CASES: dict[str, dict[str, Case]] = {
    "AdditiveScore": {"": _score_case(lambda: AdditiveScore(UNITS))},
    "GeneralScore": {"": _score_case(GeneralScore)},
    "DotScore": {"": _score_case(lambda: DotScore(UNITS))},
    "SoftAttention": {"": _attention_case(lambda: SoftAttention(UNITS))},
    "HardAttention": {"": _attention_case(lambda: HardAttention(UNITS, seed=0))},
    "LocalGlobalAttention": {"": _attention_case(lambda: LocalGlobalAttention(GRID, UNITS, window=1))},
    "AttentionLSTMDecoder": {"": _decoder_case()},
    "ShowAttendTell": {kind: _model_case(kind) for kind in names.ATTENTIONS},
    "CNNEncoder": {"": _encoder_case()},
    "EncoderHead": {"": _encoder_head_case()},
    "GroupedAdam": {"": Case(lambda: GroupedAdam(1e-3, multipliers={"show_attend_tell/encoder_head": 0.1}),
                             config_only="an optimizer: no outputs, and no weights of its own to differentiate")},
}
