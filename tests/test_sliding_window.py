"""Tests of dltk2.inference.sliding_window_inference."""

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from dltk2.inference import sliding_window_inference, window_starts, window_weights


def pointwise_model(channels=2, classes=3, seed=0):
    inputs = keras.Input((None, None, None, channels))
    outputs = keras.layers.Conv3D(classes, 1, kernel_initializer=keras.initializers.RandomNormal(seed=seed))(inputs)
    return keras.Model(inputs, outputs)


def conv_model(classes=3):
    inputs = keras.Input((None, None, None, 1))
    x = keras.layers.Conv3D(4, 3, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Conv3D(classes, 3, padding="same")(x))


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
@pytest.mark.parametrize("shape", [(20, 17, 23), (9, 9, 9)])
def test_equals_whole_volume_pass_for_a_pointwise_network(rng, blend, shape):
    model = pointwise_model()
    volume = rng.normal(size=shape + (2,)).astype(np.float32)
    expected = tf.nn.softmax(model(volume[None]), axis=-1)[0].numpy()
    result = sliding_window_inference(model, volume, (8, 8, 8), overlap=0.5, batch_size=3, blend=blend).numpy()
    assert result.shape == shape + (3,)
    np.testing.assert_allclose(result, expected, atol=1e-5)


def test_equals_whole_volume_pass_away_from_window_borders(rng):
    # Two 3x3x3 convolutions see 2 voxels around each output voxel, so a window's output equals the
    # whole-volume pass wherever the voxel is at least 2 voxels inside that window.
    model = conv_model()
    volume = rng.normal(size=(16, 16, 16, 1)).astype(np.float32)
    expected = tf.nn.softmax(model(volume[None]), axis=-1)[0].numpy()
    result = sliding_window_inference(model, volume, (16, 16, 16), overlap=0.5).numpy()
    np.testing.assert_allclose(result, expected, atol=1e-5)  # a single window: identical everywhere
    longer = rng.normal(size=(30, 16, 16, 1)).astype(np.float32)
    expected = tf.nn.softmax(model(longer[None]), axis=-1)[0].numpy()
    result = sliding_window_inference(model, longer, (16, 16, 16), overlap=0.75, blend="constant").numpy()
    starts = [0, 4, 8, 12, 14]  # along z; y and x are one window wide
    inside = [z for z in range(30) if all(s + 2 <= z < s + 14 for s in starts if s <= z < s + 16)]
    assert len(inside) >= 10
    np.testing.assert_allclose(result[inside], expected[inside], atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 5, 7), (1, 1, 1), (11, 2, 13)])
def test_volumes_smaller_than_the_window_keep_their_shape_and_stay_finite(rng, shape):
    result = sliding_window_inference(conv_model(), rng.normal(size=shape + (1,)).astype(np.float32), (8, 8, 8))
    assert result.shape == shape + (3,)
    assert np.isfinite(result.numpy()).all()
    np.testing.assert_allclose(result.numpy().sum(-1), 1.0, atol=1e-5)


def test_runs_inside_a_tf_function_with_unknown_shape(rng):
    model = pointwise_model(channels=1)
    function = tf.function(
        lambda v: sliding_window_inference(model, v, (6, 6, 6), batch_size=2),
        input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)],
    )
    volume = rng.normal(size=(13, 7, 10, 1)).astype(np.float32)
    np.testing.assert_allclose(function(volume), tf.nn.softmax(model(volume[None]), -1)[0], atol=1e-5)


def reference_starts(size, window, step):
    starts = list(range(0, size - window + 1, step))
    return starts + [size - window] if starts[-1] < size - window else starts


def reference_sliding_window(model, volume, window, overlap, blend):
    """Every window through the model one by one, blended in float64 with numpy."""
    steps = [max(1, int(round(w * (1 - overlap)))) for w in window]
    weights = window_weights(window, blend).numpy().astype(np.float64)
    total = np.zeros(volume.shape[:3] + (model.output_shape[-1],))
    normaliser = np.zeros(volume.shape[:3])
    for z in reference_starts(volume.shape[0], window[0], steps[0]):
        for y in reference_starts(volume.shape[1], window[1], steps[1]):
            for x in reference_starts(volume.shape[2], window[2], steps[2]):
                box = (slice(z, z + window[0]), slice(y, y + window[1]), slice(x, x + window[2]))
                probabilities = tf.nn.softmax(model(volume[box][None]), axis=-1)[0].numpy()
                total[box] += probabilities * weights[..., None]
                normaliser[box] += weights
    return total / normaliser[..., None]


@pytest.mark.parametrize("shape, window, overlap, batch_size, blend", [
    ((21, 17, 26), (8, 8, 8), 0.5, 4, "gaussian"),   # last windows flush with the end on every axis
    ((12, 30, 9), (6, 10, 9), 0.5, 3, "gaussian"),    # one window per strip, anisotropic window
    ((16, 16, 40), (8, 8, 8), 0.75, 5, "constant"),  # batches straddle strips, strong overlap
    ((8, 8, 8), (8, 8, 8), 0.5, 2, "gaussian"),       # a single window
])
def test_equals_a_numpy_overlap_add_of_every_window(rng, shape, window, overlap, batch_size, blend):
    # Two 3x3x3 convolutions with zero padding: each window sees its own borders, so the windows
    # disagree where they overlap and the blend weights matter.
    model = conv_model()
    volume = rng.normal(size=shape + (1,)).astype(np.float32)
    expected = reference_sliding_window(model, volume, window, overlap, blend)
    result = sliding_window_inference(model, volume, window, overlap=overlap, batch_size=batch_size,
                                      blend=blend).numpy()
    assert result.shape == shape + (3,)
    np.testing.assert_allclose(result, expected, atol=2e-6)


def test_calls_share_no_buffers(rng):
    # The accumulators are written in place: every call, sequential or concurrent, must start from zero.
    model = conv_model()
    function = tf.function(lambda v: sliding_window_inference(model, v, (8, 8, 8), batch_size=3),
                           input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)])
    volumes = [rng.normal(size=(19, 12, 15, 1)).astype(np.float32) for _ in range(4)]
    expected = [reference_sliding_window(model, v, (8, 8, 8), 0.5, "gaussian") for v in volumes]
    first = function(volumes[0]).numpy()
    np.testing.assert_allclose(function(volumes[0]).numpy(), first, atol=0)
    results = [None] * len(volumes)

    def run(i):
        results[i] = function(volumes[i]).numpy()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(volumes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result, reference in zip(results, expected):
        np.testing.assert_allclose(result, reference, atol=2e-6)


def test_window_helpers():
    np.testing.assert_array_equal(window_starts(tf.constant(20), 8, 4), [0, 4, 8, 12])
    np.testing.assert_array_equal(window_starts(tf.constant(21), 8, 4), [0, 4, 8, 12, 13])
    weights = window_weights((8, 8, 8)).numpy()
    assert weights.max() == pytest.approx(1.0) and weights.min() > 0
    assert weights[3:5, 3:5, 3:5].min() == weights.max()
    with pytest.raises(ValueError, match="blend"):
        window_weights((4, 4, 4), "median")
