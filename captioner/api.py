"""`Captioner`: the one facade the CLI and notebooks use — load a model, caption images, draw where it looked."""
from __future__ import annotations

import io
import json
import os
import zipfile
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import h5py
import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from .atomic import atomic_file
from .encoder import CNNEncoder
from .heatmap import strip
from .model import ShowAttendTell, word_log_probs
from .preprocess import ImageError, load_image, to_array
from .search import Decoded, Searcher
from .vocab import Vocabulary

MODEL_FILE, VOCABULARY_FILE, ENCODER_FILE = "model.keras", "vocabulary.json", "encoder.json"
SETTINGS_FILE = "settings.json"  # how the model decodes: {"max_length": tokens}
TRAIN_CONFIG_FILE = "train-config.json"  # the settings of the run that trained the model
DEFAULT_MAX_LENGTH = 25  # for folders saved before they held settings.json
WEIGHTS_ENTRY = "model.weights.h5"  # inside a .keras file


def weights_dir() -> Path:
    """Where shipped models live: $CAPTIONER_WEIGHTS, else the package's `presets/` where it is installed (the
    repository's `weights/`, as pyproject.toml maps it), else the `weights/` folder of the checkout it runs from."""
    if "CAPTIONER_WEIGHTS" in os.environ:
        return Path(os.environ["CAPTIONER_WEIGHTS"])
    package = Path(__file__).resolve().parent
    installed = package / "presets"
    return installed if installed.is_dir() else package.parent / "weights"


def presets() -> dict[str, Path]:
    """Shipped models by name; "default" names the best of them on Flickr8k dev."""
    root = weights_dir()
    found = {path.parent.name: path.parent for path in sorted(root.glob(f"*/{MODEL_FILE}"))}
    default_file = root / "default"
    default = default_file.read_text().strip() if default_file.exists() else None
    if default in found:
        found["default"] = found[default]
    return found


@dataclass
class Caption:
    text: str
    words: list[str]
    score: float  # length-normalised log-probability
    attention: np.ndarray  # (words, H, W): where the model looked for each word


@dataclass
class Result:
    """One image's outcome in `Captioner.stream`: a caption, or the reason there is none."""

    image: object  # what was given: a path or a PIL image
    photo: Image.Image | None = None  # shrunk to at most 448 pixels a side: plenty for heatmaps
    caption: Caption | None = None
    error: str | None = None


def _read(image, size: int) -> tuple[Result, np.ndarray | None]:
    try:
        photo = load_image(image)
    except ImageError as error:
        return Result(image, error=str(error)), None
    pixels = to_array(photo, (size, size))
    # Three batches of photos are alive at once in `stream`; at full size they could take gigabytes.
    photo.thumbnail((448, 448))
    return Result(image, photo), pixels


def _halve_weights(model_file: Path) -> None:
    """Rewrites the float32 arrays of a .keras file's weights as float16; Keras casts them back as it loads."""
    with zipfile.ZipFile(model_file) as source:
        entries = [(item, source.read(item)) for item in source.infolist()]
        weights = source.read(WEIGHTS_ENTRY)
    halved = io.BytesIO()
    with h5py.File(io.BytesIO(weights), "r") as full, h5py.File(halved, "w") as half:

        def copy(name, node):
            if isinstance(node, h5py.Group):
                half.require_group(name).attrs.update(node.attrs)
            else:
                array = node[()]
                half.create_dataset(name, data=array.astype(np.float16) if array.dtype == np.float32 else array)

        full.visititems(copy)
        half.attrs.update(full.attrs)
    with atomic_file(model_file) as file, zipfile.ZipFile(file, "w") as target:
        for item, data in entries:
            target.writestr(item, halved.getvalue() if item.filename == WEIGHTS_ENTRY else data)


def _read_json(path: Path):
    """A JSON file's content, or None where there is no such file."""
    return json.loads(path.read_text()) if path.exists() else None


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class Captioner:
    """A trained decoder, its vocabulary and the encoder its features came from; captions are at most `max_length`
    tokens, `<end>` included. `train_config` is the settings of the run that trained it (`TrainConfig`'s fields),
    kept to be saved with it."""

    def __init__(self, model: ShowAttendTell, vocabulary: Vocabulary, encoder_settings: dict,
                 max_length: int = DEFAULT_MAX_LENGTH, train_config: dict | None = None):
        if len(vocabulary) != model.decoder.vocab_size:
            raise ValueError(f"the vocabulary has {len(vocabulary)} words, the model {model.decoder.vocab_size}")
        if max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        self.model = model
        self.vocabulary = vocabulary
        self.encoder_settings = encoder_settings
        self.train_config = train_config
        self.searcher = Searcher(model.decoder, vocabulary.start, vocabulary.end, max_length=max_length,
                                 unk=vocabulary.unk)
        self._encoder = None
        self._encode = None

    # --- loading and saving ------------------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str | None = None, max_length: int | None = None) -> Captioner:
        """A shipped model by name (`flickr8k-soft`, `flickr8k-hard`, `flickr8k-local-global`); None: the best.
        `max_length` overrides the caption length it was saved with."""
        available = presets()
        key = name or "default"
        if key not in available:
            names = ", ".join(sorted(set(available) - {"default"})) or f"none in {weights_dir()}"
            raise ValueError(f"no shipped model {key!r}; available: {names}")
        return cls.load(available[key], max_length)

    @classmethod
    def load(cls, path: str | os.PathLike, max_length: int | None = None) -> Captioner:
        """A model folder written by `save` (or a preset name); `max_length` overrides the caption length it was
        saved with."""
        path = Path(path)
        if not (path / MODEL_FILE).exists():
            if str(path) in presets() or str(path) == "default":
                return cls.from_preset(str(path), max_length)
            raise FileNotFoundError(f"{path} is not a captioner model folder (no {MODEL_FILE}) nor a preset name")
        model = keras.saving.load_model(path / MODEL_FILE, safe_mode=True, compile=False)
        encoder_settings = json.loads((path / ENCODER_FILE).read_text())
        settings = _read_json(path / SETTINGS_FILE) or {}
        if max_length is None:
            max_length = settings.get("max_length", DEFAULT_MAX_LENGTH)
        return cls(model, Vocabulary.load(path / VOCABULARY_FILE), encoder_settings, max_length,
                   _read_json(path / TRAIN_CONFIG_FILE))

    def save(self, path: str | os.PathLike, weights_dtype: str = "float32") -> None:
        """A model folder: the model without its optimizer state, its vocabulary, encoder settings and caption
        length, and the settings of the run that trained it when they are known.

        `weights_dtype="float16"` stores the weights at half size, as the shipped models are: they load back
        as float32, and the logits move by about 1e-4.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        bare = ShowAttendTell.from_config(self.model.get_config())  # Keras 3 saves the optimizer of a compiled model
        bare.set_weights(self.model.get_weights())
        bare.save(path / MODEL_FILE)
        if weights_dtype == "float16":
            _halve_weights(path / MODEL_FILE)
        elif weights_dtype != "float32":
            raise ValueError(f"weights_dtype must be float32 or float16, not {weights_dtype!r}")
        self.vocabulary.save(path / VOCABULARY_FILE)
        (path / ENCODER_FILE).write_text(json.dumps(self.encoder_settings, indent=2) + "\n")
        (path / SETTINGS_FILE).write_text(json.dumps({"max_length": self.max_length}, indent=2) + "\n")
        if self.train_config is not None:
            (path / TRAIN_CONFIG_FILE).write_text(json.dumps(self.train_config, indent=2) + "\n")

    # --- the pipeline ------------------------------------------------------------------------------------------
    @property
    def encoder(self) -> CNNEncoder:
        """Built on first use: decoding cached features needs no CNN."""
        if self._encoder is None:
            self._encoder = CNNEncoder(**self.encoder_settings)
        return self._encoder

    @property
    def max_length(self) -> int:
        return self.searcher.max_length

    @property
    def image_size(self) -> int:
        return self.encoder_settings.get("image_size", 224)

    @property
    def grid_shape(self) -> tuple[int, int]:
        return self.model.grid_shape

    def encode(self, pixels: np.ndarray) -> np.ndarray:
        if self._encode is None:
            size = self.image_size
            signature = [tf.TensorSpec((None, size, size, 3), tf.float32)]
            self._encode = tf.function(self.encoder.call, input_signature=signature)
        return self._encode(tf.convert_to_tensor(pixels, tf.float32)).numpy()  # (B, L, C)

    def decode(self, features: np.ndarray, beam_size: int = 3) -> list[Caption]:
        """Features (B, L, C), as `encode` gives them (and a feature cache stores them) → each image's best caption."""
        features = self.model.grid_features(features)
        found = self.searcher.greedy(features) if beam_size == 1 else self.searcher.beam(features, beam_size)
        return [self._caption(found, i) for i in range(len(features))]

    def caption(self, images: Iterable, beam_size: int = 3, batch_size: int = 32) -> list[Caption]:
        """Paths or PIL images → one Caption each; an unreadable image raises ImageError naming it."""
        captions = []
        for result in self.stream(images, beam_size, batch_size):
            if result.error is not None:
                raise ImageError(f"{result.image}: {result.error}")
            captions.append(result.caption)
        return captions

    def stream(self, images: Iterable, beam_size: int = 3, batch_size: int = 32) -> Iterator[Result]:
        """Captions images in order, one Result each; a bad image gets its error and the run goes on.

        Images are read in threads up to two batches ahead of the model; with at most three batches held,
        memory stays flat however many images there are.
        """
        chunks = _chunks(images, batch_size)
        with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:

            def read(chunk):
                return [pool.submit(_read, image, self.image_size) for image in chunk]

            pending = deque(read(chunk) for chunk in islice(chunks, 2))
            while pending:
                batch = [future.result() for future in pending.popleft()]
                pending.extend(read(chunk) for chunk in islice(chunks, 1))
                good = [(result, pixels) for result, pixels in batch if pixels is not None]
                if good:
                    features = self.encode(np.stack([pixels for _, pixels in good]))
                    for (result, _), caption in zip(good, self.decode(features, beam_size)):
                        result.caption = caption
                yield from (result for result, _ in batch)

    def attend(self, image, text: str) -> Caption:
        """Where the model looks while reading a given caption (teacher forcing)."""
        tokens = np.asarray([self.vocabulary.encode(text)])
        pixels = to_array(load_image(image), (self.image_size, self.image_size))
        outputs = self.model({"features": self.encode(pixels[None]), "tokens": tokens})
        targets = tokens[:, 1:]  # (1, T)
        log_probs, _ = word_log_probs(outputs["logits"], targets)  # no padding in one caption
        score = float(np.mean(log_probs))
        words = [self.vocabulary.words[i] for i in targets[0, :-1]]
        alpha = np.asarray(outputs["alpha"])[0, : len(words)]
        return Caption(" ".join(words), words, score, alpha.reshape(len(words), *self.grid_shape))

    def heatmap(self, image, caption: Caption) -> Image.Image:
        """The photo and one attention panel per word, as in the paper's figures."""
        return strip(load_image(image), caption.words, caption.attention)

    def _caption(self, found: Decoded, index: int) -> Caption:
        words = self.vocabulary.decode(found.tokens[index, 0])
        attention = found.alphas[index, 0, : len(words)].reshape(len(words), *self.grid_shape)
        return Caption(" ".join(words), words, float(found.scores[index, 0]), attention)
