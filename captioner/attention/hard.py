"""Hard attention: the decoder reads one sampled location (Xu et al. 2015, §4.1).

Training samples s_t ~ Multinoulli(alpha); the sampled context carries no gradient to the attention, so the
model adds the REINFORCE terms (see `ShowAttendTell.compute_loss`) through `Glimpse.log_prob`. With
probability `expectation_rate` a step reads the expected context instead, as the paper does to cut variance.
"""
import keras
from keras import ops

from .base import Glimpse, ReplicaSeedGenerator
from .soft import SoftAttention


@keras.saving.register_keras_serializable("captioner")
class HardAttention(SoftAttention):
    stochastic = True

    def __init__(self, units=512, score="additive", gate=False, expectation_rate=0.5, inference="argmax",
                 seed=None, **kwargs):
        super().__init__(units=units, score=score, gate=gate, **kwargs)
        if inference not in ("argmax", "expectation"):
            raise ValueError(f"inference must be 'argmax' or 'expectation', not {inference!r}")
        self.expectation_rate = expectation_rate
        self.inference = inference
        self.seed = seed
        self.seed_generator = ReplicaSeedGenerator(seed)

    def attend(self, features, hidden, keys=None, training=False):
        scores = self.scores(features, hidden, keys)  # (B, L)
        probs = ops.softmax(scores, axis=-1)
        locations = ops.shape(scores)[-1]
        if training:
            chosen = ops.one_hot(keras.random.categorical(scores, 1, seed=self.seed_generator)[:, 0], locations)
            sampled = keras.random.uniform(ops.shape(scores)[:1], seed=self.seed_generator) >= self.expectation_rate
            alpha = ops.where(sampled[:, None], chosen, probs)
            log_prob = ops.where(sampled, ops.sum(chosen * ops.log_softmax(scores, axis=-1), axis=-1), 0.0)
        else:
            alpha = probs if self.inference == "expectation" else ops.one_hot(ops.argmax(scores, axis=-1), locations)
            log_prob = ops.zeros_like(probs[:, 0])
        return Glimpse(self.read(alpha, features, hidden), alpha, probs, log_prob)

    def attend_at(self, features, hidden, locations=None, keys=None):
        """Reads one location per row, every step: `locations` (B,) when replaying a sample, else drawn from the
        attention. `log_prob` is that location's log-probability either way, which is what self-critical training
        reinforces, with the words', when it samples locations as well as words."""
        scores = self.scores(features, hidden, keys)  # (B, L)
        log_probs = ops.log_softmax(scores, axis=-1)
        if locations is None:
            locations = keras.random.categorical(scores, 1, seed=self.seed_generator)[:, 0]
        chosen = ops.one_hot(locations, ops.shape(scores)[-1])  # (B, L)
        return Glimpse(self.read(chosen, features, hidden), chosen, ops.exp(log_probs), ops.sum(chosen * log_probs, -1))

    def get_config(self):
        return {**super().get_config(), "expectation_rate": self.expectation_rate, "inference": self.inference,
                "seed": self.seed}
