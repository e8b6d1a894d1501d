"""The decoder and its training objective: every attention kind learns, and survives a save and load."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from captioner.attention import ATTENTIONS
from captioner.model import show_attend_tell

GRID, C, VOCAB = (3, 3), 16, 24


def tiny(kind, **options):
    return show_attend_tell(VOCAB, C, GRID, attention=kind, attention_units=32, embedding_dim=32, units=64,
                            dropout=0.0, **options)


def toy_batch(seed=0, images=8, length=7):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(images, GRID[0] * GRID[1], C)).astype("float32")
    tokens = rng.integers(4, VOCAB, size=(images, length))
    tokens[:, 0], tokens[:, -1] = 1, 2  # <start> … <end>
    tokens[0, -3:] = [2, 0, 0]  # a shorter caption, padded
    return {"features": features, "tokens": tokens}


@pytest.mark.parametrize("kind", ATTENTIONS)
def test_each_kind_overfits_a_tiny_set(kind):
    keras.utils.set_random_seed(0)
    model = tiny(kind, doubly_stochastic=0.0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    batch = toy_batch()

    def xent_of_one_step():  # measured before the step's update
        return model.fit(batch, batch_size=8, verbose=0).history["xent"][0]

    assert xent_of_one_step() > 2.5
    # One epoch of 298 steps: 298 epochs of one would spend most of their time in Keras's per-epoch work.
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(298), verbose=0, shuffle=False)
    assert xent_of_one_step() < 0.05


@pytest.mark.parametrize("kind", ATTENTIONS)
def test_decoding_word_by_word_gives_the_teacher_forced_logits(kind):
    """Training batches what `step` does per word across all words: both must compute the same thing."""
    keras.utils.set_random_seed(3)
    decoder = tiny(kind).decoder
    batch = toy_batch(seed=3)
    features, tokens = batch["features"], batch["tokens"][:, :-1]
    forced, forced_glimpses = decoder(features, tokens)
    memory, state = decoder.start(features)
    for t in range(tokens.shape[1]):
        output, state, glimpse = decoder.step(tokens[:, t], state, memory)
        np.testing.assert_allclose(decoder.logits(output), forced[:, t], atol=1e-5)
        np.testing.assert_allclose(glimpse.alpha, forced_glimpses.alpha[:, t], atol=1e-6)


def test_the_recurrence_is_keras_lstm_cell_on_the_word_and_the_context():
    """`advance` applies the LSTMCell's weights itself; saved models rely on it doing what the cell does."""
    keras.utils.set_random_seed(4)
    decoder = tiny("soft").decoder
    features = toy_batch(seed=4)["features"]
    memory, state = decoder.start(features)
    for _ in range(3):  # away from the initial state
        _, state, _ = decoder.step(np.full(len(features), 5), state, memory)
    token = np.arange(len(features)) + 4
    (hidden, cell), glimpse = decoder.advance(decoder.word_gates(decoder.embedding(token)), state, memory,
                                             decoder.state_kernels())
    inputs = keras.ops.concatenate([decoder.embedding(token), glimpse.context], axis=-1)
    expected_hidden, (_, expected_cell) = decoder.lstm(inputs, state)
    np.testing.assert_allclose(hidden, expected_hidden, atol=1e-6)
    np.testing.assert_allclose(cell, expected_cell, atol=1e-6)


def test_the_decoder_reads_layer_normalised_features_and_projects_keys_from_them():
    decoder = tiny("soft").decoder
    decoder.feature_norm.gamma.assign(np.linspace(0.5, 2, decoder.feature_dim))
    decoder.feature_norm.beta.assign(np.linspace(-1, 1, decoder.feature_dim))
    features = toy_batch(seed=5)["features"] * 12  # SqueezeNet's scale
    (values, keys), _ = decoder.start(features, copies=2)
    expected = np.repeat(decoder.feature_norm(features), 2, axis=0)
    np.testing.assert_allclose(values.scale * values.normalised + values.offset, expected, atol=1e-5)
    np.testing.assert_allclose(keys, decoder.attention.project_keys(expected), atol=1e-4)


@pytest.mark.parametrize("kind", ATTENTIONS)
def test_save_load_gives_identical_outputs(kind, tmp_path):
    keras.utils.set_random_seed(1)
    model = tiny(kind)
    batch = toy_batch(seed=1)
    model.compile(optimizer="adam")
    model.fit(batch, batch_size=8, epochs=2, verbose=0)  # weights away from their initial values
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert type(loaded.attention) is type(model.attention)
    before, after = model(batch), loaded(batch)
    for key in before:
        np.testing.assert_array_equal(np.asarray(before[key]), np.asarray(after[key]))


def test_doubly_stochastic_term_is_added_to_the_loss():
    batch = toy_batch()
    losses = []
    for weight in (0.0, 1.0):
        keras.utils.set_random_seed(2)
        model = tiny("soft", doubly_stochastic=weight)
        losses.append(float(model.compute_loss(batch, y_pred=model(batch), training=False)))
    targets = batch["tokens"][:, 1:]
    steps = (targets != 0).sum(1, keepdims=True)  # each caption's attention sums to its length
    expected_penalty = ((1 - steps / (GRID[0] * GRID[1])) ** 2 * GRID[0] * GRID[1]).sum() / steps.sum()
    # α need not be uniform, so the penalty is at least the uniform one
    assert losses[1] - losses[0] >= expected_penalty - 1e-4


def test_hard_attention_trains_its_attention_through_reinforce():
    keras.utils.set_random_seed(3)
    model = tiny("hard", attention_options={"expectation_rate": 0.0}, doubly_stochastic=0.0)
    batch = toy_batch()
    attention_weights = model.attention.trainable_weights
    with tf.GradientTape() as tape:
        loss = model.compute_loss(batch, y_pred=model(batch, training=True), training=True)
    gradients = tape.gradient(loss, attention_weights)
    # With every step sampled, only the REINFORCE and entropy terms reach the attention's score weights.
    assert any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients)
    assert float(model.reward_baseline) != 0.0


def test_hard_self_critical_samples_locations_and_replays_them():
    """Hard attention stays hard in self-critical training: each sampled word comes with the location it read,
    the teacher-forced pass reads those same locations, and both log-probabilities are reinforced."""
    from captioner.search import Searcher
    from captioner.training import SelfCritical, SelfCriticalTrainer
    from captioner.vocab import Vocabulary

    keras.utils.set_random_seed(0)
    vocabulary = Vocabulary.build(["a dog runs on the grass", "a man rides a red bike"], 1)
    model = show_attend_tell(len(vocabulary), C, GRID, attention="hard", attention_units=16, embedding_dim=16,
                             units=16, dropout=0.0)
    features = toy_batch(images=2)["features"]
    searcher = Searcher(model.decoder, vocabulary.start, vocabulary.end, max_length=6)
    seed = keras.random.SeedGenerator(1)
    tokens, lengths, locations = tf.function(lambda f: searcher.sample(f, 3, seed, True))(features)
    assert locations.shape == tokens.shape
    previous = tf.concat([tf.fill([6, 1], vocabulary.start), tokens[:, :-1]], 1)
    _, glimpses = model.decoder(features, previous, copies=3, locations=locations)
    mask = np.asarray(tokens) != 0
    np.testing.assert_array_equal(np.argmax(glimpses.alpha, -1)[mask], np.asarray(locations)[mask])
    assert np.all(np.asarray(glimpses.log_prob)[mask] < 0)

    sampled = SelfCritical(model.decoder, vocabulary, [["a dog runs"], ["a man rides a bike"]], samples=3,
                           max_length=6, seed=1)
    assert sampled.sample_locations
    trainer = SelfCriticalTrainer(model, sampled)
    trainer.compile(optimizer=keras.optimizers.SGD(1.0))
    before = [np.array(w) for w in model.attention.trainable_weights]
    batch = {"features": features, "image": np.array([0, 1], "int32")}
    trainer.fit(tf.data.Dataset.from_tensors(batch), verbose=0)
    moved = [np.abs(np.array(w) - b).max() for w, b in zip(model.attention.trainable_weights, before)]
    # The expected context or the argmax location would give the attention no gradient at all.
    assert moved and all(change > 0 for change in moved)
