"""Tests of dltk2.preprocessing2d against numpy, OpenCV, scikit-image and scikit-learn references."""

import cv2
import numpy as np
import pytest
from skimage import exposure, measure

from dltk2.preprocessing2d import (METHODS, RANGES, bitwise_downsampling, clamp_value, color_quantization,
                                   contrast_enhancing, target_segmentation)


@pytest.fixture
def radiograph(rng):
    y, x = np.mgrid[0:64, 0:64]
    image = 60 + 100 * ((x - 20) ** 2 + (y - 30) ** 2 < 150) + 80 * ((x - 48) ** 2 + (y - 40) ** 2 < 40)
    image = image + 40 * ((x - 10) ** 2 + (y - 55) ** 2 < 6)
    return np.clip(image + rng.normal(0, 5, image.shape), 0, 255).astype(np.uint8)


def test_values_outside_the_range_clamp():
    assert clamp_value("bitwise_downsampling", 0) == 1 and clamp_value("bitwise_downsampling", 12) == 8
    assert clamp_value("color_quantization", 1) == 2 and clamp_value("contrast_enhancing", 99) == 10
    with pytest.raises(ValueError, match="unknown method"):
        clamp_value("sharpen", 3)
    assert set(METHODS) == set(RANGES)


def test_bitwise_downsampling_keeps_the_top_bits(radiograph):
    out = bitwise_downsampling(radiograph, 3)
    np.testing.assert_array_equal(out, radiograph & 0b11100000)
    assert len(np.unique(out)) <= 8
    np.testing.assert_array_equal(bitwise_downsampling(radiograph, 8), radiograph)
    np.testing.assert_array_equal(bitwise_downsampling(radiograph, 20), radiograph)  # clamped to 8
    wide = radiograph.astype(np.uint16) * 257
    np.testing.assert_array_equal(bitwise_downsampling(wide, 4), wide & 0xFF00)


def test_contrast_enhancing_is_opencv_clahe(radiograph):
    expected = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(radiograph)
    np.testing.assert_array_equal(contrast_enhancing(radiograph, 3), expected)
    # And it enhances: a wider spread of intensities than the input, like scikit-image's CLAHE.
    assert contrast_enhancing(radiograph, 3).std() > radiograph.std()
    assert exposure.equalize_adapthist(radiograph).std() > (radiograph / 255.0).std()


def test_color_quantization_leaves_k_levels_near_the_data(radiograph):
    out = color_quantization(radiograph, 3)
    levels = np.unique(out)
    assert len(levels) == 3 and out.dtype == np.uint8
    assert np.abs(out.astype(float) - radiograph).mean() < 10


def test_target_segmentation_keeps_the_largest_regions(radiograph):
    out = target_segmentation(radiograph, 1)
    kept = measure.label(out > 0)
    assert kept.max() == 1  # one region: the largest bright disc
    assert out[30, 20] == radiograph[30, 20] and out[40, 48] == 0 and out[0, 0] == 0
    two = target_segmentation(radiograph, 2)
    assert two[40, 48] == radiograph[40, 48] and measure.label(two > 0).max() == 2


def test_rejects_colour_or_float_images():
    with pytest.raises(ValueError, match="uint8 or uint16"):
        contrast_enhancing(np.zeros((4, 4, 3), np.uint8), 2)
