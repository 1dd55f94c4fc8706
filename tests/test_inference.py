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


def x_slope_classifier(crop_size) -> keras.Model:
    """Logits (0, 40 * the mean rise along the crop's x axis): flipping or transposing the input changes them."""
    inputs = keras.Input(tuple(crop_size) + (1,))
    difference = keras.layers.Conv3D(1, (1, 1, 2), use_bias=False, name="x_difference")
    pooled = keras.layers.GlobalAveragePooling3D()(difference(inputs))
    head = keras.layers.Dense(2, name="head")
    logits = head(pooled)
    model = keras.Model(inputs, logits)
    difference.set_weights([np.array([-1.0, 1.0], np.float32).reshape(1, 1, 2, 1, 1)])
    head.set_weights([np.array([[0.0, 40.0]], np.float32), np.zeros(2, np.float32)])
    return model


def test_one_volume_in_all_48_orientations_gets_the_same_probabilities(rng):
    import SimpleITK as sitk

    from dltk2.io.orientation import all_axis_codes, reorient_image

    ramp = np.linspace(-1.0, 2.0, 16)[None, None, :] + rng.normal(0, 0.3, (14, 12, 16))
    reference = sitk.GetImageFromArray(ramp.astype(np.float32))
    reference.SetSpacing((1.5, 2.0, 2.5))
    reference.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))  # RAS, as ITK reads a NIfTI of nibabel's identity
    predictor = CropAveragingPredictor(x_slope_classifier((8, 8, 8)), (8, 8, 8), num_crops=3, orientation="RAS",
                                       spacing_mm=(2.0, 2.0, 2.0))
    def predict(image):
        return predictor.run("predict_with_seed", image=sitk.GetArrayFromImage(image), spacing=image.GetSpacing(),
                             direction=image.GetDirection(), seed=5)
    expected = predict(reference)
    assert expected["probabilities"][1] > 0.6
    blind = CropAveragingPredictor(x_slope_classifier((8, 8, 8)), (8, 8, 8), num_crops=3)
    for codes in all_axis_codes():
        image = reorient_image(reference, codes)
        outputs = predict(image)
        np.testing.assert_array_equal(outputs["probabilities"], expected["probabilities"], err_msg=codes)
        np.testing.assert_array_equal(outputs["crop_corners"], expected["crop_corners"])
        if codes == "LAS":
            mirrored = blind.predict(image=sitk.GetArrayFromImage(image))["probabilities"]
            assert mirrored[1] < 0.4  # without the orientation the slope falls: the other class
    assert predictor.input_names() == ["image", "spacing", "direction"]
    assert predictor.input_names("predict_with_seed") == ["image", "spacing", "direction", "seed"]
    with pytest.raises(ValueError, match="missing direction"):
        predictor.predict(image=sitk.GetArrayFromImage(reference), spacing=reference.GetSpacing())


def test_the_training_spacing_is_reached_in_the_graph_as_simpleitk_resamples(rng):
    import SimpleITK as sitk

    from dltk2.preprocessing import resample_to_spacing

    image = sitk.GetImageFromArray(rng.normal(100.0, 10.0, (10, 12, 14)).astype(np.float32))
    image.SetSpacing((1.2, 0.9, 3.0))
    predictor = CropAveragingPredictor(CornerProbe(), (4, 4, 4), orientation="LPS", spacing_mm=(2.0, 2.0, 2.0))
    on_grid = predictor.to_training_grid(sitk.GetArrayFromImage(image), tf.constant(image.GetSpacing(), tf.float64),
                                         tf.constant(image.GetDirection(), tf.float64)).numpy()
    expected = sitk.GetArrayFromImage(resample_to_spacing(image, (2.0, 2.0, 2.0)))
    assert on_grid.shape == expected.shape
    np.testing.assert_allclose(on_grid, expected, atol=1e-3)
    with pytest.raises(ValueError, match="spacing_mm needs an orientation"):
        CropAveragingPredictor(CornerProbe(), (4, 4, 4), spacing_mm=(2.0, 2.0, 2.0))
