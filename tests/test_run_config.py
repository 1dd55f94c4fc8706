"""Tests of dltk2.run_config: one schema across applications; older folders converted or refused in one line."""

import json

import pytest

from dltk2.errors import DataError
from dltk2.run_config import SCHEMA, RunConfig

# run_config.json as each application wrote it before the schema (keys copied from those versions).
OLD_IXI = {"task": "classification", "target": "sex", "spacing_mm": 4.0, "example_size": [40, 48, 40],
           "num_train": 80, "data_csv": "/data/demographic_HH.csv", "data_dir": None, "precision": "float32",
           "replicas": 1}
OLD_SYNAPSE = {"net": "unet", "opt": "adam", "loss": "dice_ce", "filters": [8, 16], "strides": [[1, 1, 1], [2, 2, 2]],
               "num_residual_units": 1, "learning_rate": 0.001, "patch_size": [32, 32, 32], "examples_per_volume": 4,
               "batch_size": 2, "num_classes": 14, "max_steps": 10, "steps_per_epoch": 5, "precision": "float32",
               "spacing_mm": [2.0, 2.0, 2.0], "hu_window": [-1000.0, 800.0], "train_csv": "/data/train.csv"}
OLD_MRNET = {"task": "abnormal", "plane": "sagittal", "depth": 6, "stage_sizes": [16, 24], "stage_epochs": [1, 1],
             "classes": ["normal", "abnormal"], "precision": "float32", "seed": 0, "data": "/data/MRNet",
             "input_shape": [6, 24, 24, 1], "best_checkpoint": "stage2_6x24x24/unfrozen/checkpoints/best.keras",
             "best_validation_auc": 0.75}
OLD_CHEST = {"backbone": "MobileNet", "weights": None, "image_size": 64, "classes": ["normal", "nodule"],
             "class_weights": [1.0, 3.0], "precision": "float32", "head_widths": [16], "fine_tune_steps": 4,
             "data_dir": "/data/chest", "record_set": "abc"}
OLD_BODYPART = {"backbone": "MobileNet", "image_size": 64, "classes": ["a", "b"], "class_weights": [1.0, 1.0],
                "precision": "float32", "max_steps": 4, "data_dir": "/data/records", "record_set": "def"}


def test_round_trip_in_the_current_schema(tmp_path):
    config = RunConfig(application="IXI_HH_sex", task="classification", example_size=[40, 48, 40],
                       spacing_mm=[4, 4, 4], orientation="LPS", class_names=["male", "female"], target="sex",
                       data={"num_train": 80})
    path = tmp_path / "run_config.json"
    path.write_text(config.to_json())
    read = RunConfig.read(path)
    assert read == config and read.schema == SCHEMA and read.spacing_mm == [4.0, 4.0, 4.0]
    assert json.loads(path.read_text())["library_version"] == config.library_version


@pytest.mark.parametrize("old, application, example_size, expected", [
    (OLD_IXI, "IXI_HH_sex", [40, 48, 40], {"spacing_mm": [4.0] * 3, "class_names": ["male", "female"]}),
    (OLD_SYNAPSE, "synapse_ct_seg", [32, 32, 32], {"spacing_mm": [2.0] * 3, "task": "segmentation"}),
    (OLD_MRNET, "mrnet_knee", [6, 24, 24], {"target": "abnormal", "class_names": ["normal", "abnormal"]}),
    (OLD_CHEST, "chest_xray_nodule", [64, 64], {"class_names": ["normal", "nodule"]}),
    (OLD_BODYPART, "dicom_bodypart", [64, 64], {"class_names": ["a", "b"]}),
])
def test_every_older_layout_is_converted(tmp_path, old, application, example_size, expected):
    path = tmp_path / "run_config.json"
    path.write_text(json.dumps(old))
    config = RunConfig.read(path)
    assert config.application == application and config.example_size == example_size
    for key, value in expected.items():
        assert getattr(config, key) == value
    if application == "synapse_ct_seg":
        assert config.intensity_window == (-1000.0, 800.0) and len(config.class_names) == 14
        assert config.training["net"] == "unet"
    if application == "mrnet_knee":
        assert config.data["plane"] == "sagittal"
    if application in ("chest_xray_nodule", "dicom_bodypart"):
        assert config.data["record_set"] == old["record_set"]


def test_what_cannot_be_read_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "run_config.json"
    for content, expected in [
        (json.dumps({"schema": SCHEMA + 1}), "newer dltk2"),
        (json.dumps({"something": 1}), "neither a run configuration"),
        (json.dumps({**RunConfig("x", "regression", [4, 4, 4]).to_dict(), "extra": 1}), "unknown run configuration key"),
        (json.dumps({**RunConfig("x", "regression", [4, 4, 4]).to_dict(), "task": "guessing"}), "task must be one of"),
        ("{not json", "not JSON"),
    ]:
        path.write_text(content)
        with pytest.raises(DataError) as caught:
            RunConfig.read(path)
        message = str(caught.value)
        assert str(path) in message and expected in message and "\n" not in message
    with pytest.raises(FileNotFoundError, match="model folder written by train.py"):
        RunConfig.read(tmp_path / "missing" / "run_config.json")


def test_updated_merges_data_and_training():
    config = RunConfig("mrnet_knee", "classification", [6, 16, 16], training={"seed": 0})
    later = config.updated(example_size=[6, 24, 24], training={"best_validation_auc": 0.5})
    assert later.example_size == [6, 24, 24] and later.training == {"seed": 0, "best_validation_auc": 0.5}
    assert config.training == {"seed": 0}
    with pytest.raises(ValueError, match="window needs low and high"):
        RunConfig("synapse_ct_seg", "segmentation", [8, 8, 8], intensity={"method": "window"})


def test_training_settings_are_the_configurations_fields_but_its_data():
    from dataclasses import dataclass, field

    from dltk2.run_config import training_settings

    @dataclass
    class Settings:
        data_csv: str
        validation_csv: str | None = None
        spacing_mm: float = 4.0
        filters: list[int] = field(default_factory=lambda: [8, 16])
        max_steps: int = 10

    settings = training_settings(Settings("a.csv", "b.csv"), leave_out=("spacing_mm",))
    assert settings == {"filters": [8, 16], "max_steps": 10}
