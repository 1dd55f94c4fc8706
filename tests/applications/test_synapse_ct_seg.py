"""The Synapse application's stages, run as a user runs them, on tiny synthetic cases."""

import pandas as pd
import pytest
import SimpleITK as sitk

import make_synthetic_synapse
from helpers import run_script


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
