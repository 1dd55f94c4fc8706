"""A plain convolutional classifier or regressor, 2D or 3D: the smallest network worth explaining.

Pairs of convolution - batch norm - ReLU, the second of each pair striding, then global average
pooling and one dense layer of scores. Grad-CAM reads the last pair's output, so the strides set the
map's resolution: a (64, 64) input with strides (2, 2, 1) gives a 16x16 map. The pointing-game
tests train it from random weights in about a minute on 2 CPU cores (chest 38 s, knee 65 s with their
data), ``benchmarks/pointing_game_ixi_age.py`` in 12 minutes.
"""

from __future__ import annotations

from typing import Sequence

import keras


def plain_cnn(input_shape: Sequence[int], outputs: int, filters: Sequence[int] = (16, 32, 64),
              strides: Sequence[int | Sequence[int]] | None = None, seed: int | None = 0) -> keras.Model:
    """The network, its weights drawn from ``seed`` (``None``: Keras' current seed).

    Args:
        input_shape: (height, width, channels) for 2D or (depth, height, width, channels) for 3D.
        outputs: units of the last dense layer (class logits, or 1 for a regression).
        filters: width of each convolution pair.
        strides: the stride of each pair's second convolution (default 2 everywhere).

    Returns:
        A functional model from the input to ``outputs`` linear scores.
    """
    if seed is not None:
        keras.utils.set_random_seed(seed)
    two_d = len(input_shape) == 3
    convolution = keras.layers.Conv2D if two_d else keras.layers.Conv3D
    pooling = keras.layers.GlobalAveragePooling2D if two_d else keras.layers.GlobalAveragePooling3D
    inputs = keras.Input(tuple(input_shape))
    x = inputs
    for number, width in enumerate(filters):
        for stride in (1, strides[number] if strides else 2):
            x = convolution(width, 3, strides=stride, padding="same", use_bias=False)(x)
            x = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=0.9)(x))
    return keras.Model(inputs, keras.layers.Dense(outputs)(pooling()(x)))
