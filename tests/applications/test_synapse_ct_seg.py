"""The Synapse application's stages, run as a user runs them, on tiny synthetic cases."""

import json
import re

import cv2
import highdicom as hd
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from dltk2.datasets.synapse import ORGANS
from dltk2.export import call_signature, existing_versions
from dltk2.inference import load_predictor
from dltk2.io.deidentification import pseudonymous_uid
from dltk2.io.dicom_series import read_series
from dltk2.io.orientation import axis_codes, reorient_image
from dltk2.model_folder import ModelFolder

import make_dicom_series
import make_synthetic_synapse
from helpers import CHROMIUM, REPO, assert_valid_dicom, run_script, screenshot
from serving_standin import assert_clients_answer_alike


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return make_synthetic_synapse.make_dataset(tmp_path_factory.mktemp("raw"), num_cases=5, seed=1, in_plane_size=64)


def test_preprocessing_writes_2mm_cases_and_a_partition(raw, tmp_path):
    run_script("applications/synapse_ct_seg/preprocessing.py", "-d", str(raw), "-p", str(tmp_path / "out"),
               "--val_fraction=0.4", "--workers=1")
    train = pd.read_csv(tmp_path / "out" / "train.csv")
    val = pd.read_csv(tmp_path / "out" / "val.csv")
    assert list(train.columns) == ["id", "imgs", "lbls", "orig_imgs", "orig_lbls"]
    assert sorted(train["id"].tolist() + val["id"].tolist()) == [f"img{i:04d}" for i in range(1, 6)]
    assert len(val) == 2
    assert train["imgs"].str.startswith("img/").all() and train["lbls"].str.startswith("label/").all()
    assert all(path.startswith("/") for path in train["orig_imgs"])  # usable from any working directory
    image = sitk.ReadImage(tmp_path / "out" / train["imgs"].iloc[0])
    assert image.GetSpacing() == pytest.approx((2.0, 2.0, 2.0))
    values = sitk.GetArrayFromImage(image)
    assert values.min() >= -1.0 and values.max() <= 1.0


def test_no_split_and_no_label(raw, tmp_path):
    run_script("applications/synapse_ct_seg/preprocessing.py", "-d", str(raw), "-p", str(tmp_path / "out"),
               "-s", "-n", "--workers=1")
    table = pd.read_csv(tmp_path / "out" / "no_split.csv", keep_default_na=False)
    assert len(table) == 5 and (table["lbls"] == "").all()
    assert not (tmp_path / "out" / "label").exists() and not (tmp_path / "out" / "train.csv").exists()


CONFIGS = sorted(p.name for p in (REPO / "applications" / "synapse_ct_seg").glob("config*.json"))


@pytest.fixture(scope="module")
def preprocessed(raw, tmp_path_factory):
    output = tmp_path_factory.mktemp("pp")
    run_script("applications/synapse_ct_seg/preprocessing.py", "-d", str(raw), "-p", str(output),
               "--spacing_mm=8", "--val_fraction=0.2", "--workers=1")
    return output


@pytest.mark.parametrize("config", CONFIGS)
def test_every_config_in_the_repository_trains(preprocessed, tmp_path, config, capsys):
    """Each configuration's net, loss and optimizer, through the workflow train.py calls (in this process)."""
    from dltk2.apps import synapse
    from dltk2.training import RunSettings

    model_path = tmp_path / "model"
    network = synapse.load_network_config(REPO / "applications" / "synapse_ct_seg" / config)
    synapse.run_training(RunSettings(model_path, export=False), synapse.TrainingConfig(
        data_csv=str(preprocessed / "train.csv"), network=network, validation_csv=str(preprocessed / "val.csv"),
        max_steps=1, patch_size=[32, 32, 32]))  # 1/8 of the voxels
    assert "parameters" in capsys.readouterr().out
    assert ModelFolder(model_path).read_config().example_size == [32, 32, 32]
    state = json.loads((model_path / "training_state.json").read_text())
    assert state["steps_done"] == 1 and "val_mean_dice" in state["last_logs"]
    assert (model_path / "checkpoints" / "best.keras").exists()


def test_a_missing_case_is_named_before_anything_is_built(preprocessed, tmp_path, monkeypatch):
    from dltk2.apps import synapse
    from dltk2.errors import DataError
    from dltk2.training import RunSettings

    def never_built(*args, **kwargs):
        raise AssertionError("the network was built before the cases were checked")

    monkeypatch.setattr("dltk2.networks.fcn.residual_fcn_3d", never_built)
    monkeypatch.setattr("dltk2.networks.unet.residual_unet_3d", never_built)
    table = pd.read_csv(preprocessed / "train.csv", keep_default_na=False)
    table.loc[0, "imgs"] = "img/gone.nii.gz"
    table.to_csv(tmp_path / "train.csv", index=False)
    network = synapse.load_network_config(REPO / "applications" / "synapse_ct_seg" / "config_cpu.json")
    with pytest.raises(DataError, match=rf"^{tmp_path / 'img' / 'gone.nii.gz'}: no such file$"):
        synapse.run_training(RunSettings(tmp_path / "model"),
                             synapse.TrainingConfig(data_csv=str(tmp_path / "train.csv"), network=network))
    assert not (tmp_path / "model").exists()


def test_a_broken_configuration_is_one_line_naming_the_file(preprocessed, tmp_path):
    from dltk2.apps import synapse
    from dltk2.errors import DataError

    config = tmp_path / "config.json"
    for content, expected in [('{"net": "unet"}', "missing"), ("{nope", "not JSON")]:
        config.write_text(content)
        with pytest.raises(DataError, match=expected) as caught:
            synapse.load_network_config(config)
        assert str(config) in str(caught.value)
    full = json.loads((REPO / "applications" / "synapse_ct_seg" / "config_cpu.json").read_text())
    config.write_text(json.dumps({**full, "net": "vnet"}))
    with pytest.raises(DataError, match="net must be one of"):
        synapse.load_network_config(config)


def test_end_to_end_train_deploy_export_and_serve(preprocessed, tmp_path):
    model_path = tmp_path / "model"
    trained = run_script("applications/synapse_ct_seg/train.py", "-p", str(model_path),
                         "--config=applications/synapse_ct_seg/config_cpu.json",
                         f"--train_csv={preprocessed / 'train.csv'}", f"--val_csv={preprocessed / 'val.csv'}",
                         "--max_steps=3")
    assert "exported" in trained.stdout and existing_versions(model_path / "export") == [1]
    assert (model_path / "model.keras").exists()

    output = tmp_path / "predictions"
    deployed = run_script("applications/synapse_ct_seg/deploy.py", "-p", str(model_path),
                          f"--csv={preprocessed / 'val.csv'}", "-e", str(output))
    lines = re.findall(r"^Id=(img\d+); Dice=([\d.]+); time=[\d.]+ secs; output_path=(\S+);$", deployed.stdout,
                       re.MULTILINE)
    val = pd.read_csv(preprocessed / "val.csv")
    assert [line[0] for line in lines] == val["id"].tolist()
    assert re.search(r"^\s*mean\s", deployed.stdout, re.MULTILINE)  # the per-organ summary table
    metrics = pd.read_csv(output / "metrics.csv")
    assert {"dice/liver", "hd95_mm/liver", "mean_dice"} <= set(metrics.columns)
    assert re.search(r"^case 1/\d+: img\d+, \d+x\d+x\d+ voxels of [\d.]+x[\d.]+x[\d.]+ mm, \d+ windows$",
                     deployed.stdout, re.MULTILINE)  # said before each case's minutes of silence
    for case_id in val["id"]:
        assert cv2.imread(str(output / "overlays" / f"{case_id}.png")) is not None, case_id
    assert cv2.imread(str(output / "dice_boxplot.png")) is not None
    page = (output / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(val) + 1 and "synapse_ct_seg" in page
    if CHROMIUM:  # as a reader opens it: the page, its tables and its pictures drawn
        shown = screenshot(output / "report.html", tmp_path / "report.png")
        assert shown is not None and len(np.unique(shown.reshape(-1, 3), axis=0)) > 50

    saved_model = model_path / "export" / "1"
    rebuilt = None
    for (case_id, _, path), original_path in zip(lines, val["orig_imgs"]):
        written, original = sitk.ReadImage(path), sitk.ReadImage(original_path)
        assert written.GetSize() == original.GetSize()
        np.testing.assert_allclose(written.GetSpacing(), original.GetSpacing(), rtol=1e-6)
        np.testing.assert_allclose(written.GetOrigin(), original.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(written.GetDirection(), original.GetDirection(), atol=1e-6)
        request = {"image": sitk.GetArrayFromImage(original).astype(np.float32),
                   "spacing": np.asarray(original.GetSpacing(), np.float64),
                   "direction": np.asarray(original.GetDirection(), np.float64)}
        # The first case as a client of TF Serving asks, by REST and by gRPC; the others directly.
        served = (assert_clients_answer_alike(saved_model, "synapse", request) if rebuilt is None
                  else call_signature(saved_model, request))
        np.testing.assert_array_equal(served["labels"], sitk.GetArrayFromImage(written))
        # The predictor rebuilt from the model folder alone answers the same.
        rebuilt = rebuilt or load_predictor(model_path)
        np.testing.assert_array_equal(rebuilt.predict(**request)["labels"], sitk.GetArrayFromImage(written))

    predicted = run_script("applications/synapse_ct_seg/deploy.py", "-p", str(model_path),
                           f"--data_csv={preprocessed / 'val.csv'}", f"--output_dir={tmp_path / 'only'}", "-n")
    assert "Dice" not in predicted.stdout and len(list((tmp_path / "only").glob("*_seg.nii.gz"))) == len(val)

    # The first case as a scanner writing sagittal slices feet first would store it: the same labels
    # in the world, on that file's own grid.
    turned = reorient_image(sitk.ReadImage(val["orig_imgs"].iloc[0]), "PIR")
    sitk.WriteImage(turned, str(tmp_path / "turned.nii.gz"))
    pd.DataFrame({"id": ["turned"], "orig_imgs": [str(tmp_path / "turned.nii.gz")]}).to_csv(tmp_path / "turned.csv")
    run_script("applications/synapse_ct_seg/deploy.py", "-p", str(model_path), f"--data_csv={tmp_path / 'turned.csv'}",
               f"--output_dir={tmp_path / 'turned'}", "-n")
    labels = sitk.ReadImage(tmp_path / "turned" / "turned_seg.nii.gz")
    assert labels.GetSize() == turned.GetSize() and axis_codes(labels.GetDirection()) == "PIR"
    np.testing.assert_allclose(labels.GetOrigin(), turned.GetOrigin(), atol=1e-4)
    upright = sitk.ReadImage(tmp_path / "only" / f"{val['id'].iloc[0]}_seg.nii.gz")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(reorient_image(labels, axis_codes(upright.GetDirection()))),
                                  sitk.GetArrayFromImage(upright))

    # The first case as a scanner's CT series, files in random order: the same labels, and a DICOM SEG
    # of them referencing each slice, de-identified with the key.
    make_dicom_series.write_series(sitk.ReadImage(val["orig_imgs"].iloc[0]), tmp_path / "dicom" / "series", seed=2)
    pd.DataFrame({"id": ["ct"], "orig_imgs": [str(tmp_path / "dicom" / "series")]}).to_csv(tmp_path / "dicom.csv")
    (tmp_path / "key").write_text("a secret\n")
    run_script("applications/synapse_ct_seg/deploy.py", "-p", str(model_path), f"--data_csv={tmp_path / 'dicom.csv'}",
               f"--output_dir={tmp_path / 'dicom_out'}", "-n", f"--deidentify_key={tmp_path / 'key'}")
    from_dicom = sitk.ReadImage(tmp_path / "dicom_out" / "ct_seg.nii.gz")
    np.testing.assert_allclose(from_dicom.GetOrigin(), upright.GetOrigin(), atol=1e-3)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(from_dicom), sitk.GetArrayFromImage(upright))
    seg_path = tmp_path / "dicom_out" / "ct_seg.dcm"
    assert_valid_dicom(seg_path)
    seg = hd.seg.segread(seg_path)
    assert seg.PatientIdentityRemoved == "YES" and [s.SegmentLabel for s in seg.SegmentSequence][:2] == \
        ["spleen", "right kidney"]
    assert [seg.get_segment_description(n).segmented_property_type.meaning for n in (1, 2, 9)] == \
        ["Spleen", "Kidney", "Inferior vena cava"]
    slices = read_series(tmp_path / "dicom" / "series").frames
    uids = [pseudonymous_uid(frame.sop_instance_uid, "a secret") for frame in slices]
    np.testing.assert_array_equal(seg.get_pixels_by_source_instance(uids, combine_segments=True,
                                                                    skip_overlap_checks=True),
                                  sitk.GetArrayFromImage(upright))


def test_folds_cross_validation_postprocessing_and_the_ensemble(raw, tmp_path):
    """Two folds: every case segmented once out of fold, per-organ scores, postprocessing chosen, one ensemble."""
    prepared = tmp_path / "pp"
    run_script("applications/synapse_ct_seg/preprocessing.py", "-d", str(raw), "-p", str(prepared), "--spacing_mm=8",
               "--workers=1", "--num_folds=2")
    folds = pd.read_csv(prepared / "folds.csv")
    assert sorted(folds["id"]) == [f"img{i:04d}" for i in range(1, 6)] and set(folds["fold"]) == {0, 1}
    models = [tmp_path / f"fold{k}" for k in (0, 1)]
    for k, model in enumerate(models):
        run_script("applications/synapse_ct_seg/train.py", "-p", str(model), "--config=applications/synapse_ct_seg/"
                   "config_cpu.json", f"--data_csv={prepared / 'folds.csv'}", f"--fold={k}", "--max_steps=2",
                   "--export=false")  # cross_validate.py rebuilds each fold's predictor from its folder
        assert ModelFolder(model).read_config().data["fold"] == k
    result = run_script("applications/synapse_ct_seg/cross_validate.py", f"--model_paths={models[1]},{models[0]}",
                        f"--output_dir={tmp_path / 'cv'}", f"--ensemble_path={tmp_path / 'ensemble'}")
    for k in (0, 1):  # each fold's validation cases, segmented by that fold's model
        written = sorted(p.name for p in (tmp_path / "cv" / f"fold{k}").glob("*_seg.nii.gz"))
        assert written == sorted(f"{i}_seg.nii.gz" for i in folds.loc[folds["fold"] == k, "id"])
    summary = pd.read_csv(tmp_path / "cv" / "cross_validation.csv").set_index("metric")
    assert {"mean_dice", "dice/liver", "hd95_mm/liver"} <= set(summary.index) and summary.loc["cases", "pooled"] == 5
    decision = json.loads((tmp_path / "cv" / "postprocessing.json").read_text())
    assert list(decision) == list(ORGANS.values())
    assert "keep the largest component of:" in result.stdout and "dice/liver" in result.stdout
    ensemble = load_predictor(tmp_path / "ensemble")  # the folds' mean, with the chosen postprocessing in its graph
    assert ensemble.keep_largest == sorted(number for number, name in ORGANS.items() if decision[name]["keep_largest"])
    assert ensemble.model_outputs == "probabilities"
    case = folds.iloc[0]
    image = sitk.ReadImage(case["orig_imgs"])
    labels = ensemble.predict(image=sitk.GetArrayFromImage(image).astype(np.float32), spacing=image.GetSpacing(),
                              direction=image.GetDirection())["labels"]
    assert labels.shape == sitk.GetArrayFromImage(image).shape

