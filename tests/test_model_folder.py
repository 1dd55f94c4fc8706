"""Tests of dltk2.model_folder: every path of a model folder named once."""

import pytest

from dltk2.model_folder import ModelFolder, as_model_folder
from dltk2.run_config import RunConfig


def test_paths_and_the_run_configuration(tmp_path):
    folder = ModelFolder(tmp_path / "model")
    assert folder.best_checkpoint == tmp_path / "model" / "checkpoints" / "best.keras"
    assert folder.last_checkpoint.name == "last.keras" and folder.backup.name == "backup"
    assert folder.history.name == "history.csv" and folder.training_state.name == "training_state.json"
    assert folder.model_file.name == "model.keras" and folder.predictor_file.name == "predictor.json"
    assert folder.export.name == "export" and folder.splits.name == "splits.csv" and folder.lock.name == ".lock"
    assert folder.output_dir() == folder.evaluation and folder.output_dir(tmp_path / "x") == tmp_path / "x"
    assert folder.file("head", "best.keras") == tmp_path / "model" / "head" / "best.keras"
    stage = folder.stage("stage1_6x16x16")
    assert stage.best_checkpoint == tmp_path / "model" / "stage1_6x16x16" / "checkpoints" / "best.keras"
    for bad in ("", "../x", ".hidden", "a/b"):
        with pytest.raises(ValueError):
            folder.stage(bad)
    assert as_model_folder(folder) is folder and as_model_folder(tmp_path / "model") == folder

    config = RunConfig("IXI_HH_age", "regression", [16, 16, 16], spacing_mm=[8, 8, 8])
    folder.path.mkdir()
    folder.write_config(config)
    assert folder.read_config() == config
    assert not list(folder.path.glob("*.tmp*"))  # written atomically
