"""Attention pictures: a heatmap over the photo for each word, as a strip like the paper's figures or a web page."""
from __future__ import annotations

import base64
import html
import os
import struct
from collections.abc import Iterable, Mapping, Sequence
from io import BytesIO
from string import Template
from typing import Any

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from zlib_ng import zlib_ng as zlib

from .atomic import atomic_file


def overlay(
    image: Image.Image, attention: np.ndarray, alpha: float = 0.6, colormap: str = "inferno"
) -> Image.Image:
    """`image` with the (h, w) `attention` map smoothly upsampled, coloured and blended over it at weight `alpha`."""
    attention = np.asarray(attention, dtype=np.float32)
    if attention.ndim != 2 or attention.size == 0:
        raise ValueError(f"attention must be a non-empty (h, w) map, got shape {attention.shape}")
    return overlays(image, attention[None], alpha, colormap)[0]


def overlays(
    image: Image.Image, attention: np.ndarray, alpha: float = 0.6, colormap: str = "inferno"
) -> list[Image.Image]:
    """`overlay` for each map of `attention` (T, h, w), at the cost of one."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    maps = np.asarray(attention, dtype=np.float32)
    if maps.ndim != 3 or 0 in maps.shape[1:]:
        raise ValueError(f"attention must be non-empty (h, w) maps, got shape {maps.shape}")
    if not np.isfinite(maps).all():
        raise ValueError("attention contains NaN or infinity")
    try:
        colours = matplotlib.colormaps[colormap]
    except KeyError:
        raise ValueError(f"unknown colormap {colormap!r}") from None

    photo = image.convert("RGB")
    # The colormap as a 256-colour palette, made once for all maps: Pillow colours a map of levels with it
    # at one byte per pixel, where colours(level) would take 32.
    palette = np.round(colours(np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8).tobytes()
    blended = []
    for word_map in maps:
        smooth = np.asarray(Image.fromarray(word_map).resize(photo.size, Image.Resampling.BICUBIC))  # (H, W)
        # Normalising after upsampling puts the peak exactly on the colormap's hottest end and folds
        # bicubic's overshoot into the range instead of clipping it.
        low, high = smooth.min(), smooth.max()
        scale = 255 / (high - low) if high > low else 0.0
        heat = Image.fromarray(np.round((smooth - low) * scale).astype(np.uint8))
        heat.putpalette(palette)
        blended.append(Image.blend(photo, heat.convert("RGB"), alpha))
    return blended


def strip(
    image: Image.Image,
    words: Sequence[str],
    attention: np.ndarray,
    panel_size: int = 224,
    per_row: int = 6,
) -> Image.Image:
    """The photo, then one heatmap panel per word with the word written under it, `per_row` panels to a row.

    Panels are square, as the encoder sees the photo, so each attention cell lands where it looked.
    """
    maps = _word_maps(words, attention)
    if panel_size < 1 or per_row < 1:
        raise ValueError(f"panel_size and per_row must be positive, got {panel_size} and {per_row}")
    photo = image.convert("RGB").resize((panel_size, panel_size), Image.Resampling.BICUBIC)
    panels = [photo, *overlays(photo, maps)]
    labels = ["", *words]

    font = ImageFont.load_default(size=max(10, panel_size // 12))
    label_height = round(font.size * 1.8)
    columns = min(per_row, len(panels))
    rows = -(-len(panels) // columns)
    sheet = Image.new("RGB", (columns * panel_size, rows * (panel_size + label_height)), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (panel, label) in enumerate(zip(panels, labels)):
        row, column = divmod(index, columns)
        left, top = column * panel_size, row * (panel_size + label_height)
        sheet.paste(panel, (left, top))
        centre = (left + panel_size / 2, top + panel_size + label_height / 2)
        draw.text(centre, label, fill="black", font=font, anchor="mm")
    return sheet


def gallery_entry_html(entry: Mapping[str, Any] | Any, panel_size: int = 224) -> str:
    """One image of the gallery as an HTML fragment, its photo and per-word heatmaps inlined as JPEG data URIs.

    `entry` is a mapping or an object with `image` (display name), `caption`, `words`, `photo` (PIL image)
    and `attention` (T, h, w).
    """
    name, caption, words, photo, attention = (
        _field(entry, field) for field in ("image", "caption", "words", "photo", "attention")
    )
    maps = _word_maps(words, attention)
    thumbnail = photo.convert("RGB")
    thumbnail.thumbnail((panel_size, panel_size))
    buttons = " ".join(
        f'<button type="button" class="word" data-heat="{_jpeg_data_uri(heat)}">{html.escape(str(word))}</button>'
        for word, heat in zip(words, overlays(thumbnail, maps))
    )
    return (
        '<figure class="entry">'
        f'<img class="photo" src="{_jpeg_data_uri(thumbnail)}" alt="{html.escape(str(name))}"'
        f' width="{thumbnail.width}" height="{thumbnail.height}">'
        f'<figcaption><span class="name">{html.escape(str(name))}</span>'
        f'<span class="caption">{html.escape(str(caption))}</span>'
        f'<span class="words">{buttons}</span></figcaption>'
        "</figure>\n"
    )


def write_gallery_page(fragments: Iterable[str], path: str | os.PathLike, title: str = "Captions") -> None:
    """Assemble `fragments` from gallery_entry_html into one self-contained page, consuming them one at a time."""
    with atomic_file(path) as file:
        file.write(Template(_PAGE_HEAD).substitute(title=html.escape(title)).encode())
        for fragment in fragments:
            file.write(fragment.encode())
        file.write(_PAGE_TAIL.encode())


def write_gallery(
    entries: Iterable[Mapping[str, Any] | Any],
    path: str | os.PathLike,
    panel_size: int = 224,
    title: str = "Captions",
) -> None:
    """One offline HTML page listing every entry with its caption; hovering or clicking a word shows its heatmap."""
    fragments = (gallery_entry_html(entry, panel_size=panel_size) for entry in entries)
    write_gallery_page(fragments, path, title=title)


def save_png(image: Image.Image, path: str | os.PathLike) -> None:
    """Save `image` as an RGB PNG; `path` only ever holds a complete file."""
    with atomic_file(path) as file:
        file.write(png_bytes(np.asarray(image.convert("RGB"))))


def png_bytes(pixels: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 array as PNG, every row "Up"-filtered and run-length deflated.

    Pillow tries all five PNG filters on every row, which costs more than the compression, and zlib-ng deflates
    run-length data about twice as fast as zlib: a heatmap strip takes a third of Pillow's time, for files as small.
    """
    height, width, _ = pixels.shape
    flat = pixels.reshape(height, -1)
    rows = np.empty((height, flat.shape[1] + 1), np.uint8)  # each row starts with its filter type
    rows[:, 0] = 2  # Up: the difference to the row above (modulo 256), which photos and smooth heatmaps keep small
    rows[0, 1:] = flat[0]
    np.subtract(flat[1:], flat[:-1], out=rows[1:, 1:])
    deflate = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits per channel, RGB, no interlace
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        _png_chunk(kind, data)
        for kind, data in ((b"IHDR", header), (b"IDAT", deflate.compress(rows) + deflate.flush()), (b"IEND", b""))
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _word_maps(words: Sequence[str], attention: np.ndarray) -> np.ndarray:
    maps = np.asarray(attention, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[0] != len(words):
        raise ValueError(
            f"attention must be (words, h, w) with one map per word; got {maps.shape} for {len(words)} words"
        )
    return maps


def _field(entry: Mapping[str, Any] | Any, name: str) -> Any:
    try:
        return entry[name] if isinstance(entry, Mapping) else getattr(entry, name)
    except (KeyError, AttributeError):
        raise ValueError(f"gallery entry has no {name!r}") from None


def _jpeg_data_uri(image: Image.Image) -> str:
    buffer = BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


_PAGE_HEAD = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>$title</title>
<style>
body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; background: #fafafa; }
main { display: flex; flex-wrap: wrap; gap: 1.25rem; }
main:empty::after { content: "No images."; color: #888; }
.entry { margin: 0; width: min-content; }
.photo { display: block; border-radius: 4px; }
figcaption { display: flex; flex-direction: column; gap: .25rem; margin-top: .4rem; }
.name { font-size: 12px; color: #777; overflow-wrap: anywhere; }
.words { display: flex; flex-wrap: wrap; gap: .2rem; }
.word { font: inherit; padding: 0 .3rem; border: 1px solid #ccc; border-radius: 3px; background: #fff; cursor: pointer; }
.word.active { background: #fde68a; border-color: #d97706; }
.word.pinned { font-weight: 600; }
</style>
</head>
<body>
<h1>$title</h1>
<p>Hover over or click a word to see where the model looked while writing it.</p>
<main>"""

_PAGE_TAIL = """</main>
<script>
"use strict";
const wordAt = (target) => (target instanceof Element ? target.closest(".word") : null);

function show(word) {
  const entry = word.closest(".entry");
  const photo = entry.querySelector(".photo");
  photo.dataset.original ??= photo.getAttribute("src");
  photo.src = word.dataset.heat;
  entry.querySelectorAll(".word").forEach((other) => other.classList.toggle("active", other === word));
}

// Back to the pinned word if there is one, else to the photo.
function settle(entry) {
  const pinned = entry.querySelector(".word.pinned");
  if (pinned) return show(pinned);
  const photo = entry.querySelector(".photo");
  if (photo.dataset.original) photo.src = photo.dataset.original;
  entry.querySelectorAll(".word.active").forEach((word) => word.classList.remove("active"));
}

for (const type of ["mouseover", "focusin"]) {
  document.addEventListener(type, (event) => {
    const word = wordAt(event.target);
    if (word) show(word);
  });
}
for (const type of ["mouseout", "focusout"]) {
  document.addEventListener(type, (event) => {
    const word = wordAt(event.target);
    if (word && !word.contains(event.relatedTarget)) settle(word.closest(".entry"));
  });
}
// A click pins a word (touch screens have no hover); clicking it again unpins.
document.addEventListener("click", (event) => {
  const word = wordAt(event.target);
  if (!word) return;
  const pin = !word.classList.contains("pinned");
  word.closest(".entry").querySelectorAll(".word.pinned").forEach((other) => other.classList.remove("pinned"));
  word.classList.toggle("pinned", pin);
  settle(word.closest(".entry"));
});
</script>
</body>
</html>
"""
