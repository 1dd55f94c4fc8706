"""Tests of dltk2.inference.test_time and the predictors' test-time mirroring, against numpy flips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dltk2.inference import CropAveragingPredictor, SlidingWindowSegmenter
from dltk2.inference.test_time import (MirroredProbabilities, entropy, gray_order, mirror_combinations,
                                       mirrored_outputs)
from dltk2.preprocessing import whitening


def _conv_model(classes=3, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, None, 1))
    return keras.Model(inputs, keras.layers.Conv3D(classes, 3, padding="same")(inputs))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_every_subset_of_the_axes_identity_first():
    assert mirror_combinations([2, 0, 1]) == [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
    assert mirror_combinations([]) == [()]
    with pytest.raises(ValueError, match="spatial axes"):
        mirror_combinations([3])


def test_gray_order_visits_every_mirroring_once_one_axis_apart():
    order = gray_order([2, 0, 1])
    assert order[0] == () and sorted(order) == sorted(mirror_combinations([0, 1, 2]))
    assert all(len(set(a) ^ set(b)) == 1 for a, b in zip(order, order[1:]))
    assert gray_order([]) == [()]


def test_mirrored_probabilities_are_the_mean_of_the_flipped_predictions_flipped_back(rng):
    model = _conv_model()
    windows = rng.normal(size=(2, 6, 5, 7, 1)).astype(np.float32)
    expected = np.mean([np.flip(_softmax(model.predict(np.flip(windows, [a + 1 for a in combo]), verbose=0)),
                                [a + 1 for a in combo]) for combo in mirror_combinations([0, 2])], axis=0)
    ours = MirroredProbabilities(model, [0, 2])(tf.constant(windows)).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    # A network that sees no neighbours is its own mirror image: mirroring changes nothing.
    pointwise = keras.Model(model.inputs, keras.layers.Conv3D(3, 1)(model.inputs[0]))
    np.testing.assert_allclose(MirroredProbabilities(pointwise, [0, 1, 2])(tf.constant(windows)).numpy(),
                               _softmax(pointwise.predict(windows, verbose=0)), atol=1e-5)
    assert mirrored_outputs(model, windows, [1]).shape == (2, 2, 6, 5, 7, 3)


def test_folds_and_mirrorings_one_at_a_time_equal_numpy_eagerly_and_in_a_graph(rng):
    models = [_conv_model(seed=seed) for seed in range(3)]
    windows = rng.normal(size=(2, 6, 5, 7, 1)).astype(np.float32)
    expected = np.mean([np.flip(_softmax(m.predict(np.flip(windows, [a + 1 for a in combo]), verbose=0)),
                                [a + 1 for a in combo]) for m in models for combo in mirror_combinations([0, 1, 2])],
                       axis=0)
    ensemble = MirroredProbabilities(models, [0, 1, 2])  # the sum moves between 8 grids, then back
    np.testing.assert_allclose(ensemble(tf.constant(windows)).numpy(), expected, atol=1e-5)
    graph = tf.function(ensemble, input_signature=[tf.TensorSpec([None, None, None, None, 1], tf.float32)])
    np.testing.assert_allclose(graph(tf.constant(windows)).numpy(), expected, atol=1e-5)
    folds_only = np.mean([_softmax(m.predict(windows, verbose=0)) for m in models], axis=0)
    np.testing.assert_allclose(MirroredProbabilities(models, [])(tf.constant(windows)).numpy(), folds_only, atol=1e-5)


def test_a_mirrored_segmenter_with_uncertainty_equals_numpy_on_one_window(rng):
    model = _conv_model(seed=1)
    image = rng.normal(-200, 300, size=(8, 8, 8)).astype(np.float32)
    segmenter = SlidingWindowSegmenter(model, (8, 8, 8), (2.0, 2.0, 2.0), (-1000.0, 800.0), blend="constant",
                                       num_classes=3, mirror_axes=[0, 1, 2], uncertainty=True)
    outputs = segmenter.predict(image=image, spacing=[2.0, 2.0, 2.0])
    scaled = (np.clip(image, -1000, 800) + 1000) / 1800 * 2 - 1
    window = scaled[None, ..., None]
    mean = np.mean([np.flip(_softmax(model.predict(np.flip(window, [a + 1 for a in c]), verbose=0)), [a + 1 for a in c])
                    for c in mirror_combinations([0, 1, 2])], axis=0)[0]
    np.testing.assert_array_equal(outputs["labels"], np.argmax(mean, -1))
    np.testing.assert_allclose(outputs["entropy"], -np.sum(mean * np.log(mean), -1), atol=1e-4)
    plain = SlidingWindowSegmenter(model, (8, 8, 8), (2.0, 2.0, 2.0), (-1000.0, 800.0), blend="constant",
                                   num_classes=3).predict(image=image, spacing=[2.0, 2.0, 2.0])
    assert "entropy" not in plain and (plain["labels"] != outputs["labels"]).any()  # mirroring did something
    assert float(entropy(tf.constant([[1.0, 0.0, 0.0]]))[0]) == pytest.approx(0.0, abs=1e-9)


def test_mirrored_crop_averaging_averages_over_crops_and_mirrorings(rng):
    inputs = keras.Input((6, 6, 6, 1))
    flat = keras.layers.Flatten()(keras.layers.Conv3D(2, 3, padding="same")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(flat))
    volume = rng.normal(100, 20, size=(9, 8, 10)).astype(np.float32)
    predictor = CropAveragingPredictor(model, (6, 6, 6), num_crops=3, mirror_axes=[2])
    outputs = predictor.run("predict_with_seed", image=volume, seed=4)
    whitened = whitening(volume)
    crops = np.stack([whitened[z:z + 6, y:y + 6, x:x + 6] for z, y, x in outputs["crop_corners"]])[..., None]
    probabilities = np.concatenate([_softmax(model.predict(crops, verbose=0)),
                                    _softmax(model.predict(np.flip(crops, 3), verbose=0))])
    np.testing.assert_allclose(outputs["probabilities"], probabilities.mean(0), atol=1e-5)
    np.testing.assert_allclose(outputs["probabilities_std"], probabilities.std(0), atol=1e-5)
    assert predictor.get_config()["mirror_axes"] == [2]


def test_a_mirrored_series_classifier_averages_the_flipped_series(rng):
    from dltk2.inference import SeriesClassifier, series_input

    inputs = keras.Input((4, 8, 8, 1))
    flat = keras.layers.Flatten()(keras.layers.Conv3D(2, 3, padding="same")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(flat))
    series = rng.normal(300, 50, size=(6, 12, 12)).astype(np.float32)
    classifier = SeriesClassifier(model, 4, 8, ["normal", "abnormal"], mirror_axes=[0, 2])
    outputs = classifier.classify(series)
    network_input = series_input(tf.constant(series), 4, 8).numpy()[None]
    flips = [network_input, np.flip(network_input, 1), np.flip(network_input, 3), np.flip(network_input, (1, 3))]
    probabilities = np.concatenate([_softmax(model.predict(x, verbose=0)) for x in flips])
    np.testing.assert_allclose(outputs["probabilities"], probabilities.mean(0), atol=1e-5)
    np.testing.assert_allclose(outputs["probabilities_std"], probabilities.std(0), atol=1e-5)
    assert outputs["probabilities_std"].max() > 1e-4  # the flips disagree: the spread is not a constant zero
    plain = SeriesClassifier(model, 4, 8, ["normal", "abnormal"]).classify(series)
    np.testing.assert_allclose(plain["probabilities"], probabilities[0], atol=1e-5)
    np.testing.assert_array_equal(plain["probabilities_std"], [0.0, 0.0])
    assert classifier.get_config()["mirror_axes"] == [0, 2]
    with pytest.raises(ValueError, match="no mirror axis 2"):
        from dltk2.inference import ImageClassifier2D
        ImageClassifier2D(model, 8, ["a", "b"], mirror_axes=[2])
