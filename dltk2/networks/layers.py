"""Building blocks shared by dltk2's 3D networks."""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops


def as_triple(value: int | Sequence[int]) -> tuple[int, int, int]:
    """``2`` -> ``(2, 2, 2)``; a sequence of three ints is returned as a tuple."""
    if isinstance(value, int):
        return (value, value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 3:
        raise ValueError(f"expected an int or three ints, got {value}")
    return value


def _shape_list(x) -> list:
    """``x``'s shape, static sizes as ints and unknown ones as scalar tensors (for ``tf.reshape``)."""
    import tensorflow as tf

    dynamic = tf.shape(x)
    return [size if size is not None else dynamic[axis] for axis, size in enumerate(x.shape)]


def _merge_depth_into_height(x):
    """(N, D, H, W, C) -> (N, D * H, W, C), a view; 4D tensors pass unchanged.

    Batch statistics per channel are the same over either layout, and TensorFlow runs a 4D
    ``FusedBatchNormV3`` (and its gradient) through oneDNN, 2.7-4x faster on CPU than its 5D kernel
    (forward and backward on (2, 64, 64, 64, 48) activations, 2 CPUs: 44 against 120 ms).
    """
    import tensorflow as tf

    if len(x.shape) == 4:
        return x
    n, d, h, w, c = _shape_list(x)
    return tf.reshape(x, [n, d * h, w, c])


@keras.saving.register_keras_serializable(package="dltk2")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """Keras' batch normalisation, computed by TensorFlow's fused kernel (``FusedBatchNormV3``).

    Keras 3 normalises with separate moment, subtraction, scaling and shift operations, each a pass
    over the activations forward and backward; the fused kernel makes two. Same variables, config and
    arithmetic as ``keras.layers.BatchNormalization`` (float32 statistics under mixed precision); the
    moving variance is updated with the batch variance's unbiased estimate (the kernel's; n / (n - 1)
    of Keras', n the voxels of a batch). 5D activations go to the kernel as a 4D view (depth folded
    into height), which TensorFlow runs through oneDNN. Falls back to Keras' computation for masks,
    renormalisation, synchronised statistics, a channel axis other than the last, or ranks other
    than 4 and 5.
    """

    def _fusable(self, inputs, mask) -> bool:
        rank = len(inputs.shape)
        axis = self.axis if self.axis >= 0 else rank + self.axis
        return (keras.backend.backend() == "tensorflow" and mask is None and not self.renorm
                and not getattr(self, "synchronized", False) and rank in (4, 5) and axis == rank - 1)

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        scale = ops.cast(self.gamma, "float32") if self.scale else ops.ones((channels,), "float32")
        offset = ops.cast(self.beta, "float32") if self.center else ops.zeros((channels,), "float32")
        fit_statistics = bool(training) and self.trainable
        empty = tf.zeros([0], tf.float32)
        outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=_merge_depth_into_height(inputs), scale=scale, offset=offset,
            mean=empty if fit_statistics else ops.cast(self.moving_mean, "float32"),
            variance=empty if fit_statistics else ops.cast(self.moving_variance, "float32"),
            epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=fit_statistics)
        if len(inputs.shape) == 5:
            outputs = tf.reshape(outputs, _shape_list(inputs))
        if fit_statistics:
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return ops.cast(outputs, self.compute_dtype)


@keras.saving.register_keras_serializable(package="dltk2")
class ResidualUnit3D(keras.layers.Layer):
    """DLTK's pre-activation residual unit, ``x + F(x)``.

    ``F`` is batch norm, activation, convolution, twice. With a stride above one, the first convolution
    uses a kernel of twice the stride along that axis (no voxel skipped) and the shortcut is max-pooled
    with the stride ('same' padding, so odd sizes give ceil(n / stride) like the convolution). Extra
    output channels are filled with zeros on the shortcut; fewer output channels use a 1x1x1
    projection.

    Args:
        out_filters: Output channels.
        kernel_size: Kernel of the unstrided convolutions, (z, y, x).
        strides: Stride of the first convolution, (z, y, x).
        activation: Keras activation name.
        use_bias: Biases in the convolutions.
        kernel_regularizer: Keras regulariser (or its config) for both convolutions.
        batch_norm_momentum: Momentum of both batch norms' moving mean and variance (see
            :func:`dltk2.networks.resnet.resnet_3d`).
    """

    def __init__(
        self,
        out_filters: int,
        kernel_size: int | Sequence[int] = 3,
        strides: int | Sequence[int] = 1,
        activation: str = "relu6",
        use_bias: bool = False,
        kernel_regularizer=None,
        batch_norm_momentum: float = 0.99,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.out_filters = int(out_filters)
        self.kernel_size = as_triple(kernel_size)
        self.strides = as_triple(strides)
        self.activation = keras.activations.get(activation)
        self._activation_name = activation
        self.use_bias = use_bias
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.batch_norm_momentum = float(batch_norm_momentum)
        first_kernel = tuple(2 * s if s > 1 else k for k, s in zip(self.kernel_size, self.strides))
        conv_kwargs = dict(
            padding="same",
            use_bias=use_bias,
            kernel_initializer=keras.initializers.VarianceScaling(distribution="uniform"),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
        )
        self.norm_0 = FusedBatchNormalization(momentum=self.batch_norm_momentum, dtype=self.dtype_policy,
                                              name="bn_0")
        self.conv_0 = keras.layers.Conv3D(
            self.out_filters, first_kernel, strides=self.strides, name="conv_0", **conv_kwargs
        )
        self.norm_1 = FusedBatchNormalization(momentum=self.batch_norm_momentum, dtype=self.dtype_policy,
                                              name="bn_1")
        self.conv_1 = keras.layers.Conv3D(self.out_filters, self.kernel_size, name="conv_1", **conv_kwargs)
        self.pool = (
            keras.layers.MaxPooling3D(self.strides, self.strides, padding="same", dtype=self.dtype_policy)
            if max(self.strides) > 1
            else None
        )
        self.projection = None
        self._conv_kwargs = conv_kwargs

    def build(self, input_shape) -> None:
        in_filters = int(input_shape[-1])
        self.in_filters = in_filters
        self.norm_0.build(input_shape)
        self.conv_0.build(input_shape)
        strided_shape = self.conv_0.compute_output_shape(input_shape)
        self.norm_1.build(strided_shape)
        self.conv_1.build(strided_shape)
        if in_filters > self.out_filters:
            self.projection = keras.layers.Conv3D(self.out_filters, 1, name="projection", **self._conv_kwargs)
            self.projection.build(strided_shape[:-1] + (in_filters,))

    def call(self, inputs, training=None):
        shortcut = inputs
        if self.pool is not None:
            shortcut = self.pool(shortcut)
        x = self.conv_0(self.activation(self.norm_0(inputs, training=training)))
        x = self.conv_1(self.activation(self.norm_1(x, training=training)))
        if self.in_filters < self.out_filters:
            extra = self.out_filters - self.in_filters
            shortcut = ops.pad(shortcut, [[0, 0]] * 4 + [[extra // 2, extra - extra // 2]])
        elif self.projection is not None:
            shortcut = self.projection(shortcut)
        return x + ops.cast(shortcut, x.dtype)

    def compute_output_shape(self, input_shape):
        return self.conv_0.compute_output_shape(input_shape)[:-1] + (self.out_filters,)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            out_filters=self.out_filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            activation=self._activation_name,
            use_bias=self.use_bias,
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer)
            if self.kernel_regularizer is not None
            else None,
            batch_norm_momentum=self.batch_norm_momentum,
        )
        return config


def upsample_linear(x, factors: Sequence[int]):
    """Linear interpolation of (N, D, H, W, C) features by whole ``factors`` (z, y, x).

    Half-voxel centres (PyTorch's ``align_corners=False``, scipy's ``zoom(grid_mode=True,
    mode="nearest")``), edges clamped: by 2, new voxels get 3/4 of their nearest old voxel and 1/4 of
    the next one (the U-Nets' decoders); by 4, 5/8 and 3/8 or 7/8 and 1/8 (super-resolution). Computed as
    TensorFlow bilinear resizes of 4D views, (y, x) on the (N * D) slices and then z on
    (N, D, H * W), whose kernels and gradients are 2x faster on CPU than slicing and blending
    neighbours (forward and backward from (2, 32^3, 32) to 64^3: 51 against 109 ms on 2 CPUs).

    Returns:
        (N, D * fz, H * fy, W * fx, C), in ``x``'s dtype (computed in float32, as TensorFlow's
        bilinear kernels compute, whatever the input).
    """
    import tensorflow as tf

    factors = tuple(int(f) for f in factors)
    if any(f < 1 for f in factors):
        raise ValueError(f"linear upsampling takes whole factors of at least 1, got {factors}")
    n, d, h, w, c = _shape_list(x)
    fz, fy, fx = factors
    out = x
    if fy > 1 or fx > 1:
        slices = tf.image.resize(tf.reshape(out, [n * d, h, w, c]), [h * fy, w * fx], method="bilinear")
        h, w = h * fy, w * fx
        out = tf.reshape(slices, [n, d, h, w, c])
    if fz > 1:
        columns = tf.image.resize(tf.reshape(out, [n, d, h * w, c]), [d * fz, h * w], method="bilinear")
        d = d * fz
        out = tf.reshape(columns, [n, d, h, w, c])
    return tf.cast(out, x.dtype)  # bilinear resizes return float32


@keras.saving.register_keras_serializable(package="dltk2")
class UpsampleAndConcat3D(keras.layers.Layer):
    """Upsamples coarse features linearly by ``strides`` and concatenates the skip features.

    Called on ``[coarse, skip]``; the upsampled features are cropped to the skip's spatial size
    (a strided 'same' convolution turns n voxels into ceil(n / 2)), so any input size works.

    Args:
        strides: Upsampling factor per axis (z, y, x), each 1 or 2.
    """

    def __init__(self, strides: int | Sequence[int] = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.strides = as_triple(strides)
        if any(s not in (1, 2) for s in self.strides):  # the decoders' crops assume ceil(n / 2)
            raise ValueError(f"UpsampleAndConcat3D upsamples by factors 1 and 2, got {self.strides}")

    def call(self, inputs):
        coarse, skip = inputs
        x = upsample_linear(coarse, self.strides)
        if tuple(x.shape[1:4]) != tuple(skip.shape[1:4]) or None in x.shape[1:4]:
            x = ops.slice(x, [0] * 5, list(ops.shape(skip)[:4]) + [ops.shape(x)[4]])
        return ops.concatenate([x, ops.cast(skip, x.dtype)], axis=-1)

    def compute_output_shape(self, input_shapes):
        coarse, skip = input_shapes
        channels = None if coarse[-1] is None or skip[-1] is None else coarse[-1] + skip[-1]
        return tuple(skip[:-1]) + (channels,)

    def get_config(self) -> dict:
        return {**super().get_config(), "strides": self.strides}


@keras.saving.register_keras_serializable(package="dltk2")
class LinearUpsample3D(keras.layers.Layer):
    """(N, D, H, W, C) -> (N, D * fz, H * fy, W * fx, C) by linear interpolation (:func:`upsample_linear`).

    Args:
        factors: Whole upsampling factor per axis (z, y, x), or one for all.
    """

    def __init__(self, factors: int | Sequence[int] = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.factors = as_triple(factors)

    def call(self, inputs):
        return upsample_linear(inputs, self.factors)

    def compute_output_shape(self, input_shape):
        n, *spatial, c = input_shape
        return (n, *[None if s is None else s * f for s, f in zip(spatial, self.factors)], c)

    def get_config(self) -> dict:
        return {**super().get_config(), "factors": list(self.factors)}
