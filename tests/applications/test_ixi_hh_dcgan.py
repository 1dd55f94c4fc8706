"""The IXI 3D DCGAN application, run as a user runs it, on the tiny synthetic IXI set (12 subjects, 8 mm)."""

import json
import re

import cv2
import numpy as np
import pytest
import SimpleITK as sitk

from dltk2.export import call_signature, existing_versions

from helpers import run_script

APP = "applications/IXI_HH_DCGAN"


@pytest.mark.slow
def test_end_to_end_train_sample_and_check(tiny_ixi, tmp_path):
    model_path = tmp_path / "model"
    trained = run_script(f"{APP}/train.py", "-p", str(model_path), f"--flagfile={APP}/cpu_preset.flags",
                         f"--data_csv={tiny_ixi}", "--num_train=9", "--batch_size=8", "--max_steps=60",
                         "--steps_per_epoch=30")
    assert "exported" in trained.stdout and existing_versions(model_path / "export") == [1]
    assert re.search(r"epoch 2/2 \(step 60/60, .*\): d_loss=[\d.]+, d_real=[\d.]+, g_loss=[\d.]+", trained.stdout)

    output = tmp_path / "gan"
    deployed = run_script(f"{APP}/deploy.py", "-p", str(model_path), f"--csv={tiny_ixi}", "-e", str(output),
                          "--num_samples=8", "--seed=3")
    assert re.search(r"^8 samples: nearest training volume at [\d.]+ \(median RMS; held-out real volumes [\d.]+\), "
                     r"\d+ closer than any held-out volume; intensity histogram distance [\d.]+", deployed.stdout,
                     re.MULTILINE)
    checks = json.loads((output / "checks.json").read_text())
    assert checks["samples_closer_than_any_held_out"] == 0  # 60 steps make blurs, not copies
    for name in ("samples.png", "real.png", "panels.png"):
        assert cv2.imread(str(output / name)) is not None, name
    written = [sitk.GetArrayFromImage(sitk.ReadImage(str(output / "samples" / f"sample_{k:03d}.nii.gz")))
               for k in range(8)]
    assert written[0].shape == (16, 24, 16) and written[0].min() >= -1 and written[0].max() <= 1
    # A TF Serving client asking for 8 samples with seed (3, 0) gets the ones deploy wrote.
    served = call_signature(model_path / "export" / "1", {"count": np.int32(8), "seed": np.array([3, 0], np.int64)},
                            "sample")
    np.testing.assert_allclose(served["images"], np.stack(written), atol=1e-5)

    # A box the generator's doublings do not reach is one line before anything is built.
    with pytest.raises(AssertionError, match=r"output size \[12, 24, 16\] must be divisible by 2 \*\* 3") as refused:
        run_script(f"{APP}/train.py", "-p", str(tmp_path / "refused"), f"--data_csv={tiny_ixi}", "--num_train=9",
                   "--example_size=12,24,16", "--max_steps=1")
    assert not (tmp_path / "refused").exists() and "Traceback" not in str(refused.value)
