"""The chest X-ray nodule application end to end, as a user runs it, on tiny synthetic images."""

import json

import cv2
import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file

import make_synthetic_chest_xray as synthetic
from dltk2.export import existing_versions
from dltk2.inference import load_predictor
from dltk2.io.dicom_objects import CHEST_FINDING_CODES
from helpers import assert_valid_dicom, run_script
from serving_standin import assert_clients_answer_alike

APP = "applications/chest_xray_nodule"


def test_images_to_prepare_to_both_stages_to_deploy_and_serving(tmp_path):
    images = synthetic.make_dataset(tmp_path / "images", num_images=48, seed=4, size=48)
    records = tmp_path / "tfrecords"
    prepared = run_script(f"{APP}/prepare.py", f"--data_dir={images}", f"--output_dir={records}", "--seed=2")
    assert "flipped copies" in prepared.stdout
    splits = pd.read_csv(records / "splits.csv")
    assert splits.loc[splits["flipped"], "split"].eq("train").all()

    model = tmp_path / "model"
    args = [f"--model_path={model}", f"--data_dir={records}", "--backbone=MobileNet", "--image_size=32",
            "--head_widths=16,8", "--head_epochs=2", "--adapt_batch_norm=2", "--batch_size=8", "--fine_tune_steps=2", "--steps_per_epoch=1"]
    trained = run_script(f"{APP}/train.py", *args)
    assert "re-estimated on 2 training batches" in trained.stdout
    assert "ran out of data" not in trained.stdout + trained.stderr  # Keras' interruption warning, read as a fault
    assert "InitializeLog" not in trained.stderr and "cuInit" not in trained.stderr  # TensorFlow's start-up lines
    assert "stage 1: train features" in trained.stdout and "(computed)" in trained.stdout
    assert "stage 2: fine-tuning" in trained.stdout and "final model:" in trained.stdout
    assert (model / "features" / "train.npz").exists() and (model / "head" / "best.keras").exists()
    assert existing_versions(model / "export") == [1]

    # Resumed with more steps: stage 1 is not repeated, the features stay cached, fine-tuning continues.
    resumed = run_script(f"{APP}/train.py", *args[:-2], "--fine_tune_steps=3", "--steps_per_epoch=1", "--noexport")
    assert "stage 1: done before" in resumed.stdout and "(computed)" not in resumed.stdout
    assert json.loads((model / "training_state.json").read_text())["steps_done"] == 3

    # Cross-validation's folds: fold 1 of 2 trains on fold 0 and its flipped copies, validates on fold 1.
    folds = tmp_path / "folds"
    run_script(f"{APP}/prepare.py", f"--data_dir={images}", f"--output_dir={folds}", "--seed=2", "--num_folds=2",
               "--test_fraction=0.2")
    fold_splits = pd.read_csv(folds / "splits.csv")
    fold_model = tmp_path / "fold1"
    fold_args = [f"--model_path={fold_model}", f"--data_dir={folds}", *args[2:], "--fold=1", "--noexport"]
    fold_trained = run_script(f"{APP}/train.py", *fold_args)
    training = int(fold_splits["split"].isin(["fold0", "flipped0"]).sum())
    validation = int((fold_splits["split"] == "fold1").sum())
    assert f"stage 1: train features ({training}, " in fold_trained.stdout
    assert f"stage 1: validation features ({validation}, " in fold_trained.stdout
    data = json.loads((fold_model / "run_config.json").read_text())["data"]
    assert (data["fold"], data["num_folds"], data["fold_seed"]) == (1, 2, 2)

    deployed = run_script(f"{APP}/deploy.py", f"--model_path={model}", f"--data_dir={records}")
    assert "accuracy=" in deployed.stdout and "roc_auc=" in deployed.stdout and "sensitivity=" in deployed.stdout
    evaluation = model / "evaluation"
    for name in ("confusion_matrix.png", "roc_curve.png", "training_curves.png"):
        assert cv2.imread(str(evaluation / name)) is not None, name
    metrics = json.loads((evaluation / "metrics.json").read_text())
    predictions = pd.read_csv(evaluation / "predictions.csv")
    test_names = splits.loc[splits["split"] == "test", "image"].map(lambda p: p.split("/")[-1])
    assert sorted(predictions["filename"]) == sorted(test_names) and metrics["count"] == len(predictions)
    assert np.sum(metrics["confusion_matrix"]) == len(predictions)
    # --explain's default: the first 4 images predicted nodule, each map (.npy) on its image's grid.
    explained, served_model = predictions.loc[predictions["predicted"] == "nodule"].head(4), load_predictor(model)
    assert sorted(path.name for path in (evaluation / "saliency").glob("*_saliency.npy")) == \
        sorted(f"{name}_saliency.npy" for name in explained["filename"])
    assert ("Where the model looked" in (evaluation / "report.html").read_text()) == (len(explained) > 0)
    for case in explained.itertuples():
        saliency = np.load(evaluation / "saliency" / f"{case.filename}_saliency.npy")
        original = cv2.imread(str(images / ("nodule" if case.label else "normal") / case.filename), cv2.IMREAD_UNCHANGED)
        assert saliency.shape == original.shape[:2] and 0 <= saliency.min() <= saliency.max() <= 1 + 1e-6
        # The served model's explain, on the same raw image, gives the same map.
        np.testing.assert_allclose(served_model.explain(original)["saliency"], saliency, atol=1e-5)

    # The SavedModel's serving_default, given the raw PNG, agrees with what deploy wrote.
    row = predictions.iloc[0]
    image = cv2.imread(str(images / ("nodule" if row["label"] else "normal") / row["filename"]), cv2.IMREAD_UNCHANGED)
    served = assert_clients_answer_alike(model / "export" / "1", "chest", {"image": image.astype(np.float32)})
    np.testing.assert_allclose(served["probabilities"], [row["probability_normal"], row["probability_nodule"]],
                               rtol=1e-4, atol=1e-5)
    assert served["class_name"].decode() == row["predicted"]
    rebuilt = load_predictor(model).predict(image=image)  # from the model folder alone
    np.testing.assert_allclose(rebuilt["probabilities"], served["probabilities"], rtol=1e-5, atol=1e-6)

    # New radiographs, not scored: that PNG and a real CR chest radiograph (DICOM, JPEG 2000), reported.
    png = images / ("nodule" if row["label"] else "normal") / row["filename"]
    radiograph = get_testdata_file("RG1_J2KR.dcm")
    classified = run_script(f"{APP}/deploy.py", f"--model_path={model}", f"--images={png},{radiograph}",
                            f"--sr_dir={tmp_path / 'reports'}", "--explain=0")  # maps: asserted above
    assert f"{png}: {row['predicted']} (p=" in classified.stdout and "accuracy=" not in classified.stdout
    source = pydicom.dcmread(radiograph)
    report_path = tmp_path / "reports" / f"{source.SOPInstanceUID}_sr.dcm"
    assert f"{radiograph}: " in classified.stdout and f"report={report_path}" in classified.stdout
    # RG1_J2KR.dcm's Referring Physician's Name "ward" is in PN's retired form, as dciodvfy says of it too.
    assert_valid_dicom(report_path, inherited=("<ward> - Retired Person Name form",))
    group = hd.sr.srread(report_path).content.get_image_measurement_groups()[0]
    assert group.finding_type in CHEST_FINDING_CODES.values()
    assert 0.5 <= group.get_measurements()[0].value <= 1.0
    assert len(list((tmp_path / "reports").iterdir())) == 1  # none for the PNG


def test_a_corrupt_image_is_one_line_naming_it(tmp_path):
    images = synthetic.make_dataset(tmp_path / "images", num_images=6, seed=1, size=32)
    broken = next((images / "normal").glob("*.png"))
    broken.write_bytes(broken.read_bytes()[:30])
    with pytest.raises(AssertionError) as failure:
        run_script(f"{APP}/prepare.py", f"--data_dir={images}", f"--output_dir={tmp_path / 'out'}")
    message = str(failure.value)
    assert "exited 2" in message and f"error: {broken}: not a readable image" in message
