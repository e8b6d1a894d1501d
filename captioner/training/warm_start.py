"""Warm starts: a run that starts from a trained model (`--init-from`) takes its settings, its vocabulary (kept,
extended or rebuilt) and every weight that plays a part in the new model, whatever their attention kinds."""
from __future__ import annotations

import dataclasses
import inspect
import json
import sys
from collections.abc import Iterable

import numpy as np

from ..api import Captioner
from ..attention import kind_of, make_attention
from ..config import TrainConfig, flag
from ..data import Record
from ..encoder import CNNEncoder
from ..model import ShowAttendTell
from ..vocab import Vocabulary


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
    each part the models name (`ShowAttendTell.weight_parts`), and the attention: all of it between two alike,
    else part by part (`Attention.weight_parts`: soft attention's score and gate, hard attention's, local+global's
    global half, and local+global's window). A source whose window has no score of its own (soft or hard
    attention, or a local+global model saved before it had one) reads the global scores there, so its global score
    starts the target's local score too (`Attention.starting_parts`): the target then starts out computing what
    the source did."""
    alike = type(source.attention) is type(target.attention) and (
        [w.shape for w in source.attention.weights] == [w.shape for w in target.attention.weights])

    def parts(model, attention_parts):
        return model.weight_parts() | ({"attention": model.attention.weights} if alike else attention_parts)

    mine = parts(target, target.attention.weight_parts())
    theirs = parts(source, source.attention.starting_parts())
    return [pair for name in mine.keys() & theirs.keys() for pair in zip(mine[name], theirs[name], strict=True)]


def transfer_weights(source: ShowAttendTell, source_vocabulary: Vocabulary, target: ShowAttendTell,
                     target_vocabulary: Vocabulary) -> None:
    """Copies every weight of `source` into the weight of `target` that plays its part (`matching_weights`).

    Of the word-indexed ones (`AttentionLSTMDecoder.word_axes`: embedding rows, output columns) only the words both vocabularies share are copied,
    leaving the new words' fresh initialisation. A target weight that reads a wider input (a concatenating
    local+global's LSTM and deep output read a second context after the first) gets the source's rows first and
    zeros after, and the parts the target's attention says enter anew (`Attention.entering_parts`) start at zero,
    so the new model starts out computing what the source did.
    """
    pairs = matching_weights(source, target)
    copied = {id(mine) for mine, _ in pairs}
    for part in target.attention.entering_parts().values():
        for weight in part:
            if id(weight) not in copied:
                weight.assign(np.zeros(weight.shape, weight.dtype))
    source_ids = {word: i for i, word in enumerate(source_vocabulary.words)}
    shared = [(i, source_ids[word]) for i, word in enumerate(target_vocabulary.words) if word in source_ids]
    to_rows, from_rows = (np.asarray(ids) for ids in zip(*shared))
    word_axes = target.decoder.word_axes()
    for mine, theirs in pairs:
        value = theirs.numpy()
        axis = word_axes.get(mine.path)
        if axis is not None:
            fresh = mine.numpy().copy()
            np.moveaxis(fresh, axis, 0)[to_rows] = np.moveaxis(value, axis, 0)[from_rows]
            value = fresh
        elif value.shape != tuple(mine.shape):
            if value.shape[1:] != tuple(mine.shape)[1:] or value.shape[0] > mine.shape[0]:
                raise ValueError(f"cannot start {mine.path} {tuple(mine.shape)} from a weight of shape {value.shape}")
            value = np.concatenate([value, np.zeros((mine.shape[0] - value.shape[0], *value.shape[1:]), value.dtype)])
        mine.assign(value)


# A trained decoder reads the grid of one encoder: fine-tuning refuses another.
ENCODER_SETTINGS = ("backbone", "image_size", "encoder_layer")
# The shapes of a trained model's weights, which fine-tuning keeps.
SHAPE_SETTINGS = ("score", "attention_units", "embedding_dim", "units")


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


def _defaults(callable) -> dict:
    """The default of each parameter of a function or class."""
    return {name: parameter.default for name, parameter in inspect.signature(callable).parameters.items()}


def _weight_shapes(start: Captioner, options: dict) -> list[tuple]:
    """The shapes of the weights of `start`'s attention made anew with these options."""
    decoder, attention = start.model.decoder, start.model.attention
    made = make_attention(kind_of(attention), start.grid_shape, attention.units, attention.score_name, **options)
    made.build((None, None, decoder.feature_dim), (None, decoder.units))
    return [tuple(weight.shape) for weight in made.weights]
