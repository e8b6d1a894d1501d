"""Reader for MS COCO captions in the standard layout."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from captioner.data.records import ReadReport, Record, RecordBuilder, read_json, require

# COCO's test images have no public captions, so its val set serves as our dev split.
COCO_SPLITS = {"train": "train", "val": "dev"}
YEARS = ("2017", "2014")


def read_coco(root: Path, images: Path | None = None) -> tuple[list[Record], ReadReport]:
    """Records from root/annotations/captions_{train,val}<year>.json, 2017 preferred over 2014.

    Images are read from <images>/{train,val}<year>/, images defaulting to root. COCO train becomes
    our "train" split and COCO val our "dev" split.
    """
    root = Path(root)
    images = root if images is None else Path(images)
    annotations = root / "annotations"
    year = _year(annotations)
    builder = RecordBuilder(f"COCO {year}")
    for coco_split, split in COCO_SPLITS.items():
        captions_file = _captions_file(annotations, coco_split, year)
        if not captions_file.exists():
            continue
        folder = images / f"{coco_split}{year}"
        require(folder, expected=f"the {coco_split}{year} images beside {captions_file.name}")
        content = _read_captions_file(captions_file)
        for image in content["images"]:
            try:
                builder.add_image(str(image["id"]), folder / image["file_name"], split)
            except (KeyError, TypeError):
                builder.malformed()
        for annotation in content["annotations"]:
            try:
                builder.add_caption(str(annotation["image_id"]), annotation["caption"])
            except (KeyError, TypeError):
                builder.malformed()
    return builder.build()


def _year(annotations: Path) -> str:
    """The newest year that has caption files."""
    for year in YEARS:
        if any(_captions_file(annotations, coco_split, year).exists() for coco_split in COCO_SPLITS):
            return year
    raise FileNotFoundError(
        f"no COCO captions in {annotations}: expected captions_train2017.json and captions_val2017.json (or 2014)"
    )


def _captions_file(annotations: Path, coco_split: str, year: str) -> Path:
    return annotations / f"captions_{coco_split}{year}.json"


def _read_captions_file(path: Path) -> dict[str, Any]:
    """The content of a COCO captions file, checked to have the lists the reader walks."""
    content = read_json(path)
    if not (isinstance(content, dict) and all(isinstance(content.get(key), list) for key in ("images", "annotations"))):
        raise ValueError(f"{path} is not a COCO captions file: it needs 'images' and 'annotations' lists")
    return content
