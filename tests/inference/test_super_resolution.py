"""Tests of dltk2.inference.super_resolution: the served graph is the network on the input's own scale."""

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from dltk2.export import call_signature, export_predictor
from dltk2.inference import SuperResolver, load_predictor
from dltk2.inference.super_resolution import finer_origin
from dltk2.networks.super_resolution import simple_super_resolution_3d


def test_an_untrained_resolver_is_linear_upsampling_in_the_inputs_intensities(rng, tmp_path):
    resolver = SuperResolver(simple_super_resolution_3d(factors=(4, 4, 2), filters=(4,)), (4, 4, 2))
    image = rng.normal(500, 80, (4, 6, 5)).astype(np.float32)
    outputs = resolver.predict(image=image, spacing=[2.0, 8.0, 8.0])
    # Whitening in, un-whitening out, linear in between: linear upsampling of the raw volume.
    np.testing.assert_allclose(outputs["image"], ndimage.zoom(image, (4, 4, 2), order=1, grid_mode=True,
                                                              mode="nearest"), rtol=1e-5)
    np.testing.assert_allclose(outputs["spacing"], [1.0, 2.0, 2.0])  # (x, y, z) by (fx, fy, fz)
    _, saved_model = export_predictor(tmp_path / "model", resolver)
    served = call_signature(saved_model, {"image": image, "spacing": np.array([2.0, 8.0, 8.0])})
    np.testing.assert_allclose(served["image"], outputs["image"], rtol=1e-6)
    rebuilt = load_predictor(tmp_path / "model")
    assert isinstance(rebuilt, SuperResolver) and rebuilt.factors == [4, 4, 2]
    constant = resolver.upsample(np.full((3, 3, 3), 7.0, np.float32), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(constant, 7.0)  # no division by a zero spread


def test_the_finer_grid_covers_the_coarse_one_as_simpleitk_places_it(rng):
    coarse = sitk.Image([5, 6, 7], sitk.sitkFloat32)
    coarse.SetSpacing((8.0, 6.0, 4.0))
    coarse.SetOrigin((-20.0, 13.0, 7.5))
    coarse.SetDirection(sitk.VersorTransform((0.3, -0.2, 0.9), 0.7).GetMatrix())
    factors = (2, 3, 4)  # (z, y, x)
    origin = finer_origin(coarse.GetOrigin(), coarse.GetDirection(), coarse.GetSpacing(), factors)
    # The first fine voxel's centre lies half a fine voxel inside the coarse grid's corner.
    corner_fine = [-0.5 + 0.5 / f for f in factors[::-1]]
    np.testing.assert_allclose(origin, coarse.TransformContinuousIndexToPhysicalPoint(corner_fine), atol=1e-9)
