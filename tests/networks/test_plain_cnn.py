"""Tests of dltk2.networks.plain_cnn: shapes, the parameter count by hand, the map Grad-CAM reads."""

import numpy as np

from dltk2.inference.saliency import feature_function
from dltk2.networks.plain_cnn import plain_cnn


def test_2d_and_3d_shapes_and_the_parameter_count():
    model = plain_cnn((64, 64, 1), 2, filters=(4, 8), strides=(2, 1))
    assert model(np.zeros((3, 64, 64, 1), np.float32)).shape == (3, 2)
    # Convolutions without bias, then BN's 4 per channel; the dense layer with bias.
    by_hand = (9 * 1 * 4 + 9 * 4 * 4 + 9 * 4 * 8 + 9 * 8 * 8) + 4 * (4 + 4 + 8 + 8) + (8 * 2 + 2)
    assert model.count_params() == by_hand
    volume = plain_cnn((8, 12, 12, 2), 1, filters=(4,), strides=((1, 2, 2),))
    assert volume(np.zeros((1, 8, 12, 12, 2), np.float32)).shape == (1, 1)


def test_the_strides_set_the_explained_feature_map_and_the_seed_the_weights():
    model = plain_cnn((64, 64, 1), 2, strides=(2, 2, 1))
    features, scores = feature_function(model)(np.zeros((1, 64, 64, 1), np.float32))
    assert features.shape == (1, 16, 16, 64) and scores.shape == (1, 2)
    again = plain_cnn((64, 64, 1), 2, strides=(2, 2, 1))
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), again.get_weights()))
