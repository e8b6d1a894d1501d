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

from ..attention.base import ReplicaSeedGenerator
from ..metrics import CiderD, bleu
from ..model import ShowAttendTell, across_replicas, word_log_probs
from ..search import Searcher
from ..vocab import Vocabulary


class SelfCritical:
    """The critic: draws `samples` captions per image from a decoder and rewards each against the reference
    captions of its image (`references`, one list per training image)."""

    def __init__(self, decoder, vocabulary: Vocabulary, references: Sequence[Sequence[str]], samples: int = 5,
                 max_length: int = 25, seed: int | None = None, bleu_weight: float = 0.0):
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


class SelfCriticalTrainer(keras.Model):
    """Trains `show_attend_tell` on the rewards of its own samples, as `critic` draws and scores them. Its batches
    are images: {"features": (B, ...), "image": (B,)}, `image` indexing the critic's references. It has no weights
    of its own: compiled with the optimizer of `show_attend_tell`, it trains (and checkpoints) that model's."""

    def __init__(self, show_attend_tell: ShowAttendTell, critic: SelfCritical, **kwargs):
        super().__init__(**kwargs)
        self.show_attend_tell = show_attend_tell
        self.critic = critic
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reward_tracker = keras.metrics.Mean(name="reward")
        self.built = True  # `show_attend_tell` is

    @property
    def metrics(self):
        return [self.loss_tracker, self.reward_tracker]  # Keras resets them each epoch

    def train_step(self, data):
        model, n = self.show_attend_tell, self.critic.samples
        tokens, lengths, locations = self.critic.sample(model.grid_features(data["features"]))  # (B*n, T)
        tokens = tokens[:, : ops.max(lengths)]
        if locations is not None:
            locations = locations[:, : ops.max(lengths)]
        images = ops.repeat(data["image"], n, axis=0)
        rewards = tf.numpy_function(self.critic.rewards, [tokens, images], tf.float32, stateful=False)
        rewards = ops.reshape(rewards, (-1, n))  # (B, n)
        baseline = (ops.sum(rewards, axis=1, keepdims=True) - rewards) / (n - 1)
        advantage = ops.reshape(rewards - baseline, (-1, 1))  # (B*n, 1)
        # The decoder reads each sample from <start> up to its last word, and each image's features once.
        start = ops.full((ops.shape(tokens)[0], 1), self.critic.vocabulary.start, "int32")
        previous = ops.concatenate([start, tokens[:, :-1]], 1)  # (B*n, T)
        with tf.GradientTape() as tape:
            features = model.grid_features(data["features"])
            logits, glimpses = model.decoder(features, previous, training=False, copies=n, locations=locations)
            log_probs, mask = word_log_probs(logits, tokens)  # (B*n, T)
            if locations is not None:
                log_probs += ops.cast(glimpses.log_prob, "float32")  # each word's location too
            # Divided by the whole batch's word count, as `ShowAttendTell.compute_loss` does: the replicas'
            # gradients are summed.
            loss = -ops.sum(advantage * log_probs * mask) / across_replicas(ops.sum(mask))
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        self.loss_tracker.update_state(across_replicas(loss))  # each replica's loss is its share of the batch's
        self.reward_tracker.update_state(rewards)
        return {metric.name: metric.result() for metric in self.metrics}
