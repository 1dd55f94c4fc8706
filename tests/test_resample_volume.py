"""Tests of dltk2.inference.resample_volume (TF ops) against SimpleITK's resampling."""

import numpy as np
import pytest
import SimpleITK as sitk
import tensorflow as tf

from dltk2.inference import resample_volume
from dltk2.preprocessing import resample_to_reference, resample_to_spacing


@pytest.fixture
def ct(rng):
    array = rng.normal(0.0, 300.0, size=(9, 31, 27)).astype(np.float32)  # (z, y, x)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.75, 3.0))
    image.SetOrigin((-120.0, 35.5, -400.0))
    labels = sitk.GetImageFromArray(rng.integers(0, 14, size=array.shape).astype(np.uint8))
    labels.CopyInformation(image)
    return image, labels


def test_linear_resampling_matches_simpleitk(ct):
    image, _ = ct
    expected = sitk.GetArrayFromImage(resample_to_spacing(image, (2.0, 2.0, 2.0)))
    ours = resample_volume(sitk.GetArrayFromImage(image)[..., None], image.GetSpacing(), (2.0, 2.0, 2.0))
    assert ours.shape[:3] == expected.shape
    np.testing.assert_allclose(ours[..., 0].numpy(), expected, atol=1e-3)


def test_nearest_resampling_back_to_the_original_grid_matches_simpleitk(ct):
    _, labels = ct
    coarse = resample_to_spacing(labels, (2.0, 2.0, 2.0), is_label=True)
    expected = sitk.GetArrayFromImage(resample_to_reference(coarse, labels, is_label=True))
    ours = resample_volume(sitk.GetArrayFromImage(coarse)[..., None].astype(np.float32), coarse.GetSpacing(),
                           labels.GetSpacing(), new_size=tf.constant(expected.shape), method="nearest")
    np.testing.assert_array_equal(ours[..., 0].numpy().astype(np.uint8), expected)
    # Spacings arriving as float32 (0.7 -> 0.69999999) still pick SimpleITK's voxel at exact ties.
    ours32 = resample_volume(sitk.GetArrayFromImage(coarse)[..., None].astype(np.float32),
                             tf.constant(coarse.GetSpacing(), tf.float32), tf.constant(labels.GetSpacing(), tf.float32),
                             new_size=tf.constant(expected.shape), method="nearest")
    np.testing.assert_array_equal(ours32[..., 0].numpy().astype(np.uint8), expected)


def test_works_inside_a_tf_function_with_unknown_shapes(ct):
    image, _ = ct
    function = tf.function(lambda v, s: resample_volume(v, s, (2.0, 2.0, 2.0)),
                           input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32),
                                            tf.TensorSpec([3], tf.float32)])
    ours = function(sitk.GetArrayFromImage(image)[..., None], tf.constant(image.GetSpacing(), tf.float32))
    expected = sitk.GetArrayFromImage(resample_to_spacing(image, (2.0, 2.0, 2.0)))
    np.testing.assert_allclose(ours[..., 0].numpy(), expected, atol=1e-2)
