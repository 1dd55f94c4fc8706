"""Tests of dltk2.losses against numpy, and their value under a two-replica MirroredStrategy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dltk2.losses import (SegmentationLoss, per_example_balanced_crossentropy, per_example_crossentropy,
                          per_example_soft_dice)


@pytest.fixture
def batch(rng):
    labels = rng.integers(0, 3, size=(4, 5, 6, 7)).astype(np.int32)
    labels[0] = 0  # an example with background only
    logits = rng.normal(size=(4, 5, 6, 7, 3)).astype(np.float32)
    return labels, logits


def softmax(logits):
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


def test_soft_dice_matches_numpy(batch):
    labels, logits = batch
    probabilities = softmax(logits)
    expected = []
    for example in range(4):
        scores = []
        present = [c for c in (1, 2) if (labels[example] == c).any()] or [1, 2]
        for c in present:
            g, p = (labels[example] == c).astype(float), probabilities[example, ..., c]
            scores.append((2 * (g * p).sum() + 1e-5) / (g.sum() + p.sum() + 1e-5))
        expected.append(1 - np.mean(scores))
    np.testing.assert_allclose(per_example_soft_dice(labels, logits), expected, rtol=1e-5)


def test_soft_dice_averages_only_the_classes_an_example_contains():
    labels = np.zeros((2, 4, 4, 4), np.int32)
    labels[0, :2] = 1                       # example 0: class 1 only; example 1: background only
    logits = np.zeros((2, 4, 4, 4, 3), np.float32)
    logits[0, :2, ..., 1] = 50.0            # class 1 perfect ...
    logits[0, 2:, ..., 2] = 1.0             # ... and some mass on the absent class 2
    loss = per_example_soft_dice(labels, logits).numpy()
    probabilities = softmax(logits)
    p1 = probabilities[0, ..., 1]
    g1 = (labels[0] == 1).astype(float)
    assert loss[0] == pytest.approx(1 - (2 * (g1 * p1).sum() + 1e-5) / (g1.sum() + p1.sum() + 1e-5), rel=1e-5)
    assert loss[0] < 0.2  # the absent class does not dominate
    # Background only: both organ classes count, so any organ probability costs.
    assert loss[1] > 0.9


def test_soft_dice_of_a_perfect_prediction_is_zero(batch):
    labels, _ = batch
    logits = np.eye(3, dtype=np.float32)[labels] * 50.0
    np.testing.assert_allclose(per_example_soft_dice(labels, logits), 0.0, atol=1e-5)


def test_balanced_crossentropy_gives_each_present_class_equal_weight(batch):
    labels, logits = batch
    probabilities = softmax(logits)
    expected = []
    for example in range(4):
        present = [c for c in range(3) if (labels[example] == c).any()]
        per_class = [-np.log(probabilities[example][labels[example] == c][:, c]).mean() for c in present]
        expected.append(np.mean(per_class))
    np.testing.assert_allclose(per_example_balanced_crossentropy(labels, logits), expected, rtol=1e-5)
    np.testing.assert_allclose(per_example_balanced_crossentropy(labels, probabilities, from_logits=False),
                               expected, rtol=1e-4)


def test_crossentropy_matches_keras(batch):
    labels, logits = batch
    keras_values = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    np.testing.assert_allclose(per_example_crossentropy(labels, logits), np.mean(keras_values, axis=(1, 2, 3)),
                               rtol=1e-5)


@pytest.mark.parametrize("kind", SegmentationLoss.KINDS)
def test_loss_is_the_same_on_one_device_and_two_replicas(batch, kind):
    labels, logits = batch
    inputs = keras.Input((5, 6, 7, 3))
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    values = []
    for strategy in (tf.distribute.get_strategy(),
                     tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.HierarchicalCopyAllReduce())):
        with strategy.scope():
            model = keras.Model(inputs, keras.layers.Identity()(inputs))
            model.compile(loss=SegmentationLoss(kind))
        values.append(model.evaluate(logits, labels, batch_size=4, verbose=0))
    assert values[0] == pytest.approx(values[1], rel=1e-5)
    assert values[0] == pytest.approx(float(np.mean(SegmentationLoss(kind).call(labels, logits))), rel=1e-5)


def test_loss_config_round_trips_and_rejects_unknown_kinds():
    loss = SegmentationLoss("balce")
    assert SegmentationLoss.from_config(loss.get_config()).kind == "balce"
    with pytest.raises(ValueError, match="unknown segmentation loss"):
        SegmentationLoss("focal")


def test_dice_balce_is_the_sum_of_its_parts(batch):
    labels, logits = batch
    expected = per_example_soft_dice(labels, logits) + per_example_balanced_crossentropy(labels, logits)
    np.testing.assert_allclose(SegmentationLoss("dice_balce").call(labels, logits), expected, rtol=1e-6)
