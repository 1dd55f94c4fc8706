"""Resampling a volume to another spacing in TensorFlow ops, on SimpleITK's grid, for serving graphs."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf


def _resample_axis(volume: tf.Tensor, axis: int, in_size: tf.Tensor, out_size: tf.Tensor, in_spacing: tf.Tensor,
                   out_spacing: tf.Tensor, method: str) -> tf.Tensor:
    """Resamples one axis: output voxel i sits at input index i * out_spacing / in_spacing (ITK's grid).

    Multiplying before dividing keeps exact ties exact (10 * 0.7 / 2 is 3.5; 10 * (0.7 / 2) is not),
    so nearest-neighbour picks the voxel SimpleITK picks.
    """
    positions = tf.cast(tf.range(out_size), tf.float64) * out_spacing / in_spacing
    inside = (positions >= -0.5) & (positions < tf.cast(in_size, tf.float64) - 0.5)
    last = in_size - 1
    shape = [1, 1, 1, 1]
    shape[axis] = -1
    mask = tf.reshape(tf.cast(inside, volume.dtype), shape)
    if method == "nearest":
        # Halves round up, as ITK; the tolerance absorbs spacings that arrive as float32.
        index = tf.clip_by_value(tf.cast(tf.floor(positions + 0.5 + 1e-6), tf.int32), 0, last)
        return tf.gather(volume, index, axis=axis) * mask
    lower = tf.clip_by_value(tf.cast(tf.floor(positions), tf.int32), 0, last)
    upper = tf.minimum(lower + 1, last)
    weight = tf.reshape(tf.cast(positions - tf.floor(positions), volume.dtype), shape)
    weight = tf.where(tf.reshape(positions < 0, shape), tf.zeros_like(weight), weight)
    blended = tf.gather(volume, lower, axis=axis) * (1 - weight) + tf.gather(volume, upper, axis=axis) * weight
    return blended * mask



def _as_float64(values) -> tf.Tensor:
    """Python or numpy numbers straight to float64 (not through float32, where 0.7 becomes 0.69999999)."""
    if isinstance(values, (tf.Tensor, tf.Variable)):
        return tf.cast(values, tf.float64)
    return tf.constant(np.asarray(values, dtype=np.float64))



def resample_volume(
    volume: tf.Tensor,
    spacing: tf.Tensor,
    new_spacing: Sequence[float] | tf.Tensor,
    new_size: tf.Tensor | None = None,
    method: str = "linear",
) -> tf.Tensor:
    """Resamples a (z, y, x, c) volume to a new spacing in TF ops (for use inside a SavedModel).

    Same grid convention as :func:`dltk2.preprocessing.resample_to_spacing` with SimpleITK: origin and
    direction are kept, output voxel i lies at input index ``i * new_spacing / spacing``, the output
    size is ``round(size * spacing / new_spacing)`` unless ``new_size`` is given (to go back onto an
    original grid), and points outside the input are 0.

    Args:
        volume: (z, y, x, c) float32.
        spacing: (x, y, z) voxel size of ``volume``, mm (SimpleITK's order); pass float64 tensors in
            a serving signature, so that exact ties stay exact.
        new_spacing: (x, y, z) wanted voxel size, mm.
        new_size: Optional (z, y, x) output size.
        method: ``"linear"`` for images, ``"nearest"`` for labels.

    Returns:
        (z', y', x', c) float32.
    """
    if method not in ("linear", "nearest"):
        raise ValueError(f"method must be 'linear' or 'nearest', got {method!r}")
    volume = tf.convert_to_tensor(volume, tf.float32)
    spacing_zyx = tf.reverse(_as_float64(spacing), [0])
    new_spacing_zyx = tf.reverse(_as_float64(new_spacing), [0])
    in_size = tf.shape(volume)[:3]
    if new_size is None:
        new_size = tf.maximum(tf.cast(tf.round(tf.cast(in_size, tf.float64) * spacing_zyx / new_spacing_zyx),
                                      tf.int32), 1)
    for axis in range(3):
        volume = _resample_axis(volume, axis, in_size[axis], new_size[axis], spacing_zyx[axis],
                                new_spacing_zyx[axis], method)
    return volume

