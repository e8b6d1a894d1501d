"""What BLEU and CIDEr-D count: the n-grams of a tokenized caption."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

Tokens = Sequence[str]


def ngram_counts(tokens: Tokens, max_n: int) -> Counter[tuple[str, ...]]:
    """How often each n-gram of 1 to max_n tokens occurs."""
    return Counter(
        tuple(tokens[start : start + n]) for n in range(1, max_n + 1) for start in range(len(tokens) - n + 1)
    )
