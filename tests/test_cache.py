from pathlib import Path

import numpy as np
import pytest

from captioner.data import cache as cache_module
from captioner.data.cache import FeatureCache


def load(path: Path) -> np.ndarray:
    """A fake image loader: the file holds one number, the image is filled with it."""
    return np.full((4, 4, 3), float(path.read_text()))


class FakeEncoder:
    """Maps a (B, 4, 4, 3) batch to (B, 2, 3) features, recording batch sizes; can be interrupted."""

    def __init__(self, interrupt_at_batch: int | None = None):
        self.batches: list[int] = []
        self.interrupt_at_batch = interrupt_at_batch

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(len(batch))
        if len(self.batches) == self.interrupt_at_batch:
            raise KeyboardInterrupt
        return batch.reshape(len(batch), -1, 3)[:, :2]

    @property
    def encoded(self) -> int:
        return sum(self.batches)


def write_images(folder: Path, *values: str) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = [folder / f"{index}.img" for index in range(len(values))]
    for path, value in zip(paths, values):
        path.write_text(value)
    return paths


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    return write_images(tmp_path / "images", "1", "2", "3", "4", "5")


@pytest.fixture
def cache(tmp_path: Path) -> FeatureCache:
    return FeatureCache(tmp_path / "cache", "fake-encoder")


def entries(cache: FeatureCache) -> list[Path]:
    return sorted(cache.directory.glob("*.npy"))


def test_build_encodes_in_batches_and_stores_float16_features(cache, images):
    encoder = FakeEncoder()

    report = cache.build(images, encoder, load, batch_size=2)

    assert encoder.batches == [2, 2, 1]
    assert (report.encoded, report.cached, report.failed) == (5, 0, [])
    features = cache.get(images[2])
    assert features.dtype == np.float16 and features.shape == (2, 3)
    assert np.all(features == 3)


def test_second_build_encodes_nothing_even_in_a_new_process(cache, images, tmp_path):
    cache.build(images, FakeEncoder(), load)
    encoder = FakeEncoder()

    report = FeatureCache(tmp_path / "cache", "fake-encoder").build(images, encoder, load)

    assert encoder.encoded == 0
    assert (report.encoded, report.cached) == (0, 5)
    assert str(report) == "images encoded 0, already cached 5"


def test_identical_images_share_one_entry(cache, tmp_path):
    twins = write_images(tmp_path / "twins", "7", "7")
    encoder = FakeEncoder()

    cache.build(twins, encoder, load)

    assert encoder.encoded == 1
    assert np.all(cache.get(twins[1]) == 7)


def test_modified_image_is_encoded_again(cache, images):
    cache.build(images, FakeEncoder(), load)
    images[0].write_text("10")
    encoder = FakeEncoder()

    report = cache.build(images, encoder, load)

    assert (encoder.encoded, report.cached) == (1, 4)
    assert np.all(cache.get(images[0]) == 10)


def test_another_encoder_never_reuses_entries(cache, images, tmp_path):
    cache.build(images, FakeEncoder(), load)
    encoder = FakeEncoder()

    FeatureCache(tmp_path / "cache", "other-encoder").build(images, encoder, load)

    assert encoder.encoded == 5


def test_truncated_entry_is_detected_on_read_and_rebuilt(cache, images):
    cache.build(images, FakeEncoder(), load)
    entry = entries(cache)[0]
    entry.write_bytes(entry.read_bytes()[:-4])

    assert [cache.get(image) is None for image in images].count(True) == 1
    assert not entry.exists()
    encoder = FakeEncoder()
    cache.build(images, encoder, load)
    assert encoder.encoded == 1
    assert all(cache.get(image) is not None for image in images)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda entry: entry.write_bytes(entry.read_bytes()[:40]),
        lambda entry: entry.write_bytes(b""),
        lambda entry: np.save(entry, np.zeros((2, 3), np.float32)),
        lambda entry: np.save(entry, np.zeros((3, 3), np.float16)),
    ],
    ids=["truncated header", "empty", "float32", "wrong shape"],
)
def test_build_rebuilds_a_corrupt_entry_it_finds(cache, images, corrupt):
    cache.build(images, FakeEncoder(), load)
    corrupt(entries(cache)[0])
    encoder = FakeEncoder()

    cache.build(images, encoder, load)

    assert encoder.encoded == 1
    assert all(cache.get(image).shape == (2, 3) for image in images)


def test_non_finite_entry_is_detected_on_read(cache, images):
    cache.build(images, FakeEncoder(), load)
    np.save(entries(cache)[0], np.full((2, 3), np.inf, np.float16))

    assert sum(cache.get(image) is None for image in images) == 1
    assert len(entries(cache)) == 4


def test_interrupted_build_leaves_only_complete_entries(cache, images):
    with pytest.raises(KeyboardInterrupt):
        cache.build(images, FakeEncoder(interrupt_at_batch=2), load, batch_size=2)

    assert len(entries(cache)) == 2
    assert sorted(path.name for path in cache.directory.iterdir() if path.suffix != ".npy") == ["encoder.json"]
    assert all(np.load(entry).shape == (2, 3) for entry in entries(cache))
    encoder = FakeEncoder()
    cache.build(images, encoder, load, batch_size=2)
    assert encoder.encoded == 3


def test_write_interrupted_midway_leaves_no_entry(cache, images, monkeypatch):
    def half_save(file, array):
        file.write(b"\x93NUMPY half")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", half_save)
    with pytest.raises(KeyboardInterrupt):
        cache.build(images, FakeEncoder(), load)

    assert [path.name for path in cache.directory.iterdir()] == ["encoder.json"]


def test_images_that_fail_are_reported_and_the_rest_encoded(cache, tmp_path):
    good, broken, flat = write_images(tmp_path / "images", "1", "broken", "2")
    missing = tmp_path / "images" / "missing.img"

    report = cache.build(
        [good, broken, missing, flat], FakeEncoder(), lambda path: load(path)[0] if path == flat else load(path)
    )

    assert report.encoded == 1
    assert report.failed == [
        (missing, "No such file or directory"),
        (broken, "could not convert string to float: 'broken'"),
        (flat, "loaded as (4, 3), not (H, W, 3)"),
    ]
    assert str(report).startswith(f"images encoded 1, already cached 0, failed 3 (first: {missing}: No such file")


def test_features_overflowing_float16_are_not_stored(cache, tmp_path):
    huge, fine = write_images(tmp_path / "images", "1e6", "1")

    report = cache.build([huge, fine], FakeEncoder(), load)

    assert report.failed == [(huge, "features are not finite in float16")]
    assert cache.get(huge) is None and cache.get(fine) is not None


def test_changed_encoder_output_under_the_same_id_is_refused(cache, images):
    cache.build(images[:1], FakeEncoder(), load)

    with pytest.raises(ValueError, match=r"now gives features of shape \(1, 3\) .* holds \(2, 3\)"):
        cache.build(images, lambda batch: batch.reshape(len(batch), -1, 3)[:, :1], load)


def test_encoder_grid_is_flattened(cache, images):
    cache.build(images, lambda batch: batch[:, :2, :3], load)

    assert all(cache.get(image).shape == (6, 3) for image in images)


def test_load_all_stacks_entries_in_order(cache, images, tmp_path):
    with pytest.raises(FileNotFoundError, match="is empty: build it first"):
        cache.load_all(images)
    cache.build(images[:4], FakeEncoder(), load)

    stacked = cache.load_all(images[3::-1])

    assert stacked.dtype == np.float16 and stacked.shape == (4, 2, 3)
    assert stacked[:, 0, 0].tolist() == [4, 3, 2, 1]
    with pytest.raises(FileNotFoundError, match=r"2 of 5 images have no valid features .*\(first: .*4.img\)"):
        cache.load_all([*images, tmp_path / "gone.img"][1:])


def test_each_image_is_hashed_once_per_run(cache, images, monkeypatch):
    hashed = []
    digest = cache_module._digest
    monkeypatch.setattr(cache_module, "_digest", lambda chunks: hashed.append(1) or digest(chunks))

    cache.build(images, FakeEncoder(), load)
    cache.load_all(images)

    assert len(hashed) == len(images)
