"""Tests of dltk2.apps.ixi_hh: bad inputs stop a run in one line before anything is built or written."""

import pytest

import make_synthetic_ixi as synthetic
from dltk2.apps.ixi_hh import Head, TrainingConfig, run_training
from dltk2.errors import DataError
from dltk2.training import RunSettings


@pytest.fixture(scope="module")
def ixi_csv(tmp_path_factory):
    return synthetic.make_dataset(tmp_path_factory.mktemp("ixi"), num_subjects=4, seed=0, spacings=[4.0])


def never_built(*args, **kwargs):
    raise AssertionError("the network was built before the inputs were checked")


@pytest.mark.parametrize("num_train", [4, 80, 0])
def test_a_split_without_validation_subjects_is_one_line_before_the_folder_exists(ixi_csv, tmp_path, monkeypatch,
                                                                                   num_train):
    monkeypatch.setattr("dltk2.apps.ixi_hh.resnet_3d", never_built)
    config = TrainingConfig(data_csv=str(ixi_csv), spacing_mm=4.0, num_train=num_train)
    with pytest.raises(DataError, match=rf"^num_train={num_train} leaves no training or no validation subject "
                                        r"of the 4 in the CSV$"):
        run_training(RunSettings(tmp_path / "model"), config, "sex", Head("classification", 2, None, []), "x")
    assert not (tmp_path / "model").exists()


def test_a_missing_volume_is_named_before_the_folder_exists(ixi_csv, tmp_path, monkeypatch):
    monkeypatch.setattr("dltk2.apps.ixi_hh.resnet_3d", never_built)
    volume = sorted(ixi_csv.parent.glob("4mm/*/T1_4mm.nii.gz"))[1]
    moved = volume.rename(tmp_path / volume.name)
    try:
        config = TrainingConfig(data_csv=str(ixi_csv), spacing_mm=4.0, num_train=2)
        with pytest.raises(FileNotFoundError, match=rf"^{volume}: no such file \(1 of 4 subjects of "):
            run_training(RunSettings(tmp_path / "model"), config, "sex", Head("classification", 2, None, []), "x")
    finally:
        moved.rename(volume)
    assert not (tmp_path / "model").exists()
