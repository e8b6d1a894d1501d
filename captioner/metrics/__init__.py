"""Caption metrics computed the way the COCO caption evaluation toolkit (coco-caption, pycocoevalcap) computes them.

The metric functions take parallel lists: `references[i]` holds the tokenized reference captions of image i and
`candidates[i]` its tokenized generated caption. `score` takes raw captions keyed by image id, as coco-caption does.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from ..names import METRICS
from .bleu import bleu
from .cider import CiderD, cider_d
from .meteor import COCO_METEOR, METEOR_CHOICES, NLTK_METEOR, meteor_score
from .ngrams import Tokens
from .ptb import tokenize
from .rouge import rouge_l

__all__ = ["COCO_METEOR", "METEOR_CHOICES", "METRICS", "NLTK_METEOR", "CiderD", "Tokens", "bleu", "cider_d",
           "meteor_score", "rouge_l", "score", "tokenize"]


def _check_inputs(references: Mapping, candidates: Mapping) -> None:
    """Raise ValueError for ids that only one side has and for captions that are not strings."""
    one_sided = {
        "references but no candidate": references.keys() - candidates.keys(),
        "a candidate but no references": candidates.keys() - references.keys(),
    }
    problems = []
    for what, ids in one_sided.items():
        if ids:
            shown = ", ".join(sorted(map(repr, ids))[:5]) + (", ..." if len(ids) > 5 else "")
            problems.append(f"{len(ids)} id(s) have {what}: {shown}")
    if problems:
        raise ValueError("; ".join(problems))
    if not candidates:
        raise ValueError("there are no captions to score")
    for image_id, candidate in candidates.items():
        if not isinstance(candidate, str):
            raise ValueError(f"the candidate for image {image_id!r} must be one caption string")
        captions = references[image_id]
        if isinstance(captions, str) or not captions or not all(isinstance(caption, str) for caption in captions):
            raise ValueError(f"the references for image {image_id!r} must be a non-empty list of caption strings")


def score(
    references: Mapping[Hashable, Sequence[str]], candidates: Mapping[Hashable, str], meteor: str = "auto"
) -> dict[str, float | str | None]:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr(-D) of raw candidate captions against raw reference captions.

    Both mappings are keyed by image id, as in coco-caption; scores are on its scales (0-1, CIDEr up to 10), under
    the names of `METRICS`. `meteor` picks the METEOR implementation (see `meteor_score`); "METEOR-method" in the
    result names the one used.
    """
    _check_inputs(references, candidates)
    ids = list(candidates)
    reference_tokens = [[tokenize(caption) for caption in references[image_id]] for image_id in ids]
    candidate_tokens = [tokenize(candidates[image_id]) for image_id in ids]
    meteor_value, meteor_method = meteor_score(reference_tokens, candidate_tokens, meteor)
    values = (*bleu(reference_tokens, candidate_tokens), meteor_value, rouge_l(reference_tokens, candidate_tokens),
              cider_d(reference_tokens, candidate_tokens))
    return {**dict(zip(METRICS, values, strict=True)), "METEOR-method": meteor_method}
