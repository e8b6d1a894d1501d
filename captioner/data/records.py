"""The record every dataset reader produces, and the shared machinery that builds records and counts bad ones."""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

SPLITS = ("train", "dev", "test")

logger = logging.getLogger("captioner.data")


@dataclass(frozen=True)
class Record:
    """One image with its captions."""

    image: Path
    captions: tuple[str, ...]
    split: str
    image_id: str


@dataclass
class ReadReport:
    """How many records a reader produced and how many bad entries of each kind it skipped.

    empty_caption counts captions, malformed counts lines or JSON entries, the other kinds count images.
    """

    source: str
    records: int = 0
    missing_image: int = 0
    empty_caption: int = 0
    uncaptioned: int = 0
    unknown_image: int = 0
    malformed: int = 0

    _LABELS: ClassVar[dict[str, str]] = {
        "missing_image": "missing image files",
        "empty_caption": "empty captions",
        "uncaptioned": "images without captions",
        "unknown_image": "images in no split",
        "malformed": "malformed entries",
    }

    @property
    def skipped(self) -> int:
        """Bad entries of every kind together."""
        return sum(getattr(self, name) for name in self._LABELS)

    def __str__(self) -> str:
        counts = [f"{label}: {getattr(self, name):,}" for name, label in self._LABELS.items() if getattr(self, name)]
        skipped = f"skipped {', '.join(counts)}" if counts else "nothing skipped"
        return f"{self.source}: {self.records:,} records read, {skipped}"


class RecordBuilder:
    """Collects a source's images and captions, then turns them into records, counting every entry it skips."""

    def __init__(self, source: str):
        self._report = ReadReport(source)
        self._images: dict[str, tuple[Path, str]] = {}
        self._captions: dict[str, list[Any]] = defaultdict(list)
        self._unsplit: set[str] = set()

    def add_image(self, image_id: str, path: Path, split: str | None) -> None:
        """An image of a split; split None marks an image that belongs to none of ours."""
        if split is None:
            self._unsplit.add(image_id)
        elif image_id in self._images:
            self.malformed()  # listed twice, possibly in two splits: neither listing can be trusted over the other
        else:
            self._images[image_id] = (path, split)

    def add_caption(self, image_id: str, caption: Any) -> None:
        """A caption of an image added before or after it; non-strings count as malformed."""
        if isinstance(caption, str):
            self._captions[image_id].append(caption)
        else:
            self.malformed()

    def malformed(self) -> None:
        """An entry too broken to read at all."""
        self._report.malformed += 1

    def build(self) -> tuple[list[Record], ReadReport]:
        """The records of every captioned image found on disk, in the order the images were added, and the report."""
        report = self._report
        records = []
        for image_id, (path, split) in self._images.items():
            captions = tuple(caption.strip() for caption in self._captions.pop(image_id, ()))
            report.empty_caption += captions.count("")
            captions = tuple(caption for caption in captions if caption)
            if not path.is_file():
                report.missing_image += 1
            elif not captions:
                report.uncaptioned += 1
            else:
                records.append(Record(path, captions, split, image_id))
        # What is left are captions of images no split lists.
        report.unknown_image += len(self._unsplit | self._captions.keys())
        report.records = len(records)
        (logger.warning if report.skipped else logger.info)("%s", report)
        return records, report


def require(*paths: Path, expected: str) -> None:
    """Fail with one line naming the first missing path and what should have been there."""
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: expected {expected}")


def read_json(path: Path) -> Any:
    """The parsed content of a JSON file, with a one-line error naming the file if it is not JSON."""
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
