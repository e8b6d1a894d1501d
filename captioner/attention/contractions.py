"""The two batched matrix-vector products attention is made of, with gradients TensorFlow computes fast.

Each one's gradient with respect to its (B, L, ·) operand is an outer product. TensorFlow differentiates an einsum
into another einsum and runs that outer product as a batched matmul whose inner size is 1, which on a CPU takes
several times as long as broadcasting; the decoder's backward pass spent most of its time there.
"""
from keras import ops


@ops.custom_gradient
def weighted_sum(weights, values):
    """Σ_l weights[b, l] values[b, l]: weights (B, L), values (B, L, C) → (B, C)."""

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
