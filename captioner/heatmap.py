"""Attention pictures: a heatmap over the photo for each word, as a strip like the paper's figures or a web page.

The page's markup, style and script are package data (`templates/`, `static/`); this module only fills them in.
"""
from __future__ import annotations

import base64
import functools
import html
import os
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from io import BytesIO
from string import Template
from typing import Any

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .atomic import atomic_file
from .resample import resize_bicubic

ALPHA, COLORMAP = 0.6, "inferno"  # how heat is laid over photos, here and in the gallery page


def overlay(image: Image.Image, attention: np.ndarray, alpha: float = ALPHA, colormap: str = COLORMAP) -> Image.Image:
    """`image` with the (h, w) `attention` map smoothly upsampled, coloured and blended over it at weight `alpha`."""
    attention = np.asarray(attention, dtype=np.float32)
    if attention.ndim != 2 or attention.size == 0:
        raise ValueError(f"attention must be a non-empty (h, w) map, got shape {attention.shape}")
    return overlays(image, attention[None], alpha, colormap)[0]


def overlays(
    image: Image.Image, attention: np.ndarray, alpha: float = ALPHA, colormap: str = COLORMAP
) -> list[Image.Image]:
    """`overlay` for each map of `attention` (T, h, w), at a fraction of the cost of one each."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    maps = _checked_maps(attention)
    # The colormap as a 256-colour palette, made once for all maps: Pillow colours a map of levels with it
    # at one byte per pixel, where colours(level) would take 32.
    palette = _palette(colormap)
    photo = image.convert("RGB")
    blended = []
    for levels in _upsampled_levels(maps, photo.size):
        heat = Image.fromarray(levels)
        heat.putpalette(palette)
        blended.append(Image.blend(photo, heat.convert("RGB"), alpha))
    return blended


def _upsampled_levels(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Maps (T, h, w) resampled to `size` (width, height) as Pillow's bicubic filter does, each stretched over
    0-255: (T, height, width) uint8.

    Stretching after upsampling puts the peak exactly on the colormap's hottest end and folds bicubic's overshoot
    into the range instead of clipping it.
    """
    smooth = resize_bicubic(maps, size)  # (T, H, W)
    low, high = smooth.min(axis=(1, 2), keepdims=True), smooth.max(axis=(1, 2), keepdims=True)
    smooth -= low
    smooth *= np.divide(255, high - low, out=np.zeros_like(low), where=high > low)
    return np.rint(smooth, out=smooth).astype(np.uint8)


def strip(image: Image.Image, words: Sequence[str], attention: np.ndarray, **layout: int) -> Image.Image:
    """The photo, then one heatmap panel per word with the word written under it; `layout` is `strip_pixels`'s
    `panel_size` and `per_row`."""
    return Image.fromarray(strip_pixels(image, words, attention, **layout))


def strip_pixels(
    image: Image.Image,
    words: Sequence[str],
    attention: np.ndarray,
    panel_size: int = 224,
    per_row: int = 6,
) -> np.ndarray:
    """The photo, then one heatmap panel per word with the word written under it, at most `per_row` panels to a
    row and as few rows as that allows, evenly filled; as an (H, W, 3) uint8 array, which `png.png_bytes` takes
    without a round trip through Pillow.

    Panels are square, as the encoder sees the photo, so each attention cell lands where it looked.
    """
    maps = _word_maps(words, attention)
    if panel_size < 1 or per_row < 1:
        raise ValueError(f"panel_size and per_row must be positive, got {panel_size} and {per_row}")
    photo = image.convert("RGB").resize((panel_size, panel_size), Image.Resampling.BICUBIC)
    panels = [photo, *overlays(photo, maps)]
    labels = ["", *words]

    label_height = len(_label(labels[0], panel_size))
    rows = -(-len(panels) // per_row)
    columns = -(-len(panels) // rows)  # 9 panels in rows of 5 and 4, not 6 and 3: no more blank than needed
    sheet = np.full((rows * (panel_size + label_height), columns * panel_size, 3), 255, np.uint8)
    for index, (panel, label) in enumerate(zip(panels, labels)):
        row, column = divmod(index, columns)
        left, top = column * panel_size, row * (panel_size + label_height)
        sheet[top : top + panel_size, left : left + panel_size] = np.asarray(panel)
        sheet[top + panel_size : top + panel_size + label_height, left : left + panel_size] = _label(label, panel_size)
    return sheet


def gallery_entry_html(entry: Mapping[str, Any] | Any, panel_size: int = 224) -> str:
    """One image of the gallery as an HTML fragment: its photo as a JPEG data URI and, on each word, the word's
    attention map as bytes, which the page colours over the photo when the word is hovered or clicked.

    `entry` is a mapping or an object with `image` (display name), `caption`, `words`, `photo` (PIL image)
    and `attention` (T, h, w).
    """
    name, caption, words, photo, attention = (
        _field(entry, field) for field in ("image", "caption", "words", "photo", "attention")
    )
    maps = _checked_maps(_word_maps(words, attention))
    thumbnail = photo.convert("RGB")
    thumbnail.thumbnail((panel_size, panel_size))
    word_html = _template("word.html")
    buttons = "".join(
        word_html.substitute(levels=_map_levels(word_map), word=html.escape(str(word)))
        for word, word_map in zip(words, maps)
    )
    rows, columns = maps.shape[1:]
    return _template("entry.html").substitute(
        rows=rows, columns=columns, photo=_jpeg_data_uri(thumbnail), width=thumbnail.width, height=thumbnail.height,
        name=html.escape(str(name)), caption=html.escape(str(caption)), words=buttons,
    )


def write_gallery_page(fragments: Iterable[str], path: str | os.PathLike, title: str = "Captions") -> None:
    """Assemble `fragments` from gallery_entry_html into one self-contained page, consuming them one at a time."""
    before, after = _gallery_page(title)
    with atomic_file(path) as file:
        file.write(before.encode())
        for fragment in fragments:
            file.write(fragment.encode())
        file.write(after.encode())


def _gallery_page(title: str) -> tuple[str, str]:
    """The page that holds gallery entries, with its style, script and heat colours inline: (the HTML before
    the entries, the HTML after them)."""
    before, _, after = _template("page.html").template.partition("${entries}")
    values = {"title": html.escape(title), "style": _package_text("static", "gallery.css"),
              "script": _package_text("static", "gallery.js"),
              "palette": base64.b64encode(_palette(COLORMAP)).decode("ascii"), "alpha": ALPHA}
    return Template(before).substitute(values), Template(after).substitute(values)


def _template(name: str) -> Template:
    return Template(_package_text("templates", name))


@functools.lru_cache(maxsize=None)
def _package_text(folder: str, name: str) -> str:
    return (resources.files(__package__) / folder / name).read_text(encoding="utf-8")


def _word_maps(words: Sequence[str], attention: np.ndarray) -> np.ndarray:
    maps = np.asarray(attention, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[0] != len(words):
        raise ValueError(
            f"attention must be (words, h, w) with one map per word; got {maps.shape} for {len(words)} words"
        )
    return maps


@functools.lru_cache(maxsize=4096)
def _label(word: str, panel_size: int) -> np.ndarray:
    """The word, centred in black on white, as wide as a panel, (height, panel_size, 3) uint8: captions share most
    of their words, so each is rendered once."""
    font = ImageFont.load_default(size=max(10, panel_size // 12))
    label = Image.new("RGB", (panel_size, round(font.size * 1.8)), "white")
    ImageDraw.Draw(label).text((label.width / 2, label.height / 2), word, fill="black", font=font, anchor="mm")
    pixels = np.asarray(label)
    pixels.flags.writeable = False  # shared by every strip that has this word
    return pixels


def _checked_maps(attention: np.ndarray) -> np.ndarray:
    maps = np.asarray(attention, dtype=np.float32)
    if maps.ndim != 3 or 0 in maps.shape[1:]:
        raise ValueError(f"attention must be non-empty (h, w) maps, got shape {maps.shape}")
    if not np.isfinite(maps).all():
        raise ValueError("attention contains NaN or infinity")
    return maps


@functools.lru_cache(maxsize=8)
def _palette(colormap: str) -> bytes:
    """The colormap as 256 RGB colours, 768 bytes."""
    try:
        colours = matplotlib.colormaps[colormap]
    except KeyError:
        raise ValueError(f"unknown colormap {colormap!r}") from None
    return np.round(colours(np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8).tobytes()


def _map_levels(word_map: np.ndarray) -> str:
    """One map as base64 bytes, stretched over 0-255. The page upsamples each map and stretches the result over
    the colormap, as `overlay` does, so the stretch here changes nothing but rounding, and a 13x13 map takes
    169 bytes, far fewer than a coloured image of it."""
    low, high = word_map.min(), word_map.max()
    levels = np.round((word_map - low) * (255 / (high - low))) if high > low else np.zeros_like(word_map)
    return base64.b64encode(levels.astype(np.uint8).tobytes()).decode("ascii")


def _field(entry: Mapping[str, Any] | Any, name: str) -> Any:
    try:
        return entry[name] if isinstance(entry, Mapping) else getattr(entry, name)
    except (KeyError, AttributeError):
        raise ValueError(f"gallery entry has no {name!r}") from None


def _jpeg_data_uri(image: Image.Image) -> str:
    buffer = BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
