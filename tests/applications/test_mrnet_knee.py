"""The knee MRI application end to end, as a user runs it, on tiny synthetic exams."""

import json
import shutil

import cv2
import highdicom as hd
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

import make_dicom_series
import make_synthetic_mrnet as synthetic
from dltk2.export import call_signature, existing_versions
from dltk2.inference import load_predictor
from dltk2.io.dicom_objects import MRNET_CONCEPTS
from dltk2.io.image import read_array
from helpers import assert_valid_dicom, promise_huge_series, run_script
from serving_standin import assert_clients_answer_alike

APP = "applications/mrnet_knee"


def test_exams_to_progressive_training_to_deploy_and_serving(tmp_path):
    data = synthetic.make_dataset(tmp_path / "mrnet", num_exams=16, num_valid=6, seed=3, planes=("sagittal", "coronal"),
                                  min_slices=6, max_slices=9, size=32, abnormal_fraction=0.7)
    model = tmp_path / "model"
    args = [f"--data_dir={data}", f"--model_path={model}", "--stage_sizes=16,24", "--stage_epochs=1", "--depth=6",
            "--steps_per_epoch=2", "--batch_size=2", "--validation_fraction=0.3", "--cache"]
    trained = run_script(f"{APP}/train.py", *args)
    assert "oversampled to" in trained.stdout and "best validation AUC" in trained.stdout
    splits = pd.read_csv(model / "splits.csv", dtype={"id": str})
    training, validation = splits[splits["split"] == "train"], splits[splits["split"] == "validation"]
    assert not set(training["id"]) & set(validation["id"])
    assert training["label"].value_counts().nunique() == 1 and validation["copy"].eq(0).all()
    for stage in ("stage1_6x16x16", "stage2_6x24x24"):  # fine_tune's frozen part: tests/test_progressive_training.py
        assert json.loads((model / stage / "unfrozen" / "training_state.json").read_text())["steps_done"] == 2
    config = json.loads((model / "run_config.json").read_text())
    assert config["example_size"][0] == 6 and config["example_size"][1] in (16, 24)
    assert existing_versions(model / "export") == [1]

    deployed = run_script(f"{APP}/deploy.py", f"--model_path={model}", f"--data_dir={data}")
    for text in ("accuracy=", "roc_auc=", "sensitivity=", "specificity=", "precision", "confusion matrix"):
        assert text in deployed.stdout
    evaluation = model / "evaluation"
    for name in ("confusion_matrix.png", "roc_curve.png", "training_curves.png"):
        assert cv2.imread(str(evaluation / name)) is not None, name
    predictions = pd.read_csv(evaluation / "predictions.csv", dtype={"id": str})
    assert list(predictions["id"]) == [f"{i:04d}" for i in range(16, 22)]  # MRNet's valid split, once each
    assert np.sum(json.loads((evaluation / "metrics.json").read_text())["confusion_matrix"]) == 6
    # --explain's default: the first 4 exams predicted abnormal, each map on its series' grid, in the report.
    explained = predictions.loc[predictions["predicted"] != "normal", "id"].head(4).tolist()
    assert sorted(path.name for path in (evaluation / "saliency").glob("*_saliency.nii.gz")) == \
        sorted(f"{exam}_saliency.nii.gz" for exam in explained)
    page = (evaluation / "report.html").read_text()
    assert ("Where the model looked" in page) == bool(explained)
    for exam in explained:
        saliency = read_array(evaluation / "saliency" / f"{exam}_saliency.nii.gz")[0]
        assert saliency.shape == np.load(data / "valid" / "sagittal" / f"{exam}.npy").shape
        assert f"{exam}_saliency.nii.gz" in page and 0 <= saliency.min() <= saliency.max() <= 1 + 1e-6

    # The SavedModel's serving_default, given the raw uint8 series, agrees with deploy.
    row = predictions.iloc[0]
    series = np.load(data / "valid" / "sagittal" / f"{row['id']}.npy")
    served = assert_clients_answer_alike(model / "export" / "1", "mrnet", {"series": series.astype(np.float32)})
    np.testing.assert_allclose(served["probabilities"], [row["probability_normal"], row["probability_abnormal"]],
                               rtol=1e-4, atol=1e-5)
    rebuilt = load_predictor(model).predict(series=series)  # from the model folder alone
    np.testing.assert_allclose(rebuilt["probabilities"], [row["probability_normal"], row["probability_abnormal"]],
                               rtol=1e-4, atol=1e-5)

    # That series as a scanner's DICOM MR series, files in random order: the same answer, and a report.
    image = sitk.GetImageFromArray(series.astype(np.float32))
    image.SetSpacing((0.6, 0.6, 3.5))
    make_dicom_series.write_series(image, tmp_path / "dicom" / "knee", modality="MR", patient_id="KNEE01")
    classified = run_script(f"{APP}/deploy.py", f"--model_path={model}", f"--images={tmp_path / 'dicom' / 'knee'}",
                            f"--sr_dir={tmp_path / 'reports'}", "--explain=0")  # maps: asserted above
    probability = max(row["probability_normal"], row["probability_abnormal"])
    assert f"knee: {row['predicted']} (p={probability:.3f}); report=" in classified.stdout
    (report_path,) = (tmp_path / "reports").iterdir()
    assert_valid_dicom(report_path)
    report = hd.sr.srread(report_path)
    group = report.content.get_image_measurement_groups()[0]
    assert group.finding_type == MRNET_CONCEPTS["abnormal"][1][row["predicted"]]
    assert group.get_measurements()[0].value == pytest.approx(probability, abs=1e-4)
    assert report.PatientID == "KNEE01" and len(group.source_images) == len(series)

    # Planes combined: a second model folder standing for the coronal plane.
    coronal = tmp_path / "coronal"
    shutil.copytree(model, coronal, ignore=shutil.ignore_patterns("evaluation"))
    config["data"]["plane"] = "coronal"
    (coronal / "run_config.json").write_text(json.dumps(config))
    splits.assign(path=splits["path"].str.replace("sagittal", "coronal")).to_csv(coronal / "splits.csv", index=False)
    combined = run_script(f"{APP}/deploy.py", f"--model_paths={model},{coronal}", f"--data_dir={data}",
                          f"--output_dir={tmp_path / 'planes'}", "--explain=0")
    assert "sagittal+coronal combined, valid set: 6 cases" in combined.stdout
    table = pd.read_csv(tmp_path / "planes" / "combined" / "predictions.csv")
    assert len(table) == 6 and table["probability_abnormal"].between(0, 1).all()
    assert (tmp_path / "planes" / "coronal" / "metrics.json").exists()


def test_folds_by_exam_cross_validated_and_exported_as_one_mirrored_ensemble(tmp_path):
    """Two folds: each exam validated once, by the fold that never trained on it; then one served model."""
    data = synthetic.make_dataset(tmp_path / "mrnet", num_exams=10, num_valid=2, seed=5, min_slices=4, max_slices=5,
                                  size=16, abnormal_fraction=0.5)
    folders = [tmp_path / f"fold{fold}" for fold in (0, 1)]
    for fold, folder in enumerate(folders):
        run_script(f"{APP}/train.py", f"--data_dir={data}", f"--model_path={folder}", "--stage_sizes=16",
                   "--stage_epochs=1", "--depth=4", "--steps_per_epoch=1", "--batch_size=2", f"--fold={fold}",
                   "--num_folds=2")  # exported: MRNet's best checkpoint is per stage, model.keras the one to serve
    held_out = [pd.read_csv(f / "splits.csv", dtype={"id": str}) for f in folders]
    exams = pd.read_csv(data / "train-abnormal.csv", header=None, dtype={0: str})
    for splits in held_out:
        training, validation = splits[splits["split"] == "train"], splits[splits["split"] == "validation"]
        assert not set(training["id"]) & set(validation["id"]) and set(validation["label"]) == {0, 1}
    assert sorted(set(held_out[0].query("split == 'validation'")["id"]) |
                  set(held_out[1].query("split == 'validation'")["id"])) == sorted(exams[0])
    result = run_script(f"{APP}/cross_validate.py", f"--model_paths={folders[1]},{folders[0]}",
                        f"--output_csv={tmp_path / 'oof.csv'}")
    table = pd.read_csv(tmp_path / "oof.csv", dtype={"id": str})
    assert sorted(table["id"]) == sorted(exams[0]) and table["id"].is_unique
    for fold, splits in enumerate(held_out):
        assert set(table.loc[table["fold"] == fold, "id"]) == set(splits.query("split == 'validation'")["id"])
    assert "roc_auc" in result.stdout and "fold_std" in result.stdout

    exported = run_script("scripts/export_ensemble.py", f"--model_paths={folders[0]},{folders[1]}",
                          f"--output_path={tmp_path / 'ensemble'}", "--mirror_axes=0,2")
    assert "exported the ensemble of 2 folds" in exported.stdout
    series = np.load(data / "valid" / "sagittal" / f"{10:04d}.npy").astype(np.float32)
    served = call_signature(tmp_path / "ensemble" / "export" / "1", {"series": series})
    folds = [load_predictor(folder, mirror_axes=[0, 2]).classify(series)["probabilities"] for folder in folders]
    np.testing.assert_allclose(served["probabilities"], np.mean(folds, axis=0), atol=1e-5)
    assert served["probabilities_std"].shape == (2,) and served["probabilities_std"].max() > 0


@pytest.mark.parametrize("damage, expected", [
    (lambda path: path.write_bytes(path.read_bytes()[:200]), "header promises (4, 24, 24) uint8"),
    (promise_huge_series, "header promises (100000000000, 24, 24) uint8"),
    (lambda path: path.write_bytes(b"\x93NUMPY\x01\x00\x20\x00{'descr': garbled" + b" " * 32), "not a readable .npy"),
])
def test_a_corrupt_series_is_one_line_naming_it_before_anything_is_built(tmp_path, damage, expected):
    data = synthetic.make_dataset(tmp_path / "mrnet", num_exams=4, num_valid=2, seed=1, min_slices=4, max_slices=4,
                                  size=24)
    broken = data / "train" / "sagittal" / "0002.npy"
    damage(broken)
    with pytest.raises(AssertionError) as failure:
        run_script(f"{APP}/train.py", f"--data_dir={data}", f"--model_path={tmp_path / 'model'}", "--stage_sizes=16",
                   "--stage_epochs=1", "--depth=4", "--steps_per_epoch=1", "--batch_size=4", "--validation_fraction=0.5",
                   env={"TF_CPP_MIN_LOG_LEVEL": None})  # as a user runs it: the launcher quiets TensorFlow
    message = str(failure.value)
    assert "exited 2" in message and f"error: reading [{broken}]: {expected}" in message
    assert "Traceback" not in message and not (tmp_path / "model").exists()


def test_an_exam_id_that_leaves_the_data_folder_is_refused(tmp_path):
    data = synthetic.make_dataset(tmp_path / "mrnet", num_exams=4, num_valid=2, seed=1, min_slices=4, max_slices=4,
                                  size=24)
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(data / "train" / "sagittal" / "0001.npy", outside / "9999.npy")
    csv = data / "train-abnormal.csv"
    csv.write_text(csv.read_text() + "../../../outside/9999,1\n")
    with pytest.raises(AssertionError) as failure:
        run_script(f"{APP}/train.py", f"--data_dir={data}", f"--model_path={tmp_path / 'model'}", "--stage_sizes=16",
                   "--stage_epochs=1", "--depth=4", "--steps_per_epoch=1", "--batch_size=4")
    assert f"error: {csv}: exam id '../../../outside/9999' is not a plain name" in str(failure.value)
