"""The contract every attention kind keeps: `attend(features, hidden) -> Glimpse(context, alpha, ...)`; and the random
streams that stochastic layers draw from."""
from typing import Any, NamedTuple

import keras
import tensorflow as tf
from keras import layers


class Glimpse(NamedTuple):
    """What one attention step gives the decoder."""

    context: Any  # (B, D) what the decoder reads
    alpha: Any  # (B, L) where the model looked: the map drawn for the word
    probs: Any  # (B, L) the attention distribution the regularisers act on
    log_prob: Any  # (B,) log-probability of a sampled location; 0 where nothing was sampled


class Attention(layers.Layer):
    """features (B, L, C) and the decoder state h_{t-1} (B, H) → Glimpse: context (B, D) and alpha (B, L), a
    distribution.

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

    def weight_parts(self) -> dict[str, list]:
        """Which of its weights play which part, by name (its score, its gate, ...). A warm start into another kind
        copies each part into the part of the same name there; alike kinds copy every weight."""
        raise NotImplementedError

    def entering_parts(self) -> dict[str, list]:
        """Parts that scale something a source without them lacked: a warm start from such a source sets them to
        zero, so the new model starts out computing what the source did."""
        return {}

    def starting_parts(self) -> dict[str, list]:
        """The parts its weights can start in another kind: those they play here, and any they would play there."""
        return self.weight_parts()


class ReplicaSeedGenerator(keras.random.SeedGenerator):
    """A SeedGenerator that gives every replica training in sync numbers of its own: each folds its replica id into
    every seed it draws. The state itself, which checkpoints save, stays one value as long as every replica draws
    as many seeds (self-critical sampling sees to it that its replicas do)."""

    def next(self, ordered=True):
        seed = super().next(ordered)
        replica = tf.distribute.get_replica_context()
        if replica is None or replica.num_replicas_in_sync == 1:
            return seed
        return tf.random.experimental.stateless_fold_in(seed, replica.replica_id_in_sync_group)
