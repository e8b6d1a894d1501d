"""Local+global attention: Luong's local-p window lifted to the 2-D grid, beside global soft attention.

From h_{t-1} the model predicts a centre p_t = (H, W)·σ(W_p' tanh(W_p h_{t-1})) on the grid; the local map is a
softmax of the scores over the cells within `window` cells of p_t, weighted by a Gaussian
exp(−‖(i, j) − p_t‖² / 2σ²) with σ = window / 2 (which keeps the centre differentiable), and renormalised.
Both maps normalise the same scores, computed once, so the local view costs little more than soft attention.
The decoder reads both contexts.
"""
import keras
import numpy as np
from keras import layers, ops

from .base import Attention, Glimpse
from .contractions import weighted_sum
from .soft import SoftAttention


@keras.saving.register_keras_serializable("captioner")
class LocalGlobalAttention(Attention):
    def __init__(self, grid_shape, units=512, score="additive", window=3, gate=True, **kwargs):
        super().__init__(**kwargs)
        self.grid_shape = tuple(grid_shape)
        self.units = units
        self.score_name = score
        self.window = window
        self.use_gate = gate
        self.global_attention = SoftAttention(units, score, gate, name="global")
        self.local_gate = layers.Dense(1, activation="sigmoid", name="local_gate") if gate else None
        self.centre_hidden = layers.Dense(units, activation="tanh", name="centre_hidden")
        self.centre = layers.Dense(2, activation="sigmoid", name="centre")
        rows, cols = np.meshgrid(np.arange(grid_shape[0]), np.arange(grid_shape[1]), indexing="ij")
        self.cells = np.stack([rows.ravel(), cols.ravel()], -1).astype("float32") + 0.5  # (L, 2) cell centres

    def build(self, features_shape, hidden_shape):
        self.global_attention.build(features_shape, hidden_shape)
        if self.local_gate is not None:
            self.local_gate.build(hidden_shape)
        self.centre_hidden.build(hidden_shape)
        self.centre.build((None, self.units))

    def project_keys(self, features):
        return self.global_attention.project_keys(features)

    def context_dim(self, feature_dim):
        return 2 * feature_dim

    def local_weights(self, scores, hidden):
        """Window-masked softmax of the scores times the Gaussian around the predicted centre, renormalised."""
        centre = self.centre(self.centre_hidden(hidden)) * np.asarray(self.grid_shape, "float32")  # (B, 2)
        offset = self.cells[None] - centre[:, None]  # (B, L, 2)
        inside = ops.all(ops.abs(offset) <= self.window, axis=-1)  # (B, L)
        # The cell nearest the centre is at most half a cell away, so every window holds at least one cell.
        weights = ops.softmax(ops.where(inside, scores, -1e9), axis=-1)
        sigma = self.window / 2
        weights = weights * ops.exp(-ops.sum(offset**2, axis=-1) / (2 * sigma**2)) * ops.cast(inside, scores.dtype)
        return weights / ops.sum(weights, axis=-1, keepdims=True)

    def attend(self, features, hidden, keys=None, training=False):
        scores = self.global_attention.scores(features, hidden, keys)  # (B, L)
        overall = ops.softmax(scores, axis=-1)
        local = self.local_weights(scores, hidden)
        overall_context = self.global_attention.read(overall, features, hidden)
        local_context = weighted_sum(local, features)  # (B, C)
        if self.local_gate is not None:
            local_context = local_context * self.local_gate(hidden)
        alpha = (overall + local) / 2
        return Glimpse(ops.concatenate([overall_context, local_context], axis=-1), alpha, alpha,
                       ops.zeros_like(scores[:, 0]))

    def get_config(self):
        return {**super().get_config(), "grid_shape": self.grid_shape, "units": self.units,
                "score": self.score_name, "window": self.window, "gate": self.use_gate}
