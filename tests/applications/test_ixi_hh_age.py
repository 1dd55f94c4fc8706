"""End to end for age regression: synthetic IXI -> train -> deploy -> export -> serving agrees."""

import json
import re

import cv2
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from helpers import batch_norm_momenta, run_script
from serving_standin import assert_clients_answer_alike
from dltk2.datasets import ixi
from dltk2.inference import load_predictor
from dltk2.io.image import read_array
from dltk2.training import load_trained_model

TINY = ["--spacing_mm=8", "--example_size=16,16,16", "--n_examples=2", "--filters=4,8", "--strides=1,2",
        "--num_res_units=1", "--batch_size=4", "--num_train=8", "--steps_per_epoch=2", "--num_crops=2"]
LINE = re.compile(r"^id=(IXI\d{3}); pred=\d+\.\d\d yrs; true=\d+\.\d\d yrs; run time=\d+\.\d\d s;"
                  r" saliency=(\S+_saliency\.nii\.gz);$")


def test_train_deploy_export_age(tiny_ixi, tmp_path):
    model_path = tmp_path / "model"
    # The CPU preset first (its flags must all exist), then tiny sizes over it.
    run_script("applications/IXI_HH_age/train.py", "--flagfile=applications/IXI_HH_age/cpu_preset.flags",
               f"--model_path={model_path}", f"--data_csv={tiny_ixi}", "--max_steps=4", *TINY)
    assert batch_norm_momenta(load_trained_model(model_path, "last")) == {0.9}  # the preset's, not DLTK's 0.99
    deployed = run_script("applications/IXI_HH_age/deploy.py", f"--model_path={model_path}", "--num_crops=2")
    lines = deployed.stdout.strip().splitlines()
    assert lines[-1].startswith("wrote the plot, metrics.json and report.html to ")
    lines = lines[:-1]
    assert all(LINE.match(line) for line in lines[:-1]) and len(lines) == 5, lines
    predictions = pd.read_csv(model_path / "predictions_age.csv")
    error = float(re.fullmatch(r"mean absolute err=(\d+\.\d{3}) yrs", lines[-1]).group(1))
    assert error == pytest.approx(np.mean(np.abs(predictions["pred_yrs"] - predictions["true_yrs"])), abs=1e-3)
    metrics = json.loads((model_path / "evaluation" / "metrics.json").read_text())
    assert metrics["mean_absolute_error_yrs"] == pytest.approx(error, abs=1e-3) and metrics["subjects"] == 4
    assert cv2.imread(str(model_path / "evaluation" / "predicted_vs_true.png")) is not None
    page = (model_path / "evaluation" / "report.html").read_text()
    assert "data:image/png;base64," in page and "Where the model looked" in page
    # The output bias starts at the training mean, so even 4 steps predict adult ages.
    assert predictions["pred_yrs"].between(5, 110).all()

    serving = tf.saved_model.load(str(model_path / "export" / "1")).signatures["serving_default"]
    subjects = ixi.load_subjects(tiny_ixi, "age", 8.0).iloc[8:]
    for row, subject in zip(predictions.itertuples(), subjects.itertuples()):
        volume, geometry = read_array(subject.image)
        request = {"image": volume, "spacing": np.asarray(geometry.spacing), "direction": np.asarray(geometry.direction)}
        served = serving(**{name: tf.constant(value) for name, value in request.items()})
        assert float(served["prediction"]) == pytest.approx(row.pred_yrs, abs=1e-3)
        if row.Index == 0:  # as a client of TF Serving asks, by REST and by gRPC
            assert_clients_answer_alike(model_path / "export" / "1", "ixi_age", request)
        rebuilt = load_predictor(model_path).predict(**request)  # from the model folder alone
        assert float(rebuilt["prediction"]) == pytest.approx(row.pred_yrs, abs=1e-3)
        # --explain's default (4): every subject's map, on its scan's own grid and geometry.
        subject_id, saliency_file = LINE.match(lines[row.Index]).groups()
        assert subject_id == subject.id and f"{subject_id}_saliency.nii.gz" in page
        saliency, saliency_geometry = read_array(saliency_file)
        assert saliency.shape == volume.shape and 0 <= saliency.min() <= saliency.max() <= 1 + 1e-6
        assert np.allclose(saliency_geometry.spacing, geometry.spacing)
        assert np.allclose(saliency_geometry.direction, geometry.direction)

    # Test-time mirroring at deploy: each crop also predicted flipped left-right, as the predictor does it.
    mirrored_csv = tmp_path / "mirrored.csv"
    run_script("applications/IXI_HH_age/deploy.py", f"--model_path={model_path}", "--num_crops=2",
               "--mirror_axes=2", f"--output_csv={mirrored_csv}", f"--output_dir={tmp_path / 'mirrored'}",
               "--explain=0")
    mirrored = pd.read_csv(mirrored_csv)
    predictor = load_predictor(model_path, num_crops=2, mirror_axes=[2])
    for row, subject in zip(mirrored.itertuples(), subjects.itertuples()):
        volume, geometry = read_array(subject.image)
        expected = predictor.predict(image=volume, spacing=np.asarray(geometry.spacing),
                                     direction=np.asarray(geometry.direction))["prediction"]
        assert row.pred_yrs == pytest.approx(float(expected), abs=1e-3)
    assert not np.allclose(mirrored["pred_yrs"], predictions["pred_yrs"], atol=1e-6)  # the flips were predicted
