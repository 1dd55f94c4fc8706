"""Tests of dltk2.datasets.mrbrains: subject folders, per-channel whitening, patches, one-line errors."""

import numpy as np
import pytest
import SimpleITK as sitk

from dltk2.datasets import mrbrains
from dltk2.errors import DataError
from dltk2.io.reader import Mode


def write_subject(folder, rng, shape=(10, 16, 14), labels=None):
    folder.mkdir(parents=True)
    for number, name in enumerate(mrbrains.CHANNELS):
        image = sitk.GetImageFromArray((rng.normal(100 * (number + 1), 10 * (number + 1), shape)).astype(np.int16))
        image.SetSpacing((2.0, 2.0, 3.0))
        sitk.WriteImage(image, str(folder / f"{name}.nii.gz"))
    if labels is None:
        labels = np.zeros(shape, np.uint8)
        labels[2:8, 3:13, 2:6], labels[2:8, 3:13, 6:9], labels[2:8, 3:13, 9:12] = 1, 2, 3
    label = sitk.GetImageFromArray(labels)
    label.SetSpacing((2.0, 2.0, 3.0))
    sitk.WriteImage(label, str(folder / f"{mrbrains.LABEL_FILE}.nii.gz"))
    return folder


def test_each_channel_is_whitened_on_its_own(tmp_path, rng):
    folder = write_subject(tmp_path / "1", rng)
    files = mrbrains.subject_files(folder)
    image, label = mrbrains.read_subject(files["image"], files["label"])
    assert image.shape == (10, 16, 14, 3) and image.dtype == np.float32 and label.dtype == np.int32
    for number, name in enumerate(mrbrains.CHANNELS):
        raw = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{name}.nii.gz"))).astype(np.float64)
        np.testing.assert_allclose(image[..., number], (raw - raw.mean()) / raw.std(), atol=1e-4)


def test_training_patches_are_class_balanced_and_predict_gives_the_volume(tmp_path, rng):
    folder = write_subject(tmp_path / "1", rng)
    examples = list(mrbrains.read_fn(("1", str(folder)), Mode.TRAIN, {"example_size": [4, 4, 4], "n_examples": 40}))
    assert len(examples) == 40
    assert examples[0]["features"]["x"].shape == (4, 4, 4, 3) and examples[0]["labels"]["y"].shape == (4, 4, 4)
    centres = np.bincount([e["labels"]["y"][2, 2, 2] for e in examples], minlength=4)
    assert centres.min() >= 4  # every class, drawn equally (10 each in expectation; flips move the centre voxel)
    evaluation = [list(mrbrains.read_fn(("1", str(folder)), Mode.EVAL, {"example_size": [4, 4, 4], "n_examples": 3}))
                  for _ in range(2)]
    np.testing.assert_array_equal(evaluation[0][1]["features"]["x"], evaluation[1][1]["features"]["x"])
    (whole,) = mrbrains.read_fn(("1", str(folder)), Mode.PREDICT, {})
    assert whole["features"]["x"].shape == (10, 16, 14, 3)


def test_bad_subjects_are_one_line_naming_the_file(tmp_path, rng):
    with pytest.raises(DataError, match="nowhere: no such subject folder"):
        mrbrains.subject_files(tmp_path / "nowhere")
    folder = write_subject(tmp_path / "1", rng)
    (folder / "T1_IR.nii.gz").unlink()
    with pytest.raises(DataError, match=r"1: no T1_IR.nii or T1_IR.nii.gz"):
        mrbrains.subject_files(folder)
    other = write_subject(tmp_path / "2", rng)
    sitk.WriteImage(sitk.Image([14, 16, 9], sitk.sitkInt16), str(other / "T2_FLAIR.nii.gz"))
    files = mrbrains.subject_files(other)
    with pytest.raises(DataError, match=r"T2_FLAIR.nii.gz: \(9, 16, 14\) voxels, but T1.nii.gz has \(10, 16, 14\)"):
        mrbrains.read_subject(files["image"], files["label"])
    labels = np.zeros((10, 16, 14), np.uint8)
    labels[0, 0, 0] = 7
    third = write_subject(tmp_path / "3", rng, labels=labels)
    files = mrbrains.subject_files(third)
    with pytest.raises(DataError, match=r"LabelsForTesting.nii.gz: label value\(s\) \[7\] outside 0-3"):
        mrbrains.read_subject(files["image"], files["label"])


def test_a_csv_of_subject_folders(tmp_path, rng):
    write_subject(tmp_path / "data" / "4", rng)
    (tmp_path / "val.csv").write_text(f"id,subj_folder\n4,{tmp_path / 'data' / '4'}\n")
    (case,) = mrbrains.read_cases(tmp_path / "val.csv")
    assert case["id"] == "4" and [p.split("/")[-1] for p in case["image"]] == [
        "T1.nii.gz", "T1_IR.nii.gz", "T2_FLAIR.nii.gz"] and case["label"].endswith("LabelsForTesting.nii.gz")
