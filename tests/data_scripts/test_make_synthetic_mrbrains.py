"""Tests of data_scripts/make_synthetic_mrbrains.py: MRBrainS13's layout, real tissue maps, three contrasts."""

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from nilearn import datasets

import make_synthetic_ixi as ixi
import make_synthetic_mrbrains as synthetic
from dltk2.io.image import read_array


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    output = tmp_path_factory.mktemp("mrbrains")
    train, val = synthetic.make_dataset(output, num_subjects=3, seed=2, spacing=(6.0, 6.0, 8.0), num_val=1)
    return output, train, val


def test_layout_csvs_and_one_grid_per_subject(written):
    output, train, val = written
    assert pd.read_csv(train)["id"].tolist() == [1, 2] and pd.read_csv(val)["id"].tolist() == [3]
    assert list(pd.read_csv(val).columns) == ["id", "subj_folder"]
    for folder in pd.read_csv(train)["subj_folder"]:
        arrays = {}
        for name in (*synthetic.CHANNELS, synthetic.LABEL_FILE):
            arrays[name], geometry = read_array(f"{folder}/{name}.nii.gz", dtype=None)
            assert geometry.spacing == pytest.approx((6.0, 6.0, 8.0))
        assert {array.shape for array in arrays.values()} == {arrays["T1"].shape}
        assert arrays["T1"].dtype == np.int16 and arrays[synthetic.LABEL_FILE].dtype == np.uint8
        assert set(np.unique(arrays[synthetic.LABEL_FILE])) == {0, 1, 2, 3}


def test_each_channel_orders_the_tissues_as_its_sequence_does(written):
    output, _, _ = written
    labels = read_array(output / "TrainingData" / "1" / f"{synthetic.LABEL_FILE}.nii.gz")[0]
    means = {name: [read_array(output / "TrainingData" / "1" / f"{name}.nii.gz")[0][labels == k].mean()
                    for k in range(4)] for name in synthetic.CHANNELS}
    background, csf, grey, white = means["T1"]
    assert background < csf < grey < white  # T1: white matter brightest
    background, csf, grey, white = means["T1_IR"]
    assert csf < 0.5 * grey and grey < white  # inversion recovery nulls CSF (partial volume at 6 mm)
    background, csf, grey, white = means["T2_FLAIR"]
    assert csf < white < grey  # FLAIR: CSF dark, grey above white


def test_labels_follow_nilearns_tissue_templates_through_the_subjects_deformation():
    params = ixi.dataset_parameters(4, 1, first_id=1)[0]
    _, labels = synthetic.render_subject(params, 4.0)
    template = ixi.load_template()
    grey = ixi.nifti_to_sitk(datasets.load_mni152_gm_template(resolution=1))
    # nilearn's grey matter carried onto the subject's grid by the same transform, thresholded.
    moved = sitk.GetArrayFromImage(sitk.Resample(grey, labels, ixi.subject_transform(params, template),
                                                 sitk.sitkLinear, 0.0))
    ours = sitk.GetArrayFromImage(labels) == 2
    dice = 2 * (ours & (moved > 0.5)).sum() / (ours.sum() + (moved > 0.5).sum())
    assert dice > 0.8
    # Each tissue's volume is the template's own (most probable class, 1 mm voxels), give or take the
    # subject's size (a few per cent) and the 4 mm grid.
    volumes = np.bincount(sitk.GetArrayFromImage(labels).ravel(), minlength=4)[1:] * 4.0 ** 3
    tissues = np.stack([sitk.GetArrayFromImage(t) for t in ixi.load_tissue_maps()["tissues"]], axis=-1)
    in_template = np.bincount(np.where(tissues.sum(-1) >= 0.5, 1 + tissues.argmax(-1), 0).ravel(), minlength=4)[1:]
    np.testing.assert_allclose(volumes, in_template, rtol=0.15)


def test_the_same_seed_gives_the_same_subjects(tmp_path):
    for name in ("a", "b"):
        synthetic.make_dataset(tmp_path / name, num_subjects=2, seed=9, spacing=12.0, num_val=1)
    for file in (*synthetic.CHANNELS, synthetic.LABEL_FILE):
        np.testing.assert_array_equal(read_array(tmp_path / "a" / "TrainingData" / "2" / f"{file}.nii.gz")[0],
                                      read_array(tmp_path / "b" / "TrainingData" / "2" / f"{file}.nii.gz")[0])
    with pytest.raises(ValueError, match="num_val must leave training subjects"):
        synthetic.make_dataset(tmp_path / "c", num_subjects=2, seed=9, spacing=12.0, num_val=2)
