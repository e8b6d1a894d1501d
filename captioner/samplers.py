"""How the search loop (`captioner.search.Searcher`) picks each step's words: greedy, random and beam.

A sampler carries `width` captions per image (K). At every step it sees their running scores and the
log-probabilities of their next word, and says which caption each slot now extends (its parent) with which word.
Samplers that keep their captions apart only say how to pick one word from a distribution (`next_token`), as
keras-hub's do; beam search trades captions between slots and overrides `choose` itself.

A finished caption's row offers only `<pad>`, at log-probability 0, so it keeps its score: any sampler that picks
a word the row makes possible keeps that. Samplers are frozen dataclasses, so equal ones share a compiled loop.
"""
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf


class Sampler:
    """K independent captions per image, each extended with the word `next_token` picks for it."""

    width = 1  # K, captions carried per image

    def initial_scores(self, batch):
        """The summed log-probabilities the captions start from, (B, K)."""
        return tf.zeros([batch, self.width])

    def choose(self, scores, log_probs):
        """scores (B, K) and the next word's log_probs (B, K, V) → new scores (B, K), parent (B, K) the slot each
        caption extends, word (B, K)."""
        vocab = log_probs.shape[-1]
        word = tf.reshape(self.next_token(tf.reshape(log_probs, [-1, vocab])), tf.shape(scores))
        parent = tf.broadcast_to(tf.range(self.width), tf.shape(scores))
        return scores + tf.gather(log_probs, word, batch_dims=2), parent, word

    def next_token(self, log_probs):
        """One word id per row of log_probs (N, V), (N,) int32."""
        raise NotImplementedError

    def order(self, normalised):
        """The order to return the captions in, (B, K), from their length-normalised scores (B, K)."""
        return tf.broadcast_to(tf.range(self.width), tf.shape(normalised))


@dataclass(frozen=True)
class GreedySampler(Sampler):
    """The likeliest word at every step."""

    def next_token(self, log_probs):
        return tf.argmax(log_probs, axis=-1, output_type=tf.int32)


@dataclass(frozen=True)
class RandomSampler(Sampler):
    """`width` captions per image, each word drawn from the model's distribution sharpened by `temperature` (below
    1) or flattened (above), restricted to its `top_k` likeliest words if given. `seed` (a `SeedGenerator`) moves
    by one draw per step, so a stream's state fixes the captions."""

    seed: keras.random.SeedGenerator
    width: int = 1
    temperature: float = 1.0
    top_k: int | None = None

    def next_token(self, log_probs):
        log_probs = log_probs / self.temperature
        if self.top_k is None:
            return keras.random.categorical(log_probs, 1, dtype="int32", seed=self.seed)[:, 0]
        best, words = tf.math.top_k(log_probs, self.top_k)  # (N, k)
        drawn = keras.random.categorical(best, 1, dtype="int32", seed=self.seed)  # (N, 1) into best
        return tf.gather(words, drawn, batch_dims=1)[:, 0]


@dataclass(frozen=True)
class BeamSampler(Sampler):
    """The `width` likeliest captions of each image, as far as keeping that many at every step finds them; returned
    best first by length-normalised score."""

    width: int = 3

    def initial_scores(self, batch):
        # Only the first beam is alive at the start, so the first step picks K different words.
        return tf.tile(tf.constant([[0.0] + [-np.inf] * (self.width - 1)]), [batch, 1])

    def choose(self, scores, log_probs):
        vocab = log_probs.shape[-1]
        flat = tf.reshape(scores[..., None] + log_probs, [tf.shape(scores)[0], -1])  # (B, K * V)
        scores, best = tf.math.top_k(flat, self.width)
        return scores, best // vocab, best % vocab

    def order(self, normalised):
        return tf.math.top_k(normalised, self.width).indices
