"""`captioner caption`: caption every image under some files and folders into one output folder, resumably.

`OUT/captions.jsonl` is the record of what is done. Each image's heatmap PNG and gallery fragment are written
before its caption line, and each line lands whole (one write, then fsync), so after a kill a rerun with the same
OUT skips exactly the images with a caption line and redoes the rest. Images that failed are retried on every
rerun: their old lines are dropped from `OUT/errors.jsonl` as the run starts, and a fresh line is written for
each one that fails again, so `errors.jsonl` names each image that has no caption yet with its latest reason.
`OUT/model.json` names the model whose captions OUT holds: a rerun with another model is refused, not mixed in.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from tqdm import tqdm

from .atomic import write_atomically
from .heatmap import gallery_entry_html, strip_pixels, write_gallery_page
from .png import save_png
from .preprocess import SUPPORTED_SUFFIXES

if TYPE_CHECKING:
    from .api import Captioner, Result

CAPTIONS_FILE, ERRORS_FILE, INDEX_FILE, MODEL_FILE = "captions.jsonl", "errors.jsonl", "index.html", "model.json"
HEATMAPS_DIR, GALLERY_DIR = "heatmaps", "gallery"


def caption_folder(
    paths: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    model: str | os.PathLike | Captioner | None = None,
    beam_size: int = 3,
    batch_size: int = 32,
    recursive: bool = False,
    heatmaps: bool = True,
    panel_size: int = 160,
    max_length: int | None = None,
) -> int:
    """Caption the images in `paths` into `out`; 0 if every image got a caption, 1 if any could not be read or drawn.

    Writes `captions.jsonl` and `errors.jsonl`, and with `heatmaps` a strip PNG per image in `heatmaps/`, its
    panels `panel_size` pixels square, and the gallery page `index.html` (from per-image fragments in
    `gallery/`). `model` is a preset name, a model folder or a loaded Captioner (None: the best preset);
    `max_length` overrides the caption length it was saved with. A missing input, no images at all, an `out`
    that cannot be written, a missing model or an `out` begun by another model raises before any image is read.

    Strips default to 160-pixel panels, where `strip` and `captioner attend` draw one photo at 224, the size
    the encoder sees: a folder's strips are an overview, half the pixels, so about half the drawing time and the
    disk, and the gallery page shows each word's map over the photo at 224.
    """
    if panel_size < 1:
        raise ValueError(f"panel size must be at least 1 pixel, got {panel_size}")
    out, paths = Path(out), [Path(path) for path in paths]
    images = find_images(paths, recursive, skip=[out / HEATMAPS_DIR, out / GALLERY_DIR])
    if not images:
        hint = "" if recursive else " (sub-folders are searched with --recursive)"
        raise ValueError(f"no images in {', '.join(map(str, paths))}{hint}")
    _check_writable(out)
    captioner, name = _load(model, max_length)

    out.mkdir(parents=True, exist_ok=True)
    _claim(out, name, _identity(captioner))
    done = {name for name, _ in _logged(out / CAPTIONS_FILE)}
    todo = [(name, path) for name, path in images if name not in done]
    _forget_errors(out / ERRORS_FILE, {name for name, _ in todo})
    if heatmaps:
        (out / HEATMAPS_DIR).mkdir(exist_ok=True)
        (out / GALLERY_DIR).mkdir(exist_ok=True)

    failed = 0
    with (open(out / CAPTIONS_FILE, "ab", buffering=0) as captions,
          open(out / ERRORS_FILE, "ab", buffering=0) as errors,
          ThreadPoolExecutor(max_workers=os.cpu_count()) as painters):
        # Heatmaps are drawn in threads while the model captions the next batch. Lines are written here, in
        # order, each once its image's heatmaps are on disk; at most a batch is in flight, so memory stays flat.
        # A stop (Ctrl-C) still writes the lines of what was captioned.
        queued: deque[tuple[str, Result, Future | None]] = deque()
        results = captioner.stream((path for _, path in todo), beam_size, batch_size)
        try:
            for (name, _), result in tqdm(zip(todo, results), total=len(todo), unit="image", desc="captioning"):
                drawn = (painters.submit(_draw, out, name, result, panel_size)
                         if heatmaps and result.error is None else None)
                queued.append((name, result, drawn))
                while len(queued) > batch_size:
                    failed += _record(*queued.popleft(), captions, errors)
        finally:
            while queued:
                failed += _record(*queued.popleft(), captions, errors)

    outputs = [CAPTIONS_FILE, ERRORS_FILE]
    if heatmaps:
        write_gallery_page(_gallery_fragments(out), out / INDEX_FILE)
        outputs += [f"{HEATMAPS_DIR}/", INDEX_FILE]
    print(f"{len(todo) - failed} captioned, {len(images) - len(todo)} skipped as done, {failed} errors"
          f"; outputs in {out}: {', '.join(outputs)}")
    return 1 if failed else 0


def find_images(
    paths: Iterable[str | os.PathLike], recursive: bool = False, skip: Iterable[str | os.PathLike] = ()
) -> list[tuple[str, Path]]:
    """(name, path) of each image to caption, in order: the inputs as given, each folder's images sorted.

    A file given is always tried; from folders only SUPPORTED_SUFFIXES files are taken, without hidden files,
    sub-folders only if `recursive`, never the folders in `skip`. An image's name is its path below the input it
    came from (its file name if given directly); names two inputs share are lengthened by parent folders until
    they differ. Each file is listed once however many inputs reach it.
    """
    found: dict[str, tuple[Path, int]] = {}  # absolute path -> (path, parts in its name)
    skipped = {os.path.abspath(folder) for folder in skip}
    for given in map(Path, paths):
        if not given.exists():
            raise FileNotFoundError(f"{given}: no such file or folder")
        if given.is_dir():
            for path in _folder_images(given, recursive, skipped):
                found.setdefault(os.path.abspath(path), (path, len(path.relative_to(given).parts)))
        else:
            found.setdefault(os.path.abspath(given), (given, 1))
    return _unique_names(found)


def output_stem(name: str) -> str:
    """A flat file name for an image's outputs: `dir1/photo.jpg` -> `dir1__photo.jpg`, the same on every run.

    A name the flat form does not spell back (`a__b` could be `a/b`) or too long for a file system gets a hash
    of itself appended, so two images never share outputs.
    """
    parts = name.split("/")
    flat = "__".join(parts)
    if flat.split("__") == parts and len(os.fsencode(flat)) <= 200:
        return flat
    shortened = os.fsdecode(os.fsencode(flat)[:150])
    return f"{shortened}-{hashlib.sha1(os.fsencode(name)).hexdigest()[:12]}"


def _record(name: str, result: Result, drawn: Future | None, captions: BinaryIO, errors: BinaryIO) -> bool:
    """One image's line, once its heatmaps (`drawn`) are written; True if the image could not be captioned."""
    if result.error is not None:
        _append(errors, {"image": name, "error": result.error})
        return True
    if drawn is not None:
        try:
            drawn.result()
        except ValueError as error:  # maps this image's heatmaps cannot show (NaN, say); the run goes on
            _append(errors, {"image": name, "error": f"cannot draw heatmaps: {error}"})
            return True
    caption = result.caption
    _append(captions, {"image": name, "caption": caption.text, "words": caption.words, "score": caption.score})
    return False


def _draw(out: Path, name: str, result: Result, panel_size: int) -> None:
    """One captioned image's heatmap strip and gallery fragment."""
    caption, stem = result.caption, output_stem(name)
    pixels = strip_pixels(result.photo, caption.words, caption.attention, panel_size=panel_size)
    save_png(pixels, out / HEATMAPS_DIR / f"{stem}.png")
    entry = {"image": name, "caption": caption.text, "words": caption.words,
             "photo": result.photo, "attention": caption.attention}
    # No atomic write needed: a fragment counts only once its caption line exists, and that comes after.
    (out / GALLERY_DIR / f"{stem}.html").write_text(gallery_entry_html(entry), encoding="utf-8")


def _load(model: str | os.PathLike | Captioner | None, max_length: int | None) -> tuple[Captioner, str]:
    """The captioner, decoding at most `max_length` tokens if given, and how to name it to a user."""
    # Imported here because TensorFlow takes seconds to load, and a mistyped path or OUT should not wait for it.
    from .api import Captioner, presets

    if isinstance(model, Captioner):
        if max_length is not None and max_length != model.max_length:
            model = Captioner(model.model, model.vocabulary, model.encoder_settings, max_length, model.train_config)
        return model, "the Captioner given"
    if model:
        return Captioner.load(model, max_length), str(model)
    captioner = Captioner.from_preset(max_length=max_length)
    return captioner, f"the default model ({presets()['default'].name})"


def _identity(captioner: Captioner) -> str:
    """A digest of the model's content (weights, vocabulary, encoder), the same wherever it is loaded from."""
    digest = hashlib.sha256(json.dumps([captioner.vocabulary.words, captioner.encoder_settings],
                                       sort_keys=True).encode())
    for weight in captioner.model.weights:
        if weight.name != "seed_generator_state":  # a random stream, which every load starts afresh
            digest.update(weight.numpy().tobytes())
    return digest.hexdigest()


def _claim(out: Path, name: str, identity: str) -> None:
    """Records in `out` which model captions it, or refuses another model than the one that began it, whose
    captions would mix with this one's. A folder begun before the record existed goes on with this model."""
    record = out / MODEL_FILE
    if not record.exists():
        write_atomically(record, json.dumps({"model": name, "identity": identity}, indent=2) + "\n")
        return
    began = json.loads(record.read_text())
    if began["identity"] != identity:
        raise ValueError(f"{out} holds captions by {began['model']}, and this run's model is {name}: caption into "
                         f"another --out, or with that model")


def _folder_images(folder: Path, recursive: bool, skipped: set[str]) -> list[Path]:
    images = []
    for root, folders, files in os.walk(folder):
        folders[:] = [
            name for name in folders
            if recursive and not name.startswith(".") and os.path.abspath(os.path.join(root, name)) not in skipped
        ]
        images += [Path(root, name) for name in files
                   if not name.startswith(".") and Path(name).suffix.lower() in SUPPORTED_SUFFIXES]
    return sorted(images)


def _unique_names(found: dict[str, tuple[Path, int]]) -> list[tuple[str, Path]]:
    depths = {key: depth for key, (_, depth) in found.items()}
    while True:
        names = {key: "/".join(Path(key).parts[-depths[key]:]) for key in found}
        uses = Counter(names.values())
        clashing = [key for key, name in names.items() if uses[name] > 1]
        if not clashing:
            return [(names[key], path) for key, (path, _) in found.items()]
        for key in clashing:
            depths[key] += 1


def _check_writable(out: Path) -> None:
    """Fail now, not after loading the model, if `out` cannot become a folder we can write in."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a folder")
    existing = next(folder for folder in (out, *out.absolute().parents) if folder.exists())
    if not existing.is_dir():
        raise NotADirectoryError(f"cannot create {out}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write in {existing}: permission denied")


def _logged(path: Path) -> list[tuple[str, bytes]]:
    """(image name, line) of each record of a JSON-lines log; a last line half-written by a kill is cut off."""
    if not path.exists():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) < len(data):
        with open(path, "r+b") as file:
            file.truncate(len(complete))
    lines = complete.splitlines(keepends=True)
    try:
        return [(json.loads(line)["image"], line) for line in lines]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path} is damaged: a line is not a JSON record with an image; remove it to go on") from None


def _forget_errors(path: Path, retried: set[str]) -> None:
    """Drop the error lines of images about to be tried again, so no image is listed twice."""
    logged = _logged(path)
    kept = [line for name, line in logged if name not in retried]
    if len(kept) < len(logged):
        write_atomically(path, b"".join(kept))  # a kill leaves the old log or the new one, never a mix


def _append(file: BinaryIO, record: dict) -> None:
    """One complete line in one write, on disk before the next image starts."""
    file.write((json.dumps(record) + "\n").encode())
    os.fsync(file.fileno())


def _gallery_fragments(out: Path) -> Iterator[str]:
    """The fragment of every captioned image, this run's and earlier runs', in caption order."""
    for name, _ in _logged(out / CAPTIONS_FILE):
        fragment = out / GALLERY_DIR / f"{output_stem(name)}.html"
        if fragment.exists():  # images captioned by an earlier run with --no-heatmaps have none
            yield fragment.read_text(encoding="utf-8")
