"""ShowAttendTell: the decoder plus its training objective, trained with `model.fit` on cached features."""
import keras
import tensorflow as tf
from keras import ops

from .attention import make_attention
from .decoder import AttentionLSTMDecoder


@keras.saving.register_keras_serializable("captioner")
class ShowAttendTell(keras.Model):
    """Inputs {"features": (B, L, C), "tokens": (B, T+1) <start> … <end> <pad>…}.

    Loss per real token: cross-entropy (optionally label-smoothed) plus λ Σ_i (1 − Σ_t α_ti)², the doubly
    stochastic term that asks every location to be looked at over the caption. Hard attention adds the
    paper's REINFORCE terms: (log p(y) − b) ∂ log p(s) with a moving-average baseline b, and an entropy bonus.
    """

    def __init__(self, decoder, grid_shape, encoder_head=None, doubly_stochastic=1.0, label_smoothing=0.0,
                 reinforce_weight=1.0, entropy_weight=0.01, baseline_decay=0.9, **kwargs):
        super().__init__(**kwargs)
        self.decoder = _layer(decoder)
        # Top encoder blocks fine-tuned with the decoder; the inputs are then the cached features below them.
        self.encoder_head = _layer(encoder_head) if encoder_head is not None else None
        self.grid_shape = tuple(grid_shape)
        self.doubly_stochastic = doubly_stochastic
        self.label_smoothing = label_smoothing
        self.reinforce_weight = reinforce_weight
        self.entropy_weight = entropy_weight
        self.baseline_decay = baseline_decay
        self.reward_baseline = self.add_weight(shape=(), initializer="zeros", trainable=False, name="reward_baseline")
        # The loss mixes in regularisers; cross-entropy per word alone is what tells how well captions are fit.
        self.xent_tracker = keras.metrics.Mean(name="xent")
        self.built = True  # every sublayer was built from its settings, so the model needs no sample input

    @property
    def attention(self):
        return self.decoder.attention

    def weight_parts(self) -> dict[str, list]:
        """Which of its weights play which part, by name, but for its attention's (`Attention.weight_parts`):
        the decoder's layers, the encoder head and hard attention's reward baseline. Warm starts copy each part
        into the part of the same name of another model (`captioner.training.warm_start`)."""
        parts = self.decoder.weight_parts() | {"reward_baseline": [self.reward_baseline]}
        if self.encoder_head is not None:
            parts["encoder_head"] = self.encoder_head.weights
        return parts

    def grid_features(self, features, training=False):
        """What the decoder attends to: the input features, through the fine-tuned encoder head if any."""
        return features if self.encoder_head is None else self.encoder_head(features, training=training)

    def call(self, inputs, training=False):
        features = self.grid_features(inputs["features"], training=training)
        logits, glimpses = self.decoder(features, inputs["tokens"][:, :-1], training=training)
        return {"logits": logits, **glimpses._asdict()}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        y_pred = {key: ops.cast(value, "float32") for key, value in y_pred.items()}  # the loss in full precision
        log_probs, mask = word_log_probs(y_pred["logits"], x["tokens"][:, 1:])  # (B, T)
        nll = xent = -log_probs
        if self.label_smoothing:  # part of the target is uniform, whose cross-entropy is −mean_v log p(v)
            logits = y_pred["logits"]
            uniform = ops.logsumexp(logits, axis=-1) - ops.mean(logits, axis=-1)  # (B, T)
            xent = (1 - self.label_smoothing) * nll + self.label_smoothing * uniform
        coverage = ops.sum(y_pred["probs"] * mask[..., None], axis=1)  # (B, L)
        self.xent_tracker.update_state(ops.sum(nll * mask) / ops.sum(mask))
        per_caption = ops.sum(xent * mask, axis=1) + self.doubly_stochastic * ops.sum((1 - coverage) ** 2, axis=-1)
        if self.attention.stochastic:
            per_caption += self._reinforce(nll, mask, y_pred["probs"], y_pred["log_prob"], training)
        # Under tf.distribute each replica holds a slice of the batch and the replicas' gradients are summed:
        # dividing by the whole batch's word count makes that sum the gradient of the loss on one device.
        return ops.sum(per_caption) / across_replicas(ops.sum(mask))

    def _reinforce(self, nll, mask, probs, log_prob, training):
        """Surrogate whose gradient is the paper's estimator for the sampled locations, per caption (B,)."""
        reward = ops.stop_gradient(-ops.sum(nll * mask, axis=1) / ops.sum(mask, axis=1))  # mean log p(y) per word
        advantage = reward - self.reward_baseline
        if training:
            # Each replica updates its own copy of the baseline: with the whole batch's mean they stay one value.
            batch_mean = across_replicas(ops.mean(reward), "mean")  # replicas hold equal slices of the batch
            self.reward_baseline.assign(
                self.baseline_decay * self.reward_baseline + (1 - self.baseline_decay) * batch_mean
            )
        entropy = -ops.sum(probs * ops.log(probs + 1e-9), axis=-1)  # (B, T)
        return -(
            self.reinforce_weight * advantage * ops.sum(log_prob * mask, axis=1)
            + self.entropy_weight * ops.sum(entropy * mask, axis=1)
        )

    def get_config(self):
        return {
            **super().get_config(),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "encoder_head": keras.saving.serialize_keras_object(self.encoder_head),
            "grid_shape": self.grid_shape,
            "doubly_stochastic": self.doubly_stochastic,
            "label_smoothing": self.label_smoothing,
            "reinforce_weight": self.reinforce_weight,
            "entropy_weight": self.entropy_weight,
            "baseline_decay": self.baseline_decay,
        }


def word_log_probs(logits, tokens):
    """log p(word) of each of `tokens` (B, T) under `logits` (B, T, V), in full precision, and the mask of the
    words that are not padding (<pad> is 0): (B, T) each. What the cross-entropy loss, self-critical training and
    `Captioner.attend` read of a caption."""
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)  # (B, T, V)
    picked = ops.squeeze(ops.take_along_axis(log_probs, tokens[..., None], axis=-1), -1)  # (B, T)
    return picked, ops.cast(ops.not_equal(tokens, 0), "float32")


def across_replicas(value, reduction="sum"):
    """A per-replica value summed (or averaged) over the replicas training in sync; itself without tf.distribute."""
    replica = tf.distribute.get_replica_context()
    if replica is None or replica.num_replicas_in_sync == 1:
        return value
    return replica.all_reduce(reduction, value)


def _layer(layer_or_config):
    return layer_or_config if isinstance(layer_or_config, keras.layers.Layer) else keras.saving.deserialize_keras_object(layer_or_config)


def show_attend_tell(vocab_size, feature_dim, grid_shape, attention="soft", score="additive", attention_units=512,
                     embedding_dim=512, units=512, dropout=0.5, attention_options=None, encoder_head=None,
                     **objective) -> ShowAttendTell:
    """A ShowAttendTell model from plain settings (what `TrainConfig` holds); `feature_dim` and `grid_shape`
    are those the decoder sees, after `encoder_head` when there is one."""
    decoder = AttentionLSTMDecoder(
        vocab_size,
        feature_dim,
        make_attention(attention, grid_shape, units=attention_units, score=score, **(attention_options or {})),
        embedding_dim=embedding_dim,
        units=units,
        dropout=dropout,
        name="decoder",
    )
    return ShowAttendTell(decoder, grid_shape, encoder_head=encoder_head, **objective)
