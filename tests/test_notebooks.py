"""The notebooks, stored without outputs and executed here end to end at toy scale (nbclient), so they cannot rot.

Each notebook's first code cell holds its parameters as plain assignments; a test rewrites that cell to tiny settings
and runs the notebook in a python3 kernel from the notebooks folder, as a reader would.
"""
import ast
import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image

from captioner.data import Record
from tiny_flickr8k import write_coco_and_karpathy

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TOUR, FINETUNE = "attention_tour.ipynb", "finetune_coco.ipynb"
PRESETS = {"flickr8k-soft", "flickr8k-hard", "flickr8k-local-global"}


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def parameters_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return next(cell for cell in notebook.cells if cell.cell_type == "code")


def parameters(notebook: nbformat.NotebookNode) -> dict:
    """The values the parameters cell assigns; fails unless the cell is plain `NAME = literal` lines."""
    assignments = ast.parse(parameters_cell(notebook).source).body
    return {node.targets[0].id: ast.literal_eval(node.value) for node in assignments}


def with_parameters(notebook: nbformat.NotebookNode, **changes) -> nbformat.NotebookNode:
    """The notebook with its parameters cell rewritten, `changes` replacing the values of parameters it has."""
    settings = parameters(notebook)
    unknown = changes.keys() - settings.keys()
    assert not unknown, f"not parameters of the notebook: {sorted(unknown)}"
    settings.update(changes)
    parameters_cell(notebook).source = "\n".join(f"{name} = {value!r}" for name, value in settings.items())
    return notebook


def execute(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Runs every cell in a fresh kernel started in the notebooks folder; a cell that raises fails the test."""
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return notebook


def outputs(notebook: nbformat.NotebookNode) -> list:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def printed(notebook: nbformat.NotebookNode) -> str:
    """Everything the cells printed or returned as text."""
    return "".join(output.get("text", "") + output.get("data", {}).get("text/plain", "")
                   for output in outputs(notebook))


def images_shown(notebook: nbformat.NotebookNode) -> int:
    return sum("image/png" in output.get("data", {}) for output in outputs(notebook))


@pytest.mark.parametrize("name", [TOUR, FINETUNE])
def test_notebooks_are_stored_clean_with_a_parameters_cell_first(name):
    notebook = read(name)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [(cell.outputs, cell.execution_count) for cell in code] == [([], None)] * len(code)
    assert parameters(notebook)


def test_defaults_point_at_the_shipped_models_and_the_shared_flickr8k(flickr8k_dir):
    tour, finetune = parameters(read(TOUR)), parameters(read(FINETUNE))
    assert set(tour["MODELS"].values()) == PRESETS
    assert finetune["START_FROM"] in PRESETS
    for settings in (tour, finetune):
        assert (NOTEBOOKS / settings["FLICKR8K_DIR"]).resolve() == flickr8k_dir.resolve()


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, squeezenet_file) -> dict[str, str]:
    """A small untrained model folder for each attention kind, keyed as the tour's MODELS."""
    import keras

    from captioner.api import Captioner
    from captioner.model import show_attend_tell
    from captioner.vocab import Vocabulary

    vocabulary = Vocabulary.build(["a dog runs on the grass", "a man rides a red bike", "two children play"], 1)
    folders = {}
    for name, kind in (("soft", "soft"), ("hard", "hard"), ("local+global", "local-global")):
        keras.utils.set_random_seed(0)
        model = show_attend_tell(len(vocabulary), 512, (13, 13), attention=kind, attention_units=16, embedding_dim=16,
                                 units=16)
        folder = tmp_path_factory.mktemp("models") / kind
        Captioner(model, vocabulary, {"backbone": "squeezenet", "image_size": 224}).save(folder)
        folders[name] = str(folder)
    return folders


def test_attention_tour_draws_every_kind_of_attention(tiny_models, flickr8k_dir):
    images = 2
    notebook = execute(with_parameters(read(TOUR), MODELS=tiny_models, FLICKR8K_DIR=str(flickr8k_dir),
                                       IMAGES=images, BEAM_SIZE=2))
    text = printed(notebook)
    for kind in ("SoftAttention", "HardAttention", "LocalGlobalAttention"):
        assert kind in text
    # A heatmap strip per photo and kind, the coverage plot, and the side-by-side grid.
    assert images_shown(notebook) == 3 * images + 2


def test_finetune_runs_end_to_end_on_a_toy_flickr8k_without_coco(tiny_model_dir, flickr8k_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the kernel writes its split file
    run = tmp_path / "run"
    notebook = execute(with_parameters(
        read(FINETUNE), COCO_DIR=str(tmp_path / "no-coco"), FLICKR8K_DIR=str(flickr8k_dir),
        START_FROM=str(tiny_model_dir), TRAIN_IMAGES=16, DEV_IMAGES=8, EPOCHS=1, BATCH_SIZE=16, BEAM_SIZE=2,
        METEOR="none", CACHE_DIR=str(tmp_path / "cache"), RUN_DIR=str(run),
    ))
    text = printed(notebook)
    assert "No COCO in" in text and "using 16 training and 8 dev images" in text
    assert "'CIDEr': {'before':" in text
    assert images_shown(notebook) == 1  # progress.png
    assert (run / "best" / "model.keras").exists()
    assert json.loads((run / "dev" / "scores.json").read_text())["images"] == 8


def write_tiny_coco(root: Path, train: int, val: int) -> dict[str, str]:
    """A COCO 2017 layout with blank photos; returns each photo's path and split as the notebook should see it."""
    blanks = root.parent / "blank"
    blanks.mkdir()
    records = []
    for index, split in enumerate(["train"] * train + ["dev"] * val, start=1):
        Image.new("RGB", (32, 32)).save(blanks / f"{index}.jpg")
        records.append(Record(blanks / f"{index}.jpg", (f"photo number {index}",), split, str(index)))
    return write_coco_and_karpathy(records, root)


def test_finetune_reads_coco_when_there_is_one(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    expected = write_tiny_coco(tmp_path / "coco", train=3, val=2)
    notebook = with_parameters(read(FINETUNE), COCO_DIR=str(tmp_path / "coco"), TRAIN_IMAGES=None, DEV_IMAGES=None)
    # Only the data section: it ends where section 2 starts.
    end = next(index for index, cell in enumerate(notebook.cells)
               if cell.cell_type == "markdown" and cell.source.startswith("## 2."))
    notebook.cells = notebook.cells[:end] + [nbformat.v4.new_code_cell(
        "records, _ = read_dataset('karpathy', split_file, images_root)\n"
        "print(json.dumps({'source': source[0], 'images': {str(record.image): record.split for record in records}}))"
    )]
    found = json.loads(execute(notebook).cells[-1].outputs[0].text)
    assert found == {"source": "coco", "images": expected}
