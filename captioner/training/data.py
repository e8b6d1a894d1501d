"""The tf.data pipelines of training: batches of cached features and captions (or images, for self-critical training),
in an order that depends only on the seed and the pass over the data, so that a resumed run sees the batches the
interrupted one would have."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from ..data import Record
from ..data.cache import FeatureCache
from ..encoder import CNNEncoder
from ..preprocess import load_image, to_array
from ..vocab import Vocabulary

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
