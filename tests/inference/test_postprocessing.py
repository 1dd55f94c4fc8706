"""Tests of dltk2.inference.postprocessing: the graph's largest components equal scipy's, and the choice by Dice."""

import numpy as np
import pytest
from scipy import ndimage

from dltk2.inference import SlidingWindowSegmenter
from dltk2.inference.postprocessing import (choose_postprocessing, chosen_classes, keep_largest_components,
                                            keep_largest_components_numpy)


def _scattered(rng, shape=(12, 14, 16), classes=3, blobs=5):
    labels = np.zeros(shape, np.int32)
    for value in range(1, classes + 1):
        for _ in range(blobs):
            z, y, x = (rng.integers(0, s - 3) for s in shape)
            dz, dy, dx = rng.integers(1, 4, 3)
            labels[z:z + dz, y:y + dy, x:x + dx] = value
    return labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_graph_keeps_the_components_scipy_keeps(seed):
    labels = _scattered(np.random.default_rng(seed))
    for classes in ([1], [1, 3], [1, 2, 3]):
        ours = keep_largest_components(labels, classes).numpy()
        np.testing.assert_array_equal(ours, keep_largest_components_numpy(labels, classes))
        for value in classes:
            assert ndimage.label(ours == value)[1] <= 1
        untouched = ~np.isin(labels, classes)
        np.testing.assert_array_equal(ours[untouched], labels[untouched])
    # A winding component (a spiral along every axis) is found whole, however long its path.
    spiral = np.zeros((6, 6, 6), np.int32)
    spiral[0, :, 0] = spiral[:, 5, 0] = spiral[5, 5, :] = spiral[5, :, 5] = 2
    spiral[0, 0, 3] = 2  # a second, single-voxel component
    np.testing.assert_array_equal(keep_largest_components(spiral, [2]).numpy()[0, 0, 3], 0)
    assert (keep_largest_components(spiral, [2]).numpy() == 2).sum() == (spiral == 2).sum() - 1


def test_postprocessing_is_kept_only_where_it_raises_dice(rng):
    reference = np.zeros((10, 10, 10), np.int32)
    reference[2:7, 2:7, 2:7] = 1
    reference[1:4, 6:9, 6:9] = 2
    reference[7:9, 7:9, 1:3] = 2  # class 2 truly has two parts
    prediction = reference.copy()
    prediction[8, 0, 8] = 1  # a stray voxel of class 1: removing it helps
    decision = choose_postprocessing([prediction], [reference], [1, 2])
    assert decision[1]["dice_after"] > decision[1]["dice_before"] and decision[1]["keep_largest"] == 1.0
    assert decision[2]["dice_after"] < decision[2]["dice_before"] and decision[2]["keep_largest"] == 0.0
    assert chosen_classes(decision) == [1]


def test_a_segmenter_keeps_the_largest_component_in_its_graph():
    import keras

    inputs = keras.Input((None, None, None, 1))
    conv = keras.layers.Conv3D(2, 1)
    model = keras.Model(inputs, conv(inputs))
    conv.set_weights([np.array([[[[[-1.0, 1.0]]]]], np.float32), np.zeros(2, np.float32)])  # class 1 where > 0
    image = np.full((8, 8, 8), -1000.0, np.float32)
    image[1:5, 1:5, 1:5] = 500.0
    image[6, 6, 6] = 500.0  # a stray bright voxel
    plain = SlidingWindowSegmenter(model, (8, 8, 8), (2.0, 2.0, 2.0), num_classes=2)
    kept = SlidingWindowSegmenter(model, (8, 8, 8), (2.0, 2.0, 2.0), num_classes=2, keep_largest=[1])
    before = plain.predict(image=image, spacing=[2.0, 2.0, 2.0])["labels"]
    after = kept.predict(image=image, spacing=[2.0, 2.0, 2.0])["labels"]
    assert before[6, 6, 6] == 1 and after[6, 6, 6] == 0 and (after[1:5, 1:5, 1:5] == 1).all()
    assert kept.get_config()["keep_largest"] == [1]
