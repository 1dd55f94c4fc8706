"""Tests of dltk2.inference.grey_image_input and ImageClassifier2D (the 2D serving function)."""

import keras
import numpy as np
import tensorflow as tf

from dltk2.export import call_signature, export_predictor
from dltk2.inference import ImageClassifier2D, grey_image_input


def test_grey_image_input_scales_and_pads_keeping_the_aspect_ratio():
    image = np.zeros((10, 20), np.uint16)
    image[:, 10:] = 4000
    out = grey_image_input(tf.constant(image), 8).numpy()
    assert out.shape == (8, 8, 1) and out.min() == 0.0 and out.max() == 1.0
    expected = tf.image.resize_with_pad(image[..., None].astype(np.float32) / 4000.0, 8, 8).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert not out[:2].any() and not out[-2:].any()  # 10x20 -> 4x8: two padded rows above and below
    assert not grey_image_input(tf.ones((5, 5)), 4).numpy().any()  # constant image -> zeros


def mean_intensity_model(size):
    inputs = keras.Input((size, size, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    logits = keras.layers.Dense(2)(pooled)
    model = keras.Model(inputs, logits)
    model.layers[-1].set_weights([np.array([[-10.0, 10.0]], np.float32), np.array([1.0, -1.0], np.float32)])
    return model


def test_classifier_and_its_export_agree(tmp_path, rng):
    classifier = ImageClassifier2D(mean_intensity_model(16), 16, ["dark", "bright"])
    bright = np.zeros((30, 20), np.float32)
    bright[5:25, 3:17] = 900.0
    dark = np.full((30, 20), 5.0, np.float32)
    dark[0, 0] = 900.0
    outputs = classifier.classify(bright)
    assert outputs["class_name"] == b"bright" and abs(outputs["probabilities"].sum() - 1) < 1e-6
    assert classifier.classify(dark)["class_name"] == b"dark"
    _, saved_model = export_predictor(tmp_path / "m", classifier, {"image": dark})
    served = call_signature(saved_model, {"image": bright})
    np.testing.assert_allclose(served["probabilities"], outputs["probabilities"], rtol=1e-6)
    assert served["class_name"] == b"bright" and int(served["class_id"]) == 1
