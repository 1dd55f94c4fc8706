"""Where a classifier looked: Grad-CAM and occlusion sensitivity, 2D and 3D, as TensorFlow ops.

Both take the network's own input (a preprocessed batch: (batch, h, w, channels) or (batch, d, h, w,
channels)) and give one map per example on that input's grid, in [0, 1] (1 where it matters most).

- :func:`grad_cam` (Selvaraju et al. 2017): the feature map before the network's global pooling,
  each channel weighted by the mean gradient of the class score over it, summed, ReLU, upsampled
  (bilinear / trilinear, half-pixel centres) to the input. One forward and one backward pass. For a
  network that ends in global average pooling and one dense layer (DLTK's ResNet, r3d_18), the map is
  the class activation map of Zhou et al. 2016 (ReLU'd), which the tests check it against.
- :func:`occlusion_sensitivity` (Zeiler and Fergus 2014): how much the class probability drops when a
  patch of the input is replaced by ``fill``, averaged over the patches covering each voxel. Model-
  agnostic (any classifier, any backbone), at the cost of one forward pass per patch.

The feature map is found where the network pools globally: a top-level ``GlobalAveragePooling2D/3D``
or ``GlobalMaxPooling2D/3D`` (DLTK's ResNet, r3d_18), or inside a nested model that does (a
``keras.applications`` backbone with ``pooling="avg"``, as :func:`dltk2.networks.transfer_classifier`
builds it), the outer model then being a chain of layers (checked against its own answer).
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

GLOBAL_POOLING = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalAveragePooling3D,
                  keras.layers.GlobalMaxPooling2D, keras.layers.GlobalMaxPooling3D)


def _pooling_of(model: keras.Model) -> keras.layers.Layer | None:
    return next((layer for layer in model.layers if isinstance(layer, GLOBAL_POOLING)), None)


def _inputs(model: keras.Model):
    """A single-input model's input as a tensor, not a list (Keras warns when a list is called with one)."""
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def feature_function(model: keras.Model) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """``batch -> (feature map before the global pooling, model output)``, both from one forward pass.

    Raises:
        ValueError: No global pooling at the top level or in a nested model. (Whether a model around a
            nested one is a chain of layers is checked by :func:`explainable_features` and :func:`grad_cam`.)
    """
    pooling = _pooling_of(model)
    if pooling is not None:
        split = keras.Model(_inputs(model), [pooling.input, model.outputs[0]])
        return lambda batch: tuple(split(batch, training=False))
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model) and _pooling_of(layer) is not None]
    if not nested:
        raise ValueError(f"{model.name}: no global pooling layer, at its top or in a nested model, to find the "
                         "feature map at")
    inner = nested[0]
    inner_split = keras.Model(_inputs(inner), [_pooling_of(inner).input, inner.outputs[0]])
    chain = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]

    def run(batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x, features = batch, None
        for layer in chain:
            if layer is inner:
                features, x = inner_split(x, training=False)
            else:
                x = layer(x, training=False)
        return features, x

    return run


def _check_chain(model: keras.Model, run: Callable, batch: tf.Tensor) -> None:
    expected = model(batch, training=False)
    _, answered = run(batch)
    if not np.allclose(np.asarray(answered), np.asarray(expected), rtol=1e-4, atol=1e-5):
        raise ValueError(f"{model.name}: its layers around the nested backbone are not a chain, so Grad-CAM cannot "
                         "reach the backbone's feature map; occlusion_sensitivity explains any model")


def resize_map(maps: tf.Tensor, size) -> tf.Tensor:
    """(batch, *spatial) -> (batch, *size): bilinear (2D) or trilinear (3D, separable), half-pixel centres.

    ``size`` may be a tensor (a raw input's shape inside a served graph).
    """
    maps = tf.convert_to_tensor(maps, tf.float32)
    size = tf.cast(tf.convert_to_tensor(size), tf.int32)
    if maps.shape.rank == 3:
        return tf.image.resize(maps[..., tf.newaxis], size, method="bilinear")[..., 0]
    batch, depth = tf.shape(maps)[0], tf.shape(maps)[1]
    planes = tf.image.resize(tf.reshape(maps, tf.concat([[-1], tf.shape(maps)[2:], [1]], 0)), size[1:])
    planes = tf.reshape(planes, tf.stack([batch, depth, size[1] * size[2], 1]))
    volume = tf.image.resize(planes, tf.stack([size[0], size[1] * size[2]]))
    return tf.reshape(volume, tf.concat([[batch], size], 0))


def explainable_features(model: keras.Model, input_shape: Sequence[int]) -> Callable | None:
    """:func:`feature_function` of a model where it has one (checked on zeros of ``input_shape``), else None."""
    try:
        run = feature_function(model)
        if _pooling_of(model) is None:
            _check_chain(model, run, tf.zeros(input_shape))
    except ValueError:
        return None
    return run


def _normalise(maps: tf.Tensor) -> tf.Tensor:
    axes = list(range(1, maps.shape.rank))
    peak = tf.reduce_max(maps, axis=axes, keepdims=True)
    return tf.math.divide_no_nan(maps, peak)


def grad_cam(model: keras.Model, batch, class_index=None, features: Callable | None = None) -> tf.Tensor:
    """Grad-CAM maps of a batch on its own grid: (batch, *spatial, channels) -> (batch, *spatial) in [0, 1].

    Args:
        model: A classifier ending in global pooling (see the module docstring); its output is the
            class score (logits, or probabilities: the gradient of either points the same way for the
            predicted class).
        batch: Its input, as the model takes it.
        class_index: The class explained, one per example or one for all; None: each example's
            predicted class.
        features: :func:`feature_function` of ``model``, reused across calls (built when None).
    """
    return grad_cam_and_class(model, batch, class_index, features)[0]


def grad_cam_and_class(model: keras.Model, batch, class_index=None, features: Callable | None = None
                       ) -> tuple[tf.Tensor, tf.Tensor]:
    """:func:`grad_cam`, and the class each map explains ((batch,) int32): one forward pass for both."""
    if class_index is None:
        choose = None
    else:
        def choose(scores):
            return tf.broadcast_to(tf.cast(class_index, tf.int32), tf.shape(scores)[:1])
    maps, chosen, _ = grad_cam_and_scores(model, batch, choose, features)
    return maps, chosen


def grad_cam_and_scores(model: keras.Model, batch, choose: Callable[[tf.Tensor], tf.Tensor] | None = None,
                        features: Callable | None = None, normalise: bool = True
                        ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Grad-CAM maps, the class each explains, and the model's outputs, all from one forward pass.

    Args:
        model, batch, features: As for :func:`grad_cam`.
        choose: ``scores (batch, classes) float32 -> (batch,) int32``, the class explained, decided
            on the scores of this very pass (a crop-averaging predictor explains the class of the
            mean over its crops); None: each example's highest score.
        normalise: Scale each map to [0, 1] by its maximum; False keeps Grad-CAM's own units, so
            maps of several crops of one volume can be averaged before one scaling.

    Returns:
        ``(maps (batch, *spatial), chosen (batch,) int32, scores (batch, classes) float32)``.
    """
    batch = tf.convert_to_tensor(batch, tf.float32)
    run = features or feature_function(model)
    if features is None and _pooling_of(model) is None:
        _check_chain(model, run, batch)
    with tf.GradientTape() as tape:
        tape.watch(batch)  # a network that pools its input directly: the feature map is the input
        feature_map, scores = run(batch)
        scores = tf.cast(scores, tf.float32)
        chosen = (tf.argmax(scores, axis=-1, output_type=tf.int32) if choose is None else
                  tf.cast(choose(scores), tf.int32))
        score = tf.gather(scores, chosen, axis=1, batch_dims=1)
    gradients = tf.cast(tape.gradient(score, feature_map), tf.float32)
    feature_map = tf.cast(feature_map, tf.float32)
    spatial = list(range(1, feature_map.shape.rank - 1))
    weights = tf.reduce_mean(gradients, axis=spatial, keepdims=True)  # (batch, 1, ..., 1, channels)
    maps = resize_map(tf.nn.relu(tf.reduce_sum(weights * feature_map, axis=-1)), list(batch.shape[1:-1]))
    return (_normalise(maps) if normalise else maps), chosen, scores


def occlusion_sensitivity(model: keras.Model, image, class_index: int | None = None, patch: Sequence[int] = (8, 8),
                          stride: Sequence[int] | None = None, fill: float = 0.0, batch_size: int = 16,
                          activation: Callable | None = tf.nn.softmax) -> tf.Tensor:
    """The drop of one example's class probability when each patch is hidden: (*spatial, channels) -> (*spatial).

    Patches of ``patch`` voxels at ``stride`` (default half a patch) cover the input, the last ones
    flush with its far edges; each voxel gets the mean drop of the patches covering it, and the map
    is scaled to [0, 1] by its largest drop (increases count as 0).

    Args:
        model: Any classifier of the input.
        image: One input, without the batch axis.
        class_index: The class explained; None: the predicted one.
        patch, stride: Sizes per spatial axis (voxels).
        fill: The value hiding a patch (the preprocessed input's background: 0 after min-max scaling,
            the mean after whitening).
        batch_size: Occluded copies per network call.
        activation: Applied to the model's output (softmax of logits); None for probabilities.
    """
    image = tf.convert_to_tensor(image, tf.float32)
    shape = list(image.shape[:-1])
    stride = list(stride) if stride is not None else [max(1, p // 2) for p in patch]
    if len(patch) != len(shape) or len(stride) != len(shape):
        raise ValueError(f"patch {list(patch)} and stride {stride} need one size per axis of {shape}")

    def probabilities(inputs: tf.Tensor) -> tf.Tensor:
        scores = tf.cast(model(inputs, training=False), tf.float32)
        return activation(scores) if activation is not None else scores

    original = probabilities(image[tf.newaxis])[0]
    chosen = int(tf.argmax(original)) if class_index is None else int(class_index)
    starts = [sorted({*range(0, max(size - p, 0) + 1, s), max(size - p, 0)}) for size, p, s in zip(shape, patch, stride)]
    corners = np.stack(np.meshgrid(*starts, indexing="ij"), axis=-1).reshape(-1, len(shape))
    drops, counts = np.zeros(shape, np.float64), np.zeros(shape, np.float64)
    for first in range(0, len(corners), batch_size):
        group = corners[first:first + batch_size]
        masks = np.ones([len(group), *shape, 1], np.float32)
        for index, corner in enumerate(group):
            masks[(index, *(slice(c, c + p) for c, p in zip(corner, patch)))] = 0.0
        occluded = image[tf.newaxis] * masks + fill * (1.0 - masks)
        drop = (original[chosen] - probabilities(occluded)[:, chosen]).numpy()
        for index, corner in enumerate(group):
            region = tuple(slice(c, c + p) for c, p in zip(corner, patch))
            drops[region] += drop[index]
            counts[region] += 1
    sensitivity = np.maximum(drops / np.maximum(counts, 1), 0.0)
    peak = sensitivity.max()
    return tf.constant((sensitivity / peak if peak > 0 else sensitivity).astype(np.float32))
