"""Caption metrics: hand-derived values, and agreement with pycocoevalcap (coco-caption) on real Flickr8k captions
and adversarial ones."""
import importlib.util
import math
import os
import shutil
from collections import defaultdict

import nltk
import pytest

from captioner.metrics import COCO_METEOR, bleu, cider_d, meteor_score, rouge_l, score, tokenize
from ptb_cases import adversarial_captions, every_character


def words(caption: str) -> list[str]:
    return caption.split()


# Expected tokens are Stanford PTBTokenizer's output (-lowerCase) without coco-caption's punctuation list.
@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("A man's dog isn't running.", "a man 's dog is n't running"),
        ("Two dogs play in the park. One is brown.", "two dogs play in the park one is brown"),
        ("A man's T-shirt (red).", "a man 's t-shirt -lrb- red -rrb-"),
        ("The U.S. flag waves over Mr. Smith's house!", "the u.s. flag waves over mr. smith 's house"),
        ("A crowd in Washington D.C.", "a crowd in washington d.c."),
        ("Children cannot wait, gonna play; we'll see?", "children can not wait gon na play we 'll see"),
        ("A man\u2019s dog isn\u2019t \u201chappy\u201d \u2014 ok\u2026", "a man 's dog is n't happy ok"),
        ("It costs $5.50 or 1,000 dollars & more.", "it costs $ 5.50 or 1,000 dollars & more"),
        ("Don't 'quote' me, said the dogs' owner.", "do n't quote me said the dogs owner"),
        ("A dog in a   field.\n", "a dog in a field"),
        ("...", ""),
        ("Wow!! Is it a dog?! Yes..", "wow !! is it a dog ?! yes"),
        ("A slip 'n' slide :)", "a slip 'n' slide :-rrb-"),
    ],
)
def test_tokenize_matches_stanford_ptb_tokenizer(caption, expected):
    assert tokenize(caption) == words(expected)


def test_identical_captions_score_one():
    references = [[words("a dog runs across the green grass")]]
    candidates = [words("a dog runs across the green grass")]
    assert bleu(references, candidates) == pytest.approx([1, 1, 1, 1])
    assert rouge_l(references, candidates) == 1


def test_bleu_partial_overlap():
    # Matches: 5 of 6 unigrams, 3 of 5 bigrams, 1 of 4 trigrams, 0 of 3 4-grams; equal lengths, so no brevity penalty.
    bleu1, bleu2, bleu3, bleu4 = bleu([[words("the cat is on the mat")]], [words("the cat sat on the mat")])
    assert bleu1 == pytest.approx(5 / 6)
    assert bleu2 == pytest.approx(math.sqrt(5 / 6 * 3 / 5))
    assert bleu3 == pytest.approx(0.5)
    # coco-caption's smoothing constant keeps a zero precision just above zero.
    assert 0 < bleu4 < 1e-3


def test_bleu_clips_repeated_words():
    assert bleu([[words("the cat")]], [words("the the the")], max_n=1) == pytest.approx([1 / 3])


def test_bleu_brevity_penalty():
    # Two words against six: every n-gram matches, the penalty is exp(1 - 6/2).
    assert bleu([[words("the cat sat on the mat")]], [words("the cat")], max_n=2) == pytest.approx([math.exp(-2)] * 2)


def test_bleu_takes_the_closest_reference_length_and_the_shorter_on_ties():
    references = [[words("a dog runs fast"), words("a big dog runs very fast")]]
    assert bleu(references, [words("a dog runs very fast")], max_n=1) == pytest.approx([1])


def test_bleu_is_corpus_level():
    references = [[words("a dog runs")], [words("the bird")]]
    candidates = [words("a dog runs"), words("a cat")]
    # 3 of 5 unigrams over the corpus (a mean of sentence scores would give 0.5); 5 words against 5, no penalty.
    assert bleu(references, candidates, max_n=1) == pytest.approx([3 / 5])


def test_rouge_l_weights_recall_by_beta():
    # LCS "a dog": precision 2/2, recall 2/4; F = (1 + 1.2^2) P R / (R + 1.2^2 P).
    assert rouge_l([[words("a big dog runs")]], [words("a dog")]) == pytest.approx(2.44 * 0.5 / (0.5 + 1.44))


def test_rouge_l_uses_best_precision_and_recall_then_averages_images():
    references = [[words("a dog"), words("a dog on the grass")], [words("a cat")]]
    assert rouge_l(references, [words("a dog"), words("the bird")]) == pytest.approx((1 + 0) / 2)


def test_cider_d_hand_computed():
    references = [[words("a dog runs")], [words("a cat sleeps")]]
    # "a" is in both images, so its idf is 0; each other n-gram has idf log 2. An exact copy then matches uni-, bi-
    # and trigrams with cosine 1 and has no 4-grams: 10 * (1 + 1 + 1 + 0) / 4.
    assert cider_d(references, [words("a dog runs"), words("a cat sleeps")]) == pytest.approx(7.5)
    # Swapped captions share only "a", which weighs nothing.
    assert cider_d(references, [words("a cat sleeps"), words("a dog runs")]) == 0
    # One extra unseen word: cosines 2/sqrt(6) (uni, bi), 1/sqrt(2) (tri), 0 (4-grams), and a one-word length
    # penalty exp(-1 / (2 * 6^2)).
    extra_word = 10 * math.exp(-1 / 72) * (2 * 2 / math.sqrt(6) + 1 / math.sqrt(2)) / 4
    candidates = [words("a dog runs fast"), words("a cat sleeps")]
    assert cider_d(references, candidates) == pytest.approx((extra_word + 7.5) / 2)


def test_cider_d_is_zero_on_a_single_image():
    assert cider_d([[words("a dog runs")]], [words("a dog runs")]) == 0


def test_score_keys_and_scales():
    references = {"img1": ["A dog runs across the green grass."], "img2": ["A cat sleeps on a red sofa."]}
    candidates = {"img1": "a dog runs across the green grass", "img2": "A cat sleeps on a red sofa!"}
    # Identical after tokenization; 4-grams exist and "a" (in both images) is the only n-gram without idf weight.
    assert score(references, candidates, meteor="none") == {
        "BLEU-1": pytest.approx(1),
        "BLEU-2": pytest.approx(1),
        "BLEU-3": pytest.approx(1),
        "BLEU-4": pytest.approx(1),
        "METEOR": None,
        "ROUGE-L": 1,
        "CIDEr": pytest.approx(10),
        "METEOR-method": "skipped: meteor='none'",
    }


def test_score_names_ids_on_one_side_only():
    with pytest.raises(ValueError, match=r"references but no candidate: 'b'.*a candidate but no references: 'c'"):
        score({"a": ["a dog"], "b": ["a cat"]}, {"a": "a dog", "c": "a bird"}, meteor="none")


@pytest.mark.parametrize(
    ("references", "candidates", "message"),
    [
        ({}, {}, "no captions"),
        ({1: "a dog"}, {1: "a dog"}, "references for image 1 must be a non-empty list"),
        ({1: []}, {1: "a dog"}, "references for image 1 must be a non-empty list"),
        ({1: ["a dog"]}, {1: ["a dog"]}, "candidate for image 1 must be one caption string"),
    ],
)
def test_score_rejects_malformed_captions(references, candidates, message):
    with pytest.raises(ValueError, match=message):
        score(references, candidates, meteor="none")


def test_score_rejects_an_unknown_meteor_choice():
    with pytest.raises(ValueError, match="meteor must be one of auto, coco, nltk, none"):
        score({1: ["a dog"]}, {1: "a dog"}, meteor="java")


@pytest.fixture
def no_wordnet(monkeypatch, tmp_path):
    """nltk looks for its data in an empty directory only."""
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])


def test_meteor_is_skipped_with_reasons_without_java_or_wordnet(monkeypatch, tmp_path, no_wordnet):
    monkeypatch.setenv("PATH", str(tmp_path))
    value, method = meteor_score([[words("a dog")]], [words("a dog")])
    assert value is None
    assert method == (
        "skipped: coco-caption METEOR 1.5 (Java): no java executable on PATH; "
        "nltk: nltk's WordNet data is not installed"
    )
    with pytest.raises(RuntimeError, match="no java executable on PATH"):
        meteor_score([[words("a dog")]], [words("a dog")], method="coco")
    with pytest.raises(RuntimeError, match="WordNet data is not installed"):
        meteor_score([[words("a dog")]], [words("a dog")], method="nltk")


def test_meteor_falls_back_when_the_jar_fails(monkeypatch, tmp_path, no_wordnet):
    broken_java = tmp_path / "java"
    broken_java.write_text("#!/bin/sh\nexit 1\n")
    broken_java.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    value, method = meteor_score([[words("a dog")]], [words("a dog")])
    assert value is None
    assert method.startswith("skipped: coco-caption METEOR 1.5 (Java): ")
    assert method.endswith("; nltk: nltk's WordNet data is not installed")


def require_coco_toolkit() -> None:
    """pycocoevalcap and Java are optional locally; CI installs both, so there their absence is a failure."""
    found = {"pycocoevalcap": importlib.util.find_spec("pycocoevalcap"), "java": shutil.which("java")}
    missing = [name for name, location in found.items() if location is None]
    if missing:
        message = f"{' and '.join(missing)} missing: install the 'coco' extra and a Java runtime"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def flickr8k_pairs(flickr8k_dir):
    """300 images: references are captions 1-4, the candidate is caption 0, of the next image for every third."""
    captions = defaultdict(list)
    for line in (flickr8k_dir / "Flickr8k.token.txt").read_text().splitlines():
        name, caption = line.split("\t")
        captions[name.split("#")[0]].append(caption)
    images = list(captions)[:300]
    references = {image: captions[image][1:] for image in images}
    neighbours = dict(zip(images, images[1:] + images[:1]))
    candidates = {image: captions[neighbours[image] if i % 3 == 0 else image][0] for i, image in enumerate(images)}
    return references, candidates


@pytest.fixture(scope="module")
def coco_caption(flickr8k_pairs):
    """pycocoevalcap's own pipeline, Java tokenizer included: the tokenized captions and the scores."""
    require_coco_toolkit()
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    references, candidates = flickr8k_pairs
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({image: [{"caption": caption} for caption in refs] for image, refs in references.items()})
    res = tokenizer.tokenize({image: [{"caption": caption}] for image, caption in candidates.items()})
    bleu_scores, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"BLEU-{n}": value for n, value in enumerate(bleu_scores, start=1)}
    scores["ROUGE-L"], _ = Rouge().compute_score(gts, res)
    scores["CIDEr"], _ = Cider().compute_score(gts, res)
    scores["METEOR"], _ = Meteor().compute_score(gts, res)
    return gts, res, scores


@pytest.fixture(scope="module")
def ours(flickr8k_pairs):
    require_coco_toolkit()
    return score(*flickr8k_pairs)


def test_tokenize_agrees_with_coco_caption_on_flickr8k(flickr8k_pairs, coco_caption):
    references, candidates = flickr8k_pairs
    gts, res, _ = coco_caption
    assert {image: [" ".join(tokenize(caption)) for caption in refs] for image, refs in references.items()} == gts
    assert {image: [" ".join(tokenize(caption))] for image, caption in candidates.items()} == res


@pytest.mark.slow
def test_tokenize_agrees_with_the_java_ptb_tokenizer(flickr8k_dir):
    """Every Flickr8k reference, seeded adversarial captions and every character of the BMP, through coco-caption's
    own PTBTokenizer (one JVM, one caption per line) and through `tokenize`."""
    require_coco_toolkit()
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    references = [line.split("\t")[1] for line in (flickr8k_dir / "Flickr8k.token.txt").read_text().splitlines()]
    vocabulary = sorted({word for caption in references for word in caption.split()})
    captions = references + adversarial_captions(vocabulary, 5000) + every_character()
    # The lexer reads on past the end of a line ("the letter A." gives its period up before a line that starts with
    # "The"), so a line it cannot read on into follows each caption: each gets the tokens `tokenize` gives it alone.
    separator = "~"
    lines = [{"caption": line} for caption in captions for line in (caption, separator)]
    java = PTBTokenizer().tokenize({"captions": lines})["captions"]
    assert java[1::2] == [separator] * len(captions), "Java's output lines are out of step with the captions"
    mismatches = [
        f"{caption!r}: Java {expected!r}, tokenize {ours!r}"
        for caption, expected in zip(captions, java[::2])
        if (ours := " ".join(tokenize(caption))) != expected
    ]
    assert not mismatches, f"{len(mismatches)} of {len(captions)} captions differ:\n" + "\n".join(mismatches[:20])


@pytest.mark.parametrize("metric", ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr"])
def test_scores_agree_with_coco_caption_on_flickr8k(ours, coco_caption, metric):
    assert ours[metric] == pytest.approx(coco_caption[2][metric])


def test_meteor_is_coco_caption_meteor_on_flickr8k(ours, coco_caption):
    assert ours["METEOR-method"] == COCO_METEOR
    assert ours["METEOR"] == coco_caption[2]["METEOR"]
