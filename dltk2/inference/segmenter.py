"""Segmentation of a raw volume on its own grid, in one graph: resample, normalise, sliding window, back."""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from dltk2.inference.orientation import plan_orientation, reorient, reoriented_spacing, restore_orientation
from dltk2.inference.postprocessing import keep_largest_components
from dltk2.inference.predictor import Predictor
from dltk2.inference.resampling import resample_volume
from dltk2.inference.sliding_window import sliding_window_inference
from dltk2.inference.ensemble import fold_models
from dltk2.inference.test_time import MirroredProbabilities, entropy, mirror_combinations
from dltk2.io.orientation import Reorientation, check_codes, direction_of
from dltk2.transforms import tf_clip_and_scale, tf_whitening


class SlidingWindowSegmenter(Predictor):
    """Segments a raw volume on its own grid: resample, clip and scale (or whiten), sliding window, and back.

    The whole of deploy's work in one graph, so ``deploy.py`` and the exported ``serving_default``
    are the same function: the raw volume (HU) is resampled linearly to the training spacing (points
    outside the volume are air), clipped to the intensity window and scaled to [-1, 1], segmented by
    :func:`sliding_window_inference`, and the label map goes back onto the input grid by nearest
    neighbour. The origin need not enter the graph: both grids share it (ITK's resampling
    convention, as :func:`dltk2.preprocessing.resample_to_spacing`), so the caller copies the input
    image's geometry onto the labels.

    MR has no absolute intensities: with ``normalisation="whiten"`` each channel is brought to zero
    mean and unit standard deviation over the resampled volume instead (as
    :func:`dltk2.preprocessing.whitening` does in a reader), outside voxels 0. ``channels > 1``
    takes co-registered sequences as one (z, y, x, channels) image (brain tissue: T1, T1-IR, FLAIR).

    With an ``orientation`` (the training images' axis codes, e.g. ``"LPS"``), the graph also takes
    the input's direction matrix and brings the volume to that orientation first (transposes and
    flips; oblique grids resampled, :mod:`dltk2.inference.orientation`), and the labels back onto the
    input's own voxels, so a sagittal, feet-first or RAS volume is segmented as the model learnt it.

    Args:
        model: A fully convolutional Keras model, (batch, z, y, x, 1) -> (batch, z, y, x, classes).
        window: (z, y, x) sliding-window size, voxels at ``spacing_mm``.
        spacing_mm: (x, y, z) voxel size the model was trained at, mm.
        intensity_window: (low, high) clipping window, HU; mapped to [-1, 1]. Unused when whitening.
        overlap: Sliding-window overlap, [0, 1).
        batch_size: Windows per model call.
        blend: ``"gaussian"`` or ``"constant"``.
        num_classes: Model output channels; read from the model if None.
        orientation: Axis codes the model was trained in; None: the graph takes no direction and
            segments the voxel order it is given (a model folder from before orientations).
        mirror_axes: Test-time mirroring: spatial axes (0 z, 1 y, 2 x, of the training orientation)
            each window is also predicted flipped along, the softmax averaged (2**len windows per
            network call per window; :mod:`dltk2.inference.test_time`). () is off.
        uncertainty: Also return ``entropy``, the per-voxel entropy of the blended probabilities (nats).
        model_outputs: ``"logits"``, or ``"probabilities"`` for a model that gives them already (a fold
            ensemble, :func:`dltk2.inference.ensemble.fold_ensemble`).
        keep_largest: Classes whose largest connected component alone is kept, at the training
            spacing before the labels go back (:mod:`dltk2.inference.postprocessing`; chosen where
            cross-validation shows it raises Dice).
        channels: Values per voxel of the input image (and of the model's input).
        normalisation: ``"window"`` (clip to ``intensity_window``, scale to [-1, 1]) or ``"whiten"``
            (each channel to zero mean, unit standard deviation).
    """

    def __init__(
        self,
        model: keras.Model,
        window: Sequence[int],
        spacing_mm: Sequence[float] = (2.0, 2.0, 2.0),
        intensity_window: Sequence[float] = (-1000.0, 800.0),
        overlap: float = 0.5,
        batch_size: int = 2,
        blend: str = "gaussian",
        num_classes: int | None = None,
        orientation: str | None = None,
        mirror_axes: Sequence[int] = (),
        uncertainty: bool = False,
        model_outputs: str = "logits",
        keep_largest: Sequence[int] = (),
        channels: int = 1,
        normalisation: str = "window",
    ) -> None:
        super().__init__(name="sliding_window_segmenter")
        if normalisation not in ("window", "whiten"):
            raise ValueError(f"normalisation must be 'window' or 'whiten', got {normalisation!r}")
        if int(channels) < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        self.normalisation = normalisation
        self.channels = int(channels)
        self.keep_largest = sorted(set(int(c) for c in keep_largest))
        if model_outputs not in ("logits", "probabilities"):
            raise ValueError(f"model_outputs must be 'logits' or 'probabilities', got {model_outputs!r}")
        self.model_outputs = model_outputs
        low, high = (float(v) for v in intensity_window)
        if not high > low:
            raise ValueError(f"intensity_window must be (low, high) with high > low, got {intensity_window}")
        self.model = model
        self.window = [int(w) for w in window]
        self.spacing_mm = [float(s) for s in spacing_mm]
        self.intensity_window = (low, high)
        self.overlap = float(overlap)
        self.batch_size = int(batch_size)
        self.blend = blend
        self.num_classes = int(num_classes or model.output_shape[-1])
        self.orientation = check_codes(orientation) if orientation is not None else None
        self.mirror_axes = sorted(set(int(a) for a in mirror_axes))
        mirror_combinations(self.mirror_axes)  # checks the axes
        self.uncertainty = bool(uncertainty)
        self._segment = tf.function(self.__call__, input_signature=self.input_signature())

    kind = "sliding_window_segmenter"

    def get_config(self) -> dict:
        return {"window": list(self.window), "spacing_mm": list(self.spacing_mm),
                "intensity_window": list(self.intensity_window),
                "overlap": self.overlap, "batch_size": self.batch_size, "blend": self.blend,
                "num_classes": self.num_classes, "orientation": self.orientation,
                "mirror_axes": list(self.mirror_axes), "uncertainty": self.uncertainty,
                "model_outputs": self.model_outputs, "keep_largest": list(self.keep_largest),
                "channels": self.channels, "normalisation": self.normalisation}

    def warmup_inputs(self) -> dict[str, np.ndarray]:
        """Air (the window's low end; 0 when whitening) of one window's size, at the training spacing."""
        shape = self.window + ([self.channels] if self.channels > 1 else [])
        air = self.intensity_window[0] if self.normalisation == "window" else 0.0
        inputs = {"image": np.full(shape, air, np.float32),
                  "spacing": np.asarray(self.spacing_mm, np.float64)}
        if self.orientation is not None:
            inputs["direction"] = np.asarray(direction_of(self.orientation), np.float64)
        return inputs

    def input_signature(self) -> list[tf.TensorSpec]:
        """``image`` float32 (z, y, x) in HU (or (z, y, x, channels)), any size; ``spacing`` float64 (3,)
        as (x, y, z) mm; with an orientation, ``direction`` float64 (9,), the image's direction matrix,
        row-major."""
        shape = [None, None, None] + ([self.channels] if self.channels > 1 else [])
        specs = [tf.TensorSpec(shape, tf.float32, name="image"),
                 tf.TensorSpec([3], tf.float64, name="spacing")]
        if self.orientation is not None:
            specs.append(tf.TensorSpec([9], tf.float64, name="direction"))
        return specs

    def preprocess(self, image: tf.Tensor, spacing: tf.Tensor, direction: tf.Tensor | None = None):
        """Raw (z, y, x) HU at ``spacing`` -> (z', y', x', 1) in [-1, 1] at the training spacing (or
        (z, y, x, c) -> (z', y', x', c), each channel whitened).

        Returns:
            ``(volume, spacing, plan)``: the model's input, the spacing of the reoriented grid it was
            resampled from (the input's, permuted) and the orientation plan (None without one).
        """
        low, high = self.intensity_window if self.normalisation == "window" else (0.0, 0.0)
        volume = tf.convert_to_tensor(image, tf.float32)
        if self.channels == 1:
            volume = volume[..., tf.newaxis]
        # (volume - low) is resampled and low added back, so that the outside is air, not 0 HU.
        volume = volume - low
        spacing = tf.cast(spacing, tf.float64)
        plan = None
        if self.orientation is not None:
            plan = plan_orientation(tf.shape(volume), spacing, direction, self.orientation)
            volume = reorient(volume, plan)
            spacing = reoriented_spacing(spacing, plan)
        resampled = resample_volume(volume, spacing, self.spacing_mm, method="linear") + low
        if self.normalisation == "whiten":
            return tf.stack([tf_whitening(resampled[..., c]) for c in range(self.channels)], axis=-1), spacing, plan
        return tf_clip_and_scale(resampled, low, high), spacing, plan

    def __call__(self, image: tf.Tensor, spacing: tf.Tensor, direction: tf.Tensor | None = None
                 ) -> dict[str, tf.Tensor]:
        """Segments one raw volume.

        Args:
            image: float32 (z, y, x), HU; or (z, y, x, channels).
            spacing: float64 (3,), (x, y, z) voxel size of ``image``, mm.
            direction: float64 (9,), the image's direction matrix (row-major); with an orientation only.

        Returns:
            ``labels``: int32 (z, y, x), the class of every input voxel. ``probabilities_shape``:
            int32 (4,), the size of the class-probability volume at the training spacing (what
            bounded the memory). With ``uncertainty``: ``entropy``, float32 (z, y, x), nats.
        """
        volume, spacing, plan = self.preprocess(image, spacing, direction)
        logits = self.model_outputs == "logits"
        folds = fold_models(self.model)
        if folds is not None:  # a fold ensemble: one fold (and one mirroring) at a time, each from its logits
            model = MirroredProbabilities(folds, self.mirror_axes, logits=True)
        elif self.mirror_axes:
            model = MirroredProbabilities(self.model, self.mirror_axes, logits)
        else:
            model = self.model
        probabilities = sliding_window_inference(model, volume, self.window, overlap=self.overlap,
                                                 batch_size=self.batch_size, blend=self.blend, num_classes=self.num_classes,
                                                 apply_softmax=logits and model is self.model)
        labels = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        if self.keep_largest:
            labels = keep_largest_components(labels, self.keep_largest)
        labels = tf.cast(labels, tf.float32)[..., tf.newaxis]
        grid_size = tf.shape(image)[:3] if plan is None else plan.resampled_size
        on_input_grid = resample_volume(labels, self.spacing_mm, spacing, new_size=grid_size, method="nearest")
        if plan is not None:
            on_input_grid = restore_orientation(on_input_grid, plan, "nearest")
        outputs = {"labels": tf.cast(on_input_grid[..., 0], tf.int32), "probabilities_shape": tf.shape(probabilities)}
        if self.uncertainty:
            uncertain = resample_volume(entropy(probabilities)[..., tf.newaxis], self.spacing_mm, spacing,
                                        new_size=grid_size, method="linear")
            if plan is not None:
                uncertain = restore_orientation(uncertain, plan, "linear")
            outputs["entropy"] = uncertain[..., 0]
        return outputs

    def window_count(self, size_zyx: Sequence[int], spacing_xyz: Sequence[float],
                     direction: Sequence[float] | None = None) -> int:
        """How many windows the sliding window runs over an image of this size and spacing (mm).

        The graph's own rules in numpy: the size at the training spacing (``round``, at least 1), padded
        to the window, starts every ``window * (1 - overlap)`` voxels and one flush with the end. With
        an orientation and the image's ``direction``, the axes are first permuted as the graph does (an
        oblique image's resampled grid is a little larger: the count is then a lower bound).
        """
        if self.orientation is not None and direction is not None:
            reorientation = Reorientation.between(direction, self.orientation)
            size_zyx = [size_zyx[2 - a] for a in reorientation.source_axes][::-1]
            spacing_xyz = [spacing_xyz[a] for a in reorientation.source_axes]
        count = 1
        for size, spacing, target, window in zip(size_zyx, reversed(list(spacing_xyz)), self.spacing_mm[::-1],
                                                 self.window):
            resampled = max(int(np.round(size * spacing / target)), 1)
            padded = max(resampled, window)
            step = max(1, int(round(window * (1.0 - self.overlap))))
            starts = len(range(0, padded - window + 1, step))
            count *= starts + (1 if (starts - 1) * step < padded - window else 0)
        return count

    def segment(self, image: np.ndarray, spacing: Sequence[float], direction: Sequence[float] | None = None
                ) -> np.ndarray:
        """Numpy in and out (the compiled graph that is exported): int32 (z, y, x) labels.

        Raises:
            ValueError: A segmenter with an orientation given no direction (it would guess the
                voxel order, the failure this input exists to prevent).
        """
        inputs = {"image": image, "spacing": spacing}
        if self.orientation is not None:
            if direction is None:
                raise ValueError(f"this segmenter was trained in {self.orientation}: give the image's direction")
            inputs["direction"] = direction
        return self.predict(**inputs)["labels"]

    def serving_functions(self) -> dict[str, tf.types.experimental.GenericFunction]:
        """``serving_default(image, spacing[, direction])`` -> ``labels`` (and ``probabilities_shape``)."""
        return {"serving_default": self._segment}

