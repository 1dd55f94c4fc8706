"""Tests of dltk2.inference.sliding_window_inference."""

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


def test_window_helpers():
    np.testing.assert_array_equal(window_starts(tf.constant(20), 8, 4), [0, 4, 8, 12])
    np.testing.assert_array_equal(window_starts(tf.constant(21), 8, 4), [0, 4, 8, 12, 13])
    weights = window_weights((8, 8, 8)).numpy()
    assert weights.max() == pytest.approx(1.0) and weights.min() > 0
    assert weights[3:5, 3:5, 3:5].min() == weights.max()
    with pytest.raises(ValueError, match="blend"):
        window_weights((4, 4, 4), "median")
