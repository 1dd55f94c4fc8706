"""Tests of dltk2.sampling."""

import numpy as np
import pytest

from dltk2.sampling import extract_class_balanced_example_array, extract_random_example_array


def test_random_examples_reach_every_valid_corner():
    image = np.arange(5 * 4 * 6).reshape(5, 4, 6)
    (patches,) = extract_random_example_array(image, (3, 2, 4), n_examples=2000, rng=0)
    assert patches.shape == (2000, 3, 2, 4)
    # The first voxel of each patch identifies its corner; all 3 * 3 * 3 corners occur.
    corners = {tuple(np.argwhere(image == patch[0, 0, 0])[0]) for patch in patches}
    assert corners == {(z, y, x) for z in range(3) for y in range(3) for x in range(3)}


def test_random_examples_are_identical_across_images_and_keep_channels(rng):
    image = rng.normal(size=(8, 9, 10, 2))
    label = (image[..., 0] > 0).astype(np.int32)
    patches, labels = extract_random_example_array([image, label], (4, 5, 6), n_examples=7, rng=rng)
    assert patches.shape == (7, 4, 5, 6, 2) and labels.shape == (7, 4, 5, 6)
    np.testing.assert_array_equal(labels, (patches[..., 0] > 0).astype(np.int32))


def test_random_examples_pad_small_images(rng):
    image = np.ones((3, 10, 10), np.float32)
    (patches,) = extract_random_example_array(image, (5, 4, 4), n_examples=3, rng=rng)
    assert patches.shape == (3, 5, 4, 4)
    # Padding of 2 voxels split 1 before, 1 after along z.
    np.testing.assert_array_equal(patches[:, 0], 0)
    np.testing.assert_array_equal(patches[:, 1:4], 1)


def test_random_examples_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="spatial shape"):
        extract_random_example_array([np.zeros((4, 4, 4)), np.zeros((4, 4, 5))], (2, 2, 2))


def test_class_balanced_examples_are_centred_on_each_class_equally():
    label = np.zeros((30, 30, 30), np.int32)
    label[5:8, 5:8, 5:8] = 1  # 27 voxels of 27000
    label[20, 20, 20] = 2  # one voxel
    image = label.astype(np.float32) * 10.0
    images, labels = extract_class_balanced_example_array(
        image, label, (5, 5, 5), n_examples=3000, classes=3, rng=0
    )
    centres = labels[:, 2, 2, 2]
    counts = np.bincount(centres, minlength=3) / len(centres)
    np.testing.assert_allclose(counts, [1 / 3, 1 / 3, 1 / 3], atol=0.03)
    np.testing.assert_array_equal(images, labels * 10.0)


def test_class_balanced_skips_absent_classes_and_honours_weights():
    label = np.zeros((10, 10, 10), np.int32)
    label[:5] = 1
    _, labels = extract_class_balanced_example_array(
        label.astype(np.float32), label, (3, 3, 3), n_examples=2000, classes=[0, 1, 7],
        class_weights=[1.0, 3.0, 1.0], rng=1,
    )
    counts = np.bincount(labels[:, 1, 1, 1], minlength=2)
    assert counts[1] / counts.sum() == pytest.approx(0.75, abs=0.03)


def test_class_balanced_patches_stay_inside_the_volume(rng):
    label = np.zeros((12, 12, 12), np.int32)
    label[0, 0, 0] = 1  # a corner voxel: patch must shift inwards
    images, labels = extract_class_balanced_example_array(
        rng.normal(size=(12, 12, 12)), label, (6, 6, 6), n_examples=20, classes=[1], rng=rng
    )
    assert images.shape == (20, 6, 6, 6)
    assert (labels[:, 0, 0, 0] == 1).all()


def test_class_balanced_needs_some_class_present():
    with pytest.raises(ValueError, match="none of the classes"):
        extract_class_balanced_example_array(np.zeros((4, 4, 4)), np.zeros((4, 4, 4), int), (2, 2, 2), classes=[3])
