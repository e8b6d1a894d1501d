"""Training on a tiny real Flickr8k subset with a tiny model: run files, exact resume, kills, fine-tuning policies,
plateau handling and tf.distribute strategies, mostly through the `captioner train` command line."""
import csv
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from captioner.api import Captioner
from captioner.cli import main
from captioner.config import TrainConfig
from captioner.data import read_dataset
from captioner.encoder import EncoderHead
from captioner.evaluate import METRICS
from captioner.metrics import bleu
from captioner.model import show_attend_tell
from captioner.training import (FeatureStore, RunKeeper, SelfCritical, build_model, caption_dataset,
                                fine_tuning_config, transfer_weights, vocabulary_for)
from captioner.vocab import Vocabulary
from tiny_flickr8k import write_tiny_flickr8k

TINY = {"embedding-dim": 16, "units": 16, "attention-units": 16, "batch-size": 16, "min-count": 2,
        "val-beam-size": 2, "val-images": 4, "epochs": 3}
# The command line's own module, so subprocesses run exactly what `captioner` runs.
CLI = "from captioner.cli import main; import sys; sys.exit(main(sys.argv[1:]))"
# MirroredStrategy takes the logical devices there are; two must be declared before TensorFlow starts.
TWO_LOGICAL_CPUS = """import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
""" + CLI


@pytest.fixture(scope="module")
def data(tmp_path_factory, flickr8k_dir):
    return write_tiny_flickr8k(flickr8k_dir, tmp_path_factory.mktemp("data") / "flickr8k", train=24, dev=4)


@pytest.fixture(scope="module")
def other_data(tmp_path_factory, flickr8k_dir):
    """Other images, other captions: data to fine-tune on."""
    return write_tiny_flickr8k(flickr8k_dir, tmp_path_factory.mktemp("other") / "flickr8k", train=24, dev=4, skip=24)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("features")


def train_args(data, out, cache, **changes) -> list[str]:
    settings = {**TINY, "data": data, "out": out, "cache": cache, **changes}
    return ["train", *(item for name, value in settings.items() for item in (f"--{name}", str(value)))]


def read_log(run) -> list[dict]:
    with open(run / "log.csv", newline="") as file:
        return list(csv.DictReader(file))


def weights_of(checkpoint) -> list[np.ndarray]:
    model = keras.saving.load_model(checkpoint, safe_mode=True)
    return [np.asarray(v) for v in model.weights + model.optimizer.variables]


@pytest.fixture(scope="module")
def full_run(data, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "full"
    assert main(train_args(data, out, cache)) == 0
    return out


@pytest.mark.slow
def test_a_run_writes_config_vocabulary_checkpoint_state_log_plot_and_best_model(full_run, data, cache):
    config = TrainConfig.load(full_run / "config.json")
    assert (config.units, config.batch_size, config.epochs, config.data) == (16, 16, 3, str(data))
    vocabulary = Vocabulary.load(full_run / "vocabulary.json")
    assert sorted(path.name for path in (full_run / "checkpoints").iterdir()) == ["epoch-003.keras"]
    state = json.loads((full_run / "state.json").read_text())
    assert (state["epoch"], state["checkpoint"]) == (3, "epoch-003.keras")

    rows = read_log(full_run)
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert {"loss", "xent", "learning_rate", "dev_BLEU-4", "dev_CIDEr"} <= rows[0].keys()
    assert all(float(row["loss"]) > float(row["xent"]) > 0 for row in rows)
    assert state["best"] == pytest.approx(max(float(row["dev_CIDEr"]) for row in rows))
    with Image.open(full_run / "progress.png") as plot:
        assert plot.format == "PNG" and plot.width > 400

    best = Captioner.load(full_run / "best")
    assert best.vocabulary.words == vocabulary.words
    records, _ = read_dataset("flickr8k", data)
    [caption] = best.caption([records[0].image], beam_size=1)
    assert set(caption.words) <= set(vocabulary.words)


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_result(full_run, data, cache, tmp_path):
    """SIGKILL in the second of three epochs: the checkpoint state.json names loads, and `--resume` ends where the
    uninterrupted run ended: same state, log, weights and optimizer state (same seed, same batches, same dropout)."""
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-c", CLI, *train_args(data, out, cache)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "state.json").exists():
            assert process.poll() is None and time.monotonic() < deadline, "the run wrote no checkpoint"
            time.sleep(0.05)
        time.sleep(0.3)  # into the second epoch
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] in (1, 2)
    keras.saving.load_model(out / "checkpoints" / state["checkpoint"], safe_mode=True)

    assert main(["train", "--resume", "--out", str(out)]) == 0
    assert json.loads((out / "state.json").read_text()) == json.loads((full_run / "state.json").read_text())
    assert sorted(path.name for path in (out / "checkpoints").glob("epoch-*.keras")) == ["epoch-003.keras"]
    resumed, uninterrupted = read_log(out), read_log(full_run)
    assert [row["epoch"] for row in resumed] == ["1", "2", "3"]
    for row, expected in zip(resumed, uninterrupted):
        assert float(row["loss"]) == pytest.approx(float(expected["loss"]), rel=1e-5)
    for mine, theirs in zip(weights_of(out / "checkpoints/epoch-003.keras"),
                            weights_of(full_run / "checkpoints/epoch-003.keras"), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_resume_changes_what_it_safely_can_and_names_each_setting_it_ignores(data, cache, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(data, out, cache, epochs=1, **{"steps-per-epoch": 2})) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2", "--val-images", "2", "--units", "16",
                 "--batch-size", "8", "--steps-per-epoch", "3"]) == 0
    ignored = [line for line in capsys.readouterr().err.splitlines() if line.startswith("--")]
    resumable = "--epochs, --early-stopping, --val-images, --val-beam-size, --cache"
    assert ignored == [f"--batch-size 8 ignored: the run resumes with its own 16 (resuming can change {resumable})",
                       f"--steps-per-epoch 3 ignored: the run resumes with its own 2 (resuming can change {resumable})"]
    assert [row["epoch"] for row in read_log(out)] == ["1", "2"]
    config = TrainConfig.load(out / "config.json")
    assert (config.epochs, config.val_images, config.batch_size, config.steps_per_epoch) == (2, 2, 16, 2)


def test_resume_without_a_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["train", "--resume", "--out", str(tmp_path / "nothing")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no state.json to resume from" in error


@pytest.mark.slow
def test_starting_over_an_existing_run_is_a_one_line_error(full_run, data, cache, capsys):
    assert main(train_args(data, full_run, cache)) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "already holds a run: pass --resume" in error


# A name outside a setting's choices (--vocab-policy, --strategy, --select-by...) is refused as the command line is
# parsed: test_cli checks those.
@pytest.mark.parametrize("setting, value, message", [
    ("lr-patience", 0, "lr_patience must be at least 1"),
    ("lr-decay", 2, "lr_decay must be in (0, 1], got 2"),
    ("encoder-blocks", -1, "encoder_blocks must be at least 0"),
    ("bleu-weight", -1, "bleu_weight must be at least 0"),
])
def test_bad_settings_are_one_line_errors(tmp_path, capsys, setting, value, message):
    assert main(["train", "--out", str(tmp_path), f"--{setting}", str(value)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error


# --- fine-tuning --------------------------------------------------------------------------------------------------
def rows_by_word(model, vocabulary) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each word's embedding row and output column."""
    decoder = model.decoder
    embedding = np.asarray(decoder.embedding.embeddings)
    kernel = np.asarray(decoder.vocabulary_projection.kernel)
    return {word: (embedding[i], kernel[:, i]) for i, word in enumerate(vocabulary.words)}


def assert_other_weights_copied(model, source):
    """Every weight not indexed by word (LSTM, attention, initial state...) equals the source model's."""
    decoder = model.decoder
    word_indexed = {weight.path for weight in (decoder.embedding.embeddings, *decoder.vocabulary_projection.weights)}
    others = [(mine, theirs) for mine, theirs in zip(model.weights, source.weights, strict=True)
              if mine.path not in word_indexed]
    assert len(others) > 10
    for mine, theirs in others:
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


def fine_tuning(start: Captioner, **settings) -> TrainConfig:
    """The configuration of fine-tuning `start` with these settings given."""
    return fine_tuning_config(TrainConfig(**settings), start, settings)


def fine_tune_start(full_run, data, policy):
    source = Captioner.load(full_run / "best")
    config = fine_tuning(source, data=str(data), vocab_policy=policy, min_count=2, init_from=str(full_run / "best"))
    records, _ = read_dataset("flickr8k", data)
    vocabulary = vocabulary_for(config, [r for r in records if r.split == "train"], source)
    model = build_model(config, vocabulary, source.grid_shape, source.model.decoder.feature_dim, source)
    return source, vocabulary, model


@pytest.mark.slow
def test_keep_policy_starts_as_the_source_model_at_its_loss(full_run, data, cache):
    source, vocabulary, model = fine_tune_start(full_run, data, "keep")
    assert vocabulary.words == source.vocabulary.words
    records, _ = read_dataset("flickr8k", data)
    split = FeatureStore(source.encoder_settings, cache).split([r for r in records if r.split == "train"])
    dataset, _ = caption_dataset(split, vocabulary, 16, 0, 30, range(1))
    batch = next(iter(dataset))
    losses = [float(m.compute_loss(x=batch, y_pred=m(batch), training=False)) for m in (source.model, model)]
    assert losses[0] > 0 and losses[1] == pytest.approx(losses[0], rel=1e-6)


@pytest.mark.slow
def test_extend_policy_keeps_old_ids_and_their_rows(full_run, other_data):
    source, vocabulary, model = fine_tune_start(full_run, other_data, "extend")
    old = source.vocabulary.words
    assert vocabulary.words[: len(old)] == old and len(vocabulary) > len(old)
    before, after = rows_by_word(source.model, source.vocabulary), rows_by_word(model, vocabulary)
    for word in old:
        for mine, theirs in zip(after[word], before[word]):
            np.testing.assert_array_equal(mine, theirs)
    assert_other_weights_copied(model, source.model)


@pytest.mark.slow
def test_rebuild_policy_copies_shared_words_and_starts_the_others_fresh(full_run, other_data):
    source, vocabulary, model = fine_tune_start(full_run, other_data, "rebuild")
    records, _ = read_dataset("flickr8k", other_data)
    expected = Vocabulary.build((c for r in records if r.split == "train" for c in r.captions), min_count=2)
    assert vocabulary.words == expected.words != source.vocabulary.words
    before, after = rows_by_word(source.model, source.vocabulary), rows_by_word(model, vocabulary)
    shared = [word for word in vocabulary.words if word in before]
    new = [word for word in vocabulary.words if word not in before]
    assert shared and new
    assert any(vocabulary.words.index(word) != source.vocabulary.words.index(word) for word in shared)
    for word in shared:
        for mine, theirs in zip(after[word], before[word]):
            np.testing.assert_array_equal(mine, theirs)
    assert_other_weights_copied(model, source.model)
    source_rows = np.stack([embedding for embedding, _ in before.values()])
    for word in new:
        assert not np.isclose(source_rows, after[word][0]).all(axis=1).any(), f"{word!r} got a copied row"


@pytest.mark.slow
def test_fine_tuning_run_from_a_model(full_run, other_data, cache, tmp_path):
    out = tmp_path / "tuned"
    args = train_args(other_data, out, cache, epochs=1, **{"init-from": full_run / "best", "vocab-policy": "extend"})
    assert main(args) == 0
    source = Captioner.load(full_run / "best")
    records, _ = read_dataset("flickr8k", other_data)
    expected = source.vocabulary.extend((c for r in records if r.split == "train" for c in r.captions), 2)
    assert Vocabulary.load(out / "vocabulary.json").words == expected.words
    assert Captioner.load(out / "best").model.get_config()["decoder"]["config"]["units"] == 16


@pytest.mark.slow
@pytest.mark.parametrize("kind, options", [("hard", {"gate": True, "inference": "expectation"}), ("local-global", {})])
def test_another_attention_kind_starts_out_computing_what_the_source_model_did(full_run, data, cache, kind, options):
    """Warm-starting hard or local+global attention from a soft model: every shared part is copied, and the wider
    inputs of local+global (its second context) start at zero weight."""
    source = Captioner.load(full_run / "best")
    config = fine_tuning(source, data=str(data), min_count=2, init_from=str(full_run / "best"), attention=kind,
                         attention_options=options)
    model = build_model(config, source.vocabulary, source.grid_shape, source.model.decoder.feature_dim, source)
    assert type(model.attention).__name__ == {"hard": "HardAttention", "local-global": "LocalGlobalAttention"}[kind]
    records, _ = read_dataset("flickr8k", data)
    split = FeatureStore(source.encoder_settings, cache).split([r for r in records if r.split == "train"])
    batch = next(iter(caption_dataset(split, source.vocabulary, 16, 0, 30, range(1))[0]))
    np.testing.assert_allclose(model(batch)["logits"], source.model(batch)["logits"], atol=1e-5)


def save_start(folder, encoder_head=None, **settings) -> str:
    """An untrained model over SqueezeNet's grid, saved: a model to fine-tune."""
    keras.utils.set_random_seed(0)
    vocabulary = Vocabulary.build(["a dog runs on the grass", "a man rides a red bike", "two children play"], 1)
    model = show_attend_tell(len(vocabulary), 512, (13, 13), attention_units=16, embedding_dim=16, units=16,
                             encoder_head=encoder_head, **settings)
    encoder = {"backbone": "squeezenet", "image_size": 224, "exclude_top": encoder_head.blocks if encoder_head else 0}
    Captioner(model, vocabulary, encoder, max_length=20).save(folder)
    return str(folder)


@pytest.fixture(scope="module")
def hard_start(tmp_path_factory, squeezenet_file):
    return save_start(tmp_path_factory.mktemp("starts") / "hard", attention="hard", doubly_stochastic=0.7)


@pytest.fixture(scope="module")
def tuned_encoder_start(tmp_path_factory, squeezenet_file):
    head = EncoderHead("squeezenet", 2, name="encoder_head")
    return save_start(tmp_path_factory.mktemp("starts") / "tuned-encoder", encoder_head=head)


@pytest.mark.parametrize("start, setting, value, message", [
    ("hard_start", "backbone", "efficientnet-lite2",  # the default, but given
     "--backbone efficientnet-lite2: {start} reads the grid of --backbone squeezenet, and a decoder trained on one "
     "grid cannot read another"),
    ("hard_start", "image-size", 299, "--image-size 299: {start} reads the grid of --image-size 224"),
    ("hard_start", "encoder-layer", "fire8_concat", "--encoder-layer fire8_concat: {start} reads the grid of no "
                                                    "--encoder-layer"),
    ("hard_start", "attention-options", '{"gate": true, "inference": "expectation"}',
     '--attention-options {"gate": true}: changes the shapes of {start}\'s attention weights, which fine-tuning keeps'),
    ("tuned_encoder_start", "encoder-blocks", 1, "--encoder-blocks 1: {start} fine-tunes its top 2 encoder blocks"),
])
def test_fine_tuning_refuses_what_the_start_model_cannot_take_in_one_line(data, cache, tmp_path, capsys, request,
                                                                          start, setting, value, message):
    start = request.getfixturevalue(start)
    args = train_args(data, tmp_path / "run", cache, epochs=1, **{"steps-per-epoch": 1, "init-from": start,
                                                                  setting: value})
    assert main(args) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message.replace("{start}", start) in error


@pytest.mark.slow
def test_fine_tuning_honours_the_training_settings_given_and_adds_encoder_blocks(hard_start, data, cache, tmp_path,
                                                                                 capsys):
    """Given: training-time settings, an attention option that leaves the weights' shapes, encoder blocks for a
    model without, the caption length; a size, which is ignored with a line. Not given: the start model's, even
    where TrainConfig's default differs (its backbone, its doubly stochastic weight)."""
    out = tmp_path / "tuned"
    settings = {"epochs": 1, "steps-per-epoch": 1, "init-from": hard_start, "dropout": 0.1, "label-smoothing": 0.1,
                "entropy-weight": 0.02, "reinforce-weight": 0.5, "attention-options": '{"inference": "expectation"}',
                "encoder-blocks": 2, "max-length": 12, "units": 64}
    assert main(train_args(data, out, cache, **settings)) == 0
    assert (f"--units 64 ignored: fine-tuning keeps the shapes of {hard_start}'s weights (--units 16)\n"
            in capsys.readouterr().err)

    tuned = Captioner.load(out / "best")
    model, attention = tuned.model, tuned.model.attention
    assert (model.decoder.dropout_rate, model.label_smoothing, model.entropy_weight, model.reinforce_weight,
            model.doubly_stochastic) == (0.1, 0.1, 0.02, 0.5, 0.7)
    assert (type(attention).__name__, attention.inference, attention.use_gate, model.decoder.units) == \
        ("HardAttention", "expectation", False, 16)
    assert tuned.encoder_settings["exclude_top"] == model.encoder_head.blocks == 2
    assert tuned.max_length == 12
    config = json.loads((out / "config.json").read_text())
    assert json.loads((out / "best" / "train-config.json").read_text()) == config
    assert (config["backbone"], config["units"], config["attention"], config["encoder_blocks"]) == \
        ("squeezenet", 16, "hard", 2)


@pytest.mark.slow
def test_encoder_blocks_added_to_a_model_start_out_computing_what_it_did(tiny_model_dir, data, cache):
    """The new encoder head starts as the frozen encoder's top blocks: from the features below them, the model
    computes what the start model did from the encoder's output."""
    start = Captioner.load(tiny_model_dir)
    config = fine_tuning(start, init_from=str(tiny_model_dir), encoder_blocks=2)
    assert (config.backbone, config.encoder_blocks, config.units) == ("squeezenet", 2, 32)
    records, _ = read_dataset("flickr8k", data)
    images = [r for r in records if r.split == "train"][:4]
    below = FeatureStore({"backbone": "squeezenet", "image_size": 224, "exclude_top": 2}, cache)
    model = build_model(config, start.vocabulary, below.encoder.grid_shape, below.encoder.feature_dim, start)
    tokens = np.asarray([start.vocabulary.encode("a dog runs on the grass")] * len(images))
    whole = FeatureStore(start.encoder_settings, cache).split(images).features
    expected = start.model({"features": whole.astype("float32"), "tokens": tokens})["logits"]
    logits = model({"features": below.split(images).features.astype("float32"), "tokens": tokens})["logits"]
    np.testing.assert_allclose(logits, expected, atol=1e-3)


@pytest.mark.parametrize("kind", ["hard", "local-global"])
def test_fine_tuning_within_a_kind_copies_every_weight(kind):
    """Every weight, the attention's own included (local+global's window, hard attention's reward baseline)."""
    vocabulary = Vocabulary.build(["a dog runs on the grass", "a man rides a red bike"], 1)
    source = show_attend_tell(len(vocabulary), 8, (3, 3), attention=kind, attention_units=8, embedding_dim=8, units=8)
    for weight in source.weights:
        weight.assign(np.random.default_rng(0).normal(size=weight.shape).astype(weight.dtype))
    target = show_attend_tell(len(vocabulary), 8, (3, 3), attention=kind, attention_units=8, embedding_dim=8, units=8)
    transfer_weights(source, vocabulary, target, vocabulary)
    assert len(target.weights) == len(source.weights)
    for mine, theirs in zip(target.weights, source.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


def test_epochs_can_be_shorter_than_a_pass_and_resume_where_they_stopped(data, cache):
    records, _ = read_dataset("flickr8k", data)
    train = [r for r in records if r.split == "train"]
    split = FeatureStore({"backbone": "squeezenet", "image_size": 224}, cache).split(train)
    vocabulary = Vocabulary.build((c for r in train for c in r.captions), min_count=2)

    def batches(epochs, steps_per_epoch):
        dataset, steps = caption_dataset(split, vocabulary, 16, 0, 30, epochs, steps_per_epoch)
        return steps, [batch["tokens"].numpy() for batch in dataset]

    steps, whole = batches(range(2), None)  # two passes of 7 batches
    assert steps == 7 and len(whole) == 14
    short, first = batches(range(3), 4)
    assert short == 4 and len(first) == 12
    _, resumed = batches(range(1, 3), 4)
    for mine, theirs in zip(first, whole[:12]):
        np.testing.assert_array_equal(mine, theirs)
    for mine, theirs in zip(resumed, first[4:]):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("objective, encoder_blocks, compiled", [
    ("cross-entropy", 0, True), ("self-critical", 0, False), ("cross-entropy", 1, False)])
def test_xla_compiles_the_cross_entropy_step_on_cached_features_only(objective, encoder_blocks, compiled):
    config = TrainConfig(xla=True, objective=objective, encoder_blocks=encoder_blocks, units=16, embedding_dim=16,
                         attention_units=16)
    vocabulary = Vocabulary.build(["a dog runs", "a cat sits"], min_count=1)
    model = build_model(config, vocabulary, (13, 13), 512, None)
    assert model.jit_compile is compiled
    assert build_model(dataclasses.replace(config, xla=False), vocabulary, (13, 13), 512, None).jit_compile is False


def test_xla_learns_as_tensorflow_does():
    """The compiled cross-entropy step takes the same steps, from the same weights on the same batches (without
    dropout, whose masks XLA draws itself): `--xla` changes the speed of training, not its result."""
    config = TrainConfig(units=16, embedding_dim=16, attention_units=16, dropout=0.0, learning_rate=1e-2)
    vocabulary = Vocabulary.build(["a dog runs on grass", "a cat sits on a mat"], min_count=1)
    rng = np.random.default_rng(0)
    batch = {"features": rng.normal(size=(4, 9, 8)).astype("float32"),
             "tokens": rng.integers(4, len(vocabulary), size=(4, 6))}
    batch["tokens"][:, 0], batch["tokens"][:, -1] = vocabulary.start, vocabulary.end
    models = [build_model(dataclasses.replace(config, xla=xla), vocabulary, (3, 3), 8, None) for xla in (False, True)]
    start = models[0].get_weights()
    models[1].set_weights(start)
    dataset = tf.data.Dataset.from_tensors(batch).repeat(5)
    histories = [model.fit(dataset, verbose=0, shuffle=False).history for model in models]
    assert models[1].jit_compile and not models[0].jit_compile
    assert histories[1]["xent"] == pytest.approx(histories[0]["xent"], rel=1e-4)
    for tensorflow, xla in zip(models[0].get_weights(), models[1].get_weights(), strict=True):
        np.testing.assert_allclose(xla, tensorflow, rtol=1e-3, atol=1e-5)
    assert any(not np.allclose(before, after) for before, after in zip(start, models[1].get_weights()))


# --- plateaus -----------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("select_by", ["CIDEr", "BLEU-4"])
def test_learning_rate_decays_on_a_plateau_and_training_stops_early(data, cache, tmp_path, monkeypatch, select_by):
    """The selecting dev score is scripted: best at epoch 2, then flat (the others climb). Patience 2 halves the
    rate after epoch 4; early stopping after 3 epochs without improvement ends the run after epoch 5 of 10."""
    selecting = iter([0.1, 0.3, 0.2, 0.2, 0.2, 0.9, 0.9, 0.9, 0.9, 0.9])
    climbing = iter(np.linspace(0.1, 1.0, 10))
    weights_when_scored = []

    def scripted(captioner, records, *args, **kwargs):
        weights_when_scored.append([np.asarray(v) for v in captioner.model.weights])
        others = float(next(climbing))
        return {**{name: others for name in METRICS}, "METEOR": None, select_by: next(selecting)}, []

    monkeypatch.setattr("captioner.training.callbacks.evaluate", scripted)
    out = tmp_path / "run"
    args = train_args(data, out, cache, epochs=10, **{"lr-patience": 2, "lr-decay": 0.5, "early-stopping": 3,
                                                      "select-by": select_by})
    assert main(args) == 0

    rows = read_log(out)
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3, 4, 5]
    assert [float(row["learning_rate"]) for row in rows] == pytest.approx([1e-3, 1e-3, 1e-3, 1e-3, 5e-4])
    state = json.loads((out / "state.json").read_text())
    assert (state["epoch"], state["best"], state["since_best"]) == (5, 0.3, 3)
    checkpoint = keras.saving.load_model(out / "checkpoints" / state["checkpoint"], safe_mode=True)
    assert float(checkpoint.optimizer.learning_rate.numpy()) == pytest.approx(5e-4)
    best = Captioner.load(out / "best").model
    for mine, scored in zip(best.weights, weights_when_scored[1], strict=True):
        np.testing.assert_array_equal(np.asarray(mine), scored)

    assert main(["train", "--resume", "--out", str(out)]) == 0  # nothing left to do
    assert len(read_log(out)) == 5


# --- tf.distribute ------------------------------------------------------------------------------------------------
DISTRIBUTED = {"epochs": 1, "dropout": 0.0}  # dropout masks depend on how a batch is split


@pytest.fixture(scope="module")
def one_device_log(data, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "one-device"
    assert main(train_args(data, out, cache, **DISTRIBUTED)) == 0
    return read_log(out)


def assert_same_training(log, expected):
    assert len(log) == len(expected) == 1
    assert float(log[0]["loss"]) == pytest.approx(float(expected[0]["loss"]), rel=1e-4)
    assert float(log[0]["xent"]) == pytest.approx(float(expected[0]["xent"]), rel=1e-3)


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus_trains_like_one_device(data, cache, tmp_path, one_device_log):
    out = tmp_path / "run"
    args = train_args(data, out, cache, strategy="mirrored", **DISTRIBUTED)
    done = subprocess.run([sys.executable, "-c", TWO_LOGICAL_CPUS, *args], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mirrored strategy: 2 replicas of 8 captions a batch" in done.stdout
    assert_same_training(read_log(out), one_device_log)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_workers_on_localhost_train_like_one_device(data, cache, tmp_path, one_device_log):
    """Each worker gets its own --out: only the chief may write anything."""
    cluster = {"worker": [f"localhost:{free_port()}", f"localhost:{free_port()}"]}
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        args = train_args(data, tmp_path / f"worker-{index}", cache, strategy="multi-worker", **DISTRIBUTED)
        workers.append(subprocess.Popen([sys.executable, "-c", CLI, *args], env={**os.environ, "TF_CONFIG": tf_config},
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = [worker.communicate(timeout=240) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-2000:]
        assert "multi-worker strategy: 2 replicas of 8 captions a batch" in stdout
    assert not (tmp_path / "worker-1").exists()
    assert_same_training(read_log(tmp_path / "worker-0"), one_device_log)
    assert Captioner.load(tmp_path / "worker-0" / "best").vocabulary.words


@pytest.mark.slow
def test_encoder_blocks_are_fine_tuned_from_cached_features_below_them(data, tmp_path):
    out = tmp_path / "tuned"
    settings = {"epochs": 1, "backbone": "squeezenet", "encoder-blocks": 2, "encoder-learning-rate": 1e-5}
    assert main(train_args(data, out, tmp_path / "features", **settings)) == 0
    tuned = Captioner.load(out / "best")
    assert tuned.encoder_settings["exclude_top"] == 2
    assert tuned.encoder.grid_shape == (13, 13) and tuned.encoder.feature_dim == 384  # fire7, below fire8 and fire9
    head = tuned.model.encoder_head
    assert [w.path.split("/")[1] for w in head.trainable_weights][0].startswith("fire8")
    # A few steps at 1e-5 move the pretrained blocks a little (Adam steps are about the learning rate), not far.
    imagenet = EncoderHead("squeezenet", 2, weights="imagenet")
    moved = [np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in zip(head.weights, imagenet.weights)]
    assert 0 < max(moved) < 1e-3
    caption = tuned.caption([next((data / "Images").iterdir())], beam_size=2)[0]
    assert caption.attention.shape[1:] == (13, 13)


# --- self-critical ------------------------------------------------------------------------------------------------
def test_self_critical_reward_adds_bleu_4_at_its_weight():
    references = [["a dog runs on the grass", "a brown dog runs", "the dog is running on grass"],
                  ["a man rides a bike", "a person on a bicycle", "a man is cycling down the road"]]
    vocabulary = Vocabulary.build((caption for image in references for caption in image), min_count=1)
    decoder = show_attend_tell(len(vocabulary), 8, (2, 2), units=8, embedding_dim=8, attention_units=8).decoder
    caption = vocabulary.encode("a dog runs on the grass")[1:-1]
    cider = SelfCritical(decoder, vocabulary, references).reward(caption, 0)
    mixed = SelfCritical(decoder, vocabulary, references, bleu_weight=2.0).reward(caption, 0)
    assert cider > 0 and mixed == pytest.approx(cider + 2.0 * bleu([[vocabulary.encode(r)[1:-1] for r in
                                                                     references[0]]], [caption])[3])
    assert mixed > cider + 1  # the caption is a reference: its BLEU-4 is 1


@pytest.mark.slow
def test_self_critical_run_fine_tunes_on_the_reward_of_its_own_samples(full_run, data, cache, tmp_path):
    out = tmp_path / "self-critical"
    args = train_args(data, out, cache, epochs=2, objective="self-critical", samples=3, **{
        "init-from": full_run / "best", "batch-size": 8, "learning-rate": 1e-3})
    assert main(args) == 0
    rows = read_log(out)
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert all(float(row["reward"]) >= 0 and row["loss"] and "dev_CIDEr" in row for row in rows)
    source, tuned = Captioner.load(full_run / "best"), Captioner.load(out / "checkpoints/../best")
    changed = [not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(source.model.weights, tuned.model.weights)]
    assert any(changed)


@pytest.mark.slow
def test_a_stopped_self_critical_run_resumes_to_the_uninterrupted_result(full_run, data, cache, tmp_path,
                                                                          monkeypatch):
    """Stopped (Ctrl-C) after epoch 1 of 2 and resumed: the same samples, so the same weights, as a run never
    stopped, because the sampling stream is saved with the checkpoint like dropout's."""
    settings = {"epochs": 2, "objective": "self-critical", "samples": 3, "init-from": full_run / "best",
                "batch-size": 8, "steps-per-epoch": 2}
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert main(train_args(data, straight, cache, **settings)) == 0
    save_epoch = RunKeeper.on_epoch_end

    def save_then_stop(keeper, epoch, logs=None):
        save_epoch(keeper, epoch, logs)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(RunKeeper, "on_epoch_end", save_then_stop)
        assert main(train_args(data, stopped, cache, **settings)) == 130
    assert main(["train", "--resume", "--out", str(stopped)]) == 0
    assert read_log(stopped) == read_log(straight)
    for mine, theirs in zip(weights_of(stopped / "checkpoints/epoch-002.keras"),
                            weights_of(straight / "checkpoints/epoch-002.keras"), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
