"""DLTK's IXI deploy as one graph: average a model's predictions over random crops of a whitened volume.

``deploy.py`` calls :class:`CropAveragingPredictor`, and the exported ``serving_default`` is the same
function, so TF Serving answers exactly what deploy prints for the same crop positions (same seed).
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from dltk2.inference.classifiers import check_model_outputs, spread_of_predictions
from dltk2.inference.orientation import plan_orientation, reorient, reoriented_spacing, restore_orientation
from dltk2.inference.predictor import Predictor
from dltk2.inference.resampling import resample_volume
from dltk2.inference.saliency import explainable_features, grad_cam_and_scores
from dltk2.inference.test_time import mirror_combinations, mirrored_outputs
from dltk2.io.orientation import check_codes, direction_of
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

    With an ``orientation`` (the training images' axis codes), the serving functions also take the
    volume's ``spacing`` and ``direction``: the volume is brought to the training orientation
    (transposes and flips; an oblique one resampled, :mod:`dltk2.inference.orientation`) and, with a
    ``spacing_mm``, resampled linearly to the training spacing, so a raw scan in any orientation and
    resolution gets the prediction its training-grid twin gets. The crops are drawn on that grid.

    Args:
        model: A Keras model taking (batch, z, y, x, c) crops and returning classification logits
            (batch, classes) or a regression value (batch, 1).
        crop_size: (z, y, x) of the crops, as in training.
        num_crops: Crops per volume.
        task: ``"classification"`` or ``"regression"``.
        whiten: Whiten the whole volume first (DLTK's IXI preprocessing).
        channels: Image channels the model takes.
        default_seed: Seed of ``serving_default`` (which takes no seed).
        orientation: Axis codes the model was trained in; None: the serving functions take the
            volume alone, in the training orientation and spacing (a folder from before orientations).
        spacing_mm: (x, y, z) training voxel size, mm; with an orientation, inputs are resampled to it.
        mirror_axes: Test-time mirroring: each crop is also predicted flipped along these spatial axes
            (0 z, 1 y, 2 x; :mod:`dltk2.inference.test_time`), in the same network call; the mean and
            the spread are then over crops and mirrorings. () is off.
        model_outputs: ``"logits"`` (a regressor's values); ``"probabilities"`` for a classifier that
            gives them already; ``"fold_probabilities"`` for a fold ensemble that gives each fold's
            (batch, folds, classes or 1) (:func:`dltk2.inference.ensemble.fold_ensemble` with
            ``stack=True``): the mean and spread are then over crops, mirrorings and folds.
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
        orientation: str | None = None,
        spacing_mm: Sequence[float] | None = None,
        mirror_axes: Sequence[int] = (),
        model_outputs: str = "logits",
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
        self.orientation = check_codes(orientation) if orientation is not None else None
        self.spacing_mm = [float(v) for v in spacing_mm] if spacing_mm is not None else None
        self.mirror_axes = sorted(set(int(a) for a in mirror_axes))
        mirror_combinations(self.mirror_axes)  # checks the axes
        self.model_outputs = check_model_outputs(model_outputs)
        if self.spacing_mm is not None and self.orientation is None:
            raise ValueError("spacing_mm needs an orientation (the inputs then carry their spacing)")
        # Grad-CAM needs one network's feature map: a stacked fold ensemble has one per fold.
        self._features = (explainable_features(model, [1, *self.crop_size, self.channels])
                          if self.model_outputs != "fold_probabilities" else None)
        self._functions: dict | None = None

    kind = "crop_averaging"

    def get_config(self) -> dict:
        return {"crop_size": list(self.crop_size), "num_crops": self.num_crops, "task": self.task,
                "whiten": self.whiten,
                "channels": self.channels, "default_seed": self.default_seed,
                "orientation": self.orientation,
                "spacing_mm": list(self.spacing_mm) if self.spacing_mm is not None else None,
                "mirror_axes": list(self.mirror_axes), "model_outputs": self.model_outputs}

    def warmup_inputs(self) -> dict[str, np.ndarray]:
        """A volume of one crop's size (a deploy may give a real one instead)."""
        inputs = {"image": np.zeros(self.crop_size, np.float32)}
        if self.orientation is not None:
            inputs["spacing"] = np.asarray(self.spacing_mm or [1.0, 1.0, 1.0], np.float64)
            inputs["direction"] = np.asarray(direction_of(self.orientation), np.float64)
        return inputs

    def input_specs(self) -> list[tf.TensorSpec]:
        """Inputs of ``serving_default``: ``image`` float32 (z, y, x), raw, any size; with an
        orientation, ``spacing`` float64 (3,) (x, y, z) mm and ``direction`` float64 (9,) row-major."""
        specs = [tf.TensorSpec([None, None, None], tf.float32, name="image")]
        if self.orientation is not None:
            specs += [tf.TensorSpec([3], tf.float64, name="spacing"), tf.TensorSpec([9], tf.float64, name="direction")]
        return specs

    def to_training_grid(self, image: tf.Tensor, spacing: tf.Tensor | None = None,
                         direction: tf.Tensor | None = None) -> tf.Tensor:
        """A raw (z, y, x) volume -> (z', y', x') in the training orientation and spacing (if it has them)."""
        return self._training_grid(image, spacing, direction)[0]

    def _training_grid(self, image, spacing, direction):
        """``(volume on the training grid, orientation plan or None, spacing of the reoriented grid or None)``."""
        volume = tf.convert_to_tensor(image, tf.float32)
        if self.orientation is None:
            return volume, None, None
        plan = plan_orientation(tf.shape(volume), spacing, direction, self.orientation)
        volume = reorient(volume[..., tf.newaxis], plan)
        spacing = reoriented_spacing(spacing, plan)
        if self.spacing_mm is not None:
            volume = resample_volume(volume, spacing, self.spacing_mm, method="linear")
        return volume[..., 0], plan, spacing

    def _crops(self, volume: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """A (z, y, x) volume on the training grid -> ``(crops (num_crops, *crop_size, channels), corners,
        padded volume's shape)``: whitened, channels tiled, padded to a crop, the crops cut."""
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
        return crops, corners, tf.shape(volume)[:3]

    def _summarise(self, outputs: tf.Tensor, corners: tf.Tensor) -> dict[str, tf.Tensor]:
        mean, spread = spread_of_predictions(outputs)
        if self.task == "classification":
            return {"probabilities": mean, "class_id": tf.argmax(mean, output_type=tf.int32),
                    "probabilities_std": spread, "crop_corners": corners}
        return {"prediction": mean[0], "prediction_std": spread[0], "crop_corners": corners}

    def __call__(self, image: tf.Tensor, seed: tf.Tensor, spacing: tf.Tensor | None = None,
                 direction: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        """Predicts for one raw volume.

        Args:
            image: float32 (z, y, x), raw intensities (at the training spacing, without a ``spacing_mm``).
            seed: int32 scalar choosing the crop positions.
            spacing: float64 (3,), (x, y, z) voxel size of ``image``, mm; with an orientation only.
            direction: float64 (9,), the image's direction matrix; with an orientation only.

        Returns:
            For classification: ``probabilities`` (classes,), the mean over crops; ``class_id`` ()
            int32; ``probabilities_std`` (classes,), the spread over crops; ``crop_corners``
            (num_crops, 3) on the training grid. For regression: ``prediction`` () and ``prediction_std`` () and
            ``crop_corners``.
        """
        crops, corners, _ = self._crops(self.to_training_grid(image, spacing, direction), seed)
        return self._summarise(self._outputs(crops), corners)

    def _outputs(self, crops: tf.Tensor) -> tf.Tensor:
        """(mirrorings, crops[, folds], classes or 1): every crop under every mirroring (by every fold)."""
        logits = self.task == "classification" and self.model_outputs == "logits"
        return mirrored_outputs(self.model, crops, self.mirror_axes, activation=tf.nn.softmax if logits else None)

    def explain_volume(self, image: tf.Tensor, seed: tf.Tensor, spacing: tf.Tensor | None = None,
                       direction: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        """Grad-CAM of one raw volume's prediction, on the volume's own grid.

        Each crop's map (of the class the crops' mean gives, or of the regressed value: where larger
        features raise it) goes back to its place on the training grid; where crops overlap their
        maps are averaged, a voxel no crop covered is 0; the mean is scaled to [0, 1] and brought
        back through the padding, the resampling and the reorientation to the input's grid. The
        crops and their answers are those of :meth:`__call__` with the same seed.

        Returns:
            ``saliency`` float32 (z, y, x) in [0, 1], on ``image``'s grid; and the outputs of
            :meth:`__call__` (``class_id``, ``probabilities``... or ``prediction``...). Without
            mirroring the class and the maps come from one forward pass.
        """
        if self._features is None:
            raise ValueError(f"{self.kind}: this model has no single feature map to explain (a fold ensemble)")
        volume, plan, reoriented = self._training_grid(image, spacing, direction)
        crops, corners, padded = self._crops(volume, seed)
        answer = self._summarise(self._outputs(crops), corners) if self.mirror_axes else None

        def choose(scores: tf.Tensor) -> tf.Tensor:
            if self.task == "regression":
                return tf.zeros(tf.shape(scores)[:1], tf.int32)
            if answer is not None:
                class_id = answer["class_id"]
            else:
                probabilities = tf.nn.softmax(scores) if self.model_outputs == "logits" else scores
                class_id = tf.argmax(tf.reduce_mean(probabilities, axis=0), output_type=tf.int32)
            return tf.fill(tf.shape(scores)[:1], class_id)

        maps, _, scores = grad_cam_and_scores(self.model, crops, choose, self._features, normalise=False)
        if answer is None:  # the served answer from the same pass: (mirrorings = 1, crops, classes or 1)
            activated = tf.nn.softmax(scores) if self.task == "classification" and self.model_outputs == "logits" \
                else scores
            answer = self._summarise(activated[tf.newaxis], corners)
        total, covered = tf.zeros(padded), tf.zeros(padded)
        for index in range(self.num_crops):
            place = tf.stack([corners[index], padded - corners[index] - self.crop_size], axis=1)
            total += tf.pad(maps[index], place)
            covered += tf.pad(tf.ones(self.crop_size), place)
        mean = tf.math.divide_no_nan(total, covered)
        mean = tf.math.divide_no_nan(mean, tf.reduce_max(mean))
        before = (padded - tf.shape(volume)) // 2  # pad_to_at_least's centred split
        mean = tf.slice(mean, before, tf.shape(volume))[..., tf.newaxis]
        if plan is not None:
            if self.spacing_mm is not None:
                mean = resample_volume(mean, self.spacing_mm, reoriented, new_size=plan.resampled_size)
            mean = restore_orientation(mean, plan, "linear")
        return {"saliency": mean[..., 0], **answer}

    def serving_functions(self) -> dict[str, tf.types.experimental.GenericFunction]:
        """``serving_default(image[, spacing, direction])`` with the default seed, ``predict_with_seed``
        taking a ``seed`` too, and ``explain`` (:meth:`explain_volume`, the default seed) where the model
        has a feature map."""
        if self._functions is None:
            specs = self.input_specs()
            seed_spec = [tf.TensorSpec([], tf.int32, name="seed")]

            @tf.function(input_signature=specs)
            def serving_default(image, *geometry):
                return self(image, tf.constant(self.default_seed, tf.int32), *geometry)

            @tf.function(input_signature=specs + seed_spec)
            def predict_with_seed(image, *rest):
                *geometry, seed = rest
                return self(image, seed, *geometry)

            self._functions = {"serving_default": serving_default, "predict_with_seed": predict_with_seed}
            if self._features is not None:
                @tf.function(input_signature=specs)
                def explain(image, *geometry):
                    return self.explain_volume(image, tf.constant(self.default_seed, tf.int32), *geometry)

                @tf.function(input_signature=specs + seed_spec)
                def explain_with_seed(image, *rest):
                    *geometry, seed = rest
                    return self.explain_volume(image, seed, *geometry)

                self._functions.update(explain=explain, explain_with_seed=explain_with_seed)
        return self._functions
