"""Super-resolution of a whole low-resolution volume of any size, in one graph: whiten, network, back.

:class:`SuperResolver` is what ``applications/IXI_HH_superresolution/deploy.py`` runs and what the
SavedModel serves: the volume is whitened by its own statistics (as the reader whitened each training
volume by its low-resolution twin's, :mod:`dltk2.datasets.super_resolution`), the fully convolutional
network runs on all of it at once, and its output goes back to the input's intensities, with the
spacing of the finer grid.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from dltk2.inference.predictor import Predictor
from dltk2.networks.layers import as_triple


class SuperResolver(Predictor):
    """A low-resolution (z, y, x) volume in, ``factors`` times as many voxels per axis out.

    Args:
        model: (batch, z, y, x, 1) -> (batch, z * fz, y * fy, x * fx, 1), on whitened intensities
            (:func:`dltk2.networks.super_resolution.simple_super_resolution_3d`).
        factors: The model's upsampling factor per axis (z, y, x).
    """

    kind = "super_resolver"

    def __init__(self, model: keras.Model, factors: int | Sequence[int] = (4, 4, 4)) -> None:
        super().__init__(name="super_resolver")
        self.model = model
        self.factors = list(as_triple(factors))
        self._upsample = tf.function(self.__call__, input_signature=self.input_signature())

    def get_config(self) -> dict:
        return {"factors": list(self.factors)}

    def input_signature(self) -> list[tf.TensorSpec]:
        """``image`` float32 (z, y, x), any size and intensities; ``spacing`` float64 (3,), (x, y, z) mm."""
        return [tf.TensorSpec([None, None, None], tf.float32, name="image"),
                tf.TensorSpec([3], tf.float64, name="spacing")]

    def warmup_inputs(self) -> dict[str, np.ndarray]:
        """A small volume of noise at 8 mm (a constant one would exercise nothing)."""
        return {"image": np.random.default_rng(0).normal(100.0, 10.0, (6, 6, 6)).astype(np.float32),
                "spacing": np.full(3, 8.0)}

    def __call__(self, image: tf.Tensor, spacing: tf.Tensor) -> dict[str, tf.Tensor]:
        """Upsamples one volume.

        Returns:
            ``image``: float32 (z * fz, y * fy, x * fx) in the input's intensities; ``spacing``:
            float64 (3,), the finer grid's (x, y, z) mm. The finer grid shares the input's extent:
            its first voxel's centre lies ``(1 - 1 / f) / 2`` input voxels before the input's (half-voxel
            centres), what :func:`finer_origin` gives.
        """
        values = tf.cast(image, tf.float64)
        mean, std = tf.reduce_mean(values), tf.math.reduce_std(values)
        scale = tf.where(std > 1e-6, std, tf.ones_like(std))  # a constant volume stays itself
        whitened = tf.cast((values - mean) / scale, tf.float32)[tf.newaxis, ..., tf.newaxis]
        output = tf.cast(self.model(whitened, training=False)[0, ..., 0], tf.float64) * scale + mean
        factors_xyz = tf.constant(self.factors[::-1], tf.float64)
        return {"image": tf.cast(output, tf.float32), "spacing": tf.cast(spacing, tf.float64) / factors_xyz}

    def upsample(self, image: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        """Numpy in and out (the compiled graph that is exported)."""
        return self.predict(image=image, spacing=spacing)["image"]

    def serving_functions(self) -> dict[str, tf.types.experimental.GenericFunction]:
        """``serving_default(image, spacing)`` -> ``image`` (the finer volume) and ``spacing``."""
        return {"serving_default": self._upsample}


def finer_origin(origin: Sequence[float], direction: Sequence[float], spacing: Sequence[float],
                 factors: int | Sequence[int]) -> list[float]:
    """The finer grid's origin (mm) for a coarse grid's ``origin``, ``direction`` (9,), ``spacing`` (x, y, z).

    Each coarse voxel covers ``f`` fine voxels along an axis with ``f`` = its factor; their centres
    lie at ``(k + 0.5) / f - 0.5`` coarse voxels, so the first one is ``(1 - 1 / f) / 2`` before it.
    """
    factors_xyz = np.asarray(as_triple(factors)[::-1], float)
    shift = -(1.0 - 1.0 / factors_xyz) / 2.0 * np.asarray(spacing, float)
    return (np.asarray(origin, float) + np.asarray(direction, float).reshape(3, 3) @ shift).tolist()
