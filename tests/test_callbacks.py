"""Tests of dltk2.callbacks.SegmentationValidation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dltk2.callbacks import SegmentationValidation, label_overlay, validation_panel
from dltk2.io.image import write_image


class OracleSegmenter(keras.Model):
    """Reads the label back from the image (image = label / 10): a perfect segmenter, for the test."""

    def call(self, inputs):
        labels = tf.cast(tf.round(inputs[..., 0] * 10.0), tf.int32)
        return tf.one_hot(labels, 4) * 20.0


@pytest.fixture
def cases(tmp_path, rng):
    paths = []
    for index in range(2):
        label = np.zeros((12, 14, 10), np.uint8)
        label[2:6, 3:9, 2:7] = 1
        label[7:10, 5:12, 4:9] = 2 if index == 0 else 1  # class 2 only in the first case; class 3 never
        write_image(label.astype(np.float32) / 10.0, tmp_path / f"img{index}.nii.gz")
        write_image(label, tmp_path / f"label{index}.nii.gz")
        paths.append((str(tmp_path / f"img{index}.nii.gz"), str(tmp_path / f"label{index}.nii.gz")))
    return paths


def test_perfect_segmentation_scores_one_and_absent_classes_are_none(cases, tmp_path):
    callback = SegmentationValidation(cases, (8, 8, 8), {0: "background", 1: "a", 2: "b", 3: "c"}, tmp_path / "logs")
    model = OracleSegmenter()
    model.compile(optimizer="adam")
    model.optimizer.build([])
    callback.set_model(model)
    means, (image, truth, prediction) = callback.evaluate()
    assert means == {1: pytest.approx(1.0), 2: pytest.approx(1.0), 3: None}
    np.testing.assert_array_equal(prediction, truth)
    logs = {}
    callback.on_epoch_end(0, logs)
    assert logs["val_mean_dice"] == pytest.approx(1.0)
    (events,) = (tmp_path / "logs" / "validation_dice").glob("events.out.tfevents.*")
    written = {value.tag: (event.step, value) for event in tf.compat.v1.train.summary_iterator(str(events))
               for value in event.summary.value}
    assert set(written) == {"dice/a", "dice/b", "validation/image_reference_prediction"}  # the mean once, elsewhere
    step, picture = written["validation/image_reference_prediction"]
    assert step == 0 and tf.io.decode_png(picture.tensor.string_val[2]).shape == (266, 570, 3)  # 14x10 slices, 19 times


def test_overlay_is_rgb_and_colours_only_labelled_pixels(rng):
    image = rng.normal(size=(6, 7))
    label = np.zeros((6, 7), np.int32)
    label[2, 3] = 5
    overlay = label_overlay(image, label, 14)
    assert overlay.shape == (6, 7, 3) and overlay.dtype == np.uint8
    assert (overlay[label == 0][:, 0] == overlay[label == 0][:, 1]).all()  # grey where unlabelled


def test_the_validation_panel_shows_image_reference_and_prediction_through_the_organs():
    image = np.zeros((10, 8, 6))
    truth = np.zeros((10, 8, 6), np.int32)
    truth[7, 2:4, 1:3] = 1
    prediction = truth.copy()
    prediction[7, 5, 5] = 2
    panel = validation_panel(image, truth, prediction, 3, min_height=32)
    assert panel.shape == (32, 72, 3)  # three 8x6 slices side by side, enlarged 4 times
    grey, reference, predicted = np.split(panel, 3, axis=1)
    assert (grey == grey[..., :1]).all() and not (reference == reference[..., :1]).all()
    assert not np.array_equal(reference, predicted)  # slice 7, where the organs are
