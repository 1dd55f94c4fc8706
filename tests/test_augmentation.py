"""Tests of dltk2.augmentation: image and label always move together."""

import numpy as np
import pytest

from dltk2.augmentation import add_gaussian_noise, add_gaussian_offset, elastic_transform, flip


def test_flip_moves_image_and_label_together(rng):
    image = rng.normal(size=(4, 5, 6, 1)).astype(np.float32)
    label = rng.integers(0, 3, size=(4, 5, 6))
    flipped = flip([image, label], axis=(0, 2), probability=1.0, rng=rng)
    np.testing.assert_array_equal(flipped[0], image[::-1, :, ::-1])
    np.testing.assert_array_equal(flipped[1], label[::-1, :, ::-1])
    unflipped = flip([image, label], axis=2, probability=0.0, rng=rng)
    np.testing.assert_array_equal(unflipped[0], image)


def test_flip_probability_is_respected():
    image = np.arange(4).reshape(1, 1, 4)
    flipped = [flip([image], axis=2, probability=0.3, rng=seed)[0][0, 0, 0] == 3 for seed in range(2000)]
    assert np.mean(flipped) == pytest.approx(0.3, abs=0.04)


def test_gaussian_offset_is_one_value_per_channel(rng):
    image = np.zeros((6, 6, 6, 2), np.float32)
    shifted = add_gaussian_offset(image, sigma=1.0, rng=rng)
    for channel in range(2):
        assert np.ptp(shifted[..., channel]) == 0
    assert shifted[0, 0, 0, 0] != shifted[0, 0, 0, 1]


def test_gaussian_noise_has_the_requested_spread(rng):
    noisy = add_gaussian_noise(np.zeros((40, 40, 40), np.float32), sigma=0.5, rng=rng)
    assert noisy.std() == pytest.approx(0.5, rel=0.02)
    assert abs(noisy.mean()) < 0.01


def test_elastic_moves_image_and_label_together_and_keeps_label_values(rng):
    # The image encodes the label exactly, so after the same warp they must still agree voxel by voxel
    # (the label is nearest-neighbour; the image, linear, agrees wherever its neighbours are uniform).
    label = np.zeros((20, 20, 20), np.int32)
    label[5:15, 6:14, 4:16] = 2
    label[8:12, 8:12, 8:12] = 1
    image = label.astype(np.float32)
    warped_image, warped_label = elastic_transform([image, label], alpha=200.0, sigma=4.0, rng=rng)
    assert set(np.unique(warped_label)) <= {0, 1, 2}
    assert warped_label.dtype == label.dtype
    assert not np.array_equal(warped_label, label)
    uniform = np.isin(warped_image, [0.0, 1.0, 2.0])
    assert uniform.mean() > 0.5
    np.testing.assert_array_equal(warped_image[uniform], warped_label[uniform])
    # Without displacement nothing changes.
    same = elastic_transform([image, label], alpha=0.0, sigma=4.0, rng=rng)
    np.testing.assert_array_equal(same[1], label)
    np.testing.assert_allclose(same[0], image)
