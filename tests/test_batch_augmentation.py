"""Batch augmentations of volumes against numpy."""

import math

import numpy as np

from dltk2.batch_augmentation import augment_volume_batch, flip_depth, rotate_in_plane, scale_intensity


def volumes(shape=(3, 4, 7, 7, 1), seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_flip_depth_reverses_only_the_chosen_examples():
    x = volumes()
    flipped = flip_depth(x, np.array([True, False, True])).numpy()
    np.testing.assert_array_equal(flipped[0], x[0, ::-1])
    np.testing.assert_array_equal(flipped[1], x[1])
    np.testing.assert_array_equal(flipped[2], x[2, ::-1])


def test_rotation_by_right_angles_equals_numpy_and_zero_is_identity():
    x = volumes()
    rotated = rotate_in_plane(x, np.array([math.pi / 2, 0.0, -math.pi / 2])).numpy()
    np.testing.assert_allclose(rotated[0], np.rot90(x[0], k=1, axes=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(rotated[1], x[1], atol=1e-6)
    np.testing.assert_allclose(rotated[2], np.rot90(x[2], k=-1, axes=(1, 2)), atol=1e-5)
    # Non-square slices turned half way round: both in-plane axes reversed, every slice alike.
    y = volumes((1, 2, 5, 9, 1))
    np.testing.assert_allclose(rotate_in_plane(y, np.array([math.pi])).numpy()[0], y[0, :, ::-1, ::-1], atol=1e-5)


def test_scale_intensity_is_per_example():
    x = volumes((2, 2, 3, 3, 1))
    scaled = scale_intensity(x, np.array([2.0, 0.5]), np.array([1.0, -1.0])).numpy()
    np.testing.assert_allclose(scaled[0], x[0] * 2 + 1, rtol=1e-6)
    np.testing.assert_allclose(scaled[1], x[1] * 0.5 - 1, rtol=1e-6)


def test_augment_draws_within_its_bounds():
    x = volumes((16, 4, 9, 9, 1))
    only_flips = augment_volume_batch(x, flip_probability=1.0, max_rotation_degrees=0, max_contrast_change=0,
                                      max_brightness_change=0).numpy()
    np.testing.assert_allclose(only_flips, x[:, ::-1], atol=1e-6)
    constant = np.ones((16, 2, 5, 5, 1), np.float32)
    shifted = augment_volume_batch(constant, max_contrast_change=0.0, max_brightness_change=0.1, seed=3).numpy()
    offsets = shifted[:, 0, 2, 2, 0] - 1.0
    assert np.abs(offsets).max() <= 0.1 + 1e-6 and np.ptp(offsets) > 0  # drawn per example
    assert np.allclose(shifted, shifted[:, :1, 2:3, 2:3])  # one offset per example, rotation keeps a constant
