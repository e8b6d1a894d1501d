"""`caption_folder`: each image captioned once, each bad one reported once, reruns that go on where a run stopped."""
import builtins
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from captioner.api import Captioner
from captioner.folder import caption_folder, find_images, output_stem
from test_preprocess import png_header_only, truncated_jpeg

PANEL = 160  # caption_folder's default panel size

BAD_FILES = {
    "bomb.png": "decompression bomb: 400000000 pixels",
    "empty.png": "empty file",
    "locked.jpg": "cannot read: permission denied",
    "text.jpg": "not an image",
    "truncated.jpg": "truncated or corrupt image",
}


@pytest.fixture(scope="module")
def captioner(tiny_model_dir) -> Captioner:
    return Captioner.load(tiny_model_dir)


def save_photo(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def photos(tmp_path) -> Path:
    """photos/dir1 and photos/dir2 both hold a photo.jpg; dir1 also has a sub-folder, a text file and a hidden file."""
    root = tmp_path / "photos"
    save_photo(root / "dir1" / "photo.jpg", 0)
    save_photo(root / "dir1" / "beach.png", 1)
    save_photo(root / "dir1" / "sub" / "deep.jpg", 2)
    save_photo(root / "dir1" / ".hidden.jpg", 3)
    (root / "dir1" / "notes.txt").write_text("not a photo")
    save_photo(root / "dir2" / "photo.jpg", 4)
    return root


@pytest.fixture
def bad(tmp_path, monkeypatch) -> Path:
    """A folder with one file of each kind that cannot be captioned."""
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "text.jpg").write_text("hello, I am text\n")
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(truncated_jpeg())
    (folder / "bomb.png").write_bytes(png_header_only(20_000, 20_000))
    locked = folder / "locked.jpg"
    save_photo(locked, 5)
    # Tests run as root, who reads through file modes, so play the kernel's part and refuse this one file.
    real_open = builtins.open

    def refusing_open(file, *args, **kwargs):
        if isinstance(file, (str, Path)) and Path(file) == locked:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    return folder


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_good_images_are_captioned_and_bad_ones_reported_once_each(tmp_path, photos, bad, captioner, capsys):
    inputs = [photos / "dir1", photos / "dir2", bad]
    out = tmp_path / "out"

    assert caption_folder(inputs, out, model=captioner, batch_size=2) == 1

    captions = read_jsonl(out / "captions.jsonl")
    assert [record["image"] for record in captions] == ["beach.png", "dir1/photo.jpg", "dir2/photo.jpg"]
    for record in captions:
        assert set(record) == {"image", "caption", "words", "score"}
        assert record["caption"] == " ".join(record["words"])
        assert isinstance(record["score"], float) and record["score"] <= 0

    errors = read_jsonl(out / "errors.jsonl")
    assert errors == [{"image": name, "error": reason} for name, reason in BAD_FILES.items()]

    heatmaps = sorted((out / "heatmaps").iterdir())
    assert [path.name for path in heatmaps] == ["beach.png.png", "dir1__photo.jpg.png", "dir2__photo.jpg.png"]
    for path, record in zip(heatmaps, captions):
        with Image.open(path) as strip:
            panels = 1 + len(record["words"])
            assert strip.width == PANEL * -(-panels // -(-panels // 6))  # rows of at most 6, evenly filled
    assert heatmaps[1].read_bytes() != heatmaps[2].read_bytes()  # two different photos of the same name

    page = (out / "index.html").read_text()
    assert page.count('class="entry"') == 3
    positions = [page.index(f'alt="{record["image"]}"') for record in captions]
    assert positions == sorted(positions)

    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("3 captioned, 0 skipped as done, 5 errors")

    before = snapshot(out)
    assert caption_folder(inputs, out, model=captioner, batch_size=2) == 1
    assert snapshot(out) == before, "a rerun must not add or change anything"
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("0 captioned, 3 skipped as done, 5 errors")


def test_recursive_names_are_relative_paths_and_out_inside_the_input_is_not_scanned(photos, captioner, capsys):
    out = photos / "results"
    assert caption_folder([photos], out, model=captioner, recursive=True, batch_size=3) == 0

    names = [record["image"] for record in read_jsonl(out / "captions.jsonl")]
    assert names == ["dir1/beach.png", "dir1/photo.jpg", "dir1/sub/deep.jpg", "dir2/photo.jpg"]
    assert (out / "errors.jsonl").read_bytes() == b""

    assert caption_folder([photos], out, model=captioner, recursive=True) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("0 captioned, 4 skipped as done, 0 errors")


def test_an_interrupted_run_is_finished_by_a_rerun_without_duplicates(tmp_path, photos, bad, captioner, monkeypatch):
    inputs, out = [photos, bad], tmp_path / "out"
    stream = captioner.stream

    def interrupted_stream(*args, **kwargs):
        for count, result in enumerate(stream(*args, **kwargs)):
            if count == 3:
                raise KeyboardInterrupt
            yield result

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(captioner, "stream", interrupted_stream)
        caption_folder(inputs, out, model=captioner, recursive=True, batch_size=2)
    assert len(read_jsonl(out / "captions.jsonl")) == 3

    assert caption_folder(inputs, out, model=captioner, recursive=True, batch_size=2) == 1
    names = [record["image"] for record in read_jsonl(out / "captions.jsonl")]
    assert names == ["dir1/beach.png", "dir1/photo.jpg", "dir1/sub/deep.jpg", "dir2/photo.jpg"]
    assert len(read_jsonl(out / "errors.jsonl")) == len(BAD_FILES)
    assert len(list((out / "heatmaps").iterdir())) == 4
    assert (out / "index.html").read_text().count('class="entry"') == 4


def test_a_line_cut_short_by_a_kill_is_redone(tmp_path, photos, captioner):
    out = tmp_path / "out"
    assert caption_folder([photos / "dir1"], out, model=captioner, heatmaps=False) == 0
    complete = (out / "captions.jsonl").read_bytes()
    lines = complete.splitlines(keepends=True)
    (out / "captions.jsonl").write_bytes(b"".join(lines[:-1]) + lines[-1][:20])

    assert caption_folder([photos / "dir1"], out, model=captioner, heatmaps=False) == 0
    redone = read_jsonl(out / "captions.jsonl")
    expected = [json.loads(line) for line in lines]
    assert [record["image"] for record in redone] == [record["image"] for record in expected]
    assert redone[-1]["words"] == expected[-1]["words"]
    assert redone[-1]["score"] == pytest.approx(expected[-1]["score"], abs=1e-4)
    assert not (out / "heatmaps").exists() and not (out / "index.html").exists()


def test_strips_are_drawn_at_the_panel_size_asked_for(tmp_path, photos, captioner):
    out = tmp_path / "out"
    assert caption_folder([photos / "dir1"], out, model=captioner, panel_size=48) == 0
    for path in (out / "heatmaps").iterdir():
        with Image.open(path) as strip:
            assert strip.width % 48 == 0 and strip.width > 48
            assert strip.getpixel((strip.width - 1, 0)) != (255, 255, 255), "panels fill the first row"


def test_a_fixed_image_loses_its_error_line(tmp_path, captioner):
    broken = tmp_path / "later.jpg"
    broken.write_bytes(b"")
    out = tmp_path / "out"
    assert caption_folder([broken], out, model=captioner) == 1
    assert read_jsonl(out / "errors.jsonl") == [{"image": "later.jpg", "error": "empty file"}]

    save_photo(broken, 6)
    assert caption_folder([broken], out, model=captioner) == 0
    assert (out / "errors.jsonl").read_bytes() == b""
    assert [record["image"] for record in read_jsonl(out / "captions.jsonl")] == ["later.jpg"]


def test_an_image_whose_heatmaps_cannot_be_drawn_is_an_error_the_next_run_retries(tmp_path, photos, captioner,
                                                                                   monkeypatch):
    stream, out = captioner.stream, tmp_path / "out"

    def stream_with_a_nan_map(*args, **kwargs):
        for result in stream(*args, **kwargs):
            if result.image.name == "beach.png":
                result.caption.attention = np.full_like(result.caption.attention, np.nan)
            yield result

    with monkeypatch.context() as patch:
        patch.setattr(captioner, "stream", stream_with_a_nan_map)
        assert caption_folder([photos / "dir1"], out, model=captioner, batch_size=1) == 1
    assert [record["image"] for record in read_jsonl(out / "captions.jsonl")] == ["photo.jpg"]
    assert read_jsonl(out / "errors.jsonl") == [
        {"image": "beach.png", "error": "cannot draw heatmaps: attention contains NaN or infinity"}]
    assert [path.name for path in (out / "heatmaps").iterdir()] == ["photo.jpg.png"]

    assert caption_folder([photos / "dir1"], out, model=captioner, batch_size=1) == 0
    assert [record["image"] for record in read_jsonl(out / "captions.jsonl")] == ["photo.jpg", "beach.png"]
    assert (out / "errors.jsonl").read_bytes() == b""
    assert (out / "index.html").read_text().count('class="entry"') == 2


def test_a_damaged_log_line_is_a_plain_error(tmp_path, photos, captioner):
    out = tmp_path / "out"
    out.mkdir()
    (out / "captions.jsonl").write_text('{"image": "beach.png"}\nnot json\n')
    with pytest.raises(ValueError, match="captions.jsonl is damaged"):
        caption_folder([photos / "dir1"], out, model=captioner)


@pytest.mark.parametrize(
    ("out", "message"),
    [("blocker", "blocker exists and is not a folder"), ("blocker/out", "cannot create .*blocker is not a folder")],
    ids=["out-is-a-file", "parent-is-a-file"],
)
def test_an_out_that_cannot_be_a_folder_fails_before_the_model_loads(tmp_path, photos, out, message):
    (tmp_path / "blocker").write_text("a file")
    with pytest.raises(NotADirectoryError, match=message):
        caption_folder([photos / "dir1"], tmp_path / out, model=tmp_path / "no-model-here")


def test_a_missing_input_or_model_or_no_images_fails_before_anything_is_written(tmp_path, photos):
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError, match="nowhere.jpg: no such file or folder"):
        caption_folder([photos, tmp_path / "nowhere.jpg"], out, model=tmp_path / "no-model-here")
    with pytest.raises(FileNotFoundError, match="no-model-here is not a captioner model folder"):
        caption_folder([photos / "dir1"], out, model=tmp_path / "no-model-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images in .*empty"):
        caption_folder([tmp_path / "empty"], out, model=tmp_path / "no-model-here")
    assert not out.exists()


def test_find_images_lists_each_file_once_in_order(tmp_path, photos):
    notes = photos / "dir1" / "notes.txt"
    found = find_images([photos / "dir2", notes, photos / "dir2" / "photo.jpg", photos / "dir1"])
    assert found == [
        ("dir2/photo.jpg", photos / "dir2" / "photo.jpg"),
        ("notes.txt", notes),  # named explicitly, so tried although it is no image
        ("beach.png", photos / "dir1" / "beach.png"),
        ("dir1/photo.jpg", photos / "dir1" / "photo.jpg"),
    ]


def test_names_shared_by_two_inputs_grow_until_they_differ(tmp_path):
    for top in ("a", "b"):
        save_photo(tmp_path / top / "x" / "photo.jpg", 0)
    found = find_images([tmp_path / "a" / "x", tmp_path / "b" / "x" / "photo.jpg"])
    assert [name for name, _ in found] == ["a/x/photo.jpg", "b/x/photo.jpg"]


def test_output_stems_are_flat_readable_and_never_shared():
    assert output_stem("dir1/photo.jpg") == "dir1__photo.jpg"
    assert output_stem("_DSC0001.JPG") == "_DSC0001.JPG"
    confusable = ["a/b.jpg", "a__b.jpg", "a_/b.jpg", "a/_b.jpg", "a//b.jpg"]
    assert len({output_stem(name) for name in confusable}) == len(confusable)
    long_names = ["x" * 300 + "/1.jpg", "x" * 300 + "/2.jpg"]
    stems = [output_stem(name) for name in long_names]
    assert stems[0] != stems[1] and all(len(stem.encode()) < 200 for stem in stems)
