"""3D residual networks for image-level classification and regression.

``resnet_3d`` is DLTK's network: a 3x3x3 stem convolution, then one scale per entry of ``filters``
after the first, each of ``num_res_units`` pre-activation residual units (batch norm, ReLU6,
convolution, twice), the first of each scale strided. A strided convolution uses a kernel twice the
stride (4x4x4 for stride 2) so that no input voxel is skipped; the shortcut is max-pooled by the stride
and zero-padded in channels. Batch norm, ReLU6 and global average pooling end the trunk; a dense layer
gives logits (``num_classes``) or one regression value. Inputs are (batch, z, y, x, channels) of any
spatial size.

``r3d_18`` is torchvision's ResNet-18 3D (video) layout, used for knee MRI series (MRNet): the same
parameter count as torchvision's model, PyTorch's padding, and a new head of ``num_classes``.
"""

from __future__ import annotations

from typing import Sequence

import keras

from dltk2.networks.layers import FusedBatchNormalization, ResidualUnit3D, as_triple

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
    batch_norm_momentum: float = 0.99,
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
        batch_norm_momentum: Momentum of the batch norms' moving mean and variance, which the model
            uses outside training (validation, deploy, export). DLTK's and Keras' 0.99 averages over
            about 100 steps and forgets the initial statistics (mean 0, variance 1) only after some
            500: right for runs of tens of thousands of steps. For runs of hundreds, 0.9 (PyTorch's
            default): with 0.99 the 600-step CPU preset's validation loss stayed at 3.8-11 (every
            subject one class) for 300-400 steps in 3 runs while the training accuracy was above 0.9.

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
                batch_norm_momentum=batch_norm_momentum,
                name=f"unit_{scale}_{unit}",
            )(x)
    x = FusedBatchNormalization(momentum=batch_norm_momentum, name="pool_bn")(x)
    x = keras.layers.Activation(activation, name="pool_activation")(x)
    x = keras.layers.GlobalAveragePooling3D(name="global_avg_pool")(x)
    units = num_classes if task == "classification" else 1
    output_name = "logits" if task == "classification" else "prediction"
    outputs = keras.layers.Dense(
        units, kernel_initializer=initializer, kernel_regularizer=regulariser, dtype="float32",
        name=output_name,
    )(x)
    return keras.Model(inputs, outputs, name=name)



def _conv_bn(x, filters: int, kernel: Sequence[int], strides: Sequence[int], name: str, relu: bool = True):
    """Convolution with PyTorch's symmetric zero padding (kernel // 2), batch norm, optional ReLU."""
    padding = tuple(k // 2 for k in kernel)
    if any(padding):
        x = keras.layers.ZeroPadding3D(padding, name=f"{name}_pad")(x)
    x = keras.layers.Conv3D(filters, kernel, strides=strides, padding="valid", use_bias=False,
                            kernel_initializer="he_normal", name=f"{name}_conv")(x)
    x = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def r3d_18(
    input_shape: Sequence[int | None] = (None, None, None, 3),
    num_classes: int = 400,
    dropout: float = 0.0,
    name: str = "r3d_18",
) -> keras.Model:
    """ResNet-18 3D with torchvision's ``r3d_18`` layout (Tran et al., "A closer look at spatiotemporal
    convolutions", 2018), channels last.

    Stem: 3x7x7 convolution, stride 1x2x2, 64 filters, batch norm, ReLU. Four stages of two basic blocks
    (3x3x3 convolution, batch norm, ReLU, 3x3x3 convolution, batch norm, add, ReLU) with 64, 128, 256 and
    512 filters; stages 2-4 start with stride 2 in all three axes and a 1x1x1 strided convolution plus
    batch norm on the shortcut. Global average pooling, then a dense layer of ``num_classes`` logits.
    Padding is PyTorch's (kernel // 2 on both sides), so output sizes and alignment equal torchvision's;
    with 3 input channels and 400 classes the parameter count equals torchvision's (33,371,472).

    Args:
        input_shape: (depth, height, width, channels), e.g. (20, 112, 112, 1) for MRNet slices; any
            spatial dims may be None (the weights do not depend on them).
        num_classes: Logits out (the new head).
        dropout: Dropout before the head (0: none, as torchvision).
        name: Model name.

    Returns:
        A functional Keras model (batch, d, h, w, c) -> (batch, num_classes) float32 logits; layers
        ``stem_*``, ``layer{1-4}_{0,1}_*`` as torchvision names them, ``avgpool`` and ``fc``.
    """
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = _conv_bn(inputs, 64, (3, 7, 7), (1, 2, 2), "stem")
    for stage, filters in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = (2, 2, 2) if stage > 1 and block == 0 else (1, 1, 1)
            prefix = f"layer{stage}_{block}"
            shortcut = x
            if stride != (1, 1, 1) or x.shape[-1] != filters:
                shortcut = _conv_bn(x, filters, (1, 1, 1), stride, f"{prefix}_downsample", relu=False)
            y = _conv_bn(x, filters, (3, 3, 3), stride, f"{prefix}_conv1")
            y = _conv_bn(y, filters, (3, 3, 3), (1, 1, 1), f"{prefix}_conv2", relu=False)
            x = keras.layers.Activation("relu", name=f"{prefix}_relu")(keras.layers.Add(name=f"{prefix}_add")([y, shortcut]))
    x = keras.layers.GlobalAveragePooling3D(name="avgpool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, dtype="float32", name="fc")(x)
    return keras.Model(inputs, outputs, name=name)
