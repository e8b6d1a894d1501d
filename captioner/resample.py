"""Pillow's bicubic resampling in numpy, for many small maps at once: the heatmaps' upsampler."""
from __future__ import annotations

import functools

import numpy as np


def resize_bicubic(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Maps (T, h, w) float32 resampled to `size` (width, height) as Pillow's bicubic filter resizes each one:
    (T, height, width) float32.

    All maps at once, each output a weighted sum of a few gathered inputs. Not as matmuls: OpenBLAS splits those
    over threads that fight the model's own for the cores while a folder is captioned.
    """
    wide = _resample(maps, size[0], axis=2)  # (T, h, W), across first as Pillow does
    return _resample(wide, size[1], axis=1)  # (T, H, W)


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
    weights of it and the ones after it (size, taps), as Pillow's bicubic filter (a = -0.5) and the gallery
    page's `taps()` compute them. Outputs near an edge read fewer inputs: their last weights are 0."""
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
