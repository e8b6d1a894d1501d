"""Reader for Karpathy's split files: dataset_coco.json, dataset_flickr8k.json, dataset_flickr30k.json."""
from __future__ import annotations

from pathlib import Path

from captioner.data.records import ReadReport, Record, RecordBuilder, read_json, require

# restval is the part of COCO val that Karpathy's split gives to training.
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "dev", "test": "test"}


def read_karpathy(json_path: Path, images_dir: Path) -> tuple[list[Record], ReadReport]:
    """Records of a Karpathy split file, images at images_dir/[filepath/]filename.

    COCO images keep their COCO id (cocoid) as image_id, others their file name.
    """
    json_path, images_dir = Path(json_path), Path(images_dir)
    require(json_path, expected="a Karpathy split file such as dataset_flickr8k.json")
    require(images_dir, expected=f"the folder of the images {json_path.name} lists")
    content = read_json(json_path)
    if not (isinstance(content, dict) and isinstance(content.get("images"), list)):
        raise ValueError(f"{json_path} is not a Karpathy split file: it has no 'images' list")

    builder = RecordBuilder(f"Karpathy {content.get('dataset', json_path.stem)}")
    for entry in content["images"]:
        try:
            image_id = str(entry.get("cocoid", entry["filename"]))
            path = images_dir / entry.get("filepath", "") / entry["filename"]
            split = KARPATHY_SPLITS.get(entry["split"])
            captions = [sentence["raw"] for sentence in entry["sentences"]]
        except (AttributeError, KeyError, TypeError):
            builder.malformed()
            continue
        builder.add_image(image_id, path, split)
        for caption in captions:
            builder.add_caption(image_id, caption)
    return builder.build()
