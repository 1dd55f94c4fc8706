"""DLTK's residual fully convolutional network (FCN) for 3D segmentation.

The encoder is the residual U-Net's (:mod:`dltk2.networks.unet`). Instead of a decoder of residual
units, each scale is scored directly: class scores of the coarsest scale are linearly upsampled, joined
with the next finer scale's features and fused into new class scores by a 1x1x1 convolution, up to the
input's resolution ("upscore" skips, as in Long et al.'s FCN). Light and fast; coarser boundaries
than the U-Nets.
"""

from __future__ import annotations

from typing import Sequence

import keras

from dltk2.networks.layers import FusedBatchNormalization, UpsampleAndConcat3D, as_triple
from dltk2.networks.unet import _encoder


def residual_fcn_3d(
    input_shape: Sequence[int | None] = (None, None, None, 1),
    num_classes: int = 14,
    num_res_units: int = 1,
    filters: Sequence[int] = (16, 32, 64, 128),
    strides: Sequence[int | Sequence[int]] = (1, 2, 2, 2),
    activation: str = "relu6",
    l2_regularisation: float = 0.0,
    use_bias: bool = False,
    name: str = "residual_fcn_3d",
) -> keras.Model:
    """Builds the residual FCN; returns (batch, z, y, x, num_classes) logits (float32)."""
    regulariser = keras.regularizers.L2(l2_regularisation) if l2_regularisation > 0 else None
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    scales = _encoder(inputs, filters, strides, num_res_units, activation, regulariser, use_bias)
    scores = keras.layers.Conv3D(num_classes, 1, kernel_regularizer=regulariser, name=f"score_{len(filters) - 1}")(
        keras.layers.Activation(activation)(FusedBatchNormalization()(scales[-1])))
    for scale in range(len(filters) - 2, -1, -1):
        joined = UpsampleAndConcat3D(as_triple(strides[scale + 1]), name=f"upscore_{scale}")([scores, scales[scale]])
        scores = keras.layers.Conv3D(
            num_classes, 1, kernel_regularizer=regulariser, name=f"score_{scale}",
            dtype="float32" if scale == 0 else None,
        )(joined)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(scores)
    return keras.Model(inputs, logits, name=name)
