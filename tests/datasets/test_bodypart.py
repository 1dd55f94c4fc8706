"""Tests of dltk2.datasets.bodypart: images out of DICOM, patient-level stratified splits, class weights."""

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file
from sklearn.utils.class_weight import compute_class_weight

from dltk2.datasets import bodypart
from dltk2.io.deidentification import deidentify


def test_representative_image():
    frames = np.arange(5 * 4 * 3, dtype=np.float32).reshape(5, 4, 3)  # 5 frames of 4x3, not RGB
    np.testing.assert_array_equal(bodypart.representative_image(frames, colour=False), frames[2])
    colour_frames = np.ones((3, 4, 5, 3), np.float32)
    assert bodypart.representative_image(colour_frames).shape == (4, 5)
    rgb = np.zeros((4, 3, 3), np.float32)
    rgb[..., 1] = 100
    np.testing.assert_allclose(bodypart.representative_image(rgb), 58.7, rtol=1e-5)


def test_export_image_writes_png_label_and_deidentified_metadata(tmp_path):
    dataset = pydicom.dcmread(get_testdata_file("MR-SIEMENS-DICOM-WithOverlays.dcm"))
    row = bodypart.export_image(dataset, "abc", "Abdomen", "p1", tmp_path, bits=16,
                                metadata=deidentify(dataset, "salt"))
    assert row == {"name": "abc", "body_part": "Abdomen", "patient": "p1"}
    image = bodypart.read_png(tmp_path / "images" / "abc.png")
    assert image.dtype == np.uint16 and image.shape == (484, 484) and image.max() == 65535
    assert (tmp_path / "labels" / "abc.txt").read_text() == "Abdomen\n"
    metadata = (tmp_path / "metadata" / "abc.json").read_text()
    assert str(dataset.PatientName) not in metadata and str(dataset.PatientID) not in metadata
    assert "7FE00010" not in metadata  # no pixel data in the JSON


def dataset_table(rng, patients=60):
    rows = []
    for p in range(patients):
        label = p % 7 if p % 10 else 3  # Chest more common
        for i in range(int(rng.integers(1, 4))):
            rows.append({"name": f"{p}_{i}", "label": label, "patient": f"P{p}"})
    return pd.DataFrame(rows)


def test_split_by_patient_is_disjoint_stratified_and_seeded(rng):
    table = dataset_table(rng)
    train, val, test = bodypart.split_by_patient(table, (0.7, 0.15, 0.15), seed=3)
    assert len(train) + len(val) + len(test) == len(table)
    groups = [set(part["patient"]) for part in (train, val, test)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert abs(len(train) / len(table) - 0.7) < 0.08
    for part in (val, test):  # every class in every split where there are enough patients
        assert set(part["label"]) == set(table["label"])
    again = bodypart.split_by_patient(table, (0.7, 0.15, 0.15), seed=3)
    assert again[1]["name"].tolist() == val["name"].tolist()
    other = bodypart.split_by_patient(table, (0.7, 0.15, 0.15), seed=4)
    assert other[1]["name"].tolist() != val["name"].tolist()
    with pytest.raises(ValueError, match="sum to 1"):
        bodypart.split_by_patient(table, (0.7, 0.2), seed=0)


def test_class_weights_match_scikit_learn():
    labels = [0, 0, 0, 1, 3, 3]
    present = np.unique(labels)
    expected = compute_class_weight("balanced", classes=present, y=labels)
    weights = bodypart.class_weights(labels, num_classes=5)
    np.testing.assert_allclose(weights[present], expected)
    assert weights[2] == 0 and weights[4] == 0


def test_list_dataset_errors_name_the_file(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match="no .png images"):
        bodypart.list_dataset(tmp_path)
    bodypart.write_png(tmp_path / "images" / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(FileNotFoundError, match="a.txt: no such file"):
        bodypart.list_dataset(tmp_path)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("Elbow\n")
    with pytest.raises(ValueError, match="a.txt: 'Elbow' is not one of"):
        bodypart.list_dataset(tmp_path)
    (tmp_path / "labels" / "a.txt").write_text("Chest\n")
    table = bodypart.list_dataset(tmp_path)
    assert table.loc[0, "label"] == 3 and table.loc[0, "patient"] == "image:a"
