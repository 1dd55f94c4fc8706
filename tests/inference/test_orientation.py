"""Tests of dltk2.inference.orientation: the serving graph's reorientation, against numpy and SimpleITK."""

import numpy as np
import pytest
import SimpleITK as sitk
import tensorflow as tf

from dltk2.inference.orientation import (plan_orientation, reorient, reoriented_spacing, restore_orientation,
                                         sample_affine)
from dltk2.io.orientation import Reorientation, all_axis_codes, axis_codes, direction_of

SPACING = (0.5, 0.7, 1.3)


def _plan(array, spacing, direction, codes):
    return plan_orientation(tf.shape(array), tf.constant(spacing, tf.float64), tf.constant(direction, tf.float64),
                            codes)


@pytest.mark.parametrize("target", ["LPS", "RAS", "PIL"])
def test_the_graph_reorients_as_numpy_in_all_48_orientations_without_interpolating(rng, target):
    array = rng.normal(size=(5, 6, 7, 2)).astype(np.float32)
    for source in all_axis_codes():
        plan = _plan(array, SPACING, direction_of(source), target)
        expected = Reorientation.between(direction_of(source), target)
        _, spacing, origin, _ = expected.geometry(array.shape[2::-1], SPACING, (0, 0, 0), direction_of(source))
        moved = reorient(array, plan).numpy()
        assert not plan.oblique.numpy()
        np.testing.assert_array_equal(moved, expected.apply(array), err_msg=f"{source} -> {target}")
        np.testing.assert_array_equal(restore_orientation(moved, plan).numpy(), array)
        np.testing.assert_allclose(reoriented_spacing(SPACING, plan).numpy(), spacing)
        np.testing.assert_allclose(plan.resampled_offset.numpy(), origin, atol=1e-12)


def _oblique_image(rng):
    image = sitk.GetImageFromArray(rng.normal(size=(20, 30, 25)).astype(np.float32))
    image.SetSpacing((0.9, 1.1, 2.0))
    image.SetOrigin((10.0, -20.0, 30.0))
    rotation = np.reshape(sitk.VersorTransform((0.3, 0.2, 1.0), 0.35).GetMatrix(), (3, 3))
    image.SetDirection((rotation @ np.reshape(direction_of("RAI"), (3, 3))).flatten())
    return image


@pytest.mark.parametrize("target", ["LPS", "RAS"])
def test_an_oblique_grid_is_resampled_as_simpleitk_does_and_labels_go_back_as_simpleitk_puts_them(rng, target):
    image = _oblique_image(rng)
    assert axis_codes(image.GetDirection()) == "RAI"
    array = sitk.GetArrayFromImage(image)
    plan = _plan(array, image.GetSpacing(), image.GetDirection(), target)
    assert plan.oblique.numpy()
    moved = reorient(array[..., None], plan)[..., 0].numpy()
    grid = sitk.Image([int(s) for s in moved.shape[::-1]], sitk.sitkFloat32)
    grid.SetSpacing(reoriented_spacing(image.GetSpacing(), plan).numpy().tolist())
    grid.SetDirection(direction_of(target))
    grid.SetOrigin((np.asarray(image.GetOrigin()) + plan.resampled_offset.numpy()).tolist())
    expected = sitk.GetArrayFromImage(sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, 0.0))
    np.testing.assert_allclose(moved, expected, atol=1e-5)
    # The grid covers the whole input: every input voxel centre lies inside it.
    corners = [image.TransformIndexToPhysicalPoint([int(c * (s - 1)) for c, s in zip(corner, image.GetSize())])
               for corner in np.ndindex(2, 2, 2)]
    for point in corners:
        index = np.asarray(grid.TransformPhysicalPointToContinuousIndex(point))
        assert np.all(index > -0.5) and np.all(index < np.asarray(grid.GetSize()) - 0.5)
    labels = (expected > 0.3).astype(np.float32)
    label_grid = sitk.GetImageFromArray(labels)
    label_grid.CopyInformation(grid)
    back = restore_orientation(labels[..., None], plan, "nearest")[..., 0].numpy()
    reference = sitk.Resample(label_grid, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0)
    np.testing.assert_array_equal(back, sitk.GetArrayFromImage(reference))


def test_sample_affine_with_the_identity_map_is_the_volume_and_outside_is_zero(rng):
    volume = rng.normal(size=(4, 5, 6, 1)).astype(np.float32)
    identity = tf.constant(np.hstack([np.eye(3), np.zeros((3, 1))]), tf.float64)
    for method in ("linear", "nearest"):
        np.testing.assert_array_equal(sample_affine(volume, identity, tf.constant([4, 5, 6]), method).numpy(), volume)
    shifted = tf.constant(np.hstack([np.eye(3), [[0.0], [0.0], [10.0]]]), tf.float64)  # 10 voxels beyond z
    assert not sample_affine(volume, shifted, tf.constant([4, 5, 6])).numpy().any()
    with pytest.raises(ValueError, match="method"):
        sample_affine(volume, identity, tf.constant([4, 5, 6]), "cubic")
