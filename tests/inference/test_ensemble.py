"""Tests of dltk2.inference.ensemble: the folds averaged in one model, exported with the single model's signatures."""

import keras
import numpy as np
import pytest

from dltk2.errors import DataError
from dltk2.export import call_signature, export_predictor
from dltk2.inference import CropAveragingPredictor, SlidingWindowSegmenter, load_predictor
from dltk2.inference.ensemble import export_ensemble, fold_ensemble, fold_models
from dltk2.model_folder import ModelFolder
from dltk2.preprocessing import whitening
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
    stacked = fold_ensemble(folds, stack=True).predict(crops, verbose=0)
    np.testing.assert_allclose(stacked, np.stack([_softmax(m.predict(crops, verbose=0)) for m in folds], 1), atol=1e-6)
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
    assert ensemble.model_outputs == "fold_probabilities" and ensemble.input_names() == folds[0].input_names()
    expected = np.mean([p.predict(**request)["probabilities"] for p in folds], axis=0)  # linear in the crops
    outputs = ensemble.predict(**request)
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-6)
    np.testing.assert_allclose(call_signature(saved_model, request)["probabilities"], expected, atol=1e-6)
    # The spread is over every crop of every fold (same crops: same seed and grid).
    whitened = whitening(volume)
    crops = np.stack([whitened[z:z + 6, y:y + 6, x:x + 6] for z, y, x in outputs["crop_corners"]])[..., None]
    every = np.concatenate([_softmax(p.model.predict(crops, verbose=0)) for p in folds])
    np.testing.assert_allclose(outputs["probabilities_std"], every.std(0), atol=1e-5)
    assert ModelFolder(tmp_path / "ensemble").read_config().data["ensemble_of"] == [str(p.resolve()) for p in paths]
    mirrored = export_ensemble(paths, tmp_path / "mirrored", mirror_axes=[2])
    assert load_predictor(tmp_path / "mirrored").mirror_axes == [2] and mirrored.exists()


def test_a_segmentation_ensemble_labels_by_the_mean_probability_and_refuses_mixed_folds(rng, tmp_path):
    image = rng.normal(-200, 300, (8, 8, 8)).astype(np.float32)
    folds = [SlidingWindowSegmenter(_segmentation_model(seed), (8, 8, 8), (2.0, 2.0, 2.0), blend="constant",
                                    num_classes=3) for seed in range(2)]
    paths = [_fold_folder(tmp_path / f"fold{k}", p, "synapse_ct_seg", "segmentation") for k, p in enumerate(folds)]
    export_ensemble(paths, tmp_path / "ensemble")
    served = load_predictor(tmp_path / "ensemble")
    assert [m.name for m in fold_models(served.model)] == ["fold_0", "fold_1"]  # run one after the other
    assert fold_models(folds[0].model) is None
    labels = served.predict(image=image, spacing=[2.0, 2.0, 2.0])["labels"]
    window = ((np.clip(image, -1000, 800) + 1000) / 1800 * 2 - 1)[None, ..., None]
    mean = np.mean([_softmax(p.model.predict(window, verbose=0)) for p in folds], axis=0)[0]
    np.testing.assert_array_equal(labels, np.argmax(mean, -1))
    odd = _fold_folder(tmp_path / "odd", SlidingWindowSegmenter(_segmentation_model(5), (8, 8, 8), (2.0, 2.0, 2.0),
                                                                 num_classes=3, overlap=0.25),
                       "synapse_ct_seg", "segmentation")
    with pytest.raises(DataError, match="the folds' predictors differ"):
        export_ensemble([paths[0], odd], tmp_path / "mixed")


def _image_classifier(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)), name="bodypart_mobilenet")


def test_a_2d_classifier_ensemble_reports_the_spread_across_folds(rng, tmp_path):
    from dltk2.inference import ImageClassifier2D

    folds = [ImageClassifier2D(_image_classifier(seed), 8, ["head", "chest", "abdomen"]) for seed in range(3)]
    paths = [_fold_folder(tmp_path / f"fold{k}", p, "dicom_bodypart", "classification") for k, p in enumerate(folds)]
    saved_model = export_ensemble(paths, tmp_path / "ensemble")
    image = rng.integers(0, 4096, (11, 7)).astype(np.float32)
    per_fold = np.stack([p.classify(image)["probabilities"] for p in folds])
    outputs = load_predictor(tmp_path / "ensemble").classify(image)
    np.testing.assert_allclose(outputs["probabilities"], per_fold.mean(0), atol=1e-6)
    np.testing.assert_allclose(outputs["probabilities_std"], per_fold.std(0), atol=1e-6)
    assert outputs["probabilities_std"].max() > 1e-3
    served = call_signature(saved_model, {"image": image})
    np.testing.assert_allclose(served["probabilities"], per_fold.mean(0), atol=1e-6)
    name = np.asarray(served["class_name"]).item()
    assert (name.decode() if isinstance(name, bytes) else name) == ["head", "chest", "abdomen"][int(np.argmax(per_fold.mean(0)))]
