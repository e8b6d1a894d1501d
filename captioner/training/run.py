"""The run: `train(config)` reads the data, builds (or resumes, or warm-starts) the model and fits it with the
callbacks that score, log, checkpoint and decide on plateaus.

A run folder holds `config.json`, `vocabulary.json`, `checkpoints/epoch-NNN.keras` with `state.json` naming the
newest complete one, `best/` (the model with the best dev score, CIDEr unless `select_by` says otherwise, loadable
by `Captioner.load`, with the run's settings), `log.csv` and `progress.png`.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable
from pathlib import Path

import keras

from ..api import Captioner
from ..config import TrainConfig, flag
from ..data import Record, read_dataset
from ..encoder import EncoderHead
from ..model import ShowAttendTell, show_attend_tell
from ..optimizer import GroupedAdam
from ..vocab import Vocabulary
from .callbacks import DevScores, RunKeeper, RunLog, plateau_callbacks
from .data import FeatureStore, Split, caption_dataset, image_dataset
from .distribute import is_chief, make_strategy
from .self_critical import SelfCritical, SelfCriticalTrainer
from .warm_start import fine_tuning_config, transfer_weights, vocabulary_for

# What a resumed run may change: when it stops, how dev is scored, where features are cached. The rest makes the run
# what it is; --steps-per-epoch, say, would move the epochs' boundaries in the order of the data, so that the
# resumed epochs would repeat or skip batches.
RESUMABLE = ("epochs", "early_stopping", "val_images", "val_beam_size", "cache")


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
    train_records, dev_records = _records(config)
    vocabulary = Vocabulary.load(run / "vocabulary.json") if resume else vocabulary_for(config, train_records, start)
    store = FeatureStore(encoder_settings(config), Path(config.cache))
    train_split, dev_split = store.split(train_records), store.split(dev_records)
    first_epoch = state["epoch"] if state else 0
    dataset, steps = _batches(config, train_split, vocabulary, range(first_epoch, config.epochs))

    with strategy.scope():
        if resume:
            model = keras.saving.load_model(run / "checkpoints" / state["checkpoint"], safe_mode=True)
        else:
            model = build_model(config, vocabulary, store.encoder.grid_shape, train_split.features.shape[-1], start)
        trainer, critic = trainer_for(config, model, vocabulary, train_records)
    streams = random_streams(model, critic)
    if resume:
        for stream, value in zip(streams, state["random"], strict=True):
            stream.assign(value)
    writes = is_chief(strategy)
    if writes:
        run.mkdir(parents=True, exist_ok=True)
        config.save(run / "config.json")  # resumed, with what it was resumed with
        if not resume:
            vocabulary.save(run / "vocabulary.json")
    captioner = Captioner(model, vocabulary, encoder_settings(config), config.max_length, dataclasses.asdict(config))
    callbacks = [DevScores(captioner, dev_split, config.val_beam_size)] + ([RunLog(run, first_epoch)] if writes else [])
    # After the log, which records the learning rate each epoch was trained at, before a decay.
    plateau, stop = plateau_callbacks(config, state)
    callbacks += [*plateau, RunKeeper(run, captioner, stop, streams, state, writes)]
    trainer.fit(dataset, epochs=config.epochs, initial_epoch=first_epoch, steps_per_epoch=steps, shuffle=False,
                callbacks=callbacks, verbose="auto")
    return run / "best"


def encoder_settings(config: TrainConfig) -> dict:
    """The settings of the `CNNEncoder` whose features the run reads (below the encoder head, if any)."""
    return {"backbone": config.backbone, "image_size": config.image_size, "exclude_top": config.encoder_blocks,
            "output_layer": config.encoder_layer}


def _records(config: TrainConfig) -> tuple[list[Record], list[Record]]:
    """The dataset's training records and the dev records scored after each epoch."""
    records, report = read_dataset(config.dataset, Path(config.data), Path(config.images) if config.images else None)
    print(report)
    train = [r for r in records if r.split == "train"]
    dev = [r for r in records if r.split == "dev"][: config.val_images]
    if not train or not dev:
        raise ValueError(f"{config.data}: training needs train and dev images, found {len(train)} and {len(dev)}")
    return train, dev


def _batches(config: TrainConfig, split: Split, vocabulary: Vocabulary, epochs: range):
    """The dataset of the objective's batches for these epochs, and the batches per epoch."""
    if config.objective == "self-critical":
        return image_dataset(split, config.batch_size, config.seed, epochs, config.steps_per_epoch)
    return caption_dataset(split, vocabulary, config.batch_size, config.seed, config.max_caption_words, epochs,
                           config.steps_per_epoch)


def trainer_for(config: TrainConfig, model: ShowAttendTell, vocabulary: Vocabulary,
                train: list[Record]) -> tuple[keras.Model, SelfCritical | None]:
    """What `fit` trains, and its critic: the model itself on cross-entropy; for self-critical training, a
    `SelfCriticalTrainer` of it, which steps the model's own optimizer (so its checkpoints carry that state)."""
    if config.objective != "self-critical":
        return model, None
    critic = SelfCritical(model.decoder, vocabulary, [record.captions for record in train], config.samples,
                          config.max_length, config.seed, config.bleu_weight)
    trainer = SelfCriticalTrainer(model, critic)
    trainer.compile(optimizer=model.optimizer, jit_compile=False)  # its step scores captions in Python
    return trainer, critic


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


def random_streams(model: ShowAttendTell, critic: SelfCritical | None) -> list:
    """The states of the random streams of training (dropout, hard attention's sampling, self-critical sampling),
    which `.keras` files omit."""
    streams = [variable for variable in model.variables if variable.name == "seed_generator_state"]
    return streams + ([critic.seed.state] if critic is not None else [])
