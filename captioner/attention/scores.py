"""Score functions e(a_i, h): how well each location a_i matches the decoder state h.

Each splits into `keys(features)`, the part that depends on the image only and so runs once per image,
and `score(keys, hidden)`, the part that runs at every word.
"""
import keras
import tensorflow as tf
from keras import layers, ops

from .. import names
from .contractions import match, project


@keras.saving.register_keras_serializable("captioner")
class AdditiveScore(layers.Layer):
    """Bahdanau's v·tanh(W_a a_i + W_h h), the paper's choice."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.key = layers.Dense(units, name="key")
        self.query = layers.Dense(units, use_bias=False, name="query")
        self.energy = layers.Dense(1, use_bias=False, name="energy")

    def build(self, features_shape, hidden_shape):
        self.key.build(features_shape)
        self.query.build(hidden_shape)
        self.energy.build((None, None, self.units))

    def keys(self, features):
        return project(self.key, features)  # (B, L, A)

    def score(self, keys, hidden):
        return _additive(keys, self.query(hidden), self.energy.kernel[:, 0])  # (B, L)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


# Compiled on its own: XLA makes the broadcast add, the tanh and the product with v one pass over (B, L, A), and
# their gradient another, where TensorFlow runs five passes and materialises each (B, L, A) intermediate; compiling more of the
# step (the LSTM's matmuls, the read) made training slower.
@tf.function(jit_compile=True, reduce_retracing=True)
def _additive(keys, query, energy_weights):
    """v·tanh(keys + query): keys (B, L, A), query (B, A), v (A,) → (B, L)."""
    return tf.einsum("bla,a->bl", tf.tanh(keys + query[:, None, :]), energy_weights)


@keras.saving.register_keras_serializable("captioner")
class GeneralScore(layers.Layer):
    """Luong's general score h·W a_i; W a_i has the decoder's size, so it takes no size of its own."""

    def build(self, features_shape, hidden_shape):
        self.key = layers.Dense(hidden_shape[-1], use_bias=False, name="key")
        self.key.build(features_shape)

    def keys(self, features):
        return project(self.key, features)  # (B, L, H)

    def score(self, keys, hidden):
        return match(keys, hidden)


@keras.saving.register_keras_serializable("captioner")
class DotScore(layers.Layer):
    """Scaled dot product after projecting both sides to a common size."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.key = layers.Dense(units, use_bias=False, name="key")
        self.query = layers.Dense(units, use_bias=False, name="query")

    def build(self, features_shape, hidden_shape):
        self.key.build(features_shape)
        self.query.build(hidden_shape)

    def keys(self, features):
        return project(self.key, features)  # (B, L, A)

    def score(self, keys, hidden):
        return match(keys, self.query(hidden)) / self.units**0.5

    def get_config(self):
        return {**super().get_config(), "units": self.units}


SCORES = dict(zip(names.SCORES, (AdditiveScore, GeneralScore, DotScore), strict=True))


def make_score(name: str, units: int) -> layers.Layer:
    if name not in SCORES:
        raise ValueError(f"unknown score {name!r}; choose one of {', '.join(SCORES)}")
    if name == "general":
        return GeneralScore(name="general_score")
    return SCORES[name](units, name=f"{name}_score")
