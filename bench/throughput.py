"""Throughput benchmarks run in this process, each after its own warm-up so no timing includes tracing:
training with `model.fit`, decoding from cached features, folder captioning against the encoder alone, and
building a feature cache."""
from __future__ import annotations

import contextlib
import functools
import itertools
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from captioner.api import Captioner
from captioner.data.cache import FeatureCache
from captioner.folder import caption_folder
from captioner.preprocess import load_image, to_array
from captioner.search import Searcher
from captioner.vocab import SPECIALS
from measure import rate, seconds
from workload import ATTENTIONS, ENCODER_CHOICES, Workload

FOLDER_BEAM_SIZE = 3
FOLDER_BATCH_SIZE = 32  # `captioner caption`'s default
CACHE_BATCH_SIZE = 64  # what training's feature store encodes with


class BatchClock(keras.callbacks.Callback):
    """When each training batch ends: a step returns only once it has run, so the gaps are the step times."""

    def on_train_begin(self, logs=None):
        self.ends = [time.perf_counter()]

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())

    def intervals(self) -> list[float]:
        return [after - before for before, after in zip(self.ends, self.ends[1:])]


def training(workload: Workload) -> Iterator[dict]:
    """Captions per second through `model.fit`, per attention kind, batch size and with XLA (`--xla`) or not: the
    median time between consecutive batches once the first `warmup` batches (which trace the step) are done."""
    for attention, batch, xla in itertools.product(ATTENTIONS, workload.train_batches, (False, True)):
        model = workload.training_model(attention, xla)
        clock = BatchClock()
        steps = workload.warmup + workload.reps
        model.fit(_random_captions(workload, batch), epochs=1, steps_per_epoch=steps, shuffle=False,
                  verbose=0, callbacks=[clock])
        samples = clock.intervals()[workload.warmup:]
        yield rate("train", batch, samples, "captions/s", attention=attention, batch=batch, xla=xla,
                   first_batch_s=round(clock.intervals()[0], 2))
        keras.backend.clear_session()


def _random_captions(workload: Workload, batch: int):
    """A few distinct batches of random features and full-length captions (no <pad>), repeated forever."""
    rng = np.random.default_rng(0)
    distinct = 4
    features = rng.random((distinct, batch, workload.locations, workload.feature_dim), dtype=np.float32)
    tokens = rng.integers(len(SPECIALS), workload.vocab_size, (distinct, batch, workload.caption_tokens + 1), np.int32)
    tokens[..., 0] = SPECIALS.index("<start>")
    return tf.data.Dataset.from_tensor_slices({"features": features, "tokens": tokens}).repeat()


def decoding(workload: Workload) -> Iterator[dict]:
    """Images per second decoded from features as a cache stores them, by search and batch size.

    The search never meets <end>, so every caption takes `caption_tokens` steps, as the baseline's do.
    """
    decoder = workload.untrained_captioner().model.decoder
    searcher = Searcher(decoder, workload.vocabulary.start, end=-1, max_length=workload.caption_tokens)
    count = max(workload.decode_batches)  # the same images at every batch size
    rng = np.random.default_rng(0)
    features = rng.random((count, workload.locations, workload.feature_dim), dtype=np.float32).astype(np.float16)
    for beam_size in workload.beam_sizes:
        search = searcher.greedy if beam_size == 1 else functools.partial(searcher.beam, beam_size=beam_size)
        for batch in workload.decode_batches:
            for _ in range(workload.warmup):
                search(features[:batch])

            def decode_all():
                for first in range(0, count, batch):
                    search(features[first:first + batch])

            samples = [seconds(decode_all) for _ in range(workload.reps)]
            yield rate("decode", count, samples, "images/s", search=_search_name(beam_size), beam_size=beam_size,
                       batch=batch, tokens=workload.caption_tokens)


def folder_captioning(workload: Workload) -> Iterator[dict]:
    """`caption_folder` end to end (image decoding, encoder, beam search, captions, heatmaps and gallery), the same
    without heatmaps, and, alternating with them on the same images, the encoder alone: image decoding (in this
    thread, where captioning reads ahead in a pool) and the encoder's forward pass, in batches of the same size.
    The model is the default shipped one, as `captioner caption` uses it: its captions, and so its heatmap strips,
    are as long as real ones."""
    captioner = Captioner.from_preset()
    images = workload.images(workload.folder_images)
    size = (captioner.image_size, captioner.image_size)

    def encode_only():
        for first in range(0, len(images), FOLDER_BATCH_SIZE):
            batch = images[first:first + FOLDER_BATCH_SIZE]
            captioner.encode(np.stack([to_array(load_image(path), size) for path in batch]))

    with tempfile.TemporaryDirectory(prefix="captioner-bench-folder-") as scratch:
        out = Path(scratch) / "out"

        def caption(paths, heatmaps):
            # caption_folder reports to stdout, which carries this benchmark's JSON lines.
            with contextlib.redirect_stdout(sys.stderr):
                caption_folder(paths, out, captioner, beam_size=FOLDER_BEAM_SIZE, batch_size=FOLDER_BATCH_SIZE,
                               heatmaps=heatmaps)

        captions, encoder_only = {True: [], False: []}, []
        for _ in range(workload.warmup):
            caption(images[:FOLDER_BATCH_SIZE], heatmaps=True)
            shutil.rmtree(out)  # a rerun into the same folder would skip every image as done
        for _ in range(workload.folder_reps):
            for heatmaps, samples in captions.items():
                samples.append(seconds(lambda: caption(images, heatmaps)))
                words = _mean_words(out / "captions.jsonl")
                shutil.rmtree(out)
            encoder_only.append(seconds(encode_only))
    for heatmaps, samples in captions.items():
        yield rate("folder", len(images), samples, "images/s", beam_size=FOLDER_BEAM_SIZE, heatmaps=heatmaps,
                   batch=FOLDER_BATCH_SIZE, images=len(images), mean_words=words)
    yield rate("encoder", len(images), encoder_only, "images/s", batch=FOLDER_BATCH_SIZE, images=len(images))


def encoders(workload: Workload) -> Iterator[dict]:
    """Images per second of image decoding and the network, for each backbone a user would choose, at the grid
    captioning uses: the same images, batches of `captioner caption`'s size, one backbone after another."""
    from captioner.encoder import CNNEncoder

    images = workload.images(workload.folder_images)
    for settings in ENCODER_CHOICES:
        encoder = CNNEncoder(**settings)
        size = encoder.image_size
        encode = tf.function(encoder.call, input_signature=[tf.TensorSpec((None, size, size, 3), tf.float32)])

        def encode_all():
            for first in range(0, len(images), FOLDER_BATCH_SIZE):
                batch = images[first:first + FOLDER_BATCH_SIZE]
                encode(np.stack([to_array(load_image(path), (size, size)) for path in batch])).numpy()

        encode(np.zeros((FOLDER_BATCH_SIZE, size, size, 3), np.float32))
        samples = [seconds(encode_all) for _ in range(workload.folder_reps)]
        yield rate("encoders", len(images), samples, "images/s", **settings, grid=list(encoder.grid_shape),
                   channels=encoder.feature_dim, batch=FOLDER_BATCH_SIZE)
        keras.backend.clear_session()


def cache_build(workload: Workload) -> Iterator[dict]:
    """Images per second through `FeatureCache.build` with the real encoder, into an empty cache each time."""
    captioner = workload.untrained_captioner()  # for its encoder, built and compiled as captioning uses it
    images = workload.images(workload.folder_images)
    size = (captioner.image_size, captioner.image_size)

    with tempfile.TemporaryDirectory(prefix="captioner-bench-cache-") as scratch:
        def build(paths):
            cache = FeatureCache(Path(scratch), captioner.encoder.cache_id)
            cache.build(paths, captioner.encode, lambda path: to_array(load_image(path), size),
                        batch_size=CACHE_BATCH_SIZE)
            shutil.rmtree(cache.directory)

        for _ in range(workload.warmup):
            build(images[:CACHE_BATCH_SIZE])
        samples = [seconds(lambda: build(images)) for _ in range(workload.reps)]
    yield rate("cache", len(images), samples, "images/s", batch=CACHE_BATCH_SIZE, images=len(images))


def _search_name(beam_size: int) -> str:
    return "greedy" if beam_size == 1 else f"beam {beam_size}"


def _mean_words(captions_file: Path) -> float:
    lines = captions_file.read_text().splitlines()
    return round(sum(len(json.loads(line)["words"]) for line in lines) / len(lines), 1)
