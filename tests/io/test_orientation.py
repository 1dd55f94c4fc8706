"""Tests of dltk2.io.orientation: axis codes and reorientation, against SimpleITK's DICOMOrient."""

import numpy as np
import pytest
import SimpleITK as sitk

from dltk2.io.orientation import (Reorientation, all_axis_codes, axis_codes, check_codes, direction_of,
                                  is_axis_aligned, reorient_image)


def test_the_48_orientations_are_distinct_and_their_directions_have_their_codes():
    codes = all_axis_codes()
    assert len(codes) == len(set(codes)) == 48 and codes[0] == "LPS"
    for code in codes:
        matrix = np.reshape(direction_of(code), (3, 3))
        np.testing.assert_array_equal(matrix @ matrix.T, np.eye(3))
        assert axis_codes(direction_of(code)) == code and is_axis_aligned(direction_of(code))
    assert direction_of("LPS") == (1, 0, 0, 0, 1, 0, 0, 0, 1)
    assert direction_of("ras") == (-1, 0, 0, 0, -1, 0, 0, 0, 1)


@pytest.mark.parametrize("codes", ["LP", "LPX", "LLS", "RLS", "LPSA"])
def test_codes_that_name_no_orientation_are_refused(codes):
    with pytest.raises(ValueError, match="is not an orientation"):
        check_codes(codes)


def test_an_oblique_direction_has_its_nearest_codes_and_is_not_aligned():
    angle = np.deg2rad(20.0)
    direction = [np.cos(angle), -np.sin(angle), 0, np.sin(angle), np.cos(angle), 0, 0, 0, -1]
    assert axis_codes(direction) == "LPI" and not is_axis_aligned(direction)
    assert is_axis_aligned(np.asarray(direction_of("ASR")) + 1e-6)  # float32 header rounding


@pytest.mark.parametrize("target", ["LPS", "RAS", "ASL", "IRP", "SLA"])
def test_reorientation_is_simpleitks_dicomorient_in_all_48_orientations(rng, target):
    array = rng.normal(size=(5, 6, 7)).astype(np.float32)
    for source in all_axis_codes():
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((0.5, 0.7, 1.3))
        image.SetOrigin((3.0, -4.0, 5.0))
        image.SetDirection(direction_of(source))
        expected = sitk.DICOMOrient(image, target)
        reorientation = Reorientation.between(image.GetDirection(), target)
        moved = reorientation.apply(array)
        np.testing.assert_array_equal(moved, sitk.GetArrayFromImage(expected), err_msg=f"{source} -> {target}")
        size, spacing, origin, direction = reorientation.geometry(image.GetSize(), image.GetSpacing(),
                                                                  image.GetOrigin(), image.GetDirection())
        assert size == expected.GetSize()
        np.testing.assert_allclose(spacing, expected.GetSpacing())
        np.testing.assert_allclose(origin, expected.GetOrigin(), atol=1e-9)
        np.testing.assert_allclose(direction, expected.GetDirection(), atol=1e-12)
        np.testing.assert_array_equal(reorientation.undo(moved), array)
        np.testing.assert_array_equal(reorientation.undo(moved[..., None].repeat(2, -1))[..., 1], array)
        assert reorientation.is_identity == (source == target)


def test_reorient_image_keeps_every_voxel_where_it_was(rng):
    image = sitk.GetImageFromArray(rng.normal(size=(4, 5, 6)).astype(np.float32))
    image.SetDirection(direction_of("PIR"))
    image.SetOrigin((10.0, 20.0, 30.0))
    moved = reorient_image(image, "LPS")
    assert axis_codes(moved.GetDirection()) == "LPS"
    index = (2, 3, 1)
    point = image.TransformIndexToPhysicalPoint(index)
    assert moved[moved.TransformPhysicalPointToIndex(point)] == image[index]
    assert reorient_image(moved, "LPS") is moved
