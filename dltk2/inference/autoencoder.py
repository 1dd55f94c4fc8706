"""An autoencoder served whole: the sequences of one subject in, their reconstruction and code out.

:class:`AutoencoderPredictor` whitens each channel over the volume and takes the box the network was
trained on from the volume's centre, as :mod:`dltk2.datasets.ixi_sequences` does in training; its
``serving_default`` returns the reconstruction (in the input's intensities) and the code, and its
``encode`` signature the code alone, for a client that wants the representation (a linear probe, a
search by similarity).
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from dltk2.inference.predictor import Predictor


def central_box_corner(shape: tf.Tensor, example_size: Sequence[int]) -> tf.Tensor:
    """int32 (3,): ``(size - example) // 2`` per axis (negative where the volume is smaller: padded)."""
    return tf.math.floordiv(tf.cast(shape[:3], tf.int32) - tf.constant(example_size, tf.int32), 2)


class AutoencoderPredictor(Predictor):
    """A volume of ``channels`` sequences on the training grid in; reconstruction and code out.

    Args:
        model: :func:`dltk2.networks.autoencoder.convolutional_autoencoder_3d` (its ``encoder`` is used
            for the code).
        example_size: (z, y, x) box the network takes.
        channels: Sequences per voxel.
    """

    kind = "autoencoder"

    def __init__(self, model: keras.Model, example_size: Sequence[int], channels: int = 3) -> None:
        super().__init__(name="autoencoder")
        self.model = model
        self.encoder = model.get_layer("encoder")
        self.example_size = [int(s) for s in example_size]
        self.channels = int(channels)
        self._reconstruct = tf.function(self.__call__, input_signature=self.input_signature())
        self._encode = tf.function(lambda image: {"code": self._code(image)}, input_signature=self.input_signature())

    def get_config(self) -> dict:
        return {"example_size": list(self.example_size), "channels": self.channels}

    def input_signature(self) -> list[tf.TensorSpec]:
        """``image`` float32 (z, y, x, channels), the sequences on the training grid, any size."""
        return [tf.TensorSpec([None, None, None, self.channels], tf.float32, name="image")]

    def warmup_inputs(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(0)
        return {"image": rng.normal(100.0, 10.0, (*self.example_size, self.channels)).astype(np.float32)}

    def _prepare(self, image: tf.Tensor):
        values = tf.cast(image, tf.float64)
        mean = tf.reduce_mean(values, axis=[0, 1, 2])
        std = tf.math.reduce_std(values, axis=[0, 1, 2])
        scale = tf.where(std > 1e-6, std, tf.ones_like(std))
        whitened = tf.cast((values - mean) / scale, tf.float32)
        corner = central_box_corner(tf.shape(image), self.example_size)
        size = tf.constant(self.example_size, tf.int32)
        before = tf.maximum(-corner, 0)
        after = tf.maximum(corner + size - tf.shape(image)[:3], 0)
        padded = tf.pad(whitened, tf.concat([tf.stack([before, after], axis=1), [[0, 0]]], axis=0))
        box = tf.slice(padded, tf.concat([corner + before, [0]], 0), tf.concat([size, [self.channels]], 0))
        box = tf.ensure_shape(box, [*self.example_size, self.channels])
        return box[tf.newaxis], mean, scale, corner

    def _code(self, image: tf.Tensor) -> tf.Tensor:
        box, *_ = self._prepare(image)
        return self.encoder(box, training=False)[0]

    def __call__(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        """Reconstructs one subject.

        Returns:
            ``reconstruction``: float32 (example z, y, x, channels) in the input's intensities, the box
            whose first voxel is the input's voxel ``corner``; ``code``: float32 (hidden units,);
            ``corner``: int32 (3,) (z, y, x).
        """
        box, mean, scale, corner = self._prepare(image)
        code = self.encoder(box, training=False)
        reconstructed = self.model.get_layer("decoder")(code, training=False)[0]
        restored = tf.cast(tf.cast(reconstructed, tf.float64) * scale + mean, tf.float32)
        return {"reconstruction": restored, "code": code[0], "corner": corner}

    def serving_functions(self) -> dict[str, tf.types.experimental.GenericFunction]:
        """``serving_default(image)`` -> reconstruction, code, corner; ``encode(image)`` -> code."""
        return {"serving_default": self._reconstruct, "encode": self._encode}
