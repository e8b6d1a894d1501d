"""Every attention kind and score keeps the contract `attend(features, hidden) -> Glimpse(context, alpha, ...)`."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from captioner.api import Captioner
from captioner.attention import ATTENTIONS, SCORES, LocalGlobalAttention, make_attention
from captioner.attention.contractions import Standardised, match, weighted_sum
from captioner.model import show_attend_tell
from captioner.training import transfer_weights
from captioner.vocab import Vocabulary

GRID = (5, 6)
B, C, H = 3, 8, 12
L = GRID[0] * GRID[1]


def attention(kind, score="additive", **options):
    layer = make_attention(kind, GRID, units=10, score=score, **options)
    layer.build((None, None, C), (None, H))
    return layer


def inputs(seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, L, C)).astype("float32") * scale, rng.normal(size=(B, H)).astype("float32") * scale


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("kind", ATTENTIONS)
@pytest.mark.parametrize("training", [False, True])
def test_shapes_and_alpha_is_a_distribution(kind, score, training):
    layer = attention(kind, score)
    features, hidden = inputs()
    glimpse = layer.attend(features, hidden, training=training)
    context, alpha = np.asarray(glimpse.context), np.asarray(glimpse.alpha)
    assert context.shape == (B, layer.context_dim(C))
    assert alpha.shape == (B, L)
    assert np.all(alpha >= 0)
    np.testing.assert_allclose(alpha.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("kind", ATTENTIONS)
@pytest.mark.parametrize("scale", [0.0, 1e4])
def test_equal_and_extreme_scores_give_no_nan(kind, scale):
    layer = attention(kind)
    features, hidden = inputs(scale=scale)
    glimpse = layer.attend(features, hidden, training=True)
    for part in glimpse:
        assert np.all(np.isfinite(np.asarray(part)))
    np.testing.assert_allclose(np.asarray(glimpse.alpha).sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("kind", ATTENTIONS)
def test_precomputed_keys_give_the_same_result(kind):
    layer = attention(kind)
    features, hidden = inputs()
    direct = layer.attend(features, hidden)
    cached = layer.attend(features, hidden, keys=layer.project_keys(features))
    for a, b in zip(direct, cached):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_local_weights_are_zero_outside_the_window():
    layer = attention("local-global", window=1)
    features, hidden = inputs()
    scores = layer.global_attention.scores(features, hidden)
    weights = np.asarray(layer.local_weights(scores, hidden))  # (B, L)
    centre = np.asarray(layer.centre(layer.centre_hidden(hidden))) * np.asarray(GRID)  # (B, 2)
    cells = layer.cells  # (L, 2)
    outside = np.any(np.abs(cells[None] - centre[:, None]) > 1, axis=-1)
    assert outside.any() and (~outside).any()
    assert np.all(weights[outside] == 0)
    assert np.all(weights[~outside] > 0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("window", [0.4, 0.0, -1])
def test_a_window_that_can_miss_every_cell_is_refused(window):
    with pytest.raises(ValueError, match=f"window must be at least 0.5 cells, got {window}"):
        attention("local-global", window=window)


def test_the_narrowest_window_still_holds_a_cell_wherever_the_centre_falls():
    layer = attention("local-global", window=0.5)
    features, hidden = inputs(scale=1e4)  # centres pushed to the grid's edges and corners
    glimpse = layer.attend(features, hidden)
    assert np.all(np.isfinite(np.asarray(glimpse.context)))
    np.testing.assert_allclose(np.asarray(glimpse.alpha).sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("score", SCORES)
def test_the_local_window_and_the_global_read_each_have_their_own_score(score):
    layer = attention("local-global", score, merge="concatenate")  # the two reads side by side
    features, hidden = inputs()
    global_scorer, local_scorer = layer.global_attention.scorer, layer.local_scorer
    assert type(local_scorer) is type(global_scorer)
    assert not {id(w) for w in local_scorer.weights} & {id(w) for w in global_scorer.weights}
    before = np.asarray(layer.attend(features, hidden).context)
    for weight in local_scorer.weights:
        weight.assign(3 * weight)
    after = np.asarray(layer.attend(features, hidden).context)
    np.testing.assert_array_equal(after[:, :C], before[:, :C])  # the global read
    assert not np.allclose(after[:, C:], before[:, C:])  # the local one


def test_configs_saved_before_the_window_had_its_own_score_load_with_the_shared_one():
    config = attention("local-global").get_config()
    assert config.pop("shared_score") is False
    old = LocalGlobalAttention.from_config(config)
    assert old.local_scorer is None
    assert LocalGlobalAttention.from_config(old.get_config()).local_scorer is None


def test_configs_saved_before_the_merge_setting_load_with_the_contexts_side_by_side():
    config = attention("local-global").get_config()
    assert config.pop("merge") == "sum"
    old = LocalGlobalAttention.from_config(config)
    assert old.merge == "concatenate" and old.context_dim(C) == 2 * C
    assert LocalGlobalAttention.from_config(old.get_config()).merge == "concatenate"


def test_the_summed_context_is_the_global_read_plus_the_scaled_local_one():
    keras.utils.set_random_seed(3)
    apart = attention("local-global", merge="concatenate")
    summed = attention("local-global", merge="sum")
    theirs = {weight.path: weight for weight in apart.weights}
    for mine in summed.weights:
        if mine is not summed.local_scale:
            mine.assign(theirs[mine.path])
    summed.local_scale.assign(0.25)
    features, hidden = inputs()
    both = np.asarray(apart.attend(features, hidden).context)
    np.testing.assert_allclose(summed.attend(features, hidden).context, both[:, :C] + 0.25 * both[:, C:], atol=1e-5)
    assert summed.context_dim(C) == C


def test_an_unknown_merge_is_refused():
    with pytest.raises(ValueError, match="merge must be one of sum, concatenate, not 'mean'"):
        attention("local-global", merge="mean")


def tiny_model(kind, vocabulary, **options):
    return show_attend_tell(len(vocabulary), C, GRID, attention=kind, attention_units=10, embedding_dim=8, units=H,
                            dropout=0.0, attention_options=options)


@pytest.mark.parametrize("kind, options", [
    ("soft", {}), ("hard", {"gate": True}), ("local-global", {}), ("local-global", {"shared_score": True}),
    ("local-global", {"merge": "concatenate"})])
def test_every_weight_plays_a_named_part_for_warm_starts(kind, options):
    """The model's parts and its attention's cover every weight, each once: a layer added to the decoder or an
    attention kind cannot be skipped by warm starts unnoticed."""
    model = tiny_model(kind, Vocabulary.build(["a dog runs"], 1), **options)
    parts = [*model.weight_parts().values(), *model.attention.weight_parts().values()]
    named = [weight.path for part in parts for weight in part]
    assert sorted(named) == sorted(weight.path for weight in model.weights)


@pytest.mark.parametrize("kind, options", [
    ("soft", {}), ("hard", {"gate": True}), ("local-global", {"shared_score": True})])
def test_a_warm_start_into_local_global_starts_its_local_score_from_the_global_one(kind, options):
    """From soft or hard attention, or from a local+global model whose window read the global scores: the new
    window's score starts as that score; a soft model's successor, whose local read enters at zero scale, and an
    old local+global model's compute what they did."""
    keras.utils.set_random_seed(2)
    vocabulary = Vocabulary.build(["a dog runs on the grass", "a man rides a red bike"], 1)
    source, target = tiny_model(kind, vocabulary, **options), tiny_model("local-global", vocabulary)
    rng = np.random.default_rng(2)
    for weight in source.weights:
        weight.assign(rng.normal(size=weight.shape).astype(weight.dtype))
    transfer_weights(source, vocabulary, target, vocabulary)
    global_scorer = getattr(source.attention, "global_attention", source.attention).scorer
    for scorer in (target.attention.global_attention.scorer, target.attention.local_scorer):
        for mine, theirs in zip(scorer.weights, global_scorer.weights, strict=True):
            np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    if kind in ("soft", "local-global"):
        features, _ = inputs(seed=2)
        tokens = rng.integers(1, len(vocabulary), size=(B, 6))
        batch = {"features": features, "tokens": tokens}
        np.testing.assert_allclose(target(batch)["logits"], source(batch)["logits"], atol=1e-5)


def scene(seed: int) -> Image.Image:
    """A photo of sorts, 224 pixels square: sky over ground, in random colours with noise, and a disc on them."""
    rng = np.random.default_rng(seed)
    down = np.linspace(0, 1, 224)[:, None, None]  # how far down the photo each row is
    sky, ground, horizon = rng.integers(0, 256, 3), rng.integers(0, 256, 3), rng.uniform(0.3, 0.7)
    image = np.where(down < horizon, sky * (0.6 + 0.4 * down), ground * (1.2 - 0.4 * down)) * np.ones((224, 224, 3))
    image += rng.normal(0, 12, image.shape)
    (y, x), radius = rng.integers(40, 184, 2), rng.integers(15, 40)
    rows, columns = np.mgrid[:224, :224]
    image[(rows - y) ** 2 + (columns - x) ** 2 < radius**2] = rng.integers(0, 256, 3)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


# The shipped local+global model's beam-3 captions of `scene(seed)` and their scores, recorded before the local
# window had a score of its own: the model predates it, and its window reads the global scores.
SHIPPED_LOCAL_GLOBAL = {
    1: ("a man in a red shirt is playing with a red ball", -0.6185722),
    4: ("a boy is in a pool", -0.6385261),
    6: ("a boy in a red shirt is sliding down a green slide", -0.7267202),
    11: ("a man in a red shirt is jumping in the air", -0.7765926),
}


@pytest.mark.slow
def test_the_shipped_local_global_model_captions_as_before_and_keeps_its_layout_when_saved(squeezenet_file, tmp_path):
    shipped = Captioner.from_preset("flickr8k-local-global")
    assert shipped.model.attention.local_scorer is None, "a new shipped model: its captions are not those recorded"
    shipped.save(tmp_path / "saved")
    for captioner in (shipped, Captioner.load(tmp_path / "saved")):
        captions = captioner.caption([scene(seed) for seed in SHIPPED_LOCAL_GLOBAL])
        assert [caption.text for caption in captions] == [text for text, _ in SHIPPED_LOCAL_GLOBAL.values()]
        np.testing.assert_allclose([caption.score for caption in captions],
                                   [score for _, score in SHIPPED_LOCAL_GLOBAL.values()], atol=1e-5)


@pytest.mark.parametrize("training", [False, True])
def test_hard_context_is_one_of_the_feature_vectors(training):
    layer = attention("hard", expectation_rate=0.0, seed=1)
    features, hidden = inputs()
    glimpse = layer.attend(features, hidden, training=training)
    context, alpha = np.asarray(glimpse.context), np.asarray(glimpse.alpha)
    distances = np.abs(features - context[:, None]).max(-1)  # (B, L)
    assert np.all(distances.min(-1) < 1e-5)
    assert np.all(alpha.max(-1) == 1.0)


def test_hard_attention_sampling_is_reproducible_with_a_seed():
    features, hidden = inputs()

    def samples(seed):
        keras.utils.set_random_seed(0)  # the same weights; only the sampling seed varies
        layer = attention("hard", expectation_rate=0.0, seed=seed)
        return np.stack([np.asarray(layer.attend(features, hidden, training=True).alpha) for _ in range(4)])

    np.testing.assert_array_equal(samples(7), samples(7))
    assert not np.array_equal(samples(7), samples(8))


def test_hard_inference_can_use_the_expectation():
    layer = attention("hard", inference="expectation")
    features, hidden = inputs()
    glimpse = layer.attend(features, hidden)
    np.testing.assert_allclose(np.asarray(glimpse.alpha), np.asarray(glimpse.probs))


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError, match="unknown attention"):
        make_attention("sideways", GRID)
    with pytest.raises(ValueError, match="unknown score"):
        make_attention("soft", GRID, score="cosine")


@pytest.mark.parametrize("contraction, spelled_out", [
    (weighted_sum, "bl,blc->bc"),
    (match, "blc,bc->bl"),
])
def test_contractions_have_the_gradients_of_the_einsum_they_replace(contraction, spelled_out):
    rng = np.random.default_rng(5)
    first_shape, second_shape = ((B, L), (B, L, C)) if contraction is weighted_sum else ((B, L, C), (B, C))
    first = tf.constant(rng.normal(size=first_shape), tf.float32)
    second = tf.constant(rng.normal(size=second_shape), tf.float32)
    cotangent = tf.constant(rng.normal(size=(B, C) if contraction is weighted_sum else (B, L)), tf.float32)

    def value_and_gradients(function):
        with tf.GradientTape() as tape:
            tape.watch([first, second])
            value = function(first, second)
        return [value, *tape.gradient(value, [first, second], output_gradients=cotangent)]

    ours = value_and_gradients(contraction)
    expected = value_and_gradients(lambda a, b: tf.einsum(spelled_out, a, b))
    for got, want in zip(ours, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_a_weighted_sum_of_standardised_features_is_that_of_the_features_with_the_same_gradients():
    rng = np.random.default_rng(6)
    weights = tf.constant(rng.random((B, L)), tf.float32)  # summing to anything: the offset counts once per unit
    normalised = tf.constant(rng.normal(size=(B, L, C)), tf.float32)
    scale, offset = (tf.constant(rng.normal(size=C), tf.float32) for _ in range(2))
    cotangent = tf.constant(rng.normal(size=(B, C)), tf.float32)

    def value_and_gradients(values):
        inputs = [weights, normalised, scale, offset]
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            value = weighted_sum(weights, values(*inputs[1:]))
        return [value, *tape.gradient(value, inputs, output_gradients=cotangent)]

    by_parts = value_and_gradients(Standardised)
    whole = value_and_gradients(lambda normalised, scale, offset: scale * normalised + offset)
    for got, want in zip(by_parts, whole):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("kind", ATTENTIONS)
def test_standardised_features_give_the_keys_and_glimpse_of_the_features_they_stand_for(kind, score):
    layer = attention(kind, score)
    normalised, hidden = inputs(seed=7)
    rng = np.random.default_rng(8)
    scale, offset = rng.normal(size=C).astype("float32"), rng.normal(size=C).astype("float32")
    by_parts, whole = Standardised(normalised, scale, offset), scale * normalised + offset
    np.testing.assert_allclose(layer.project_keys(by_parts), layer.project_keys(whole), rtol=1e-4, atol=1e-4)
    got, want = (layer.attend(values, hidden, keys=layer.project_keys(whole)) for values in (by_parts, whole))
    np.testing.assert_allclose(got.context, want.context, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got.alpha, want.alpha, rtol=1e-5, atol=1e-6)
