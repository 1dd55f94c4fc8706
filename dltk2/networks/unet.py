"""DLTK's 3D residual U-Nets for segmentation.

Encoder: a 3x3x3 stem convolution, then one scale per entry of ``filters`` after the first, each of
``num_res_units`` pre-activation residual units (the first strided; see
:class:`dltk2.networks.layers.ResidualUnit3D`). Decoder: at each scale the coarser features are
linearly upsampled and concatenated with the encoder's features of that scale, then residual units
with that scale's filters. A 1x1x1 convolution gives per-voxel logits for ``num_classes``.

``residual_unet_3d`` is symmetric (``num_res_units`` in the decoder too); ``asymmetric_residual_unet_3d``
keeps a deep encoder and a light decoder of one unit per scale, which saves memory and time for the
same receptive field. Inputs are (batch, z, y, x, channels) of any size; outputs have the input's
spatial size and stay float32 under mixed precision.
"""

from __future__ import annotations

from typing import Sequence

import keras

from dltk2.networks.layers import FusedBatchNormalization, ResidualUnit3D, UpsampleAndConcat3D, as_triple


def _encoder(inputs, filters, strides, num_res_units, activation, regulariser, use_bias):
    if len(filters) != len(strides):
        raise ValueError(f"filters ({len(filters)}) and strides ({len(strides)}) must have one entry per scale")
    if num_res_units < 1:
        raise ValueError(f"num_res_units must be >= 1, got {num_res_units}")
    x = keras.layers.Conv3D(
        filters[0], 3, strides=as_triple(strides[0]), padding="same", use_bias=use_bias,
        kernel_initializer=keras.initializers.VarianceScaling(distribution="uniform"),
        kernel_regularizer=regulariser, name="stem_conv",
    )(inputs)
    scales = [x]
    for scale in range(1, len(filters)):
        for unit in range(num_res_units):
            x = ResidualUnit3D(filters[scale], strides=as_triple(strides[scale]) if unit == 0 else 1,
                               activation=activation, use_bias=use_bias, kernel_regularizer=regulariser,
                               name=f"enc_unit_{scale}_{unit}")(x)
        scales.append(x)
    return scales


def _unet(input_shape, num_classes, filters, strides, encoder_units, decoder_units, activation,
          l2_regularisation, use_bias, name) -> keras.Model:
    regulariser = keras.regularizers.L2(l2_regularisation) if l2_regularisation > 0 else None
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    scales = _encoder(inputs, filters, strides, encoder_units, activation, regulariser, use_bias)
    x = scales[-1]
    for scale in range(len(filters) - 2, -1, -1):
        x = UpsampleAndConcat3D(as_triple(strides[scale + 1]), name=f"up_concat_{scale}")([x, scales[scale]])
        for unit in range(decoder_units):
            x = ResidualUnit3D(filters[scale], activation=activation, use_bias=use_bias,
                               kernel_regularizer=regulariser, name=f"dec_unit_{scale}_{unit}")(x)
    x = FusedBatchNormalization(name="last_bn")(x)
    x = keras.layers.Activation(activation, name="last_activation")(x)
    logits = keras.layers.Conv3D(num_classes, 1, kernel_regularizer=regulariser, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=name)


def residual_unet_3d(
    input_shape: Sequence[int | None] = (None, None, None, 1),
    num_classes: int = 14,
    num_res_units: int = 1,
    filters: Sequence[int] = (16, 32, 64, 128),
    strides: Sequence[int | Sequence[int]] = (1, 2, 2, 2),
    activation: str = "relu6",
    l2_regularisation: float = 0.0,
    use_bias: bool = False,
    name: str = "residual_unet_3d",
) -> keras.Model:
    """DLTK's residual U-Net: ``num_res_units`` residual units per scale in encoder and decoder.

    Strides must be 1 or 2 per axis (linear upsampling undoes them). Returns a model giving
    (batch, z, y, x, num_classes) logits.
    """
    return _unet(input_shape, num_classes, filters, strides, num_res_units, num_res_units, activation,
                 l2_regularisation, use_bias, name)


def asymmetric_residual_unet_3d(
    input_shape: Sequence[int | None] = (None, None, None, 1),
    num_classes: int = 14,
    num_res_units: int = 2,
    filters: Sequence[int] = (16, 32, 64, 128),
    strides: Sequence[int | Sequence[int]] = (1, 2, 2, 2),
    activation: str = "relu6",
    l2_regularisation: float = 0.0,
    use_bias: bool = False,
    name: str = "asymmetric_residual_unet_3d",
) -> keras.Model:
    """DLTK's asymmetric residual U-Net: ``num_res_units`` per encoder scale, one per decoder scale."""
    return _unet(input_shape, num_classes, filters, strides, num_res_units, 1, activation,
                 l2_regularisation, use_bias, name)
