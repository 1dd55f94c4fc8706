"""Tests of dltk2.inference.predictor: every predictor saved with its configuration and rebuilt from the folder."""

import json

import keras
import numpy as np
import pytest

from dltk2.errors import DataError
from dltk2.export import export_predictor
from dltk2.inference import (CropAveragingPredictor, ImageClassifier2D, Predictor, SeriesClassifier,
                             SlidingWindowSegmenter, load_predictor)
from dltk2.model_folder import ModelFolder
from dltk2.run_config import RunConfig

RNG = np.random.default_rng(3)


def _classifier(input_shape, classes):
    inputs = keras.Input(input_shape)
    pooled = (keras.layers.GlobalAveragePooling3D() if len(input_shape) == 4 else keras.layers.GlobalAveragePooling2D())(
        keras.layers.Conv3D(4, 3, padding="same")(inputs) if len(input_shape) == 4 else
        keras.layers.Conv2D(4, 3, padding="same")(inputs))
    return keras.Model(inputs, keras.layers.Dense(classes)(pooled))


def _segmentation_model():
    inputs = keras.Input((None, None, None, 1))
    return keras.Model(inputs, keras.layers.Conv3D(3, 3, padding="same")(keras.layers.Conv3D(4, 3, padding="same")(inputs)))


def _predictors():
    return {
        "crop_averaging": (CropAveragingPredictor(_classifier((8, 8, 8, 1), 2), [8, 8, 8], num_crops=3),
                           {"image": RNG.normal(size=(10, 12, 9)).astype(np.float32)}),
        "sliding_window_segmenter": (
            SlidingWindowSegmenter(_segmentation_model(), [8, 8, 8], [2.0, 2.0, 2.0], num_classes=3),
            {"image": RNG.normal(0, 400, (11, 9, 13)).astype(np.float32), "spacing": np.array([1.5, 2.0, 2.5])}),
        "crop_averaging, oriented": (
            CropAveragingPredictor(_classifier((8, 8, 8, 1), 2), [8, 8, 8], num_crops=3, orientation="RAS",
                                   spacing_mm=[2.0, 2.0, 2.0]),
            {"image": RNG.normal(size=(10, 12, 9)).astype(np.float32), "spacing": np.array([1.5, 2.0, 2.5]),
             "direction": np.array([0.0, 0, -1, 1, 0, 0, 0, -1, 0])}),
        "sliding_window_segmenter, oriented": (
            SlidingWindowSegmenter(_segmentation_model(), [8, 8, 8], [2.0, 2.0, 2.0], num_classes=3, orientation="LPS"),
            {"image": RNG.normal(0, 400, (11, 9, 13)).astype(np.float32), "spacing": np.array([1.5, 2.0, 2.5]),
             "direction": np.array([0.0, 0, -1, 1, 0, 0, 0, -1, 0])}),
        "image_classifier_2d": (ImageClassifier2D(_classifier((16, 16, 1), 3), 16, ["a", "b", "c"]),
                                {"image": RNG.integers(0, 4000, (20, 13)).astype(np.float32)}),
        "series_classifier": (SeriesClassifier(_classifier((4, 8, 8, 1), 2), 4, 8, ["normal", "abnormal"]),
                              {"series": RNG.integers(0, 255, (7, 10, 10)).astype(np.float32)}),
    }


@pytest.mark.parametrize("case", ["crop_averaging", "crop_averaging, oriented", "sliding_window_segmenter",
                                  "sliding_window_segmenter, oriented", "image_classifier_2d", "series_classifier"])
def test_rebuilt_from_the_folder_alone_answers_the_same(tmp_path, case):
    predictor, request = _predictors()[case]
    kind = case.split(",")[0]
    assert predictor.kind == kind and Predictor.registry[kind] is type(predictor)
    expected = predictor.predict(**request)
    keras_file, saved_model = export_predictor(tmp_path, predictor)
    spec = json.loads(ModelFolder(tmp_path).predictor_file.read_text())
    assert spec["kind"] == kind and spec["config"] == predictor.get_config()
    assert all(type(value) in (int, float, str, bool, list, type(None)) for value in predictor.get_config().values())
    rebuilt = load_predictor(tmp_path)
    assert type(rebuilt) is type(predictor) and rebuilt.get_config() == predictor.get_config()
    answered = rebuilt.predict(**request)
    assert set(answered) == set(expected)
    for name, value in expected.items():
        value = np.asarray(value)
        if value.dtype.kind in "fc":
            np.testing.assert_allclose(answered[name], value, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(answered[name], value)


def test_deploy_settings_override_and_unknown_ones_are_refused(tmp_path):
    predictor, _ = _predictors()["sliding_window_segmenter"]
    export_predictor(tmp_path, predictor)
    rebuilt = load_predictor(tmp_path, overlap=0.25, batch_size=1, blend="constant")
    assert (rebuilt.overlap, rebuilt.batch_size, rebuilt.blend) == (0.25, 1, "constant")
    with pytest.raises(DataError, match="takes no num_crops"):
        load_predictor(tmp_path, num_crops=2)
    ModelFolder(tmp_path).predictor_file.write_text(json.dumps({"schema": 1, "kind": "oracle", "config": {}}))
    with pytest.raises(DataError, match="unknown predictor kind 'oracle'"):
        load_predictor(tmp_path)


def test_a_folder_from_before_predictor_json_is_rebuilt_from_its_run_configuration(tmp_path):
    """An old IXI folder: a checkpoint and the run configuration of its time, no model.keras."""
    model = _classifier((8, 8, 8, 1), 2)
    folder = ModelFolder(tmp_path)
    folder.checkpoints.mkdir(parents=True)
    model.save(folder.best_checkpoint)
    folder.run_config_file.write_text(json.dumps({"task": "classification", "target": "sex", "spacing_mm": 8.0,
                                                  "example_size": [8, 8, 8], "num_train": 8, "data_csv": "x.csv"}))
    rebuilt = load_predictor(folder, num_crops=2)
    assert isinstance(rebuilt, CropAveragingPredictor) and rebuilt.crop_size == [8, 8, 8] and rebuilt.num_crops == 2
    volume = RNG.normal(size=(9, 9, 9)).astype(np.float32)
    expected = CropAveragingPredictor(model, [8, 8, 8], num_crops=2).predict(image=volume)
    np.testing.assert_allclose(rebuilt.predict(image=volume)["probabilities"], expected["probabilities"], atol=1e-6)

    folder.run_config_file.write_text(json.dumps(RunConfig("x", "classification", [8, 8, 8, 8]).to_dict()))
    with pytest.raises(DataError, match="no predictor for a 4D input"):
        load_predictor(folder)


def test_an_old_synapse_folder_deploys_as_its_run_configuration_says(tmp_path):
    """model.keras and a pre-schema run_config.json (Synapse's keys), no predictor.json: a segmenter back."""
    model = _segmentation_model()
    folder = ModelFolder(tmp_path)
    model.save(folder.model_file)
    folder.run_config_file.write_text(json.dumps({
        "net": "unet", "opt": "adam", "loss": "dice", "filters": [4], "strides": [[1, 1, 1]], "num_residual_units": 1,
        "learning_rate": 0.001, "patch_size": [8, 8, 8], "examples_per_volume": 1, "batch_size": 1,
        "num_classes": 14, "max_steps": 1, "steps_per_epoch": 1, "spacing_mm": [2.0, 2.0, 2.0],
        "hu_window": [-1000.0, 800.0]}))
    rebuilt = load_predictor(folder, batch_size=1)
    assert isinstance(rebuilt, SlidingWindowSegmenter)
    assert (rebuilt.window, rebuilt.spacing_mm, rebuilt.intensity_window) == ([8, 8, 8], [2.0] * 3, (-1000.0, 800.0))
    image = RNG.normal(0, 400, (9, 10, 11)).astype(np.float32)
    expected = SlidingWindowSegmenter(model, [8, 8, 8], [2.0] * 3, batch_size=1, num_classes=3).segment(image, [2, 2, 2])
    np.testing.assert_array_equal(rebuilt.predict(image=image, spacing=[2.0, 2.0, 2.0])["labels"], expected)
