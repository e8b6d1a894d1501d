"""Reader for Flickr8k in its original layout."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from captioner.data.records import SPLITS, ReadReport, Record, RecordBuilder, require

LAYOUT = "a Flickr8k folder with Flickr8k.token.txt, Flickr_8k.{train,dev,test}Images.txt and Images/"


def read_flickr8k(root: Path, images: Path | None = None) -> tuple[list[Record], ReadReport]:
    """Records of the images listed in the split files under root; images defaults to root/Images.

    The test list may be absent: captions of images no split lists are then counted as images in no split.
    """
    root = Path(root)
    images = root / "Images" if images is None else Path(images)
    captions_file = root / "Flickr8k.token.txt"
    split_files = {split: root / f"Flickr_8k.{split}Images.txt" for split in SPLITS}
    require(root, captions_file, split_files["train"], split_files["dev"], images, expected=LAYOUT)

    builder = RecordBuilder("Flickr8k")
    for split, split_file in split_files.items():
        if split_file.exists():
            for name in map(str.strip, _lines(split_file)):
                builder.add_image(name, images / name, split)
    for line in _lines(captions_file):
        key, tab, caption = line.partition("\t")
        name, hash_sign, number = key.partition("#")
        if tab and hash_sign and number.isdigit():
            builder.add_caption(name, caption)
        else:
            builder.malformed()
    return builder.build()


def _lines(path: Path) -> Iterator[str]:
    """The non-blank lines of a text file, without their line ends."""
    try:
        with open(path, encoding="utf-8") as file:
            yield from (line.rstrip("\r\n") for line in file if line.strip())
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text: {error}") from None
