"""Grad-CAM against the class activation map it reduces to, occlusion against its brute-force definition."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf

from dltk2.inference.saliency import feature_function, grad_cam, occlusion_sensitivity, resize_map

RNG = np.random.default_rng(7)


def gap_classifier(input_shape, classes=3, strides=1, name="gap_classifier"):
    """Convolution (ReLU), global average pooling, one dense layer: Grad-CAM is then Zhou's CAM.

    Every class weighs the first feature channel positively, so no class's map is all zero by chance.
    """
    keras.utils.set_random_seed(0)
    convolution = keras.layers.Conv2D if len(input_shape) == 3 else keras.layers.Conv3D
    pooling = keras.layers.GlobalAveragePooling2D if len(input_shape) == 3 else keras.layers.GlobalAveragePooling3D
    inputs = keras.Input(input_shape)
    features = convolution(4, 3, strides=strides, padding="same", activation="relu", name="features")(inputs)
    dense = keras.layers.Dense(classes, name="logits")
    model = keras.Model(inputs, dense(pooling()(features)), name=name)
    kernel = RNG.normal(size=(4, classes)).astype(np.float32)
    kernel[0] = np.abs(kernel[0]) + 0.5
    dense.set_weights([kernel, np.zeros(classes, np.float32)])
    return model


def class_activation_map(model, batch, class_index):
    """Zhou et al.'s CAM with numpy: the dense weights of the class on the last feature map, ReLU, / max."""
    features = keras.Model(model.inputs[0], model.get_layer("features").output)(batch).numpy()
    weights = model.get_layer("logits").get_weights()[0][:, class_index]
    cam = np.maximum(np.tensordot(features, weights, axes=([-1], [0])), 0.0)
    return cam / cam.max(axis=tuple(range(1, cam.ndim)), keepdims=True)


@pytest.mark.parametrize("shape", [(12, 10, 1), (6, 8, 7, 1)], ids=["2D", "3D"])
def test_grad_cam_of_a_pooled_dense_network_is_its_class_activation_map(shape):
    model = gap_classifier(shape)
    batch = RNG.normal(size=(2, *shape)).astype(np.float32)
    maps = grad_cam(model, batch, class_index=1).numpy()
    assert maps.shape == (2, *shape[:-1]) and maps.max() == pytest.approx(1.0)
    np.testing.assert_allclose(maps, class_activation_map(model, batch, 1), atol=1e-5)
    predicted = np.argmax(model(batch).numpy(), axis=-1)
    for index, example in enumerate(grad_cam(model, batch).numpy()):
        np.testing.assert_allclose(example, class_activation_map(model, batch[index:index + 1], predicted[index])[0],
                                   atol=1e-5)


def test_a_coarser_feature_map_comes_back_on_the_input_grid_trilinearly():
    maps = RNG.uniform(size=(2, 3, 4, 5)).astype(np.float32)
    resized = resize_map(maps, [6, 8, 15]).numpy()
    # Half-pixel centres with the edges held: scipy's zoom on the grid of voxel edges.
    expected = np.stack([scipy.ndimage.zoom(m, (2, 2, 3), order=1, grid_mode=True, mode="nearest") for m in maps])
    np.testing.assert_allclose(resized, expected, atol=1e-5)
    model = gap_classifier((8, 8, 8, 1), strides=2)
    assert grad_cam(model, RNG.normal(size=(1, 8, 8, 8, 1)).astype(np.float32)).shape == (1, 8, 8, 8)


def test_a_backbone_nested_as_in_transfer_classifier_is_looked_into():
    backbone = gap_classifier((10, 10, 3), classes=5, name="backbone")
    backbone = keras.Model(backbone.inputs, backbone.layers[-2].output, name="backbone")  # pooled features out
    inputs = keras.Input((10, 10, 1))
    head = keras.layers.Dense(2, name="logits")
    model = keras.Model(inputs, head(backbone(keras.layers.Conv2D(3, 1, name="to_backbone_input")(inputs))))
    batch = RNG.normal(size=(1, 10, 10, 1)).astype(np.float32)
    features, _ = feature_function(model)(batch)
    weights = head.get_weights()[0][:, 0]
    cam = np.maximum(np.tensordot(features.numpy(), weights, axes=([-1], [0])), 0.0)
    np.testing.assert_allclose(grad_cam(model, batch, class_index=0).numpy(), cam / cam.max(), atol=1e-5)
    with pytest.raises(ValueError, match="no global pooling"):
        grad_cam(keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)]),
                 np.zeros((1, 4, 4, 1), np.float32))


def bright_spot_detector(shape):
    """Class 1's score rises with bright voxels: both maps must point at a planted bright spot."""
    model = gap_classifier(shape, classes=2)
    kernel, bias = model.get_layer("features").get_weights()
    model.get_layer("features").set_weights([np.full_like(kernel, 0.1), np.zeros_like(bias)])
    dense_kernel = np.zeros((4, 2), np.float32)
    dense_kernel[:, 1] = 1.0
    model.get_layer("logits").set_weights([dense_kernel, np.zeros(2, np.float32)])
    return model


@pytest.mark.parametrize("shape, spot", [((16, 16, 1), (slice(9, 12), slice(3, 6))),
                                         ((8, 12, 12, 1), (slice(2, 4), slice(7, 10), slice(1, 4)))],
                         ids=["2D", "3D"])
def test_both_maps_point_at_a_planted_finding(shape, spot):
    model = bright_spot_detector(shape)
    image = RNG.uniform(0, 0.05, size=shape).astype(np.float32)
    image[spot] = 1.0
    inside = np.zeros(shape[:-1], bool)
    inside[spot] = True
    cam = grad_cam(model, image[np.newaxis], class_index=1).numpy()[0]
    assert inside[np.unravel_index(np.argmax(cam), cam.shape)]
    occlusion = occlusion_sensitivity(model, image, class_index=1, patch=[2] * len(spot), stride=[1] * len(spot)).numpy()
    assert occlusion.shape == shape[:-1] and inside[np.unravel_index(np.argmax(occlusion), occlusion.shape)]


def test_occlusion_is_the_mean_drop_of_the_patches_covering_each_pixel():
    model = gap_classifier((9, 7, 1), classes=3)
    image = RNG.normal(size=(9, 7, 1)).astype(np.float32)
    patch, stride = (4, 3), (2, 2)
    probabilities = lambda x: tf.nn.softmax(model(x[np.newaxis])).numpy()[0]  # noqa: E731
    drops, counts = np.zeros((3, 9, 7)), np.zeros((9, 7))
    for top in (0, 2, 4, 5):  # every stride, and the last flush with the edge
        for left in (0, 2, 4):
            occluded = image.copy()
            occluded[top:top + 4, left:left + 3] = 0.5
            drops[:, top:top + 4, left:left + 3] += (probabilities(image) - probabilities(occluded))[:, None, None]
            counts[top:top + 4, left:left + 3] += 1
    expected = np.maximum(drops / counts, 0)
    class_index = int(np.argmax(expected.max(axis=(1, 2))))  # a class some patch lowers
    answered = occlusion_sensitivity(model, image, class_index=class_index, patch=patch, stride=stride, fill=0.5,
                                     batch_size=5).numpy()
    np.testing.assert_allclose(answered, expected[class_index] / expected[class_index].max(), atol=1e-5)


def test_dltk_resnet_gets_a_map_on_its_crop():
    from dltk2.networks.resnet import resnet_3d

    model = resnet_3d((16, 16, 16, 1), num_classes=2, filters=(4, 8, 8, 8))
    maps = grad_cam(model, RNG.normal(size=(2, 16, 16, 16, 1)).astype(np.float32)).numpy()
    assert maps.shape == (2, 16, 16, 16) and np.isfinite(maps).all() and 0.0 <= maps.min() and maps.max() <= 1.0


def test_a_served_2d_classifier_explains_on_the_raw_images_grid(tmp_path):
    from dltk2.export import call_signature, export_predictor
    from dltk2.inference import ImageClassifier2D, grey_image_input

    classifier = ImageClassifier2D(bright_spot_detector((16, 16, 1)), 16, ["clear", "spot"])
    image = RNG.uniform(0, 50, size=(30, 21)).astype(np.float32)  # not square: padded left and right
    image[20:24, 4:8] = 4000.0
    explained = classifier.explain(image)
    saliency = explained["saliency"]
    assert saliency.shape == (30, 21) and int(explained["class_id"]) == int(classifier.classify(image)["class_id"])
    assert 20 <= np.unravel_index(np.argmax(saliency), saliency.shape)[0] < 24
    # The same as Grad-CAM on the network's input, with the padding (where a ones image lands) cut off.
    network_input = grey_image_input(tf.constant(image), 16)[tf.newaxis]
    cam = grad_cam(classifier.model, network_input, int(explained["class_id"])).numpy()[0]
    rows, columns = np.nonzero(tf.image.resize_with_pad(tf.ones((30, 21, 1)), 16, 16).numpy()[..., 0] > 0.5)
    inside = cam[rows.min():rows.max() + 1, columns.min():columns.max() + 1]
    np.testing.assert_allclose(saliency, resize_map(inside[np.newaxis], (30, 21)).numpy()[0], atol=1e-5)
    mirrored = ImageClassifier2D(classifier.model, 16, ["clear", "spot"], mirror_axes=[1])
    assert int(mirrored.explain(image)["class_id"]) == int(mirrored.classify(image)["class_id"])
    _, saved_model = export_predictor(tmp_path, classifier)
    served = call_signature(saved_model, {"image": image}, name="explain")
    np.testing.assert_allclose(served["saliency"], saliency, atol=1e-5)


def test_a_served_series_classifier_explains_every_slice_and_a_fold_ensemble_does_not():
    from dltk2.inference import SeriesClassifier

    classifier = SeriesClassifier(bright_spot_detector((4, 8, 8, 1)), 4, 8, ["clear", "spot"])
    series = RNG.uniform(0, 10, size=(9, 20, 20)).astype(np.float32)
    series[4:6, 12:16, 4:8] = 500.0
    saliency = classifier.explain(series)["saliency"]
    assert saliency.shape == (9, 20, 20)
    peak = np.unravel_index(np.argmax(saliency), saliency.shape)
    assert 3 <= peak[0] <= 6 and 11 <= peak[1] < 17 and 3 <= peak[2] < 9  # the spot, within the resampling
    assert "explain" in classifier.serving_functions()
    stacked = SeriesClassifier(classifier.model, 4, 8, ["clear", "spot"], model_outputs="fold_probabilities")
    assert "explain" not in stacked.serving_functions()


def _crop_cam(model, crop, class_index):
    """Grad-CAM of one crop in its own units (a GAP-dense network: its CAM / the feature map's voxels)."""
    features = keras.Model(model.inputs[0], model.get_layer("features").output)(crop[np.newaxis]).numpy()[0]
    weights = model.get_layer("logits").get_weights()[0][:, class_index]
    return np.maximum(np.tensordot(features, weights, axes=([-1], [0])), 0.0) / features[..., 0].size


def test_a_crop_averaging_predictor_explains_the_mean_of_its_crops_on_the_volume():
    from dltk2.inference import CropAveragingPredictor

    model = gap_classifier((6, 6, 6, 1), classes=2)
    predictor = CropAveragingPredictor(model, [6, 6, 6], num_crops=3)
    volume = RNG.normal(10, 3, size=(8, 9, 7)).astype(np.float32)
    explained = predictor.run("explain", image=volume)
    served = predictor.predict(image=volume)
    assert explained["saliency"].shape == (8, 9, 7) and int(explained["class_id"]) == int(served["class_id"])
    np.testing.assert_allclose(explained["probabilities"], served["probabilities"], atol=1e-6)
    # By hand: whiten, each crop's map of the served class placed at its corner, mean where they overlap.
    whitened = ((volume - volume.mean()) / volume.std())[..., np.newaxis]
    total, covered = np.zeros(volume.shape), np.zeros(volume.shape)
    for corner in served["crop_corners"]:
        place = tuple(slice(c, c + 6) for c in corner)
        total[place] += _crop_cam(model, whitened[place], int(served["class_id"]))
        covered[place] += 1
    expected = np.divide(total, covered, out=np.zeros_like(total), where=covered > 0)
    np.testing.assert_allclose(explained["saliency"], expected / expected.max(), atol=1e-5)
    assert (explained["saliency"][covered == 0] == 0).all()
    mirrored = CropAveragingPredictor(model, [6, 6, 6], num_crops=3, mirror_axes=[2])
    assert int(mirrored.run("explain", image=volume)["class_id"]) == int(mirrored.predict(image=volume)["class_id"])


def test_a_crop_averaging_explanation_follows_the_scan_into_any_orientation_and_spacing(tmp_path):
    from dltk2.export import call_signature, export_predictor
    from dltk2.inference import CropAveragingPredictor

    model = bright_spot_detector((8, 8, 8, 1))
    kernel, bias = model.get_layer("logits").get_weights()
    model.get_layer("logits").set_weights([kernel[:, ::-1].copy(), bias])  # regression serves output 0
    predictor = CropAveragingPredictor(model, [8, 8, 8], num_crops=4, task="regression", orientation="LPS",
                                       spacing_mm=[2.0, 2.0, 2.0])
    volume = RNG.uniform(0, 5, size=(10, 12, 11)).astype(np.float32)  # (z, y, x), LPS, 2 mm
    volume[6:8, 2:4, 7:9] = 100.0
    lps = {"image": volume, "spacing": np.array([2.0, 2.0, 2.0]), "direction": np.eye(3).ravel()}
    explained = predictor.run("explain", **lps)
    assert explained["prediction"] == pytest.approx(float(predictor.predict(**lps)["prediction"]), rel=1e-5)
    peak = np.unravel_index(np.argmax(explained["saliency"]), volume.shape)
    assert 6 <= peak[0] < 8 and 2 <= peak[1] < 4 and 7 <= peak[2] < 9
    # The same scan stored RAS (x and y reversed): the same map, reversed the same way.
    ras = {"image": volume[:, ::-1, ::-1].copy(), "spacing": np.array([2.0, 2.0, 2.0]),
           "direction": np.diag([-1.0, -1.0, 1.0]).ravel()}
    np.testing.assert_allclose(predictor.run("explain", **ras)["saliency"][:, ::-1, ::-1], explained["saliency"],
                               atol=1e-5)
    # At 1 mm across x the graph resamples to 2 mm and the map comes back on the 1 mm grid, peak in place.
    fine = {"image": np.repeat(volume, 2, axis=2), "spacing": np.array([1.0, 2.0, 2.0]), "direction": np.eye(3).ravel()}
    saliency = predictor.run("explain", **fine)["saliency"]
    assert saliency.shape == (10, 12, 22)
    peak = np.unravel_index(np.argmax(saliency), saliency.shape)
    assert 6 <= peak[0] < 8 and 2 <= peak[1] < 4 and 13 <= peak[2] < 19
    _, saved_model = export_predictor(tmp_path, predictor)
    np.testing.assert_allclose(call_signature(saved_model, lps, name="explain")["saliency"], explained["saliency"],
                               atol=1e-5)
    stacked = CropAveragingPredictor(model, [8, 8, 8], model_outputs="fold_probabilities")
    assert "explain" not in stacked.serving_functions()
