"""Tests of dltk2.training.run: a run's start and end in one place."""

import json

import keras
import numpy as np
import tensorflow as tf

from dltk2.inference import CropAveragingPredictor, load_predictor
from dltk2.run_config import RunConfig
from dltk2.training import RunSettings, TrainingRun


def _dataset():
    volumes = np.random.default_rng(0).normal(size=(8, 8, 8, 8, 1)).astype(np.float32)
    labels = np.arange(8) % 2
    return tf.data.Dataset.from_tensor_slices((volumes, labels)).repeat().batch(4)


def _model():
    inputs = keras.Input((8, 8, 8, 1))
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling3D()(keras.layers.Conv3D(2, 3)(inputs)))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_start_train_resume_and_export(tmp_path, capsys):
    settings = RunSettings(model_path=tmp_path / "model", precision="float32")
    run = TrainingRun(settings)
    assert run.folder.lock.exists() and run.policy == "float32" and run.replicas == 1
    written = run.write_config(RunConfig("toy", "classification", [8, 8, 8], class_names=["a", "b"]))
    assert written.training == {"precision": "float32", "replicas": 1}
    assert json.loads(run.folder.run_config_file.read_text())["training"]["precision"] == "float32"
    with run.strategy.scope():
        model = _model()
    run.announce("model: toy")
    run.train(model, _dataset(), max_steps=2, steps_per_epoch=1)
    assert "precision float32; 1 replica(s); TensorBoard" in capsys.readouterr().out

    again = TrainingRun(settings)  # the same process may take its own folder again
    with again.strategy.scope():
        model = _model()
    again.train(model, _dataset(), max_steps=3, steps_per_epoch=1)
    assert f"resuming {run.path} at step 2 of 3" in capsys.readouterr().out
    predictor = CropAveragingPredictor(again.trained_model("last"), [8, 8, 8], num_crops=2)
    keras_file, saved_model = again.export(predictor)
    assert keras_file.exists() and (saved_model / "saved_model.pb").exists()
    volume = np.random.default_rng(1).normal(size=(9, 8, 10)).astype(np.float32)
    np.testing.assert_allclose(load_predictor(run.path).predict(image=volume)["probabilities"],
                               predictor.predict(image=volume)["probabilities"], atol=1e-6)
    assert TrainingRun(RunSettings(model_path=tmp_path / "other", export=False)).export(predictor) is None
