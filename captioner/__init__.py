"""Show, Attend and Tell image captioning on Keras 3, with a heatmap for every word.

The public API is imported lazily, so `captioner --help` and `import captioner` do not load TensorFlow.
"""
from importlib import import_module

_PUBLIC = {
    "Captioner": "captioner.api",
    "Caption": "captioner.api",
    "TrainConfig": "captioner.config",
    "score": "captioner.metrics",
    "caption_folder": "captioner.folder",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'captioner' has no attribute {name!r}")
    return getattr(import_module(_PUBLIC[name]), name)
