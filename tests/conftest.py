"""Shared fixtures: where the real data lives, and a Keras cache seeded with the shared SqueezeNet weights."""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SQUEEZENET_NAME = "squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5"

# Keras reads KERAS_HOME once, when it is imported, so the cache is seeded before any test imports it:
# `keras.utils.get_file` then finds the weights as it would after a download, and tests never touch ~/.keras.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="captioner-keras-home-")
if (SHARED_DATA / "encoders" / SQUEEZENET_NAME).exists():
    os.makedirs(Path(os.environ["KERAS_HOME"]) / "models")
    shutil.copy(SHARED_DATA / "encoders" / SQUEEZENET_NAME, Path(os.environ["KERAS_HOME"]) / "models")


def shared_path(relative: str) -> Path:
    """A path under ../shared/data; missing data fails under CI and skips elsewhere."""
    path = SHARED_DATA / relative
    if not path.exists():
        message = f"{path} is missing: the real data lives in ../shared/data beside the project"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def flickr8k_dir() -> Path:
    return shared_path("flickr8k")


@pytest.fixture(scope="session")
def squeezenet_file() -> Path:
    """The real SqueezeNet v1.1 weights (also seeded into the Keras cache above)."""
    return shared_path(f"encoders/{SQUEEZENET_NAME}")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, squeezenet_file) -> Path:
    """A small untrained captioner over the real SqueezeNet grid, saved as `Captioner.save` writes it.

    Its captions are nonsense, but every part of the pipeline (encoder, search, heatmaps, files) runs for real.
    """
    import keras

    from captioner.api import Captioner
    from captioner.model import show_attend_tell
    from captioner.vocab import Vocabulary

    keras.utils.set_random_seed(0)
    vocabulary = Vocabulary.build(["a dog runs on the grass", "a man rides a red bike", "two children play"], 1)
    model = show_attend_tell(len(vocabulary), 512, (13, 13), attention_units=32, embedding_dim=32, units=32)
    path = tmp_path_factory.mktemp("models") / "tiny"
    Captioner(model, vocabulary, {"backbone": "squeezenet", "image_size": 224}, max_length=8).save(path)
    return path
