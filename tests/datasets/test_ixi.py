"""Tests of dltk2.datasets.ixi."""

import numpy as np
import pandas as pd
import pytest

from dltk2.datasets import ixi
from dltk2.errors import DataError
from dltk2.io.reader import CsvError, Mode
from dltk2.preprocessing import whitening
from dltk2.io.image import read_array


def test_load_subjects_labels_and_paths(tiny_ixi):
    table = pd.read_csv(tiny_ixi)
    sex = ixi.load_subjects(tiny_ixi, "sex", 8.0)
    assert sex["label"].astype(int).tolist() == (table["SEX_ID (1=m, 2=f)"] - 1).tolist()
    assert sex["image"].iloc[0].endswith("8mm/IXI012/T1_8mm.nii.gz")
    age = ixi.load_subjects(tiny_ixi, "age", 8.0)
    np.testing.assert_allclose(age["label"].astype(float), table["AGE"], atol=1e-6)
    train, validation = ixi.split_subjects(sex, 8)
    assert len(train) == 8 and validation["id"].tolist() == table["IXI_ID"].tolist()[8:]
    with pytest.raises(ValueError, match="no training or no validation"):
        ixi.split_subjects(sex, 12)


def test_subjects_without_age_are_dropped(tmp_path, tiny_ixi):
    table = pd.read_csv(tiny_ixi)
    table.loc[3, "AGE"] = None
    table.to_csv(tmp_path / "demo.csv", index=False)
    assert len(ixi.load_subjects(tmp_path / "demo.csv", "age", 8.0, data_dir=tiny_ixi.parent)) == 11


def test_missing_column_names_it(tmp_path):
    (tmp_path / "demo.csv").write_text("IXI_ID,AGE\nIXI012,30\n")
    with pytest.raises(CsvError, match=r"lacks column\(s\) 'SEX_ID \(1=m, 2=f\)'"):
        ixi.load_subjects(tmp_path / "demo.csv", "sex")


def test_read_fn_modes(tiny_ixi):
    row = ixi.load_subjects(tiny_ixi, "sex", 8.0).iloc[0].tolist()
    params = {"example_size": [16, 16, 16], "n_examples": 3, "target": "sex"}
    train = list(ixi.read_fn(row, Mode.TRAIN, params))
    assert len(train) == 3 and train[0]["features"]["x"].shape == (16, 16, 16, 1)
    assert train[0]["labels"]["y"] == int(row[2])
    first = [e["features"]["x"] for e in ixi.read_fn(row, Mode.EVAL, params)]
    second = [e["features"]["x"] for e in ixi.read_fn(row, Mode.EVAL, params)]
    np.testing.assert_array_equal(first, second)  # validation crops are fixed per subject
    (predict,) = ixi.read_fn(row, Mode.PREDICT, params)
    raw, _ = read_array(row[1])
    np.testing.assert_array_equal(predict["features"]["x"], raw)
    # Crops are cut from the whitened volume.
    assert np.isclose(whitening(raw), first[0][0, 0, 0, 0]).any()


def test_cached_training_dataset_cuts_crops_of_the_whitened_volumes(tiny_ixi):
    from numpy.lib.stride_tricks import sliding_window_view

    subjects = ixi.load_subjects(tiny_ixi, "sex", 8.0).iloc[:3]
    whitened = [whitening(read_array(path)[0]) for path in subjects["image"]]
    labels = subjects["label"].astype(int).tolist()
    dataset = ixi.cached_training_dataset(subjects, [16, 16, 16], n_examples=2, target="sex", batch_size=4)
    for crops, batch_labels in dataset.take(3):
        assert crops.shape == (4, 16, 16, 16, 1) and crops.dtype == np.float32
        for crop, label in zip(crops.numpy()[..., 0], batch_labels.numpy()):
            sources = [index for index, volume in enumerate(whitened) for candidate in (volume, volume[:, :, ::-1])
                       if (sliding_window_view(candidate, crop.shape) == crop).all(axis=(-3, -2, -1)).any()]
            assert sources and all(labels[index] == label for index in sources)


@pytest.mark.parametrize("value, expected", [("m", "must hold 1 \\(male\\) or 2 \\(female\\)"), ("3", "has '3'")])
def test_a_sex_that_is_not_a_code_is_one_line_naming_the_subject(tmp_path, value, expected):
    csv = tmp_path / "demographic_HH.csv"
    csv.write_text(f"IXI_ID,\"SEX_ID (1=m, 2=f)\",AGE\nIXI002,1,35\nIXI012,{value},40\n")
    with pytest.raises(CsvError, match=rf"demographic_HH.csv: column 'SEX_ID \(1=m, 2=f\)' .*{expected}"):
        ixi.load_subjects(csv, "sex")


def test_a_subject_id_that_leaves_the_data_folder_is_refused(tmp_path):
    csv = tmp_path / "demographic_HH.csv"
    csv.write_text("IXI_ID,\"SEX_ID (1=m, 2=f)\",AGE\n../../etc,1,35\n")
    with pytest.raises(DataError, match="subject id '../../etc' is not a plain name"):
        ixi.load_subjects(csv, "age")
