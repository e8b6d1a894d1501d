"""Soft attention: a deterministic weighted average over every location (Xu et al. 2015, §4.2)."""
import keras
from keras import layers, ops

from .base import Attention, Glimpse
from .contractions import weighted_sum
from .scores import make_score


@keras.saving.register_keras_serializable("captioner")
class SoftAttention(Attention):
    """alpha = softmax_i e(a_i, h_{t-1}); context = β_t Σ_i alpha_i a_i with the gate β_t = σ(f_β(h_{t-1}))."""

    def __init__(self, units=512, score="additive", gate=True, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.score_name = score
        self.use_gate = gate
        self.scorer = make_score(score, units)
        self.gate = layers.Dense(1, activation="sigmoid", name="gate") if gate else None

    def build(self, features_shape, hidden_shape):
        self.scorer.build(features_shape, hidden_shape)
        if self.gate is not None:
            self.gate.build(hidden_shape)

    def project_keys(self, features):
        return self.scorer.keys(features)

    def scores(self, features, hidden, keys=None):
        keys = self.project_keys(features) if keys is None else keys
        return self.scorer.score(keys, hidden)  # (B, L)

    def read(self, weights, features, hidden):
        """Σ_i w_i a_i, scaled by the gate."""
        context = weighted_sum(weights, features)  # (B, C)
        return context * self.gate(hidden) if self.gate is not None else context

    def attend(self, features, hidden, keys=None, training=False):
        alpha = ops.softmax(self.scores(features, hidden, keys), axis=-1)
        return Glimpse(self.read(alpha, features, hidden), alpha, alpha, ops.zeros_like(alpha[:, 0]))

    def weight_parts(self):
        return {"score": self.scorer.weights} | ({"gate": self.gate.weights} if self.gate is not None else {})

    def starting_parts(self):
        """Its score also starts a local window's score: a window without a score of its own reads these scores,
        so a local+global model started from them begins computing what this attention does."""
        return self.weight_parts() | {"local_score": self.scorer.weights}

    def get_config(self):
        return {**super().get_config(), "units": self.units, "score": self.score_name, "gate": self.use_gate}
