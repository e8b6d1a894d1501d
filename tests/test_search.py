"""Greedy, sampling and beam search: batched, consistent with each other, bounded, and writing words only."""
from dataclasses import dataclass

import keras
import numpy as np
import pytest
import tensorflow as tf

from captioner.api import Captioner
from captioner.attention import ATTENTIONS
from captioner.model import show_attend_tell
from captioner.samplers import BeamSampler, GreedySampler, RandomSampler, Sampler
from captioner.search import Searcher
from captioner.training import SelfCritical
from captioner.vocab import SPECIALS, Vocabulary

GRID, C, VOCAB = (3, 4), 16, 40
PAD, START, END, UNK = (SPECIALS.index(word) for word in ("<pad>", "<start>", "<end>", "<unk>"))


def decoder(kind="soft", seed=0):
    keras.utils.set_random_seed(seed)
    return show_attend_tell(VOCAB, C, GRID, attention=kind, attention_units=16, embedding_dim=16, units=32).decoder


def vocabulary():
    return Vocabulary([*SPECIALS, *(f"word{i}" for i in range(VOCAB - len(SPECIALS)))], min_count=1)


def features(images=5, seed=0):
    return np.random.default_rng(seed).normal(size=(images, GRID[0] * GRID[1], C)).astype("float32")


def favour(decoder, token, bias):
    """Shifts the output bias of one token, to make a decoder always or never say it."""
    projection = decoder.vocabulary_projection
    value = np.array(projection.bias)
    value[token] += bias
    projection.bias.assign(value)


@pytest.mark.parametrize("kind", ATTENTIONS)
def test_beam_of_one_is_greedy(kind):
    searcher = Searcher(decoder(kind), START, END, max_length=10)
    greedy, beam = searcher.greedy(features()), searcher.beam(features(), beam_size=1)
    np.testing.assert_array_equal(greedy.tokens, beam.tokens)
    np.testing.assert_array_equal(greedy.lengths, beam.lengths)
    np.testing.assert_allclose(greedy.scores, beam.scores, rtol=1e-5)
    np.testing.assert_allclose(greedy.alphas, beam.alphas, atol=1e-6)


@pytest.mark.parametrize("beam_size", [2, 3, 5])
def test_beams_come_back_sorted_with_their_attention(beam_size):
    found = Searcher(decoder(), START, END, max_length=8).beam(features(), beam_size)
    assert found.tokens.shape == (5, beam_size, 8)
    assert found.alphas.shape == (5, beam_size, 8, GRID[0] * GRID[1])
    assert np.all(np.diff(found.scores, axis=1) <= 1e-6)
    for image in range(5):
        for beam in range(beam_size):
            length = found.lengths[image, beam]
            np.testing.assert_allclose(found.alphas[image, beam, :length].sum(-1), 1.0, atol=1e-5)
            assert np.all(found.alphas[image, beam, length:] == 0)
            assert np.all(found.tokens[image, beam, length:] == 0)


@pytest.mark.parametrize("kind", ATTENTIONS)
def test_each_beam_is_what_teacher_forcing_its_words_gives(kind):
    """Beams are traced back through their parents at the end: each one's words, score and attention must be
    those of one consistent path, also when captions end at different steps."""
    searcher = Searcher(decoder(kind, seed=3), START, END, max_length=12)
    favour(searcher.decoder, END, 0.3)  # beams end anywhere from the first step to the last
    found = searcher.beam(features(6), 5)
    assert len(set(found.lengths.ravel())) > 1
    beams = found.tokens.reshape(30, 12)  # every beam of every image, image-major, 0 after its end
    logits, glimpses = searcher.decoder(features(6), np.concatenate([np.full((30, 1), START), beams], 1), copies=5)
    log_probs = np.asarray(keras.ops.log_softmax(logits[:, :12]))
    for row, (words, length) in enumerate(zip(beams, found.lengths.ravel())):
        image, beam = divmod(row, 5)
        chosen = log_probs[row, np.arange(length), words[:length]]
        np.testing.assert_allclose(chosen.mean(), found.scores[image, beam], atol=1e-4)
        np.testing.assert_allclose(np.asarray(glimpses.alpha)[row, :length], found.alphas[image, beam, :length],
                                   atol=1e-5)


def test_beam_search_is_at_least_as_good_as_greedy_under_its_own_score():
    searcher = Searcher(decoder(seed=3), START, END, max_length=12)
    favour(searcher.decoder, END, 3.0)  # captions end at different lengths
    greedy, beam = searcher.greedy(features(8)), searcher.beam(features(8), 4)
    # Length normalisation can reorder, but the best beam's raw log-probability is never below greedy's.
    assert np.all(beam.scores[:, 0] * beam.lengths[:, 0] >= greedy.scores[:, 0] * greedy.lengths[:, 0] - 1e-4)


def test_batched_search_equals_one_image_at_a_time():
    searcher = Searcher(decoder(), START, END, max_length=8)
    together = searcher.beam(features(4), 3)
    for image in range(4):
        alone = searcher.beam(features(4)[image:image + 1], 3)
        np.testing.assert_array_equal(together.tokens[image], alone.tokens[0])
        np.testing.assert_allclose(together.scores[image], alone.scores[0], rtol=1e-5)


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_a_decoder_that_never_ends_stops_at_the_maximum_length(method):
    searcher = Searcher(decoder(), START, END, max_length=6)
    favour(searcher.decoder, END, -1e4)
    found = searcher.greedy(features()) if method == "greedy" else searcher.beam(features(), 3)
    assert np.all(found.lengths == 6)
    assert np.all(found.tokens != END) and np.all(found.tokens != 0)
    assert np.all(np.isfinite(found.scores))


def test_a_decoder_that_always_ends_returns_empty_captions():
    searcher = Searcher(decoder(), START, END, max_length=6)
    favour(searcher.decoder, END, 1e4)
    found = searcher.beam(features(), 3)
    np.testing.assert_array_equal(found.tokens[:, 0, 0], END)
    assert np.all(found.lengths[:, 0] == 1)


def test_sampling_draws_copies_per_image_from_the_model_distribution():
    """Sharpened until one word dominates every step, sampling says what greedy says, in every copy; at the
    model's own temperature the copies of an image differ."""
    model = decoder()
    searcher = Searcher(model, START, END, max_length=6)
    seed = keras.random.SeedGenerator(0)
    tokens, lengths, _ = searcher.sample(features(), 4, seed)
    tokens, lengths = np.asarray(tokens), np.asarray(lengths)
    assert tokens.shape == (5 * 4, 6) and lengths.shape == (20,)
    assert len({tuple(row) for row in tokens[:4]}) > 1
    projection = model.vocabulary_projection
    projection.kernel.assign(np.asarray(projection.kernel) * 1000)
    greedy = searcher.greedy(features())
    tokens, lengths, _ = searcher.sample(features(), 4, seed)
    tokens, lengths = np.asarray(tokens), np.asarray(lengths)
    np.testing.assert_array_equal(tokens, np.repeat(greedy.tokens[:, 0], 4, axis=0))
    np.testing.assert_array_equal(lengths, np.repeat(greedy.lengths[:, 0], 4))


@pytest.mark.parametrize("method", ["greedy", "sample", "beam"])
def test_pad_start_and_unk_are_never_said_however_likely(method):
    searcher = Searcher(decoder(), START, END, max_length=6, unk=UNK)
    for token in (PAD, START, UNK):
        favour(searcher.decoder, token, 30.0)  # far above any word at every step
    if method == "sample":
        tokens, lengths, _ = searcher.sample(features(), 4, keras.random.SeedGenerator(0))
        tokens, lengths = np.asarray(tokens), np.asarray(lengths)
    else:
        found = searcher.greedy(features()) if method == "greedy" else searcher.beam(features(), 3)
        tokens, lengths = found.tokens.reshape(-1, 6), found.lengths.ravel()
    said = tokens[np.arange(6) < lengths[:, None]]
    assert not np.isin(said, [PAD, START, UNK]).any()


@pytest.mark.parametrize("beam_size", [1, 3])
def test_each_word_keeps_the_attention_map_it_was_said_with(beam_size):
    """The i-th map of a caption is where the decoder looked as it wrote the caption's i-th word after the
    words before it, as teacher forcing the caption shows: no token the search wrote went missing in between."""
    keras.utils.set_random_seed(0)
    model = show_attend_tell(VOCAB, C, GRID, attention_units=16, embedding_dim=16, units=32)
    captioner = Captioner(model, vocabulary(), {}, max_length=10)
    for token in (PAD, START):  # the tokens a caption's words would be decoded without
        favour(model.decoder, token, 0.2)  # the likeliest word at some steps: between words, or before them
    images = features(8)
    for image, caption in enumerate(captioner.decode(images, beam_size)):
        tokens = np.asarray([captioner.vocabulary.encode(caption.text)])
        _, glimpses = model.decoder(images[image:image + 1], tokens[:, :-1])
        expected = np.asarray(glimpses.alpha)[0, :len(caption.words)].reshape(caption.attention.shape)
        np.testing.assert_allclose(caption.attention, expected, atol=1e-5)


def test_captioning_and_self_critical_sampling_never_say_unk():
    keras.utils.set_random_seed(0)
    model = show_attend_tell(VOCAB, C, GRID, attention_units=16, embedding_dim=16, units=32)
    favour(model.decoder, UNK, 30.0)
    captions = Captioner(model, vocabulary(), {}, max_length=6).decode(features(), beam_size=3)
    assert not any("<unk>" in caption.words for caption in captions)
    tokens, _, _ = SelfCritical(model.decoder, vocabulary(), [["word4 word5"]], max_length=6, seed=0).sample(features())
    assert UNK not in np.asarray(tokens)


@pytest.mark.parametrize("sampler, kind, sample_locations", [
    (GreedySampler(), "soft", False),
    (BeamSampler(3), "local-global", False),
    (RandomSampler(keras.random.SeedGenerator(0), width=2, temperature=0.7, top_k=5), "hard", True),
], ids=["greedy", "beam", "random"])
def test_every_sampler_runs_in_one_xla_compiled_loop(sampler, kind, sample_locations):
    searcher = Searcher(decoder(kind), START, END, max_length=5)
    loop = searcher.compiled(sampler, sample_locations)
    hlo = loop.experimental_get_compiler_ir(tf.constant(features(2)))(stage="hlo")
    assert "while" in hlo
    tokens, scores, lengths, alphas = loop(features(2))
    assert tokens.shape == (2, sampler.width, 5) and alphas.shape == (2, sampler.width, 5, GRID[0] * GRID[1])


@pytest.mark.parametrize("options", [{"top_k": 1}, {"temperature": 1e-6}], ids=["top-1", "temperature-0"])
def test_sampling_from_the_likeliest_word_only_is_greedy(options):
    searcher = Searcher(decoder(seed=3), START, END, max_length=8, unk=UNK)
    favour(searcher.decoder, END, 0.5)  # captions end at different lengths
    greedy = searcher.greedy(features())
    tokens, lengths, _ = searcher.sample(features(), 3, keras.random.SeedGenerator(0), **options)
    np.testing.assert_array_equal(np.asarray(tokens), np.repeat(greedy.tokens[:, 0], 3, axis=0))
    np.testing.assert_array_equal(np.asarray(lengths), np.repeat(greedy.lengths[:, 0], 3))


def test_sampling_is_reproducible_from_its_streams_states():
    """What self-critical training's exact resume relies on: the same stream states draw the same words and, with
    hard attention, the same locations; drawn again from where the streams moved to, they differ."""
    searcher = Searcher(decoder("hard"), START, END, max_length=6)
    seed = keras.random.SeedGenerator(4)
    streams = [seed, searcher.decoder.attention.seed_generator]
    states = [np.array(stream.state) for stream in streams]
    first = [np.asarray(part) for part in searcher.sample(features(), 3, seed, sample_locations=True, top_k=10)]
    then = [np.asarray(part) for part in searcher.sample(features(), 3, seed, sample_locations=True, top_k=10)]
    for stream, state in zip(streams, states):
        stream.state.assign(state)
    again = [np.asarray(part) for part in searcher.sample(features(), 3, seed, sample_locations=True, top_k=10)]
    for drawn, redrawn in zip(first, again):
        np.testing.assert_array_equal(drawn, redrawn)
    assert not np.array_equal(first[0], then[0]) and not np.array_equal(first[2], then[2])


@dataclass(frozen=True)
class LeastLikely(Sampler):
    """A strategy the loop does not know: the least likely word it may say."""

    def next_token(self, log_probs):
        return tf.argmin(tf.where(tf.math.is_inf(log_probs), np.inf, log_probs), axis=-1, output_type=tf.int32)


def test_a_new_sampler_plugs_into_the_loop():
    searcher = Searcher(decoder(), START, END, max_length=6, unk=UNK)
    found = searcher.search(features(), LeastLikely())
    logits, _ = searcher.decoder(features(), np.full((5, 1), START))
    first = np.where(np.isin(np.arange(VOCAB), [PAD, START, UNK]), np.inf, np.asarray(logits)[:, 0]).argmin(-1)
    np.testing.assert_array_equal(found.tokens[:, 0, 0], first)
    said = found.tokens[:, 0][np.arange(6) < found.lengths[:, :1]]
    assert not np.isin(said, [PAD, START, UNK]).any()
    assert np.all(np.isfinite(found.scores))
