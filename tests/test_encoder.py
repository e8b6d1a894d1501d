"""The encoder: SqueezeNet's published weights land where they belong; other backbones build their grids."""
import shutil

import h5py
import numpy as np
import pytest
from PIL import Image

from captioner.encoder import (
    BACKBONES,
    SQUEEZENET_ARRAYS,
    CNNEncoder,
    WeightsFileError,
    _squeezenet,
    load_squeezenet_weights,
)


def real_images(flickr8k_dir, count=4):
    paths = sorted((flickr8k_dir / "Images").glob("*.jpg"))[:count]
    return np.stack([np.asarray(Image.open(path).convert("RGB"), dtype="float32") for path in paths])


def test_every_array_of_the_real_file_is_assigned_exactly_once(squeezenet_file):
    model = _squeezenet(224)
    before = [np.array(w) for w in model.weights]
    load_squeezenet_weights(model, squeezenet_file)
    assert len(model.weights) == SQUEEZENET_ARRAYS
    with h5py.File(squeezenet_file) as file:
        for layer in model.layers:
            for variable in layer.weights:
                group = file[[n for n in file.attrs["layer_names"] if n.decode().replace("/", "_") == layer.name][0]]
                stored = [group[n] for n in group.attrs["weight_names"] if n.decode().endswith(variable.name + ":0")]
                assert len(stored) == 1
                np.testing.assert_array_equal(np.asarray(variable), np.asarray(stored[0]))
    assert all(not np.array_equal(a, np.asarray(w)) for a, w in zip(before, model.weights) if a.std() > 0)


def test_squeezenet_loads_through_the_keras_cache_and_gives_the_known_grid(flickr8k_dir):
    encoder = CNNEncoder("squeezenet")  # weights="imagenet": keras.utils.get_file finds the seeded cache
    features = np.asarray(encoder(real_images(flickr8k_dir)))
    assert encoder.grid_shape == (13, 13) and encoder.feature_dim == 512
    assert features.shape == (4, 169, 512)
    # ImageNet-trained fire9 activations are sparse and large; random weights give nothing like it.
    assert 0.85 < (features == 0).mean() < 0.99
    assert 5 < np.sqrt((features**2).mean()) < 30
    assert encoder.cache_id == "squeezenet@224:imagenet"


def test_a_truncated_copy_is_refused_naming_the_file_and_the_source(squeezenet_file, tmp_path):
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(squeezenet_file.read_bytes()[: 1_000_000])
    with pytest.raises(WeightsFileError, match=r"truncated\.h5.*rcmalli/keras-squeezenet"):
        load_squeezenet_weights(_squeezenet(224), truncated)


def test_a_file_with_an_array_missing_is_refused(squeezenet_file, tmp_path):
    damaged = tmp_path / "damaged.h5"
    shutil.copy(squeezenet_file, damaged)
    with h5py.File(damaged, "r+") as file:
        group = file["fire9/expand3x3"]
        names = list(group.attrs["weight_names"])
        group.attrs["weight_names"] = names[:1]
    with pytest.raises(WeightsFileError, match="damaged.h5: holds 49 arrays"):
        load_squeezenet_weights(_squeezenet(224), damaged)


def test_a_file_with_a_wrong_shape_is_refused(squeezenet_file, tmp_path):
    wrong = tmp_path / "wrong.h5"
    shutil.copy(squeezenet_file, wrong)
    with h5py.File(wrong, "r+") as file:
        group = file["fire2/squeeze1x1"]
        kernel = [n for n in group.attrs["weight_names"] if n.decode().endswith("kernel:0")][0]
        del group[kernel]
        group.create_dataset(kernel, data=np.zeros((1, 1, 16, 64), "float32"))  # transposed
    with pytest.raises(WeightsFileError, match="fire2_squeeze1x1/kernel has shape"):
        load_squeezenet_weights(_squeezenet(224), wrong)


def test_another_network_file_is_refused(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as file:
        file.create_dataset("x", data=np.zeros(3))
    with pytest.raises(WeightsFileError, match="other.h5: not a readable Keras HDF5"):
        load_squeezenet_weights(_squeezenet(224), other)


@pytest.mark.parametrize(
    "backbone, grid, channels",
    [("resnet50", (7, 7), 2048), ("efficientnetv2-b0", (7, 7), 1280), ("mobilenetv3-large", (7, 7), 960),
     ("mobilenetv3-small", (7, 7), 576)],
)
def test_other_backbones_build_their_grids_with_random_weights(backbone, grid, channels):
    encoder = CNNEncoder(backbone, weights=None)
    features = np.asarray(encoder(np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype("float32")))
    assert encoder.grid_shape == grid and encoder.feature_dim == channels
    assert features.shape == (2, grid[0] * grid[1], channels)
    assert np.all(np.isfinite(features))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_frozen_by_default_and_top_blocks_unfreeze(backbone):
    encoder = CNNEncoder(backbone, weights=None)
    assert encoder.trainable_weights == []
    encoder.unfreeze_top(2)
    trainable = {w.path.split("/")[-2] for w in encoder.trainable_weights}
    assert trainable and all(any(name.startswith(block) for block in encoder.blocks[-2:]) for name in trainable)
    assert CNNEncoder(backbone, weights=None, trainable_blocks=1).get_config()["trainable_blocks"] == 1


def test_unknown_backbone_is_refused():
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        CNNEncoder("vgg")
