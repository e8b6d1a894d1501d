"""Load whatever photo a user points at as 8-bit RGB, or say in one line why it cannot be used."""
from __future__ import annotations

import os
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

SUPPORTED_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})

_BACKGROUND = (255, 255, 255)
# What Pillow raises when the bytes behind a valid header do not decode.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)


class ImageError(ValueError):
    """An image that cannot be used; the message is a plain one-line reason (callers add the file name)."""


def load_image(source: str | os.PathLike | Image.Image) -> Image.Image:
    """Decode `source` fully and return it upright, as 8-bit RGB, first frame only."""
    if isinstance(source, Image.Image):
        return _decode(source)
    path = Path(source)
    try:
        # Pillow only warns between its pixel limit and twice that; a warnings context makes it an
        # error for this call without touching the process-wide Image.MAX_IMAGE_PIXELS.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except FileNotFoundError as error:
        raise ImageError("no such file") from error
    except PermissionError as error:
        raise ImageError("cannot read: permission denied") from error
    except IsADirectoryError as error:
        raise ImageError("cannot read: is a directory") from error
    except UnidentifiedImageError as error:
        raise ImageError("empty file" if path.stat().st_size == 0 else "not an image") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        pixels = re.search(r"\d+ pixels", str(error))
        raise ImageError(f"decompression bomb: {pixels.group()}" if pixels else "decompression bomb") from error
    except OSError as error:
        raise ImageError(f"cannot read: {(error.strerror or str(error)).lower()}") from error
    with image:
        return _decode(image)


def to_array(image: Image.Image, size: tuple[int, int] = (224, 224)) -> np.ndarray:
    """The image resized to `size` (width, height, as Pillow counts), as float32 (height, width, 3) RGB in 0..255.

    No normalisation: each encoder applies its own.
    """
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"size must be two positive integers, got {size!r}")
    # Pillow's bicubic widens its kernel when shrinking, so downscaling is antialiased.
    resized = _to_rgb(image).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.float32)


def _decode(image: Image.Image) -> Image.Image:
    """Decode now, so truncation surfaces here rather than in whoever uses the pixels later."""
    try:
        image.seek(0)
        image.load()
        upright = ImageOps.exif_transpose(image)
    except _DECODE_ERRORS as error:
        raise ImageError("truncated or corrupt image") from error
    return _to_rgb(upright)


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: deep images scaled down, transparency composited on white."""
    if image.mode.startswith("I") or image.mode == "F":
        image = _to_8bit_gray(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        image = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", image.size, _BACKGROUND), image).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise ImageError(f"unsupported colour mode {image.mode}") from error


def _to_8bit_gray(image: Image.Image) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        scaled = pixels / 257  # 65535 -> 255 exactly
    else:
        # 32-bit integer and float images have no nominal range, so stretch the one they use.
        low, high = pixels.min(), pixels.max()
        scaled = (pixels - low) * (255 / (high - low)) if high > low else np.zeros_like(pixels)
    return Image.fromarray(np.rint(scaled).astype(np.uint8))
