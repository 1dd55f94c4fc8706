"""Tests of data_scripts/make_synthetic_synapse.py: Synapse's layout, geometry and plausible organs."""

import numpy as np
import pytest
import SimpleITK as sitk

import make_synthetic_synapse as synthetic
from dltk2.io.image import read_image


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return synthetic.make_dataset(tmp_path_factory.mktemp("synapse"), num_cases=2, seed=4, in_plane_size=96)


def test_layout_and_anisotropic_geometry(cases):
    for name in ("0001", "0002"):
        image = read_image(cases / "img" / f"img{name}.nii.gz")
        label = read_image(cases / "label" / f"label{name}.nii.gz")
        assert image.GetPixelID() == sitk.sitkInt16 and label.GetPixelID() == sitk.sitkUInt8
        assert image.GetSize()[:2] == (96, 96)
        assert image.GetSpacing()[0] == image.GetSpacing()[1]
        assert all(abs(o) > 1.0 for o in image.GetOrigin())
        for attribute in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
            assert getattr(image, attribute)() == getattr(label, attribute)()


def test_default_geometry_is_synapses():
    rng = np.random.default_rng(0)
    for index in range(20):
        params = synthetic.case_parameters(rng, index, 512)
        assert 0.65 < params["spacing"][0] < 0.83 and params["spacing"][2] in (2.5, 3.0, 4.0, 5.0)
        assert params["size"][:2] == (512, 512) and 40 <= params["size"][2] <= 120


def test_every_organ_is_present_at_its_hu(cases):
    image = sitk.GetArrayFromImage(read_image(cases / "img" / "img0001.nii.gz"))
    label = sitk.GetArrayFromImage(read_image(cases / "label" / "label0001.nii.gz"))
    assert set(np.unique(label)) == set(range(14))
    params = synthetic.case_parameters(np.random.default_rng(4), 0, 96)
    for organ, hu in synthetic.ORGAN_HU.items():
        expected = hu + (params["contrast_shift"] if hu > 90 else 0.0)
        assert image[label == organ].mean() == pytest.approx(expected, abs=8.0), synthetic.ORGANS[organ]
    # Right-sided organs lie at negative x (LPS): the liver's centre is right of the spleen's.
    x = np.arange(label.shape[2])
    assert x[np.any(label == 6, axis=(0, 1))].mean() < x[np.any(label == 1, axis=(0, 1))].mean()


def test_same_seed_same_cases(tmp_path):
    first = synthetic.render_case(synthetic.case_parameters(np.random.default_rng(9), 0, 48))
    second = synthetic.render_case(synthetic.case_parameters(np.random.default_rng(9), 0, 48))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(first[0]), sitk.GetArrayFromImage(second[0]))
