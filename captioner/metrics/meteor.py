"""METEOR by coco-caption's METEOR 1.5 (Java) when it runs, else by nltk's port, else skipped with the reasons."""
from __future__ import annotations

import contextlib
import shutil
from collections.abc import Sequence

import nltk
import numpy as np
from nltk.translate import meteor as nltk_meteor

from ..names import METEOR_IMPLEMENTATIONS, METEOR_METHODS
from .ngrams import Tokens

COCO_METEOR = "coco-caption METEOR 1.5 (Java)"
NLTK_METEOR = "nltk"
METEOR_CHOICES = METEOR_METHODS


def _coco_meteor(references: Sequence[Sequence[Tokens]], candidates: Sequence[Tokens]) -> float:
    """METEOR 1.5 through pycocoevalcap's wrapper around the Java jar."""
    if shutil.which("java") is None:
        raise RuntimeError("no java executable on PATH")
    try:
        from pycocoevalcap.meteor.meteor import Meteor
    except ImportError:
        raise RuntimeError("pycocoevalcap is not installed (pip install 'captioner[coco]')") from None
    scorer = Meteor()
    try:
        value, _ = scorer.compute_score(
            {i: [" ".join(reference) for reference in image] for i, image in enumerate(references)},
            {i: [" ".join(candidate)] for i, candidate in enumerate(candidates)},
        )
    except (OSError, ValueError) as error:
        # The jar died. pycocoevalcap's __del__ would wait forever for the lock compute_score kept, then fail to
        # flush the unsent input; release the one and drop the other.
        scorer.lock.release()
        with contextlib.suppress(OSError):
            scorer.meteor_p.stdin.close()
        raise RuntimeError(f"the METEOR jar gave no score ({error})") from None
    return value


def _nltk_meteor(references: Sequence[Sequence[Tokens]], candidates: Sequence[Tokens]) -> float:
    """nltk's METEOR per image, averaged; needs the WordNet data, which this never downloads."""
    try:
        nltk.data.find("corpora/wordnet")
    except LookupError:
        raise RuntimeError("nltk's WordNet data is not installed") from None
    return float(np.mean([nltk_meteor(image, candidate) for image, candidate in zip(references, candidates)]))


_IMPLEMENTATIONS = dict(zip(METEOR_IMPLEMENTATIONS, ((COCO_METEOR, _coco_meteor), (NLTK_METEOR, _nltk_meteor)),
                            strict=True))


def meteor_score(
    references: Sequence[Sequence[Tokens]], candidates: Sequence[Tokens], method: str = "auto"
) -> tuple[float | None, str]:
    """METEOR and the implementation that computed it.

    "auto" tries coco-caption's METEOR 1.5, then nltk's, and returns (None, "skipped: <reasons>") when neither runs;
    "coco" or "nltk" forces one and raises RuntimeError when it cannot run; "none" skips METEOR.
    """
    if method == "none":
        return None, "skipped: meteor='none'"
    if method not in METEOR_CHOICES:
        raise ValueError(f"meteor must be one of {', '.join(METEOR_CHOICES)}, got {method!r}")
    if method != "auto":
        name, implementation = _IMPLEMENTATIONS[method]
        return implementation(references, candidates), name
    failures = []
    for name, implementation in _IMPLEMENTATIONS.values():
        try:
            return implementation(references, candidates), name
        except RuntimeError as error:
            failures.append(f"{name}: {error}")
    return None, f"skipped: {'; '.join(failures)}"
