"""Every command of the README's bash blocks, and its Python block, run at toy scale, so the README cannot drift.

`COMMANDS` maps each README command, as written, to how it runs here; a command added to or edited in the README
fails `test_every_readme_command_is_exercised` until it has an entry. The commands run from a workspace laid out as
the README assumes: the project folder is the working directory, with `photos/`, `photo.jpg`, `dataset_coco.json`
and so on in it, a tiny real Flickr8k at `../shared/data/flickr8k`, a tiny COCO at `~/data/coco` and the presets
pointing at a tiny untrained model. Training commands get tiny sizes appended (argparse lets a later flag win).
"""
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import captioner
from captioner.cli import main
from captioner.data import read_dataset
from captioner.training import RunKeeper
from test_train import CLI, TINY, TWO_LOGICAL_CPUS, free_port, read_log
from tiny_flickr8k import write_coco_and_karpathy, write_tiny_flickr8k

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ("captioner", "python", "pip", "apt-get")
COMMAND_LINE = re.compile(r"""([A-Za-z_]\w*=('[^']*'|"[^"]*"|\S+)\s+)*(%s)\s""" % "|".join(PROGRAMS))
ASSIGNMENT = re.compile(r"[A-Za-z_]\w*=.*")  # a word of a command line that sets a variable
PRESETS = ("flickr8k-soft", "flickr8k-hard", "flickr8k-local-global")


# --- reading the README -------------------------------------------------------------------------------------------
def without_comment(line: str) -> str:
    """The line up to its shell comment: a # that starts a word outside quotes."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()


def readme_commands(markdown: str) -> list[str]:
    """The command lines of the ```bash blocks (continuations joined, comments dropped), then each ```python block."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", markdown, re.M | re.S):
        for line in re.sub(r"\s*\\\n\s*", " ", block).splitlines():
            line = without_comment(line)
            if COMMAND_LINE.match(line + " "):
                commands.append(line)
    return commands + [block.strip() for block in re.findall(r"^```python\n(.*?)^```", markdown, re.M | re.S)]


def test_readme_commands_are_read_as_a_shell_reads_them():
    markdown = "\n".join([
        "Run `captioner caption` as below.", "```bash", "# a comment", "captioner caption a.jpg --out 'x # y'  # why",
        "A=1 B='{\"k\": 2}' \\", "  python -m pytest", "cd somewhere", "```", "```text", "pip install nothing", "```",
        "```python", "import captioner", "```",
    ])
    assert readme_commands(markdown) == [
        "captioner caption a.jpg --out 'x # y'", "A=1 B='{\"k\": 2}' python -m pytest", "import captioner"]


def split_command(command: str) -> tuple[dict[str, str], list[str]]:
    """A command line's leading VAR=value assignments, and the words of the command itself."""
    words = shlex.split(command)
    assignments = dict(word.split("=", 1) for word in itertools.takewhile(ASSIGNMENT.fullmatch, words))
    return assignments, words[len(assignments):]


# --- the workspace the commands run in ----------------------------------------------------------------------------
class Workspace:
    """Where the README's commands run; `once` runs one through its COMMANDS entry, at most once."""

    def __init__(self, root: Path, flickr8k_source: Path, model: Path):
        self.project, self.home, self.cache = root / "captioner", root / "home", root / "features"
        flickr8k = write_tiny_flickr8k(flickr8k_source, root / "shared" / "data" / "flickr8k", train=24, dev=4)
        records, _ = read_dataset("flickr8k", flickr8k)
        self.project.mkdir()
        write_coco_and_karpathy(records, self.home / "data" / "coco", self.project / "dataset_coco.json")
        photos = [record.image for record in records]
        for photo, place in zip(photos, ["path/to/photos/a.jpg", "path/to/photos/b.jpg", "photos/c.jpg",
                                         "photos/trip/d.jpg", "more/one.jpg", "photo.jpg"]):
            (self.project / place).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(photo, self.project / place)
        self.weights = root / "weights"
        self.weights.mkdir()
        for name in PRESETS:
            (self.weights / name).symlink_to(model, target_is_directory=True)
        (self.weights / "default").write_text("flickr8k-soft\n")
        self.done: set[str] = set()

    def argv(self, command: str) -> list[str]:
        """The command's arguments after the program name, with ~ expanded as the shell would, to our home."""
        _, words = split_command(command)
        return [str(self.home) + word[1:] if word.startswith("~/") else word for word in words[1:]]

    def tiny_training(self, epochs: int = 1, steps_per_epoch: int | None = None) -> list[str]:
        settings = {**TINY, "epochs": epochs, "cache": self.cache}
        if steps_per_epoch:
            settings["steps-per-epoch"] = steps_per_epoch
        return [item for name, value in settings.items() for item in (f"--{name}", str(value))]

    def once(self, command: str) -> None:
        if command not in self.done:
            COMMANDS[command](self, command)
            self.done.add(command)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, flickr8k_dir, tiny_model_dir):
    """The workspace, as the working directory and with its presets, for this module's tests."""
    space = Workspace(tmp_path_factory.mktemp("readme"), flickr8k_dir, tiny_model_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(space.project)
        patch.setenv("CAPTIONER_WEIGHTS", str(space.weights))
        yield space


def option(command: str, name: str) -> str:
    arguments = shlex.split(command)
    return arguments[arguments.index(name) + 1]


def outputs_of(folder: str) -> list[dict]:
    return [json.loads(line) for line in Path(folder, "captions.jsonl").read_text().splitlines()]


# --- how each command runs ----------------------------------------------------------------------------------------
def installs_and_captions(space: Workspace, command: str) -> None:
    """`pip install -e .` is what put this checkout on the path; the caption command runs for real."""
    install, caption = command.split(" && ")
    assert install == "pip install -e ." and Path(captioner.__file__).resolve().parents[1] == ROOT
    assert main(space.argv(caption)) == 0
    out = option(caption, "--out")
    assert sorted(record["image"] for record in outputs_of(out)) == ["a.jpg", "b.jpg"]
    assert Path(out, "index.html").exists() and len(list(Path(out, "heatmaps").iterdir())) == 2


def runs_in_ci(space: Workspace, command: str) -> None:
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()


def captions_with_and_without_its_options(space: Workspace, command: str) -> None:
    bare, full = re.sub(r" \[[^]]*\]", "", command), re.sub(r"\[([^]]*)\]", r"\1", command)
    out = option(command, "--out")
    for variant, heatmaps in ((bare, True), (full, False)):
        shutil.rmtree(out, ignore_errors=True)  # the same --out would skip the images as done
        assert main(space.argv(variant)) == 0
        assert sorted(record["image"] for record in outputs_of(out)) == ["c.jpg", "one.jpg", "trip/d.jpg"]
        assert Path(out, "heatmaps").exists() == heatmaps


def attends(space: Workspace, command: str) -> None:
    assert main(space.argv(command)) == 0
    with Image.open(option(command, "--out")) as strip:
        assert strip.format == "PNG"


def trains(space: Workspace, command: str) -> None:
    # The README's epochs of 60 self-critical batches become 2: the tiny run checks that they run, not how well.
    tiny = space.tiny_training(steps_per_epoch=2 if "--steps-per-epoch" in command else None)
    assert main(space.argv(command) + tiny) == 0
    assert Path(option(command, "--out"), "best", "model.keras").exists()


def trains_after(*first: str):
    """`trains`, once the commands whose runs this one starts from have run."""
    def run(space: Workspace, command: str) -> None:
        for prerequisite in first:
            space.once(prerequisite)
        trains(space, command)

    return run


def trains_until_stopped(space: Workspace, command: str) -> None:
    """Two epochs, stopped by Ctrl-C once the first is saved: a run for the `--resume` example to finish."""
    save_epoch = RunKeeper.on_epoch_end

    def save_then_stop(keeper, epoch, logs=None):
        save_epoch(keeper, epoch, logs)
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RunKeeper, "on_epoch_end", save_then_stop)
        assert main(space.argv(command) + space.tiny_training(epochs=2)) == 130
    state = json.loads(Path(option(command, "--out"), "state.json").read_text())
    assert state["epoch"] == 1


def resumes(space: Workspace, command: str) -> None:
    space.once(SOFT_RUN)
    assert main(space.argv(command)) == 0
    run = Path(option(command, "--out"))
    assert [row["epoch"] for row in read_log(run)] == ["1", "2"]
    assert json.loads((run / "state.json").read_text())["epoch"] == 2


def evaluates(space: Workspace, command: str) -> None:
    space.once(RESUMED_SOFT_RUN)
    assert main(space.argv(command)) == 0
    out = Path(option(command, "--out"))
    assert json.loads((out / "scores.json").read_text())["images"] == 4
    assert len(json.loads((out / "captions.json").read_text())) == 4


def trains_on_two_logical_cpus(space: Workspace, command: str) -> None:
    done = subprocess.run([sys.executable, "-c", TWO_LOGICAL_CPUS, *space.argv(command), *space.tiny_training()],
                          cwd=space.project, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mirrored strategy: 2 replicas" in done.stdout
    assert Path(option(command, "--out"), "best", "model.keras").exists()


def trains_on_two_local_workers(space: Workspace, command: str) -> None:
    """The README's cluster, its hosts replaced by free ports of this machine; one --out, as on shared storage."""
    [(name, tf_config)] = split_command(command)[0].items()
    cluster = json.loads(tf_config)["cluster"]
    cluster["worker"] = [f"localhost:{free_port()}" for _ in cluster["worker"]]
    workers = []
    for index in range(len(cluster["worker"])):
        task = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append(subprocess.Popen([sys.executable, "-c", CLI, *space.argv(command), *space.tiny_training()],
                                        cwd=space.project, env={**os.environ, name: task}, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    try:
        outputs = [worker.communicate(timeout=300) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-2000:]
        assert "multi-worker strategy: 2 replicas" in stdout
    assert Path(option(command, "--out"), "best", "model.keras").exists()


def benchmarks_quickly(space: Workspace, command: str) -> None:
    done = subprocess.run([sys.executable, *shlex.split(command)[1:], "--quick", "--only", "decode"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert any(json.loads(line)["name"] == "decode" for line in done.stdout.splitlines())


def executes(space: Workspace, block: str) -> None:
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["caption"].attention.shape[1:] == namespace["captioner"].grid_shape  # the toy presets' grid
    with Image.open("photo-attention.png") as strip:
        assert strip.format == "PNG"


SOFT_RUN = ("captioner train --dataset flickr8k --data ../shared/data/flickr8k --attention soft --out runs/soft "
            "--epochs 5")
RESUMED_SOFT_RUN = "captioner train --out runs/soft --resume"
FLICKR8K = "captioner train --dataset flickr8k --data ../shared/data/flickr8k"
ON_CIDER_AND_BLEU = ("--objective self-critical --bleu-weight 1 --learning-rate 1e-4 --batch-size 16 "
                     "--steps-per-epoch 60 --lr-patience 2 --select-by BLEU-4")
LITE_SOFT_XE_RUN = f"{FLICKR8K} --epochs 6 --steps-per-epoch 250 --early-stopping 10 --out runs/lite-soft-xe"
LITE_SOFT_SC_RUN = (f"{FLICKR8K} --init-from runs/lite-soft-xe/best {ON_CIDER_AND_BLEU} --epochs 17 --early-stopping 6 "
                    "--out runs/lite-soft-sc")
LITE_HARD_SC_RUN = (f"{FLICKR8K} --attention hard "
                    """--attention-options '{"gate": true, "inference": "expectation"}' """
                    "--init-from runs/lite-soft-sc/best --objective self-critical --bleu-weight 1 --learning-rate 2e-5 --batch-size 16 --steps-per-epoch 60 "
                    "--lr-patience 2 --select-by BLEU-4 --epochs 6 --early-stopping 4 --out runs/lite-hard-sc")
trains_from_lite_soft_xe, trains_from_lite_soft_sc = trains_after(LITE_SOFT_XE_RUN), trains_after(LITE_SOFT_SC_RUN)
COMMANDS = {
    "pip install -e . && captioner caption path/to/photos --out captions/": installs_and_captions,
    "apt-get install -y -qq default-jre-headless chromium chromium-driver && pip install -q -e '.[test,coco]' "
    "&& python -m pytest -q": runs_in_ci,
    "captioner caption photos/ more/one.jpg --out out/ --recursive --beam-size 3 --batch-size 32 "
    "[--model flickr8k-hard] [--no-heatmaps]": captions_with_and_without_its_options,
    'captioner attend photo.jpg --caption "a dog runs on the grass" --out dog.png': attends,
    SOFT_RUN: trains_until_stopped,
    RESUMED_SOFT_RUN: resumes,
    "captioner evaluate --model runs/soft/best --dataset flickr8k --data ../shared/data/flickr8k --split dev "
    "--beam-size 3 --out eval/": evaluates,
    "captioner train --dataset coco --data ~/data/coco --init-from flickr8k-soft --vocab-policy extend "
    "--out runs/coco": trains,
    "captioner train --dataset karpathy --data dataset_coco.json --images ~/data/coco --out runs/karpathy": trains,
    "captioner train --dataset flickr8k --data ../shared/data/flickr8k --encoder-blocks 2 "
    "--encoder-learning-rate 1e-4 --out runs/tuned": trains,
    "captioner train --dataset flickr8k --data ../shared/data/flickr8k --strategy mirrored --out runs/mirrored":
        trains_on_two_logical_cpus,
    """TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}' """
    "captioner train --dataset flickr8k --data ../shared/data/flickr8k --strategy multi-worker "
    "--out runs/multi-worker": trains_on_two_local_workers,
    "python bench/run.py": benchmarks_quickly,
    LITE_SOFT_XE_RUN: trains,
    LITE_SOFT_SC_RUN: trains_from_lite_soft_xe,
    LITE_HARD_SC_RUN: trains_from_lite_soft_sc,
    """from captioner import Captioner

captioner = Captioner.from_preset()                # the best shipped model; or "flickr8k-soft", a folder, ...
caption = captioner.caption(["photo.jpg"], beam_size=3)[0]
caption.text, caption.words, caption.score         # "a dog runs through the grass", [...], -0.61
caption.attention.shape                            # (words, 7, 7): where it looked for each word
captioner.heatmap("photo.jpg", caption).save("photo-attention.png")""": executes,
}
SLOW = {trains, trains_until_stopped, resumes, evaluates, trains_on_two_logical_cpus, trains_on_two_local_workers,
        benchmarks_quickly, trains_from_lite_soft_xe, trains_from_lite_soft_sc}


def test_every_readme_command_is_exercised():
    assert set(readme_commands((ROOT / "README.md").read_text())) == set(COMMANDS)


@pytest.mark.parametrize("command", [
    pytest.param(command, marks=[pytest.mark.slow] if run in SLOW else [], id=command.splitlines()[0])
    for command, run in COMMANDS.items()])
def test_readme_command_runs_at_toy_scale(workspace, command):
    workspace.once(command)
