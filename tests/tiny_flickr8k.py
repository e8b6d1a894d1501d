"""Tiny datasets for the tests: a Flickr8k folder of real images, and COCO and Karpathy layouts of given records."""
import json
import shutil
from pathlib import Path


def write_tiny_flickr8k(source: Path, out: Path, train: int, dev: int, skip: int = 0) -> Path:
    """Copies `train` and `dev` images (after the first `skip` of each list) with their captions into `out`."""
    splits = {}
    for split, count in (("train", train), ("dev", dev)):
        splits[split] = (source / f"Flickr_8k.{split}Images.txt").read_text().split()[skip: skip + count]
    images = {name for names in splits.values() for name in names}
    (out / "Images").mkdir(parents=True)
    for name in images:
        shutil.copy(source / "Images" / name, out / "Images" / name)
    for split, names in splits.items():
        (out / f"Flickr_8k.{split}Images.txt").write_text("".join(f"{name}\n" for name in names))
    with open(source / "Flickr8k.token.txt", encoding="utf-8") as file:
        captions = [line for line in file if line.partition("#")[0] in images]
    (out / "Flickr8k.token.txt").write_text("".join(captions), encoding="utf-8")
    return out


def write_coco_and_karpathy(records, root: Path, karpathy_file: Path | None = None) -> dict[str, str]:
    """The records' photos in COCO 2017's layout under root (annotations/captions_{train,val}2017.json, train2017/,
    val2017/) and, given `karpathy_file`, as Karpathy's split file naming them relative to root. Returns each
    copied photo's path and the split the readers should give it."""
    coco_splits = {"train": "train", "dev": "val"}
    annotations = {split: {"images": [], "annotations": []} for split in coco_splits.values()}
    karpathy, expected = [], {}
    for image_id, record in enumerate(records, start=1):
        folder, name = f"{coco_splits[record.split]}2017", f"{image_id:012d}.jpg"
        (root / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(record.image, root / folder / name)
        expected[str(root / folder / name)] = record.split
        content = annotations[coco_splits[record.split]]
        content["images"].append({"id": image_id, "file_name": name})
        content["annotations"] += [{"image_id": image_id, "caption": caption} for caption in record.captions]
        karpathy.append({"filepath": folder, "filename": name, "cocoid": image_id, "split": coco_splits[record.split],
                         "sentences": [{"raw": caption} for caption in record.captions]})
    (root / "annotations").mkdir()
    for coco_split, content in annotations.items():
        (root / "annotations" / f"captions_{coco_split}2017.json").write_text(json.dumps(content))
    if karpathy_file is not None:
        karpathy_file.write_text(json.dumps({"dataset": "coco", "images": karpathy}))
    return expected
