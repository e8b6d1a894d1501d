"""`captioner caption`, `captioner attend` and `captioner --help`, as a user runs them."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from captioner.cli import main

PANEL = 224  # strip()'s default panel size


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["captioner", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(path)
    return path


def test_help_answers_without_importing_tensorflow():
    check = (
        "import sys\n"
        "from captioner.cli import main\n"
        "for argv in (['--help'], ['caption', '--help'], ['attend', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, exit.code\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "captioner caption" in done.stdout and "--recursive" in done.stdout and "--caption" in done.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["{tmp}/nowhere.jpg", "--out", "{tmp}/out"], "nowhere.jpg: no such file or folder"),
        (["{photo}", "--out", "{tmp}/out", "--model", "{tmp}/no-model"], "no-model is not a captioner model folder"),
        (["{photo}", "--out", "{photo}"], "photo.jpg exists and is not a folder"),
        (["{photo}", "--out", "{tmp}/out", "--panel-size", "0"], "panel size must be at least 1 pixel, got 0"),
    ],
    ids=["missing-path", "missing-model", "out-is-a-file", "no-panel"],
)
def test_caption_checks_its_inputs_in_one_line_before_any_work(tmp_path, photo, arguments, message):
    done = run("caption", *(argument.format(tmp=tmp_path, photo=photo) for argument in arguments))
    assert done.returncode == 2
    # TensorFlow 2.21 logs a few lines at import whatever TF_CPP_MIN_LOG_LEVEL says (tensorflow#100442).
    ours = [line for line in done.stderr.splitlines() if line.startswith("captioner")]
    assert len(ours) == 1 and ours[0].startswith("captioner caption: ") and message in ours[0]
    assert done.stderr.endswith(ours[0] + "\n") and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_attend_writes_the_photo_and_one_panel_per_word(tmp_path, photo, tiny_model_dir):
    out = tmp_path / "attention.png"
    done = run("attend", str(photo), "--caption", "a dog runs", "--model", str(tiny_model_dir), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{out}: a dog runs")
    with Image.open(out) as strip:
        assert strip.format == "PNG"
        assert strip.width == PANEL * 4  # the photo, then "a", "dog", "runs"


def test_caption_command_writes_captions_only_with_no_heatmaps(tmp_path, photo, tiny_model_dir, capsys):
    out = tmp_path / "out"
    argv = ["caption", str(photo), "--out", str(out), "--model", str(tiny_model_dir), "--beam-size", "1",
            "--no-heatmaps"]
    assert main(argv) == 0
    [record] = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    assert record["image"] == "photo.jpg"
    assert sorted(path.name for path in out.iterdir()) == ["captions.jsonl", "errors.jsonl", "model.json"]
    assert capsys.readouterr().out.startswith("1 captioned, 0 skipped as done, 0 errors")


def test_attend_names_an_image_it_cannot_read(tmp_path, tiny_model_dir, capsys):
    missing = tmp_path / "missing.jpg"
    assert main(["attend", str(missing), "--caption", "a dog", "--model", str(tiny_model_dir)]) == 2
    assert capsys.readouterr().err == f"captioner attend: {missing}: no such file\n"


def captions_in(out):
    return [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]


def test_caption_decodes_up_to_the_models_length_or_max_length(tmp_path, photo, tiny_model_dir):
    """The tiny model was saved decoding up to 8 tokens; untrained, it never writes <end>."""
    for out, extra, words in (("own", [], 8), ("short", ["--max-length", "3"], 3)):
        argv = ["caption", str(photo), "--out", str(tmp_path / out), "--model", str(tiny_model_dir), "--no-heatmaps"]
        assert main(argv + extra) == 0
        assert [len(record["words"]) for record in captions_in(tmp_path / out)] == [words]


@pytest.fixture
def other_model_dir(tmp_path, tiny_model_dir):
    """The tiny model with one weight changed: another model."""
    from captioner.api import Captioner

    other = Captioner.load(tiny_model_dir)
    bias = other.model.decoder.vocabulary_projection.bias
    bias.assign(np.asarray(bias) + 1)
    other.save(tmp_path / "other")
    return tmp_path / "other"


def test_caption_refuses_an_out_begun_by_another_model(tmp_path, photo, tiny_model_dir, other_model_dir, capsys):
    out = tmp_path / "out"

    def caption(model):
        return main(["caption", str(photo), "--out", str(out), "--model", str(model), "--no-heatmaps"])

    assert caption(tiny_model_dir) == 0
    capsys.readouterr()
    assert caption(other_model_dir) == 2
    assert capsys.readouterr().err == (f"captioner caption: {out} holds captions by {tiny_model_dir}, and this run's "
                                       f"model is {other_model_dir}: caption into another --out, or with that model\n")
    shutil.copytree(tiny_model_dir, tmp_path / "copy")  # the same model, wherever it is
    assert caption(tmp_path / "copy") == 0
    assert capsys.readouterr().out.startswith("0 captioned, 1 skipped as done")
    assert len(captions_in(out)) == 1


def test_an_out_begun_before_models_were_recorded_goes_on(tmp_path, photo, tiny_model_dir, capsys):
    out = tmp_path / "out"
    argv = ["caption", str(photo), "--out", str(out), "--model", str(tiny_model_dir), "--no-heatmaps"]
    assert main(argv) == 0
    (out / "model.json").unlink()
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("0 captioned, 1 skipped as done")
    assert json.loads((out / "model.json").read_text())["model"] == str(tiny_model_dir)



# Parses the command line, and whatever happens says which of TensorFlow and Keras were imported by then.
PARSE_AND_TELL_IMPORTS = """import sys
from captioner.cli import main
try:
    main(sys.argv[1:])
finally:
    print(*sorted({"tensorflow", "keras"} & set(sys.modules)))
"""


@pytest.mark.parametrize("argv", [
    ["train", "--backbone", "efficientnet-lite9"],
    ["train", "--attention", "local"],
    ["train", "--score", "cosine"],
    ["train", "--dataset", "flickr9k"],
    ["train", "--objective", "self-critic"],
    ["train", "--vocab-policy", "grow"],
    ["train", "--strategy", "mirror"],
    ["train", "--select-by", "CIDEr-D"],
    ["evaluate", "--data", "data", "--out", "out", "--dataset", "flickr9k"],
    ["evaluate", "--data", "data", "--out", "out", "--dataset", "flickr8k", "--meteor", "java"],
], ids=lambda argv: f"{argv[0]} {argv[-2]}")
def test_a_misspelt_choice_is_refused_as_the_command_line_is_parsed_without_loading_tensorflow(tmp_path, argv):
    done = subprocess.run([sys.executable, "-c", PARSE_AND_TELL_IMPORTS, *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert f"captioner {argv[0]}: error: argument {argv[-2]}: invalid choice: '{argv[-1]}'" in done.stderr
    assert done.stdout.strip() == ""


def test_the_command_lines_choices_are_the_registries_names():
    from captioner import names
    from captioner.attention import ATTENTIONS, SCORES
    from captioner.encoder import BACKBONES
    from captioner.metrics import METEOR_CHOICES

    assert names.ATTENTIONS == tuple(ATTENTIONS)
    assert names.SCORES == tuple(SCORES)
    assert names.BACKBONES == tuple(BACKBONES)
    assert names.METEOR_METHODS == METEOR_CHOICES
