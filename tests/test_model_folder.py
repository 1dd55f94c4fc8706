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


def test_disk_use_sums_each_entry_and_names_the_largest(tmp_path):
    from dltk2.model_folder import ModelFolder, human_bytes

    folder = ModelFolder(tmp_path / "run")
    (folder.checkpoints).mkdir(parents=True)
    (folder.checkpoints / "last.keras").write_bytes(b"x" * 2500)
    (folder.file("stage1_16", "backup")).mkdir(parents=True)
    (folder.file("stage1_16", "backup", "epoch-000001.weights.h5")).write_bytes(b"x" * 1_200_000)
    folder.history.write_text("epoch\n0\n")
    assert folder.disk_use() == {"stage1_16": 1_200_000, "checkpoints": 2500, "history.csv": 8}
    assert folder.describe_disk_use() == "1.2 MB (stage1_16 1.2 MB, checkpoints 2.5 kB, history.csv 8 B)"
    assert [human_bytes(n) for n in (0, 999, 1000, 123_456_789, 3_400_000_000)] == ["0 B", "999 B", "1 kB", "123 MB",
                                                                                   "3.4 GB"]
