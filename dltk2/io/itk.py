"""SimpleITK's file access that every reader shares: the header read, its errors in one line, finite voxels.

:class:`ImageReadError` is what every reader of :mod:`dltk2.io.image` and :mod:`dltk2.io.nifti` raises
for a file that cannot be used, with a message that names the file and the problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from dltk2.errors import DataError


class ImageReadError(DataError, IOError):
    """An image could not be read, or its content is unusable (for example NaN voxels)."""


def error_description(error: BaseException) -> str:
    """The line of an error's message that says what went wrong, or its type's name when it has none."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # SimpleITK's messages start with a source location; the description is the last line.
    return lines[-1] if lines else type(error).__name__


def read_header(path: Path) -> sitk.ImageFileReader:
    """ITK's reader of ``path`` with its header read (no voxels)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise ImageReadError(f"{path}: cannot read the image header: {error_description(error)}") from error
    return reader


def check_finite(array: np.ndarray, name: str) -> None:
    """Raises ImageReadError naming ``name`` if ``array`` holds NaN or infinite values."""
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        if not finite.all():
            bad = int(array.size - np.count_nonzero(finite))
            raise ImageReadError(f"{name}: {bad} of {array.size} voxels are NaN or infinite")

