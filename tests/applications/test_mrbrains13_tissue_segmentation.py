"""The MRBrainS13 brain tissue application, run as a user runs it, on tiny synthetic subjects."""

import re

import cv2
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from dltk2.datasets import mrbrains
from dltk2.export import call_signature, existing_versions
from dltk2.model_folder import ModelFolder

import make_synthetic_mrbrains
from helpers import run_script

APP = "applications/MRBrainS13_tissue_segmentation"


@pytest.fixture(scope="module")
def subjects(tmp_path_factory):
    # 4 x 4 x 6 mm: 46x58x31 voxels, 6 subjects (5 train, 1 validates).
    return make_synthetic_mrbrains.make_dataset(tmp_path_factory.mktemp("mrbrains"), num_subjects=6, seed=1,
                                                spacing=(4.0, 4.0, 6.0), num_val=1)


@pytest.mark.slow
def test_end_to_end_train_deploy_and_serve(subjects, tmp_path):
    train_csv, val_csv = subjects
    model_path = tmp_path / "model"
    trained = run_script(f"{APP}/train.py", "-p", str(model_path), f"--flagfile={APP}/cpu_preset.flags",
                         f"--train_csv={train_csv}", f"--val_csv={val_csv}", "--example_size=8,24,24",
                         "--filters=8,16,32", "--strides=1,2,2", "--max_steps=70", "--steps_per_epoch=70")
    assert "exported" in trained.stdout and existing_versions(model_path / "export") == [1]
    config = ModelFolder(model_path).read_config()
    assert config.channels == 3 and config.intensity == {"method": "whitening"}
    assert config.class_names == ["background", "csf", "grey_matter", "white_matter"]

    output = tmp_path / "predictions"
    deployed = run_script(f"{APP}/deploy.py", "-p", str(model_path), f"--csv={val_csv}", "-e", str(output))
    lines = re.findall(r"^Id=(\w+); Dice=([\d.]+); time=[\d.]+ secs; output_path=(\S+);$", deployed.stdout,
                       re.MULTILINE)
    assert [line[0] for line in lines] == ["6"]
    metrics = pd.read_csv(output / "metrics.csv")
    assert {f"{kind}/{tissue}" for kind in ("dice", "hd95_mm") for tissue in mrbrains.TISSUES.values()} <= set(metrics)
    # 70 steps from random weights already separate the tissues (grey matter, the largest, first).
    assert metrics["dice/grey_matter"][0] > 0.5 and metrics["mean_dice"][0] > 0.35
    assert cv2.imread(str(output / "overlays" / "6.png")) is not None
    assert "MRBrainS13_tissue_segmentation" in (output / "report.html").read_text()

    # The served graph takes the raw sequences as one (z, y, x, 3) image and answers what deploy wrote.
    (case,) = mrbrains.read_cases(val_csv)
    channels = [sitk.ReadImage(path) for path in case["image"]]
    request = {"image": np.stack([sitk.GetArrayFromImage(c).astype(np.float32) for c in channels], axis=-1),
               "spacing": np.asarray(channels[0].GetSpacing(), np.float64),
               "direction": np.asarray(channels[0].GetDirection(), np.float64)}
    written = sitk.ReadImage(lines[0][2])
    assert written.GetSize() == channels[0].GetSize()
    served = call_signature(model_path / "export" / "1", request)
    np.testing.assert_array_equal(served["labels"], sitk.GetArrayFromImage(written))  # deploy used load_predictor


def test_a_subject_folder_without_a_sequence_is_one_line_before_training(subjects, tmp_path):
    train_csv, _ = subjects
    broken = tmp_path / "train.csv"
    folder = pd.read_csv(train_csv)["subj_folder"][0]
    broken.write_text(f"id,subj_folder\n1,{folder}\n9,{tmp_path / 'missing'}\n")
    with pytest.raises(AssertionError, match=r"missing: no such subject folder") as refused:
        run_script(f"{APP}/train.py", "-p", str(tmp_path / "model"), f"--data_csv={broken}", "--max_steps=1")
    assert not (tmp_path / "model").exists() and "Traceback" not in str(refused.value)
