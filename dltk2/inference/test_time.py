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
    """A segmentation model as sliding-window inference sees it: softmax averaged over mirrorings.

    Called like a Keras model on (batch, z, y, x, c) windows, it returns (batch, z, y, x, classes)
    probabilities (so the sliding window must not apply softmax again); ``output_shape`` is the
    model's.
    """

    def __init__(self, model, axes: Sequence[int], logits: bool = True) -> None:
        self.model = model
        self.axes = [int(a) for a in axes]
        self.activation = tf.nn.softmax if logits else None  # a fold ensemble gives probabilities already
        self.output_shape = model.output_shape

    def __call__(self, windows: tf.Tensor, training: bool = False) -> tf.Tensor:
        del training
        return tf.reduce_mean(mirrored_outputs(self.model, windows, self.axes, self.activation), axis=0)


def entropy(probabilities: tf.Tensor) -> tf.Tensor:
    """Per-voxel entropy of class probabilities (..., classes), in nats: 0 certain, log(classes) at most."""
    p = tf.clip_by_value(tf.convert_to_tensor(probabilities, tf.float32), 1e-12, 1.0)
    return -tf.reduce_sum(p * tf.math.log(p), axis=-1)
