"""The IXI representation-learning application, run as a user runs it, on tiny synthetic subjects."""

import json
import re

import cv2
import numpy as np
import pandas as pd
import pytest

from dltk2.datasets import ixi_sequences
from dltk2.export import call_signature, existing_versions
from dltk2.io.image import read_voxels

import make_synthetic_ixi
from helpers import run_script

APP = "applications/IXI_HH_representation_learning_cae"


@pytest.fixture(scope="module")
def subjects(tmp_path_factory):
    # 12 subjects' T1, T2 and PD at 8 mm (24x29x25 voxels; a 16x24x16 box).
    return make_synthetic_ixi.make_dataset(tmp_path_factory.mktemp("ixi_cae"), num_subjects=12, seed=5,
                                           spacings=[8.0], sequences=["T1", "T2", "PD"])


@pytest.mark.slow
def test_end_to_end_train_deploy_probe_and_encode(subjects, tmp_path):
    model_path = tmp_path / "model"
    trained = run_script(f"{APP}/train.py", "-p", str(model_path), f"--flagfile={APP}/cpu_preset.flags",
                         f"--data_csv={subjects}", "--spacing_mm=8", "--num_train=9", "--example_size=16,24,16",
                         "--max_steps=80", "--steps_per_epoch=40", "--batch_size=4")
    assert "exported" in trained.stdout and existing_versions(model_path / "export") == [1]

    output = tmp_path / "cae"
    deployed = run_script(f"{APP}/deploy.py", "-p", str(model_path), f"--csv={subjects}", "-e", str(output))
    lines = re.findall(r"^Id=(IXI\d+); MSE=([\d.]+) \(T1 [\d.]+, T2 [\d.]+, PD [\d.]+\); time=[\d.]+ secs;$",
                       deployed.stdout, re.MULTILINE)
    table = pd.read_csv(subjects)
    assert [line[0] for line in lines] == table["IXI_ID"].tolist()[9:]
    # 80 steps already rebuild the boxes better than their own mean would (an MSE of their variance, about 1.4).
    assert all(float(mse) < 0.9 for _, mse in lines)
    probe = json.loads((output / "probe.json").read_text())
    assert set(probe) == {"sex_accuracy", "sex_chance", "age_mae", "age_chance_mae"}
    assert re.search(r"^linear probe on the codes \(9 training, 3 held-out subjects\): sex accuracy", deployed.stdout,
                     re.MULTILINE)
    codes = pd.read_csv(output / "codes.csv").set_index("id")
    assert len(codes) == 12 and codes.shape[1] == 32
    assert cv2.imread(str(output / "panels" / f"{lines[0][0]}.png")) is not None

    # A TF Serving client's encode answers the code deploy wrote.
    row = ixi_sequences.load_subjects(subjects, 8.0).iloc[10]
    image = np.stack([read_voxels(row[s]) for s in ixi_sequences.SEQUENCES], axis=-1)
    served = call_signature(model_path / "export" / "1", {"image": image}, "encode")
    np.testing.assert_allclose(served["code"], codes.loc[row["id"]].to_numpy(), rtol=1e-4, atol=1e-4)

    # Bad settings are one line before anything is built.
    with pytest.raises(AssertionError, match=r"input size \[18, 24, 16\] must be divisible") as refused:
        run_script(f"{APP}/train.py", "-p", str(tmp_path / "refused"), f"--data_csv={subjects}", "--spacing_mm=8",
                   "--num_train=9", "--example_size=18,24,16", "--max_steps=1")
    assert not (tmp_path / "refused").exists() and "Traceback" not in str(refused.value)
