"""A tiny Flickr8k folder made of real images, for the tests that train and evaluate."""
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
