"""Tests of dltk2.apps.bodypart and dltk2.apps.chest_xray: inputs and weights checked before any folder exists."""

import urllib.error

import keras
import pytest

from dltk2.apps import bodypart, chest_xray
from dltk2.errors import ResourceError
from dltk2.training import RunSettings


class RecordSet:
    """The little of a record set the workflows read before training: shards and class counts."""

    manifest = {"set_id": "test"}

    def __init__(self, folder, counts):
        self.folder, self.name, self.counts = folder, "x", counts

    def files(self, split):
        return [self.folder / f"x_{split}-00000-of-00001.tfrecord"]

    def label_counts(self, split):
        return self.counts


@pytest.fixture
def offline(tmp_path, monkeypatch):
    import keras.src.utils.file_utils as file_utils

    def refuse(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "urlretrieve", refuse)
    monkeypatch.setattr(keras.src.backend.config, "keras_home", lambda: str(tmp_path / "keras"))


@pytest.mark.parametrize("workflow", [bodypart, chest_xray])
def test_imagenet_weights_offline_stop_the_run_before_its_folder_exists(workflow, offline, tmp_path, monkeypatch,
                                                                        capsys):
    counts = {1: 5} if workflow is bodypart else {0: 4, 1: 2}  # a body-part set of one class of seven
    monkeypatch.setattr("dltk2.io.record_set.read_record_set", lambda folder, name: RecordSet(tmp_path, counts))
    config = workflow.TrainingConfig(data_dir=str(tmp_path), backbone="MobileNet", weights="imagenet",
                                     image_size=32)
    with pytest.raises(ResourceError, match=r"cannot download the ImageNet weights of MobileNet .*put it at "):
        workflow.run_training(RunSettings(tmp_path / "model"), config)
    assert not (tmp_path / "model").exists()
    if workflow is bodypart:
        assert "the training split's images hold 1 of 7 classes" in capsys.readouterr().out  # said first
