"""Image → spatial grid of feature vectors a_1..a_L, from a pretrained CNN.

EfficientNet-Lite2 is the default: 77.6% ImageNet top-1 at 1.3 GFLOP, with weights that install with pip
(`efficientnet_lite`). SqueezeNet v1.1 (fire9: a 13x13x512 grid at 224x224) stays for the smallest CPUs; its
weights come from a GitHub release. ResNet50, EfficientNetV2-B0 and MobileNetV3 come from keras.applications.
Any backbone can stop at an inner layer (`output_layer`) for a finer grid.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import keras
import numpy as np
from keras import layers, ops

from . import efficientnet_lite, names
from .efficientnet_lite import WeightsUnavailable
from .torch_legacy import sha256

SQUEEZENET_FILE = "squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5"
SQUEEZENET_URL = f"https://github.com/rcmalli/keras-squeezenet/releases/download/v1.0/{SQUEEZENET_FILE}"
SQUEEZENET_ARRAYS = 50
SQUEEZENET_VALUES = 722_496
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


def _squeezenet(image_size: int) -> keras.Model:
    """SqueezeNet v1.1 up to fire9, layer for layer as the published Caffe conversion."""

    def fire(x, index: int, squeeze: int, expand: int):
        name = f"fire{index}"
        x = layers.Conv2D(squeeze, 1, activation="relu", name=f"{name}_squeeze1x1")(x)
        left = layers.Conv2D(expand, 1, activation="relu", name=f"{name}_expand1x1")(x)
        right = layers.Conv2D(expand, 3, padding="same", activation="relu", name=f"{name}_expand3x3")(x)
        return layers.Concatenate(name=f"{name}_concat")([left, right])

    images = keras.Input((image_size, image_size, 3))
    x = layers.Conv2D(64, 3, strides=2, activation="relu", name="conv1")(images)
    x = layers.MaxPooling2D(3, 2, name="pool1")(x)
    x = fire(x, 2, 16, 64)
    x = fire(x, 3, 16, 64)
    x = layers.MaxPooling2D(3, 2, name="pool3")(x)
    x = fire(x, 4, 32, 128)
    x = fire(x, 5, 32, 128)
    x = layers.MaxPooling2D(3, 2, name="pool5")(x)
    for index, squeeze, expand in ((6, 48, 192), (7, 48, 192), (8, 64, 256), (9, 64, 256)):
        x = fire(x, index, squeeze, expand)
    return keras.Model(images, x, name="squeezenet_v1_1")


class WeightsFileError(ValueError):
    """A weights file that is not the one the network expects."""


def load_squeezenet_weights(model: keras.Model, path: str | Path) -> None:
    """Assign every array of the published Keras-2 HDF5 file to its layer, checking names, shapes and totals.

    The check is on content, not on the file's bytes: copies with identical arrays in different HDF5
    containers circulate. Each array must land in exactly one variable and each variable get exactly one.
    """
    path = Path(path)

    def refuse(reason: str) -> WeightsFileError:
        return WeightsFileError(f"{path}: {reason}; expected the SqueezeNet v1.1 weights from {SQUEEZENET_URL}")

    try:
        with h5py.File(path, "r") as file:
            arrays = {}
            for layer_name in file.attrs["layer_names"]:
                group = file[layer_name]
                for weight_name in group.attrs["weight_names"]:
                    key = (layer_name.decode().replace("/", "_"), weight_name.decode().rsplit("/", 1)[-1])
                    arrays[key] = np.asarray(group[weight_name])
    except (OSError, KeyError) as error:
        raise refuse(f"not a readable Keras HDF5 weights file ({error})") from None
    if len(arrays) != SQUEEZENET_ARRAYS or sum(a.size for a in arrays.values()) != SQUEEZENET_VALUES:
        raise refuse(f"holds {len(arrays)} arrays, {sum(a.size for a in arrays.values())} values")

    unassigned = dict(arrays)
    for layer in model.layers:
        for variable in layer.weights:
            key = (layer.name, variable.name + ":0")
            if key not in unassigned:
                raise refuse(f"no array for {layer.name}/{variable.name}")
            array = unassigned.pop(key)
            if array.shape != tuple(variable.shape):
                raise refuse(f"{layer.name}/{variable.name} has shape {array.shape}, the network {variable.shape}")
            variable.assign(array)
    if unassigned:
        raise refuse(f"arrays for no layer: {sorted(unassigned)[:3]}")


@dataclass(frozen=True)
class Backbone:
    """How to build one CNN and feed it: its network, its input scaling, and what counts as one block."""

    build: Callable[[str | None, int], keras.Model]
    preprocess: Callable  # RGB in 0..255 → what the network's weights expect
    block_pattern: str  # layer-name prefix shared by one block, for unfreezing the top ones


def _build_squeezenet(weights, image_size):
    model = _squeezenet(image_size)
    if weights == "imagenet":
        try:
            weights = keras.utils.get_file(SQUEEZENET_FILE, SQUEEZENET_URL, cache_subdir="models")
        except Exception as error:  # get_file raises bare Exceptions for every network failure
            raise WeightsUnavailable(
                f"squeezenet ImageNet weights: {SQUEEZENET_FILE} is not in {efficientnet_lite.keras_models_dir()} "
                f"and could not be fetched from "
                f"{SQUEEZENET_URL} ({str(error).splitlines()[0][:80]}); copy the file there, or choose "
                f"another backbone") from None
    if weights is not None:
        load_squeezenet_weights(model, weights)
    return model


def _lite(variant: str):
    def build(weights, image_size):
        if weights == "imagenet":
            return efficientnet_lite.pretrained(variant, image_size)[0]
        network = efficientnet_lite.build_network(variant, image_size)
        if weights is not None:
            efficientnet_lite.with_classifier(network).load_weights(weights)
        return network

    return build


def _caffe(images):
    return ops.flip(images, axis=-1) - ops.convert_to_tensor(CAFFE_BGR_MEAN, dtype=images.dtype)


def _application(constructor, **options):
    def build(weights, image_size):
        return constructor(include_top=False, weights=weights, input_shape=(image_size, image_size, 3), **options)

    return build


def _identity(images):
    return images


_LITE_BLOCKS = r"block\d+[a-z]|top"
BACKBONES = dict(zip(names.BACKBONES, (
    *(Backbone(_lite(variant), efficientnet_lite.preprocess, _LITE_BLOCKS) for variant in names.EFFICIENTNET_LITE),
    Backbone(_build_squeezenet, _caffe, r"fire\d+"),
    Backbone(_application(keras.applications.ResNet50), _caffe, r"conv\d_block\d+"),
    # EfficientNetV2 and MobileNetV3 rescale 0..255 input inside the network.
    Backbone(_application(keras.applications.EfficientNetV2B0, include_preprocessing=True), _identity,
             r"block\d+[a-z]"),
    Backbone(_application(keras.applications.MobileNetV3Large, include_preprocessing=True), _identity,
             r"expanded_conv_\d+"),
    Backbone(_application(keras.applications.MobileNetV3Small, include_preprocessing=True), _identity,
             r"expanded_conv_\d+"),
), strict=True))


@keras.saving.register_keras_serializable("captioner")
class CNNEncoder(keras.layers.Layer):
    """RGB images in 0..255 (B, S, S, 3) → features (B, L, C), with the grid shape (H, W) kept for heatmaps.

    Frozen by default; `trainable_blocks=N` unfreezes the top N blocks (fire modules, ResNet blocks, ...)
    for fine-tuning. `exclude_top=N` stops below the top N blocks: their input is what a feature cache
    stores when those blocks are fine-tuned with the decoder (see `EncoderHead`).
    """

    def __init__(self, backbone=names.DEFAULT_BACKBONE, weights="imagenet", image_size=224, trainable_blocks=0,
                 exclude_top=0, output_layer=None, **kwargs):
        super().__init__(**kwargs)
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
        self.backbone_name = backbone
        self.weights_source = weights
        self.image_size = image_size
        self.exclude_top = exclude_top
        self.output_layer = output_layer
        self._backbone = BACKBONES[backbone]
        self.network = self._backbone.build(weights, image_size)
        if output_layer is not None:
            names = [layer.name for layer in self.network.layers]
            if output_layer not in names:
                raise ValueError(f"{backbone} has no layer {output_layer!r}; its last layers: {', '.join(names[-4:])}")
            self.network = keras.Model(self.network.input, self.network.get_layer(output_layer).output)
        if exclude_top:
            self.network = self.split_top(exclude_top)[0]
        _, height, width, self.feature_dim = self.network.output.shape
        self.grid_shape = (height, width)
        self.unfreeze_top(trainable_blocks)
        self.built = True  # the network is built from the settings: the layer needs no sample input

    @property
    def cache_id(self) -> str:
        """Names what the features depend on, so a feature cache never mixes two encoders: a weights file by its
        content, not its name."""
        weights = self.weights_source
        if weights not in (None, "imagenet"):
            weights = f"sha256:{sha256(weights)[:16]}"
        layer = f"/{self.output_layer}" if self.output_layer else ""
        below = f"-top{self.exclude_top}" if self.exclude_top else ""
        return f"{self.backbone_name}@{self.image_size}{layer}:{weights}{below}"

    @property
    def blocks(self) -> list[str]:
        """Block names from input to output."""
        names = (re.match(self._backbone.block_pattern, layer.name) for layer in self.network.layers)
        return list(dict.fromkeys(match.group(0) for match in names if match))

    def _block_of(self, layer) -> str | None:
        match = re.match(self._backbone.block_pattern, layer.name)
        return match.group(0) if match else None

    def split_top(self, count: int) -> tuple[keras.Model, keras.Model]:
        """(trunk, head): the network below its top `count` blocks, and those blocks, sharing their weights."""
        if not 0 < count < len(self.blocks):
            raise ValueError(f"{self.backbone_name} has {len(self.blocks)} blocks; cannot split off the top {count}")
        first = self.blocks[-count]
        boundary = next(layer for layer in self.network.layers if self._block_of(layer) == first).input
        return keras.Model(self.network.input, boundary), keras.Model(boundary, self.network.output)

    def unfreeze_top(self, count: int) -> None:
        top = set(self.blocks[len(self.blocks) - count :]) if count else set()
        for layer in self.network.layers:
            layer.trainable = self._block_of(layer) in top
        self.trainable_blocks = count

    def call(self, images, training=False):
        grid = self.network(self._backbone.preprocess(images), training=training)  # (B, H, W, C)
        return ops.reshape(grid, (-1, self.grid_shape[0] * self.grid_shape[1], self.feature_dim))  # (B, L, C)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.grid_shape[0] * self.grid_shape[1], self.feature_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "backbone": self.backbone_name,
            "weights": self.weights_source,
            "image_size": self.image_size,
            "trainable_blocks": self.trainable_blocks,
            "exclude_top": self.exclude_top,
            "output_layer": self.output_layer,
        }


@keras.saving.register_keras_serializable("captioner")
class EncoderHead(keras.layers.Layer):
    """The top `blocks` blocks of a backbone, trained with the decoder on cached features from below them:
    (B, L', C') from `CNNEncoder(exclude_top=blocks)` → (B, L, C). Starts from the pretrained weights when
    `weights="imagenet"`; a saved model restores its own."""

    def __init__(self, backbone=names.DEFAULT_BACKBONE, blocks=1, image_size=224, weights=None, output_layer=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.backbone_name, self.blocks, self.image_size = backbone, blocks, image_size
        self.output_layer = output_layer
        with keras.name_scope(self.name):  # variable paths start with this layer's name, for `GroupedAdam`
            encoder = CNNEncoder(backbone, weights=weights, image_size=image_size, trainable_blocks=blocks,
                                 output_layer=output_layer)
        trunk, self.network = encoder.split_top(blocks)
        self.input_grid = tuple(trunk.output.shape[1:])  # (H', W', C')
        _, height, width, self.feature_dim = self.network.output.shape
        self.grid_shape = (height, width)
        self.built = True  # the network is built from the settings: the layer needs no sample input

    def call(self, features, training=False):
        grid = self.network(ops.reshape(features, (-1, *self.input_grid)), training=training)  # (B, H, W, C)
        return ops.reshape(grid, (-1, self.grid_shape[0] * self.grid_shape[1], self.feature_dim))  # (B, L, C)

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone_name, "blocks": self.blocks,
                "image_size": self.image_size, "output_layer": self.output_layer}
