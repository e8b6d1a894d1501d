"""Evaluation by real decoding on a tiny real Flickr8k subset: the command's files, one decoding per image, and
captions scored against their own image's references."""
import json
import subprocess
import sys

import numpy as np
import pytest

from captioner.api import Caption, Captioner
from captioner.cli import main
from captioner.data import read_dataset
from captioner.evaluate import METRICS, evaluate
from tiny_flickr8k import write_tiny_flickr8k

DEV_IMAGES = 5


@pytest.fixture(scope="module")
def data(tmp_path_factory, flickr8k_dir):
    return write_tiny_flickr8k(flickr8k_dir, tmp_path_factory.mktemp("data") / "flickr8k", train=2, dev=DEV_IMAGES)


@pytest.fixture(scope="module")
def dev(data):
    records, _ = read_dataset("flickr8k", data)
    return [record for record in records if record.split == "dev"]


@pytest.mark.slow
def test_evaluate_command_writes_scores_and_coco_results(tiny_model_dir, data, dev, tmp_path):
    out = tmp_path / "scores"
    command = ["evaluate", "--model", str(tiny_model_dir), "--dataset", "flickr8k", "--data", str(data),
               "--split", "dev", "--beam-size", "2", "--meteor", "none", "--out", str(out)]
    script = "from captioner.cli import main; import sys; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", script, *command], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert all(name in done.stdout for name in METRICS)

    scores = json.loads((out / "scores.json").read_text())
    assert set(METRICS) | {"METEOR-method", "model", "split", "beam_size", "images"} <= scores.keys()
    assert (scores["model"], scores["split"], scores["beam_size"], scores["images"]) == \
        (str(tiny_model_dir), "dev", 2, DEV_IMAGES)
    assert all(0 <= scores[name] <= 1 for name in METRICS if name not in ("METEOR", "CIDEr"))
    assert scores["METEOR"] is None and scores["METEOR-method"].startswith("skipped")

    results = json.loads((out / "captions.json").read_text())
    assert [set(result) for result in results] == [{"image_id", "caption"}] * DEV_IMAGES
    assert [result["image_id"] for result in results] == [record.image_id for record in dev]
    assert all(isinstance(result["caption"], str) for result in results)


def test_evaluate_command_decodes_up_to_max_length(tiny_model_dir, data, tmp_path, capsys):
    """The tiny model was saved decoding up to 8 tokens; untrained, it never writes <end>."""
    command = ["evaluate", "--model", str(tiny_model_dir), "--dataset", "flickr8k", "--data", str(data),
               "--meteor", "none", "--limit", "2"]
    for out, extra, words in (("own", [], 8), ("short", ["--max-length", "3"], 3)):
        assert main(command + ["--out", str(tmp_path / out), *extra]) == 0
        assert json.loads((tmp_path / out / "scores.json").read_text())["max_length"] == words
        results = json.loads((tmp_path / out / "captions.json").read_text())
        assert [len(result["caption"].split()) for result in results] == [words, words]


def test_evaluate_decodes_each_image_exactly_once(tiny_model_dir, dev, monkeypatch):
    captioner = Captioner.load(tiny_model_dir)
    encoded, decoded = [], []
    encode, decode = captioner.encode, captioner.decode
    monkeypatch.setattr(captioner, "encode", lambda pixels: encoded.append(len(pixels)) or encode(pixels))
    monkeypatch.setattr(captioner, "decode", lambda features, k: decoded.append(len(features)) or decode(features, k))

    scores, captions = evaluate(captioner, dev, beam_size=2, batch_size=2, meteor="none", progress=False)
    assert sum(encoded) == sum(decoded) == len(captions) == DEV_IMAGES
    assert len(decoded) == 3  # batches of 2, 2 and 1

    encoded.clear(), decoded.clear()
    features = np.zeros((DEV_IMAGES, 169, 512), np.float32)
    evaluate(captioner, dev, beam_size=2, batch_size=4, features=features, meteor="none", progress=False)
    assert (encoded, decoded) == ([], [4, 1])


def test_each_caption_is_scored_against_its_own_images_references(dev):
    """A decoder that answers each image with its first reference scores perfectly, which it would not if the
    captions were paired with other images' references."""

    class Echo:
        def decode(self, features, beam_size):
            rows = features[:, 0, 0].astype(int)  # each image's features carry its index
            return [Caption(dev[row].captions[0], [], 0.0, np.zeros(0)) for row in rows]

    features = np.arange(DEV_IMAGES, dtype=np.float32)[:, None, None] * np.ones((1, 4, 8), np.float32)
    scores, captions = evaluate(Echo(), dev, beam_size=1, batch_size=2, features=features, meteor="none",
                                progress=False)
    assert captions == [record.captions[0] for record in dev]
    assert scores["BLEU-4"] == pytest.approx(1.0) and scores["ROUGE-L"] == pytest.approx(1.0)


@pytest.mark.parametrize("change, message", [
    ({"--split": "test"}, "no test images"),
    ({"--model": "no/such/model"}, "is not a captioner model folder"),
])
def test_evaluate_command_errors_are_one_line(tiny_model_dir, data, tmp_path, capsys, change, message):
    options = {"--model": str(tiny_model_dir), "--dataset": "flickr8k", "--data": str(data), "--split": "dev",
               "--out": str(tmp_path), **change}
    assert main(["evaluate", *(item for pair in options.items() for item in pair)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
