"""Inference on whole volumes, written in TensorFlow ops so that it exports into a SavedModel.

``sliding_window_inference`` segments a volume of any size in overlapping, blended windows.
``CropAveragingPredictor`` is what DLTK's IXI deploy did (average the predictions of random crops of a
whitened volume), as one graph: ``deploy.py`` calls it, and the exported ``serving_default`` is the same
function, so TF Serving answers exactly what deploy prints for the same crop positions (same seed).
``SlidingWindowSegmenter`` does the same for segmentation: a raw CT volume and its spacing in,
resampling, HU window, sliding window and labels back on the input grid inside one graph.
``ImageClassifier2D`` classifies one grey 2D image of any size (scaling and padding inside);
``SeriesClassifier`` one MRI series (slices, height, width) of any size (resampling and whitening inside).
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from dltk2.volume_sampling import pad_to_at_least


def tf_whitening(image: tf.Tensor) -> tf.Tensor:
    """Zero mean, unit (population) standard deviation over all voxels; constant -> zeros.

    The TensorFlow twin of :func:`dltk2.preprocessing.whitening`; statistics in float64.
    """
    values = tf.cast(image, tf.float64)
    mean = tf.reduce_mean(values)
    std = tf.math.reduce_std(values)
    whitened = tf.where(std > 1e-8, (values - mean) / tf.maximum(std, 1e-8), tf.zeros_like(values))
    return tf.cast(whitened, tf.float32)


def random_crop_corners(
    volume_shape: tf.Tensor, crop_size: Sequence[int], num_crops: int, seed: tf.Tensor
) -> tf.Tensor:
    """Corners of ``num_crops`` crops drawn uniformly over every valid position, reproducibly.

    Args:
        volume_shape: int32 (3,), (z, y, x) of a volume at least ``crop_size`` large.
        crop_size: (z, y, x) of a crop.
        num_crops: Number of crops.
        seed: int32 scalar; the same seed and shape give the same corners on every machine.

    Returns:
        int32 (num_crops, 3).
    """
    crop = tf.constant(list(crop_size), tf.int32)
    positions = tf.cast(volume_shape[:3] - crop + 1, tf.float32)
    uniform = tf.random.stateless_uniform([num_crops, 3], seed=tf.stack([tf.cast(seed, tf.int32), 0]))
    corners = tf.cast(tf.floor(uniform * positions), tf.int32)
    return tf.minimum(corners, volume_shape[:3] - crop)


class CropAveragingPredictor(tf.Module):
    """Averages a model's predictions over random crops of a whole volume.

    Args:
        model: A Keras model taking (batch, z, y, x, c) crops and returning classification logits
            (batch, classes) or a regression value (batch, 1).
        crop_size: (z, y, x) of the crops, as in training.
        num_crops: Crops per volume.
        task: ``"classification"`` or ``"regression"``.
        whiten: Whiten the whole volume first (DLTK's IXI preprocessing).
        channels: Image channels the model takes.
        default_seed: Seed of ``serving_default`` (which takes no seed).
    """

    def __init__(
        self,
        model: keras.Model,
        crop_size: Sequence[int],
        num_crops: int = 4,
        task: str = "classification",
        whiten: bool = True,
        channels: int = 1,
        default_seed: int = 0,
    ) -> None:
        super().__init__(name="crop_averaging_predictor")
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
        if num_crops < 1:
            raise ValueError(f"num_crops must be >= 1, got {num_crops}")
        self.model = model
        self.crop_size = [int(s) for s in crop_size]
        self.num_crops = int(num_crops)
        self.task = task
        self.whiten = whiten
        self.channels = int(channels)
        self.default_seed = int(default_seed)

    def image_spec(self) -> tf.TensorSpec:
        """Input of the serving signatures: a raw volume (z, y, x) of any size, float32."""
        return tf.TensorSpec([None, None, None], tf.float32, name="image")

    def __call__(self, image: tf.Tensor, seed: tf.Tensor) -> dict[str, tf.Tensor]:
        """Predicts for one raw volume.

        Args:
            image: float32 (z, y, x), raw intensities at the training spacing.
            seed: int32 scalar choosing the crop positions.

        Returns:
            For classification: ``probabilities`` (classes,), the mean over crops; ``class_id`` ()
            int32; ``probabilities_std`` (classes,), the spread over crops; ``crop_corners``
            (num_crops, 3). For regression: ``prediction`` () and ``prediction_std`` () and
            ``crop_corners``.
        """
        volume = tf.convert_to_tensor(image, tf.float32)
        if self.whiten:
            volume = tf_whitening(volume)
        volume = tf.tile(volume[..., tf.newaxis], [1, 1, 1, self.channels])
        volume = pad_to_at_least(volume, self.crop_size)
        corners = random_crop_corners(tf.shape(volume), self.crop_size, self.num_crops, seed)
        crops = tf.map_fn(
            lambda corner: tf.slice(volume, tf.concat([corner, [0]], 0), self.crop_size + [self.channels]),
            corners,
            fn_output_signature=tf.TensorSpec(self.crop_size + [self.channels], tf.float32),
        )
        outputs = tf.cast(self.model(crops, training=False), tf.float32)
        if self.task == "classification":
            probabilities = tf.nn.softmax(outputs, axis=-1)
            mean = tf.reduce_mean(probabilities, axis=0)
            return {
                "probabilities": mean,
                "class_id": tf.argmax(mean, output_type=tf.int32),
                "probabilities_std": tf.math.reduce_std(probabilities, axis=0),
                "crop_corners": corners,
            }
        values = outputs[:, 0]
        return {
            "prediction": tf.reduce_mean(values),
            "prediction_std": tf.math.reduce_std(values),
            "crop_corners": corners,
        }

    def serving_functions(self) -> dict[str, tf.types.experimental.ConcreteFunction | tf.function]:
        """``serving_default(image)`` with the default seed, and ``predict_with_seed(image, seed)``."""

        @tf.function(input_signature=[self.image_spec()])
        def serving_default(image):
            return self(image, tf.constant(self.default_seed, tf.int32))

        @tf.function(input_signature=[self.image_spec(), tf.TensorSpec([], tf.int32, name="seed")])
        def predict_with_seed(image, seed):
            return self(image, seed)

        return {"serving_default": serving_default, "predict_with_seed": predict_with_seed}


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


def _resample_axis(volume: tf.Tensor, axis: int, in_size: tf.Tensor, out_size: tf.Tensor, in_spacing: tf.Tensor,
                   out_spacing: tf.Tensor, method: str) -> tf.Tensor:
    """Resamples one axis: output voxel i sits at input index i * out_spacing / in_spacing (ITK's grid).

    Multiplying before dividing keeps exact ties exact (10 * 0.7 / 2 is 3.5; 10 * (0.7 / 2) is not),
    so nearest-neighbour picks the voxel SimpleITK picks.
    """
    positions = tf.cast(tf.range(out_size), tf.float64) * out_spacing / in_spacing
    inside = (positions >= -0.5) & (positions < tf.cast(in_size, tf.float64) - 0.5)
    last = in_size - 1
    shape = [1, 1, 1, 1]
    shape[axis] = -1
    mask = tf.reshape(tf.cast(inside, volume.dtype), shape)
    if method == "nearest":
        # Halves round up, as ITK; the tolerance absorbs spacings that arrive as float32.
        index = tf.clip_by_value(tf.cast(tf.floor(positions + 0.5 + 1e-6), tf.int32), 0, last)
        return tf.gather(volume, index, axis=axis) * mask
    lower = tf.clip_by_value(tf.cast(tf.floor(positions), tf.int32), 0, last)
    upper = tf.minimum(lower + 1, last)
    weight = tf.reshape(tf.cast(positions - tf.floor(positions), volume.dtype), shape)
    weight = tf.where(tf.reshape(positions < 0, shape), tf.zeros_like(weight), weight)
    blended = tf.gather(volume, lower, axis=axis) * (1 - weight) + tf.gather(volume, upper, axis=axis) * weight
    return blended * mask


def _as_float64(values) -> tf.Tensor:
    """Python or numpy numbers straight to float64 (not through float32, where 0.7 becomes 0.69999999)."""
    if isinstance(values, (tf.Tensor, tf.Variable)):
        return tf.cast(values, tf.float64)
    return tf.constant(np.asarray(values, dtype=np.float64))


def resample_volume(
    volume: tf.Tensor,
    spacing: tf.Tensor,
    new_spacing: Sequence[float] | tf.Tensor,
    new_size: tf.Tensor | None = None,
    method: str = "linear",
) -> tf.Tensor:
    """Resamples a (z, y, x, c) volume to a new spacing in TF ops (for use inside a SavedModel).

    Same grid convention as :func:`dltk2.preprocessing.resample_to_spacing` with SimpleITK: origin and
    direction are kept, output voxel i lies at input index ``i * new_spacing / spacing``, the output
    size is ``round(size * spacing / new_spacing)`` unless ``new_size`` is given (to go back onto an
    original grid), and points outside the input are 0.

    Args:
        volume: (z, y, x, c) float32.
        spacing: (x, y, z) voxel size of ``volume``, mm (SimpleITK's order); pass float64 tensors in
            a serving signature, so that exact ties stay exact.
        new_spacing: (x, y, z) wanted voxel size, mm.
        new_size: Optional (z, y, x) output size.
        method: ``"linear"`` for images, ``"nearest"`` for labels.

    Returns:
        (z', y', x', c) float32.
    """
    if method not in ("linear", "nearest"):
        raise ValueError(f"method must be 'linear' or 'nearest', got {method!r}")
    volume = tf.convert_to_tensor(volume, tf.float32)
    spacing_zyx = tf.reverse(_as_float64(spacing), [0])
    new_spacing_zyx = tf.reverse(_as_float64(new_spacing), [0])
    in_size = tf.shape(volume)[:3]
    if new_size is None:
        new_size = tf.maximum(tf.cast(tf.round(tf.cast(in_size, tf.float64) * spacing_zyx / new_spacing_zyx),
                                      tf.int32), 1)
    for axis in range(3):
        volume = _resample_axis(volume, axis, in_size[axis], new_size[axis], spacing_zyx[axis],
                                new_spacing_zyx[axis], method)
    return volume


class SlidingWindowSegmenter(tf.Module):
    """Segments a raw CT volume on its own grid: resample, clip and scale, sliding window, and back.

    The whole of deploy's work in one graph, so ``deploy.py`` and the exported ``serving_default``
    are the same function: the raw volume (HU) is resampled linearly to the training spacing (points
    outside the volume are air), clipped to the intensity window and scaled to [-1, 1], segmented by
    :func:`sliding_window_inference`, and the label map goes back onto the input grid by nearest
    neighbour. Origin and direction need not enter the graph: both grids share them (ITK's resampling
    convention, as :func:`dltk2.preprocessing.resample_to_spacing`), so the caller copies them from
    the input image.

    Args:
        model: A fully convolutional Keras model, (batch, z, y, x, 1) -> (batch, z, y, x, classes).
        window: (z, y, x) sliding-window size, voxels at ``spacing_mm``.
        spacing_mm: (x, y, z) voxel size the model was trained at, mm.
        intensity_window: (low, high) clipping window, HU; mapped to [-1, 1].
        overlap: Sliding-window overlap, [0, 1).
        batch_size: Windows per model call.
        blend: ``"gaussian"`` or ``"constant"``.
        num_classes: Model output channels; read from the model if None.
    """

    def __init__(
        self,
        model: keras.Model,
        window: Sequence[int],
        spacing_mm: Sequence[float] = (2.0, 2.0, 2.0),
        intensity_window: Sequence[float] = (-1000.0, 800.0),
        overlap: float = 0.5,
        batch_size: int = 2,
        blend: str = "gaussian",
        num_classes: int | None = None,
    ) -> None:
        super().__init__(name="sliding_window_segmenter")
        low, high = (float(v) for v in intensity_window)
        if not high > low:
            raise ValueError(f"intensity_window must be (low, high) with high > low, got {intensity_window}")
        self.model = model
        self.window = [int(w) for w in window]
        self.spacing_mm = [float(s) for s in spacing_mm]
        self.intensity_window = (low, high)
        self.overlap = float(overlap)
        self.batch_size = int(batch_size)
        self.blend = blend
        self.num_classes = int(num_classes or model.output_shape[-1])
        self._segment = tf.function(self.__call__, input_signature=self.input_signature())

    @staticmethod
    def input_signature() -> list[tf.TensorSpec]:
        """``image`` float32 (z, y, x) in HU, any size; ``spacing`` float64 (3,) as (x, y, z) mm."""
        return [tf.TensorSpec([None, None, None], tf.float32, name="image"),
                tf.TensorSpec([3], tf.float64, name="spacing")]

    def preprocess(self, image: tf.Tensor, spacing: tf.Tensor) -> tf.Tensor:
        """Raw (z, y, x) HU at ``spacing`` -> (z', y', x', 1) in [-1, 1] at the training spacing."""
        low, high = self.intensity_window
        volume = tf.convert_to_tensor(image, tf.float32)[..., tf.newaxis]
        # Resampling (volume - low) and adding low back makes the outside air, not 0 HU.
        resampled = resample_volume(volume - low, spacing, self.spacing_mm, method="linear") + low
        return (tf.clip_by_value(resampled, low, high) - low) / (high - low) * 2.0 - 1.0

    def __call__(self, image: tf.Tensor, spacing: tf.Tensor) -> dict[str, tf.Tensor]:
        """Segments one raw volume.

        Args:
            image: float32 (z, y, x), HU.
            spacing: float64 (3,), (x, y, z) voxel size of ``image``, mm.

        Returns:
            ``labels``: int32 (z, y, x), the class of every input voxel. ``probabilities_shape``:
            int32 (4,), the size of the class-probability volume at the training spacing (what
            bounded the memory).
        """
        volume = self.preprocess(image, spacing)
        probabilities = sliding_window_inference(self.model, volume, self.window, overlap=self.overlap,
                                                 batch_size=self.batch_size, blend=self.blend,
                                                 num_classes=self.num_classes)
        labels = tf.cast(tf.argmax(probabilities, axis=-1, output_type=tf.int32), tf.float32)[..., tf.newaxis]
        on_input_grid = resample_volume(labels, self.spacing_mm, spacing, new_size=tf.shape(image),
                                        method="nearest")
        return {"labels": tf.cast(on_input_grid[..., 0], tf.int32),
                "probabilities_shape": tf.shape(probabilities)}

    def segment(self, image: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        """Numpy in and out (the compiled graph that is exported): int32 (z, y, x) labels."""
        outputs = self._segment(tf.constant(np.asarray(image, np.float32)),
                                tf.constant(np.asarray(spacing, np.float64)))
        return outputs["labels"].numpy()

    def serving_functions(self) -> dict[str, tf.types.experimental.GenericFunction]:
        """``serving_default(image, spacing)`` -> ``labels`` (and ``probabilities_shape``)."""
        return {"serving_default": self._segment}


def grey_image_input(image: tf.Tensor, size: int) -> tf.Tensor:
    """A grey 2D image (h, w) or (h, w, 1) of any number type -> (size, size, 1) float32 in [0, 1].

    Min-max scaled per image (so 8- and 16-bit files look alike), then resized to fit ``size`` with the
    aspect ratio kept and zero padding (``tf.image.resize_with_pad``).
    """
    values = tf.cast(image, tf.float32)
    if values.shape.rank == 2:
        values = values[..., tf.newaxis]
    low, high = tf.reduce_min(values), tf.reduce_max(values)
    values = tf.where(high > low, (values - low) / tf.maximum(high - low, 1e-6), tf.zeros_like(values))
    return tf.image.resize_with_pad(values, size, size)


class _SingleInputClassifier(tf.Module):
    """A classifier of one input of any size: ``preprocess`` (in the graph), model, softmax, argmax."""

    input_name = "image"
    input_rank = 2

    def __init__(self, model: keras.Model, class_names: Sequence[str], name: str) -> None:
        super().__init__(name=name)
        self.model = model
        self.class_names = [str(name) for name in class_names]
        self._names = tf.constant(self.class_names)
        self._classify = tf.function(self.__call__, input_signature=[
            tf.TensorSpec([None] * self.input_rank, tf.float32, name=self.input_name)])

    def preprocess(self, value: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def __call__(self, value: tf.Tensor) -> dict[str, tf.Tensor]:
        """One input -> ``probabilities`` (classes,), ``class_id``, ``class_name``."""
        logits = self.model(self.preprocess(value)[tf.newaxis], training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)[0]
        class_id = tf.argmax(probabilities, output_type=tf.int32)
        return {"probabilities": probabilities, "class_id": class_id, "class_name": tf.gather(self._names, class_id)}

    def classify(self, value: np.ndarray) -> dict[str, np.ndarray]:
        """Numpy in and out, through the compiled function that is exported."""
        outputs = self._classify(tf.constant(np.asarray(value, np.float32)))
        return {key: value.numpy() for key, value in outputs.items()}

    def serving_functions(self) -> dict[str, tf.types.experimental.GenericFunction]:
        """``serving_default(<input_name>)``."""
        return {"serving_default": self._classify}


class ImageClassifier2D(_SingleInputClassifier):
    """Classifies one grey 2D image of any size: scaling and resizing inside, so it exports whole.

    ``serving_default(image)``: float32 (h, w), any intensity range -> ``probabilities``,
    ``class_id``, ``class_name``.

    Args:
        model: (batch, size, size, 1) in [0, 1] -> (batch, classes) logits.
        size: The model's input size.
        class_names: Name of each class index.
    """

    def __init__(self, model: keras.Model, size: int, class_names: Sequence[str]) -> None:
        self.size = int(size)
        super().__init__(model, class_names, "image_classifier_2d")

    def preprocess(self, value: tf.Tensor) -> tf.Tensor:
        return grey_image_input(value, self.size)


def series_input(series: tf.Tensor, depth: int, size: int) -> tf.Tensor:
    """A raw series (slices, height, width), any number type -> the network input (depth, size, size, 1).

    Linear resampling in-plane to (size, size) (antialiased when shrinking, aspect ratio not kept:
    MRNet's slices are square), then linear resampling across slices to ``depth``, then whitening
    (zero mean, unit standard deviation over the series). float32 out.
    """
    values = tf.cast(series, tf.float32)[..., tf.newaxis]
    values = tf.image.resize(values, [size, size], method="bilinear", antialias=True)
    slices = tf.shape(values)[0]
    across = tf.reshape(values, [slices, size * size, 1])
    across = tf.image.resize(across, [depth, size * size], method="bilinear", antialias=True)
    values = tf.reshape(across, [depth, size, size, 1])
    mean = tf.reduce_mean(values)
    std = tf.math.reduce_std(values)
    return tf.where(std > 1e-6, (values - mean) / tf.maximum(std, 1e-6), tf.zeros_like(values))


class SeriesClassifier(_SingleInputClassifier):
    """Classifies one raw MRI series of any size: resampling and whitening inside, so it exports whole.

    ``serving_default(series)``: float32 (slices, h, w), any intensity range -> ``probabilities``,
    ``class_id``, ``class_name``.

    Args:
        model: (batch, depth, size, size, 1) whitened series -> (batch, classes) logits.
        depth, size: The model's input depth and in-plane size (:func:`series_input`).
        class_names: Name of each class index.
    """

    input_name = "series"
    input_rank = 3

    def __init__(self, model: keras.Model, depth: int, size: int, class_names: Sequence[str]) -> None:
        self.depth, self.size = int(depth), int(size)
        super().__init__(model, class_names, "series_classifier")

    def preprocess(self, value: tf.Tensor) -> tf.Tensor:
        return series_input(value, self.depth, self.size)
