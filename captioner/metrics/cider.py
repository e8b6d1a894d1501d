"""CIDEr-D as coco-caption computes it, for scoring and as self-critical training's reward."""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from .ngrams import Tokens, ngram_counts


def _clipped_cosine(candidate: dict, reference: dict) -> float:
    """Cosine similarity, the candidate's weights clipped at the reference's (CIDEr-D's guard against repetition)."""
    overlap = 0.0
    for ngram, weight in candidate.items():
        reference_weight = reference.get(ngram, 0.0)
        overlap += min(weight, reference_weight) * reference_weight
    norms = math.hypot(*candidate.values()) * math.hypot(*reference.values())
    return overlap / norms if norms else 0.0


class CiderD:
    """CIDEr-D as coco-caption's `Cider` computes it (idf from the references, clipped counts, length penalty, x10),
    one candidate at a time against the references of image i of a fixed corpus.

    `cider_d` builds one over the images it scores; self-critical training builds one over the training set, whose
    idf is then the reward's. Tokens may be words or word ids. Over a single image every n-gram is in all
    documents and every score is 0.
    """

    def __init__(self, references: Sequence[Sequence[Tokens]], max_n: int = 4, sigma: float = 6.0):
        self.max_n, self.sigma = max_n, sigma
        counts = [[ngram_counts(reference, max_n) for reference in image] for image in references]
        self.document_frequency = Counter(ngram for image in counts for ngram in set().union(*image))
        self.log_images = math.log(len(references))
        self.references = [[(self._tf_idf(c), len(r)) for c, r in zip(image_counts, image)]
                           for image_counts, image in zip(counts, references)]

    def _tf_idf(self, counts: Counter) -> list[dict]:
        """An n-gram count vector weighted by idf, split by n-gram length."""
        vectors: list[dict] = [{} for _ in range(self.max_n)]
        for ngram, count in counts.items():
            # An n-gram no reference has counts as seen once.
            idf = self.log_images - math.log(max(1, self.document_frequency[ngram]))
            vectors[len(ngram) - 1][ngram] = count * idf
        return vectors

    def score(self, candidate: Tokens, image: int) -> float:
        candidate_vectors = self._tf_idf(ngram_counts(candidate, self.max_n))
        similarity = np.zeros(self.max_n)
        for reference_vectors, length in self.references[image]:
            length_penalty = math.exp(-((len(candidate) - length) ** 2) / (2 * self.sigma**2))
            similarity += [length_penalty * _clipped_cosine(c, r) for c, r in zip(candidate_vectors, reference_vectors)]
        return 10.0 * float(np.mean(similarity)) / len(self.references[image])


def cider_d(
    references: Sequence[Sequence[Tokens]], candidates: Sequence[Tokens], max_n: int = 4, sigma: float = 6.0
) -> float:
    """Corpus CIDEr-D as coco-caption reports it: the mean over images, idf from these images' references."""
    if len(references) != len(candidates):
        raise ValueError(f"{len(references)} reference sets for {len(candidates)} candidates")
    scorer = CiderD(references, max_n, sigma)
    return float(np.mean([scorer.score(candidate, i) for i, candidate in enumerate(candidates)]))
