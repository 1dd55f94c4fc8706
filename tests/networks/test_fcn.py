"""Tests of dltk2.networks.fcn."""

import keras
import numpy as np

from dltk2.networks.fcn import residual_fcn_3d


def test_residual_fcn_gives_full_resolution_logits_and_round_trips(rng):
    model = residual_fcn_3d(num_classes=4, filters=(4, 8, 16), strides=(1, 2, 2))
    inputs = rng.normal(size=(1, 11, 16, 9, 1)).astype(np.float32)
    assert model(inputs).shape == (1, 11, 16, 9, 4)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(model(inputs), clone(inputs), rtol=1e-5, atol=1e-6)
