"""Local+global attention: Luong's local-p window lifted to the 2-D grid, beside global soft attention.

From h_{t-1} the model predicts a centre p_t = (H, W)·σ(W_p' tanh(W_p h_{t-1})) on the grid; the local map is a
softmax of the local scores over the cells within `window` cells of p_t, weighted by a Gaussian
exp(−‖(i, j) − p_t‖² / 2σ²) with σ = window / 2 (which keeps the centre differentiable), and renormalised.
The global map is soft attention's. Each map has its own score function, of the same kind, as Luong et al.'s local
and global models each have theirs. The decoder reads the sum of both contexts (`merge="sum"`), so its LSTM is as wide
as soft attention's and a soft model's weights start it whole; `merge="concatenate"` reads them side by side, at the
cost of LSTM input rows as many as the features are wide (the layout of models saved before the setting).
"""
import keras
import numpy as np
from keras import layers, ops

from .base import Attention, Glimpse
from .contractions import weighted_sum
from .scores import make_score
from .soft import SoftAttention


@keras.saving.register_keras_serializable("captioner")
class LocalGlobalAttention(Attention):
    """`shared_score=True` is the layout of models saved before the local window had a score of its own: their window
    normalises the global scores. Their configs lack the setting, which `from_config` reads as True; likewise a
    config without `merge` is read as "concatenate"."""

    MERGES = ("sum", "concatenate")

    def __init__(self, grid_shape, units=512, score="additive", window=3, gate=True, shared_score=False, merge="sum",
                 **kwargs):
        super().__init__(**kwargs)
        if merge not in self.MERGES:
            raise ValueError(f"merge must be one of {', '.join(self.MERGES)}, not {merge!r}")
        # The cell nearest the centre is at most half a cell away along each axis: a narrower window can hold no
        # cell at all, and its map would be 0 / 0.
        if window < 0.5:
            raise ValueError(f"window must be at least 0.5 cells, got {window}")
        self.grid_shape = tuple(grid_shape)
        self.units = units
        self.score_name = score
        self.window = window
        self.use_gate = gate
        self.merge = merge
        self.global_attention = SoftAttention(units, score, gate, name="global")
        self.local_scorer = None if shared_score else make_score(score, units)
        self.local_gate = layers.Dense(1, activation="sigmoid", name="local_gate") if gate else None
        self.centre_hidden = layers.Dense(units, activation="tanh", name="centre_hidden")
        self.centre = layers.Dense(2, activation="sigmoid", name="centre")
        rows, cols = np.meshgrid(np.arange(grid_shape[0]), np.arange(grid_shape[1]), indexing="ij")
        self.cells = np.stack([rows.ravel(), cols.ravel()], -1).astype("float32") + 0.5  # (L, 2) cell centres

    @classmethod
    def from_config(cls, config):
        return super().from_config({"shared_score": True, "merge": "concatenate", **config})

    def build(self, features_shape, hidden_shape):
        self.global_attention.build(features_shape, hidden_shape)
        if self.local_scorer is not None:
            self.local_scorer.build(features_shape, hidden_shape)
        if self.local_gate is not None:
            self.local_gate.build(hidden_shape)
        self.centre_hidden.build(hidden_shape)
        self.centre.build((None, self.units))
        # How much of the local read enters the sum: zero where a warm start adds the window to a model that had
        # none (`entering_parts`), so the new model starts out computing what that one did.
        self.local_scale = (self.add_weight(shape=(), initializer="ones", name="local_scale")
                            if self.merge == "sum" else None)

    def project_keys(self, features):
        """(global keys, local keys): the same keys twice where the window shares the global score."""
        keys = self.global_attention.project_keys(features)
        return keys, keys if self.local_scorer is None else self.local_scorer.keys(features)

    def context_dim(self, feature_dim):
        return feature_dim if self.merge == "sum" else 2 * feature_dim

    def local_weights(self, scores, hidden):
        """Window-masked softmax of the scores times the Gaussian around the predicted centre, renormalised."""
        centre = self.centre(self.centre_hidden(hidden)) * np.asarray(self.grid_shape, "float32")  # (B, 2)
        offset = self.cells[None] - centre[:, None]  # (B, L, 2)
        inside = ops.all(ops.abs(offset) <= self.window, axis=-1)  # (B, L), never empty: see __init__
        weights = ops.softmax(ops.where(inside, scores, -1e9), axis=-1)
        sigma = self.window / 2
        weights = weights * ops.exp(-ops.sum(offset**2, axis=-1) / (2 * sigma**2)) * ops.cast(inside, scores.dtype)
        return weights / ops.sum(weights, axis=-1, keepdims=True)

    def attend(self, features, hidden, keys=None, training=False):
        global_keys, local_keys = self.project_keys(features) if keys is None else keys
        scores = self.global_attention.scores(features, hidden, global_keys)  # (B, L)
        local_scores = scores if self.local_scorer is None else self.local_scorer.score(local_keys, hidden)
        overall = ops.softmax(scores, axis=-1)
        local = self.local_weights(local_scores, hidden)
        overall_context = self.global_attention.read(overall, features, hidden)
        local_context = weighted_sum(local, features)  # (B, C)
        if self.local_gate is not None:
            local_context = local_context * self.local_gate(hidden)
        alpha = (overall + local) / 2
        context = (overall_context + self.local_scale * local_context if self.merge == "sum"
                   else ops.concatenate([overall_context, local_context], axis=-1))  # (B, C) or (B, 2C)
        return Glimpse(context, alpha, alpha, ops.zeros_like(scores[:, 0]))

    def weight_parts(self):
        """The global half's parts (its score and gate), and the window's: its score (unless it reads the global
        scores), its gate and its centre."""
        own = {"local_score": self.local_scorer, "local_gate": self.local_gate, "centre_hidden": self.centre_hidden,
               "centre": self.centre}
        return self.global_attention.weight_parts() | self.entering_parts() | {
            name: layer.weights for name, layer in own.items() if layer is not None}

    def entering_parts(self):
        """The scale of the local read in the sum."""
        return {"local_scale": [self.local_scale]} if self.local_scale is not None else {}

    def starting_parts(self):
        """A window without a score of its own reads the global scores: the global score then starts a local one."""
        return self.global_attention.starting_parts() | self.weight_parts()

    def get_config(self):
        return {**super().get_config(), "grid_shape": self.grid_shape, "units": self.units,
                "score": self.score_name, "window": self.window, "gate": self.use_gate,
                "shared_score": self.local_scorer is None, "merge": self.merge}
