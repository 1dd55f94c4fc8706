"""Postprocessing of label maps: keep each chosen class's largest connected component, in the graph and in numpy.

nnU-Net keeps an organ's largest component only where cross-validation shows it raises Dice, and
MONAI offers the operation as ``KeepLargestConnectedComponent``. :func:`keep_largest_components`
does it in TensorFlow ops (so it lives in the exported graph): every voxel of a chosen class takes
the largest index in its component, spread voxel to voxel along the 6 face neighbours until nothing
changes, and the component holding most voxels stays. :func:`keep_largest_components_numpy` is the
same with ``scipy.ndimage.label``, and :func:`choose_postprocessing` decides, per class, from
out-of-fold predictions and their references.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from dltk2.metrics import dice_per_class


def _neighbour_max(ids: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Each voxel's largest id among itself and its 6 face neighbours of the same label (zero-padded)."""
    best = ids
    for axis in range(3):
        for shift in (1, -1):
            moved_ids = tf.roll(ids, shift, axis)
            moved_labels = tf.roll(labels, shift, axis)
            # tf.roll wraps around: the voxel that came from the other side is no neighbour.
            size = tf.shape(ids)[axis]
            position = tf.range(size)
            valid = position >= 1 if shift == 1 else position < size - 1
            shape = [1, 1, 1]
            shape[axis] = -1
            valid = tf.reshape(valid, shape)
            candidate = tf.where(valid & tf.equal(moved_labels, labels), moved_ids, tf.zeros_like(ids))
            best = tf.maximum(best, candidate)
    return best


def keep_largest_components(labels: tf.Tensor, classes: Sequence[int]) -> tf.Tensor:
    """``labels`` (z, y, x) int32 with, for each class in ``classes``, only its largest 6-connected component.

    Voxels of smaller components become background (0). Ties keep the component whose voxels come
    last in C order (as :func:`keep_largest_components_numpy`).
    """
    labels = tf.convert_to_tensor(labels, tf.int32)
    if not classes:
        return labels
    chosen = tf.reduce_any(tf.equal(labels[..., tf.newaxis], tf.constant(list(classes), tf.int32)), axis=-1)
    size = tf.size(labels)
    ids = tf.where(chosen, tf.reshape(tf.range(1, size + 1), tf.shape(labels)), 0)
    region = tf.where(chosen, labels, -1)

    def step(current, _):
        return tf.where(chosen, _neighbour_max(current, region), 0), current

    ids, _ = tf.while_loop(lambda current, previous: tf.reduce_any(tf.not_equal(current, previous)),
                           step, (step(ids, ids)[0], ids), parallel_iterations=1)
    flat_ids, flat_labels = tf.reshape(ids, [-1]), tf.reshape(labels, [-1])
    counts = tf.math.unsorted_segment_sum(tf.ones_like(flat_ids), flat_ids, size + 1)
    # For each class: the id of its largest component (the largest id among ties).
    keep = tf.zeros_like(flat_labels, tf.bool)
    for value in classes:
        of_class = tf.equal(flat_labels, value) & (flat_ids > 0)
        component_size = tf.where(of_class, tf.gather(counts, flat_ids), 0)
        largest = tf.reduce_max(component_size)
        winner = tf.reduce_max(tf.where(of_class & tf.equal(component_size, largest), flat_ids, 0))
        keep = keep | (of_class & tf.equal(flat_ids, winner))
    kept = tf.where(tf.reshape(chosen, [-1]) & ~keep, 0, flat_labels)
    return tf.reshape(kept, tf.shape(labels))


def keep_largest_components_numpy(labels: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """:func:`keep_largest_components` with ``scipy.ndimage.label`` (6-connectivity): the reference."""
    from scipy import ndimage

    result = np.array(labels, copy=True)
    for value in classes:
        components, count = ndimage.label(labels == value)
        if count <= 1:
            continue
        sizes = np.bincount(components.ravel())[1:]
        # Ties: the component whose voxels come last in C order, as the graph's largest index.
        last = ndimage.maximum(np.arange(components.size).reshape(components.shape), components,
                               index=np.arange(1, count + 1))
        winner = 1 + max(range(count), key=lambda i: (sizes[i], last[i]))
        result[(components > 0) & (components != winner)] = 0
    return result


def choose_postprocessing(predictions: Sequence[np.ndarray], references: Sequence[np.ndarray],
                          classes: Sequence[int], min_gain: float = 0.0) -> dict[int, dict[str, float]]:
    """Per class, whether keeping its largest component raises the mean Dice over the cases.

    Args:
        predictions: Out-of-fold label maps (each case predicted by the fold that never saw it).
        references: The reference label maps, on the same grids.
        classes: The classes to decide for.
        min_gain: Keep the step only where the mean Dice rises by more than this.

    Returns:
        class -> ``{"dice_before", "dice_after", "keep_largest"}`` (1.0 where it helps, else 0.0).
    """
    before = {c: [] for c in classes}
    after = {c: [] for c in classes}
    for predicted, reference in zip(predictions, references):
        processed = keep_largest_components_numpy(predicted, classes)
        for c, value in dice_per_class(predicted, reference, classes).items():
            if value is not None:
                before[c].append(value)
        for c, value in dice_per_class(processed, reference, classes).items():
            if value is not None:
                after[c].append(value)
    decision = {}
    for c in classes:
        mean_before = float(np.mean(before[c])) if before[c] else float("nan")
        mean_after = float(np.mean(after[c])) if after[c] else float("nan")
        helps = bool(before[c]) and mean_after > mean_before + min_gain
        decision[int(c)] = {"dice_before": mean_before, "dice_after": mean_after, "keep_largest": float(helps)}
    return decision


def chosen_classes(decision: Mapping[int, Mapping[str, float]]) -> list[int]:
    """The classes :func:`choose_postprocessing` keeps the largest component of."""
    return sorted(int(c) for c, row in decision.items() if row["keep_largest"])
