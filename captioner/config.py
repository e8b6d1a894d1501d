"""The settings of a training run, saved beside its checkpoints so a run can be read back and reproduced."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from . import names
from .atomic import write_atomically

VOCAB_POLICIES = ("keep", "extend", "rebuild")
OBJECTIVES = ("cross-entropy", "self-critical")
STRATEGIES = ("default", "mirrored", "multi-worker")
# What validation logs after each epoch: every coco-caption metric but METEOR, which needs Java and takes longest.
DEV_SCORES = tuple(name for name in names.METRICS if name != "METEOR")


@dataclass
class TrainConfig:
    # data
    dataset: str = "flickr8k"
    data: str = ""
    images: str | None = None  # the image folder, for a Karpathy split JSON
    out: str = "runs/flickr8k-soft"
    cache: str = "~/.cache/captioner/features"
    min_count: int = 5
    max_caption_words: int = 30  # longer training captions are cut; Flickr8k's 99th percentile is 24
    # encoder
    backbone: str = names.DEFAULT_BACKBONE
    image_size: int = 224
    encoder_layer: str | None = None  # the backbone layer whose output is the grid (None: its last)
    encoder_blocks: int = 0  # top encoder blocks fine-tuned with the decoder, from cached features below them
    encoder_learning_rate: float = 1e-4
    # decoder
    attention: str | None = None  # soft; fine-tuning (`init_from`): the start model's kind
    score: str = "additive"
    attention_options: dict = field(default_factory=dict)
    embedding_dim: int = 512
    attention_units: int = 512
    units: int = 512
    dropout: float = 0.5
    # objective: cross-entropy on the references, or self-critical (CIDEr-D of the model's own samples, to
    # fine-tune a model trained by cross-entropy: `init_from`)
    objective: str = "cross-entropy"
    samples: int = 5  # self-critical: captions sampled per image
    bleu_weight: float = 0.0  # self-critical: the reward is CIDEr-D + bleu_weight · the sample's BLEU-4
    doubly_stochastic: float = 1.0
    label_smoothing: float = 0.0
    reinforce_weight: float = 1.0
    entropy_weight: float = 0.01
    # optimisation
    batch_size: int = 64
    epochs: int = 20
    steps_per_epoch: int | None = None  # batches per epoch (None: one pass over the data); dev is scored after each
    learning_rate: float = 1e-3
    clipnorm: float = 5.0
    # Compile the whole cross-entropy step on cached features with XLA, for accelerators: on a CPU XLA's code for the
    # LSTM's matmuls is slower than TensorFlow's own kernels, so the default compiles only the attention score.
    xla: bool = False
    select_by: str = "CIDEr"  # the dev score that picks the best model, decays the learning rate and stops early
    lr_decay: float = 0.5  # multiply the learning rate by this when the dev score stops improving
    lr_patience: int = 1
    early_stopping: int = 4  # epochs without a better dev score before stopping
    seed: int = 0
    # validation by real decoding
    val_beam_size: int = 3
    val_images: int | None = None  # decode only the first N dev images (None: all)
    max_length: int = 25  # tokens decoded at most, for dev scores and self-critical samples; saved with the model
    # fine-tuning and scale
    init_from: str | None = None
    vocab_policy: str = "keep"  # keep | extend | rebuild: see `captioner.training.warm_start.vocabulary_for`
    strategy: str = "default"  # default | mirrored | multi-worker

    def __post_init__(self):
        at_least_one = ("min_count", "max_caption_words", "batch_size", "epochs", "lr_patience", "early_stopping",
                        "val_beam_size", "max_length")
        for name in at_least_one:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.objective == "self-critical" and self.samples < 2:
            raise ValueError(f"self-critical training needs at least 2 samples per image, got {self.samples}")
        if self.bleu_weight < 0:
            raise ValueError(f"bleu_weight must be at least 0, got {self.bleu_weight}")
        if self.encoder_blocks < 0:
            raise ValueError(f"encoder_blocks must be at least 0, got {self.encoder_blocks}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        for name in ("val_images", "steps_per_epoch"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name, choices in (("vocab_policy", VOCAB_POLICIES), ("strategy", STRATEGIES), ("objective", OBJECTIVES),
                              ("select_by", DEV_SCORES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, not {getattr(self, name)!r}")

    def model_settings(self) -> dict:
        """The keyword arguments of `show_attend_tell` (beyond the vocabulary and the grid)."""
        names = ("attention", "score", "attention_units", "embedding_dim", "units", "dropout", "attention_options",
                 "doubly_stochastic", "label_smoothing", "reinforce_weight", "entropy_weight")
        return {name: getattr(self, name) for name in names} | {"attention": self.attention or "soft"}

    def save(self, path: Path) -> None:
        write_atomically(path, json.dumps(dataclasses.asdict(self), indent=2) + "\n")  # resuming may rewrite it

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        settings = json.loads(Path(path).read_text())
        unknown = set(settings) - known
        if unknown:
            raise ValueError(f"{path}: unknown settings {sorted(unknown)}")
        return cls(**settings)


def flag(name: str) -> str:
    """The command-line flag of a TrainConfig setting: `max_length` -> `--max-length`."""
    return "--" + name.replace("_", "-")
