"""What a run does after each epoch: score dev by real decoding, log, decay the learning rate on a plateau, stop
early, keep the best model and checkpoint, so that `--resume` carries on exactly where the run stopped.

Keras's ReduceLROnPlateau and EarlyStopping decide on the plateau; they forget what they saw when `fit` begins, so
a resumed run gives them back the best score and the epochs since it (`Resumable`). Keras's ModelCheckpoint and
BackupAndRestore are not used: they save the model alone, where resuming exactly needs the plateau's state and the
random streams saved with it in one step, and the best model is a `Captioner` folder.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import keras
from matplotlib.figure import Figure

from ..api import Captioner
from ..atomic import write_atomically
from ..config import DEV_SCORES, TrainConfig
from ..evaluate import evaluate
from .data import Split


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
        shown = ", ".join(f"{key[4:]} {value:.4f}" for key, value in logs.items() if key.startswith("dev_"))
        print(f"\nepoch {epoch + 1}: dev {shown}")


class RunLog(keras.callbacks.Callback):
    """`log.csv`, a row per epoch (losses, learning rate, dev scores), and `progress.png` drawn from it.

    It writes before the checkpoint, so a run killed in between has logged an epoch it will redo: resuming drops
    the rows after the checkpoint's epoch (which Keras's CSVLogger, appending, cannot).
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


class Resumable:
    """For a Keras plateau callback: in a resumed run, the best dev score and the epochs since it come back from
    the run's state (`RunKeeper`) once `fit` has begun, which resets them."""

    def __init__(self, *args, state: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.resumed = state

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.resumed:
            self.best, self.wait = self.resumed["best"], self.waited(self.resumed["since_best"])

    def waited(self, since_best: int) -> int:
        return since_best


class PlateauDecay(Resumable, keras.callbacks.ReduceLROnPlateau):
    def waited(self, since_best):
        return since_best % self.patience  # it waits afresh after each decay


class EarlyStop(Resumable, keras.callbacks.EarlyStopping):
    pass


def plateau_callbacks(config: TrainConfig, state: dict | None) -> tuple[list, EarlyStop]:
    """The callbacks that act on the selecting dev score: decay (none where `lr_decay` is 1, a factor Keras
    refuses) and early stopping; and the latter, whose best score and epochs since are the run's state."""
    plateau = {"monitor": f"dev_{config.select_by}", "mode": "max", "min_delta": 0, "verbose": 1, "state": state}
    stop = EarlyStop(patience=config.early_stopping, **plateau)
    if config.lr_decay == 1:
        return [stop], stop
    return [PlateauDecay(factor=config.lr_decay, patience=config.lr_patience, **plateau), stop], stop


class RunKeeper(keras.callbacks.Callback):
    """Keeps the best model (`best/`, when `plateau` has just seen its best score) and checkpoints every epoch, the
    model with its optimizer, and beside it in `state.json` the plateau's state and the random streams', so that
    `--resume` carries on exactly where the run stopped. Only the chief `writes`."""

    def __init__(self, run: Path, captioner: Captioner, plateau: EarlyStop, streams: list, state: dict | None,
                 writes: bool):
        super().__init__()
        self.run, self.captioner, self.plateau, self.streams, self.writes = run, captioner, plateau, streams, writes
        self.checkpoint = state["checkpoint"] if state else None

    def on_epoch_end(self, epoch, logs=None):
        if not self.writes:
            return
        if self.plateau.wait == 0:  # a new best
            _replace_dir(self.run / "best", self.captioner.save)
        folder = self.run / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch + 1:03d}.keras"
        partial = folder / f".{name}"  # Keras insists on the .keras suffix
        self.captioner.model.save(partial)
        os.replace(partial, folder / name)
        previous, self.checkpoint = self.checkpoint, name
        state = {"epoch": epoch + 1, "best": self.plateau.best, "since_best": self.plateau.wait, "checkpoint": name,
                 "random": [stream.numpy().tolist() for stream in self.streams]}
        write_atomically(self.run / "state.json", json.dumps(state, indent=2))
        # The older checkpoint goes only once state.json names the new one: a kill at any point leaves one to resume.
        if previous and previous != name:
            (folder / previous).unlink(missing_ok=True)


def _replace_dir(target: Path, write) -> None:
    """Writes a folder beside `target`, then swaps it in, so `target` is always whole."""
    fresh, old = target.with_name(target.name + ".partial"), target.with_name(target.name + ".old")
    shutil.rmtree(fresh, ignore_errors=True)
    write(fresh)
    if target.exists():
        os.replace(target, old)
    os.replace(fresh, target)
    shutil.rmtree(old, ignore_errors=True)
