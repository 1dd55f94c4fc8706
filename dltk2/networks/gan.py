"""DLTK's 3D DCGAN: a generator of small volumes from noise, a discriminator, and their joint training step.

Radford et al.'s recipe in 3D: the generator maps a noise code through a dense layer to a coarse
volume of features and doubles it with strided transposed convolutions (batch norm, ReLU) up to a
``tanh`` output in [-1, 1]; the discriminator halves its input with strided convolutions (leaky ReLU,
batch norm after the first) to one logit. :class:`DCGAN` trains both in one Keras ``fit``: each step
draws noise, scores real and generated volumes, and updates the discriminator on its cross-entropy
and the generator on the non-saturating loss (``-log D(G(z))``) together, through one Adam whose
moments are per variable, so that the run is one model with one optimizer and resumes from its
checkpoints as every dltk2 training does.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from dltk2.networks.layers import FusedBatchNormalization


def dcgan_generator_3d(code_size: int = 64, output_shape: Sequence[int] = (16, 16, 16, 1),
                       filters: Sequence[int] = (64, 32, 16), name: str = "generator") -> keras.Model:
    """(batch, code_size) noise -> (batch, *output_shape) volumes in [-1, 1].

    Each entry of ``filters`` is one transposed convolution of stride 2, so the dense layer's volume
    is ``output_shape / 2 ** len(filters)`` per axis (each must divide).

    Raises:
        ValueError: An output size that the doublings do not reach.
    """
    spatial, channels = [int(s) for s in output_shape[:3]], int(output_shape[3])
    factor = 2 ** len(filters)
    if any(size % factor for size in spatial):
        raise ValueError(f"output size {spatial} must be divisible by 2 ** {len(filters)} (one doubling per filter)")
    start = [size // factor for size in spatial]
    inputs = keras.Input((code_size,), name="noise")
    x = keras.layers.Dense(int(np.prod(start)) * filters[0], use_bias=False, name="project")(inputs)
    x = keras.layers.ReLU(name="project_act")(keras.layers.BatchNormalization(momentum=0.9, name="project_bn")(x))
    x = keras.layers.Reshape((*start, filters[0]), name="volume")(x)
    for level, width in enumerate(filters):
        x = keras.layers.Conv3DTranspose(width, 4, strides=2, padding="same", use_bias=False, name=f"up_{level}")(x)
        x = keras.layers.ReLU(name=f"up_{level}_act")(FusedBatchNormalization(momentum=0.9, name=f"up_{level}_bn")(x))
    outputs = keras.layers.Conv3D(channels, 3, padding="same", activation="tanh", name="image")(x)
    return keras.Model(inputs, outputs, name=name)


def dcgan_discriminator_3d(input_shape: Sequence[int] = (16, 16, 16, 1), filters: Sequence[int] = (16, 32, 64),
                           name: str = "discriminator") -> keras.Model:
    """(batch, *input_shape) -> (batch, 1) logit that the volume is real."""
    inputs = keras.Input(tuple(input_shape), name="image")
    x = inputs
    for level, width in enumerate(filters):
        x = keras.layers.Conv3D(width, 4, strides=2, padding="same", use_bias=level == 0, name=f"down_{level}")(x)
        if level:
            x = FusedBatchNormalization(momentum=0.9, name=f"down_{level}_bn")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"down_{level}_act")(x)
    logit = keras.layers.Dense(1, name="logit")(keras.layers.Flatten(name="flatten")(x))
    return keras.Model(inputs, logit, name=name)


@keras.saving.register_keras_serializable(package="dltk2")
class DCGAN(keras.Model):
    """The generator and discriminator trained together; ``fit`` on batches of real volumes in [-1, 1].

    Calling it generates: ``DCGAN(noise)`` is ``generator(noise)``. Logs ``loss`` (the sum),
    ``d_loss`` and ``g_loss`` (cross-entropies, nats) and ``d_real`` (the discriminator's mean
    probability that the real volumes are real).
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, **kwargs) -> None:
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.code_size = int(generator.input_shape[-1])
        self._cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
        self._trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "d_loss", "g_loss", "d_real")}

    def call(self, noise, training=False):
        return self.generator(noise, training=training)

    @property
    def metrics(self):
        return list(self._trackers.values())

    def train_step(self, data):
        real = data[0] if isinstance(data, (tuple, list)) else data
        batch = tf.shape(real)[0]
        noise = tf.random.normal([batch, self.code_size])
        with tf.GradientTape(persistent=True) as tape:
            fake = self.generator(noise, training=True)
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(fake, training=True)
            d_loss = (self._cross_entropy(tf.ones_like(real_logits), real_logits)
                      + self._cross_entropy(tf.zeros_like(fake_logits), fake_logits))
            g_loss = self._cross_entropy(tf.ones_like(fake_logits), fake_logits)
        d_variables = self.discriminator.trainable_variables
        g_variables = self.generator.trainable_variables
        gradients = tape.gradient(d_loss, d_variables) + tape.gradient(g_loss, g_variables)
        del tape
        self.optimizer.apply(gradients, d_variables + g_variables)
        values = {"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss,
                  "d_real": tf.reduce_mean(tf.sigmoid(real_logits))}
        for name, value in values.items():
            self._trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self._trackers.items()}

    def get_config(self) -> dict:
        return {**super().get_config(), "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator)}

    @classmethod
    def from_config(cls, config: dict) -> "DCGAN":
        config = dict(config)
        generator = keras.saving.deserialize_keras_object(config.pop("generator"))
        discriminator = keras.saving.deserialize_keras_object(config.pop("discriminator"))
        return cls(generator, discriminator, **config)


def dcgan_3d(code_size: int = 64, volume_shape: Sequence[int] = (16, 16, 16, 1),
             generator_filters: Sequence[int] = (64, 32, 16), discriminator_filters: Sequence[int] = (16, 32, 64),
             name: str = "dcgan_3d") -> DCGAN:
    """The :class:`DCGAN` of :func:`dcgan_generator_3d` and :func:`dcgan_discriminator_3d`, built."""
    model = DCGAN(dcgan_generator_3d(code_size, volume_shape, generator_filters),
                  dcgan_discriminator_3d(volume_shape, discriminator_filters), name=name)
    model(tf.zeros([1, code_size]))
    return model
