"""DLTK's simple 3D super-resolution network: linear upsampling, then convolutions that sharpen it.

The low-resolution input is upsampled linearly by whole ``factors`` per axis (``upsample_linear``:
half-voxel centres, scipy's ``zoom(order=1, grid_mode=True)``), convolutions at the high resolution
follow, and a last 3x3x3 convolution gives one channel that is *added* to the upsampled input: the
network learns what linear interpolation leaves out, so from its first step it is as good as linear
upsampling (its last convolution starts at zero), and training can only sharpen. Fully
convolutional: any input size; the output is ``factors`` times the input.
"""

from __future__ import annotations

from typing import Sequence

import keras

from dltk2.networks.layers import FusedBatchNormalization, LinearUpsample3D


def simple_super_resolution_3d(
    input_shape: Sequence[int | None] = (None, None, None, 1),
    factors: int | Sequence[int] = (4, 4, 4),
    filters: Sequence[int] = (32, 32, 32),
    num_convolutions: int = 1,
    l2_regularisation: float = 0.0,
    name: str = "simple_super_resolution_3d",
) -> keras.Model:
    """The network (DLTK's ``simple_super_resolution_3d``, with a residual output).

    Args:
        input_shape: (z, y, x, channels) of the low-resolution input; None for any size.
        factors: Upsampling factor per axis (z, y, x): (4, 4, 4) for x4, (4, 1, 1) for thick slices.
        filters: Width of each block of ``num_convolutions`` 3x3x3 convolution - batch norm - leaky ReLU.
        l2_regularisation: L2 weight decay of the kernels.

    Returns:
        A model from (batch, z, y, x, c) to (batch, z * fz, y * fy, x * fx, c), linear output.
    """
    regulariser = keras.regularizers.L2(l2_regularisation) if l2_regularisation else None
    inputs = keras.Input(tuple(input_shape))
    upsampled = LinearUpsample3D(factors, name="linear_upsampling")(inputs)
    x = upsampled
    for block, width in enumerate(filters):
        for number in range(num_convolutions):
            x = keras.layers.Conv3D(width, 3, padding="same", use_bias=False, kernel_regularizer=regulariser,
                                    name=f"conv_{block}_{number}")(x)
            x = FusedBatchNormalization(momentum=0.9, name=f"bn_{block}_{number}")(x)
            x = keras.layers.LeakyReLU(0.1, name=f"act_{block}_{number}")(x)
    detail = keras.layers.Conv3D(int(input_shape[-1]), 3, padding="same", kernel_initializer="zeros",
                                 kernel_regularizer=regulariser, name="detail")(x)
    return keras.Model(inputs, keras.layers.Add(name="sharpened")([upsampled, detail]), name=name)
