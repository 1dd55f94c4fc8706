"""Bringing a volume to the orientation a model was trained in, and its outputs back, in TF ops.

The serving graph's twin of :class:`dltk2.io.orientation.Reorientation`: the input's direction matrix
enters the graph as a tensor, and the axis permutation and flips to the training orientation are
computed there, so one SavedModel takes every orientation. An axis-aligned grid (all 48) is only
transposed and flipped: no interpolation, the voxels are the input's. An oblique grid (a tilted MR
slab, a gantry-tilted CT) is first brought to its nearest orientation, then resampled (trilinear, as
SimpleITK's ``sitk.Resample`` with ``sitkLinear``) onto a grid along the training axes, of the same
spacing, covering the whole input; outputs go back by nearest neighbour onto the input's own voxels.

Shapes are (z, y, x, c) as numpy's; spacings and direction matrices in SimpleITK's (x, y, z) order
(row-major direction, LPS world), mm.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from dltk2.io.orientation import ALIGNED_TOLERANCE, _CODE_AXIS, check_codes, direction_of


class OrientationPlan(NamedTuple):
    """How one input reaches the training orientation; every field a tensor of the serving graph.

    Attributes:
        source_axes: int32 (3,), for each (x, y, z) axis of the reoriented grid its input axis.
        flips: bool (3,), the reoriented axes that run against their input axes.
        oblique: bool (), whether the reoriented grid still needs resampling onto the training axes.
        aligned_size: int32 (3,), (z, y, x) of the reoriented grid (before any oblique resampling).
        to_aligned: float64 (3, 4), output index (x, y, z, 1) of the oblique resampling -> reoriented
            grid index (x, y, z).
        from_aligned: float64 (3, 4), the inverse: reoriented grid index -> resampled grid index.
        resampled_size: int32 (3,), (z, y, x) of the resampled grid (the aligned size if not oblique).
        resampled_offset: float64 (3,), world position (LPS, mm) of the resampled grid's first voxel
            relative to the input's origin.
    """

    source_axes: tf.Tensor
    flips: tf.Tensor
    oblique: tf.Tensor
    aligned_size: tf.Tensor
    to_aligned: tf.Tensor
    from_aligned: tf.Tensor
    resampled_size: tf.Tensor
    resampled_offset: tf.Tensor


def _numpy_order(source_axes: tf.Tensor) -> tf.Tensor:
    """The transpose of a (z, y, x) array that puts ITK axis ``source_axes[a]`` at ITK position a."""
    return 2 - tf.reverse(source_axes, [0])


def plan_orientation(volume_shape: tf.Tensor, spacing: tf.Tensor, direction: tf.Tensor, codes: str,
                     tolerance: float = ALIGNED_TOLERANCE) -> OrientationPlan:
    """The plan that brings a grid of this shape, spacing and direction to the orientation ``codes``.

    Args:
        volume_shape: int32 (3,) or more, (z, y, x[, c]) of the input.
        spacing: float64 (3,), (x, y, z) voxel size of the input, mm.
        direction: float64 (9,), the input's direction matrix, row-major.
        codes: The training orientation, e.g. ``"LPS"``.
        tolerance: Direction cosines closer than this to the training axes count as aligned.
    """
    target = check_codes(codes)
    matrix = tf.reshape(tf.cast(direction, tf.float64), [3, 3])
    spacing = tf.cast(spacing, tf.float64)
    world = tf.argmax(tf.abs(matrix), axis=0, output_type=tf.int32)  # world axis of each input axis
    tf.debugging.assert_equal(tf.size(tf.unique(world).y), 3,
                              message="direction: two voxel axes along one world axis")
    sign = tf.sign(tf.gather_nd(matrix, tf.stack([world, tf.range(3)], axis=1)))
    target_world = tf.constant([_CODE_AXIS[c][0] for c in target], tf.int32)
    target_sign = tf.constant([_CODE_AXIS[c][1] for c in target], tf.float64)
    source_axes = tf.cast(tf.argmax(tf.cast(tf.equal(target_world[:, tf.newaxis], world[tf.newaxis, :]), tf.int32),
                                    axis=1), tf.int32)
    flips = tf.not_equal(tf.gather(sign, source_axes), target_sign)
    size_xyz = tf.reverse(tf.cast(volume_shape[:3], tf.int32), [0])
    aligned_xyz = tf.gather(size_xyz, source_axes)
    aligned_spacing = tf.gather(spacing, source_axes)
    # Direction of the reoriented grid, and its rotation against the training axes (identity if aligned).
    columns = tf.gather(matrix, source_axes, axis=1) * tf.where(flips, tf.constant(-1.0, tf.float64), 1.0)[tf.newaxis, :]
    rotation = tf.matmul(tf.constant(np.reshape(direction_of(target), (3, 3))), columns, transpose_a=True)
    oblique = tf.reduce_max(tf.abs(rotation - tf.eye(3, dtype=tf.float64))) > tolerance
    # Corners of the reoriented grid in the training axes' frame (mm from its first voxel).
    corners = tf.constant([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], tf.float64)
    extent = corners * (tf.cast(aligned_xyz, tf.float64) - 1.0)[tf.newaxis, :] * aligned_spacing[tf.newaxis, :]
    in_frame = tf.matmul(extent, rotation, transpose_b=True)  # (8, 3)
    low = tf.reduce_min(in_frame, axis=0)
    high = tf.reduce_max(in_frame, axis=0)
    resampled_xyz = tf.cast(tf.math.ceil((high - low) / aligned_spacing - 1e-6), tf.int32) + 1
    # reoriented index i = S^-1 R^T (low + S j), and back j = S^-1 (R S i - low).
    scale = tf.linalg.diag(aligned_spacing)
    inverse_scale = tf.linalg.diag(1.0 / aligned_spacing)
    linear = inverse_scale @ tf.transpose(rotation) @ scale
    to_aligned = tf.concat([linear, (inverse_scale @ tf.transpose(rotation) @ low[:, tf.newaxis])], axis=1)
    back = inverse_scale @ rotation @ scale
    from_aligned = tf.concat([back, -(inverse_scale @ low[:, tf.newaxis])], axis=1)
    # First reoriented voxel's world offset from the input origin (the flipped axes start at their end).
    last = tf.cast(size_xyz - 1, tf.float64)
    flipped_start = tf.tensor_scatter_nd_add(tf.zeros(3, tf.float64), source_axes[:, tf.newaxis],
                                             tf.where(flips, tf.gather(last, source_axes), tf.zeros(3, tf.float64)))
    start = tf.linalg.matvec(matrix, spacing * flipped_start)
    offset = tf.where(oblique, start + tf.linalg.matvec(columns, tf.linalg.matvec(rotation, low,
                                                                                    transpose_a=True)), start)
    aligned_zyx = tf.reverse(aligned_xyz, [0])
    return OrientationPlan(source_axes, flips, oblique, aligned_zyx, to_aligned, from_aligned,
                           tf.where(oblique, tf.reverse(resampled_xyz, [0]), aligned_zyx), offset)


def sample_affine(volume: tf.Tensor, index_map: tf.Tensor, out_size: tf.Tensor, method: str = "linear"
                  ) -> tf.Tensor:
    """Samples a (z, y, x, c) volume at ``index_map @ (x, y, z, 1)`` of every voxel of a new grid.

    ITK's conventions: a point is inside if its index lies in [-0.5, size - 0.5) on every axis
    (outside is 0); linear interpolation clamps its neighbours to the volume, nearest rounds halves
    up. One output slice at a time, so memory is that of a slice's 8 neighbours, not the volume's.

    Args:
        volume: (z, y, x, c) float32.
        index_map: float64 (3, 4), output (x, y, z, 1) -> input (x, y, z) continuous index.
        out_size: int32 (3,), (z, y, x) of the output.
        method: ``"linear"`` or ``"nearest"``.

    Returns:
        (z', y', x', c) float32.
    """
    if method not in ("linear", "nearest"):
        raise ValueError(f"method must be 'linear' or 'nearest', got {method!r}")
    volume = tf.convert_to_tensor(volume, tf.float32)
    in_zyx = tf.shape(volume)[:3]
    limits = tf.cast(tf.reverse(in_zyx, [0]), tf.float64)
    ys, xs = tf.meshgrid(tf.range(out_size[1]), tf.range(out_size[2]), indexing="ij")
    plane = tf.cast(tf.stack([tf.reshape(xs, [-1]), tf.reshape(ys, [-1])], axis=1), tf.float64)  # (n, 2)

    def one_slice(z: tf.Tensor) -> tf.Tensor:
        points = tf.concat([plane, tf.fill([tf.shape(plane)[0], 1], tf.cast(z, tf.float64)),
                            tf.ones([tf.shape(plane)[0], 1], tf.float64)], axis=1)
        position = tf.matmul(points, index_map, transpose_b=True)  # (n, 3) as (x, y, z)
        inside = tf.reduce_all((position >= -0.5) & (position < limits - 0.5), axis=1)
        if method == "nearest":
            index = tf.clip_by_value(tf.cast(tf.floor(position + 0.5 + 1e-6), tf.int32), 0,
                                     tf.reverse(in_zyx, [0]) - 1)
            values = tf.gather_nd(volume, tf.reverse(index, [1]))
        else:
            lower = tf.floor(position)
            weight = tf.cast(position - lower, tf.float32)
            lower = tf.cast(lower, tf.int32)
            values = 0.0
            for corner in range(8):
                bits = tf.constant([(corner >> axis) & 1 for axis in range(3)], tf.int32)
                index = tf.clip_by_value(lower + bits, 0, tf.reverse(in_zyx, [0]) - 1)
                factor = tf.reduce_prod(tf.where(tf.cast(bits, tf.bool), weight, 1.0 - weight), axis=1)
                values += tf.gather_nd(volume, tf.reverse(index, [1])) * factor[:, tf.newaxis]
        values = values * tf.cast(inside, tf.float32)[:, tf.newaxis]
        return tf.reshape(values, [out_size[1], out_size[2], -1])

    return tf.map_fn(one_slice, tf.range(out_size[0]),
                     fn_output_signature=tf.TensorSpec([None, None, None], tf.float32))


def reorient(volume: tf.Tensor, plan: OrientationPlan) -> tf.Tensor:
    """(z, y, x, c) on the input grid -> (z', y', x', c) on the training orientation's grid.

    Outside an oblique input the resampled grid is 0: subtract the background value first.
    """
    volume = tf.convert_to_tensor(volume, tf.float32)
    moved = tf.transpose(volume, tf.concat([_numpy_order(plan.source_axes), [3]], 0))
    flipped = tf.reverse(moved, tf.boolean_mask(tf.constant([2, 1, 0]), plan.flips))
    return tf.cond(plan.oblique, lambda: sample_affine(flipped, plan.to_aligned, plan.resampled_size, "linear"),
                   lambda: flipped)


def restore_orientation(volume: tf.Tensor, plan: OrientationPlan, method: str = "nearest") -> tf.Tensor:
    """The inverse of :func:`reorient`: (z', y', x', c) on the training grid -> the input grid.

    Args:
        method: How an oblique input's voxels pick from the resampled grid: ``"nearest"`` for labels,
            ``"linear"`` for probabilities or maps.
    """
    volume = tf.convert_to_tensor(volume, tf.float32)
    aligned = tf.cond(plan.oblique, lambda: sample_affine(volume, plan.from_aligned, plan.aligned_size, method),
                      lambda: volume)
    unflipped = tf.reverse(aligned, tf.boolean_mask(tf.constant([2, 1, 0]), plan.flips))
    inverse = tf.math.invert_permutation(_numpy_order(plan.source_axes))
    return tf.transpose(unflipped, tf.concat([inverse, [3]], 0))


def reoriented_spacing(spacing: tf.Tensor, plan: OrientationPlan) -> tf.Tensor:
    """float64 (3,), the (x, y, z) spacing of the training-orientation grid, mm."""
    return tf.gather(tf.cast(spacing, tf.float64), plan.source_axes)
