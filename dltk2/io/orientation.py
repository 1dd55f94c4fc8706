"""Axis codes of an image grid, and the axis permutation and flips that bring it to another orientation.

DICOM's and ITK's patient coordinates are LPS (x towards the patient's left, y posterior, z
superior), so an identity direction matrix is ``"LPS"``, and a NIfTI file with nibabel's identity
(RAS+) affine, which ITK reads with x and y flipped, is ``"RAS"``. A code names the world direction
an axis increases towards, for the axes in SimpleITK's (x, y, z) order (a numpy array's (z, y, x)
reversed). SimpleITK's ``DICOMOrient`` uses the same codes; :class:`Reorientation` does what it does
(checked in all 48 orientations) and also undoes it, for label maps going back to the input's grid.

Scanners write every one of the 48 axis-aligned orientations (sagittal and coronal MR, feet-first
CT, NIfTI from converters in RAS), and a model trained in one sees the others as a different,
mirrored or transposed, anatomy. nnU-Net and MONAI users report exactly that (nnU-Net #2768,
MONAI #3914: silently flipped predictions); dltk2's predictors bring every input to the orientation
recorded at training and back.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Sequence

import numpy as np
import SimpleITK as sitk

_TOWARDS = (("L", "R"), ("P", "A"), ("S", "I"))  # (positive, negative) world direction per LPS axis
_CODE_AXIS = {code: (world, sign) for world, pair in enumerate(_TOWARDS) for code, sign in zip(pair, (1, -1))}

# Direction cosines closer than this to a signed permutation count as axis-aligned: float32 headers
# (NIfTI's quaternions) carry about 1e-7 of rounding, and 1e-4 rad is 0.02 mm over a 200 mm field.
ALIGNED_TOLERANCE = 1e-4


def axis_codes(direction: Sequence[float]) -> str:
    """The axis codes of a 3D direction matrix (row-major, as SimpleITK's ``GetDirection``).

    Each column of the matrix is one voxel axis in world (LPS) coordinates; its largest component
    names the axis (an oblique grid gets the nearest code).

    Args:
        direction: 9 direction cosines, row-major.

    Returns:
        Three letters such as ``"LPS"`` (identity) or ``"RAS"``.

    Raises:
        ValueError: Not 9 values, or two axes pointing along the same world axis.
    """
    matrix = _matrix(direction)
    codes, used = [], set()
    for axis in range(3):
        column = matrix[:, axis]
        world = int(np.argmax(np.abs(column)))
        if world in used:
            raise ValueError(f"direction {tuple(matrix.flatten())}: two voxel axes along world axis {world}")
        used.add(world)
        positive, negative = _TOWARDS[world]
        codes.append(positive if column[world] > 0 else negative)
    return "".join(codes)


def check_codes(codes: str) -> str:
    """``codes`` in upper case if they name an orientation (one of L/R, P/A, S/I each), else ValueError."""
    upper = str(codes).upper()
    if len(upper) != 3 or any(code not in _CODE_AXIS for code in upper) or \
            len({_CODE_AXIS[code][0] for code in upper}) != 3:
        raise ValueError(f"{codes!r} is not an orientation: three axis codes, one of L/R, P/A and S/I each")
    return upper


def all_axis_codes() -> list[str]:
    """The 48 axis-aligned orientations, ``"LPS"`` first."""
    orders = itertools.permutations(range(3))
    return ["".join(_TOWARDS[world][flip] for world, flip in zip(order, flips))
            for order in orders for flips in itertools.product((0, 1), repeat=3)]


def direction_of(codes: str) -> tuple[float, ...]:
    """The direction matrix (row-major, 9 values) whose axes point as ``codes`` say."""
    matrix = np.zeros((3, 3))
    for axis, code in enumerate(check_codes(codes)):
        world, sign = _CODE_AXIS[code]
        matrix[world, axis] = sign
    return tuple(float(v) for v in matrix.flatten())


def is_axis_aligned(direction: Sequence[float], tolerance: float = ALIGNED_TOLERANCE) -> bool:
    """True if every voxel axis lies along a world axis (within ``tolerance`` in direction cosines)."""
    matrix = np.abs(_matrix(direction))
    return bool(np.all(np.minimum(matrix, np.abs(matrix - 1.0)) < tolerance))


def _matrix(direction: Sequence[float]) -> np.ndarray:
    matrix = np.asarray(direction, dtype=np.float64)
    if matrix.size != 9:
        raise ValueError(f"orientation needs a 3x3 direction matrix, got {matrix.size} values")
    return matrix.reshape(3, 3)


@dataclasses.dataclass(frozen=True)
class Reorientation:
    """The axis permutation and flips from a grid's orientation to another (nearest, for oblique grids).

    Attributes:
        source_axes: For each (x, y, z) axis of the reoriented grid, the input axis it comes from.
        flips: For each reoriented axis, whether it runs against its input axis.
    """

    source_axes: tuple[int, int, int]
    flips: tuple[bool, bool, bool]

    @classmethod
    def between(cls, direction: Sequence[float], codes: str) -> "Reorientation":
        """From a grid's direction matrix (row-major, 9 values) to the orientation ``codes``."""
        source = axis_codes(direction)
        target = check_codes(codes)
        source_axes, flips = [], []
        for code in target:
            world, sign = _CODE_AXIS[code]
            axis = next(a for a, c in enumerate(source) if _CODE_AXIS[c][0] == world)
            source_axes.append(axis)
            flips.append(_CODE_AXIS[source[axis]][1] != sign)
        return cls(tuple(source_axes), tuple(flips))

    @property
    def is_identity(self) -> bool:
        return self.source_axes == (0, 1, 2) and not any(self.flips)

    def apply(self, array: np.ndarray) -> np.ndarray:
        """A (z, y, x[, c]) array on the input grid -> the same voxels on the reoriented grid (a view)."""
        # numpy axis of ITK axis a is 2 - a; reoriented numpy axis k holds ITK axis source_axes[2 - k].
        order = [2 - self.source_axes[2 - k] for k in range(3)] + list(range(3, array.ndim))
        moved = np.transpose(array, order)
        flip_axes = tuple(2 - a for a in range(3) if self.flips[a])
        return np.flip(moved, flip_axes) if flip_axes else moved

    def undo(self, array: np.ndarray) -> np.ndarray:
        """A (z, y, x[, c]) array on the reoriented grid -> the input grid (a view)."""
        flip_axes = tuple(2 - a for a in range(3) if self.flips[a])
        array = np.flip(array, flip_axes) if flip_axes else array
        order = [2 - self.source_axes[2 - k] for k in range(3)]
        inverse = list(np.argsort(order)) + list(range(3, array.ndim))
        return np.transpose(array, inverse)

    def geometry(self, size: Sequence[int], spacing: Sequence[float], origin: Sequence[float],
                 direction: Sequence[float]) -> tuple[tuple[int, ...], tuple[float, ...], tuple[float, ...],
                                                      tuple[float, ...]]:
        """The reoriented grid's (size, spacing, origin, direction), each voxel where it was in the world.

        Args:
            size, spacing, origin: The input grid's, (x, y, z) as SimpleITK's; mm.
            direction: The input grid's direction, row-major.
        """
        matrix = _matrix(direction)
        axes = list(self.source_axes)
        new_size = tuple(int(size[a]) for a in axes)
        new_spacing = tuple(float(spacing[a]) for a in axes)
        columns = np.stack([matrix[:, a] * (-1.0 if flip else 1.0) for a, flip in zip(axes, self.flips)], axis=1)
        last_index = np.zeros(3)
        for axis, flip in zip(axes, self.flips):
            if flip:
                last_index[axis] = size[axis] - 1
        new_origin = np.asarray(origin, np.float64) + matrix @ (np.asarray(spacing, np.float64) * last_index)
        return new_size, new_spacing, tuple(float(v) for v in new_origin), tuple(float(v) for v in columns.flatten())


def reorient_image(image: sitk.Image, codes: str) -> sitk.Image:
    """``image`` transposed and flipped to the orientation ``codes``, each voxel where it was in the world.

    SimpleITK's ``DICOMOrient`` (which :class:`Reorientation` equals): no interpolation; an oblique
    image goes to its nearest orientation and stays oblique.
    """
    codes = check_codes(codes)
    if image.GetDimension() != 3 or axis_codes(image.GetDirection()) == codes:
        return image
    return sitk.DICOMOrient(image, codes)
