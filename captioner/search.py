"""Greedy and beam search over `decoder.step`, batched across images and beams, each one compiled TensorFlow loop.

Scores are length-normalised log-probabilities (the sum over the caption's tokens, `<end>` included, divided by
their number). A beam that reaches `max_length` without `<end>` is returned like any other.

No search writes `<pad>`, `<start>` or `<unk>`: they are not words of a caption, and one dropped from a caption
after the search would shift every later word onto the attention map of the token before it.
"""
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

PAD = 0  # the vocabulary's <pad>: what follows a caption's end


class Decoded(NamedTuple):
    """Search results for B images and K beams, best beam first."""

    tokens: np.ndarray  # (B, K, T) word ids, 0 after the caption ends
    scores: np.ndarray  # (B, K) length-normalised log-probabilities, descending
    lengths: np.ndarray  # (B, K) tokens per caption, <end> included
    alphas: np.ndarray  # (B, K, T, L) where the model looked for each token


class Searcher:
    """Decodes with one decoder; each (method, beam size) is traced once and reused for any batch size.

    `unk`, the vocabulary's `<unk>`, is never written, nor are `<pad>` and `start`.
    """

    def __init__(self, decoder, start: int, end: int, max_length: int = 25, unk: int | None = None):
        self.decoder = decoder
        self.start = start
        self.end = end
        self.max_length = max_length
        self._never = np.zeros(decoder.vocab_size, np.float32)  # (V,)
        self._never[[PAD, start] + ([] if unk is None else [unk])] = -np.inf
        self._compiled = {}

    def greedy(self, features) -> Decoded:
        return self._run("greedy", self._greedy, features)

    def beam(self, features, beam_size: int = 3) -> Decoded:
        return self._run(beam_size, lambda f: self._beam(f, beam_size), features)

    def _run(self, key, search, features) -> Decoded:
        if key not in self._compiled:
            signature = tf.TensorSpec((None, None, self.decoder.feature_dim), tf.float32)
            # XLA fuses each step's attention (add, tanh, dot over (B·K, L, A)) into one pass: beam search runs
            # 1.5x faster. Greedy search's growing TensorArrays do not compile.
            self._compiled[key] = tf.function(search, input_signature=[signature], jit_compile=key != "greedy")
        return Decoded(*(np.asarray(part) for part in self._compiled[key](tf.cast(features, tf.float32))))

    def _greedy(self, features):
        return self.walk(features, lambda log_probs: tf.argmax(log_probs, axis=-1, output_type=tf.int32))

    def sample(self, features, copies, seed, sample_locations=False):
        """`copies` captions per image of features (B, L, C), each word drawn from the model's distribution, as
        tensors: tokens (B * copies, T), image-major, their lengths, and, with `sample_locations` (hard attention),
        the location read for each word (B * copies, T), else None. Self-critical training calls this inside its
        own traced step."""
        tokens, _, lengths, alphas = self.walk(
            features, lambda log_probs: tf.cast(keras.random.categorical(log_probs, 1, seed=seed)[:, 0], tf.int32),
            copies, sample_locations)
        locations = tf.argmax(alphas[:, 0], axis=-1, output_type=tf.int32) if sample_locations else None
        return tokens[:, 0], lengths[:, 0], locations

    def walk(self, features, choose, copies=1, sample_locations=False):
        """Greedy decoding's loop, one word per step picked by `choose(log_probs (B, V)) -> (B,)`."""
        memory, state = self.decoder.start(features, copies)
        batch = tf.shape(features)[0] * copies
        token = tf.fill([batch], self.start)
        done = tf.zeros([batch], tf.bool)
        total = tf.zeros([batch])
        length = tf.zeros([batch], tf.int32)
        words = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
        alphas = tf.TensorArray(tf.float32, size=0, dynamic_size=True)
        for t in tf.range(self.max_length):
            if tf.reduce_all(done):
                break
            log_probs, state, alpha = self._step(token, state, memory, sample_locations)  # (B, V)
            token = choose(log_probs)
            total += tf.where(done, 0.0, tf.gather(log_probs, token, batch_dims=1))
            length += tf.cast(~done, tf.int32)
            words = words.write(t, tf.where(done, 0, token))
            alphas = alphas.write(t, tf.where(done[:, None], 0.0, alpha))
            done |= tf.equal(token, self.end)
        steps = words.size()
        tokens = _pad_time(tf.transpose(words.stack()), steps, self.max_length)[:, None]  # (B, 1, T)
        alpha = _pad_time(tf.transpose(alphas.stack(), [1, 0, 2]), steps, self.max_length)[:, None]  # (B, 1, T, L)
        lengths = length[:, None]
        return tokens, (total / tf.cast(length, tf.float32))[:, None], lengths, alpha

    def _beam(self, features, beam_size):
        batch, locations = tf.shape(features)[0], tf.shape(features)[1]
        k, steps = beam_size, self.max_length
        memory, state = self.decoder.start(features, k)
        vocab = self.decoder.vocab_size
        # Only the first beam is alive at the start, so the first step picks K different words.
        scores = tf.tile(tf.constant([0.0] + [-np.inf] * (k - 1))[None], [batch, 1])  # (B, K)
        done = tf.zeros([batch, k], tf.bool)
        length = tf.zeros([batch, k], tf.int32)
        # Each step's words, parents and attention are written once, in the order the beams had then, and the
        # finished beams are traced back through their parents at the end: reordering the whole history at every
        # step would cost O(T^2). Steps not taken keep word 0, no attention, and each beam its own parent.
        words = tf.zeros([steps, batch, k], tf.int32)
        parents = tf.tile(tf.range(k)[None, None], [steps, batch, 1])  # (T, B, K)
        alphas = tf.zeros([steps, batch, k, locations])
        token = tf.fill([batch * k], self.start)
        # A finished beam may only extend with <pad> (id 0) at no cost, so it keeps its score and slot.
        finished_row = tf.concat([[0.0], tf.fill([vocab - 1], -np.inf)], 0)  # (V,)
        for t in tf.range(steps):
            if tf.reduce_all(done):
                break
            log_probs, state, alpha = self._step(token, state, memory)
            log_probs = tf.where(done[..., None], finished_row, tf.reshape(log_probs, [batch, k, vocab]))  # (B, K, V)
            scores, best = tf.math.top_k(tf.reshape(scores[..., None] + log_probs, [batch, k * vocab]), k)
            parent, word = best // vocab, best % vocab  # (B, K)

            rows = tf.reshape(parent + tf.range(batch)[:, None] * k, [-1])  # (B*K,) into the flat beams
            state = tf.nest.map_structure(lambda s: tf.gather(s, rows), state)
            was_done = _reorder(done, parent)
            alpha = tf.where(done[..., None], 0.0, tf.reshape(alpha, [batch, k, locations]))  # (B, K, L)
            words = _write(words, t, tf.where(was_done, 0, word))
            parents = _write(parents, t, parent)
            alphas = _write(alphas, t, alpha)
            length = _reorder(length, parent) + tf.cast(~was_done, tf.int32)
            done = was_done | tf.equal(word, self.end)
            token = tf.reshape(word, [-1])
        normalised = scores / tf.cast(tf.maximum(length, 1), tf.float32)
        normalised, order = tf.math.top_k(normalised, k)
        # came_from[t]: the slot, at step t, of the beam each final beam extended then; its slot at step t is
        # came_from[t + 1] (the final order after the last step).
        came_from = tf.scan(lambda after, parent: _reorder(parent, after), parents, initializer=order, reverse=True)
        slots = tf.concat([came_from[1:], order[None]], 0)  # (T, B, K)
        tokens = tf.transpose(tf.gather(words, slots, batch_dims=2), [1, 2, 0])  # (B, K, T)
        alphas = tf.transpose(tf.gather(alphas, came_from, batch_dims=2), [1, 2, 0, 3])  # (B, K, T, L)
        return tokens, normalised, _reorder(length, order), alphas

    def _step(self, token, state, memory, sample_locations=False):
        """One word of N captions: log-probabilities (N, V), -inf for the tokens never written (the others keep
        the model's own, not renormalised, so scores stay the model's), the new state and the attention (N, L)."""
        output, state, glimpse = self.decoder.step(token, state, memory, sample_locations=sample_locations)
        return tf.nn.log_softmax(self.decoder.logits(output)) + self._never, state, glimpse.alpha


def _write(history, t, value):
    """history (T, ...) with row t set to value: one row written per step, not the whole history."""
    return tf.tensor_scatter_nd_update(history, [[t]], value[None])


def _reorder(tensor, index):
    """Per-image gather along the beam axis: (B, K, ...) by index (B, K)."""
    return tf.gather(tensor, index, batch_dims=1)


def _pad_time(tensor, steps, max_length):
    """Pads axis 1 (time) of a stacked TensorArray from `steps` to `max_length` so every batch has one shape."""
    padding = [[0, 0], [0, max_length - steps]] + [[0, 0]] * (len(tensor.shape) - 2)
    return tf.pad(tensor, padding)
