"""A trained generator served: noise (or a count and a seed) in, volumes out.

:class:`GeneratorPredictor` exports the generator of :class:`dltk2.networks.gan.DCGAN` with two
signatures: ``serving_default`` maps given noise codes to volumes (reproducible by the caller), and
``sample`` draws ``count`` codes from a stateless seed (a TF Serving client asks for "8 volumes, seed
(3, 7)" and gets the same 8 every time).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from dltk2.inference.predictor import Predictor


class GeneratorPredictor(Predictor):
    """Volumes in [-1, 1] from a generator model, (batch, code_size) -> (batch, z, y, x, 1).

    Args:
        model: The generator (``DCGAN.generator``).
    """

    kind = "generator"

    def __init__(self, model: keras.Model) -> None:
        super().__init__(name="generator")
        self.model = model
        self.code_size = int(model.input_shape[-1])
        self._generate = tf.function(self.__call__, input_signature=[
            tf.TensorSpec([None, self.code_size], tf.float32, name="noise")])
        self._sample = tf.function(self.sample_volumes, input_signature=[
            tf.TensorSpec([], tf.int32, name="count"), tf.TensorSpec([2], tf.int64, name="seed")])

    def get_config(self) -> dict:
        return {}

    def warmup_inputs(self) -> dict[str, np.ndarray]:
        return {"noise": np.random.default_rng(0).normal(size=(2, self.code_size)).astype(np.float32)}

    def __call__(self, noise: tf.Tensor) -> dict[str, tf.Tensor]:
        """``images``: float32 (batch, z, y, x), one volume per noise code, in [-1, 1]."""
        return {"images": self.model(tf.cast(noise, tf.float32), training=False)[..., 0]}

    def sample_volumes(self, count: tf.Tensor, seed: tf.Tensor) -> dict[str, tf.Tensor]:
        """``images`` of ``count`` codes drawn from N(0, 1) with the stateless ``seed``, and the ``noise``."""
        noise = tf.random.stateless_normal(tf.stack([count, self.code_size]), seed)
        return {**self(noise), "noise": noise}

    def serving_functions(self) -> dict[str, tf.types.experimental.GenericFunction]:
        """``serving_default(noise)`` -> images; ``sample(count, seed)`` -> images, noise."""
        return {"serving_default": self._generate, "sample": self._sample}
