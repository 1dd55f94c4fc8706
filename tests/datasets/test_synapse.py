"""Tests of dltk2.datasets.synapse."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

import make_synthetic_synapse
from helpers import with_label_value
from dltk2.datasets import synapse
from dltk2.errors import DataError
from dltk2.io.reader import Mode


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return make_synthetic_synapse.make_dataset(tmp_path_factory.mktemp("raw"), num_cases=3, seed=2, in_plane_size=64)


def test_find_cases_and_a_missing_label(raw, tmp_path):
    cases = synapse.find_cases(raw)
    assert cases["id"].tolist() == ["img0001", "img0002", "img0003"]
    assert cases["label"].iloc[1].endswith("label/label0002.nii.gz")
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "img0007.nii.gz").write_bytes((raw / "img" / "img0001.nii.gz").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"label0007\.nii\.gz: no such file"):
        synapse.find_cases(tmp_path)
    assert synapse.find_cases(tmp_path, with_labels=False)["label"].tolist() == [""]


def test_preprocessing_matches_simpleitk_and_keeps_the_physical_extent(raw):
    image = sitk.ReadImage(str(raw / "img" / "img0001.nii.gz"))
    ours = synapse.preprocess_image(image)
    reference = sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), ours, sitk.Transform(), sitk.sitkLinear, -1000.0)
    expected = (np.clip(sitk.GetArrayFromImage(reference), -1000, 800) + 1000) / 1800 * 2 - 1
    np.testing.assert_allclose(sitk.GetArrayFromImage(ours), expected, atol=1e-5)
    assert ours.GetSpacing() == pytest.approx((2.0, 2.0, 2.0))
    assert ours.GetOrigin() == pytest.approx(image.GetOrigin())
    extent = np.array(image.GetSize()) * np.array(image.GetSpacing())
    np.testing.assert_allclose(np.array(ours.GetSize()) * 2.0, extent, atol=2.0)
    label = synapse.preprocess_label(sitk.ReadImage(str(raw / "label" / "label0001.nii.gz")))
    assert set(np.unique(sitk.GetArrayFromImage(label))) <= set(range(14))


@pytest.mark.parametrize("count,fraction", [(10, 0.2), (3, 0.5), (2, 0.9)])
def test_split_puts_every_case_in_exactly_one_file(count, fraction):
    cases = pd.DataFrame({"id": [f"img{i:04d}" for i in range(count)]})
    train, val = synapse.split_cases(cases, fraction, seed=5)
    assert sorted(train["id"].tolist() + val["id"].tolist()) == cases["id"].tolist()
    assert len(train) >= 1 and len(val) >= 1
    again_train, _ = synapse.split_cases(cases, fraction, seed=5)
    assert again_train["id"].tolist() == train["id"].tolist()
    with pytest.raises(ValueError, match="cannot split"):
        synapse.split_cases(cases.iloc[:1], fraction, seed=5)


def test_read_fn_gives_class_balanced_patches(raw, tmp_path):
    row = synapse.preprocess_case(synapse.find_cases(raw).iloc[0].to_dict(), tmp_path, [4.0, 4.0, 4.0])
    params = {"example_size": [8, 8, 8], "n_examples": 140}
    examples = list(synapse.read_fn([row["id"], row["imgs"], row["lbls"]], Mode.TRAIN, params))
    assert examples[0]["features"]["x"].shape == (8, 8, 8, 1) and examples[0]["labels"]["y"].shape == (8, 8, 8)
    centres = np.array([e["labels"]["y"][4, 4, 4] for e in examples])
    present = np.unique(sitk.GetArrayFromImage(sitk.ReadImage(row["lbls"])))
    # Each class present in the case is a patch centre about equally often.
    counts = np.bincount(centres, minlength=14)[present]
    assert counts.min() >= 2 and counts.max() <= 25
    fixed = [e["features"]["x"] for e in synapse.read_fn([row["id"], row["imgs"], row["lbls"]], Mode.EVAL, params)]
    again = [e["features"]["x"] for e in synapse.read_fn([row["id"], row["imgs"], row["lbls"]], Mode.EVAL, params)]
    np.testing.assert_array_equal(fixed, again)


def bad_case(raw, tmp_path, change_label=None, change_image=None):
    """One case of ``raw`` with its label (or image) changed, as the attack made them."""
    image = sitk.ReadImage(str(raw / "img" / "img0001.nii.gz"))
    label = sitk.ReadImage(str(raw / "label" / "label0001.nii.gz"))
    if change_label:
        label = change_label(label, image)
    if change_image:
        image = change_image(image)
    (tmp_path / "img").mkdir(parents=True, exist_ok=True)
    (tmp_path / "label").mkdir(exist_ok=True)
    sitk.WriteImage(image, str(tmp_path / "img" / "img0001.nii.gz"))
    sitk.WriteImage(label, str(tmp_path / "label" / "label0001.nii.gz"))
    return synapse.find_cases(tmp_path).iloc[0].to_dict()


def shifted(label, image):
    label = sitk.Image(label)
    label.SetOrigin([o + 4.0 for o in label.GetOrigin()])
    return label


@pytest.mark.parametrize("change, message", [
    (with_label_value(14), r"label value\(s\) \[14\] outside the label set 0-13"),
    (with_label_value(255), r"label value\(s\) \[255\] outside the label set 0-13"),
    (lambda label, image: label[:, :, 1:], "not on the grid of its image img0001.nii.gz"),
    (shifted, "not on the grid of its image"),
])
def test_label_maps_outside_the_label_set_or_off_the_grid_are_refused(raw, tmp_path, change, message):
    case = bad_case(raw, tmp_path / "data", change_label=change)
    with pytest.raises(DataError, match=message):
        synapse.preprocess_case(case, tmp_path / "out", [8.0] * 3)
    assert not (tmp_path / "out").exists()  # checked before anything is written


@pytest.mark.parametrize("change, dimension", [
    (lambda image: image[:, :, 0], "2D"),
    (lambda image: sitk.JoinSeries([image, image]), "4D"),
])
def test_a_ct_that_is_not_3d_is_refused(raw, tmp_path, change, dimension):
    case = bad_case(raw, tmp_path / "data", change_image=change)
    with pytest.raises(DataError, match=f"img0001.nii.gz: a CT must be a 3D volume .* this image is {dimension}"):
        synapse.preprocess_case(case, tmp_path / "out", [8.0] * 3)


def test_preprocessing_brings_every_case_to_one_orientation(raw, tmp_path):
    """A case stored in RAS (as many NIfTI converters write) is preprocessed as its LPS twin."""
    from dltk2.io.orientation import axis_codes, reorient_image

    case = synapse.find_cases(raw).iloc[0].to_dict()
    turned = tmp_path / "turned"
    for key in ("image", "label"):
        (turned / key).mkdir(parents=True)
        sitk.WriteImage(reorient_image(sitk.ReadImage(case[key]), "RAS"), str(turned / key / Path(case[key]).name))
    as_ras = {**case, "image": str(turned / "image" / Path(case["image"]).name),
              "label": str(turned / "label" / Path(case["label"]).name)}
    assert axis_codes(sitk.ReadImage(as_ras["image"]).GetDirection()) == "RAS"
    upright = synapse.preprocess_case(case, tmp_path / "upright", [4.0] * 3)
    reoriented = synapse.preprocess_case(as_ras, tmp_path / "reoriented", [4.0] * 3)
    kept = synapse.preprocess_case(as_ras, tmp_path / "kept", [4.0] * 3, orientation=None)
    for key in ("imgs", "lbls"):
        ours, theirs = sitk.ReadImage(reoriented[key]), sitk.ReadImage(upright[key])
        assert axis_codes(ours.GetDirection()) == "LPS" and ours.GetSize() == theirs.GetSize()
        np.testing.assert_allclose(ours.GetOrigin(), theirs.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(theirs), atol=1e-5)
        assert axis_codes(sitk.ReadImage(kept[key]).GetDirection()) == "RAS"
