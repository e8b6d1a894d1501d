"""Self-critical sequence training (Rennie et al. 2017): fine-tune a captioner on the CIDEr-D of its own samples.

Each image gets `samples` captions drawn from the model. Each is rewarded by its CIDEr-D against the image's
references (idf from the training set), less the mean reward of the image's other samples: the baseline of
Luo (2020), "A Better Variant of Self-Critical Sequence Training", which needs no extra greedy decode.
`bleu_weight` adds the sample's BLEU-4 to the reward, for a model judged on BLEU-4 as well as CIDEr. The loss
is −advantage · log p(word) per sampled word. Both passes run without dropout, so the log-probabilities are those
of the distribution the captions came from. With hard attention a sample is also the location read at each word,
drawn from the attention and replayed in the second pass; its log-probability joins the word's (REINFORCE on both).
"""
from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from .attention.base import ReplicaSeedGenerator
from .metrics import CiderD, bleu
from .model import across_replicas
from .search import Searcher
from .vocab import Vocabulary


class SelfCritical(keras.callbacks.Callback):
    """The training step of a `ShowAttendTell` whose batches are images: {"features": (B, ...), "image": (B,)},
    `image` indexing `references`, the reference captions of each training image. As a callback of the same `fit`
    it starts its running means afresh each epoch."""

    def __init__(self, decoder, vocabulary: Vocabulary, references: Sequence[Sequence[str]], samples: int = 5,
                 max_length: int = 25, seed: int | None = None, bleu_weight: float = 0.0):
        super().__init__()
        self.vocabulary = vocabulary
        self.references = [[vocabulary.encode(caption)[1:-1] for caption in image] for image in references]
        self.scorer = CiderD(self.references)
        self.bleu_weight = bleu_weight
        self.searcher = Searcher(decoder, vocabulary.start, vocabulary.end, max_length=max_length, unk=vocabulary.unk)
        self.samples = samples
        self.seed = ReplicaSeedGenerator(seed)
        # Hard attention stays hard: a sample is its words and the location read for each, both reinforced.
        self.sample_locations = decoder.attention.stochastic
        # Keras traces its train step without AutoGraph; the sampling loop needs it.
        self.sample = tf.function(self._sample)
        self.trackers = {"loss": keras.metrics.Mean(name="loss"), "reward": keras.metrics.Mean(name="reward")}

    def on_epoch_begin(self, epoch, logs=None):
        for tracker in self.trackers.values():
            tracker.reset_state()

    def _sample(self, features):
        """`samples` captions per image, tokens (B * samples, T) and their lengths (see `Searcher.sample`).

        The loop stops once every caption has ended, after a different number of draws on each replica: the
        stream then moves on by the most there can be, so its state stays one value, the one checkpoints save.
        """
        streams = [self.seed] + ([self.searcher.decoder.attention.seed_generator] if self.sample_locations else [])
        states = [tf.convert_to_tensor(stream.state) for stream in streams]  # read now, before sampling moves them
        sampled = self.searcher.sample(features, self.samples, self.seed, self.sample_locations)
        for stream, state in zip(streams, states):
            stream.state.assign(state + [0, self.searcher.max_length])
        return sampled

    def rewards(self, tokens: np.ndarray, images: np.ndarray) -> np.ndarray:
        """The reward of each sampled caption (N, T) against the references of its image (N,)."""
        end = self.vocabulary.end
        rows = (row.tolist() for row in tokens)
        captions = [row[: row.index(end)] if end in row else [token for token in row if token] for row in rows]
        return np.asarray([self.reward(c, i) for c, i in zip(captions, images)], np.float32)

    def reward(self, caption: list[int], image: int) -> float:
        cider = self.scorer.score(caption, image)
        if not self.bleu_weight:
            return cider
        return cider + self.bleu_weight * bleu([self.references[image]], [caption])[3]

    def train_step(self, model, data):
        n = self.samples
        tokens, lengths, locations = self.sample(model.grid_features(data["features"]))  # (B*n, T)
        tokens = tokens[:, : ops.max(lengths)]
        if locations is not None:
            locations = locations[:, : ops.max(lengths)]
        images = ops.repeat(data["image"], n, axis=0)
        rewards = tf.numpy_function(self.rewards, [tokens, images], tf.float32, stateful=False)
        rewards = ops.reshape(rewards, (-1, n))  # (B, n)
        baseline = (ops.sum(rewards, axis=1, keepdims=True) - rewards) / (n - 1)
        advantage = ops.reshape(rewards - baseline, (-1, 1))  # (B*n, 1)
        # The decoder reads each sample from <start> up to its last word, and each image's features once.
        previous = ops.concatenate([ops.full((ops.shape(tokens)[0], 1), self.vocabulary.start, "int32"),
                                    tokens[:, :-1]], 1)  # (B*n, T)
        mask = ops.cast(ops.not_equal(tokens, 0), "float32")  # (B*n, T)
        with tf.GradientTape() as tape:
            features = model.grid_features(data["features"])
            logits, glimpses = model.decoder(features, previous, training=False, copies=n, locations=locations)
            logits = ops.cast(logits, "float32")  # (B*n, T, V)
            log_probs = ops.squeeze(ops.take_along_axis(ops.log_softmax(logits), tokens[..., None], axis=-1), -1)
            if locations is not None:
                log_probs += ops.cast(glimpses.log_prob, "float32")  # (B*n, T): each word's location too
            # Divided by the whole batch's word count, as `ShowAttendTell.compute_loss` does: the replicas'
            # gradients are summed.
            loss = -ops.sum(advantage * log_probs * mask) / across_replicas(ops.sum(mask))
        gradients = tape.gradient(loss, model.trainable_weights)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_weights))
        self.trackers["loss"].update_state(across_replicas(loss))  # each replica's loss is its share of the batch's
        self.trackers["reward"].update_state(rewards)
        return {name: tracker.result() for name, tracker in self.trackers.items()}
