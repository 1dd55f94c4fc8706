"""Test-time mirroring: a model's softmax averaged over flips of its input, in one batched call.

nnU-Net predicts each window also mirrored along every spatial axis and averages the probabilities
(8 passes for 3 axes); MONAI offers the same through ``TestTimeAugmentation``. Here the flipped copies
of a batch go through the network as one larger batch (a network call's fixed cost is paid once), each
output is flipped back, and the probabilities are averaged; the spread across mirrors is kept for
uncertainty. Off by default for speed, as in nnU-Net.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import tensorflow as tf


def mirror_combinations(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every subset of ``axes`` (the identity first): the flips one input is predicted under."""
    axes = sorted({int(a) for a in axes})
    if any(a not in (0, 1, 2) for a in axes):
        raise ValueError(f"mirror axes are spatial axes 0 (z), 1 (y), 2 (x); got {axes}")
    return [combo for size in range(len(axes) + 1) for combo in itertools.combinations(axes, size)]


def mirrored_outputs(model, inputs: tf.Tensor, axes: Sequence[int], activation=tf.nn.softmax) -> tf.Tensor:
    """The model's (activated) outputs for ``inputs`` under every mirroring, each flipped back.

    Args:
        model: Called as ``model(batch, training=False)`` on (batch, z, y, x, c).
        inputs: (batch, z, y, x, c) float32.
        axes: Spatial axes (0 z, 1 y, 2 x) to mirror along; () is the plain prediction.
        activation: Applied to each output before averaging (softmax for logits; None to keep them).

    Returns:
        (mirrorings, batch, ...) float32: for a segmentation model the per-voxel outputs on the
        unflipped grid; for a classifier or regressor, its outputs as they are.
    """
    combos = mirror_combinations(axes)
    inputs = tf.convert_to_tensor(inputs, tf.float32)
    stacked = tf.concat([tf.reverse(inputs, [a + 1 for a in combo]) if combo else inputs for combo in combos], 0)
    outputs = tf.cast(model(stacked, training=False), tf.float32)
    if activation is not None:
        outputs = activation(outputs)
    chunks = tf.split(outputs, len(combos), axis=0) if len(combos) > 1 else [outputs]
    spatial = outputs.shape.rank == 5
    restored = [tf.reverse(chunk, [a + 1 for a in combo]) if combo and spatial else chunk
                for chunk, combo in zip(chunks, combos)]
    return tf.stack(restored, axis=0)


class MirroredProbabilities:
    """Segmentation models as sliding-window inference sees them: softmax averaged over folds and mirrorings.

    Called like a Keras model on (batch, z, y, x, c) windows, it returns (batch, z, y, x, classes)
    probabilities (so the sliding window must not apply softmax again). Each (mirroring, fold) pair
    runs after the previous one (``tf.while_loop`` one iteration at a time, the flip and the fold
    chosen by ``tf.switch_case``, so each model is traced once), and the folds' sum under one mirroring
    is flipped back once; memory is one window batch's activations and two sums, whatever the number
    of folds and mirrors. Measured on the benchmark's 150x200x200 volume (2 cores, CPU
    U-Net, 64^3 windows, 4 per batch): the 5 folds' ensemble with the 8 flips concatenated on the batch
    axis and the folds left for TensorFlow to schedule took 527 s and 7.0 GB above the baseline; one
    at a time, see ``benchmarks/README.md``.

    Args:
        models: One model, or the folds' models (:func:`dltk2.inference.ensemble.fold_models`).
        axes: Spatial axes (0 z, 1 y, 2 x) to mirror along; () only averages the folds.
        logits: The models give logits (softmax is applied to each), else probabilities.
    """

    def __init__(self, models, axes: Sequence[int], logits: bool = True) -> None:
        self.models = list(models) if isinstance(models, (list, tuple)) else [models]
        self.axes = [int(a) for a in axes]
        self.logits = logits
        self.output_shape = self.models[0].output_shape

    def _predict(self, model, windows: tf.Tensor) -> tf.Tensor:
        outputs = tf.cast(model(windows, training=False), tf.float32)
        return tf.nn.softmax(outputs) if self.logits else outputs

    def __call__(self, windows: tf.Tensor, training: bool = False) -> tf.Tensor:
        del training
        windows = tf.convert_to_tensor(windows, tf.float32)
        combos = mirror_combinations(self.axes)
        if len(self.models) * len(combos) == 1:
            return self._predict(self.models[0], windows)
        zeros = tf.zeros(tf.concat([tf.shape(windows)[:-1], [self.output_shape[-1]]], 0))

        def flip(tensor, index):
            return tf.switch_case(index, [lambda combo=combo: tf.reverse(tensor, [a + 1 for a in combo]) if combo
                                          else tf.identity(tensor) for combo in combos])

        def over_folds(flipped):  # the folds' sum on the flipped grid: flipped back once, not once per fold
            if len(self.models) == 1:
                return self._predict(self.models[0], flipped)

            def fold(k, total):
                return k + 1, total + tf.switch_case(k, [lambda model=model: self._predict(model, flipped)
                                                         for model in self.models])

            return tf.while_loop(lambda k, _: k < len(self.models), fold, [tf.constant(0), zeros],
                                 parallel_iterations=1)[1]

        def mirroring(i, total):
            return i + 1, total + flip(over_folds(flip(windows, i)), i)

        _, total = tf.while_loop(lambda i, _: i < len(combos), mirroring, [tf.constant(0), zeros],
                                 parallel_iterations=1)
        return total / (len(self.models) * len(combos))


def entropy(probabilities: tf.Tensor) -> tf.Tensor:
    """Per-voxel entropy of class probabilities (..., classes), in nats: 0 certain, log(classes) at most."""
    p = tf.clip_by_value(tf.convert_to_tensor(probabilities, tf.float32), 1e-12, 1.0)
    return -tf.reduce_sum(p * tf.math.log(p), axis=-1)
