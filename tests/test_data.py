import json
import logging
import time
from collections import Counter
from pathlib import Path

import pytest

from captioner.data import ReadReport, read_coco, read_dataset, read_flickr8k, read_karpathy


def touch_images(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"not really a jpeg")


def counts(report: ReadReport) -> dict[str, int]:
    return {
        "records": report.records,
        "missing_image": report.missing_image,
        "empty_caption": report.empty_caption,
        "uncaptioned": report.uncaptioned,
        "unknown_image": report.unknown_image,
        "malformed": report.malformed,
    }


@pytest.fixture
def flickr8k(tmp_path: Path) -> Path:
    """A tiny Flickr8k with one bad entry or more of every kind."""
    touch_images(tmp_path / "Images", "a.jpg", "b.jpg", "c.jpg", "d.jpg", "f.jpg")
    (tmp_path / "Flickr_8k.trainImages.txt").write_text("a.jpg\nb.jpg\ne.jpg\nf.jpg\n\n")  # e.jpg is not on disk
    (tmp_path / "Flickr_8k.devImages.txt").write_text("c.jpg\na.jpg\n")  # a.jpg listed again
    (tmp_path / "Flickr_8k.testImages.txt").write_text("d.jpg\n")
    (tmp_path / "Flickr8k.token.txt").write_text(
        "a.jpg#0\tA dog runs .\n"
        "a.jpg#1\t  \n"
        "b.jpg#0\tA cat sleeps .\r\n"
        "c.jpg#0\tA bird flies .\n"
        "d.jpg#0\tA fish swims .\n"
        "e.jpg#0\tThis image is missing .\n"
        "g.jpg#0\tNo split lists this image .\n"
        "g.jpg#1\tNor this one .\n"
        "a line without a tab\n"
        "h.jpg\tno caption number\n"
        "\n"
    )
    return tmp_path


def test_flickr8k_reads_good_records_and_counts_every_bad_one(flickr8k):
    records, report = read_flickr8k(flickr8k)

    assert [(record.image_id, record.split, record.captions) for record in records] == [
        ("a.jpg", "train", ("A dog runs .",)),
        ("b.jpg", "train", ("A cat sleeps .",)),
        ("c.jpg", "dev", ("A bird flies .",)),
        ("d.jpg", "test", ("A fish swims .",)),
    ]
    assert records[0].image == flickr8k / "Images" / "a.jpg"
    assert counts(report) == {
        "records": 4, "missing_image": 1, "empty_caption": 1, "uncaptioned": 1, "unknown_image": 1, "malformed": 3
    }


def test_flickr8k_without_test_list_counts_test_images_as_in_no_split(flickr8k):
    (flickr8k / "Flickr_8k.testImages.txt").unlink()

    records, report = read_flickr8k(flickr8k)

    assert {record.split for record in records} == {"train", "dev"}
    assert report.unknown_image == 2


def test_flickr8k_images_can_live_elsewhere(flickr8k, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (flickr8k / "Images").rename(elsewhere / "photos")

    records, _ = read_flickr8k(flickr8k, images=elsewhere / "photos")

    assert records[0].image == elsewhere / "photos" / "a.jpg"


@pytest.mark.parametrize("missing", ["Flickr8k.token.txt", "Flickr_8k.devImages.txt", "Images"])
def test_flickr8k_missing_part_is_named(flickr8k, missing):
    target = flickr8k / missing
    target.rename(flickr8k / "moved")

    with pytest.raises(FileNotFoundError, match=f"{missing} not found: expected a Flickr8k folder"):
        read_flickr8k(flickr8k)


def test_report_reads_as_one_line_and_is_logged(flickr8k, caplog):
    with caplog.at_level(logging.INFO, logger="captioner.data"):
        _, report = read_flickr8k(flickr8k)

    assert str(report) == (
        "Flickr8k: 4 records read, skipped missing image files: 1, empty captions: 1, images without captions: 1, "
        "images in no split: 1, malformed entries: 3"
    )
    assert [record.getMessage() for record in caplog.records] == [str(report)]
    assert str(ReadReport("X", records=1200)) == "X: 1,200 records read, nothing skipped"


def write_coco(root: Path, year: str) -> None:
    """Tiny COCO caption files whose train set holds one bad entry of every kind."""
    touch_images(root / f"train{year}", "1.jpg", "2.jpg", "5.jpg")
    touch_images(root / f"val{year}", "3.jpg")
    train = {
        "images": [
            {"id": 1, "file_name": "1.jpg"},
            {"id": 2, "file_name": "2.jpg"},
            {"id": 4, "file_name": "4.jpg"},  # not on disk
            {"id": 5, "file_name": "5.jpg"},  # no captions
            {"id": 6},
        ],
        "annotations": [
            {"image_id": 1, "caption": "A dog runs."},
            {"image_id": 1, "caption": " A dog plays. \n"},
            {"image_id": 2, "caption": "A cat sleeps."},
            {"image_id": 2, "caption": ""},
            {"image_id": 4, "caption": "Missing."},
            {"image_id": 99, "caption": "Of no image."},
            {"image_id": 2},
            {"image_id": 2, "caption": 7},
        ],
    }
    val = {"images": [{"id": 3, "file_name": "3.jpg"}], "annotations": [{"image_id": 3, "caption": "A bird."}]}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"captions_train{year}.json").write_text(json.dumps(train))
    (root / "annotations" / f"captions_val{year}.json").write_text(json.dumps(val))


def test_coco_maps_train_and_val_to_train_and_dev_and_counts_bad_entries(tmp_path):
    write_coco(tmp_path, "2014")

    records, report = read_coco(tmp_path)

    assert [(record.image_id, record.split, record.captions) for record in records] == [
        ("1", "train", ("A dog runs.", "A dog plays.")),
        ("2", "train", ("A cat sleeps.",)),
        ("3", "dev", ("A bird.",)),
    ]
    assert records[2].image == tmp_path / "val2014" / "3.jpg"
    assert report.source == "COCO 2014"
    assert counts(report) == {
        "records": 3, "missing_image": 1, "empty_caption": 1, "uncaptioned": 1, "unknown_image": 1, "malformed": 3
    }


def test_coco_prefers_2017(tmp_path):
    write_coco(tmp_path, "2014")
    write_coco(tmp_path, "2017")

    records, report = read_coco(tmp_path)

    assert report.source == "COCO 2017"
    assert {record.image.parent.name for record in records} == {"train2017", "val2017"}


def test_coco_errors_name_what_is_missing_or_broken(tmp_path):
    with pytest.raises(FileNotFoundError, match="no COCO captions in .*annotations: expected captions_train2017"):
        read_coco(tmp_path)
    write_coco(tmp_path, "2017")
    (tmp_path / "val2017").rename(tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError, match="val2017 not found: expected the val2017 images"):
        read_coco(tmp_path)
    (tmp_path / "elsewhere").rename(tmp_path / "val2017")
    (tmp_path / "annotations" / "captions_val2017.json").write_text("{not json")
    with pytest.raises(ValueError, match="captions_val2017.json is not valid JSON"):
        read_coco(tmp_path)
    (tmp_path / "annotations" / "captions_val2017.json").write_text("[]")
    with pytest.raises(ValueError, match="captions_val2017.json is not a COCO captions file"):
        read_coco(tmp_path)


def karpathy_image(filename: str, split: str, *captions: str, **extra) -> dict:
    return {"filename": filename, "split": split, "sentences": [{"raw": caption} for caption in captions], **extra}


@pytest.fixture
def karpathy(tmp_path: Path) -> Path:
    """A tiny Karpathy COCO split with one bad entry or more of every kind."""
    touch_images(tmp_path / "images" / "train2014", "t.jpg", "r.jpg", "n.jpg", "u.jpg")
    touch_images(tmp_path / "images" / "val2014", "v.jpg", "s.jpg")
    images = [
        karpathy_image("t.jpg", "train", "A dog.", "", filepath="train2014", cocoid=1),
        karpathy_image("r.jpg", "restval", "A cat.", filepath="train2014", cocoid=2),
        karpathy_image("v.jpg", "val", "A bird.", filepath="val2014", cocoid=3),
        karpathy_image("s.jpg", "test", "A fish.", filepath="val2014", cocoid=4),
        karpathy_image("m.jpg", "train", "Missing.", filepath="train2014", cocoid=5),
        karpathy_image("n.jpg", "train", filepath="train2014", cocoid=6),
        karpathy_image("u.jpg", "holdout", "Unknown split.", filepath="train2014", cocoid=7),
        {"split": "train", "sentences": []},
        karpathy_image("x.jpg", "train", filepath="train2014") | {"sentences": [{"tokens": ["no", "raw"]}]},
        "not an image entry",
    ]
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"dataset": "coco", "images": images}))
    return path


def test_karpathy_maps_splits_and_counts_bad_entries(karpathy):
    records, report = read_karpathy(karpathy, karpathy.parent / "images")

    assert [(record.image_id, record.split, record.captions) for record in records] == [
        ("1", "train", ("A dog.",)),
        ("2", "train", ("A cat.",)),
        ("3", "dev", ("A bird.",)),
        ("4", "test", ("A fish.",)),
    ]
    assert records[2].image == karpathy.parent / "images" / "val2014" / "v.jpg"
    assert report.source == "Karpathy coco"
    assert counts(report) == {
        "records": 4, "missing_image": 1, "empty_caption": 1, "uncaptioned": 1, "unknown_image": 1, "malformed": 3
    }


def test_karpathy_flickr_images_are_keyed_by_file_name(tmp_path):
    touch_images(tmp_path, "a.jpg")
    path = tmp_path / "dataset_flickr8k.json"
    path.write_text(json.dumps({"dataset": "flickr8k", "images": [karpathy_image("a.jpg", "train", "A dog.")]}))

    records, _ = read_karpathy(path, tmp_path)

    assert records[0].image_id == "a.jpg"
    assert records[0].image == tmp_path / "a.jpg"


def test_karpathy_errors_name_the_file(karpathy):
    with pytest.raises(FileNotFoundError, match="nowhere.json not found: expected a Karpathy split file"):
        read_karpathy(karpathy.parent / "nowhere.json", karpathy.parent)
    with pytest.raises(FileNotFoundError, match="no-images not found: expected the folder of the images"):
        read_karpathy(karpathy, karpathy.parent / "no-images")
    karpathy.write_text(json.dumps({"dataset": "coco"}))
    with pytest.raises(ValueError, match="dataset_coco.json is not a Karpathy split file"):
        read_karpathy(karpathy, karpathy.parent)


def test_read_dataset_dispatches_on_the_format_name(flickr8k, karpathy):
    assert read_dataset("flickr8k", flickr8k)[1].records == 4
    assert read_dataset("karpathy", karpathy, karpathy.parent / "images")[1].records == 4
    with pytest.raises(ValueError, match="karpathy format needs the images folder"):
        read_dataset("karpathy", karpathy)
    with pytest.raises(ValueError, match="unknown dataset format 'flickr30k': expected one of flickr8k, coco, kar"):
        read_dataset("flickr30k", flickr8k)


def test_real_flickr8k(flickr8k_dir):
    started = time.perf_counter()
    records, report = read_flickr8k(flickr8k_dir)
    elapsed = time.perf_counter() - started

    assert Counter(record.split for record in records) == {"train": 6000, "dev": 1000}
    assert all(len(record.captions) == 5 for record in records)
    assert report.records == 7000 and report.skipped == 0
    assert elapsed < 5
