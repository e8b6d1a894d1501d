"""Attention pictures: a heatmap over the photo for each word, as a strip like the paper's figures or a web page."""
from __future__ import annotations

import base64
import functools
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
from isal import isal_zlib

from .atomic import atomic_file

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
    # All maps at once, each output a weighted sum of a few gathered inputs: a strip's overlays took 5.1 ms of CPU
    # beside the model, against 6.8 with Pillow resizing a map at a time. Not as matmuls: OpenBLAS splits them
    # over threads that fought the model's for both cores (folder captioning 1.4x slower).
    wide = _resample(maps, size[0], axis=2)  # (T, h, W), across first as Pillow does
    smooth = _resample(wide, size[1], axis=1)  # (T, H, W)
    low, high = smooth.min(axis=(1, 2), keepdims=True), smooth.max(axis=(1, 2), keepdims=True)
    smooth -= low
    smooth *= np.divide(255, high - low, out=np.zeros_like(low), where=high > low)
    return np.rint(smooth, out=smooth).astype(np.uint8)


def _resample(values: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Pillow's bicubic resampling of `values` along `axis` to `size`."""
    first, weights = _bicubic_taps(values.shape[axis], size)
    shape = [1] * values.ndim
    shape[axis] = size
    # In place, into two arrays: fresh temporaries for every tap cost more in page faults than in arithmetic.
    out = np.take(values, first, axis=axis)
    out *= weights[:, 0].reshape(shape)
    term = np.empty_like(out)
    for tap in range(1, weights.shape[1]):
        np.take(values, first + tap, axis=axis, out=term)
        term *= weights[:, tap].reshape(shape)
        out += term
    return out


@functools.lru_cache(maxsize=64)
def _bicubic_taps(length: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of `size` outputs from `length` inputs, the first input it reads (size,) and the normalised
    weights of it and the ones after it (size, taps), as Pillow's bicubic filter (a = -0.5) and the page's
    `taps()` compute them. Outputs near an edge read fewer inputs: their last weights are 0."""
    scale = length / size
    stretch = max(scale, 1.0)  # downsampling widens the filter
    spans = []
    for index in range(size):
        centre = (index + 0.5) * scale
        first = max(int(centre - 2 * stretch + 0.5), 0)
        end = min(int(centre + 2 * stretch + 0.5), length)
        weights = _cubic((np.arange(first, end) - centre + 0.5) / stretch)
        spans.append((first, weights / weights.sum()))
    taps = max(len(weights) for _, weights in spans)
    # Short spans are padded with zero weights; their first input moves left so every tap stays inside.
    firsts = np.array([min(first, length - taps) for first, _ in spans])
    weights = np.zeros((size, taps), np.float32)
    for row, ((first, span), start) in enumerate(zip(spans, firsts)):
        weights[row, first - start : first - start + len(span)] = span
    return firsts, weights


def _cubic(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1, (1.5 * x - 2.5) * x * x + 1, np.where(x < 2, ((-0.5 * x + 2.5) * x - 4) * x + 2, 0.0))


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
    row and as few rows as that allows, evenly filled; as an (H, W, 3) uint8 array, which `png_bytes` takes
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
    buttons = " ".join(
        f'<button type="button" class="word" data-map="{_map_levels(word_map)}">{html.escape(str(word))}</button>'
        for word, word_map in zip(words, maps)
    )
    rows, columns = maps.shape[1:]
    return (
        f'<figure class="entry" data-grid="{rows} {columns}">'
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
        palette = base64.b64encode(_palette(COLORMAP)).decode("ascii")
        file.write(Template(_PAGE_TAIL).substitute(palette=palette, alpha=ALPHA).encode())


def write_gallery(
    entries: Iterable[Mapping[str, Any] | Any],
    path: str | os.PathLike,
    panel_size: int = 224,
    title: str = "Captions",
) -> None:
    """One offline HTML page listing every entry with its caption; hovering or clicking a word shows its heatmap."""
    fragments = (gallery_entry_html(entry, panel_size=panel_size) for entry in entries)
    write_gallery_page(fragments, path, title=title)


def save_png(image: Image.Image | np.ndarray, path: str | os.PathLike) -> None:
    """Save `image` (or (H, W, 3) uint8 pixels) as an RGB PNG; `path` only ever holds a complete file."""
    pixels = image if isinstance(image, np.ndarray) else np.asarray(image.convert("RGB"))
    with atomic_file(path) as file:
        file.write(png_bytes(pixels))


def png_bytes(pixels: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 array as PNG, every row "Sub"-filtered and deflated by ISA-L.

    Pillow tries all five PNG filters on every row, which costs more than the compression, and ISA-L's level 1
    deflates a heatmap strip about 4x faster than zlib's level 1, to the same size (5.9 against 25.5 ms, 902
    against 914 kB, on real strips).
    """
    height, width, _ = pixels.shape
    flat = pixels.reshape(height, -1)
    rows = np.empty((height, flat.shape[1] + 1), np.uint8)  # each row starts with its filter type
    rows[:, 0] = 1  # Sub: the difference to the pixel on the left (modulo 256), which photos and heatmaps keep small
    rows[:, 1:4] = flat[:, :3]
    np.subtract(flat[:, 3:], flat[:, :-3], out=rows[:, 4:])
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits per channel, RGB, no interlace
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        _png_chunk(kind, data)
        for kind, data in ((b"IHDR", header), (b"IDAT", isal_zlib.compress(rows, 1)), (b"IEND", b""))
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = isal_zlib.crc32(data, isal_zlib.crc32(kind))  # not crc32(kind + data): that copies a megabyte of IDAT
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


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
    169 bytes where a coloured JPEG took 15 kB."""
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
const PALETTE = Uint8Array.from(atob("$palette"), (char) => char.charCodeAt(0));  // 256 RGB colours
const ALPHA = $alpha;
const wordAt = (target) => (target instanceof Element ? target.closest(".word") : null);

// Pillow's bicubic filter (a = -0.5) and its taps: the page's heatmaps match the strips', pixel for pixel.
function cubic(x) {
  x = Math.abs(x);
  return x < 1 ? (1.5 * x - 2.5) * x * x + 1 : x < 2 ? ((-0.5 * x + 2.5) * x - 4) * x + 2 : 0;
}

// For each of `size` outputs, the first input it reads from `length` inputs and the (normalised) weights.
function taps(length, size) {
  const scale = length / size, stretch = Math.max(scale, 1);
  return Array.from({ length: size }, (_, index) => {
    const centre = (index + 0.5) * scale;
    const first = Math.max(Math.trunc(centre - 2 * stretch + 0.5), 0);
    const end = Math.min(Math.trunc(centre + 2 * stretch + 0.5), length);
    const weights = [];
    for (let source = first; source < end; source++) weights.push(cubic((source - centre + 0.5) / stretch));
    const total = weights.reduce((sum, weight) => sum + weight, 0);
    return [first, weights.map((weight) => weight / total)];
  });
}

// levels (rows x columns), row-major → (height x width), columns first as Pillow does.
function upsample(levels, rows, columns, width, height) {
  const across = taps(columns, width), down = taps(rows, height);
  const wide = new Float32Array(rows * width);
  for (let row = 0; row < rows; row++) {
    across.forEach(([first, weights], x) => {
      let sum = 0;
      weights.forEach((weight, k) => (sum += weight * levels[row * columns + first + k]));
      wide[row * width + x] = sum;
    });
  }
  const out = new Float32Array(height * width);
  down.forEach(([first, weights], y) => {
    for (let x = 0; x < width; x++) {
      let sum = 0;
      weights.forEach((weight, k) => (sum += weight * wide[(first + k) * width + x]));
      out[y * width + x] = sum;
    }
  });
  return out;
}

const photoPixels = new WeakMap();  // entry → its photo's ImageData, read before any heatmap replaced it
const heatmaps = new WeakMap();  // word → its heatmap as a PNG data URI, drawn on first use

function heatmapOf(word) {
  if (heatmaps.has(word)) return heatmaps.get(word);
  const entry = word.closest(".entry");
  const photo = entry.querySelector(".photo");
  const canvas = document.createElement("canvas");
  canvas.width = photo.width;
  canvas.height = photo.height;
  const context = canvas.getContext("2d");
  if (!photoPixels.has(entry)) {
    context.drawImage(photo, 0, 0, canvas.width, canvas.height);
    photoPixels.set(entry, context.getImageData(0, 0, canvas.width, canvas.height));
  }
  const photoData = photoPixels.get(entry).data;
  const [rows, columns] = entry.dataset.grid.split(" ").map(Number);
  const levels = Uint8Array.from(atob(word.dataset.map), (char) => char.charCodeAt(0));
  const smooth = upsample(levels, rows, columns, canvas.width, canvas.height);
  // Stretched after upsampling, as in the strips: the peak lands on the colormap's hottest end.
  let low = Infinity, high = -Infinity;
  for (const value of smooth) { low = Math.min(low, value); high = Math.max(high, value); }
  const scale = high > low ? 255 / (high - low) : 0;
  const blended = context.createImageData(canvas.width, canvas.height);
  smooth.forEach((value, pixel) => {
    const colour = 3 * Math.round((value - low) * scale);
    for (let channel = 0; channel < 3; channel++) {
      const under = photoData[4 * pixel + channel];
      blended.data[4 * pixel + channel] = under + ALPHA * (PALETTE[colour + channel] - under);
    }
    blended.data[4 * pixel + 3] = 255;
  });
  context.putImageData(blended, 0, 0);
  heatmaps.set(word, canvas.toDataURL("image/png"));
  return heatmaps.get(word);
}

function show(word) {
  const entry = word.closest(".entry");
  const photo = entry.querySelector(".photo");
  const heatmap = heatmapOf(word);
  photo.dataset.original ??= photo.getAttribute("src");
  photo.src = heatmap;
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
