"""The IXI super-resolution application, run as a user runs it, on tiny synthetic subjects."""

import re

import cv2
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from dltk2.datasets import ixi
from dltk2.datasets.super_resolution import downsample, whole_blocks
from dltk2.export import call_signature, existing_versions

import make_synthetic_ixi
from helpers import run_script

APP = "applications/IXI_HH_superresolution"


@pytest.fixture(scope="module")
def subjects(tmp_path_factory):
    # 10 subjects at 4 mm (47x58x49 voxels; 11x14x12 once averaged down x4).
    return make_synthetic_ixi.make_dataset(tmp_path_factory.mktemp("ixi_sr"), num_subjects=10, seed=4, spacings=[4.0])


@pytest.mark.slow
def test_end_to_end_the_network_beats_linear_and_cubic_upsampling(subjects, tmp_path):
    model_path = tmp_path / "model"
    trained = run_script(f"{APP}/train.py", "-p", str(model_path), f"--flagfile={APP}/cpu_preset.flags",
                         f"--data_csv={subjects}", "--spacing_mm=4", "--num_train=7", "--example_size=16,16,16",
                         "--filters=8,8", "--max_steps=150", "--steps_per_epoch=75")
    assert "exported" in trained.stdout and existing_versions(model_path / "export") == [1]

    output = tmp_path / "sr"
    deployed = run_script(f"{APP}/deploy.py", "-p", str(model_path), f"--csv={subjects}", "-e", str(output))
    lines = re.findall(r"^Id=(IXI\d+); PSNR=([\d.]+) dB \(linear ([\d.]+), cubic ([\d.]+)\); SSIM=([\d.]+) "
                       r"\(linear ([\d.]+), cubic ([\d.]+)\); time=[\d.]+ secs; output_path=(\S+);$",
                       deployed.stdout, re.MULTILINE)
    held_out = pd.read_csv(subjects)["IXI_ID"].tolist()[7:]
    assert [line[0] for line in lines] == held_out
    for _, network, linear, cubic, *_ in lines:
        assert float(network) > float(cubic) > float(linear)  # 150 steps sharpen past cubic
    metrics = pd.read_csv(output / "metrics.csv")
    assert {"psnr_db/network", "ssim/cubic", "seconds"} <= set(metrics.columns)
    assert cv2.imread(str(output / "panels" / f"{held_out[0]}.png")) is not None
    assert "IXI_HH_superresolution" in (output / "report.html").read_text()

    # The served graph takes the low-resolution volume and answers what deploy wrote, on the original grid.
    original = sitk.ReadImage(str(ixi.t1_path(subjects.parent, held_out[0], 4.0)))
    high = whole_blocks(sitk.GetArrayFromImage(original).astype(np.float32), 4)
    written = sitk.ReadImage(lines[0][-1])
    assert written.GetSize() == high.shape[::-1] and written.GetSpacing() == original.GetSpacing()
    served = call_signature(model_path / "export" / "1", {"image": downsample(high, 4),
                                                          "spacing": np.array([16.0, 16.0, 16.0])})
    np.testing.assert_allclose(served["image"], sitk.GetArrayFromImage(written), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(served["spacing"], [4.0, 4.0, 4.0])

    # Bad settings are one line before anything is built.
    with pytest.raises(AssertionError, match=r"example_size \[30, 32, 32\] must be whole multiples of the factors") as refused:
        run_script(f"{APP}/train.py", "-p", str(tmp_path / "refused"), f"--data_csv={subjects}", "--spacing_mm=4",
                   "--num_train=7", "--example_size=30,32,32", "--max_steps=1")
    assert not (tmp_path / "refused").exists() and "Traceback" not in str(refused.value)
