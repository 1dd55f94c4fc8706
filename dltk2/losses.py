"""Segmentation losses, reduced per example.

Every loss returns one value per example (shape (batch,)); Keras then averages over the global batch.
A batch-wide Dice would instead be computed once per replica under ``MirroredStrategy`` and summed,
doubling with two replicas; per-example values give the same loss on one device or many.

Shapes: ``y_true`` (batch, z, y, x) integer labels (or with a trailing axis of 1); ``y_pred``
(batch, z, y, x, classes) logits (``from_logits=True``, the default) or probabilities.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _labels_and_probabilities(y_true, y_pred, from_logits: bool):
    y_pred = tf.cast(y_pred, tf.float32)
    labels = tf.cast(y_true, tf.int32)
    if labels.shape.rank == y_pred.shape.rank:
        labels = tf.squeeze(labels, axis=-1)
    probabilities = tf.nn.softmax(y_pred, axis=-1) if from_logits else y_pred
    return labels, probabilities


def _spatial_axes(tensor) -> list[int]:
    return list(range(1, tensor.shape.rank - 1))


def per_example_soft_dice(y_true, y_pred, from_logits: bool = True, include_background: bool = False,
                          smooth: float = 1e-5) -> tf.Tensor:
    """Soft Dice loss of each example: 1 - the mean, over the classes its labels contain, of 2|P.G| / (|P| + |G|).

    Only classes present in an example's labels are averaged. A class absent from a patch would score
    ~0 for any probability mass at all (2 * 0 / (|P| + 0)), and with class-balanced patches most of the
    13 organs are absent from most patches: averaging them in pushes small organs towards never being
    predicted. False positives of absent classes are still penalised by the cross-entropy of
    ``dice_ce`` and by the Dice of the present classes (whose |P| they shrink). An example with none
    of the scored classes averages over all of them (predicting nothing is then right and scores 0).

    Returns:
        (batch,) float32.
    """
    labels, probabilities = _labels_and_probabilities(y_true, y_pred, from_logits)
    num_classes = probabilities.shape[-1]
    one_hot = tf.one_hot(labels, num_classes, dtype=tf.float32)
    if not include_background:
        one_hot, probabilities = one_hot[..., 1:], probabilities[..., 1:]
    axes = _spatial_axes(probabilities)
    intersection = tf.reduce_sum(one_hot * probabilities, axis=axes)
    reference = tf.reduce_sum(one_hot, axis=axes)
    total = reference + tf.reduce_sum(probabilities, axis=axes)
    dice = (2.0 * intersection + smooth) / (total + smooth)  # (batch, classes)
    present = tf.cast(reference > 0, tf.float32)
    weights = tf.where(tf.reduce_sum(present, -1, keepdims=True) > 0, present, tf.ones_like(present))
    return 1.0 - tf.reduce_sum(dice * weights, axis=-1) / tf.reduce_sum(weights, axis=-1)


def per_example_balanced_crossentropy(y_true, y_pred, from_logits: bool = True,
                                      epsilon: float = 1e-8) -> tf.Tensor:
    """DLTK's sparse balanced cross-entropy, per example.

    Within an example each class present gets the same total weight (voxels of a class weighted by the
    inverse of its voxel count), so a small organ counts as much as the background.

    Returns:
        (batch,) float32.
    """
    labels, probabilities = _labels_and_probabilities(y_true, y_pred, from_logits)
    num_classes = probabilities.shape[-1]
    if from_logits:
        voxel_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.cast(y_pred, tf.float32))
    else:
        picked = tf.gather(probabilities, labels, batch_dims=labels.shape.rank)
        voxel_loss = -tf.math.log(tf.maximum(picked, epsilon))
    one_hot = tf.one_hot(labels, num_classes, dtype=tf.float32)
    axes = _spatial_axes(one_hot)
    counts = tf.reduce_sum(one_hot, axis=axes)  # (batch, classes)
    present = tf.cast(counts > 0, tf.float32)
    class_weights = present / tf.maximum(counts, 1.0) / tf.maximum(tf.reduce_sum(present, -1, keepdims=True), 1.0)
    voxel_weights = tf.gather(class_weights, labels, batch_dims=1)  # each voxel: its class's weight
    return tf.reduce_sum(voxel_loss * voxel_weights, axis=axes)


def per_example_crossentropy(y_true, y_pred, from_logits: bool = True) -> tf.Tensor:
    """Mean voxel-wise cross-entropy of each example. Returns (batch,) float32."""
    labels, probabilities = _labels_and_probabilities(y_true, y_pred, from_logits)
    if from_logits:
        voxel_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.cast(y_pred, tf.float32))
    else:
        picked = tf.gather(probabilities, labels, batch_dims=labels.shape.rank)
        voxel_loss = -tf.math.log(tf.maximum(picked, 1e-8))
    return tf.reduce_mean(voxel_loss, axis=list(range(1, voxel_loss.shape.rank)))


@keras.saving.register_keras_serializable(package="dltk2")
class SegmentationLoss(keras.losses.Loss):
    """A per-example segmentation loss for ``model.compile``.

    Args:
        kind: ``"ce"`` (cross-entropy), ``"balce"`` (DLTK's balanced cross-entropy), ``"dice"`` (soft
            Dice without background), ``"dice_ce"`` (Dice + cross-entropy) or ``"dice_balce"`` (Dice +
            balanced cross-entropy: small organs, ~1 % of a patch, get the gradient of a large one).
        from_logits: Whether ``y_pred`` are logits.
    """

    KINDS = ("ce", "balce", "dice", "dice_ce", "dice_balce")

    def __init__(self, kind: str = "dice_ce", from_logits: bool = True, name: str | None = None, **kwargs):
        if kind not in self.KINDS:
            raise ValueError(f"unknown segmentation loss {kind!r}; choose one of {self.KINDS}")
        super().__init__(name=name or f"{kind}_loss", **kwargs)
        self.kind = kind
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        if self.kind == "ce":
            return per_example_crossentropy(y_true, y_pred, self.from_logits)
        if self.kind == "balce":
            return per_example_balanced_crossentropy(y_true, y_pred, self.from_logits)
        dice = per_example_soft_dice(y_true, y_pred, self.from_logits)
        if self.kind == "dice":
            return dice
        if self.kind == "dice_balce":
            return dice + per_example_balanced_crossentropy(y_true, y_pred, self.from_logits)
        return dice + per_example_crossentropy(y_true, y_pred, self.from_logits)

    def get_config(self) -> dict:
        return {**super().get_config(), "kind": self.kind, "from_logits": self.from_logits}
