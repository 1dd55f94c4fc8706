"""Tests of dltk2.networks.super_resolution: linear upsampling as scipy's, and a network that starts as it."""

import keras
import numpy as np
import pytest
from scipy import ndimage

from dltk2.networks.layers import LinearUpsample3D
from dltk2.networks.super_resolution import simple_super_resolution_3d


@pytest.mark.parametrize("factors", [(4, 4, 4), (4, 1, 1), (2, 3, 1)])
def test_linear_upsampling_is_scipys_half_voxel_zoom(rng, factors):
    volume = rng.normal(size=(5, 7, 6)).astype(np.float32)
    ours = LinearUpsample3D(factors)(volume[None, ..., None])[0, ..., 0]
    expected = ndimage.zoom(volume, factors, order=1, grid_mode=True, mode="nearest")
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_the_untrained_network_is_linear_upsampling_and_any_size_goes(rng):
    model = simple_super_resolution_3d(factors=(4, 4, 4), filters=(4, 4))
    volume = rng.normal(size=(1, 3, 5, 4, 1)).astype(np.float32)
    output = model(volume)
    assert output.shape == (1, 12, 20, 16, 1)
    # Its last convolution starts at zero: the output is the linear upsampling, to be sharpened.
    np.testing.assert_allclose(output, LinearUpsample3D(4)(volume), atol=1e-6)
    assert simple_super_resolution_3d(factors=(4, 1, 1), filters=(4,))(volume).shape == (1, 12, 5, 4, 1)


def test_saved_and_loaded_alike(rng, tmp_path):
    model = simple_super_resolution_3d(factors=(2, 2, 2), filters=(4,), num_convolutions=2)
    model.get_layer("detail").set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32)
                                           for w in model.get_layer("detail").get_weights()])
    model.save(tmp_path / "sr.keras")
    volume = rng.normal(size=(2, 4, 4, 4, 1)).astype(np.float32)
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "sr.keras")(volume), model(volume), atol=1e-6)
