"""Keras callbacks for medical-image training."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from dltk2.inference import sliding_window_inference
from dltk2.io.image import read_array
from dltk2.metrics import dice_per_class, mean_of_present


def label_overlay(image_slice: np.ndarray, label_slice: np.ndarray, num_classes: int) -> np.ndarray:
    """An RGB picture (height, width, 3) uint8: the image in grey, labels blended in colour."""
    grey = image_slice.astype(np.float32)
    grey = (grey - grey.min()) / max(float(np.ptp(grey)), 1e-6)
    palette = np.random.default_rng(7).uniform(0.2, 1.0, size=(num_classes, 3))
    palette[0] = 0.0
    colour = palette[np.clip(label_slice, 0, num_classes - 1)]
    blend = np.where(label_slice[..., None] > 0, 0.5 * grey[..., None] + 0.5 * colour, grey[..., None])
    return (blend * 255).astype(np.uint8)


class SegmentationValidation(keras.callbacks.Callback):
    """After every epoch, segments whole validation volumes and logs Dice per class.

    Each volume goes through :func:`dltk2.inference.sliding_window_inference`; Dice per class
    (absent classes left out) goes to TensorBoard under ``dice/<class name>``, with ``dice/mean`` and
    an axial overlay of the first case's middle slice, and ``val_mean_dice`` joins the epoch's logs
    (so a checkpoint callback after this one can keep the best model by it).

    Args:
        cases: ``(image_path, label_path)`` of preprocessed validation volumes.
        window: Sliding-window size (z, y, x).
        class_names: Name of each class index (index 0 the background, not scored).
        log_dir: TensorBoard folder.
        batch_size: Windows per model call.
    """

    def __init__(self, cases: Sequence[tuple[str, str]], window: Sequence[int], class_names: Mapping[int, str],
                 log_dir: str | Path, batch_size: int = 2, overlap: float = 0.25) -> None:
        super().__init__()
        self.cases = list(cases)
        self.window = list(window)
        self.class_names = dict(class_names)
        self.batch_size = batch_size
        self.overlap = overlap
        self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "validation_dice"))
        self._volumes = None

    def _load(self):
        if self._volumes is None:
            self._volumes = [(read_array(image)[0][..., None], read_array(label, dtype=np.int32)[0])
                             for image, label in self.cases]
        return self._volumes

    def evaluate(self) -> tuple[dict[int, float | None], np.ndarray, np.ndarray]:
        """Mean Dice per class over the cases (classes absent from every case are None)."""
        classes = [c for c in sorted(self.class_names) if c != 0]
        per_case = []
        first = None
        for image, label in self._load():
            probabilities = sliding_window_inference(self.model, image, self.window, overlap=self.overlap,
                                                     batch_size=self.batch_size, num_classes=len(self.class_names))
            prediction = np.argmax(probabilities.numpy(), axis=-1).astype(np.int32)
            per_case.append(dice_per_class(prediction, label, classes))
            if first is None:
                first = (image[..., 0], prediction)
        means = {}
        for c in classes:
            values = [scores[c] for scores in per_case if scores[c] is not None]
            means[c] = float(np.mean(values)) if values else None
        return means, first[0], first[1]

    def on_epoch_end(self, epoch, logs=None):
        means, image, prediction = self.evaluate()
        mean = mean_of_present(means)
        step = int(self.model.optimizer.iterations.numpy())
        with self.writer.as_default(step=step):
            for c, value in means.items():
                if value is not None:
                    tf.summary.scalar(f"dice/{self.class_names[c]}", value)
            if mean is not None:
                tf.summary.scalar("dice/mean", mean)
            middle = image.shape[0] // 2
            overlay = label_overlay(image[middle], prediction[middle], len(self.class_names))
            tf.summary.image("prediction_overlay", overlay[None])
        if logs is not None:
            logs["val_mean_dice"] = mean if mean is not None else 0.0
