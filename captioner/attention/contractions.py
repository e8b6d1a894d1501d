"""The two batched matrix-vector products attention is made of, with gradients TensorFlow computes fast, and the
key projection: what attention does with the (B, L, ·) feature grid.

Each product's gradient with respect to its (B, L, ·) operand is an outer product. TensorFlow differentiates an
einsum into another einsum and runs that outer product as a batched matmul whose inner size is 1, which on a CPU
takes several times as long as broadcasting; the decoder's backward pass spent most of its time there. With the
decoder's Standardised features, neither the weighted sum nor the projection differentiates into the grid at all.
"""
from typing import Any, NamedTuple

from keras import ops


class Standardised(NamedTuple):
    """Layer-normalised features kept as their parts, `scale * normalised + offset`, for `weighted_sum`.

    Σ_l w_l (scale a_l + offset) = scale Σ_l w_l a_l + offset Σ_l w_l, and `normalised` comes from the image
    alone: so the per-word gradient of the (B, L, C) features, an outer product that the decoder's loop would
    add up at every step, is never built, unless the encoder trains and `normalised` needs it.
    """

    normalised: Any  # (B, L, C)
    scale: Any  # (C,)
    offset: Any  # (C,)


def weighted_sum(weights, values):
    """Σ_l weights[b, l] values[b, l]: weights (B, L), values (B, L, C) or Standardised → (B, C)."""
    if isinstance(values, Standardised):
        total = ops.sum(weights, axis=-1, keepdims=True)  # (B, 1)
        return values.scale * _weighted_sum(weights, values.normalised) + values.offset * total
    return _weighted_sum(weights, values)


@ops.custom_gradient
def _weighted_sum(weights, values):
    def gradient(*args, upstream=None):
        upstream = args[0] if upstream is None else upstream  # (B, C)
        return ops.einsum("bc,blc->bl", upstream, values), weights[..., None] * upstream[:, None, :]

    return ops.einsum("bl,blc->bc", weights, values), gradient


@ops.custom_gradient
def match(keys, query):
    """keys[b, l] · query[b]: keys (B, L, A), query (B, A) → (B, L)."""

    def gradient(*args, upstream=None):
        upstream = args[0] if upstream is None else upstream  # (B, L)
        return upstream[..., None] * query[:, None, :], ops.einsum("bl,bla->ba", upstream, keys)

    return ops.einsum("bla,ba->bl", keys, query), gradient


def project(dense, values):
    """`dense(values)`, with Standardised values' scale and offset folded into the kernel and bias: the
    projection then differentiates into its weights and the norm's, never into the (B, L, C) features."""
    if not isinstance(values, Standardised):
        return dense(values)
    projected = ops.tensordot(values.normalised, values.scale[:, None] * dense.kernel, axes=1)
    offset = ops.matmul(values.offset[None], dense.kernel)[0]
    return projected + (offset + dense.bias if dense.use_bias else offset)
