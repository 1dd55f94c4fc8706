"""Keras callbacks for medical-image training."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from dltk2.inference import sliding_window_inference
from dltk2.io.image import read_array
from dltk2.metrics import dice_per_class, mean_of_present
from dltk2.plots import blend_labels, label_colours


def label_overlay(image_slice: np.ndarray, label_slice: np.ndarray, num_classes: int) -> np.ndarray:
    """An RGB picture (height, width, 3) uint8: the image in grey, labels blended in their report colours."""
    return (blend_labels(image_slice, label_slice, label_colours(num_classes)) * 255).astype(np.uint8)


def validation_panel(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, num_classes: int,
                     min_height: int = 256) -> np.ndarray:
    """(h, 3 w, 3) uint8: the axial slice through the labelled voxels as image, reference, prediction.

    Enlarged by whole pixels (nearest neighbour) to at least ``min_height`` rows: a 92x92 slice at
    TensorBoard's size was too small to tell the organs apart.
    """
    labelled = np.argwhere((truth > 0) | (prediction > 0))
    z = int(labelled[:, 0].mean().round()) if len(labelled) else image.shape[0] // 2
    grey = label_overlay(image[z], np.zeros_like(truth[z]), num_classes)
    panel = np.concatenate([grey, label_overlay(image[z], truth[z], num_classes),
                            label_overlay(image[z], prediction[z], num_classes)], axis=1)
    scale = max(1, -(-min_height // panel.shape[0]))
    return np.repeat(np.repeat(panel, scale, axis=0), scale, axis=1)


class SegmentationValidation(keras.callbacks.Callback):
    """After every epoch, segments whole validation volumes and logs Dice per class.

    Each volume goes through :func:`dltk2.inference.sliding_window_inference`; Dice per class
    (absent classes left out) goes to TensorBoard under ``dice/<class name>`` at the optimizer step,
    with the first case's axial slice through its organs as image, reference and prediction side by
    side (:func:`validation_panel`), and ``val_mean_dice`` joins the epoch's logs
    (so a checkpoint callback after this one can keep the best model by it).

    Args:
        cases: ``(image_path, label_path)`` of preprocessed validation volumes (or what ``read_case`` takes).
        window: Sliding-window size (z, y, x).
        class_names: Name of each class index (index 0 the background, not scored).
        log_dir: TensorBoard folder.
        batch_size: Windows per model call.
        read_case: ``(image, label) = read_case(*case)``: the model's input, (z, y, x, channels) float32,
            and the int labels (z, y, x); default: one preprocessed image file and its label file.
    """

    def __init__(self, cases: Sequence[tuple], window: Sequence[int], class_names: Mapping[int, str],
                 log_dir: str | Path, batch_size: int = 2, overlap: float = 0.25,
                 read_case: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        super().__init__()
        self.read_case = read_case or (lambda image, label: (read_array(image)[0][..., None],
                                                              read_array(label, dtype=np.int32)[0]))
        self.cases = list(cases)
        self.window = list(window)
        self.class_names = dict(class_names)
        self.batch_size = batch_size
        self.overlap = overlap
        self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "validation_dice"))
        self._volumes = None

    def _load(self):
        if self._volumes is None:
            self._volumes = [self.read_case(*case) for case in self.cases]
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
                first = (image[..., 0], label, prediction)
        means = {}
        for c in classes:
            values = [scores[c] for scores in per_case if scores[c] is not None]
            means[c] = float(np.mean(values)) if values else None
        return means, first

    def on_epoch_end(self, epoch, logs=None):
        means, (image, truth, prediction) = self.evaluate()
        mean = mean_of_present(means)
        step = int(self.model.optimizer.iterations.numpy())
        with self.writer.as_default(step=step):
            for c, value in means.items():
                if value is not None:
                    tf.summary.scalar(f"dice/{self.class_names[c]}", value)
            # The mean goes once, as the epoch's val_mean_dice (Keras' TensorBoard, same step axis).
            panel = validation_panel(image, truth, prediction, len(self.class_names))
            tf.summary.image("validation/image_reference_prediction", panel[None])
        if logs is not None:
            logs["val_mean_dice"] = mean if mean is not None else 0.0
