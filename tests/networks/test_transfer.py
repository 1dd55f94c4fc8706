"""Tests of dltk2.networks.transfer: every named backbone headless, grey input, head widths, freezing."""

import keras
import numpy as np
import pytest

import tensorflow as tf

from dltk2.errors import ResourceError
from dltk2.networks.transfer import (BACKBONES, GreyToBackboneInput, PreciseBatchNorm, check_backbone_weights,
                                     dense_head, headless_backbone, set_trainable_layers, transfer_classifier)
from dltk2.training.checks import prediction_spread

FEATURES = {"InceptionV3": 2048, "ResNet50V2": 2048, "DenseNet121": 1024, "EfficientNetV2B0": 1280,
            "EfficientNetV2B1": 1280, "EfficientNetV2B2": 1408, "EfficientNetV2B3": 1536, "EfficientNetV2S": 1280,
            "MobileNet": 1024}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_is_headless_and_pooled(name):
    size = 75 if name == "InceptionV3" else 32  # InceptionV3's smallest input
    backbone = headless_backbone(name, (size, size, 1))
    assert backbone.output_shape == (None, FEATURES[name])
    assert not any(layer.name == "predictions" for layer in backbone.layers)


def test_classifier_takes_grey_images_and_has_the_head_asked_for(rng):
    model = transfer_classifier("EfficientNetV2B0", (32, 32, 1), 7, head_widths=(64, 32), dropout=0.2)
    head = model.get_layer("head")
    assert [layer.units for layer in head.layers if isinstance(layer, keras.layers.Dense)] == [64, 32, 7]
    logits = model(rng.uniform(size=(2, 32, 32, 1)).astype(np.float32))
    assert logits.shape == (2, 7)


def test_grey_input_equals_the_backbone_preprocessing_of_three_equal_channels(rng):
    grey = rng.uniform(size=(1, 8, 8, 1)).astype(np.float32)
    layer = GreyToBackboneInput("ResNet50V2")
    expected = keras.applications.resnet_v2.preprocess_input(np.repeat(grey * 255.0, 3, axis=-1))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(grey)), expected, rtol=1e-5)
    assert GreyToBackboneInput.from_config(layer.get_config()).backbone == "ResNet50V2"


def test_freezing_by_layer_count_keeps_batch_norm_frozen():
    backbone = headless_backbone("EfficientNetV2B0", (32, 32, 3))
    set_trainable_layers(backbone, 0)
    assert not backbone.trainable_weights
    set_trainable_layers(backbone, 20)
    trainable = [layer for layer in backbone.layers if layer.trainable and layer.weights]
    assert trainable and all(not isinstance(layer, keras.layers.BatchNormalization) for layer in trainable)
    assert all(backbone.layers.index(layer) >= len(backbone.layers) - 20 for layer in trainable)
    set_trainable_layers(backbone, None)
    assert len(backbone.trainable_weights) > 0 and all(layer.trainable for layer in backbone.layers)


def test_dense_head_without_dropout():
    head = dense_head(10, 3, widths=(), dropout=0.0)
    assert [type(layer).__name__ for layer in head.layers] == ["InputLayer", "Dense"]


def test_unknown_backbone():
    with pytest.raises(ValueError, match="unknown backbone"):
        headless_backbone("VGG99", (32, 32, 3))


def test_a_trained_head_goes_onto_the_backbone_that_made_the_features(rng):
    from dltk2.networks.transfer import feature_extractor

    features = feature_extractor("EfficientNetV2B0", (32, 32, 1))
    head = dense_head(features.output_shape[-1], 2, widths=(8,), dropout=0.0)
    model = transfer_classifier("EfficientNetV2B0", (32, 32, 1), 2, features=features, head=head)
    assert model.get_layer("backbone") is features.get_layer("backbone") and model.get_layer("head") is head
    images = rng.uniform(size=(3, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(images)),
                               keras.ops.convert_to_numpy(head(features(images))), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="gives 2 classes, not 3"):
        transfer_classifier("EfficientNetV2B0", (32, 32, 1), 3, features=features, head=head)


def test_head_standardises_features_with_fixed_statistics(rng, tmp_path):
    codes = rng.normal(3.0, 0.01, size=(20, 6)).astype(np.float32)
    codes[:, 5] = 3.0 + rng.normal(0.0, 1e-7, 20)  # hardly varies: not blown up
    variance = codes.var(0)
    head = dense_head(6, 2, widths=(4,), dropout=0.0, feature_mean=codes.mean(0), feature_variance=variance)
    standardise = keras.Model(head.input, head.get_layer("standardise").output)
    out = keras.ops.convert_to_numpy(standardise(codes))
    np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(out.std(0), np.sqrt(variance / (variance + variance.mean())), rtol=1e-2)
    assert 0.6 < out[:, :5].std() < 1.0 and out[:, 5].std() < 1e-3
    head.save(tmp_path / "head.keras")
    loaded = keras.models.load_model(tmp_path / "head.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(codes)), keras.ops.convert_to_numpy(head(codes)),
                               rtol=1e-5, atol=1e-6)
    assert not head.get_layer("standardise").trainable_weights


def test_adapt_batch_norm_sets_moving_statistics_to_the_data_and_restores_momentum(rng):
    from dltk2.networks.transfer import adapt_batch_norm

    inner = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(momentum=0.99)], name="inner")
    model = keras.Sequential([keras.Input((3,)), inner])
    batches = [rng.normal(5.0, 2.0, size=(50, 3)).astype(np.float32) for _ in range(4)]
    assert adapt_batch_norm(model, [(b, 0) for b in batches], batches=3) == 3
    layer = inner.layers[0]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_mean),
                               np.mean([b.mean(axis=0) for b in batches[:3]], axis=0), rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_variance),
                               np.mean([b.var(axis=0) for b in batches[:3]], axis=0), rtol=1e-4)
    assert layer.momentum == 0.99


def test_a_local_weights_file_is_loaded_into_the_backbone(tmp_path):
    trained = headless_backbone("EfficientNetV2B0", (32, 32, 3))
    path = tmp_path / "efficientnetv2b0_notop.weights.h5"
    trained.save_weights(path)
    loaded = headless_backbone("EfficientNetV2B0", (32, 32, 1), weights=str(path))
    for mine, theirs in zip(loaded.weights, trained.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs))


@pytest.mark.parametrize("precise", [False, True])
def test_precise_batch_norm_keeps_a_briefly_trained_random_backbone_from_one_answer_for_all(precise):
    """The body-part defect in small: 20 steps from random weights, every validation image the same output."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 32)
    images = np.clip(rng.normal(0.2 + 0.2 * labels[:, None, None, None], 0.2, (32, 32, 32, 1)), 0, 1)
    training = tf.data.Dataset.from_tensor_slices((images.astype(np.float32), labels)).repeat().batch(8)
    validation = tf.data.Dataset.from_tensor_slices((images.astype(np.float32), labels)).batch(8)
    keras.utils.set_random_seed(0)
    model = transfer_classifier("MobileNet", (32, 32, 1), 3, head_widths=[32], dropout=0)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(training, steps_per_epoch=20, epochs=1, validation_data=validation, verbose=0,
                        callbacks=[PreciseBatchNorm(training.take(4), 4)] if precise else [])
    spread, seen = prediction_spread(model, validation)
    assert seen == 32
    if precise:  # the validation pass itself saw the re-estimated statistics
        assert spread > 0.1 and history.history["val_accuracy"][0] > 0.6
    else:
        assert spread < 1e-4


def test_imagenet_weights_offline_are_one_line_naming_the_file_and_where_it_goes(tmp_path, monkeypatch):
    import urllib.error

    import keras.src.utils.file_utils as file_utils

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "urlretrieve", offline)  # what a machine without a network sees
    monkeypatch.setattr(keras.src.backend.config, "keras_home", lambda: str(tmp_path / "keras"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(ResourceError) as caught:
        check_backbone_weights("MobileNet", "imagenet", (32, 32, 3))
    message = str(caught.value)
    assert "\n" not in message and "cannot download the ImageNet weights of MobileNet" in message
    url = message.split(":", 2)[0] + ":" + message.split(":", 2)[1]
    assert url.startswith("https://") and url.endswith("_no_top.h5")
    assert f"put it at {tmp_path / 'keras' / 'models' / url.rsplit('/', 1)[-1]}" in message
    with pytest.raises(FileNotFoundError, match="^nowhere.h5: no such weights file"):
        check_backbone_weights("MobileNet", "nowhere.h5", (32, 32, 3))
    check_backbone_weights("MobileNet", None, (32, 32, 3))
