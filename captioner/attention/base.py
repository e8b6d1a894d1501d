"""The contract every attention kind keeps: `call(features, hidden) -> (context, alpha)`."""
from typing import Any, NamedTuple

from keras import layers


class Glimpse(NamedTuple):
    """What one attention step gives the decoder."""

    context: Any  # (B, D) what the decoder reads
    alpha: Any  # (B, L) where the model looked: the map drawn for the word
    probs: Any  # (B, L) the attention distribution the regularisers act on
    log_prob: Any  # (B,) log-probability of a sampled location; 0 where nothing was sampled


class Attention(layers.Layer):
    """features (B, L, C) and the decoder state h_{t-1} (B, H) → context (B, D) and alpha (B, L), a distribution.

    Subclasses split the work into `project_keys(features)`, once per image, and `attend(...)`, once per word;
    `keys=` lets the decoder pass the projected keys back in. The decoder's features are `Standardised`: attention
    reads them only through `weighted_sum` and `project`, which take either.
    """

    stochastic = False  # True where training samples locations and needs the REINFORCE terms

    def project_keys(self, features):
        raise NotImplementedError

    def attend(self, features, hidden, keys=None, training=False) -> Glimpse:
        raise NotImplementedError

    def context_dim(self, feature_dim: int) -> int:
        return feature_dim

    def call(self, features, hidden, keys=None, training=False):
        glimpse = self.attend(features, hidden, keys=keys, training=training)
        return glimpse.context, glimpse.alpha
