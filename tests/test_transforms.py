"""Tests of dltk2.transforms: each numpy transform and its TensorFlow twin give the same values."""

import numpy as np
import pytest
import tensorflow as tf

from dltk2 import transforms

RNG = np.random.default_rng(7)
IMAGES = {
    "ct": RNG.normal(40.0, 300.0, (9, 11, 13)).astype(np.float32),
    "mr_uint16": RNG.integers(0, 4096, (7, 8, 9)).astype(np.uint16),
    "constant": np.full((4, 5, 6), 3.5, np.float32),
    "tiny_range": (1.0 + 1e-9 * RNG.random((5, 5, 5))).astype(np.float64),
}


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_whitening_twins(name):
    image = IMAGES[name]
    np.testing.assert_allclose(transforms.tf_whitening(tf.constant(image)).numpy(), transforms.whitening(image),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_normalise_zero_one_twins(name):
    image = IMAGES[name]
    np.testing.assert_allclose(transforms.tf_normalise_zero_one(tf.constant(image)).numpy(),
                               transforms.normalise_zero_one(image), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_clip_and_scale_twins(name):
    image = IMAGES[name]
    np.testing.assert_allclose(transforms.tf_clip_and_scale(tf.constant(image), -1000.0, 800.0).numpy(),
                               transforms.clip_and_scale(image, -1000.0, 800.0), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="empty"):
        transforms.tf_clip_and_scale(tf.constant(image), 1.0, 0.0)


def test_the_serving_graphs_use_the_twins():
    """At the model's own size (no resizing), the serving inputs are the numpy transforms' values."""
    from dltk2.inference import grey_image_input, series_input

    image = IMAGES["mr_uint16"][0, :8, :8].astype(np.float32)
    np.testing.assert_allclose(grey_image_input(tf.constant(image), 8).numpy()[..., 0],
                               transforms.normalise_zero_one(image), atol=1e-6)
    series = IMAGES["mr_uint16"][:, :8, :8].astype(np.float32)
    np.testing.assert_allclose(series_input(tf.constant(series), 7, 8).numpy()[..., 0], transforms.whitening(series),
                               rtol=1e-4, atol=1e-4)
