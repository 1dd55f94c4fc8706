"""Tests of dltk2.networks.autoencoder: shapes, the code, the parts, refused sizes."""

import keras
import numpy as np
import pytest

from dltk2.networks.autoencoder import convolutional_autoencoder_3d


def test_the_autoencoder_rebuilds_its_input_shape_through_its_code(rng, tmp_path):
    model = convolutional_autoencoder_3d((8, 16, 8, 3), filters=(4, 8), strides=(2, (1, 2, 2)), num_hidden_units=5)
    volume = rng.normal(size=(2, 8, 16, 8, 3)).astype(np.float32)
    assert model(volume).shape == (2, 8, 16, 8, 3)
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    assert encoder(volume).shape == (2, 5)
    np.testing.assert_allclose(decoder(encoder(volume)), model(volume), atol=1e-6)
    # The code is the bottleneck: (4, 4, 2) x 8 features flattened into 5 numbers.
    assert encoder.get_layer("code").kernel.shape == (4 * 4 * 2 * 8, 5)
    model.save(tmp_path / "cae.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "cae.keras")(volume), model(volume), atol=1e-5)


def test_sizes_the_strides_do_not_divide_are_refused():
    with pytest.raises(ValueError, match=r"input size \[10, 16, 8\] must be divisible by the strides' product \[4, 4, 4\]"):
        convolutional_autoencoder_3d((10, 16, 8, 1), filters=(4, 8), strides=(2, 2))
    with pytest.raises(ValueError, match="one stride per level"):
        convolutional_autoencoder_3d((8, 8, 8, 1), filters=(4, 8), strides=(2,))
