"""3D residual networks for image-level classification and regression.

``resnet_3d`` is DLTK's network: a 3x3x3 stem convolution, then one scale per entry of ``filters``
after the first, each of ``num_res_units`` pre-activation residual units (batch norm, ReLU6,
convolution, twice), the first of each scale strided. A strided convolution uses a kernel twice the
stride (4x4x4 for stride 2) so that no input voxel is skipped; the shortcut is max-pooled by the stride
and zero-padded in channels. Batch norm, ReLU6 and global average pooling end the trunk; a dense layer
gives logits (``num_classes``) or one regression value. Inputs are (batch, z, y, x, channels) of any
spatial size.
"""

from __future__ import annotations

from typing import Sequence

import keras

from dltk2.networks.layers import ResidualUnit3D, as_triple

def resnet_3d(
    input_shape: Sequence[int | None] = (None, None, None, 1),
    num_classes: int = 2,
    num_res_units: int = 1,
    filters: Sequence[int] = (16, 32, 64, 128),
    strides: Sequence[int | Sequence[int]] = ((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2)),
    activation: str = "relu6",
    l2_regularisation: float = 0.0,
    use_bias: bool = False,
    task: str = "classification",
    name: str = "resnet_3d",
) -> keras.Model:
    """Builds DLTK's 3D residual network.

    Args:
        input_shape: (z, y, x, channels); spatial dims may be None.
        num_classes: Logits out for classification; ignored (1 output) for regression.
        num_res_units: Residual units per scale.
        filters: Channels of the stem (first entry) and of each following scale.
        strides: Stride of the stem and of the first unit of each scale, as ints or (z, y, x).
        activation: Keras activation name (DLTK uses ReLU6).
        l2_regularisation: L2 factor on convolution and dense kernels (DLTK's IXI sex model: 1e-3).
        use_bias: Biases in the convolutions (off: batch norm follows).
        task: ``"classification"`` (output ``logits``, float32) or ``"regression"`` (output
            ``prediction`` of shape (batch, 1), float32).
        name: Model name.

    Returns:
        A functional Keras model; outputs stay float32 under a mixed-precision policy. Probabilities
        and the class come from :class:`dltk2.inference.CropAveragingPredictor`, which averages them
        over crops.
    """
    if len(filters) != len(strides):
        raise ValueError(f"filters ({len(filters)}) and strides ({len(strides)}) must have one entry per scale")
    if num_res_units < 1:
        raise ValueError(f"num_res_units must be >= 1, got {num_res_units}")
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    regulariser = keras.regularizers.L2(l2_regularisation) if l2_regularisation > 0 else None
    initializer = keras.initializers.VarianceScaling(distribution="uniform")

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = keras.layers.Conv3D(
        filters[0], 3, strides=as_triple(strides[0]), padding="same", use_bias=use_bias,
        kernel_initializer=initializer, kernel_regularizer=regulariser, name="stem_conv",
    )(inputs)
    for scale in range(1, len(filters)):
        for unit in range(num_res_units):
            x = ResidualUnit3D(
                filters[scale],
                strides=as_triple(strides[scale]) if unit == 0 else (1, 1, 1),
                activation=activation,
                use_bias=use_bias,
                kernel_regularizer=regulariser,
                name=f"unit_{scale}_{unit}",
            )(x)
    x = keras.layers.BatchNormalization(name="pool_bn")(x)
    x = keras.layers.Activation(activation, name="pool_activation")(x)
    x = keras.layers.GlobalAveragePooling3D(name="global_avg_pool")(x)
    units = num_classes if task == "classification" else 1
    output_name = "logits" if task == "classification" else "prediction"
    outputs = keras.layers.Dense(
        units, kernel_initializer=initializer, kernel_regularizer=regulariser, dtype="float32",
        name=output_name,
    )(x)
    return keras.Model(inputs, outputs, name=name)

