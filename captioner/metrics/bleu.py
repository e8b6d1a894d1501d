"""Corpus BLEU as coco-caption computes it."""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from .ngrams import Tokens, ngram_counts


def bleu(references: Sequence[Sequence[Tokens]], candidates: Sequence[Tokens], max_n: int = 4) -> list[float]:
    """Corpus BLEU-1..max_n as coco-caption computes it, with the reference length closest to each candidate's."""
    matches = [0] * max_n
    guesses = [0] * max_n
    candidate_length = reference_length = 0
    for image_references, candidate in zip(references, candidates, strict=True):
        clip = Counter()
        for reference in image_references:
            clip |= ngram_counts(reference, max_n)
        for ngram, count in ngram_counts(candidate, max_n).items():
            matches[len(ngram) - 1] += min(count, clip[ngram])
        for n in range(max_n):
            guesses[n] += max(0, len(candidate) - n)
        candidate_length += len(candidate)
        # The closest reference length; ties go to the shorter reference.
        lengths = [len(reference) for reference in image_references]
        reference_length += min(lengths, key=lambda length: (abs(length - len(candidate)), length))
    # coco-caption's constants: they turn a zero precision into a tiny score instead of a math error.
    tiny, small = 1e-15, 1e-9
    precisions = [(match + tiny) / (guess + small) for match, guess in zip(matches, guesses)]
    length_ratio = (candidate_length + tiny) / (reference_length + small)
    brevity_penalty = math.exp(1 - 1 / length_ratio) if length_ratio < 1 else 1.0
    return [math.prod(precisions[:n]) ** (1 / n) * brevity_penalty for n in range(1, max_n + 1)]
