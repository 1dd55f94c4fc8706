"""Tests of dltk2.inference.ensemble: the folds averaged in one model, exported with the single model's signatures."""

import keras
import numpy as np
import pytest

from dltk2.errors import DataError
from dltk2.export import call_signature, export_predictor
from dltk2.inference import CropAveragingPredictor, SlidingWindowSegmenter, load_predictor
from dltk2.inference.ensemble import export_ensemble, fold_ensemble
from dltk2.model_folder import ModelFolder
from dltk2.run_config import RunConfig


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _classifier(seed, name="ixi_sex"):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 6, 6, 1))
    pooled = keras.layers.GlobalAveragePooling3D()(keras.layers.Conv3D(4, 3, padding="same")(inputs))
    return keras.Model(inputs, keras.layers.Dense(2)(pooled), name=name)  # every fold has the same name


def _segmentation_model(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, None, 1))
    return keras.Model(inputs, keras.layers.Conv3D(3, 3, padding="same")(inputs), name="synapse_unet")


def test_the_ensemble_is_the_mean_of_the_folds_softmax_or_values(rng):
    folds = [_classifier(seed) for seed in range(3)]
    crops = rng.normal(size=(4, 6, 6, 6, 1)).astype(np.float32)
    expected = np.mean([_softmax(m.predict(crops, verbose=0)) for m in folds], axis=0)
    np.testing.assert_allclose(fold_ensemble(folds).predict(crops, verbose=0), expected, atol=1e-6)
    values = np.mean([m.predict(crops, verbose=0) for m in folds], axis=0)
    np.testing.assert_allclose(fold_ensemble(folds, "regression").predict(crops, verbose=0), values, atol=1e-5)
    with pytest.raises(DataError, match="two or more"):
        fold_ensemble(folds[:1])
    other = keras.Sequential([keras.Input((6, 6, 6, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    with pytest.raises(DataError, match="differ in input or output shape"):
        fold_ensemble([folds[0], other])


def _fold_folder(path, predictor, application, task):
    folder = ModelFolder(path)
    folder.path.mkdir(parents=True)
    folder.write_config(RunConfig(application, task, [6, 6, 6], data={"fold": 0}))
    export_predictor(folder, predictor)
    return folder.path


def test_an_exported_crop_averaging_ensemble_answers_the_mean_of_its_folds(rng, tmp_path):
    volume = rng.normal(100, 20, (9, 10, 8)).astype(np.float32)
    request = {"image": volume, "spacing": np.array([2.0, 2.0, 2.0]), "direction": np.eye(3).flatten()}
    settings = {"num_crops": 3, "orientation": "LPS", "spacing_mm": [2.0, 2.0, 2.0]}
    folds = [CropAveragingPredictor(_classifier(seed), (6, 6, 6), **settings) for seed in range(2)]
    paths = [_fold_folder(tmp_path / f"fold{k}", p, "IXI_HH_sex", "classification") for k, p in enumerate(folds)]
    saved_model = export_ensemble(paths, tmp_path / "ensemble")
    ensemble = load_predictor(tmp_path / "ensemble")
    assert ensemble.model_outputs == "probabilities" and ensemble.input_names() == folds[0].input_names()
    expected = np.mean([p.predict(**request)["probabilities"] for p in folds], axis=0)  # linear in the crops
    np.testing.assert_allclose(ensemble.predict(**request)["probabilities"], expected, atol=1e-6)
    np.testing.assert_allclose(call_signature(saved_model, request)["probabilities"], expected, atol=1e-6)
    assert ModelFolder(tmp_path / "ensemble").read_config().data["ensemble_of"] == [str(p.resolve()) for p in paths]
    mirrored = export_ensemble(paths, tmp_path / "mirrored", mirror_axes=[2])
    assert load_predictor(tmp_path / "mirrored").mirror_axes == [2] and mirrored.exists()


def test_a_segmentation_ensemble_labels_by_the_mean_probability_and_refuses_mixed_folds(rng, tmp_path):
    image = rng.normal(-200, 300, (8, 8, 8)).astype(np.float32)
    folds = [SlidingWindowSegmenter(_segmentation_model(seed), (8, 8, 8), (2.0, 2.0, 2.0), blend="constant",
                                    num_classes=3) for seed in range(2)]
    paths = [_fold_folder(tmp_path / f"fold{k}", p, "synapse_ct_seg", "segmentation") for k, p in enumerate(folds)]
    export_ensemble(paths, tmp_path / "ensemble")
    labels = load_predictor(tmp_path / "ensemble").predict(image=image, spacing=[2.0, 2.0, 2.0])["labels"]
    window = ((np.clip(image, -1000, 800) + 1000) / 1800 * 2 - 1)[None, ..., None]
    mean = np.mean([_softmax(p.model.predict(window, verbose=0)) for p in folds], axis=0)[0]
    np.testing.assert_array_equal(labels, np.argmax(mean, -1))
    odd = _fold_folder(tmp_path / "odd", SlidingWindowSegmenter(_segmentation_model(5), (8, 8, 8), (2.0, 2.0, 2.0),
                                                                 num_classes=3, overlap=0.25),
                       "synapse_ct_seg", "segmentation")
    with pytest.raises(DataError, match="the folds' predictors differ"):
        export_ensemble([paths[0], odd], tmp_path / "mixed")
