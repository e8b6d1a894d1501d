"""Caption metrics computed the way the COCO caption evaluation toolkit (coco-caption, pycocoevalcap) computes them.

The metric functions take parallel lists: `references[i]` holds the tokenized reference captions of image i and
`candidates[i]` its tokenized generated caption. `score` takes raw captions keyed by image id, as coco-caption does.
"""
from __future__ import annotations

import contextlib
import math
import re
import shutil
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence

import nltk
import numpy as np
from nltk.tokenize import TreebankWordTokenizer
from nltk.translate import meteor as nltk_meteor

Tokens = Sequence[str]

COCO_METEOR = "coco-caption METEOR 1.5 (Java)"
NLTK_METEOR = "nltk"
METEOR_CHOICES = ("auto", "coco", "nltk", "none")

_treebank = TreebankWordTokenizer()

# Stanford's PTBTokenizer reads typographic quotes, dashes and ellipses as their ASCII counterparts.
_TYPOGRAPHIC = str.maketrans(
    {"\u2018": "`", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2014": " -- ", "\u2026": "..."}
)
# Stanford splits the period off any word but an abbreviation or acronym, anywhere in the caption; Treebank only
# splits off the caption's last period, and takes it from acronyms too ("d.c." -> "d.c", ".").
_WORD_BEFORE_PERIOD = re.compile(r"([\w'-]+(?:\.[\w'-]+)*)\.(?=[\"')\]}]*(?:\s|$))")
_ABBREVIATION = re.compile(r"(?:[a-z]\.)*[a-z]|mrs?|ms|dr|prof|st|mt|ave|jr|sr|vs|etc|ft", re.IGNORECASE)
# Treebank keeps a single quote that opens a word ("'stop"); Stanford reads it as a quotation mark unless it starts
# a contraction.
_OPENING_QUOTE = re.compile(r"(?<![\w'`])['`](?!(?:s|re|ve|ll|m|d|n|t|em|cause|tis|twas)\b)(?=\w)", re.IGNORECASE)
# coco-caption's list. Its bracket entries ("-LRB-", ...) never match the lower-cased tokens, so brackets survive
# as "-lrb-", "-rrb-" and so on; they are left out here for that reason.
_PUNCTUATION = frozenset({"''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";"})


def tokenize(caption: str) -> list[str]:
    """coco-caption's tokenization (Stanford PTBTokenizer, lower case, punctuation dropped) in pure Python.

    "A man's T-shirt (red)." -> ["a", "man", "'s", "t-shirt", "-lrb-", "red", "-rrb-"]
    """
    text = _OPENING_QUOTE.sub("` ", caption.translate(_TYPOGRAPHIC))
    # A kept abbreviation gets a period token after it too: Stanford ends a sentence that ends in one that way, and
    # the extra token (dropped below) stops Treebank from taking the abbreviation's own period.
    text = _WORD_BEFORE_PERIOD.sub(
        lambda match: f"{match[0]} ." if _ABBREVIATION.fullmatch(match[1]) else f"{match[1]} .", text
    )
    tokens = (token.lower() for token in _treebank.tokenize(text, convert_parentheses=True))
    return [token for token in tokens if token not in _PUNCTUATION]


def _ngram_counts(tokens: Tokens, max_n: int) -> Counter[tuple[str, ...]]:
    """How often each n-gram of 1 to max_n tokens occurs."""
    return Counter(
        tuple(tokens[start : start + n]) for n in range(1, max_n + 1) for start in range(len(tokens) - n + 1)
    )


def bleu(references: Sequence[Sequence[Tokens]], candidates: Sequence[Tokens], max_n: int = 4) -> list[float]:
    """Corpus BLEU-1..max_n as coco-caption computes it, with the reference length closest to each candidate's."""
    matches = [0] * max_n
    guesses = [0] * max_n
    candidate_length = reference_length = 0
    for image_references, candidate in zip(references, candidates, strict=True):
        clip = Counter()
        for reference in image_references:
            clip |= _ngram_counts(reference, max_n)
        for ngram, count in _ngram_counts(candidate, max_n).items():
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
        counts = [[_ngram_counts(reference, max_n) for reference in image] for image in references]
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
        candidate_vectors = self._tf_idf(_ngram_counts(candidate, self.max_n))
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


def meteor_score(
    references: Sequence[Sequence[Tokens]], candidates: Sequence[Tokens], method: str = "auto"
) -> tuple[float | None, str]:
    """METEOR and the implementation that computed it.

    "auto" tries coco-caption's METEOR 1.5, then nltk's, and returns (None, "skipped: <reasons>") when neither runs;
    "coco" or "nltk" forces one and raises RuntimeError when it cannot run; "none" skips METEOR.
    """
    implementations = {"coco": (COCO_METEOR, _coco_meteor), "nltk": (NLTK_METEOR, _nltk_meteor)}
    if method == "none":
        return None, "skipped: meteor='none'"
    if method not in METEOR_CHOICES:
        raise ValueError(f"meteor must be one of {', '.join(METEOR_CHOICES)}, got {method!r}")
    if method != "auto":
        name, implementation = implementations[method]
        return implementation(references, candidates), name
    failures = []
    for name, implementation in implementations.values():
        try:
            return implementation(references, candidates), name
        except RuntimeError as error:
            failures.append(f"{name}: {error}")
    return None, f"skipped: {'; '.join(failures)}"


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

    Both mappings are keyed by image id, as in coco-caption; scores are on its scales (0-1, CIDEr up to 10).
    `meteor` picks the METEOR implementation (see `meteor_score`); "METEOR-method" in the result names the one used.
    """
    _check_inputs(references, candidates)
    ids = list(candidates)
    reference_tokens = [[tokenize(caption) for caption in references[image_id]] for image_id in ids]
    candidate_tokens = [tokenize(candidates[image_id]) for image_id in ids]
    meteor_value, meteor_method = meteor_score(reference_tokens, candidate_tokens, meteor)
    bleu_scores = bleu(reference_tokens, candidate_tokens)
    return {
        **{f"BLEU-{n}": value for n, value in enumerate(bleu_scores, start=1)},
        "METEOR": meteor_value,
        "ROUGE-L": rouge_l(reference_tokens, candidate_tokens),
        "CIDEr": cider_d(reference_tokens, candidate_tokens),
        "METEOR-method": meteor_method,
    }
