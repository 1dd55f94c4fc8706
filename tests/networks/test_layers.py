"""Tests of dltk2.networks.layers.FusedBatchNormalization against keras.layers.BatchNormalization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dltk2.networks.layers import FusedBatchNormalization


def _pair(shape, rng, **kwargs):
    keras_norm, fused_norm = keras.layers.BatchNormalization(**kwargs), FusedBatchNormalization(**kwargs)
    keras_norm.build(shape)
    fused_norm.build(shape)
    channels = shape[-1]
    weights = [rng.uniform(0.5, 2, channels), rng.normal(size=channels), rng.normal(size=channels),
               rng.uniform(0.5, 2, channels)][-len(keras_norm.get_weights()):]
    keras_norm.set_weights(weights)
    fused_norm.set_weights(weights)
    return keras_norm, fused_norm


def _outputs_and_gradients(layer, x, training):
    # A random linear loss: sum(y * y) would have a gradient near zero (normalised outputs), all rounding.
    weights = tf.constant(np.random.default_rng(7).normal(size=x.shape).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        loss = tf.reduce_sum(y * weights)
    return y.numpy(), [g.numpy() for g in tape.gradient(loss, [x] + layer.trainable_weights)]


@pytest.mark.parametrize("shape", [(2, 5, 6, 7, 4), (3, 6, 5, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_fused_equals_keras_forward_backward_and_statistics(rng, shape, training):
    keras_norm, fused_norm = _pair(shape, rng, momentum=0.9)
    x = tf.constant(rng.normal(2.0, 3.0, shape).astype(np.float32))
    expected, expected_gradients = _outputs_and_gradients(keras_norm, x, training)
    ours, gradients = _outputs_and_gradients(fused_norm, x, training)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    for got, want in zip(gradients, expected_gradients):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    keras_statistics, fused_statistics = keras_norm.get_weights()[2:], fused_norm.get_weights()[2:]
    np.testing.assert_allclose(fused_statistics[0], keras_statistics[0], rtol=1e-5, atol=1e-6)
    if training:  # Keras updates with the biased batch variance, the fused kernel with the unbiased one
        n = np.prod(shape[:-1])
        variance = x.numpy().reshape(-1, shape[-1]).var(axis=0)
        np.testing.assert_allclose(fused_statistics[1] - keras_statistics[1], 0.1 * variance / (n - 1), rtol=1e-3)
    else:
        np.testing.assert_array_equal(fused_statistics[1], keras_statistics[1])


def test_fused_under_mixed_precision_and_without_scale_or_centre(rng):
    shape = (2, 4, 5, 6, 3)
    x = tf.constant(rng.normal(size=shape).astype(np.float32))
    keras_norm, fused_norm = _pair(shape, rng, center=False, scale=False)
    np.testing.assert_allclose(fused_norm(x, training=True), keras_norm(x, training=True), atol=1e-5)
    policy = keras.mixed_precision.DTypePolicy("mixed_float16")
    half = FusedBatchNormalization(dtype=policy)
    y = half(tf.cast(x, tf.float16), training=True)
    assert y.dtype == tf.float16 and half.moving_mean.dtype == "float32"
    np.testing.assert_allclose(tf.cast(y, tf.float32), keras.layers.BatchNormalization()(x, training=True), atol=5e-3)


def test_fused_layer_round_trips_through_keras_files(tmp_path, rng):
    inputs = keras.Input((4, 4, 4, 2))
    model = keras.Model(inputs, FusedBatchNormalization(name="norm")(inputs))
    model(tf.constant(rng.normal(size=(2, 4, 4, 4, 2)).astype(np.float32)), training=True)
    model.save(tmp_path / "model.keras")
    again = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(again.get_layer("norm"), FusedBatchNormalization)
    x = rng.normal(size=(1, 4, 4, 4, 2)).astype(np.float32)
    np.testing.assert_allclose(again(x), model(x), atol=1e-6)


@pytest.mark.parametrize("training", [True, False])
def test_fused_handles_unknown_spatial_sizes_in_a_graph(rng, training):
    # The 5D activations are viewed as 4D for the kernel; with sizes known only at run time (a
    # sliding-window or deploy signature) the view and its inverse must still be exact.
    shape = (2, 3, 5, 4, 6)
    x = tf.constant(rng.normal(1.0, 2.0, shape).astype(np.float32))
    norm = FusedBatchNormalization()
    norm.build(shape)
    norm.set_weights([rng.uniform(0.5, 2, 6), rng.normal(size=6), rng.normal(size=6), rng.uniform(0.5, 2, 6)])
    traced = tf.function(lambda x: norm(x, training=training),
                         input_signature=[tf.TensorSpec((None, None, None, None, 6), tf.float32)])
    graph_output = traced(x)
    assert traced.get_concrete_function().structured_outputs.shape.as_list() == [None, None, None, None, 6]
    keras_norm = keras.layers.BatchNormalization()
    keras_norm.build(shape)
    keras_norm.set_weights(norm.get_weights())
    np.testing.assert_allclose(graph_output, keras_norm(x, training=training), rtol=1e-5, atol=1e-5)


def test_fused_under_mixed_bfloat16_on_5d_activations(rng):
    shape = (2, 4, 5, 6, 3)
    x = tf.constant(rng.normal(size=shape).astype(np.float32))
    norm = FusedBatchNormalization(dtype=keras.mixed_precision.DTypePolicy("mixed_bfloat16"))
    y = norm(tf.cast(x, tf.bfloat16), training=True)
    assert y.dtype == tf.bfloat16 and norm.moving_mean.dtype == "float32"
    np.testing.assert_allclose(tf.cast(y, tf.float32), keras.layers.BatchNormalization()(x, training=True), atol=3e-2)
