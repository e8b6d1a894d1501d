"""Dataset readers: each turns a dataset on disk into Records and a ReadReport of what it skipped."""
from __future__ import annotations

from pathlib import Path

from captioner.data.coco import read_coco
from captioner.data.flickr8k import read_flickr8k
from captioner.data.karpathy import read_karpathy
from captioner.data.records import SPLITS, ReadReport, Record

READERS = {"flickr8k": read_flickr8k, "coco": read_coco, "karpathy": read_karpathy}

__all__ = ["READERS", "SPLITS", "ReadReport", "Record", "read_coco", "read_dataset", "read_flickr8k", "read_karpathy"]


def read_dataset(name: str, data: Path, images: Path | None = None) -> tuple[list[Record], ReadReport]:
    """Read a dataset in the named format: data is its folder, or the split JSON for karpathy."""
    if name not in READERS:
        raise ValueError(f"unknown dataset format {name!r}: expected one of {', '.join(READERS)}")
    if name == "karpathy" and images is None:
        raise ValueError("the karpathy format needs the images folder as well as the split JSON")
    return READERS[name](data, images)
