"""Training from cached features with `model.fit`: checkpoints, resume, dev scores by real decoding, fine-tuning.

A run folder holds `config.json`, `vocabulary.json`, `checkpoints/epoch-NNN.keras` with `state.json` naming the
newest complete one, `best/` (the model with the best dev score, CIDEr unless `select_by` says otherwise, loadable
by `Captioner.load`, with the run's settings), `log.csv` and `progress.png`.
"""
from __future__ import annotations

import csv
import dataclasses
import inspect
import io
import json
import os
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from .api import Captioner
from .atomic import write_atomically
from .attention import kind_of, make_attention
from .config import DEV_SCORES, TrainConfig, flag
from .data import Record, read_dataset
from .data.cache import FeatureCache
from .encoder import CNNEncoder, EncoderHead
from .evaluate import evaluate
from .model import ShowAttendTell, show_attend_tell
from .optimizer import GroupedAdam
from .preprocess import load_image, to_array
from .self_critical import SelfCritical
from .vocab import Vocabulary

# --- data ---------------------------------------------------------------------------------------------------------
@dataclass
class Split:
    records: list[Record]
    features: np.ndarray  # (N, L, C) float16, one row per record


class FeatureStore:
    """Features of records' images from the frozen encoder, through the on-disk cache."""

    def __init__(self, encoder_settings: dict, cache_dir: Path):
        self.encoder = CNNEncoder(**encoder_settings)
        self.cache = FeatureCache(Path(cache_dir).expanduser(), self.encoder.cache_id)
        size = self.encoder.image_size
        self._encode = tf.function(self.encoder.call, input_signature=[tf.TensorSpec((None, size, size, 3), tf.float32)])

    def split(self, records: list[Record], batch_size: int = 64) -> Split:
        """Runs the encoder only on images not cached yet, then reads every record's features."""
        images = [record.image for record in records]
        size = self.encoder.image_size
        report = self.cache.build(images, lambda batch: self._encode(batch).numpy(),
                                  lambda path: to_array(load_image(path), (size, size)), batch_size=batch_size)
        if report.failed:
            path, reason = report.failed[0]
            raise ValueError(f"{len(report.failed)} images could not be encoded, the first {path}: {reason}")
        return Split(records, self.cache.load_all(images))


def caption_dataset(split: Split, vocabulary: Vocabulary, batch_size: int, seed: int, max_words: int,
                    epochs: range, steps_per_epoch: int | None = None) -> tuple[tf.data.Dataset, int]:
    """Batches of (image, caption) pairs for the given epochs, one after another, and the batches per epoch.

    Every pair comes once per pass over the data, in batches of similar caption length; an epoch is a pass unless
    `steps_per_epoch` says otherwise. The order depends only on (seed, pass), so a resumed run sees the batches
    the interrupted one would have. Every batch is full: replicas split it evenly, and only the pass's last few
    pairs (different ones each pass) wait for another pass.
    """
    pairs = [(index, vocabulary.encode(caption)[: max_words + 2]) for index, record in enumerate(split.records)
             for caption in record.captions]
    steps = len(pairs) // batch_size
    if steps == 0:
        raise ValueError(f"batch_size {batch_size} is larger than the {len(pairs)} training captions")
    lengths = np.asarray([len(tokens) for _, tokens in pairs])

    def groups(number):
        rng = np.random.default_rng([seed, number])
        order = rng.permutation(len(pairs))[: steps * batch_size]
        # Sorting windows of 50 batches by length keeps padding small while every batch stays a random draw.
        window = 50 * batch_size
        chunks = [sorted(order[i:i + window], key=lambda k: lengths[k]) for i in range(0, len(order), window)]
        in_order = [chunk[i:i + batch_size] for chunk in chunks for i in range(0, len(chunk), batch_size)]
        return [in_order[i] for i in rng.permutation(len(in_order))]

    def batch(group):
        tokens = np.zeros((batch_size, lengths[group].max()), np.int32)  # <pad> = 0
        for row, k in enumerate(group):
            tokens[row, : lengths[k]] = pairs[k][1]
        images = [pairs[k][0] for k in group]
        return {"features": split.features[images].astype(np.float32), "tokens": tokens}

    batches, per_epoch = _passes(groups, batch, steps, steps_per_epoch, epochs)
    return _dataset(batches, split, batch_size, {"tokens": tf.TensorSpec((batch_size, None), tf.int32)}), per_epoch


def image_dataset(split: Split, batch_size: int, seed: int, epochs: range,
                  steps_per_epoch: int | None = None) -> tuple[tf.data.Dataset, int]:
    """Batches of images, {"features", "image": index into split.records}, for self-critical training: every image
    once per pass, in an order that depends only on (seed, pass); full batches, as `caption_dataset` gives."""
    steps = len(split.records) // batch_size
    if steps == 0:
        raise ValueError(f"batch_size {batch_size} is larger than the {len(split.records)} training images")

    def groups(number):
        order = np.random.default_rng([seed, number]).permutation(len(split.records))
        return [order[first:first + batch_size] for first in range(0, steps * batch_size, batch_size)]

    def batch(images):
        return {"features": split.features[images].astype(np.float32), "image": images.astype(np.int32)}

    batches, per_epoch = _passes(groups, batch, steps, steps_per_epoch, epochs)
    return _dataset(batches, split, batch_size, {"image": tf.TensorSpec((batch_size,), tf.int32)}), per_epoch


def _passes(groups, batch, steps: int, steps_per_epoch: int | None, epochs: range):
    """A generator of the given epochs' batches, and the batches per epoch. The data is read in passes of `steps`
    batches, pass p's in the order `groups(p)` gives; `batch(group)` makes one. An epoch is a pass unless
    `steps_per_epoch` makes it shorter or longer, so dev is scored and a checkpoint written as often as wanted."""
    per_epoch = steps_per_epoch or steps

    def batches():
        number, order = None, None
        for index in range(epochs.start * per_epoch, epochs.stop * per_epoch):
            if index // steps != number:
                number = index // steps
                order = groups(number)
            yield batch(order[index % steps])

    return batches, per_epoch


def _dataset(batches, split: Split, batch_size: int, signature: dict) -> tf.data.Dataset:
    """A prefetching dataset of the generator's batches of split's features and the given other parts."""
    locations, channels = split.features.shape[1:]
    signature = {"features": tf.TensorSpec((batch_size, locations, channels), tf.float32), **signature}
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    # Every worker runs this generator and keeps its own slice of each batch.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


# --- models -------------------------------------------------------------------------------------------------------
def vocabulary_for(config: TrainConfig, train: list[Record], start: Captioner | None) -> Vocabulary:
    """The vocabulary of a run. Fine-tuning from a model: `keep` its vocabulary (new words become <unk>),
    `extend` it with the new data's frequent words (old ids unchanged, new rows freshly initialised), or
    `rebuild` it from the new data (rows of words both share are copied, the rest initialised afresh)."""
    captions = (caption for record in train for caption in record.captions)
    if start is None or config.vocab_policy == "rebuild":
        return Vocabulary.build(captions, min_count=config.min_count)
    if config.vocab_policy == "extend":
        return start.vocabulary.extend(captions, config.min_count)
    return start.vocabulary


def matching_weights(source: ShowAttendTell, target: ShowAttendTell) -> list[tuple]:
    """Pairs (target weight, source weight) that play the same part in two models, whatever their attention kinds:
    the decoder's own layers, the encoder heads, the hard-attention reward baseline, and the attention: all of it
    between two alike, else part by part: soft attention's score and gate (hard attention's, local+global's global
    half) and local+global's window. A source whose window has no score of its own (soft or hard attention, or a
    local+global model saved before it had one) reads the global scores there, so its global score starts the
    target's local score too: the target then starts out computing what the source did."""
    alike = type(source.attention) is type(target.attention) and (
        [w.shape for w in source.attention.weights] == [w.shape for w in target.attention.weights])

    def parts(model):
        decoder = model.decoder
        named = {name: getattr(decoder, name) for name in (
            "feature_norm", "init_hidden", "init_cell", "embedding", "lstm", "out_hidden", "out_context",
            "vocabulary_projection")}
        named["encoder_head"] = model.encoder_head
        attention = decoder.attention
        if alike:
            named["attention"] = attention
        else:
            soft = getattr(attention, "global_attention", attention)
            named |= {"scorer": soft.scorer, "gate": soft.gate}
            named |= {name: getattr(attention, name, None) for name in (
                "local_scorer", "local_gate", "centre_hidden", "centre")}
            if model is source and named["local_scorer"] is None:
                named["local_scorer"] = soft.scorer
        weights = {name: layer.weights for name, layer in named.items() if layer is not None}
        return weights | {"reward_baseline": [model.reward_baseline]}

    mine, theirs = parts(target), parts(source)
    return [pair for name in mine.keys() & theirs.keys() for pair in zip(mine[name], theirs[name], strict=True)]


WORD_AXES = {"embedding/embeddings": 0, "vocabulary_projection/kernel": 1, "vocabulary_projection/bias": 0}


def transfer_weights(source: ShowAttendTell, source_vocabulary: Vocabulary, target: ShowAttendTell,
                     target_vocabulary: Vocabulary) -> None:
    """Copies every weight of `source` into the weight of `target` that plays its part (`matching_weights`).

    Of the word-indexed ones (embedding rows, output columns) only the words both vocabularies share are copied,
    leaving the new words' fresh initialisation. A target weight that reads a wider input (local+global's LSTM
    and deep output read a second context after the first) gets the source's rows first and zeros after, so
    the new model starts out computing what the source did.
    """
    source_ids = {word: i for i, word in enumerate(source_vocabulary.words)}
    shared = [(i, source_ids[word]) for i, word in enumerate(target_vocabulary.words) if word in source_ids]
    to_rows, from_rows = (np.asarray(ids) for ids in zip(*shared))
    for mine, theirs in matching_weights(source, target):
        value = theirs.numpy()
        axis = next((axis for suffix, axis in WORD_AXES.items() if mine.path.endswith(suffix)), None)
        if axis is not None:
            fresh = mine.numpy().copy()
            np.moveaxis(fresh, axis, 0)[to_rows] = np.moveaxis(value, axis, 0)[from_rows]
            value = fresh
        elif value.shape != tuple(mine.shape):
            if value.shape[1:] != tuple(mine.shape)[1:] or value.shape[0] > mine.shape[0]:
                raise ValueError(f"cannot start {mine.path} {tuple(mine.shape)} from a weight of shape {value.shape}")
            value = np.concatenate([value, np.zeros((mine.shape[0] - value.shape[0], *value.shape[1:]), value.dtype)])
        mine.assign(value)


def build_model(config: TrainConfig, vocabulary: Vocabulary, grid_shape, feature_dim, start: Captioner | None):
    """A new model as configured over `vocabulary`; fine-tuning, one that starts from `start`'s weights, which
    `config` describes (see `fine_tuning_config`) but for what fine-tuning changes.

    `grid_shape` and `feature_dim` are those of the cached features; with `encoder_blocks`, the model's
    encoder head (pretrained, trained at `encoder_learning_rate`) turns them into what the decoder sees.
    Fine-tuning into another attention kind than `start`'s, the new kind takes every weight of `start` that plays
    a part in it (`transfer_weights`).
    """
    head = None
    if config.encoder_blocks:
        head = EncoderHead(config.backbone, config.encoder_blocks, config.image_size, weights="imagenet",
                           output_layer=config.encoder_layer, name="encoder_head")
        grid_shape, feature_dim = head.grid_shape, head.feature_dim
    model = show_attend_tell(len(vocabulary), feature_dim, grid_shape, encoder_head=head, **config.model_settings())
    if start is not None:
        transfer_weights(start.model, start.vocabulary, model, vocabulary)
    encoder_rate = {"encoder_head": config.encoder_learning_rate / config.learning_rate}
    # Not with the self-critical step, which scores captions in Python, nor with encoder blocks: XLA slows
    # their convolutions on a CPU.
    xla = config.xla and config.objective == "cross-entropy" and not config.encoder_blocks
    model.compile(optimizer=GroupedAdam(config.learning_rate, clipnorm=config.clipnorm, multipliers=encoder_rate),
                  jit_compile=xla)
    # Built inside the first traced step instead, its variables would make TensorFlow trace that step twice.
    model.optimizer.build(model.trainable_variables)
    return model


# --- settings: fine-tuning and resuming ---------------------------------------------------------------------------
# A trained decoder reads the grid of one encoder: fine-tuning refuses another.
ENCODER_SETTINGS = ("backbone", "image_size", "encoder_layer")
# The shapes of a trained model's weights, which fine-tuning keeps.
SHAPE_SETTINGS = ("score", "attention_units", "embedding_dim", "units")
# What a resumed run may change: when it stops, how dev is scored, where features are cached. The rest makes the run
# what it is; --steps-per-epoch, say, would move the epochs' boundaries in the order of the data, so that the
# resumed epochs would repeat or skip batches.
RESUMABLE = ("epochs", "early_stopping", "val_images", "val_beam_size", "cache")


def settings_of(captioner: Captioner) -> dict:
    """The TrainConfig settings a trained model carries: its encoder, the shapes of its weights, its dropout,
    attention options and loss weights, and its caption length."""
    model, decoder, attention = captioner.model, captioner.model.decoder, captioner.model.attention
    encoder = _defaults(CNNEncoder) | captioner.encoder_settings
    return {"backbone": encoder["backbone"], "image_size": encoder["image_size"],
            "encoder_layer": encoder["output_layer"], "encoder_blocks": encoder["exclude_top"],
            "attention": kind_of(attention), "score": attention.score_name, "attention_units": attention.units,
            "attention_options": attention_options(attention), "embedding_dim": decoder.embedding_dim,
            "units": decoder.units, "dropout": decoder.dropout_rate, "doubly_stochastic": model.doubly_stochastic,
            "label_smoothing": model.label_smoothing, "reinforce_weight": model.reinforce_weight,
            "entropy_weight": model.entropy_weight, "max_length": captioner.max_length}


def attention_options(attention) -> dict:
    """An attention layer's settings beyond those every kind has (units, score) and its grid: its gate, ..."""
    config = attention.get_config()
    return {name: config[name] for name in _defaults(type(attention))
            if name in config and name not in ("units", "score", "grid_shape")}


def fine_tuning_config(config: TrainConfig, start: Captioner, given: Iterable[str]) -> TrainConfig:
    """The configuration of a run that fine-tunes `start`: the user's settings (`given` names them), and `start`'s
    for every other one that describes a model (`settings_of`).

    Given settings are honoured where the model can take them: dropout, loss weights, caption length, attention
    options that leave the shapes of its weights, another attention kind (`build_model`), and encoder blocks for
    a model that fine-tunes none yet (their head starts as the frozen encoder was, so the model starts out
    computing what it did). Another encoder, another number of encoder blocks for a model that has some, and
    attention options that reshape its weights raise a ValueError naming the flag; other sizes are ignored, with
    a line on stderr each.
    """
    theirs = settings_of(start)
    differ = [name for name in given if name in theirs and getattr(config, name) != theirs[name]]
    for name in differ:
        mine, was = getattr(config, name), theirs[name]
        if name in ENCODER_SETTINGS:
            reads = f"{flag(name)} {was}" if was is not None else f"no {flag(name)}"
            raise ValueError(f"{flag(name)} {mine}: {config.init_from} reads the grid of {reads}, and a decoder "
                             f"trained on one grid cannot read another")
        if name == "encoder_blocks" and was:
            raise ValueError(f"--encoder-blocks {mine}: {config.init_from} fine-tunes its top {was} encoder blocks, "
                             f"whose output its decoder reads: fine-tuning it keeps --encoder-blocks {was}")
        if name in SHAPE_SETTINGS:
            print(f"{flag(name)} {mine} ignored: fine-tuning keeps the shapes of {config.init_from}'s weights "
                  f"({flag(name)} {was})", file=sys.stderr)
    chosen = set(given) - set(SHAPE_SETTINGS)
    resolved = {name: value for name, value in theirs.items() if name not in chosen}
    if config.attention in (None, theirs["attention"]):
        was = theirs["attention_options"]
        options = {**was, **config.attention_options}
        shapes = _weight_shapes(start, was)
        reshaping = {name: value for name, value in options.items() if (name not in was or was[name] != value)
                     and _weight_shapes(start, {**was, name: value}) != shapes}
        if reshaping:
            raise ValueError(f"--attention-options {json.dumps(reshaping)}: changes the shapes of {config.init_from}'s "
                             f"attention weights, which fine-tuning keeps (its options: {json.dumps(was)})")
        resolved["attention_options"] = options
    else:  # another kind takes its own options, as given
        resolved.pop("attention_options", None)
    return dataclasses.replace(config, **resolved)


def resumed_config(saved: TrainConfig, config: TrainConfig, given: Iterable[str]) -> TrainConfig:
    """The configuration of a resumed run: its own (`saved`), but for the RESUMABLE settings the user `given`; the
    run is where `config.out` says. Each other given setting that differs is ignored, with a line on stderr."""
    given = set(given)
    for field in dataclasses.fields(TrainConfig):
        mine, was = getattr(config, field.name), getattr(saved, field.name)
        if field.name in given - {"out", *RESUMABLE} and mine != was:
            print(f"{flag(field.name)} {mine} ignored: the run resumes with its own {was} (resuming can change "
                  f"{', '.join(map(flag, RESUMABLE))})", file=sys.stderr)
    changes = {name: getattr(config, name) for name in given & set(RESUMABLE)}
    return dataclasses.replace(saved, out=config.out, **changes)


def _defaults(callable) -> dict:
    """The default of each parameter of a function or class."""
    return {name: parameter.default for name, parameter in inspect.signature(callable).parameters.items()}


def _weight_shapes(start: Captioner, options: dict) -> list[tuple]:
    """The shapes of the weights of `start`'s attention made anew with these options."""
    decoder, attention = start.model.decoder, start.model.attention
    made = make_attention(kind_of(attention), start.grid_shape, attention.units, attention.score_name, **options)
    made.build((None, None, decoder.feature_dim), (None, decoder.units))
    return [tuple(weight.shape) for weight in made.weights]


class MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy with a `reduce` that takes what Keras's `fit` gives it, as MirroredStrategy's
    does: a whole input batch (a dict here, to build the model) and scalar metrics "along axis 0"
    (keras-team/keras#20329, tensorflow/tensorflow#72388)."""

    def reduce(self, reduce_op, value, axis):
        def reduce(part):
            scalar = self.experimental_local_results(part)[0].shape.rank == 0
            return super(MultiWorkerStrategy, self).reduce(reduce_op, part, None if scalar else axis)

        return tf.nest.map_structure(reduce, value)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """`mirrored`: the devices of this machine; `multi-worker`: several machines, described by TF_CONFIG."""
    strategies = {"default": tf.distribute.get_strategy, "mirrored": tf.distribute.MirroredStrategy,
                  "multi-worker": MultiWorkerStrategy}
    if name not in strategies:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(strategies)}")
    return strategies[name]()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files: always, except on the other workers of a multi-worker run."""
    return strategy.extended.should_checkpoint


def random_streams(model: keras.Model) -> list:
    """The states of the model's random streams (dropout, hard attention's sampling, self-critical sampling),
    which `.keras` files omit."""
    streams = [variable for variable in model.variables if variable.name == "seed_generator_state"]
    if model.self_critical is not None:
        streams.append(model.self_critical.seed.state)
    return streams


# --- callbacks ----------------------------------------------------------------------------------------------------
class DevScores(keras.callbacks.Callback):
    """After each epoch, decode dev by beam search (never teacher forcing) and add its scores to the logs.

    Every worker of a multi-worker run decodes: their weights are the same, so are their scores, and so every
    worker takes the same decisions on the learning rate and stopping without having to be told.
    """

    def __init__(self, captioner: Captioner, dev: Split, beam_size: int):
        super().__init__()
        self.captioner, self.dev, self.beam_size = captioner, dev, beam_size

    def on_epoch_end(self, epoch, logs=None):
        scores, _ = evaluate(self.captioner, self.dev.records, self.beam_size, features=self.dev.features,
                             meteor="none", progress=False)
        logs.update({f"dev_{name}": scores[name] for name in DEV_SCORES})
        print(f"\nepoch {epoch + 1}: dev " + ", ".join(f"{k[4:]} {v:.4f}" for k, v in logs.items() if k.startswith("dev_")))


class RunLog(keras.callbacks.Callback):
    """`log.csv`, a row per epoch (losses, learning rate, dev scores), and `progress.png` drawn from it.

    It writes before the checkpoint, so a run killed in between has logged an epoch it will redo: resuming drops
    the rows after the checkpoint's epoch.
    """

    def __init__(self, run: Path, resumed_epoch: int = 0):
        super().__init__()
        self.csv, self.png = run / "log.csv", run / "progress.png"
        self.rows = []
        if resumed_epoch and self.csv.exists():
            with open(self.csv, newline="") as file:
                self.rows = [row for row in csv.DictReader(file) if int(row["epoch"]) <= resumed_epoch]

    def on_epoch_end(self, epoch, logs=None):
        learning_rate = float(self.model.optimizer.learning_rate.numpy())
        self.rows.append({"epoch": epoch + 1, "learning_rate": learning_rate, **logs})
        text = io.StringIO()
        writer = csv.DictWriter(text, list(self.rows[0]), restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        write_atomically(self.csv, text.getvalue())
        self._plot()

    def _plot(self):
        epochs = [int(row["epoch"]) for row in self.rows]
        figure = Figure(figsize=(10, 4), layout="tight")
        left, right = figure.subplots(1, 2)
        for axes, keys in ((left, ("loss", "xent")), (right, ("dev_BLEU-4", "dev_CIDEr"))):
            for key in keys:
                axes.plot(epochs, [float(row.get(key) or "nan") for row in self.rows], marker="o",
                          label=key.removeprefix("dev_"))
        for axes, title in ((left, "training"), (right, "dev, real decoding")):
            axes.set(xlabel="epoch", title=title)
            axes.legend()
        figure.savefig(self.png, dpi=80)


class RunKeeper(keras.callbacks.Callback):
    """Keeps the best model by a dev score (`select_by`), decays the learning rate on a plateau, stops early and
    checkpoints every epoch, with its own state and the random streams saved beside the checkpoint so `--resume`
    carries on exactly where the run stopped."""

    def __init__(self, run: Path, captioner: Captioner, config: TrainConfig, state: dict | None, writes: bool):
        super().__init__()
        self.run, self.captioner, self.config, self.writes = run, captioner, config, writes
        self.state = state or {"epoch": 0, "best": -1.0, "since_best": 0, "checkpoint": None}

    def on_epoch_end(self, epoch, logs=None):
        score = logs.get(f"dev_{self.config.select_by}", -1.0)
        self.state["epoch"] = epoch + 1
        if score > self.state["best"]:
            self.state.update(best=score, since_best=0)
            if self.writes:
                _replace_dir(self.run / "best", self.captioner.save)
        else:
            self.state["since_best"] += 1
            if self.state["since_best"] % self.config.lr_patience == 0:
                optimizer = self.model.optimizer
                optimizer.learning_rate = float(optimizer.learning_rate.numpy()) * self.config.lr_decay
                print(f"dev {self.config.select_by} has not improved for {self.state['since_best']} epochs: "
                      f"learning rate {float(optimizer.learning_rate.numpy()):.2e}")
            if self.state["since_best"] >= self.config.early_stopping:
                print(f"dev {self.config.select_by} has not improved for {self.state['since_best']} epochs: stopping")
                self.model.stop_training = True
        self.state["random"] = [stream.numpy().tolist() for stream in random_streams(self.model)]
        if self.writes:
            self._checkpoint(epoch + 1)

    def _checkpoint(self, epoch: int):
        folder = self.run / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch:03d}.keras"
        partial = folder / f".{name}"  # Keras insists on the .keras suffix
        self.model.save(partial)
        os.replace(partial, folder / name)
        previous, self.state["checkpoint"] = self.state["checkpoint"], name
        write_atomically(self.run / "state.json", json.dumps(self.state, indent=2))
        # The older checkpoint goes only once state.json names the new one: a kill at any point leaves one to resume.
        if previous and previous != name:
            (folder / previous).unlink(missing_ok=True)


# --- the run ------------------------------------------------------------------------------------------------------
def train(config: TrainConfig, resume: bool = False, given: Iterable[str] | None = None) -> Path:
    """Runs (or resumes) training as configured; returns the folder of the best model.

    `given` names the settings the user chose (None: those that differ from TrainConfig's defaults). Fine-tuning
    takes the others from the start model (`fine_tuning_config`); resuming takes all but a few from the run
    (`resumed_config`).

    In a multi-worker run every worker runs this with the same configuration; only the chief writes files, so
    `--out` must be storage every worker sees for the others to `--resume`.
    """
    if given is None:
        defaults = TrainConfig()
        given = {field.name for field in dataclasses.fields(TrainConfig)
                 if getattr(config, field.name) != getattr(defaults, field.name)}
    run = Path(config.out)
    state = None
    if resume:
        if not (run / "state.json").exists():
            raise FileNotFoundError(f"{run} has no state.json to resume from: start the run without --resume")
        config = resumed_config(TrainConfig.load(run / "config.json"), config, given)
        state = json.loads((run / "state.json").read_text())
        if state["epoch"] >= config.epochs or state["since_best"] >= config.early_stopping:
            print(f"{run} finished after epoch {state['epoch']}: nothing to resume")
            return run / "best"
    elif (run / "state.json").exists():
        raise FileExistsError(f"{run} already holds a run: pass --resume to continue it, or choose another --out")
    strategy = make_strategy(config.strategy)  # before any TensorFlow work, as a multi-worker strategy must be
    start = None
    if config.init_from and not resume:  # a resumed run has its model in its checkpoint
        start = Captioner.load(config.init_from)
        config = fine_tuning_config(config, start, given)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(f"batch_size {config.batch_size} does not split evenly over {replicas} replicas")
    if replicas > 1:
        print(f"{config.strategy} strategy: {replicas} replicas of {config.batch_size // replicas} captions a batch")
    keras.utils.set_random_seed(config.seed)
    records, report = read_dataset(config.dataset, Path(config.data), Path(config.images) if config.images else None)
    print(report)
    train_records = [r for r in records if r.split == "train"]
    dev_records = [r for r in records if r.split == "dev"][: config.val_images]
    if not train_records or not dev_records:
        raise ValueError(f"{config.data}: training needs train and dev images, found {len(train_records)} and {len(dev_records)}")
    encoder_settings = {"backbone": config.backbone, "image_size": config.image_size,
                        "exclude_top": config.encoder_blocks, "output_layer": config.encoder_layer}
    if resume:
        vocabulary = Vocabulary.load(run / "vocabulary.json")
    else:
        vocabulary = vocabulary_for(config, train_records, start)
    store = FeatureStore(encoder_settings, Path(config.cache))
    train_split, dev_split = store.split(train_records), store.split(dev_records)
    first_epoch = state["epoch"] if state else 0
    epochs = range(first_epoch, config.epochs)
    if config.objective == "self-critical":
        dataset, steps = image_dataset(train_split, config.batch_size, config.seed, epochs, config.steps_per_epoch)
    else:
        dataset, steps = caption_dataset(train_split, vocabulary, config.batch_size, config.seed,
                                         config.max_caption_words, epochs, config.steps_per_epoch)

    with strategy.scope():
        if resume:
            model = keras.saving.load_model(run / "checkpoints" / state["checkpoint"], safe_mode=True)
        else:
            model = build_model(config, vocabulary, store.encoder.grid_shape, train_split.features.shape[-1], start)
        if config.objective == "self-critical":
            model.self_critical = SelfCritical(model.decoder, vocabulary, [r.captions for r in train_records],
                                               config.samples, config.max_length, config.seed, config.bleu_weight)
    if resume:
        for stream, value in zip(random_streams(model), state["random"], strict=True):
            stream.assign(value)
    writes = is_chief(strategy)
    if writes:
        run.mkdir(parents=True, exist_ok=True)
        config.save(run / "config.json")  # resumed, with what it was resumed with
        if not resume:
            vocabulary.save(run / "vocabulary.json")
    captioner = Captioner(model, vocabulary, encoder_settings, config.max_length, dataclasses.asdict(config))
    callbacks = [DevScores(captioner, dev_split, config.val_beam_size)]
    if model.self_critical is not None:
        callbacks.insert(0, model.self_critical)
    if writes:
        callbacks.append(RunLog(run, first_epoch))
    callbacks.append(RunKeeper(run, captioner, config, state, writes))
    model.fit(dataset, epochs=config.epochs, initial_epoch=first_epoch, steps_per_epoch=steps, shuffle=False,
              callbacks=callbacks, verbose="auto")
    return run / "best"


def _replace_dir(target: Path, write) -> None:
    """Writes a folder beside `target`, then swaps it in, so `target` is always whole."""
    fresh, old = target.with_name(target.name + ".partial"), target.with_name(target.name + ".old")
    shutil.rmtree(fresh, ignore_errors=True)
    write(fresh)
    if target.exists():
        os.replace(target, old)
    os.replace(fresh, target)
    shutil.rmtree(old, ignore_errors=True)
