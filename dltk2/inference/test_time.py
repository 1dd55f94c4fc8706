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

from dltk2.inference.sliding_window import _add_rows, _zeros_buffer


def mirror_combinations(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every subset of ``axes`` (the identity first): the flips one input is predicted under."""
    axes = sorted({int(a) for a in axes})
    if any(a not in (0, 1, 2) for a in axes):
        raise ValueError(f"mirror axes are spatial axes 0 (z), 1 (y), 2 (x); got {axes}")
    return [combo for size in range(len(axes) + 1) for combo in itertools.combinations(axes, size)]


def gray_order(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """The subsets of :func:`mirror_combinations` in Gray-code order: each one axis apart from the one before.

    The identity comes first; for axes (0, 1, 2): (), (0,), (0, 1), (1,), (1, 2), (0, 1, 2), (0, 2), (2,).
    """
    axes = sorted({int(a) for a in axes})
    mirror_combinations(axes)  # checks the axes
    return [tuple(a for bit, a in enumerate(axes) if (n ^ (n >> 1)) >> bit & 1) for n in range(2 ** len(axes))]


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
    runs after the previous one (one ``tf.while_loop`` iteration at a time, the flip and the fold
    chosen by ``tf.switch_case``, so each model is traced once), and its softmax is added in place
    (``InplaceAdd``) into the one sum, which stays on the grid of the mirroring being predicted: the
    mirrorings come in Gray-code order (:func:`gray_order`), the sum is flipped along one axis when
    the next one starts and back to the input's grid at the end, so no fold's output is flipped.
    Memory is one window batch's activations and one sum, whatever the number of folds and mirrors.
    Measured on the benchmark's 150x200x200 volume (2 cores, CPU U-Net, 64^3 windows, 4 per batch,
    5 folds x 8 mirrorings, first call; peak resident memory above the baseline; ``benchmarks/README.md``):

    ============================================================  ======  =======
    how the 40 predictions of a window batch are summed            s       MB
    ============================================================  ======  =======
    8 flips in one call, folds left to TensorFlow's scheduler      527     7000
    one at a time, ``+`` sums from zeros, each output flipped      599     1258
    the folds' sum per mirroring (flipped once) and the total,     537     1136
    both in place
    one sum in place, each output flipped back                     581     1077
    one sum in place on the mirroring's grid (this)                542     1046
    MONAI, nnU-Net's mirroring loop over 5 twins                   1939    1087
    ============================================================  ======  =======

    A second sum is held through every network call (59 MB for 4 windows of 64^3 x 14 classes); a
    flip of one costs 6-13 ms, an in-place add 12 ms, a softmax 18 ms.

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
        if len(self.models) == 1 and not self.axes:
            return self._predict(self.models[0], windows)
        shape = tf.concat([tf.shape(windows)[:-1], [self.output_shape[-1]]], 0)
        rows = tf.range(tf.shape(windows)[0])
        folds = len(self.models)
        # The sum stays on the grid of the mirroring being predicted: moved to the next one's (one axis
        # apart) once per mirroring, back to the input's at the end; no fold's output is flipped.
        order = gray_order(self.axes)
        moves = [tuple(sorted(set(before) ^ set(after))) for before, after in zip(order[:1] + order[:-1], order)]

        def flip(tensor, combos, index):
            return tf.switch_case(index, [lambda combo=combo: tf.reverse(tensor, [a + 1 for a in combo]) if combo
                                          else tf.identity(tensor) for combo in combos])

        def step(j, total):  # pair j: mirroring j // folds, fold j % folds
            mirroring, fold = j // folds, j % folds
            total = tf.cond(tf.logical_and(fold == 0, mirroring > 0), lambda: flip(total, moves, mirroring),
                            lambda: total)
            flipped = flip(windows, order, mirroring)
            prediction = tf.switch_case(fold, [lambda model=model: self._predict(model, flipped)
                                               for model in self.models])
            return j + 1, _add_rows(total, rows, prediction)

        _, total = tf.while_loop(lambda j, _: j < folds * len(order), step, [tf.constant(0), _zeros_buffer(shape)],
                                 parallel_iterations=1)
        if order[-1]:
            total = tf.reverse(total, [a + 1 for a in order[-1]])
        return total / (folds * len(order))


def entropy(probabilities: tf.Tensor) -> tf.Tensor:
    """Per-voxel entropy of class probabilities (..., classes), in nats: 0 certain, log(classes) at most."""
    p = tf.clip_by_value(tf.convert_to_tensor(probabilities, tf.float32), 1e-12, 1.0)
    return -tf.reduce_sum(p * tf.math.log(p), axis=-1)
