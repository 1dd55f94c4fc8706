"""Tests of data_scripts/make_synthetic_ixi.py: IXI's layout and columns, and learnable signals."""

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage

import make_synthetic_ixi as synthetic
from dltk2.io.image import read_array


def test_layout_columns_and_geometry(tiny_ixi):
    table = pd.read_csv(tiny_ixi)
    assert list(table.columns) == synthetic.CSV_COLUMNS
    assert table["IXI_ID"].tolist() == [f"IXI{i:03d}" for i in range(12, 24)]
    assert set(table["SEX_ID (1=m, 2=f)"]) <= {1, 2} and table["AGE"].between(20, 87).all()
    for subject in table["IXI_ID"]:
        volume, geometry = read_array(tiny_ixi.parent / "8mm" / subject / "T1_8mm.nii.gz", dtype=None)
        assert volume.dtype == np.int16
        assert geometry.spacing == pytest.approx((8.0, 8.0, 8.0))
        assert volume.shape == (24, 29, 25)
        assert np.allclose(np.array(geometry.direction).reshape(3, 3), np.diag([-1, -1, 1]))  # LPS from RAS


def test_same_seed_same_data(tmp_path):
    first = synthetic.make_dataset(tmp_path / "a", num_subjects=2, seed=5, spacings=[12.0])
    second = synthetic.make_dataset(tmp_path / "b", num_subjects=2, seed=5, spacings=[12.0])
    assert first.read_text() == second.read_text()
    a, _ = read_array(tmp_path / "a" / "12mm" / "IXI013" / "T1_12mm.nii.gz")
    b, _ = read_array(tmp_path / "b" / "12mm" / "IXI013" / "T1_12mm.nii.gz")
    np.testing.assert_array_equal(a, b)


def test_sex_changes_brain_volume_by_about_nine_percent_with_overlap():
    rng = np.random.default_rng(0)
    subjects = [synthetic.subject_parameters(rng, i, 12) for i in range(2000)]
    volume = np.array([np.prod(s["scales"]) for s in subjects])
    sex = np.array([s["sex"] for s in subjects])
    ratio = np.exp(np.log(volume[sex == 1]).mean() - np.log(volume[sex == 2]).mean())
    assert ratio == pytest.approx(1.09, abs=0.005)
    assert volume[sex == 2].max() > volume[sex == 1].min()  # the distributions overlap


def _render(age, scale):
    params = synthetic.subject_parameters(np.random.default_rng(1), 0, 12)
    params.update(age=age, scales=np.full(3, scale), rotation=np.zeros(3), translation=np.zeros(3),
                  noise_fraction=0.0, bias_coefficients=np.zeros(9), intensity_scale=1000.0)
    return sitk.GetArrayFromImage(synthetic.render_subject(params, 3.0, synthetic.load_template()))


def test_larger_scale_gives_more_brain_and_age_gives_larger_ventricles():
    small, large = _render(40.0, 0.96), _render(40.0, 1.04)
    assert (large > 100).sum() / (small > 100).sum() == pytest.approx((1.04 / 0.96) ** 3, rel=0.02)
    young, old = _render(20.0, 1.0), _render(85.0, 1.0)
    brain = young > 100
    threshold = 1.1 * synthetic.load_template()["csf_value"] * 1000.0  # CSF intensity, intensity_scale 1000
    csf = lambda volume: ((volume < threshold) & brain).sum()  # noqa: E731  dark voxels inside the brain
    assert csf(old) > 1.3 * csf(young)


def test_the_ventricle_region_holds_what_age_changes_and_dataset_parameters_repeat_the_seed():
    template = synthetic.load_template()
    params = synthetic.dataset_parameters(4, 2)[1]
    again = synthetic.dataset_parameters(np.random.default_rng(4), 2)[1]
    assert params["id"] == "IXI013" and params["age"] == again["age"] and params["elastic_seed"] == again["elastic_seed"]
    young, old = ({**params, "age": age} for age in (20.0, 86.0))
    difference = np.abs(sitk.GetArrayFromImage(synthetic.render_subject(old, 4.0, template)).astype(float)
                        - sitk.GetArrayFromImage(synthetic.render_subject(young, 4.0, template)))
    region_image = synthetic.ventricle_region(params, 4.0, template)
    region = sitk.GetArrayFromImage(region_image).astype(bool)
    changed = difference > 0.05 * difference.max()
    assert changed.sum() > 20 and region.mean() < 0.02
    # The scan is resampled linearly, the region by nearest neighbour: a voxel of slack holds every change.
    assert region[changed].mean() > 0.8 and ndimage.binary_dilation(region, np.ones((3, 3, 3)))[changed].all()
    assert region_image.GetSpacing() == (4.0, 4.0, 4.0) and region.shape == difference.shape


def test_t2_and_pd_share_the_subjects_anatomy_and_age(tmp_path):
    csv_path = synthetic.make_dataset(tmp_path, num_subjects=1, seed=6, spacings=[6.0], sequences=["T1", "T2", "PD"])
    folder = csv_path.parent / "6mm" / "IXI012"
    volumes = {name: read_array(folder / f"{name}_6mm.nii.gz", dtype=None) for name in ("T1", "T2", "PD")}
    assert {v.shape for v, _ in volumes.values()} == {volumes["T1"][0].shape}
    assert {g.origin for _, g in volumes.values()} == {volumes["T1"][1].origin}
    template = synthetic.load_template()
    params = synthetic.dataset_parameters(6, 1)[0]
    ventricles = sitk.GetArrayFromImage(synthetic.ventricle_region(params, 6.0, template, reach_mm=0.0)) > 0
    t1, t2 = (volumes[name][0].astype(float) for name in ("T1", "T2"))
    brain = t1 > 0.3 * t1.max()
    # Fluid: dark in T1, bright in T2.
    assert t1[ventricles].mean() < t1[brain].mean() and t2[ventricles].mean() > t2[brain & ~ventricles].mean()
    # Age grows the fluid in T2 as in T1.
    young, old = ({**params, "age": age} for age in (25.0, 85.0))
    fluid = [(sitk.GetArrayFromImage(synthetic.render_sequence(p, 6.0, template, "T2")) >
              0.8 * params["intensity_scale"]).sum() for p in (young, old)]
    assert fluid[1] > fluid[0]
    with pytest.raises(ValueError, match="sequence must be T1 or one of"):
        synthetic.render_sequence(params, 6.0, template, "FLAIR")
