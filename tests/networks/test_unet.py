"""Tests of dltk2.networks.unet and the upsampling layer."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from dltk2.networks.layers import UpsampleAndConcat3D
from dltk2.networks.unet import asymmetric_residual_unet_3d, residual_unet_3d


@pytest.mark.parametrize("factors", [(2, 2, 2), (1, 2, 2), (2, 1, 1), (1, 1, 2)])
def test_linear_upsampling_matches_scipy_zoom_with_half_voxel_centres(factors, rng):
    coarse = rng.normal(size=(2, 4, 5, 3, 2)).astype(np.float32)
    skip = np.zeros((2, 4 * factors[0], 5 * factors[1], 3 * factors[2], 1), np.float32)
    upsampled = UpsampleAndConcat3D(factors)([coarse, skip]).numpy()[..., :2]
    # scipy's zoom with grid_mode=True uses the same half-voxel geometry; 'nearest' clamps the edges.
    for example in range(2):
        expected = ndimage.zoom(coarse[example], (*factors, 1), order=1, mode="nearest", grid_mode=True)
        np.testing.assert_allclose(upsampled[example], expected, atol=1e-5)


def test_upsampling_gradient_is_the_adjoint_of_the_interpolation(rng):
    # The layer is linear in the coarse features: its gradient must be the transpose of the map,
    # <dy, A c> == <A^T dy, c>, here for an upsampling cropped to odd skip sizes (sums in float64).
    layer = UpsampleAndConcat3D((2, 1, 2))
    coarse = tf.constant(rng.normal(size=(2, 4, 5, 3, 3)).astype(np.float32))
    skip = tf.constant(rng.normal(size=(2, 7, 5, 6, 2)).astype(np.float32))
    upstream = tf.constant(rng.normal(size=(2, 7, 5, 6, 5)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(coarse)
        output = layer([coarse, skip])
    gradient = tape.gradient(output, coarse, output_gradients=upstream)
    forward = np.sum(upstream.numpy()[..., :3].astype(np.float64) * output.numpy()[..., :3])
    adjoint = np.sum(gradient.numpy().astype(np.float64) * coarse.numpy())
    np.testing.assert_allclose(forward, adjoint, rtol=1e-5)
    np.testing.assert_allclose(output[..., 3:], skip)


def test_upsampling_with_sizes_known_only_at_run_time(rng):
    layer = UpsampleAndConcat3D(2)
    spec = tf.TensorSpec((None, None, None, None, 2), tf.float32)
    traced = tf.function(lambda coarse, skip: layer([coarse, skip]), input_signature=[spec, spec])
    coarse = rng.normal(size=(1, 3, 4, 2, 2)).astype(np.float32)
    skip = rng.normal(size=(1, 5, 8, 3, 2)).astype(np.float32)
    np.testing.assert_array_equal(traced(coarse, skip), layer([coarse, skip]))


def test_upsampling_keeps_a_half_precision_dtype(rng):
    coarse = rng.normal(size=(1, 3, 4, 5, 2)).astype(np.float32)
    skip = np.zeros((1, 6, 8, 10, 1), np.float32)
    full = UpsampleAndConcat3D(2)([coarse, skip])
    half = UpsampleAndConcat3D(2, dtype="bfloat16")([tf.cast(coarse, tf.bfloat16), tf.cast(skip, tf.bfloat16)])
    assert half.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(half, tf.float32), full, atol=2e-2)


def test_upsample_crops_to_odd_skip_sizes(rng):
    layer = UpsampleAndConcat3D((1, 2, 2))
    out = layer([rng.normal(size=(2, 5, 4, 3, 6)).astype(np.float32), np.zeros((2, 5, 7, 5, 3), np.float32)])
    assert out.shape == (2, 5, 7, 5, 9)


@pytest.mark.parametrize("builder", [residual_unet_3d, asymmetric_residual_unet_3d])
@pytest.mark.parametrize("shape", [(16, 16, 16), (13, 18, 9)])
def test_output_has_the_input_size_and_classes(builder, shape, rng):
    model = builder(num_classes=5, num_res_units=2, filters=(4, 8, 16), strides=(1, 2, 2))
    assert model(rng.normal(size=(1,) + shape + (1,)).astype(np.float32)).shape == (1,) + shape + (5,)


def test_asymmetric_decoder_is_lighter():
    kwargs = dict(num_classes=14, num_res_units=3, filters=(8, 16, 32), strides=(1, 2, 2))
    assert asymmetric_residual_unet_3d(**kwargs).count_params() < residual_unet_3d(**kwargs).count_params()
    names = [layer.name for layer in asymmetric_residual_unet_3d(**kwargs).layers]
    assert sum(n.startswith("dec_unit_0_") for n in names) == 1
    assert sum(n.startswith("enc_unit_2_") for n in names) == 3


@pytest.mark.parametrize("builder", [residual_unet_3d, asymmetric_residual_unet_3d])
def test_get_config_round_trips(builder, rng, tmp_path):
    model = builder((8, 8, 8, 1), num_classes=3, filters=(4, 8), strides=(1, 2), l2_regularisation=1e-4)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    inputs = rng.normal(size=(1, 8, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(model(inputs), clone(inputs), rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "unet.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "unet.keras")(inputs), model(inputs), atol=1e-6)


def test_strides_above_two_are_refused(rng):
    with pytest.raises(ValueError, match="factors 1 and 2"):
        residual_unet_3d(num_classes=2, filters=(4, 8), strides=(1, 4))(np.zeros((1, 8, 8, 8, 1), np.float32))

