"""Random augmentations of a batch of volumes, in TensorFlow ops (a ``tf.data`` map after batching).

Volumes are (batch, depth, height, width, channels), e.g. MRI series with slices along depth. Each
example gets its own draw. The deterministic parts (:func:`flip_depth`, :func:`rotate_in_plane`,
:func:`scale_intensity`) take the draws as arguments, so they can be checked exactly;
:func:`augment_volume_batch` draws them.
"""

from __future__ import annotations

import math

import tensorflow as tf


def flip_depth(volumes: tf.Tensor, flip: tf.Tensor) -> tf.Tensor:
    """Reverses the slice order of the examples where ``flip`` (bool (batch,)) is true.

    For sagittal knee series this mirrors medial and lateral: a left knee looks like a right one.
    """
    mask = tf.reshape(tf.cast(flip, tf.bool), [-1, 1, 1, 1, 1])
    return tf.where(mask, tf.reverse(volumes, axis=[1]), volumes)


def rotate_in_plane(volumes: tf.Tensor, angles: tf.Tensor, fill_mode: str = "NEAREST") -> tf.Tensor:
    """Rotates every slice of each example by its angle (radians, (batch,)) about the slice centre.

    Bilinear interpolation; points from outside the slice take the nearest edge value
    (``fill_mode``: ``NEAREST``, ``REFLECT``, ``WRAP`` or ``CONSTANT`` (zero)). A positive angle turns
    the image counter-clockwise as displayed (row 0 at the top).
    """
    volumes = tf.convert_to_tensor(volumes)
    shape = tf.shape(volumes)
    batch, depth, height, width, channels = shape[0], shape[1], shape[2], shape[3], shape[4]
    angles = tf.cast(angles, tf.float32)
    cos, sin = tf.cos(angles), tf.sin(angles)
    centre_x = (tf.cast(width, tf.float32) - 1.0) / 2.0
    centre_y = (tf.cast(height, tf.float32) - 1.0) / 2.0
    # Output pixel (x, y) samples the input at R^-1 (x - c) + c, R turning counter-clockwise on screen.
    transforms = tf.stack([
        cos, -sin, centre_x - cos * centre_x + sin * centre_y,
        sin, cos, centre_y - sin * centre_x - cos * centre_y,
        tf.zeros_like(cos), tf.zeros_like(cos),
    ], axis=1)
    slices = tf.reshape(volumes, tf.stack([batch * depth, height, width, channels]))
    rotated = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(slices, tf.float32),
        transforms=tf.repeat(transforms, depth, axis=0),
        output_shape=tf.stack([height, width]),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode=fill_mode,
    )
    return tf.cast(tf.reshape(rotated, shape), volumes.dtype)


def scale_intensity(volumes: tf.Tensor, contrast: tf.Tensor, brightness: tf.Tensor) -> tf.Tensor:
    """``volume * contrast + brightness`` per example (both (batch,)); for whitened inputs."""
    contrast = tf.reshape(tf.cast(contrast, volumes.dtype), [-1, 1, 1, 1, 1])
    brightness = tf.reshape(tf.cast(brightness, volumes.dtype), [-1, 1, 1, 1, 1])
    return volumes * contrast + brightness


def augment_volume_batch(
    volumes: tf.Tensor,
    flip_probability: float = 0.5,
    max_rotation_degrees: float = 10.0,
    max_contrast_change: float = 0.1,
    max_brightness_change: float = 0.1,
    seed: int | None = None,
) -> tf.Tensor:
    """Random depth flip, small in-plane rotation, contrast and brightness, drawn per example.

    Args:
        volumes: float (batch, depth, height, width, channels), whitened.
        flip_probability: Chance of reversing the slice order.
        max_rotation_degrees: Rotation uniform in [-max, max] degrees (0: none).
        max_contrast_change: Contrast factor uniform in [1 - c, 1 + c].
        max_brightness_change: Offset uniform in [-b, b] (in standard deviations of the series).
        seed: Op-level seed for the draws.
    """
    batch = tf.shape(volumes)[0]
    draws = tf.random.uniform([4, batch], seed=seed)
    result = flip_depth(volumes, draws[0] < flip_probability)
    if max_rotation_degrees:
        radians = math.radians(max_rotation_degrees)
        result = rotate_in_plane(result, (2.0 * draws[1] - 1.0) * radians)
    return scale_intensity(result, 1.0 + (2.0 * draws[2] - 1.0) * max_contrast_change,
                           (2.0 * draws[3] - 1.0) * max_brightness_change)
