"""DLTK's 3D convolutional autoencoder: strided convolutions down to a code of a few numbers, and back.

The encoder (``encoder``, a model of its own inside the autoencoder) applies, per level, a 3x3x3
convolution of stride ``strides[level]`` with batch norm and leaky ReLU, then flattens into a dense
``code`` of ``num_hidden_units``; the decoder (``decoder``) maps the code back to the last level's
shape and climbs with transposed convolutions to a linear convolution of the input's channels. The
input size is fixed (the dense code sees every voxel) and must be divisible by the product of the
strides along each axis.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np

from dltk2.networks.layers import FusedBatchNormalization, as_triple


def _conv_block(x, width: int, strides, transpose: bool, name: str):
    layer = keras.layers.Conv3DTranspose if transpose else keras.layers.Conv3D
    x = layer(width, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = FusedBatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return keras.layers.LeakyReLU(0.1, name=f"{name}_act")(x)


def convolutional_autoencoder_3d(
    input_shape: Sequence[int] = (40, 48, 40, 3),
    filters: Sequence[int] = (16, 32, 64),
    strides: Sequence[int | Sequence[int]] = (2, 2, 2),
    num_hidden_units: int = 64,
    name: str = "convolutional_autoencoder_3d",
) -> keras.Model:
    """The autoencoder, with ``model.get_layer("encoder")`` and ``"decoder"`` as models of their own.

    Args:
        input_shape: (z, y, x, channels), e.g. T1, T2 and PD as three channels.
        filters: Width of each level (the decoder climbs through them in reverse).
        strides: Stride of each level (z, y, x), or one per level for all axes.
        num_hidden_units: Length of the code.

    Returns:
        (batch, z, y, x, channels) -> the same shape, linear output.

    Raises:
        ValueError: An input size the strides do not divide, or filters and strides of different lengths.
    """
    if len(filters) != len(strides):
        raise ValueError(f"one stride per level: {len(filters)} filters, {len(strides)} strides")
    steps = [as_triple(s) for s in strides]
    total = np.prod(np.array(steps), axis=0)
    spatial, channels = [int(s) for s in input_shape[:3]], int(input_shape[3])
    if any(size % step for size, step in zip(spatial, total)):
        raise ValueError(f"input size {spatial} must be divisible by the strides' product {total.tolist()} per axis")
    bottom = [size // step for size, step in zip(spatial, total)]

    inputs = keras.Input(tuple(input_shape), name="image")
    x = inputs
    for level, (width, step) in enumerate(zip(filters, steps)):
        x = _conv_block(x, width, step, transpose=False, name=f"enc_{level}")
    code = keras.layers.Dense(num_hidden_units, name="code")(keras.layers.Flatten(name="flatten")(x))
    encoder = keras.Model(inputs, code, name="encoder")

    code_input = keras.Input((num_hidden_units,), name="code")
    y = keras.layers.Dense(int(np.prod(bottom)) * filters[-1], name="expand")(code_input)
    y = keras.layers.LeakyReLU(0.1, name="expand_act")(y)
    y = keras.layers.Reshape((*bottom, filters[-1]), name="unflatten")(y)
    for level in reversed(range(len(filters))):
        width = filters[level - 1] if level > 0 else filters[0]
        y = _conv_block(y, width, steps[level], transpose=True, name=f"dec_{level}")
    outputs = keras.layers.Conv3D(channels, 3, padding="same", name="reconstruction")(y)
    decoder = keras.Model(code_input, outputs, name="decoder")
    return keras.Model(inputs, decoder(encoder(inputs)), name=name)
