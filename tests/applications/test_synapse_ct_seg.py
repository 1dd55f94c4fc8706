"""The Synapse application's stages, run as a user runs them, on tiny synthetic cases."""

import json

import pandas as pd
import pytest
import SimpleITK as sitk

import make_synthetic_synapse
from helpers import REPO, run_script


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
    image = sitk.ReadImage(train["imgs"].iloc[0])
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
def test_every_config_in_the_repository_trains(preprocessed, tmp_path, config):
    model_path = tmp_path / "model"
    result = run_script("applications/synapse_ct_seg/train.py", "-p", str(model_path),
                        f"--config=applications/synapse_ct_seg/{config}", f"--train_csv={preprocessed / 'train.csv'}",
                        f"--val_csv={preprocessed / 'val.csv'}", "--max_steps=1")
    assert "parameters" in result.stdout
    state = json.loads((model_path / "training_state.json").read_text())
    assert state["steps_done"] == 1 and "val_mean_dice" in state["last_logs"]
    assert (model_path / "checkpoints" / "best.keras").exists()
