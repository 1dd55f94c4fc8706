"""Axis codes of an image grid: which anatomical direction each voxel axis points to.

DICOM's and ITK's patient coordinates are LPS (x towards the patient's left, y posterior, z
superior), so an identity direction matrix is ``"LPS"``, and a NIfTI file with nibabel's identity
(RAS+) affine, which ITK reads with x and y flipped, is ``"RAS"``. A code names the world direction
an axis increases towards, for the axes in SimpleITK's (x, y, z) order (a numpy array's (z, y, x)
reversed).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

_TOWARDS = (("L", "R"), ("P", "A"), ("S", "I"))  # (positive, negative) world direction per LPS axis


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
    matrix = np.asarray(direction, dtype=np.float64)
    if matrix.size != 9:
        raise ValueError(f"axis codes need a 3x3 direction matrix, got {matrix.size} values")
    matrix = matrix.reshape(3, 3)
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
