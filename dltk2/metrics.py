"""Segmentation metrics on label maps, in physical units.

Arrays are (z, y, x) integer label maps; ``spacing`` is the voxel size in (x, y, z) order and mm, as
SimpleITK gives it. A class absent from both prediction and reference has no Dice or distance: it is
reported as ``None`` ("absent") and left out of means, never averaged in as NaN.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage


def dice_per_class(prediction: np.ndarray, reference: np.ndarray, classes: Sequence[int]) -> dict[int, float | None]:
    """Dice 2|P & R| / (|P| + |R|) per class; None where the class is in neither."""
    if prediction.shape != reference.shape:
        raise ValueError(f"prediction {prediction.shape} and reference {reference.shape} differ in shape")
    scores: dict[int, float | None] = {}
    for label in classes:
        predicted, true = prediction == label, reference == label
        total = int(predicted.sum()) + int(true.sum())
        scores[int(label)] = None if total == 0 else 2.0 * int((predicted & true).sum()) / total
    return scores


def mean_of_present(scores: dict[int, float | None]) -> float | None:
    """Mean of the values that are not None; None if all are."""
    values = [value for value in scores.values() if value is not None]
    return float(np.mean(values)) if values else None


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1), border_value=0)


def surface_distances(prediction_mask: np.ndarray, reference_mask: np.ndarray,
                      spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each surface voxel of one mask to the nearest surface voxel of the other.

    Returns:
        ``(prediction_to_reference, reference_to_prediction)``, 1D arrays; empty if a mask is empty.
    """
    sampling = tuple(float(s) for s in spacing)[::-1]  # (x, y, z) -> (z, y, x)
    surface_p, surface_r = _surface(prediction_mask.astype(bool)), _surface(reference_mask.astype(bool))
    if not surface_p.any() or not surface_r.any():
        return np.zeros(0), np.zeros(0)
    to_reference = ndimage.distance_transform_edt(~surface_r, sampling=sampling)
    to_prediction = ndimage.distance_transform_edt(~surface_p, sampling=sampling)
    return to_reference[surface_p], to_prediction[surface_r]


def hausdorff_distance(prediction_mask: np.ndarray, reference_mask: np.ndarray, spacing: Sequence[float],
                       percentile: float = 95.0) -> float | None:
    """Symmetric Hausdorff distance (mm) between two masks' surfaces at ``percentile`` (100: the maximum).

    The percentile is taken over both directed distance sets together (as MedPy's ``hd95``). None if
    both masks are empty; infinity if exactly one is.
    """
    forward, backward = surface_distances(prediction_mask, reference_mask, spacing)
    if forward.size == 0 and backward.size == 0:
        if not prediction_mask.any() and not reference_mask.any():
            return None
        return float("inf")
    return float(np.percentile(np.concatenate([forward, backward]), percentile))


def mean_surface_distance(prediction_mask: np.ndarray, reference_mask: np.ndarray,
                          spacing: Sequence[float]) -> float | None:
    """Average symmetric surface distance (mm); None if both masks are empty, inf if one is."""
    forward, backward = surface_distances(prediction_mask, reference_mask, spacing)
    if forward.size == 0 and backward.size == 0:
        return None if not prediction_mask.any() and not reference_mask.any() else float("inf")
    return float(np.concatenate([forward, backward]).mean())


def hausdorff_95_per_class(prediction: np.ndarray, reference: np.ndarray, classes: Sequence[int],
                           spacing: Sequence[float]) -> dict[int, float | None]:
    """HD95 (mm) per class; None where the class is in neither."""
    return {int(c): hausdorff_distance(prediction == c, reference == c, spacing, 95.0) for c in classes}


# Keras metrics ---------------------------------------------------------------------------------------

import keras  # noqa: E402  (the numpy metrics above do not need it)


@keras.saving.register_keras_serializable(package="dltk2")
class PositiveClassAUC(keras.metrics.AUC):
    """ROC AUC of a two-class model's logits (batch, 2) against integer labels (batch,).

    Keras' ``AUC`` wants one probability per example; this takes softmax(logits)[:, 1], the
    probability of class 1, so a ``SparseCategoricalCrossentropy(from_logits=True)`` model can
    monitor ``val_auc``.
    """

    def __init__(self, name: str = "auc", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        probability = keras.ops.softmax(keras.ops.cast(y_pred, "float32"), axis=-1)[:, 1]
        labels = keras.ops.reshape(keras.ops.cast(y_true, "float32"), (-1,))
        return super().update_state(labels, probability, sample_weight=sample_weight)
