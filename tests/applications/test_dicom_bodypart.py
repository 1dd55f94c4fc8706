"""The DICOM body-part application end to end, as a user runs it, on synthetic and real DICOM files."""

import json
import shutil

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import UID

import make_synthetic_dicom_bodypart as synthetic
from dltk2.datasets.bodypart import read_png
from dltk2.export import existing_versions
from dltk2.io.dicom_objects import BODY_PART_CODES
from dltk2.inference import load_predictor
from helpers import ODD_FILE_REASONS, assert_valid_dicom, odd_dicom_files, run_script
from serving_standin import assert_clients_answer_alike

APP = "applications/dicom_bodypart"


@pytest.fixture(scope="module")
def dicom_folder(tmp_path_factory):
    folder = synthetic.make_dataset(tmp_path_factory.mktemp("dicom"), num_images=56, seed=2, size=48)
    bad = folder / "bad"
    bad.mkdir()
    shutil.copy(get_testdata_file("reportsi.dcm"), bad / "report.dcm")
    shutil.copy(get_testdata_file("emri_small_jpeg_2k_lossless_too_short.dcm"), bad / "short.dcm")
    (bad / "notes.txt").write_text("not DICOM")
    mpeg = pydicom.dcmread(get_testdata_file("RG1_J2KR.dcm"))
    mpeg.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")
    mpeg.SOPInstanceUID = "1.2.3.4.5.6.7.8.9"
    mpeg.save_as(bad / "mpeg.dcm")
    shutil.copy(get_testdata_file("RG1_J2KR.dcm"), folder / "real_chest_j2k.dcm")  # a real CR chest
    odd_dicom_files(folder / "odd")  # each once aborted the whole ingest
    return folder


def test_folder_to_database_to_classification(dicom_folder, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'dicom.db'}"
    created = run_script(f"{APP}/create_database.py", f"--directory={dicom_folder}", f"--db_url={db_url}",
                         "--noprogress")
    assert "added 57 files; 0 already in the database; 0 conflicting; 14 unusable" in created.stdout
    for name in ["report.dcm", "short.dcm", "notes.txt", "mpeg.dcm"] + [f"{n}.dcm" for n in ODD_FILE_REASONS
                                                                      if n != "not_dicom_1mb"]:
        assert f"{name}:" in created.stdout, name
    database_bytes = (tmp_path / "dicom.db").read_bytes()  # de-identified files: no identifier in the database
    assert b"Synthetic^Patient" not in database_bytes and b"Roe^Richard" not in database_bytes
    assert (tmp_path / "dicom.db.salt").exists()
    again = run_script(f"{APP}/create_database.py", f"--data_dir={dicom_folder}", f"--db_url={db_url}",
                       "--noprogress")
    assert "added 0 files; 57 already in the database" in again.stdout

    injected = run_script(f"{APP}/fetch_image.py", "--query=CHEST' OR '1'='1", f"--directory={tmp_path / 'x'}",
                          f"--db_url={db_url}")
    assert "fetched 0 of 0 images" in injected.stdout
    chest = run_script(f"{APP}/fetch_image.py", "--query=CHEST", f"--output_dir={tmp_path / 'chest'}",
                       f"--db_url={db_url}", "--limit=3")
    assert "fetched 3 of 3" in chest.stdout
    assert {p.read_text() for p in (tmp_path / "chest" / "labels").glob("*.txt")} == {"Chest\n"}
    one_class = run_script(f"{APP}/tf_convert_data.py", f"--data_dir={tmp_path / 'chest'}",
                           f"--output_dir={tmp_path / 'chest_records'}", "--need_split=None")
    assert (f"warning: {tmp_path / 'chest'}: the all split's images hold 1 of 7 classes (Chest: 3); none of "
            in one_class.stdout)  # the README's --query CHEST, said before anyone trains on it

    fetched = tmp_path / "fetched"
    run_script(f"{APP}/fetch_image.py", "--query=all", f"--directory={fetched}", f"--db_url={db_url}",
               "--metadata", "--bits=16")
    pngs = sorted((fetched / "images").glob("*.png"))
    assert len(pngs) == 57 and read_png(pngs[0]).dtype == np.uint16
    metadata = "".join(p.read_text() for p in (fetched / "metadata").glob("*.json"))
    assert "Synthetic^Patient" not in metadata and "PAT02" not in metadata
    for identifier in ("Roe^Richard", "Poe^Edgar", "Tech^Terry", "ORDPAT", "RPPAT", "contrast allergy", "none stated",
                       "SN-0042", "CR-ROOM-3", "20240101", '"00101010"'):  # names, orders, alerts, dates, age
        assert identifier not in metadata, identifier

    enhanced = run_script(f"{APP}/preprocess_image.py", f"--directory={fetched}", "--preprocess=contrast_enhancing",
                          "--value=30")
    assert "using 10" in enhanced.stdout and len(list((fetched / "contrast_enhancing" / "images").glob("*"))) == 57

    records = tmp_path / "records"
    run_script(f"{APP}/tf_convert_data.py", f"--dataset_dir={fetched / 'contrast_enhancing'}",
               f"--output_dir={records}", "--need_split=tvt_split", "--val_fraction=0.2", "--test_fraction=0.2")
    split = pd.read_csv(records / "split.csv")
    assert split.groupby("patient")["split"].nunique().max() == 1  # no patient in two splits
    assert set(split["split"]) == {"train", "validation", "test"}

    model = tmp_path / "model"
    run_script(f"{APP}/train.py", f"--model_path={model}", f"--data_dir={records}", "--image_size=32",
               "--backbone=MobileNet",  # traces in less than half the time of ResNet50V2 on a CPU
               "--max_steps=4", "--steps_per_epoch=2", "--batch_size=8", "--head_widths=16")
    assert existing_versions(model / "export") == [1] and (model / "model.keras").exists()

    outfile = tmp_path / "prediction_result.txt"
    labelled = run_script(f"{APP}/classify_image.py", f"--infile={records}/bodypart_test-*.tfrecord",
                          "--tfrecord=true", f"--outfile={outfile}", f"--model_path={model}")
    table = pd.read_csv(outfile, sep="\t")
    assert list(table.columns) == ["image"] + [f"class{i}" for i in range(7)] + ["predicted_class", "true_class"]
    truth = split.set_index("name").loc[table["image"].str.removesuffix(".png"), "body_part"].tolist()
    assert table["true_class"].tolist() == truth  # the labels the shards carry
    accuracy = float((table["predicted_class"] == table["true_class"]).mean())
    assert f"accuracy={accuracy:.4f}" in labelled.stdout
    metrics = json.loads((tmp_path / "prediction_result_evaluation" / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(accuracy) and metrics["count"] == len(table)
    assert (tmp_path / "prediction_result_evaluation" / "confusion_matrix.png").exists()
    assert len(table) == (split["split"] == "test").sum()
    np.testing.assert_allclose(table[[f"class{i}" for i in range(7)]].sum(axis=1), 1.0, atol=1e-4)

    # The SavedModel answers what classify_image wrote, for the same image.
    first = table.iloc[0]
    image = read_png(fetched / "contrast_enhancing" / "images" / first["image"]).astype(np.float32)
    served = assert_clients_answer_alike(model / "export" / "1", "bodypart", {"image": image})  # REST and gRPC
    np.testing.assert_allclose(served["probabilities"], first[[f"class{i}" for i in range(7)]].astype(float),
                               atol=2e-6)
    assert served["class_name"].decode() == first["predicted_class"]
    rebuilt = load_predictor(model).predict(image=image)  # from the model folder alone
    np.testing.assert_allclose(rebuilt["probabilities"], first[[f"class{i}" for i in range(7)]].astype(float),
                               atol=2e-6)

    listed = tmp_path / "list.txt"
    odd = dicom_folder / "odd"
    listed.write_text(f"{pngs[0]}\n{dicom_folder / 'real_chest_j2k.dcm'}\n{odd / 'truncated.dcm'}\n"
                      f"{odd / 'no_pixels.dcm'}\n{tmp_path / 'missing.png'}\n")
    classified = run_script(f"{APP}/classify_image.py", f"--data_path={listed}", f"--output_file={tmp_path / 'list.tsv'}",
                            f"--model_path={model}", f"--sr_dir={tmp_path / 'reports'}")
    listed_table = pd.read_csv(tmp_path / "list.tsv", sep="\t")
    assert len(listed_table) == 2
    # The real chest radiograph's report: valid, its body part and probability, the image as evidence.
    source = pydicom.dcmread(dicom_folder / "real_chest_j2k.dcm")
    report_path = tmp_path / "reports" / f"{source.SOPInstanceUID}_sr.dcm"
    # RG1_J2KR.dcm's Referring Physician's Name "ward" is in PN's retired form, as dciodvfy says of it too.
    assert_valid_dicom(report_path, inherited=("<ward> - Retired Person Name form",))
    assert "wrote 1 structured reports" in classified.stdout
    report = hd.sr.srread(report_path)
    group = report.content.get_image_measurement_groups()[0]
    row = listed_table[listed_table["image"] == str(dicom_folder / "real_chest_j2k.dcm")].iloc[0]
    assert group.finding_sites[0].value == BODY_PART_CODES[row["predicted_class"]]
    assert group.get_measurements()[0].value == pytest.approx(max(row[f"class{i}"] for i in range(7)), abs=1e-5)
    assert report.PatientID == source.PatientID
    assert report.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0] \
        .ReferencedSOPInstanceUID == source.SOPInstanceUID
    for reason in ("truncated.dcm: ", "no_pixels.dcm: has no pixel data", "missing.png: no such file"):
        assert f"  skipped {odd if 'dcm' in reason else tmp_path}/{reason}" in classified.stdout, reason
    assert "Traceback" not in classified.stderr

    # Cross-validation: the same images in two folds by patient, one model folder per fold, scored out of fold.
    folds = tmp_path / "folds"
    run_script(f"{APP}/tf_convert_data.py", f"--dataset_dir={fetched / 'contrast_enhancing'}",
               f"--output_dir={folds}", "--need_split=folds", "--num_folds=2", "--test_fraction=0")
    fold_split = pd.read_csv(folds / "split.csv")
    assert set(fold_split["split"]) == {"fold0", "fold1"} and fold_split.groupby("patient")["split"].nunique().max() == 1
    models = [tmp_path / f"fold{k}" for k in (0, 1)]
    for k, folder in enumerate(models):
        run_script(f"{APP}/train.py", f"--model_path={folder}", f"--data_dir={folds}", "--image_size=32",
                   "--backbone=MobileNet", "--max_steps=2", "--steps_per_epoch=2", "--batch_size=8",
                   "--head_widths=16", "--batch_norm_batches=1", f"--fold={k}", "--export=false")
    scored = run_script(f"{APP}/cross_validate.py", f"--model_paths={models[1]},{models[0]}",
                        f"--output_csv={tmp_path / 'oof.csv'}")
    oof = pd.read_csv(tmp_path / "oof.csv")
    assert sorted(oof["id"].str.removesuffix(".png")) == sorted(fold_split["name"])  # every image once
    for k in (0, 1):
        assert set(oof.loc[oof["fold"] == k, "id"].str.removesuffix(".png")) == \
            set(fold_split.loc[fold_split["split"] == f"fold{k}", "name"])
    accuracy = float((oof["predicted"] == oof["label"].map(dict(enumerate(pd.read_csv(
        folds / "labels.txt", sep=":", header=None)[1])))).mean())
    assert "roc_auc" in scored.stdout and f"{accuracy:.4f}" in scored.stdout
