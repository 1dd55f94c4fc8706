"""Tests of dltk2.networks.resnet (DLTK's 3D residual network)."""

import keras
import numpy as np
import pytest

from helpers import batch_norm_momenta
from dltk2.networks.layers import ResidualUnit3D
from dltk2.networks.resnet import resnet_3d


def dltk_parameter_count(filters, strides, num_res_units, num_classes, in_channels=1):
    """Counts DLTK's resnet_3d parameters by hand: convolutions without bias, BN (4 per channel)."""
    total = 27 * in_channels * filters[0]
    for scale in range(1, len(filters)):
        for unit in range(num_res_units):
            c_in = filters[scale - 1] if unit == 0 else filters[scale]
            c_out = filters[scale]
            k0 = (2 * strides[scale] if unit == 0 and strides[scale] > 1 else 3) ** 3
            total += 4 * c_in + k0 * c_in * c_out + 4 * c_out + 27 * c_out * c_out
    total += 4 * filters[-1] + filters[-1] * num_classes + num_classes
    return total


def test_ixi_configuration_has_dltks_parameter_count():
    filters, strides = (16, 32, 64, 128, 256), (1, 2, 2, 2, 2)
    model = resnet_3d((64, 96, 96, 1), num_classes=2, num_res_units=2, filters=filters, strides=strides)
    expected = dltk_parameter_count(filters, strides, 2, 2)
    assert model.count_params() == expected == 9_844_210


@pytest.mark.parametrize("shape", [(16, 16, 16), (15, 17, 9), (7, 5, 3)])
def test_any_input_size_gives_logits(shape, rng):
    model = resnet_3d(num_classes=3, num_res_units=2, filters=(4, 8, 16), strides=(1, 2, 2))
    logits = model(rng.normal(size=(2,) + shape + (1,)).astype(np.float32))
    assert logits.shape == (2, 3)


def test_strided_unit_halves_odd_sizes_like_its_convolution(rng):
    unit = ResidualUnit3D(8, strides=(2, 2, 1))
    outputs = unit(rng.normal(size=(1, 9, 10, 5, 4)).astype(np.float32))
    assert outputs.shape == (1, 5, 5, 5, 8)
    assert unit.conv_0.kernel.shape == (4, 4, 3, 4, 8)  # kernel twice the stride where strided


def test_unit_with_fewer_output_channels_projects_the_shortcut(rng):
    unit = ResidualUnit3D(2)
    assert unit(rng.normal(size=(1, 4, 4, 4, 6)).astype(np.float32)).shape == (1, 4, 4, 4, 2)
    assert unit.projection is not None


def test_get_config_round_trips_with_identical_outputs(rng):
    model = resnet_3d((12, 12, 12, 1), num_classes=2, num_res_units=2, filters=(4, 8, 8), strides=(1, 2, 2),
                      l2_regularisation=1e-3)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    inputs = rng.normal(size=(2, 12, 12, 12, 1)).astype(np.float32)
    np.testing.assert_allclose(model(inputs), clone(inputs), rtol=1e-5, atol=1e-6)
    assert len(clone.losses) == len(model.losses) > 0  # the L2 regulariser came along
    unit = model.get_layer("unit_1_0")
    assert ResidualUnit3D.from_config(unit.get_config()).get_config() == unit.get_config()


def test_batch_norm_momentum_reaches_every_batch_norm_and_is_saved(tmp_path):
    model = resnet_3d((8, 8, 8, 1), num_classes=2, num_res_units=2, filters=(4, 8), strides=(1, 2),
                      batch_norm_momentum=0.9)
    norms = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 5 and batch_norm_momenta(model) == {0.9}  # 2 per unit and pool_bn
    model.save(tmp_path / "model.keras")
    assert batch_norm_momenta(keras.saving.load_model(tmp_path / "model.keras")) == {0.9}
    assert resnet_3d((8, 8, 8, 1), filters=(4, 8), strides=(1, 2)).get_layer("pool_bn").momentum == 0.99


def test_unit_moving_mean_moves_by_one_minus_the_momentum(rng):
    inputs = rng.normal(3.0, 2.0, size=(2, 4, 4, 4, 3)).astype(np.float32)
    unit = ResidualUnit3D(3, batch_norm_momentum=0.75)
    unit(inputs, training=True)
    np.testing.assert_allclose(unit.norm_0.moving_mean.numpy(), 0.25 * inputs.mean(axis=(0, 1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(unit.norm_0.moving_variance.numpy(),
                               0.75 + 0.25 * inputs.var(axis=(0, 1, 2, 3), ddof=1), rtol=1e-4)


def test_saved_and_loaded_keras_file_predicts_the_same(tmp_path, rng):
    model = resnet_3d((8, 8, 8, 1), num_classes=2, filters=(4, 8), strides=(1, 2))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    inputs = rng.normal(size=(1, 8, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(model(inputs), loaded(inputs), rtol=1e-5, atol=1e-6)


def test_regression_has_one_output():
    model = resnet_3d((8, 8, 8, 1), task="regression", filters=(4, 8), strides=(1, 2))
    assert model.output_shape == (None, 1)
    assert model.layers[-1].name == "prediction"


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError, match="one entry per scale"):
        resnet_3d(filters=(4, 8), strides=(1,))
    with pytest.raises(ValueError, match="task"):
        resnet_3d(task="segmentation")


def test_r3d_18_has_torchvisions_parameter_count_and_layer_shapes():
    from dltk2.networks.resnet import r3d_18

    model = r3d_18((16, 112, 112, 3), num_classes=400)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 33_371_472  # torchvision.models.video.r3d_18: num_params
    # Keras counts batch norm's moving mean and variance too (PyTorch keeps them as buffers).
    batch_norm_channels = 64 + 4 * 64 + 5 * 128 + 5 * 256 + 5 * 512
    assert model.count_params() == 33_371_472 + 2 * batch_norm_channels
    shapes = {name: model.get_layer(name).output.shape[1:] for name in
              ("stem_relu", "layer1_1_relu", "layer2_1_relu", "layer3_1_relu", "layer4_1_relu", "fc")}
    # torchvision's (C, T, H, W) for a 3x16x112x112 clip, channels last here.
    assert shapes == {"stem_relu": (16, 56, 56, 64), "layer1_1_relu": (16, 56, 56, 64),
                      "layer2_1_relu": (8, 28, 28, 128), "layer3_1_relu": (4, 14, 14, 256),
                      "layer4_1_relu": (2, 7, 7, 512), "fc": (400,)}


def test_r3d_18_for_grey_series_of_any_size_round_trips(rng, tmp_path):
    from dltk2.networks.resnet import r3d_18

    model = r3d_18((None, None, None, 1), num_classes=2, dropout=0.2)
    for shape in ((1, 5, 17, 23, 1), (2, 8, 32, 32, 1)):
        assert model(rng.normal(size=shape).astype(np.float32)).shape == (shape[0], 2)
    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    series = rng.normal(size=(1, 4, 24, 24, 1)).astype(np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(copy(series)), keras.ops.convert_to_numpy(model(series)),
                               rtol=1e-5, atol=1e-5)


def test_r3d_18_trunk_weights_load_into_a_model_with_another_head(tmp_path):
    from dltk2.networks.resnet import r3d_18

    source = r3d_18((None, None, None, 1), num_classes=400)
    source.save_weights(tmp_path / "r3d_18.weights.h5")
    target = r3d_18((8, 32, 32, 1), num_classes=2)
    head_before = target.get_layer("fc").get_weights()[0].copy()
    target.load_weights(tmp_path / "r3d_18.weights.h5", skip_mismatch=True)  # what train.py --weights does
    for name in ("stem_conv", "layer4_1_conv2_conv", "layer4_1_conv2_bn"):
        for a, b in zip(source.get_layer(name).get_weights(), target.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(target.get_layer("fc").get_weights()[0], head_before)
