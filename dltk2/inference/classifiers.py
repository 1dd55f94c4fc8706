"""Classifiers of one input of any size, preprocessing inside: grey 2D images and MRI series.

``ImageClassifier2D`` classifies one grey 2D image of any size (scaling and padding inside);
``SeriesClassifier`` one MRI series (slices, height, width) of any size (resampling and whitening
inside). Both export whole: deploy calls the same compiled function as ``serving_default``.

Both take test-time mirroring (``mirror_axes``: the input also predicted flipped, in the same network
call) and a fold ensemble's per-fold probabilities (``model_outputs="fold_probabilities"``,
:func:`dltk2.inference.ensemble.fold_ensemble` with ``stack=True``); ``probabilities`` is then the
mean over mirrorings and folds, ``probabilities_std`` the spread, the classifier's uncertainty.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from dltk2.inference.predictor import Predictor
from dltk2.inference.saliency import explainable_features, grad_cam_and_class, resize_map
from dltk2.inference.test_time import mirror_combinations, mirrored_outputs
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



MODEL_OUTPUTS = ("logits", "probabilities", "fold_probabilities")


def spread_of_predictions(outputs: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Mean and standard deviation over every prediction of one input: (..., classes) -> 2 x (classes,).

    The leading axes are mirrorings, crops or folds (any number of them): each counts once.
    """
    outputs = tf.convert_to_tensor(outputs, tf.float32)
    flat = tf.reshape(outputs, tf.stack([-1, tf.shape(outputs)[-1]]))
    return tf.reduce_mean(flat, axis=0), tf.math.reduce_std(flat, axis=0)


def check_model_outputs(model_outputs: str) -> str:
    if model_outputs not in MODEL_OUTPUTS:
        raise ValueError(f"model_outputs must be one of {', '.join(MODEL_OUTPUTS)}, got {model_outputs!r}")
    return model_outputs


class _SingleInputClassifier(Predictor):
    """A classifier of one input of any size: ``preprocess`` (in the graph), model, softmax, argmax."""

    input_name = "image"
    input_rank = 2

    def __init__(self, model: keras.Model, class_names: Sequence[str], name: str, mirror_axes: Sequence[int] = (),
                 model_outputs: str = "logits") -> None:
        super().__init__(name=name)
        self.model = model
        self.class_names = [str(name) for name in class_names]
        self.mirror_axes = sorted({int(a) for a in mirror_axes})
        mirror_combinations(self.mirror_axes)
        if any(a >= self.input_rank for a in self.mirror_axes):
            raise ValueError(f"a {self.input_rank}D input has no mirror axis {max(self.mirror_axes)}")
        self.model_outputs = check_model_outputs(model_outputs)
        self._names = tf.constant(self.class_names)
        spec = [tf.TensorSpec([None] * self.input_rank, tf.float32, name=self.input_name)]
        self._classify = tf.function(self.__call__, input_signature=spec)
        # Grad-CAM needs one network's feature map: a stacked fold ensemble has one per fold.
        self._features = (explainable_features(model, [1, *self.input_shape(), 1])
                          if self.model_outputs != "fold_probabilities" else None)
        self._explain = tf.function(self.explain_input, input_signature=spec)

    def preprocess(self, value: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def extra_config(self) -> dict:
        return {"mirror_axes": list(self.mirror_axes), "model_outputs": self.model_outputs}

    def __call__(self, value: tf.Tensor) -> dict[str, tf.Tensor]:
        """One input -> ``probabilities`` (classes,), the mean over mirrorings and folds;
        ``probabilities_std`` (classes,), their spread (zeros for one model without mirroring);
        ``class_id`` () int32; ``class_name`` () string."""
        activation = tf.nn.softmax if self.model_outputs == "logits" else None
        # (mirrorings, 1, classes), or (mirrorings, 1, folds, classes) for a stacked fold ensemble.
        outputs = mirrored_outputs(self.model, self.preprocess(value)[tf.newaxis], self.mirror_axes, activation)
        probabilities, spread = spread_of_predictions(outputs)
        class_id = tf.argmax(probabilities, output_type=tf.int32)
        return {"probabilities": probabilities, "probabilities_std": spread, "class_id": class_id,
                "class_name": tf.gather(self._names, class_id)}

    def input_map(self, maps: tf.Tensor, shape: tf.Tensor) -> tf.Tensor:
        """A map on the network's input grid -> the raw input's grid (``shape``): the inverse of ``preprocess``."""
        raise NotImplementedError

    def explain_input(self, value: tf.Tensor) -> dict[str, tf.Tensor]:
        """One raw input -> ``saliency``: Grad-CAM of the served class on the input's own grid, in [0, 1];
        ``class_id``: that class (the one ``serving_default`` answers)."""
        # Unmirrored, the network's own answer is the served one: one forward pass gives class and map.
        class_id = self(value)["class_id"] if self.mirror_axes else None
        maps, chosen = grad_cam_and_class(self.model, self.preprocess(value)[tf.newaxis], class_id,
                                          features=self._features)
        return {"saliency": self.input_map(maps[0], tf.shape(value)), "class_id": chosen[0]}

    def explain(self, value: np.ndarray) -> dict[str, np.ndarray]:
        """Numpy in and out, through the compiled ``explain`` that is exported."""
        if self._features is None:
            raise ValueError(f"{self.kind}: this model has no single feature map to explain (a fold ensemble)")
        outputs = self._explain(tf.constant(np.asarray(value, np.float32)))
        return {key: value.numpy() for key, value in outputs.items()}

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
        """``serving_default(<input_name>)``, and ``explain(<input_name>)`` where the model has a feature map."""
        functions = {"serving_default": self._classify}
        if self._features is not None:
            functions["explain"] = self._explain
        return functions



class ImageClassifier2D(_SingleInputClassifier):
    """Classifies one grey 2D image of any size: scaling and resizing inside, so it exports whole.

    ``serving_default(image)``: float32 (h, w), any intensity range -> ``probabilities``,
    ``class_id``, ``class_name``.

    Args:
        model: (batch, size, size, 1) in [0, 1] -> (batch, classes) logits (or, see ``model_outputs``,
            probabilities, or (batch, folds, classes) per-fold probabilities).
        size: The model's input size.
        class_names: Name of each class index.
        mirror_axes: Test-time mirroring along 0 (rows) and/or 1 (columns); () is off. Off for
            radiographs unless the finding is symmetric: a flipped chest puts the heart on the right.
        model_outputs: ``"logits"``, ``"probabilities"`` or ``"fold_probabilities"``.
    """

    def __init__(self, model: keras.Model, size: int, class_names: Sequence[str], mirror_axes: Sequence[int] = (),
                 model_outputs: str = "logits") -> None:
        self.size = int(size)
        super().__init__(model, class_names, "image_classifier_2d", mirror_axes, model_outputs)

    kind = "image_classifier_2d"

    def get_config(self) -> dict:
        return {"size": self.size, "class_names": list(self.class_names), **self.extra_config()}

    def input_shape(self) -> list[int]:
        return [self.size, self.size]

    def preprocess(self, value: tf.Tensor) -> tf.Tensor:
        return grey_image_input(value, self.size)

    def input_map(self, maps: tf.Tensor, shape: tf.Tensor) -> tf.Tensor:
        """The padding ``tf.image.resize_with_pad`` added cut off (its own arithmetic), then resized to (h, w)."""
        height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
        target = float(self.size)
        ratio = tf.maximum(width / target, height / target)
        resized_height, resized_width = height / ratio, width / ratio
        top = tf.maximum(0, tf.cast(tf.floor((target - resized_height) / 2), tf.int32))
        left = tf.maximum(0, tf.cast(tf.floor((target - resized_width) / 2), tf.int32))
        inside = maps[top:top + tf.cast(tf.floor(resized_height), tf.int32),
                      left:left + tf.cast(tf.floor(resized_width), tf.int32)]
        return resize_map(inside[tf.newaxis], shape[:2])[0]



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
        model: (batch, depth, size, size, 1) whitened series -> (batch, classes) logits (or, see
            ``model_outputs``, probabilities, or (batch, folds, classes) per-fold probabilities).
        depth, size: The model's input depth and in-plane size (:func:`series_input`).
        class_names: Name of each class index.
        mirror_axes: Test-time mirroring along 0 (slices), 1 (rows), 2 (columns); () is off. All
            flips of the series go through the network in one call.
        model_outputs: ``"logits"``, ``"probabilities"`` or ``"fold_probabilities"``.
    """

    input_name = "series"
    input_rank = 3

    def __init__(self, model: keras.Model, depth: int, size: int, class_names: Sequence[str],
                 mirror_axes: Sequence[int] = (), model_outputs: str = "logits") -> None:
        self.depth, self.size = int(depth), int(size)
        super().__init__(model, class_names, "series_classifier", mirror_axes, model_outputs)

    kind = "series_classifier"

    def get_config(self) -> dict:
        return {"depth": self.depth, "size": self.size, "class_names": list(self.class_names), **self.extra_config()}

    def input_shape(self) -> list[int]:
        return [self.depth, self.size, self.size]

    def preprocess(self, value: tf.Tensor) -> tf.Tensor:
        return series_input(value, self.depth, self.size)

    def input_map(self, maps: tf.Tensor, shape: tf.Tensor) -> tf.Tensor:
        """Trilinear back to (slices, h, w): the resampling ``series_input`` did, undone."""
        return resize_map(maps[tf.newaxis], shape[:3])[0]

