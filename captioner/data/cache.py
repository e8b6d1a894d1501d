"""On-disk cache of encoder features: one float16 .npy per image, keyed by the image's content and the encoder."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..atomic import atomic_file, write_atomically

logger = logging.getLogger(__name__)


@dataclass
class BuildReport:
    """What a build did: images encoded, images whose entry was already valid, images that failed and why."""

    encoded: int = 0
    cached: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def __str__(self) -> str:
        summary = f"images encoded {self.encoded:,}, already cached {self.cached:,}"
        if self.failed:
            path, reason = self.failed[0]
            summary += f", failed {len(self.failed):,} (first: {path}: {reason})"
        return summary


class FeatureCache:
    """Features of images under one encoder, stored in directory/<hash of encoder_id>/<hash of image>.npy.

    Keying on the image's bytes rather than its path means an edited image is re-encoded and a copy is not;
    encoder_id must change whenever the features would (other weights, image size, layer).
    """

    def __init__(self, directory: Path, encoder_id: str):
        if not encoder_id:
            raise ValueError("a feature cache needs a non-empty encoder_id")
        self.encoder_id = encoder_id
        self.directory = Path(directory) / _digest([encoder_id.encode()])
        self._info_file = self.directory / "encoder.json"
        self._feature_shape = self._read_feature_shape()  # (L, C) of every entry; None while the cache is empty
        self._digests: dict[tuple[str, int, int], str] = {}

    def get(self, image: Path) -> np.ndarray | None:
        """The (L, C) float16 features of an image, or None without a valid entry.

        A corrupt entry is deleted, so the next build encodes the image again.
        """
        return self._read(self._entry(Path(image)))

    def build(
        self,
        images: Iterable[Path],
        encode: Callable[[np.ndarray], np.ndarray],
        load: Callable[[Path], np.ndarray],
        batch_size: int = 32,
    ) -> BuildReport:
        """Encode, in batches, the images without a valid entry and store their features.

        load turns a path into an (H, W, 3) array and encode a (B, H, W, 3) batch into (B, L, C) features
        (a (B, H, W, C) grid is flattened to L = H * W). Images that fail to load are reported and skipped.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        report = BuildReport()
        pending: dict[Path, Path] = {}  # entry -> image; identical images share an entry and are encoded once
        for image in map(Path, images):
            try:
                entry = self._entry(image)
            except OSError as error:
                report.failed.append((image, error.strerror or str(error)))
                continue
            if entry in pending:
                continue
            # Only the header is read: checking every value would read the whole cache on each build.
            if self._read(entry, header_only=True) is None:
                pending[entry] = image
            else:
                report.cached += 1

        self.directory.mkdir(parents=True, exist_ok=True)
        with tqdm(total=len(pending), desc="Encoding images", unit="image", disable=not pending) as progress:
            for batch in _batches(self._load_each(pending, load, report, progress), batch_size):
                entries, pixels = zip(*batch)
                for entry, features in zip(entries, self._encode(encode, pixels)):
                    if np.isfinite(features).all():
                        with atomic_file(entry) as file:
                            np.save(file, features)
                        report.encoded += 1
                    else:
                        report.failed.append((pending[entry], "features are not finite in float16"))
                progress.update(len(batch))
        (logger.warning if report.failed else logger.info)("feature cache %s: %s", self.directory, report)
        return report

    def load_all(self, images: Sequence[Path]) -> np.ndarray:
        """The features of images stacked into one (N, L, C) float16 array, every image needing a valid entry."""
        if self._feature_shape is None:
            raise FileNotFoundError(f"the feature cache {self.directory} is empty: build it first")
        stacked = np.empty((len(images), *self._feature_shape), np.float16)
        missing = []
        for row, image in enumerate(images):
            try:
                features = self.get(image)
            except OSError:
                features = None
            if features is None:
                missing.append(image)
            else:
                stacked[row] = features
        if missing:
            raise FileNotFoundError(
                f"{len(missing):,} of {len(images):,} images have no valid features in {self.directory} "
                f"(first: {missing[0]}): build the cache first"
            )
        return stacked

    def _entry(self, image: Path) -> Path:
        """Where an image's features live; its content is hashed once per size and modification time."""
        stat = image.stat()
        key = (os.fspath(image), stat.st_size, stat.st_mtime_ns)
        if key not in self._digests:
            with open(image, "rb") as file:
                self._digests[key] = _digest(iter(lambda: file.read(1 << 20), b""))
        return self.directory / f"{self._digests[key]}.npy"

    def _read(self, entry: Path, header_only: bool = False) -> np.ndarray | None:
        """The features in an entry, or None if there is none or it is corrupt (then it is deleted)."""
        if self._feature_shape is None or not entry.exists():
            return None
        try:
            # A memory map reads just the header, and fails if the file is shorter than the header promises.
            features = np.load(entry, mmap_mode="r" if header_only else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            problem = f"unreadable ({error})"
        else:
            problem = self._problem(features, check_values=not header_only)
        if problem is None:
            return features
        logger.warning("deleting corrupt feature cache entry %s: %s", entry, problem)
        entry.unlink(missing_ok=True)
        return None

    def _problem(self, features: np.ndarray, check_values: bool) -> str | None:
        if features.dtype != np.float16 or features.shape != self._feature_shape:
            return f"{features.dtype} {features.shape} instead of float16 {self._feature_shape}"
        if check_values and not np.isfinite(features).all():
            return "non-finite values"
        return None

    def _load_each(
        self, pending: dict[Path, Path], load: Callable[[Path], np.ndarray], report: BuildReport, progress: tqdm
    ) -> Iterator[tuple[Path, np.ndarray]]:
        """(entry, pixels) of each pending image that loads; the others go into the report."""
        for entry, image in pending.items():
            try:
                pixels = np.asarray(load(image))
                if pixels.ndim != 3 or pixels.shape[-1] != 3:
                    raise ValueError(f"loaded as {pixels.shape}, not (H, W, 3)")
            except Exception as error:  # whatever breaks one image must not stop the build
                report.failed.append((image, str(error) or type(error).__name__))
                progress.update()
            else:
                yield entry, pixels

    def _encode(self, encode: Callable[[np.ndarray], np.ndarray], pixels: Sequence[np.ndarray]) -> np.ndarray:
        """(B, L, C) float16 features of a batch; the first batch ever fixes the cache's feature shape."""
        if len({image.shape for image in pixels}) > 1:
            raise ValueError(f"load gave images of different sizes {sorted({image.shape for image in pixels})}")
        features = np.asarray(encode(np.stack(pixels)))
        if features.ndim < 3 or len(features) != len(pixels):
            raise ValueError(f"encode turned a batch of {len(pixels)} images into {features.shape}, not (B, L, C)")
        with np.errstate(over="ignore"):  # values beyond float16 become inf, and build refuses to store those
            features = features.reshape(len(pixels), -1, features.shape[-1]).astype(np.float16)
        if self._feature_shape is None:
            self._feature_shape = features.shape[1:]
            info = {"encoder_id": self.encoder_id, "feature_shape": list(self._feature_shape)}
            write_atomically(self._info_file, json.dumps(info))
        elif features.shape[1:] != self._feature_shape:
            raise ValueError(
                f"encoder {self.encoder_id!r} now gives features of shape {features.shape[1:]} but its cache "
                f"{self.directory} holds {self._feature_shape}: give the changed encoder a new encoder_id"
            )
        return features

    def _read_feature_shape(self) -> tuple[int, int] | None:
        if not self._info_file.exists():
            return None
        try:
            return tuple(int(size) for size in json.loads(self._info_file.read_text())["feature_shape"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{self._info_file} is broken ({error}): delete {self.directory} to rebuild") from None


def _digest(chunks: Iterable[bytes]) -> str:
    hasher = hashlib.blake2b(digest_size=16)
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.hexdigest()


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
