"""Tests of dltk2.inference: TF whitening, crop corners, crop-averaged prediction."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dltk2.inference import CropAveragingPredictor, pad_to_at_least, random_crop_corners, tf_whitening
from dltk2.preprocessing import resize_image_with_crop_or_pad, whitening


def test_tf_whitening_matches_numpy(rng):
    volume = rng.normal(500.0, 80.0, size=(9, 10, 11)).astype(np.float32)
    np.testing.assert_allclose(tf_whitening(volume).numpy(), whitening(volume), atol=1e-5)
    np.testing.assert_array_equal(tf_whitening(np.full((3, 3, 3), 2.0, np.float32)).numpy(), 0.0)


def test_pad_to_at_least_matches_resize_with_crop_or_pad(rng):
    volume = rng.normal(size=(5, 9, 4, 1)).astype(np.float32)
    padded = pad_to_at_least(tf.constant(volume), [8, 6, 7]).numpy()
    np.testing.assert_array_equal(padded, resize_image_with_crop_or_pad(volume, (8, 9, 7)))


def test_crop_corners_are_reproducible_valid_and_cover_all_positions():
    shape = tf.constant([6, 5, 4])
    corners = random_crop_corners(shape, [4, 4, 4], 500, tf.constant(7)).numpy()
    np.testing.assert_array_equal(corners, random_crop_corners(shape, [4, 4, 4], 500, tf.constant(7)).numpy())
    assert not np.array_equal(corners, random_crop_corners(shape, [4, 4, 4], 500, tf.constant(8)).numpy())
    assert corners.min() >= 0 and (corners <= np.array([2, 1, 0])).all()
    assert {tuple(c) for c in corners} == {(z, y, 0) for z in range(3) for y in range(2)}


class CornerProbe(keras.Model):
    """Returns, per crop, its first voxel: lets the test see exactly which crops were taken."""

    def call(self, inputs):
        return tf.reshape(inputs[:, 0, 0, 0, :1], (-1, 1))


def test_crop_averaging_predicts_the_mean_over_the_crops_it_reports(rng):
    volume = rng.normal(100.0, 10.0, size=(12, 10, 9)).astype(np.float32)
    predictor = CropAveragingPredictor(CornerProbe(), (6, 6, 6), num_crops=5, task="regression")
    outputs = predictor(volume, tf.constant(3))
    whitened = whitening(volume)
    values = [whitened[z, y, x] for z, y, x in outputs["crop_corners"].numpy()]
    assert float(outputs["prediction"]) == pytest.approx(np.mean(values), abs=1e-5)
    assert float(outputs["prediction_std"]) == pytest.approx(np.std(values), abs=1e-5)


def test_classification_averages_probabilities_and_pads_small_volumes(rng):
    inputs = keras.Input((8, 8, 8, 1))
    logits = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling3D()(inputs))
    model = keras.Model(inputs, logits)
    predictor = CropAveragingPredictor(model, (8, 8, 8), num_crops=4)
    volume = rng.normal(size=(5, 9, 7)).astype(np.float32)  # smaller than the crop along z and x
    outputs = predictor(volume, tf.constant(0))
    assert outputs["probabilities"].shape == (3,)
    assert float(tf.reduce_sum(outputs["probabilities"])) == pytest.approx(1.0, abs=1e-6)
    assert int(outputs["class_id"]) == int(np.argmax(outputs["probabilities"]))
    serving = predictor.serving_functions()
    np.testing.assert_allclose(serving["serving_default"](volume)["probabilities"], outputs["probabilities"])


def test_predictor_rejects_bad_arguments():
    with pytest.raises(ValueError, match="task"):
        CropAveragingPredictor(CornerProbe(), (4, 4, 4), task="segmentation")
    with pytest.raises(ValueError, match="num_crops"):
        CropAveragingPredictor(CornerProbe(), (4, 4, 4), num_crops=0)
