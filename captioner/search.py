"""One compiled decoding loop over `decoder.step`, batched across images and captions; samplers pick the words.

Greedy, random and beam search differ only in their sampler (`captioner.samplers`): the loop, its bookkeeping and
its XLA compilation are shared. XLA fuses each step's attention (add, tanh, dot over (B·K, L, A)) into one pass.

Scores are length-normalised log-probabilities (the sum over the caption's tokens, `<end>` included, divided by
their number). A caption that reaches `max_length` without `<end>` is returned like any other.

No search writes `<pad>`, `<start>` or `<unk>`: they are not words of a caption, and one dropped from a caption
after the search would shift every later word onto the attention map of the token before it.
"""
from typing import Any, NamedTuple, Protocol

import numpy as np
import tensorflow as tf

from .samplers import BeamSampler, GreedySampler, RandomSampler, Sampler

PAD = 0  # the vocabulary's <pad>: what follows a caption's end


class StepDecoder(Protocol):
    """What search needs of a decoder (`captioner.decoder.AttentionLSTMDecoder` is one): N = B · K captions, K per
    image, image-major."""

    vocab_size: int  # V
    feature_dim: int  # C

    def start(self, features, copies: int = 1) -> tuple[Any, Any]:
        """features (B, L, C) → (memory, state) for B · copies captions. Search passes memory back unread; state
        is a nest of (N, ...) tensors whose rows it reorders within each image as beams trade places."""

    def step(self, token, state, memory, sample_locations: bool = False) -> tuple[Any, Any, Any]:
        """The previous words (N,) → output (N, E), the new state, and a glimpse whose `alpha` (N, L) is where
        the decoder looked. `sample_locations`: a stochastic attention reads one location drawn from it."""

    def logits(self, output) -> Any:
        """output (N, E) → (N, V) unnormalised word scores."""


class Decoded(NamedTuple):
    """Search results for B images and K captions each, in the sampler's order (beam search: best first)."""

    tokens: np.ndarray  # (B, K, T) word ids, 0 after the caption ends
    scores: np.ndarray  # (B, K) length-normalised log-probabilities
    lengths: np.ndarray  # (B, K) tokens per caption, <end> included
    alphas: np.ndarray  # (B, K, T, L) where the model looked for each token


class Searcher:
    """Decodes with one decoder; the loop is traced once per (sampler, sample_locations) for any batch size.

    `unk`, the vocabulary's `<unk>`, is never written, nor are `<pad>` and `start`.
    """

    def __init__(self, decoder: StepDecoder, start: int, end: int, max_length: int = 25, unk: int | None = None):
        self.decoder = decoder
        self.start = start
        self.end = end
        self.max_length = max_length
        self._never = np.zeros(decoder.vocab_size, np.float32)  # (V,)
        self._never[[PAD, start] + ([] if unk is None else [unk])] = -np.inf
        self._compiled = {}

    def greedy(self, features) -> Decoded:
        return self.search(features, GreedySampler())

    def beam(self, features, beam_size: int = 3) -> Decoded:
        return self.search(features, BeamSampler(beam_size))

    def search(self, features, sampler: Sampler) -> Decoded:
        """features (B, L, C) → the sampler's K captions per image, as numpy arrays."""
        return Decoded(*(np.asarray(part) for part in self.compiled(sampler)(tf.cast(features, tf.float32))))

    def sample(self, features, copies, seed, sample_locations=False, temperature=1.0, top_k=None):
        """`copies` captions per image of features (B, L, C), each word drawn from the model's distribution (see
        `RandomSampler`), as tensors: tokens (B * copies, T), image-major, their lengths, and, with
        `sample_locations` (hard attention), the location read for each word (B * copies, T), else None.
        Self-critical training calls this inside its own traced step."""
        sampler = RandomSampler(seed, copies, temperature, top_k)
        tokens, _, lengths, alphas = self.compiled(sampler, sample_locations)(tf.cast(features, tf.float32))
        steps, locations = tf.shape(tokens)[2], tf.shape(alphas)[3]
        alphas = tf.reshape(alphas, [-1, steps, locations])  # (B * copies, T, L)
        chosen = tf.argmax(alphas, axis=-1, output_type=tf.int32) if sample_locations else None
        return tf.reshape(tokens, [-1, steps]), tf.reshape(lengths, [-1]), chosen

    def compiled(self, sampler: Sampler, sample_locations: bool = False):
        """The loop for one sampler, as an XLA-compiled function of features (B, L, C) float32."""
        key = sampler, sample_locations
        if key not in self._compiled:
            signature = tf.TensorSpec((None, None, self.decoder.feature_dim), tf.float32)
            self._compiled[key] = tf.function(lambda features: self._decode(features, sampler, sample_locations),
                                              input_signature=[signature], jit_compile=True)
        return self._compiled[key]

    def _decode(self, features, sampler, sample_locations):
        batch, locations = tf.shape(features)[0], tf.shape(features)[1]
        k, steps, vocab = sampler.width, self.max_length, self.decoder.vocab_size
        memory, state = self.decoder.start(features, k)
        scores = sampler.initial_scores(batch)  # (B, K)
        done = tf.zeros([batch, k], tf.bool)
        length = tf.zeros([batch, k], tf.int32)
        # Each step's words, parents and attention are written once, in the order the slots had then, and the
        # final captions are traced back through their parents at the end: reordering the whole history at every
        # step would cost O(T^2). Steps not taken keep word 0, no attention, and each slot its own parent.
        words = tf.zeros([steps, batch, k], tf.int32)
        parents = tf.tile(tf.range(k)[None, None], [steps, batch, 1])  # (T, B, K)
        alphas = tf.zeros([steps, batch, k, locations])
        token = tf.fill([batch * k], self.start)
        # A finished caption may only extend with <pad> (id 0) at no cost, so it keeps its score and slot.
        finished_row = tf.concat([[0.0], tf.fill([vocab - 1], -np.inf)], 0)  # (V,)
        for t in tf.range(steps):
            if tf.reduce_all(done):
                break
            log_probs, state, alpha = self._step(token, state, memory, sample_locations)
            log_probs = tf.where(done[..., None], finished_row, tf.reshape(log_probs, [batch, k, vocab]))  # (B, K, V)
            scores, parent, word = sampler.choose(scores, log_probs)  # (B, K) each

            rows = tf.reshape(parent + tf.range(batch)[:, None] * k, [-1])  # (B*K,) into the flat captions
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
        order = sampler.order(normalised)  # (B, K)
        tokens, alphas = _trace_back(words, alphas, parents, order)
        return tokens, _reorder(normalised, order), _reorder(length, order), alphas

    def _step(self, token, state, memory, sample_locations=False):
        """One word of N captions: log-probabilities (N, V), -inf for the tokens never written (the others keep
        the model's own, not renormalised, so scores stay the model's), the new state and the attention (N, L)."""
        output, state, glimpse = self.decoder.step(token, state, memory, sample_locations=sample_locations)
        return tf.nn.log_softmax(self.decoder.logits(output)) + self._never, state, glimpse.alpha


def _trace_back(words, alphas, parents, order):
    """Each final caption's words (B, K, T) and attention (B, K, T, L), from the history written per step in the
    slots' order then: words (T, B, K), alphas (T, B, K, L), parents (T, B, K); order (B, K) the final slots."""
    # came_from[t]: the slot, at step t, of the caption each final one extended then; its slot at step t is
    # came_from[t + 1] (the final order after the last step).
    came_from = tf.scan(lambda after, parent: _reorder(parent, after), parents, initializer=order, reverse=True)
    slots = tf.concat([came_from[1:], order[None]], 0)  # (T, B, K)
    tokens = tf.transpose(tf.gather(words, slots, batch_dims=2), [1, 2, 0])  # (B, K, T)
    return tokens, tf.transpose(tf.gather(alphas, came_from, batch_dims=2), [1, 2, 0, 3])  # (B, K, T, L)


def _write(history, t, value):
    """history (T, ...) with row t set to value: one row written per step, not the whole history."""
    return tf.tensor_scatter_nd_update(history, [[t]], value[None])


def _reorder(tensor, index):
    """Per-image gather along the caption axis: (B, K, ...) by index (B, K)."""
    return tf.gather(tensor, index, batch_dims=1)
