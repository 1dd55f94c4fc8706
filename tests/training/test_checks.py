"""Tests of dltk2.training.checks: a classifier with one answer for every image is named."""

import keras
import numpy as np
import pytest

from dltk2.training.checks import CONSTANT_SPREAD, prediction_spread, warn_if_constant


def linear_model(kernel_scale: float) -> keras.Model:
    inputs = keras.Input((4,))
    dense = keras.layers.Dense(3)
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([np.full((4, 3), kernel_scale) * np.arange(3), np.array([0.0, 1.0, 2.0])])
    return model


def batches(labels=False):
    rng = np.random.default_rng(0)
    images = [rng.normal(size=(8, 4)).astype(np.float32) for _ in range(3)]
    return [(x, np.zeros(8)) for x in images] if labels else images


def test_the_spread_is_the_largest_standard_deviation_of_a_class_probability_across_images():
    model = linear_model(1.0)
    spread, seen = prediction_spread(model, batches(labels=True))
    logits = np.concatenate([model.predict(x, verbose=0) for x in batches()]).astype(np.float64)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert seen == 24 and spread == pytest.approx(probabilities.std(axis=0).max())
    assert prediction_spread(model, batches(), batches=1)[1] == 8


def test_constant_outputs_are_warned_of_and_varied_ones_are_not(capsys):
    assert warn_if_constant(linear_model(0.0), batches(labels=True), "validation")
    out = capsys.readouterr().out
    assert out.startswith("warning: the trained model gives the same probabilities to all 24 validation images")
    assert out.count("\n") == 1
    assert not warn_if_constant(linear_model(1.0), batches())
    assert not warn_if_constant(linear_model(0.0), []) and capsys.readouterr().out == ""
    assert prediction_spread(linear_model(1e-7), batches())[0] < CONSTANT_SPREAD
