import json

import pytest

from captioner.data import read_flickr8k
from captioner.vocab import Vocabulary, tokenize

CAPTIONS = ["A dog runs.", "A dog jumps!", "The cat sleeps.", "A cat and a dog.", "Zebras run."]


def test_tokenize_lower_cases_and_drops_punctuation():
    assert tokenize("A dog's ball.") == ["a", "dog", "'s", "ball"]
    assert tokenize('He said "Hi" -- it isn\'t 3.5 t-shirts...') == [
        "he", "said", "hi", "it", "is", "n't", "3.5", "t-shirts"
    ]
    assert tokenize(" ?! ") == []


def test_build_orders_words_by_count_then_alphabetically():
    vocab = Vocabulary.build(CAPTIONS, min_count=2)

    assert vocab.words == ["<pad>", "<start>", "<end>", "<unk>", "a", "dog", "cat"]
    assert (vocab.pad, vocab.start, vocab.end, vocab.unk) == (0, 1, 2, 3)
    assert len(vocab) == 7


def test_build_caps_the_size_specials_included():
    vocab = Vocabulary.build(CAPTIONS, min_count=1, max_size=6)

    assert vocab.words[4:] == ["a", "dog"]
    with pytest.raises(ValueError, match="max_size must leave room"):
        Vocabulary.build(CAPTIONS, max_size=4)
    with pytest.raises(ValueError, match="min_count must be at least 1"):
        Vocabulary.build(CAPTIONS, min_count=0)


def test_encode_and_decode_round_trip():
    vocab = Vocabulary.build(CAPTIONS, min_count=2)

    ids = vocab.encode("A dog and a cat!")

    assert ids == [vocab.start, 4, 5, vocab.unk, 4, 6, vocab.end]
    assert vocab.decode(ids) == ["a", "dog", "<unk>", "a", "cat"]


def test_decode_stops_at_end_and_skips_start_and_pad():
    vocab = Vocabulary.build(CAPTIONS, min_count=2)

    assert vocab.decode([vocab.start, 5, vocab.pad, 6, vocab.end, 4, 4]) == ["dog", "cat"]
    with pytest.raises(ValueError, match="id 7 is outside the vocabulary of 7 words"):
        vocab.decode([4, 7])


def test_save_and_load_round_trip(tmp_path):
    vocab = Vocabulary.build(CAPTIONS, min_count=2)
    path = tmp_path / "vocab.json"

    vocab.save(path)
    loaded = Vocabulary.load(path)

    assert json.loads(path.read_text()) == {"words": vocab.words, "min_count": 2}
    assert loaded.words == vocab.words and loaded.min_count == 2
    assert loaded.encode("a zebra") == vocab.encode("a zebra")


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "Expecting property name"),
        ('{"min_count": 5}', "it has no 'words' entry"),
        ('["<pad>"]', "list indices must be integers"),
        ('{"words": ["a", "b"], "min_count": 5}', "must start with <pad>, <start>, <end>, <unk>"),
        ('{"words": ["<pad>", "<start>", "<end>", "<unk>", "a", "a"], "min_count": 5}', "lists 'a' more than once"),
    ],
)
def test_load_rejects_a_broken_file_naming_it(tmp_path, content, problem):
    path = tmp_path / "vocab.json"
    path.write_text(content)

    with pytest.raises(ValueError, match=f"vocab.json is not a vocabulary file: .*{problem}"):
        Vocabulary.load(path)


def test_load_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocabulary file not found: .*nowhere.json"):
        Vocabulary.load(tmp_path / "nowhere.json")


def test_extend_keeps_every_id_and_appends_new_words():
    vocab = Vocabulary.build(CAPTIONS, min_count=2)

    extended = vocab.extend(["A horse runs.", "A horse and a cow.", "A cow."], min_count=2)

    assert extended.words == [*vocab.words, "cow", "horse"]
    assert extended.encode("a dog") == vocab.encode("a dog")
    assert vocab.extend(["A cow."]).words == vocab.words  # min_count 2 carries over


def test_real_flickr8k_train_vocabulary(flickr8k_dir):
    records, _ = read_flickr8k(flickr8k_dir)
    captions = [caption for record in records if record.split == "train" for caption in record.captions]

    vocab = Vocabulary.build(captions, min_count=5)

    assert len(vocab) == 2541  # 2,537 words and the 4 specials
    assert vocab.words[4:10] == ["a", "in", "the", "on", "is", "and"]
