"""Tests of dltk2.preprocessing against numpy and SimpleITK."""

import numpy as np
import pytest
import SimpleITK as sitk

from dltk2.io.image import ImageGeometry
from dltk2.preprocessing import (clip, clip_and_scale, normalise_one_one, normalise_zero_one, resample_to_reference,
                                 resample_to_spacing, resize_image_with_crop_or_pad, whitening)


def test_whitening_matches_simpleitk_normalize(rng):
    array = rng.normal(300.0, 50.0, size=(6, 7, 8)).astype(np.float32)
    ours = whitening(array)
    # SimpleITK's NormalizeImageFilter divides by the sample (n - 1) standard deviation.
    theirs = sitk.GetArrayFromImage(sitk.Normalize(sitk.GetImageFromArray(array)))
    n = array.size
    np.testing.assert_allclose(ours * np.sqrt((n - 1) / n), theirs, rtol=1e-4, atol=1e-4)
    assert ours.dtype == np.float32
    assert abs(ours.mean()) < 1e-5 and ours.std() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64])
def test_whitening_of_a_brain_sized_volume_matches_float64_numpy(rng, dtype):
    # A million voxels far from zero: a float32 running sum would be off by about 1e-4 here.
    array = rng.normal(1500.0, 300.0, size=(94, 116, 98)).astype(dtype)
    reference = (array - array.mean(dtype=np.float64)) / array.std(dtype=np.float64)
    ours = whitening(array)
    assert ours.dtype == np.float32 and ours.shape == array.shape
    np.testing.assert_allclose(ours, reference, rtol=0, atol=2e-5)
    np.testing.assert_array_equal(array, array.copy())  # the input is left alone


def test_whitening_of_a_constant_image_is_zero():
    np.testing.assert_array_equal(whitening(np.full((3, 3), 7.0)), np.zeros((3, 3)))


def test_normalise_zero_one_matches_rescale_intensity(rng):
    array = rng.normal(0.0, 10.0, size=(5, 6, 7)).astype(np.float32)
    theirs = sitk.GetArrayFromImage(sitk.RescaleIntensity(sitk.GetImageFromArray(array), 0.0, 1.0))
    np.testing.assert_allclose(normalise_zero_one(array), theirs, atol=1e-6)
    theirs = sitk.GetArrayFromImage(sitk.RescaleIntensity(sitk.GetImageFromArray(array), -1.0, 1.0))
    np.testing.assert_allclose(normalise_one_one(array), theirs, atol=1e-6)


def test_clip_matches_simpleitk_clamp_and_rejects_empty_range(rng):
    array = rng.normal(0.0, 800.0, size=(4, 5, 6)).astype(np.float32)
    theirs = sitk.GetArrayFromImage(sitk.Clamp(sitk.GetImageFromArray(array), sitk.sitkFloat32, -1000.0, 800.0))
    np.testing.assert_array_equal(clip(array, -1000.0, 800.0), theirs)
    with pytest.raises(ValueError, match="empty"):
        clip(array, 5.0, -5.0)


def test_clip_and_scale_maps_window_to_minus_one_one():
    values = np.array([-2000.0, -1000.0, -100.0, 800.0, 3000.0], np.float32)
    np.testing.assert_allclose(clip_and_scale(values, -1000.0, 800.0), [-1.0, -1.0, 0.0, 1.0, 1.0])


def test_resample_to_spacing_keeps_extent_origin_direction(oblique_image):
    resampled = resample_to_spacing(oblique_image, (1.4, 1.6, 1.5))
    assert resampled.GetSize() == (round(13 * 0.7 / 1.4), round(11 * 0.8 / 1.6), round(7 * 3.0 / 1.5))
    assert resampled.GetOrigin() == pytest.approx(oblique_image.GetOrigin())
    assert resampled.GetDirection() == pytest.approx(oblique_image.GetDirection())
    assert resampled.GetPixelID() == oblique_image.GetPixelID()


def test_resample_of_linear_ramp_is_exact_inside(oblique_image):
    # A ramp along x in physical space is reproduced exactly by linear interpolation.
    z, y, x = np.meshgrid(np.arange(7), np.arange(11), np.arange(13), indexing="ij")
    image = sitk.GetImageFromArray((x * 2.0 + y * 3.0 + z * 5.0).astype(np.float32))
    image.CopyInformation(oblique_image)
    resampled = resample_to_spacing(image, (0.35, 0.4, 1.5), interpolator="linear")
    inside = sitk.GetArrayFromImage(resampled)[2:-2, 2:-2, 2:-2]
    index_image = sitk.GetArrayFromImage(resampled)
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in index_image.shape], indexing="ij")
    expected = xx * 0.35 / 0.7 * 2.0 + yy * 0.4 / 0.8 * 3.0 + zz * 1.5 / 3.0 * 5.0
    np.testing.assert_allclose(inside, expected[2:-2, 2:-2, 2:-2], atol=1e-3)


def test_labels_are_resampled_with_nearest_neighbour_and_fill_zero(oblique_image):
    rng = np.random.default_rng(0)
    label = sitk.GetImageFromArray(rng.integers(0, 14, size=(7, 11, 13)).astype(np.uint8))
    label.CopyInformation(oblique_image)
    resampled = resample_to_spacing(label, (0.5, 0.5, 1.0), is_label=True)
    values = np.unique(sitk.GetArrayFromImage(resampled))
    assert set(values) <= set(range(14))
    # Back onto the original grid, nearest neighbour returns the original labels exactly.
    back = resample_to_reference(resampled, label, is_label=True)
    fine = sitk.GetArrayFromImage(back)
    assert (fine == sitk.GetArrayFromImage(label)).mean() > 0.9
    # Outside the input's extent the fill value is 0, not a pixel-type enum.
    reference = ImageGeometry.from_image(label)
    shifted = sitk.Image(label)
    shifted.SetOrigin([o + 100.0 for o in label.GetOrigin()])
    assert sitk.GetArrayFromImage(resample_to_reference(shifted, reference.reference_image(), True)).max() == 0


def test_resample_rejects_bad_arguments(oblique_image):
    with pytest.raises(ValueError, match="2 values for a 3D image"):
        resample_to_spacing(oblique_image, (1.0, 1.0))
    with pytest.raises(ValueError, match="unknown interpolator"):
        resample_to_spacing(oblique_image, (1.0, 1.0, 1.0), interpolator="cubic")


@pytest.mark.parametrize("shape,size", [((10, 12, 9), (8, 12, 11)), ((5, 7, 6), (9, 3, 6))])
def test_resize_image_with_crop_or_pad_matches_manual_numpy(rng, shape, size):
    image = rng.normal(size=shape + (2,)).astype(np.float32)
    result = resize_image_with_crop_or_pad(image, size)
    assert result.shape == size + (2,)
    expected = np.zeros(size + (2,), np.float32)
    source, target = [], []
    for have, want in zip(shape, size):
        if have >= want:
            start = (have - want) // 2
            source.append(slice(start, start + want))
            target.append(slice(None))
        else:
            before = (want - have) // 2
            source.append(slice(None))
            target.append(slice(before, before + have))
    expected[tuple(target)] = image[tuple(source)]
    np.testing.assert_array_equal(result, expected)
