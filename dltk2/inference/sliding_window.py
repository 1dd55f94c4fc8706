"""Sliding-window inference in TensorFlow ops: a volume of any size in overlapping, blended windows."""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from dltk2.volume_sampling import pad_to_at_least


def window_weights(window: Sequence[int], blend: str = "gaussian", sigma_scale: float = 0.125) -> tf.Tensor:
    """Blending weights of one window, (z, y, x) float32, maximum 1.

    ``gaussian``: a Gaussian centred on the window with sigma ``sigma_scale * window`` per axis (as
    nnU-Net and MONAI), floored at a small positive value so every voxel counts; ``constant``: ones.
    """
    if blend == "constant":
        return tf.ones(list(window), tf.float32)
    if blend != "gaussian":
        raise ValueError(f"blend must be 'gaussian' or 'constant', got {blend!r}")
    profiles = []
    for size in window:
        positions = tf.range(size, dtype=tf.float32) - (size - 1) / 2.0
        sigma = max(size * sigma_scale, 1e-3)
        profiles.append(tf.exp(-0.5 * tf.square(positions / sigma)))
    weights = profiles[0][:, None, None] * profiles[1][None, :, None] * profiles[2][None, None, :]
    weights = weights / tf.reduce_max(weights)
    return tf.maximum(weights, 1e-3)



def window_starts(size: tf.Tensor, window: int, step: int) -> tf.Tensor:
    """Start positions along one axis: every ``step`` voxels, and a last window flush with the end."""
    starts = tf.range(0, size - window + 1, step)
    last = size - window
    return tf.cond(starts[-1] < last, lambda: tf.concat([starts, [last]], 0), lambda: starts)



def _add_rows(accumulator: tf.Tensor, rows: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
    """``accumulator[rows] += values`` in place, without copying the accumulator.

    ``InplaceAdd`` writes into its input's buffer (it aliases it), unlike ``tensor_scatter_nd_add``,
    which copies the whole tensor on every call. The caller owns the buffer: ``accumulator`` must come
    from ``tf.raw_ops.Empty`` (a fresh buffer on every run, never folded into a constant) or from an
    earlier ``_add_rows``, and have no other reader. ``rows`` must not repeat within one call (the GPU
    kernel adds without atomics).

    Args:
        accumulator: (rows, ...) float32.
        rows: int32 (n,) distinct row indices.
        values: (n, ...) float32, the shape of ``accumulator`` past its first axis.
    """
    return tf.raw_ops.InplaceAdd(x=accumulator, i=rows, v=values)



def _zeros_buffer(shape) -> tf.Tensor:
    """A fresh zero-filled float32 buffer that :func:`_add_rows` may write into."""
    return tf.raw_ops.Empty(shape=tf.cast(tf.stack(shape), tf.int32), dtype=tf.float32, init=True)



def sliding_window_inference(
    model: keras.Model,
    volume: tf.Tensor,
    window: Sequence[int],
    overlap: float = 0.5,
    batch_size: int = 4,
    blend: str = "gaussian",
    num_classes: int | None = None,
    apply_softmax: bool = True,
) -> tf.Tensor:
    """Runs a segmentation model over a whole volume in overlapping windows and blends the results.

    Any volume size works: a volume smaller than the window is zero-padded (centred) and the padding
    cropped from the result. Windows start every ``window * (1 - overlap)`` voxels along each axis, and
    a last one lies flush with the far end. Written in TensorFlow ops (``tf.while_loop``), so it runs
    eagerly, inside a ``tf.function`` and inside an exported SavedModel, and concurrent calls share
    nothing.

    The windows are blended in place, strip by strip. The windows that share a (z, y) corner form a
    strip (window depth x window height x the volume's width); each is added into the strip's buffer,
    and a finished strip into the (z, y, x, classes) accumulator, both with ``InplaceAdd`` on whole rows
    (x planes of the strip; (z, y) lines of the accumulator), so nothing copies the accumulator.
    Memory above the input: the accumulator, the normaliser (one float per voxel), one strip and its
    transposed copy, and one batch of windows with the model's activations. The normaliser (the sum
    of the weights of the windows covering each voxel) does not depend on the model, so the weights
    of one strip are summed once and added per strip.

    Args:
        model: Maps (batch, *window, channels) to (batch, *window, classes) logits (or probabilities).
        volume: (z, y, x, channels) float32, already normalised as in training.
        window: (z, y, x) window size.
        overlap: Fraction of a window shared with the next along each axis, in [0, 1).
        batch_size: Windows per model call.
        blend: ``"gaussian"`` or ``"constant"`` weights (see :func:`window_weights`).
        num_classes: Output channels of the model; read from ``model.output_shape`` if None.
        apply_softmax: Turn the model's logits into probabilities before blending.

    Returns:
        (z, y, x, classes) float32 blended class probabilities, the input's spatial size.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    window = [int(w) for w in window]
    depth, height, width = window
    classes = int(num_classes or model.output_shape[-1])
    volume = tf.convert_to_tensor(volume, tf.float32)
    original_shape = tf.shape(volume)[:3]
    padded = pad_to_at_least(volume, window)
    shape = tf.shape(padded)[:3]
    lines, columns = shape[0] * shape[1], shape[2]  # the accumulator's rows: (z, y) lines of x
    steps = [max(1, int(round(w * (1.0 - overlap)))) for w in window]
    z_starts, y_starts, x_starts = (window_starts(shape[i], window[i], steps[i]) for i in range(3))
    corners = tf.reshape(tf.stack(tf.meshgrid(z_starts, y_starts, x_starts, indexing="ij"), axis=-1), [-1, 3])
    num_windows = tf.shape(corners)[0]
    windows_per_strip = tf.size(x_starts)
    num_strips = num_windows // windows_per_strip
    # Weights as the strip stores a window: x first, (x, z, y).
    weights = tf.transpose(window_weights(window, blend), [2, 0, 1])
    # Accumulator lines (z * height_of_volume + y) of a strip, relative to its (z, y) corner.
    strip_lines = tf.reshape(tf.range(depth)[:, None] * shape[1] + tf.range(height)[None, :], [-1])

    def lines_of(index: tf.Tensor) -> tf.Tensor:
        """The accumulator lines that strip ``index`` covers, (depth * height,)."""
        corner = corners[index * windows_per_strip]
        return corner[0] * shape[1] + corner[1] + strip_lines

    def strip_to_lines(strip: tf.Tensor, channels: int) -> tf.Tensor:
        """A strip's (x, z * y * channels) rows -> (z * y, x * channels) accumulator lines."""
        strip = tf.reshape(strip, [columns, depth * height, channels])
        return tf.reshape(tf.transpose(strip, [1, 0, 2]), [depth * height, columns * channels])

    # The accumulator before any other buffer (Empty is stateful, so buffers come in program order):
    # the largest block goes into the allocator's pool first, the same way on every call.
    probabilities = _zeros_buffer([lines, columns * classes])
    # The weights of one strip, (x, z * y), summed once, then added into the normaliser per strip.
    strip_weights = tf.while_loop(
        lambda c, _: c < windows_per_strip,
        lambda c, total: (c + 1, _add_rows(total, x_starts[c] + tf.range(width), tf.reshape(weights, [width, -1]))),
        (tf.constant(0), _zeros_buffer([columns, depth * height])),
        parallel_iterations=1,
    )[1]
    strip_weights = strip_to_lines(strip_weights, 1)
    normaliser = tf.while_loop(
        lambda s, _: s < num_strips,
        lambda s, total: (s + 1, _add_rows(total, lines_of(s), strip_weights)),
        (tf.constant(0), _zeros_buffer([lines, columns])),
        parallel_iterations=1,
    )[1]

    def predict(batch_corners: tf.Tensor) -> tf.Tensor:
        """The model's outputs for the windows at ``batch_corners``: (batch, *window, classes) float32."""
        windows = tf.map_fn(
            lambda corner: tf.slice(padded, tf.concat([corner, [0]], 0), window + [-1]),
            batch_corners,
            fn_output_signature=tf.TensorSpec(window + [volume.shape[-1]], tf.float32),
        )
        return tf.cast(model(windows, training=False), tf.float32)

    def blend_window(output: tf.Tensor) -> tf.Tensor:
        """One window's (z, y, x, classes) output -> weighted probabilities as strip rows (x, z * y * classes)."""
        if apply_softmax:
            output = tf.nn.softmax(output, axis=-1)
        weighted = tf.transpose(output, [2, 0, 1, 3]) * weights[..., tf.newaxis]
        return tf.reshape(weighted, [width, depth * height * classes])

    def add_strip(probabilities: tf.Tensor, strip: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
        return _add_rows(probabilities, lines_of(index), strip_to_lines(strip, classes))

    def add_window(k, outputs, start, probabilities, strip, strip_index):
        """Adds window ``start + k`` into its strip, first moving a finished strip into the accumulator."""
        index = start + k
        new_index = index // windows_per_strip
        finished = tf.cond(
            new_index > strip_index,
            lambda: (add_strip(probabilities, strip, strip_index), _zeros_buffer([columns, depth * height * classes])),
            lambda: (probabilities, strip),
        )
        probabilities, strip = (tf.ensure_shape(new, old.shape) for new, old in zip(finished, (probabilities, strip)))
        # One window per InplaceAdd: neighbouring windows overlap, and rows must not repeat in a call.
        strip = _add_rows(strip, corners[index][2] + tf.range(width), blend_window(outputs[k]))
        return probabilities, strip, new_index

    def add_batch(start, probabilities, strip, strip_index):
        outputs = predict(corners[start:start + batch_size])
        _, probabilities, strip, strip_index = tf.while_loop(
            lambda k, *_: k < tf.shape(outputs)[0],
            lambda k, *state: (k + 1, *add_window(k, outputs, start, *state)),
            (tf.constant(0), probabilities, strip, strip_index),
            parallel_iterations=1,
        )
        return start + batch_size, probabilities, strip, strip_index

    _, probabilities, strip, strip_index = tf.while_loop(
        lambda start, *_: start < num_windows,
        add_batch,
        (tf.constant(0), probabilities, _zeros_buffer([columns, depth * height * classes]), tf.constant(0)),
        # One batch at a time: TensorFlow's default of 10 runs model calls ahead, each holding its
        # windows and activations.
        parallel_iterations=1,
    )
    probabilities = add_strip(probabilities, strip, strip_index)
    probabilities = tf.reshape(probabilities, tf.concat([shape, [classes]], 0))
    probabilities = probabilities / tf.maximum(tf.reshape(normaliser, shape), 1e-12)[..., tf.newaxis]
    before = (shape - original_shape) // 2
    return tf.slice(probabilities, tf.concat([before, [0]], 0), tf.concat([original_shape, [classes]], 0))

