"""ROUGE-L as coco-caption computes it."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .ngrams import Tokens


def _lcs_length(first: Tokens, second: Tokens) -> int:
    """Length of the longest common subsequence of two token lists."""
    previous = [0] * (len(second) + 1)
    for token in first:
        current = [0]
        for j, other in enumerate(second):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(references: Sequence[Sequence[Tokens]], candidates: Sequence[Tokens], beta: float = 1.2) -> float:
    """ROUGE-L per image (best precision and best recall over its references, F-measure with beta), averaged."""
    scores = []
    for image_references, candidate in zip(references, candidates, strict=True):
        common = [_lcs_length(reference, candidate) for reference in image_references]
        precision = max(common) / len(candidate) if candidate else 0.0
        recall = max((length / len(ref) for length, ref in zip(common, image_references) if ref), default=0.0)
        if precision and recall:
            scores.append((1 + beta**2) * precision * recall / (recall + beta**2 * precision))
        else:
            scores.append(0.0)
    return float(np.mean(scores))
