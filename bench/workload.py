"""The standard benchmark workload, its tiny `--quick` variant, and the real images and models it runs on.

`captioner` (and with it Keras) is imported only where a model is built, so that `keras_home` can come first.
"""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from captioner.api import Captioner
    from captioner.model import ShowAttendTell
    from captioner.vocab import Vocabulary

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SQUEEZENET_FILE = "squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5"
ENCODER_SETTINGS = {"backbone": "efficientnet-lite2", "image_size": 224}  # the default: a 7x7x1280 grid
# The encoders suite: SqueezeNet (the old default) and each EfficientNet-Lite at the grid captioning uses.
ENCODER_CHOICES = ({"backbone": "squeezenet", "image_size": 224}, {"backbone": "efficientnet-lite0", "image_size": 224},
                   {"backbone": "efficientnet-lite1", "image_size": 224}, ENCODER_SETTINGS)
ATTENTIONS = ("soft", "hard", "local-global")


@dataclass(frozen=True)
class Workload:
    """Sizes and counts of one benchmark run; `data` is a Flickr8k folder (captions and Images/)."""

    quick: bool
    data: Path
    vocab_size: int
    grid_shape: tuple[int, int]  # the default encoder's at 224x224, as it gives it
    feature_dim: int
    caption_tokens: int  # words after <start>: training captions are never padded, decoding never ends early
    units: int  # embedding, attention and LSTM sizes alike
    train_batches: tuple[int, ...]
    decode_batches: tuple[int, ...]
    beam_sizes: tuple[int, ...]  # 1 is greedy
    folder_images: int
    folder_reps: int  # folder captioning takes long enough that a few timings settle its median
    memory_images: tuple[int, int]  # (few, many): peak RSS should not grow from one to the other
    warmup: int
    reps: int

    @classmethod
    def of(cls, quick: bool, data: Path) -> Workload:
        return cls.tiny(data) if quick else cls.standard(data)

    @classmethod
    def standard(cls, data: Path) -> Workload:
        return cls(quick=False, data=data, vocab_size=2500, grid_shape=(7, 7), feature_dim=1280, caption_tokens=20,
                   units=512, train_batches=(32, 64), decode_batches=(1, 64), beam_sizes=(1, 3, 5),
                   folder_images=200, folder_reps=3, memory_images=(100, 2000), warmup=2, reps=5)

    @classmethod
    def tiny(cls, data: Path) -> Workload:
        """Every code path of the standard run in seconds; its numbers mean nothing."""
        return cls(quick=True, data=data, vocab_size=60, grid_shape=(7, 7), feature_dim=1280, caption_tokens=4,
                   units=16, train_batches=(4,), decode_batches=(1, 4), beam_sizes=(1, 3), folder_images=4,
                   folder_reps=1, memory_images=(2, 4), warmup=1, reps=2)

    @property
    def locations(self) -> int:
        return self.grid_shape[0] * self.grid_shape[1]

    def images(self, count: int) -> list[Path]:
        """The first `count` Flickr8k photos by name."""
        found = sorted((self.data / "Images").glob("*.jpg"))
        if len(found) < count:
            raise ValueError(f"the benchmark needs {count} images in {self.data / 'Images'}, found {len(found)}")
        return found[:count]

    @property
    def sizes(self) -> dict[str, int]:
        return {"embedding_dim": self.units, "attention_units": self.units, "units": self.units}

    @functools.cached_property
    def vocabulary(self) -> Vocabulary:
        """The `vocab_size` most frequent words of Flickr8k's captions, so heatmap labels are real words."""
        from captioner.data.flickr8k import read_flickr8k
        from captioner.vocab import Vocabulary

        records, _ = read_flickr8k(self.data)
        captions = (caption for record in records for caption in record.captions)
        vocabulary = Vocabulary.build(captions, min_count=1, max_size=self.vocab_size)
        if len(vocabulary) != self.vocab_size:
            raise ValueError(f"{self.data} has {len(vocabulary)} distinct words; the benchmark needs {self.vocab_size}")
        return vocabulary

    def untrained_captioner(self) -> Captioner:
        """A Captioner over the real default encoder with a freshly initialised decoder: its captions are
        nonsense (and rarely end before `caption_tokens` words), but it does the work a trained one does."""
        from captioner.api import Captioner
        from captioner.model import show_attend_tell

        model = show_attend_tell(len(self.vocabulary), self.feature_dim, self.grid_shape, **self.sizes)
        return Captioner(model, self.vocabulary, ENCODER_SETTINGS, max_length=self.caption_tokens)

    def training_model(self, attention: str, xla: bool = False) -> ShowAttendTell:
        """A model compiled as `captioner train` compiles it (its Adam, its objective), for `attention`."""
        from captioner.config import TrainConfig
        from captioner.training import build_model

        config = TrainConfig(attention=attention, xla=xla, **self.sizes)
        return build_model(config, self.vocabulary, self.grid_shape, self.feature_dim, None)


@contextlib.contextmanager
def keras_home() -> Iterator[None]:
    """Within: a temporary KERAS_HOME holding the shared SqueezeNet weights, so the encoder finds them without a
    download. Keras reads KERAS_HOME once, on import, so enter this before anything imports it; child processes
    inherit it. Nothing changes when KERAS_HOME is set already or the shared weights are missing."""
    weights = SHARED_DATA / "encoders" / SQUEEZENET_FILE
    if "KERAS_HOME" in os.environ or not weights.exists():
        yield
        return
    with tempfile.TemporaryDirectory(prefix="captioner-bench-keras-") as home:
        (Path(home) / "models").mkdir()
        shutil.copy(weights, Path(home) / "models")
        os.environ["KERAS_HOME"] = home
        try:
            yield
        finally:
            del os.environ["KERAS_HOME"]
