"""The LSTM that writes a caption word by word, attending to the feature grid at every step.

`advance` is the only recurrent code. `step` writes one word with it (greedy and beam search call `step`);
teacher-forced training (`call`) runs it over a caption, with `step`'s per-word parts batched over all words.
"""
import keras
import tensorflow as tf
from keras import layers, ops

from .attention.base import ReplicaSeedGenerator
from .attention.contractions import Standardised


@keras.saving.register_keras_serializable("captioner")
class AttentionLSTMDecoder(layers.Layer):
    """h_0, c_0 from the mean feature; input [E y_{t-1}; z_t]; deep output L_o(E y_{t-1} + L_h h_t + L_z z_t).

    `attention` is an `Attention` layer (see `captioner.attention.make_attention`).
    """

    def __init__(self, vocab_size, feature_dim, attention, embedding_dim=512, units=512, dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.feature_dim = feature_dim
        self.attention = attention if isinstance(attention, layers.Layer) else keras.saving.deserialize_keras_object(attention)
        self.embedding_dim = embedding_dim
        self.units = units
        self.dropout_rate = dropout
        # SqueezeNet's grid is sparse and large (RMS ≈ 12): normalising it keeps the attention scores in range.
        self.feature_norm = layers.LayerNormalization(name="feature_norm")
        self.init_hidden = layers.Dense(units, activation="tanh", name="init_hidden")
        self.init_cell = layers.Dense(units, activation="tanh", name="init_cell")
        self.embedding = layers.Embedding(vocab_size, embedding_dim, name="embedding")
        # Holds the LSTM's weights; `advance` applies them itself, the previous word's rows apart from the context's.
        self.lstm = layers.LSTMCell(units, name="lstm")
        self.out_hidden = layers.Dense(embedding_dim, name="out_hidden")  # L_h
        self.out_context = layers.Dense(embedding_dim, name="out_context")  # L_z
        # Keras's Dropout layer would draw the same masks on every replica under tf.distribute.
        self.seed_generator = ReplicaSeedGenerator() if dropout else None
        self.vocabulary_projection = layers.Dense(vocab_size, name="vocabulary_projection")  # L_o
        self.build()

    def build(self, input_shape=None):
        features_shape = (None, None, self.feature_dim)
        context_dim = self.attention.context_dim(self.feature_dim)
        self.feature_norm.build(features_shape)
        if not self.attention.built:  # a deserialised attention arrives built from its own config
            self.attention.build(features_shape, (None, self.units))
        self.init_hidden.build((None, self.feature_dim))
        self.init_cell.build((None, self.feature_dim))
        self.embedding.build((None,))
        self.lstm.build((None, self.embedding_dim + context_dim))
        self.out_hidden.build((None, self.units))
        self.out_context.build((None, context_dim))
        self.vocabulary_projection.build((None, self.embedding_dim))

    def weight_parts(self) -> dict[str, list]:
        """Which of its weights play which part, by name: each of its own layers, but for its attention, which
        says its own (`Attention.weight_parts`)."""
        layers = (self.feature_norm, self.init_hidden, self.init_cell, self.embedding, self.lstm, self.out_hidden,
                  self.out_context, self.vocabulary_projection)
        return {layer.name: layer.weights for layer in layers}

    def word_axes(self) -> dict[str, int]:
        """Its weights indexed by word, by path, and the axis of each that runs over the vocabulary."""
        projection = self.vocabulary_projection
        return {self.embedding.embeddings.path: 0, projection.kernel.path: 1, projection.bias.path: 0}

    def start(self, features, copies=1):
        """Per-image work, once: normalised features, attention keys and the initial state, each then repeated
        for `copies` captions per image (image-major: B * copies rows)."""
        norm = self.feature_norm  # applied by parts, as LayerNormalization computes it: see Standardised
        mean, variance = ops.moments(features, axes=[-1], keepdims=True)
        normalised = (features - mean) * ops.rsqrt(variance + norm.epsilon)  # (B, L, C)
        values = Standardised(normalised, norm.gamma, norm.beta)
        pooled = ops.mean(normalised, axis=1) * norm.gamma + norm.beta  # (B, C)
        state = self.init_hidden(pooled), self.init_cell(pooled)
        per_image = normalised, self.attention.project_keys(values), state
        if copies > 1:
            per_image = tf.nest.map_structure(lambda part: ops.repeat(part, copies, axis=0), per_image)
        normalised, keys, state = per_image
        return (values._replace(normalised=normalised), keys), state

    def step(self, token, state, memory, training=False, sample_locations=False):
        """One word: token (B,) and state ((B, H), (B, H)) → output (B, E) before L_o, new state, Glimpse.
        `sample_locations`: a stochastic attention reads a location drawn from it (see `advance`)."""
        embedded = self.embedding(token)  # (B, E)
        state, glimpse = self.advance(self.word_gates(embedded), state, memory, self.state_kernels(),
                                      training=training, sample_locations=sample_locations)
        return self.readout(embedded, state[0], glimpse.context, training=training), state, glimpse

    def word_gates(self, embedded):
        """The previous word's part of the LSTM's gate pre-activations, (..., E) → (..., 4H)."""
        return ops.matmul(embedded, self.lstm.kernel[: self.embedding_dim]) + self.lstm.bias

    def state_kernels(self):
        """The LSTM's kernels for what changes at every step: the context's rows of its input kernel, and its
        recurrent kernel. Sliced once per caption: in a loop, the slice's gradient would be a kernel-sized
        tensor added up at every step."""
        return self.lstm.kernel[self.embedding_dim:], self.lstm.recurrent_kernel

    def advance(self, word_gates, state, memory, state_kernels, training=False, locations=None,
                sample_locations=False):
        """The recurrence: attend with h_{t-1}, then update the LSTM from the word's gates and the context.

        A stochastic (hard) attention can instead read one location at every step, whatever `training` says:
        the given `locations` (B,), or, with `sample_locations`, one drawn from it.
        """
        features, keys = memory
        hidden, cell = state
        context_kernel, recurrent_kernel = state_kernels
        if locations is not None or sample_locations:
            glimpse = self.attention.attend_at(features, hidden, locations, keys=keys)
        else:
            glimpse = self.attention.attend(features, hidden, keys=keys, training=training)
        gates = (word_gates + ops.matmul(glimpse.context, context_kernel)
                 + ops.matmul(hidden, recurrent_kernel))  # (B, 4H)
        input_gate, forget_gate, candidate, output_gate = ops.split(gates, 4, axis=-1)  # LSTMCell's order
        cell = ops.sigmoid(forget_gate) * cell + ops.sigmoid(input_gate) * ops.tanh(candidate)
        hidden = ops.sigmoid(output_gate) * ops.tanh(cell)
        return (hidden, cell), glimpse

    def readout(self, embedded, hidden, context, training=False):
        """The deep output before L_o, tanh(E y_{t-1} + L_h h_t + L_z z_t), over any leading axes."""
        output = ops.tanh(embedded + self.out_hidden(hidden) + self.out_context(context))
        if training and self.dropout_rate:
            output = keras.random.dropout(output, self.dropout_rate, seed=self.seed_generator)
        return output

    def logits(self, output):
        return self.vocabulary_projection(output)  # (..., V)

    def call(self, features, tokens, training=False, copies=1, locations=None):
        """Teacher forcing: features (B, L, C), tokens (B * copies, T) from <start>, `copies` captions per image
        (image-major) → logits (B * copies, T, V), Glimpse of (B * copies, T, ...). `locations` (B * copies, T)
        replays a hard attention's sampled locations.

        What `step` does per word that does not depend on the state (the embedding, its gates, the deep output,
        the vocabulary projection) runs here once over all steps, as large matmuls; only `advance` loops.
        """
        memory, state = self.start(features, copies)
        embedded = self.embedding(tokens)  # (B, T, E)
        word_gates = ops.moveaxis(self.word_gates(embedded), 1, 0)  # (T, B, 4H)
        kernels = self.state_kernels()
        steps = word_gates if locations is None else (word_gates, ops.moveaxis(locations, 1, 0))  # (T, B, ...)

        def advance(state, step):
            gates, where = step if locations is not None else (step, None)
            return self.advance(gates, state, memory, kernels, training=training, locations=where)

        first = advance(state, tf.nest.map_structure(lambda part: part[0], steps))
        # tf.scan rather than keras.ops.scan: the latter's TensorFlow version needs outputs shaped like the carry.
        rest = tf.scan(lambda previous, step: advance(previous[0], step),
                       tf.nest.map_structure(lambda part: part[1:], steps), initializer=first)  # (T - 1, B, ...)
        (hidden, _), glimpses = tf.nest.map_structure(
            lambda head, tail: ops.moveaxis(ops.concatenate([head[None], tail], axis=0), 0, 1), first, rest
        )  # (B, T, ...)
        return self.logits(self.readout(embedded, hidden, glimpses.context, training=training)), glimpses

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "feature_dim": self.feature_dim,
            "attention": keras.saving.serialize_keras_object(self.attention),
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "dropout": self.dropout_rate,
        }
