"""A PNG writer for RGB pixels, quicker than Pillow's for heatmap strips: one filter, ISA-L's deflate."""
from __future__ import annotations

import os
import struct

import numpy as np
from isal import isal_zlib
from PIL import Image

from .atomic import atomic_file


def save_png(image: Image.Image | np.ndarray, path: str | os.PathLike) -> None:
    """Save `image` (or (H, W, 3) uint8 pixels) as an RGB PNG; `path` only ever holds a complete file."""
    pixels = image if isinstance(image, np.ndarray) else np.asarray(image.convert("RGB"))
    with atomic_file(path) as file:
        file.write(png_bytes(pixels))


def png_bytes(pixels: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 array as PNG, every row "Sub"-filtered and deflated by ISA-L at level 1.

    Pillow tries all five PNG filters on every row, which costs more than the compression, and ISA-L's level 1
    deflates faster than zlib's level 1 to about the same size.
    """
    height, width, _ = pixels.shape
    flat = pixels.reshape(height, -1)
    rows = np.empty((height, flat.shape[1] + 1), np.uint8)  # each row starts with its filter type
    rows[:, 0] = 1  # Sub: the difference to the pixel on the left (modulo 256), which photos and heatmaps keep small
    rows[:, 1:4] = flat[:, :3]
    np.subtract(flat[:, 3:], flat[:, :-3], out=rows[:, 4:])
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits per channel, RGB, no interlace
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        _chunk(kind, data) for kind, data in ((b"IHDR", header), (b"IDAT", isal_zlib.compress(rows, 1)), (b"IEND", b""))
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = isal_zlib.crc32(data, isal_zlib.crc32(kind))  # not crc32(kind + data): that copies a megabyte of IDAT
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
