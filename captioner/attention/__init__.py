"""Attention kinds behind one contract: `attend(features, hidden) -> Glimpse(context, alpha, ...)` (see `base`)."""
from .. import names
from .base import Attention, Glimpse
from .hard import HardAttention
from .local_global import LocalGlobalAttention
from .scores import SCORES
from .soft import SoftAttention

ATTENTIONS = dict(zip(names.ATTENTIONS, (SoftAttention, HardAttention, LocalGlobalAttention), strict=True))


def kind_of(attention: Attention) -> str:
    """The name `make_attention` knows an attention layer's kind by."""
    return next(kind for kind, layer in ATTENTIONS.items() if type(attention) is layer)


def make_attention(kind: str, grid_shape, units=512, score="additive", **options) -> Attention:
    """One attention layer by name; only local+global needs the grid's shape."""
    if kind not in ATTENTIONS:
        raise ValueError(f"unknown attention {kind!r}; choose one of {', '.join(ATTENTIONS)}")
    if kind == "local-global":
        options["grid_shape"] = grid_shape
    return ATTENTIONS[kind](units=units, score=score, name=kind.replace("-", "_"), **options)


__all__ = ["ATTENTIONS", "SCORES", "Attention", "Glimpse", "HardAttention", "LocalGlobalAttention",
           "SoftAttention", "kind_of", "make_attention"]
