"""Classifiers of one input of any size, preprocessing inside: grey 2D images and MRI series.

``ImageClassifier2D`` classifies one grey 2D image of any size (scaling and padding inside);
``SeriesClassifier`` one MRI series (slices, height, width) of any size (resampling and whitening
inside). Both export whole: deploy calls the same compiled function as ``serving_default``.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from dltk2.inference.predictor import Predictor
from dltk2.transforms import tf_normalise_zero_one, tf_whitening


def grey_image_input(image: tf.Tensor, size: int) -> tf.Tensor:
    """A grey 2D image (h, w) or (h, w, 1) of any number type -> (size, size, 1) float32 in [0, 1].

    Min-max scaled per image (so 8- and 16-bit files look alike), then resized to fit ``size`` with the
    aspect ratio kept and zero padding (``tf.image.resize_with_pad``).
    """
    values = tf.cast(image, tf.float32)
    if values.shape.rank == 2:
        values = values[..., tf.newaxis]
    return tf.image.resize_with_pad(tf_normalise_zero_one(values), size, size)



class _SingleInputClassifier(Predictor):
    """A classifier of one input of any size: ``preprocess`` (in the graph), model, softmax, argmax."""

    input_name = "image"
    input_rank = 2

    def __init__(self, model: keras.Model, class_names: Sequence[str], name: str) -> None:
        super().__init__(name=name)
        self.model = model
        self.class_names = [str(name) for name in class_names]
        self._names = tf.constant(self.class_names)
        self._classify = tf.function(self.__call__, input_signature=[
            tf.TensorSpec([None] * self.input_rank, tf.float32, name=self.input_name)])

    def preprocess(self, value: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def __call__(self, value: tf.Tensor) -> dict[str, tf.Tensor]:
        """One input -> ``probabilities`` (classes,), ``class_id``, ``class_name``."""
        logits = self.model(self.preprocess(value)[tf.newaxis], training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)[0]
        class_id = tf.argmax(probabilities, output_type=tf.int32)
        return {"probabilities": probabilities, "class_id": class_id, "class_name": tf.gather(self._names, class_id)}

    def classify(self, value: np.ndarray) -> dict[str, np.ndarray]:
        """Numpy in and out, through the compiled function that is exported."""
        outputs = self._classify(tf.constant(np.asarray(value, np.float32)))
        return {key: value.numpy() for key, value in outputs.items()}

    def input_shape(self) -> list[int]:
        raise NotImplementedError

    def warmup_inputs(self) -> dict[str, np.ndarray]:
        """Zeros of the model's input size."""
        return {self.input_name: np.zeros(self.input_shape(), np.float32)}

    def serving_functions(self) -> dict[str, tf.types.experimental.GenericFunction]:
        """``serving_default(<input_name>)``."""
        return {"serving_default": self._classify}



class ImageClassifier2D(_SingleInputClassifier):
    """Classifies one grey 2D image of any size: scaling and resizing inside, so it exports whole.

    ``serving_default(image)``: float32 (h, w), any intensity range -> ``probabilities``,
    ``class_id``, ``class_name``.

    Args:
        model: (batch, size, size, 1) in [0, 1] -> (batch, classes) logits.
        size: The model's input size.
        class_names: Name of each class index.
    """

    def __init__(self, model: keras.Model, size: int, class_names: Sequence[str]) -> None:
        self.size = int(size)
        super().__init__(model, class_names, "image_classifier_2d")

    kind = "image_classifier_2d"

    def get_config(self) -> dict:
        return {"size": self.size, "class_names": list(self.class_names)}

    def input_shape(self) -> list[int]:
        return [self.size, self.size]

    def preprocess(self, value: tf.Tensor) -> tf.Tensor:
        return grey_image_input(value, self.size)



def series_input(series: tf.Tensor, depth: int, size: int) -> tf.Tensor:
    """A raw series (slices, height, width), any number type -> the network input (depth, size, size, 1).

    Linear resampling in-plane to (size, size) (antialiased when shrinking, aspect ratio not kept:
    MRNet's slices are square), then linear resampling across slices to ``depth``, then whitening
    (zero mean, unit standard deviation over the series). float32 out.
    """
    values = tf.cast(series, tf.float32)[..., tf.newaxis]
    values = tf.image.resize(values, [size, size], method="bilinear", antialias=True)
    slices = tf.shape(values)[0]
    across = tf.reshape(values, [slices, size * size, 1])
    across = tf.image.resize(across, [depth, size * size], method="bilinear", antialias=True)
    return tf_whitening(tf.reshape(across, [depth, size, size, 1]))



class SeriesClassifier(_SingleInputClassifier):
    """Classifies one raw MRI series of any size: resampling and whitening inside, so it exports whole.

    ``serving_default(series)``: float32 (slices, h, w), any intensity range -> ``probabilities``,
    ``class_id``, ``class_name``.

    Args:
        model: (batch, depth, size, size, 1) whitened series -> (batch, classes) logits.
        depth, size: The model's input depth and in-plane size (:func:`series_input`).
        class_names: Name of each class index.
    """

    input_name = "series"
    input_rank = 3

    def __init__(self, model: keras.Model, depth: int, size: int, class_names: Sequence[str]) -> None:
        self.depth, self.size = int(depth), int(size)
        super().__init__(model, class_names, "series_classifier")

    kind = "series_classifier"

    def get_config(self) -> dict:
        return {"depth": self.depth, "size": self.size, "class_names": list(self.class_names)}

    def input_shape(self) -> list[int]:
        return [self.depth, self.size, self.size]

    def preprocess(self, value: tf.Tensor) -> tf.Tensor:
        return series_input(value, self.depth, self.size)

