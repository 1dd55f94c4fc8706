"""Segmentation of a raw CT volume on its own grid, in one graph: resample, window, sliding window, back."""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from dltk2.inference.predictor import Predictor
from dltk2.inference.resampling import resample_volume
from dltk2.inference.sliding_window import sliding_window_inference
from dltk2.transforms import tf_clip_and_scale


class SlidingWindowSegmenter(Predictor):
    """Segments a raw CT volume on its own grid: resample, clip and scale, sliding window, and back.

    The whole of deploy's work in one graph, so ``deploy.py`` and the exported ``serving_default``
    are the same function: the raw volume (HU) is resampled linearly to the training spacing (points
    outside the volume are air), clipped to the intensity window and scaled to [-1, 1], segmented by
    :func:`sliding_window_inference`, and the label map goes back onto the input grid by nearest
    neighbour. Origin and direction need not enter the graph: both grids share them (ITK's resampling
    convention, as :func:`dltk2.preprocessing.resample_to_spacing`), so the caller copies them from
    the input image.

    Args:
        model: A fully convolutional Keras model, (batch, z, y, x, 1) -> (batch, z, y, x, classes).
        window: (z, y, x) sliding-window size, voxels at ``spacing_mm``.
        spacing_mm: (x, y, z) voxel size the model was trained at, mm.
        intensity_window: (low, high) clipping window, HU; mapped to [-1, 1].
        overlap: Sliding-window overlap, [0, 1).
        batch_size: Windows per model call.
        blend: ``"gaussian"`` or ``"constant"``.
        num_classes: Model output channels; read from the model if None.
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
    ) -> None:
        super().__init__(name="sliding_window_segmenter")
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
        self._segment = tf.function(self.__call__, input_signature=self.input_signature())

    kind = "sliding_window_segmenter"

    def get_config(self) -> dict:
        return {"window": list(self.window), "spacing_mm": list(self.spacing_mm),
                "intensity_window": list(self.intensity_window),
                "overlap": self.overlap, "batch_size": self.batch_size, "blend": self.blend,
                "num_classes": self.num_classes}

    def warmup_inputs(self) -> dict[str, np.ndarray]:
        """Air (the window's low end) of one window's size, at the training spacing."""
        return {"image": np.full(self.window, self.intensity_window[0], np.float32),
                "spacing": np.asarray(self.spacing_mm, np.float64)}

    @staticmethod
    def input_signature() -> list[tf.TensorSpec]:
        """``image`` float32 (z, y, x) in HU, any size; ``spacing`` float64 (3,) as (x, y, z) mm."""
        return [tf.TensorSpec([None, None, None], tf.float32, name="image"),
                tf.TensorSpec([3], tf.float64, name="spacing")]

    def preprocess(self, image: tf.Tensor, spacing: tf.Tensor) -> tf.Tensor:
        """Raw (z, y, x) HU at ``spacing`` -> (z', y', x', 1) in [-1, 1] at the training spacing."""
        low, high = self.intensity_window
        volume = tf.convert_to_tensor(image, tf.float32)[..., tf.newaxis]
        # Resampling (volume - low) and adding low back makes the outside air, not 0 HU.
        resampled = resample_volume(volume - low, spacing, self.spacing_mm, method="linear") + low
        return tf_clip_and_scale(resampled, low, high)

    def __call__(self, image: tf.Tensor, spacing: tf.Tensor) -> dict[str, tf.Tensor]:
        """Segments one raw volume.

        Args:
            image: float32 (z, y, x), HU.
            spacing: float64 (3,), (x, y, z) voxel size of ``image``, mm.

        Returns:
            ``labels``: int32 (z, y, x), the class of every input voxel. ``probabilities_shape``:
            int32 (4,), the size of the class-probability volume at the training spacing (what
            bounded the memory).
        """
        volume = self.preprocess(image, spacing)
        probabilities = sliding_window_inference(self.model, volume, self.window, overlap=self.overlap,
                                                 batch_size=self.batch_size, blend=self.blend,
                                                 num_classes=self.num_classes)
        labels = tf.cast(tf.argmax(probabilities, axis=-1, output_type=tf.int32), tf.float32)[..., tf.newaxis]
        on_input_grid = resample_volume(labels, self.spacing_mm, spacing, new_size=tf.shape(image),
                                        method="nearest")
        return {"labels": tf.cast(on_input_grid[..., 0], tf.int32),
                "probabilities_shape": tf.shape(probabilities)}

    def window_count(self, size_zyx: Sequence[int], spacing_xyz: Sequence[float]) -> int:
        """How many windows the sliding window runs over an image of this size and spacing (mm).

        The graph's own rules in numpy: the size at the training spacing (``round``, at least 1), padded
        to the window, starts every ``window * (1 - overlap)`` voxels and one flush with the end.
        """
        count = 1
        for size, spacing, target, window in zip(size_zyx, reversed(list(spacing_xyz)), self.spacing_mm[::-1],
                                                 self.window):
            resampled = max(int(np.round(size * spacing / target)), 1)
            padded = max(resampled, window)
            step = max(1, int(round(window * (1.0 - self.overlap))))
            starts = len(range(0, padded - window + 1, step))
            count *= starts + (1 if (starts - 1) * step < padded - window else 0)
        return count

    def segment(self, image: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        """Numpy in and out (the compiled graph that is exported): int32 (z, y, x) labels."""
        outputs = self._segment(tf.constant(np.asarray(image, np.float32)),
                                tf.constant(np.asarray(spacing, np.float64)))
        return outputs["labels"].numpy()

    def serving_functions(self) -> dict[str, tf.types.experimental.GenericFunction]:
        """``serving_default(image, spacing)`` -> ``labels`` (and ``probabilities_shape``)."""
        return {"serving_default": self._segment}

