"""Show, Attend and Tell image captioning on Keras 3, with a heatmap for every word.

The public API is imported lazily, so `captioner --help` and `import captioner` do not load TensorFlow.
"""
import os
from importlib import import_module

# TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX512-VNNI, BF16 or AMX. On the others (this
# project's AVX2 test machines among them) they still train, encode images and beam-search faster
# (bench/README.md).
# TensorFlow reads the switch once, as it loads, so it is set here, before any of our modules imports TensorFlow;
# a value the user set stands.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

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
