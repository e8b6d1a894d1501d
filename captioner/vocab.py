"""Caption tokenization and the word <-> id vocabulary."""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from nltk.tokenize import RegexpTokenizer

SPECIALS = ("<pad>", "<start>", "<end>", "<unk>")

# Words may hold inner hyphens, dots and ampersands ("t-shirt", "3.5", "at&t"); clitics are split off as in the
# Penn Treebank ("dog's" -> "dog 's", "isn't" -> "is n't"). Punctuation matches nothing, so it drops out. One regular
# expression needs no nltk data download, and reads a caption once where nltk's TreebankWordTokenizer runs two dozen
# substitutions over it.
_tokenizer = RegexpTokenizer(r"\w+(?=n't\b)|n't\b|'(?:s|m|d|re|ve|ll)\b|\w+(?:[-.&]\w+)*")


def tokenize(caption: str) -> list[str]:
    """Lower-case words of a caption, punctuation dropped: "A dog's ball." -> ["a", "dog", "'s", "ball"]."""
    return _tokenizer.tokenize(caption.lower())


def _frequent_words(captions: Iterable[str], min_count: int, known: Iterable[str] = ()) -> list[str]:
    """Words seen at least min_count times and not already known, most frequent first, ties alphabetical."""
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count}")
    counts = Counter(token for caption in captions for token in tokenize(caption))
    known = set(known)
    words = [word for word, count in counts.items() if count >= min_count and word not in known]
    return sorted(words, key=lambda word: (-counts[word], word))


class Vocabulary:
    """Maps words to ids: the specials <pad>=0, <start>=1, <end>=2, <unk>=3, then the words."""

    def __init__(self, words: Sequence[str], min_count: int):
        """words lists every word in id order, specials first; min_count is the threshold it was built with."""
        words = list(words)
        if tuple(words[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {', '.join(SPECIALS)}")
        if not all(isinstance(word, str) for word in words):
            raise ValueError("vocabulary words must be strings")
        self._words = words
        self._ids = {word: token_id for token_id, word in enumerate(words)}
        if len(self._ids) != len(words):
            duplicate = next(word for word, count in Counter(words).items() if count > 1)
            raise ValueError(f"the vocabulary lists {duplicate!r} more than once")
        self.min_count = min_count

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 5, max_size: int | None = None) -> Vocabulary:
        """The vocabulary of words seen at least min_count times; max_size caps its length, specials included."""
        if max_size is not None and max_size <= len(SPECIALS):
            raise ValueError(f"max_size must leave room for words beyond the {len(SPECIALS)} specials, got {max_size}")
        words = _frequent_words(captions, min_count)
        if max_size is not None:
            words = words[: max_size - len(SPECIALS)]
        return cls([*SPECIALS, *words], min_count)

    def extend(self, captions: Iterable[str], min_count: int | None = None) -> Vocabulary:
        """A larger vocabulary for fine-tuning on new captions: every existing id is kept, new words come after."""
        min_count = self.min_count if min_count is None else min_count
        return Vocabulary([*self._words, *_frequent_words(captions, min_count, known=self._ids)], min_count)

    def encode(self, caption: str) -> list[int]:
        """Token ids of a caption between <start> and <end>, unknown words as <unk>."""
        return [self.start, *(self._ids.get(token, self.unk) for token in tokenize(caption)), self.end]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words of a sequence of ids, up to the first <end>, without <start> and <pad>."""
        words = []
        for token_id in map(int, ids):
            if token_id == self.end:
                break
            if token_id in (self.start, self.pad):
                continue
            if not 0 <= token_id < len(self._words):
                raise ValueError(f"id {token_id} is outside the vocabulary of {len(self._words)} words")
            words.append(self._words[token_id])
        return words

    def __len__(self) -> int:
        return len(self._words)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} words, min_count={self.min_count})"

    @property
    def words(self) -> list[str]:
        """Every word in id order, specials first."""
        return list(self._words)

    @property
    def pad(self) -> int:
        return self._ids["<pad>"]

    @property
    def start(self) -> int:
        return self._ids["<start>"]

    @property
    def end(self) -> int:
        return self._ids["<end>"]

    @property
    def unk(self) -> int:
        return self._ids["<unk>"]

    def save(self, path: Path) -> None:
        """Write the vocabulary as JSON: {"words": [...], "min_count": ...}."""
        content = json.dumps({"words": self._words, "min_count": self.min_count}, ensure_ascii=False, indent=1)
        Path(path).write_text(content + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        """Read a vocabulary written by save."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(data["words"], int(data["min_count"]))
        except FileNotFoundError:
            raise FileNotFoundError(f"vocabulary file not found: {path}") from None
        except KeyError as error:
            raise ValueError(f"{path} is not a vocabulary file: it has no {error} entry") from None
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path} is not a vocabulary file: {error}") from None
