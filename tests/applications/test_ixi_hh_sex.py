"""End to end: synthetic IXI -> train (killed and resumed) -> deploy -> export -> serving agrees."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import highdicom as hd
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import tensorflow as tf

import make_dicom_series
from helpers import REPO, assert_valid_dicom, run_script
from serving_standin import assert_clients_answer_alike
from dltk2.datasets import ixi
from dltk2.io.image import read_array, read_image, read_image_information
from dltk2.io.dicom_objects import FEMALE, MALE
from dltk2.io.orientation import axis_codes, reorient_image
from dltk2.export import call_signature, read_warmup_requests
from dltk2.inference import load_predictor

TINY = ["--spacing_mm=8", "--example_size=16,16,16", "--n_examples=2", "--filters=4,8", "--strides=1,2",
        "--num_res_units=1", "--batch_size=4", "--num_train=8", "--steps_per_epoch=2", "--num_crops=3"]
LINE = re.compile(r"^id=IXI\d{3}; pred=[01]; true=[01]; run time=\d+\.\d\d s; saliency=(\S+_saliency\.nii\.gz);$")


def test_train_kill_resume_deploy_export(tiny_ixi, tmp_path):
    model_path = tmp_path / "model"
    command = [sys.executable, str(REPO / "applications/IXI_HH_sex/train.py"), f"--model_path={model_path}",
               f"--data_csv={tiny_ixi}", "--max_steps=400", "--export=false", "--cache_volumes", *TINY]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    state = model_path / "training_state.json"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if state.exists() and json.loads(state.read_text())["steps_done"] >= 4:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = json.loads(state.read_text())["steps_done"]
    assert 4 <= killed_at < 400

    result = run_script("applications/IXI_HH_sex/train.py", f"--model_path={model_path}",
                        f"--data_csv={tiny_ixi}", f"--max_steps={killed_at + 4}", "--cache_volumes", *TINY)
    assert f"resuming {model_path} at step {killed_at} of {killed_at + 4}" in result.stdout
    assert json.loads(state.read_text())["steps_done"] == killed_at + 4
    assert (model_path / "checkpoints" / "best.keras").exists()
    assert (model_path / "model.keras").exists()
    assert list((model_path / "logs").rglob("events.out.tfevents.*"))

    deployed = run_script("applications/IXI_HH_sex/deploy.py", f"--model_path={model_path}", "--num_crops=3")
    output = deployed.stdout.strip().splitlines()
    lines = output[:output.index(next(line for line in output if line.startswith("accuracy="))) + 1]
    assert len(lines) == 5  # 4 validation subjects and the accuracy, as DLTK printed them; then the report
    assert all(LINE.match(line) for line in lines[:-1]), lines
    predictions = pd.read_csv(model_path / "predictions_sex.csv")
    accuracy = float(re.fullmatch(r"accuracy=(\d\.\d{3})", lines[-1]).group(1))
    assert accuracy == pytest.approx(np.mean(predictions["pred"] == predictions["true"]), abs=1e-3)
    evaluation = model_path / "evaluation"
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(accuracy, abs=1e-3) and metrics["count"] == 4
    page = (evaluation / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 5 and "Run configuration" in page and "IXI_HH_sex" in page
    assert "Where the model looked" in page

    # The SavedModel in TF Serving's layout answers as deploy did (seed 0 = serving_default).
    saved_model = model_path / "export" / "1"
    assert (saved_model / "saved_model.pb").exists()
    loaded = tf.saved_model.load(str(saved_model))
    serving = loaded.signatures["serving_default"]
    assert set(serving.structured_input_signature[1]) == {"image", "spacing", "direction"}
    subjects = ixi.load_subjects(tiny_ixi, "sex", 8.0)
    assert json.loads((model_path / "predictor.json").read_text())["config"]["orientation"] == \
        axis_codes(read_image_information(subjects["image"].iloc[0]).geometry.direction)
    for row, subject in zip(predictions.itertuples(), subjects.iloc[8:].itertuples()):
        volume, geometry = read_array(subject.image)
        request = {"image": volume, "spacing": np.asarray(geometry.spacing), "direction": np.asarray(geometry.direction)}
        outputs = serving(**{name: tf.constant(value) for name, value in request.items()})
        if row.Index == 0:  # as a client of TF Serving asks, by REST and by gRPC
            assert_clients_answer_alike(saved_model, "ixi_sex", request)
            # Deploy's map is the SavedModel's explain, on the scan's grid and geometry.
            saliency, saliency_geometry = read_array(LINE.match(lines[0]).group(1))
            explained = loaded.signatures["explain"](**{name: tf.constant(value) for name, value in request.items()})
            np.testing.assert_allclose(saliency, explained["saliency"].numpy(), atol=1e-5)
            assert int(explained["class_id"]) == row.pred and saliency.shape == volume.shape
            assert np.allclose(saliency_geometry.spacing, geometry.spacing)
            # The same head presented sagittally, feet first: the same answer.
            turned = reorient_image(read_image(subject.image), "ASR")
            answer = call_signature(saved_model, {"image": sitk.GetArrayFromImage(turned).astype(np.float32),
                                                  "spacing": np.asarray(turned.GetSpacing()),
                                                  "direction": np.asarray(turned.GetDirection())})
            np.testing.assert_allclose(answer["probabilities"], outputs["probabilities"].numpy(), atol=1e-6)
        assert int(outputs["class_id"]) == row.pred
        np.testing.assert_allclose(outputs["probabilities"].numpy(), [row.prob_male, row.prob_female], atol=2e-5)
        rebuilt = load_predictor(model_path).predict(**request)  # from the model folder alone
        assert int(rebuilt["class_id"]) == row.pred
        np.testing.assert_allclose(rebuilt["probabilities"], [row.prob_male, row.prob_female], atol=2e-5)
    # New scans: the first validation subject as an MR DICOM series (files in random order) and as a
    # NIfTI turned sagittal; each predicted as the CSV's subject was, and the DICOM one reported.
    first = subjects.iloc[8]
    make_dicom_series.write_series(read_image(first.image), tmp_path / "scans" / "series", modality="MR",
                                   patient_id="IXI_NEW")
    reoriented = tmp_path / "scans" / "turned.nii.gz"
    sitk.WriteImage(reorient_image(read_image(first.image), "ASR"), str(reoriented))
    scanned = run_script("applications/IXI_HH_sex/deploy.py", f"--model_path={model_path}",
                         f"--images={tmp_path / 'scans' / 'series'},{reoriented}", f"--sr_dir={tmp_path / 'reports'}",
                         f"--output_csv={tmp_path / 'scans.csv'}", "--num_crops=3", "--explain=0")
    scans = pd.read_csv(tmp_path / "scans.csv", keep_default_na=False)
    assert list(scans["id"]) == ["series", "turned"] and "accuracy" not in scanned.stdout
    for scan in scans.itertuples():
        assert scan.pred == predictions["pred"].iloc[0]
        assert scan.prob_female == pytest.approx(predictions["prob_female"].iloc[0], abs=2e-5)
    report_path = tmp_path / "reports" / "series_sr.dcm"
    assert scans["report"].tolist() == [str(report_path), ""] and f"report={report_path};" in scanned.stdout
    assert_valid_dicom(report_path)
    report = hd.sr.srread(report_path)
    group = report.content.get_image_measurement_groups()[0]
    assert group.get_qualitative_evaluations()[0].value == (FEMALE if scans["pred"].iloc[0] == 1 else MALE)
    assert group.get_measurements()[0].value == pytest.approx(max(scans["prob_male"].iloc[0],
                                                                   scans["prob_female"].iloc[0]), abs=1e-5)
    assert report.PatientID == "IXI_NEW" and len(group.source_images) == read_image(first.image).GetSize()[2]

    requests = read_warmup_requests(saved_model)
    assert len(requests) == 1 and requests[0].model_spec.signature_name == "serving_default"

    # A second export gets the next version; the first is left alone.
    run_script("applications/IXI_HH_sex/train.py", f"--model_path={model_path}", f"--data_csv={tiny_ixi}",
               f"--max_steps={killed_at + 4}", *TINY)
    assert (model_path / "export" / "2" / "saved_model.pb").exists()


def test_restart_starts_over(tiny_ixi, tmp_path):
    model_path = tmp_path / "model"
    args = [f"--model_path={model_path}", f"--data_csv={tiny_ixi}", "--max_steps=2", "--export=false",
            "--run_validation=false", *TINY]
    run_script("applications/IXI_HH_sex/train.py", *args)
    (model_path / "marker").write_text("old run")
    result = run_script("applications/IXI_HH_sex/train.py", *args, "--restart")
    assert not (model_path / "marker").exists()
    assert "resuming" not in result.stdout


def _expect_one_line_error(script, *args, pattern):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True, text=True,
                            env=environment, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert re.search(pattern, last), last
    return last


def test_csv_without_the_sex_column_is_a_one_line_error(tiny_ixi, tmp_path):
    table = pd.read_csv(tiny_ixi).drop(columns=["SEX_ID (1=m, 2=f)"])
    table.to_csv(tmp_path / "demographic_HH.csv", index=False)
    _expect_one_line_error("applications/IXI_HH_sex/train.py", f"--model_path={tmp_path / 'm'}",
                           f"--data_csv={tmp_path / 'demographic_HH.csv'}", f"--data_dir={tiny_ixi.parent}", *TINY,
                           pattern=r"^error: .*demographic_HH\.csv: lacks column\(s\) 'SEX_ID \(1=m, 2=f\)'")


@pytest.mark.parametrize("damage", ["truncate", "nan", "delete"])
def test_bad_image_stops_training_with_the_file_named(tiny_ixi, tmp_path, damage):
    data = tmp_path / "data"
    shutil.copytree(tiny_ixi.parent, data)
    victim = data / "8mm" / "IXI014" / "T1_8mm.nii.gz"
    if damage == "truncate":
        victim.write_bytes(victim.read_bytes()[:300])
        pattern = r"IXI014/T1_8mm\.nii\.gz: truncated or corrupt"
    elif damage == "nan":
        from dltk2.io.image import write_image
        volume, geometry = read_array(victim)
        volume[3, 4, 5] = np.nan
        write_image(volume, victim, geometry)
        pattern = r"IXI014/T1_8mm\.nii\.gz: 1 of \d+ voxels are NaN"
    else:  # found before anything is built or written
        victim.unlink()
        _expect_one_line_error("applications/IXI_HH_sex/train.py", f"--model_path={tmp_path / 'm'}",
                               f"--data_csv={data / 'demographic_HH.csv'}", "--max_steps=50", "--export=false", *TINY,
                               pattern=r"^error: .*IXI014/T1_8mm\.nii\.gz: no such file \(1 of 12 subjects")
        assert not (tmp_path / "m").exists()
        return
    _expect_one_line_error("applications/IXI_HH_sex/train.py", f"--model_path={tmp_path / 'm'}",
                           f"--data_csv={data / 'demographic_HH.csv'}", "--max_steps=50", "--export=false", *TINY,
                           pattern=r"^error: reading \['IXI014', .*" + pattern)


def test_folds_by_subject_and_their_cross_validated_metrics(tiny_ixi, tmp_path):
    """Two folds, one model folder each: every subject validated once, by the model that never saw it."""
    folders = [tmp_path / f"fold{fold}" for fold in (0, 1)]
    for fold, folder in enumerate(folders):
        run_script("applications/IXI_HH_sex/train.py", f"--model_path={folder}", f"--data_csv={tiny_ixi}",
                   "--max_steps=2", f"--fold={fold}", "--num_folds=2", "--export=false", *TINY)
    subjects = ixi.load_subjects(tiny_ixi, "sex", 8.0)
    splits = [ixi.split_of_run(subjects, "sex", json.loads((f / "run_config.json").read_text())["data"])
              for f in folders]
    for training, validation in splits:
        assert not set(training["id"]) & set(validation["id"]) and len(training) + len(validation) == 12
        assert set(validation["label"]) == {"0", "1"}  # stratified by sex
    result = run_script("applications/IXI_HH_sex/cross_validate.py", f"--model_paths={folders[1]},{folders[0]}",
                        f"--output_csv={tmp_path / 'oof.csv'}")
    table = pd.read_csv(tmp_path / "oof.csv", dtype={"id": str})
    assert sorted(table["id"]) == sorted(subjects["id"]) and table["id"].is_unique
    for fold, (_, validation) in enumerate(splits):
        assert set(table.loc[table["fold"] == fold, "id"]) == set(validation["id"])
    assert "roc_auc" in result.stdout and "accuracy" in result.stdout and "fold_mean" in result.stdout
    # The folds as one served model: the mean of their probabilities, with a single model's signature.
    exported = run_script("scripts/export_ensemble.py", f"--model_paths={folders[0]},{folders[1]}",
                          f"--output_path={tmp_path / 'ensemble'}")
    assert "exported the ensemble of 2 folds" in exported.stdout
    volume, _ = read_array(subjects["image"].iloc[0])
    ensemble = call_signature(tmp_path / "ensemble" / "export" / "1", {"image": volume})
    folds = [load_predictor(folder).predict(image=volume)["probabilities"] for folder in folders]
    np.testing.assert_allclose(ensemble["probabilities"], np.mean(folds, axis=0), atol=1e-5)

    with pytest.raises(AssertionError) as failed:  # the same fold twice: one line, no traceback
        run_script("applications/IXI_HH_sex/cross_validate.py", f"--model_paths={folders[0]},{folders[0]}")
    assert "not the folds 0..k-1 of one cross-validation" in str(failed.value)
    assert "Traceback" not in str(failed.value)
