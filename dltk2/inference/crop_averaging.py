"""DLTK's IXI deploy as one graph: average a model's predictions over random crops of a whitened volume.

``deploy.py`` calls :class:`CropAveragingPredictor`, and the exported ``serving_default`` is the same
function, so TF Serving answers exactly what deploy prints for the same crop positions (same seed).
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from dltk2.inference.predictor import Predictor
from dltk2.transforms import tf_whitening
from dltk2.volume_sampling import pad_to_at_least, random_corners


def random_crop_corners(
    volume_shape: tf.Tensor, crop_size: Sequence[int], num_crops: int, seed: tf.Tensor
) -> tf.Tensor:
    """Corners of ``num_crops`` crops drawn uniformly over every valid position, reproducibly.

    The serving graph's use of :func:`dltk2.volume_sampling.random_corners` (the training crops'
    own draw), with a scalar seed.

    Args:
        volume_shape: int32 (3,), (z, y, x) of a volume at least ``crop_size`` large.
        crop_size: (z, y, x) of a crop.
        num_crops: Number of crops.
        seed: int32 scalar; the same seed and shape give the same corners on every machine.

    Returns:
        int32 (num_crops, 3).
    """
    return random_corners(volume_shape, crop_size, num_crops, tf.stack([tf.cast(seed, tf.int32), 0]))


class CropAveragingPredictor(Predictor):
    """Averages a model's predictions over random crops of a whole volume.

    Args:
        model: A Keras model taking (batch, z, y, x, c) crops and returning classification logits
            (batch, classes) or a regression value (batch, 1).
        crop_size: (z, y, x) of the crops, as in training.
        num_crops: Crops per volume.
        task: ``"classification"`` or ``"regression"``.
        whiten: Whiten the whole volume first (DLTK's IXI preprocessing).
        channels: Image channels the model takes.
        default_seed: Seed of ``serving_default`` (which takes no seed).
    """

    def __init__(
        self,
        model: keras.Model,
        crop_size: Sequence[int],
        num_crops: int = 4,
        task: str = "classification",
        whiten: bool = True,
        channels: int = 1,
        default_seed: int = 0,
    ) -> None:
        super().__init__(name="crop_averaging_predictor")
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
        if num_crops < 1:
            raise ValueError(f"num_crops must be >= 1, got {num_crops}")
        self.model = model
        self.crop_size = [int(s) for s in crop_size]
        self.num_crops = int(num_crops)
        self.task = task
        self.whiten = whiten
        self.channels = int(channels)
        self.default_seed = int(default_seed)
        self._functions: dict | None = None

    kind = "crop_averaging"

    def get_config(self) -> dict:
        return {"crop_size": list(self.crop_size), "num_crops": self.num_crops, "task": self.task,
                "whiten": self.whiten,
                "channels": self.channels, "default_seed": self.default_seed}

    def warmup_inputs(self) -> dict[str, np.ndarray]:
        """A volume of one crop's size (a deploy may give a real one instead)."""
        return {"image": np.zeros(self.crop_size, np.float32)}

    def image_spec(self) -> tf.TensorSpec:
        """Input of the serving signatures: a raw volume (z, y, x) of any size, float32."""
        return tf.TensorSpec([None, None, None], tf.float32, name="image")

    def __call__(self, image: tf.Tensor, seed: tf.Tensor) -> dict[str, tf.Tensor]:
        """Predicts for one raw volume.

        Args:
            image: float32 (z, y, x), raw intensities at the training spacing.
            seed: int32 scalar choosing the crop positions.

        Returns:
            For classification: ``probabilities`` (classes,), the mean over crops; ``class_id`` ()
            int32; ``probabilities_std`` (classes,), the spread over crops; ``crop_corners``
            (num_crops, 3). For regression: ``prediction`` () and ``prediction_std`` () and
            ``crop_corners``.
        """
        volume = tf.convert_to_tensor(image, tf.float32)
        if self.whiten:
            volume = tf_whitening(volume)
        volume = tf.tile(volume[..., tf.newaxis], [1, 1, 1, self.channels])
        volume = pad_to_at_least(volume, self.crop_size)
        corners = random_crop_corners(tf.shape(volume), self.crop_size, self.num_crops, seed)
        crops = tf.map_fn(
            lambda corner: tf.slice(volume, tf.concat([corner, [0]], 0), self.crop_size + [self.channels]),
            corners,
            fn_output_signature=tf.TensorSpec(self.crop_size + [self.channels], tf.float32),
        )
        outputs = tf.cast(self.model(crops, training=False), tf.float32)
        if self.task == "classification":
            probabilities = tf.nn.softmax(outputs, axis=-1)
            mean = tf.reduce_mean(probabilities, axis=0)
            return {
                "probabilities": mean,
                "class_id": tf.argmax(mean, output_type=tf.int32),
                "probabilities_std": tf.math.reduce_std(probabilities, axis=0),
                "crop_corners": corners,
            }
        values = outputs[:, 0]
        return {
            "prediction": tf.reduce_mean(values),
            "prediction_std": tf.math.reduce_std(values),
            "crop_corners": corners,
        }

    def serving_functions(self) -> dict[str, tf.types.experimental.GenericFunction]:
        """``serving_default(image)`` with the default seed, and ``predict_with_seed(image, seed)``."""
        if self._functions is None:
            @tf.function(input_signature=[self.image_spec()])
            def serving_default(image):
                return self(image, tf.constant(self.default_seed, tf.int32))

            @tf.function(input_signature=[self.image_spec(), tf.TensorSpec([], tf.int32, name="seed")])
            def predict_with_seed(image, seed):
                return self(image, seed)

            self._functions = {"serving_default": serving_default, "predict_with_seed": predict_with_seed}
        return self._functions
