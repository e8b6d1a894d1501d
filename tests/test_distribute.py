"""tf.distribute: two replicas train like one device on the same global batch, and draw random numbers of their own.

Two logical CPUs must be declared before TensorFlow starts its devices, and another test file may already have
started them in this worker process: the replicas run in a subprocess, which reports what the tests check.
"""
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from captioner.model import show_attend_tell
from captioner.training import SelfCritical, SelfCriticalTrainer
from captioner.vocab import SPECIALS, Vocabulary

GRID, C, LENGTH = (2, 2), 8, 6
BATCH = 8  # the global batch: 4 per replica
REFERENCES = [["a dog runs on the grass", "a brown dog runs"], ["a man rides a bike", "a man on a red bike"],
              ["two dogs play in the snow", "dogs in the snow"], ["a girl jumps into the water", "a girl swims"]]

TWO_REPLICAS = f"""import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, {str(Path(__file__).parent)!r})
import test_distribute
print(json.dumps(test_distribute.on_two_replicas()))
"""


@pytest.fixture(scope="module")
def report():
    done = subprocess.run([sys.executable, "-c", TWO_REPLICAS], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("objective", ["soft", "hard", "self-critical"])
def test_a_mirrored_step_trains_like_one_device_on_the_same_global_batch(report, objective):
    """Every replica's copy of every weight (the reward baseline too) after one optimizer step, and the logged loss.
    Hard attention reads the expected context at every step here: the locations sampled on two replicas are not
    those sampled on one device."""
    step = report["same step"][objective]
    worst = max(step["weights"], key=step["weights"].get)
    assert step["weights"][worst] < 1e-5, f"{worst} is {step['weights'][worst]:.1e} from one device's"
    assert step["loss"][0] == pytest.approx(step["loss"][1], rel=1e-5)


@pytest.mark.parametrize("draw", ["dropout masks", "hard attention locations", "self-critical captions"])
def test_replicas_draw_their_own_random_numbers_reproducibly(report, draw):
    """Both replicas get the same inputs: what differs between them is only what they drew."""
    first, again = report["draws"][draw]
    assert first[0] != first[1]
    assert first == again  # drawn afresh from the same state


def test_self_critical_sampling_keeps_its_stream_one_value_that_checkpoints_save(report):
    """A checkpoint saves one state per random stream, so every replica's copy of it must stay the same. Sampling
    stops once its captions have ended: here after a different number of words, and draws, on each replica (they
    would be the same number if the replicas drew the same words)."""
    sampled = report["stream copies"]
    assert sampled["longest"][0] != sampled["longest"][1]
    assert sampled["states"][0] == sampled["states"][1]


# --- run in the subprocess ----------------------------------------------------------------------------------------
def on_two_replicas() -> dict:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    return {
        "same step": {objective: same_step(strategy, objective) for objective in ("soft", "hard", "self-critical")},
        "draws": {name: draw(strategy) for name, draw in DRAWS.items()},
        "stream copies": stream_copies(strategy),
    }


def vocabulary():
    return Vocabulary.build((caption for image in REFERENCES for caption in image), min_count=1)


def tiny(kind="soft", dropout=0.0, **attention_options):
    keras.utils.set_random_seed(0)
    return show_attend_tell(len(vocabulary()), C, GRID, attention=kind, attention_units=16, embedding_dim=16,
                            units=16, dropout=dropout, attention_options=attention_options)


def self_critical(model, samples=2):
    return SelfCritical(model.decoder, vocabulary(), REFERENCES, samples=samples, max_length=LENGTH, seed=0)


def features(images, seed=0):
    return np.random.default_rng(seed).normal(size=(images, GRID[0] * GRID[1], C)).astype("float32")


def caption_batch():
    words = vocabulary()
    tokens = np.zeros((BATCH, LENGTH + 2), np.int32)
    for row in range(BATCH):
        caption = words.encode(REFERENCES[row % 4][row // 4])[: LENGTH + 2 - row % 3]  # lengths vary: padding
        tokens[row, : len(caption)] = caption
    return {"features": features(BATCH), "tokens": tokens}


def image_batch():
    batch = {"features": features(BATCH), "image": np.arange(BATCH, dtype=np.int32) % len(REFERENCES)}
    batch["features"][:, 0, 0] = np.arange(BATCH)  # which row it is, for `fixed_samples`
    return batch


def fixed_samples(samples):
    """A sampler that gives each row of `image_batch` the same captions on one device and on either replica."""
    rng = np.random.default_rng(1)
    words = vocabulary()
    lengths = rng.integers(2, LENGTH + 1, size=(BATCH, samples), dtype=np.int32)
    table = rng.integers(len(SPECIALS), len(words), size=(BATCH, samples, LENGTH), dtype=np.int32)
    table = np.where(np.arange(LENGTH) < lengths[..., None] - 1, table, 0)
    table[np.arange(BATCH)[:, None], np.arange(samples), lengths - 1] = words.end

    def sample(features):
        row = tf.cast(features[:, 0, 0], tf.int32)
        return tf.reshape(tf.gather(table, row), (-1, LENGTH)), tf.reshape(tf.gather(lengths, row), (-1,)), None

    return tf.function(sample)


def same_step(strategy, objective) -> dict:
    """How far each weight of a model trained by one mirrored step is from the same model's after a step on one
    device (eager: nothing to trace), and the loss each logged."""

    def model(strategy):
        with strategy.scope():
            model = tiny("hard", expectation_rate=1.0) if objective == "hard" else tiny()
            if objective == "self-critical":
                critic = self_critical(model)
                critic.sample = fixed_samples(critic.samples)
                model = SelfCriticalTrainer(model, critic)
            model.compile(optimizer=keras.optimizers.SGD(0.5))
        return model

    batch = image_batch() if objective == "self-critical" else caption_batch()
    one, mirrored = model(tf.distribute.get_strategy()), model(strategy)
    one_loss = one.train_step(tf.nest.map_structure(tf.constant, batch))["loss"]
    mirrored_loss = mirrored.fit(tf.data.Dataset.from_tensors(batch), verbose=0).history["loss"][0]
    distance = {}
    for mine, theirs in zip(mirrored.weights, one.weights, strict=True):
        copies = strategy.experimental_local_results(mine.value)
        distance[mine.path] = max(float(np.abs(np.asarray(copy) - np.asarray(theirs)).max()) for copy in copies)
    return {"weights": distance, "loss": [float(one_loss), float(mirrored_loss)]}


def on_each_replica(strategy, function, *inputs):
    """A traced `function(*inputs)` on every replica, returning each replica's result as lists."""
    run = tf.function(lambda *inputs: strategy.run(function, args=inputs))
    return lambda: [np.asarray(part).tolist() for part in strategy.experimental_local_results(run(*inputs))]


def twice(run, streams) -> list:
    """What `run()` gives, then what it gives again from the same state of the random streams."""
    streams = [stream for stream in streams if stream.name == "seed_generator_state"]
    start = [np.asarray(stream) for stream in streams]
    first = run()
    for stream, value in zip(streams, start, strict=True):
        stream.assign(value)
    return [first, run()]


def dropout_masks(strategy):
    with strategy.scope():
        decoder = tiny(dropout=0.5).decoder
    batch = caption_batch()
    run = on_each_replica(strategy, lambda f, t: decoder(f, t, training=True)[0], batch["features"],
                          batch["tokens"][:, :-1])
    return twice(run, decoder.variables)


def hard_locations(strategy):
    with strategy.scope():
        decoder = tiny("hard", expectation_rate=0.0).decoder
    batch = caption_batch()
    run = on_each_replica(strategy, lambda f, t: decoder(f, t, training=True)[1].alpha, batch["features"],
                          batch["tokens"][:, :-1])
    return twice(run, decoder.variables)


def self_critical_captions(strategy):
    with strategy.scope():
        sampler = self_critical(tiny(), samples=4)
    return twice(on_each_replica(strategy, lambda f: sampler.sample(f)[0], features(4)), [sampler.seed.state])


DRAWS = {"dropout masks": dropout_masks, "hard attention locations": hard_locations,
         "self-critical captions": self_critical_captions}


def stream_copies(strategy) -> dict:
    """Self-critical sampling on two replicas with <end> likely enough that captions end early and unevenly: each
    replica's longest caption, and its copy of the sampling stream's state afterwards."""
    with strategy.scope():
        model = tiny()
        sampler = self_critical(model)
    words = vocabulary()
    model.decoder.vocabulary_projection.bias.assign(np.eye(len(words))[words.end] * 2.0)
    longest = on_each_replica(strategy, lambda f: tf.reduce_max(sampler.sample(f)[1]), features(1))()
    states = [np.asarray(copy).tolist() for copy in strategy.experimental_local_results(sampler.seed.state.value)]
    return {"longest": longest, "states": states}
