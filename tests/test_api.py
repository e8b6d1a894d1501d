"""The Captioner facade: save and load, shipped-model storage, presets."""
import os
import subprocess
import sys

import numpy as np
import pytest

from captioner.api import Captioner, presets


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return Captioner.load(tiny_model_dir)


def features(seed=0):
    return np.random.default_rng(seed).normal(size=(2, 169, 512)).astype("float32")


@pytest.mark.parametrize("weights_dtype, tolerance", [("float32", 0.0), ("float16", 1e-2)])
def test_saved_folders_load_back_with_the_same_captions(tiny, tmp_path, weights_dtype, tolerance):
    tiny.save(tmp_path / "copy", weights_dtype=weights_dtype)
    copy = Captioner.load(tmp_path / "copy")
    assert copy.vocabulary.words == tiny.vocabulary.words and copy.encoder_settings == tiny.encoder_settings
    assert all(w.dtype == "float32" for w in copy.model.weights if "seed" not in w.path)
    batch = {"features": features(), "tokens": np.array([[1, 4, 5, 2], [1, 6, 2, 0]])}
    np.testing.assert_allclose(np.asarray(copy.model(batch)["logits"]), np.asarray(tiny.model(batch)["logits"]),
                               atol=tolerance)
    assert [c.text for c in copy.decode(features())] == [c.text for c in tiny.decode(features())]


def test_the_caption_length_and_the_training_settings_travel_with_the_model(tiny, tmp_path, monkeypatch):
    """A model saved decoding up to 40 tokens loads decoding up to 40, unless told otherwise; the settings of the
    run that trained it are saved beside it; a folder saved before either was kept decodes up to 25, as then."""
    run_settings = {"units": 32, "max_length": 40}
    Captioner(tiny.model, tiny.vocabulary, tiny.encoder_settings, 40, run_settings).save(tmp_path / "long")
    long = Captioner.load(tmp_path / "long")
    assert (long.max_length, long.train_config) == (40, run_settings)
    assert [len(c.words) for c in long.decode(features())] == [40, 40]  # untrained: it never writes <end>
    short = Captioner.load(tmp_path / "long", max_length=5)
    assert short.max_length == 5 and [len(c.words) for c in short.decode(features())] == [5, 5]
    short.save(tmp_path / "short")
    assert Captioner.load(tmp_path / "short").train_config == run_settings

    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "long").symlink_to(tmp_path / "long")
    monkeypatch.setenv("CAPTIONER_WEIGHTS", str(tmp_path / "weights"))
    assert Captioner.from_preset("long").max_length == 40
    assert Captioner.from_preset("long", max_length=7).max_length == 7
    assert Captioner.load("long", max_length=6).max_length == 6

    (tmp_path / "long" / "settings.json").unlink()
    (tmp_path / "long" / "train-config.json").unlink()
    old = Captioner.load(tmp_path / "long")
    assert (old.max_length, old.train_config) == (25, None)


def test_half_precision_halves_the_file_and_drops_the_optimizer(tiny, tmp_path):
    tiny.model.compile(optimizer="adam")
    tiny.model.optimizer.build(tiny.model.trainable_variables)
    tiny.save(tmp_path / "full")
    tiny.save(tmp_path / "half", weights_dtype="float16")
    full, half = (tmp_path / name / "model.keras" for name in ("full", "half"))
    weights = sum(int(np.prod(w.shape)) for w in tiny.model.weights) * 4
    assert full.stat().st_size < 1.2 * weights  # no optimizer state: it would triple the file
    assert half.stat().st_size < 0.6 * full.stat().st_size


def test_unknown_presets_and_folders_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTIONER_WEIGHTS", str(tmp_path))
    assert presets() == {}
    with pytest.raises(ValueError, match="no shipped model 'flickr8k-soft'"):
        Captioner.from_preset("flickr8k-soft")
    with pytest.raises(FileNotFoundError, match="not a captioner model folder"):
        Captioner.load(tmp_path / "nowhere")


def test_presets_are_found_by_name_and_the_default_is_named_in_a_file(tiny_model_dir, tmp_path, monkeypatch):
    (tmp_path / "flickr8k-soft").symlink_to(tiny_model_dir)
    (tmp_path / "default").write_text("flickr8k-soft\n")
    monkeypatch.setenv("CAPTIONER_WEIGHTS", str(tmp_path))
    assert set(presets()) == {"flickr8k-soft", "default"}
    assert Captioner.from_preset().vocabulary.words == Captioner.load("flickr8k-soft").vocabulary.words


SHIPPED = {"flickr8k-soft": "SoftAttention", "flickr8k-hard": "HardAttention",
           "flickr8k-local-global": "LocalGlobalAttention"}


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_is_whole_small_and_captions_a_photo(name, flickr8k_dir, squeezenet_file):
    """The real presets in weights/: one per attention kind, under 25 MB with their run's settings, and each
    writes a caption of real words with one attention map per word."""
    folder = presets()[name]
    assert sum(path.stat().st_size for path in folder.iterdir()) < 25e6
    assert (folder / "train-config.json").exists()
    captioner = Captioner.from_preset(name)
    assert type(captioner.model.attention).__name__ == SHIPPED[name]
    photo = flickr8k_dir / "Images" / (flickr8k_dir / "Flickr_8k.devImages.txt").read_text().split()[0]
    caption = captioner.caption([photo])[0]
    assert 3 <= len(caption.words) and "<unk>" not in caption.words
    assert caption.attention.shape == (len(caption.words), *captioner.grid_shape)
    np.testing.assert_allclose(caption.attention.sum(axis=(1, 2)), 1.0, atol=1e-4)


def test_the_default_preset_is_one_of_the_shipped_models():
    assert presets()["default"] in {presets()[name] for name in SHIPPED}


@pytest.mark.parametrize("chosen, on", [(None, True), ("0", False)])
def test_importing_captioner_first_turns_tensorflows_onednn_kernels_on_unless_the_user_chose(chosen, on):
    environment = {name: value for name, value in os.environ.items() if name != "TF_ENABLE_ONEDNN_OPTS"}
    environment["TF_CPP_MIN_LOG_LEVEL"] = "0"  # TensorFlow says at load whether they are on
    if chosen is not None:
        environment["TF_ENABLE_ONEDNN_OPTS"] = chosen
    loaded = subprocess.run([sys.executable, "-c", "import captioner, tensorflow"], env=environment,
                            capture_output=True, text=True, check=True)
    assert ("oneDNN custom operations are on" in loaded.stderr) == on
