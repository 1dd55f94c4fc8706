"""Reading and writing medical images with SimpleITK, geometry kept.

Arrays are in SimpleITK's (z, y, x) order; spacing and origin are in (x, y, z) order and millimetres,
as SimpleITK gives them. Supported: NIfTI (``.nii``, ``.nii.gz``), MetaImage (``.mha``, ``.mhd``),
NRRD (``.nrrd``, ``.nhdr``) and any other format SimpleITK reads, plus a folder holding one DICOM series.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
import SimpleITK as sitk

from dltk2.errors import DataError
from dltk2.io.atomic import atomic_destination
# Readers' shared pieces and the NIfTI reader live in their own modules; imported here where they always were.
from dltk2.io.itk import ImageReadError, check_finite, error_description, read_header  # noqa: F401
from dltk2.io.nifti import _is_nifti2, _nifti_content, _nifti_voxels, read_nifti  # noqa: F401

if TYPE_CHECKING:
    from dltk2.io.dicom_series import SeriesVolume

PathLike = Union[str, os.PathLike]


@dataclasses.dataclass(frozen=True)
class ImageGeometry:
    """Where a voxel grid lies in patient space.

    Attributes:
        size: Voxels along (x, y, z).
        spacing: Voxel size along (x, y, z), in mm.
        origin: Physical position of the first voxel's centre, in mm.
        direction: Row-major 3x3 (or NxN) direction cosine matrix, flattened.
    """

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def from_image(cls, image: sitk.Image) -> "ImageGeometry":
        return cls(
            size=tuple(int(s) for s in image.GetSize()),
            spacing=tuple(float(s) for s in image.GetSpacing()),
            origin=tuple(float(o) for o in image.GetOrigin()),
            direction=tuple(float(d) for d in image.GetDirection()),
        )

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        """Copies spacing, origin and direction onto ``image`` (which must have this size)."""
        if tuple(image.GetSize()) != self.size:
            raise ValueError(f"image size {image.GetSize()} differs from geometry size {self.size}")
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def reference_image(self) -> sitk.Image:
        """An empty image on this grid, for resampling onto it."""
        image = sitk.Image([int(s) for s in self.size], sitk.sitkUInt8)
        return self.apply_to(image)

    def isclose(self, other: "ImageGeometry", atol: float = 1e-4) -> bool:
        """True if both describe the same grid (up to ``atol`` mm and direction cosines)."""
        return (
            self.size == other.size
            and np.allclose(self.spacing, other.spacing, atol=atol)
            and np.allclose(self.origin, other.origin, atol=atol)
            and np.allclose(self.direction, other.direction, atol=atol)
        )


def read_dicom_series(folder: PathLike, series_id: str | None = None) -> sitk.Image:
    """Reads one DICOM series of a folder as a float32 3D image (:func:`dltk2.io.dicom_series.read_series`).

    Args:
        folder: A folder of DICOM files (a series or a study, searched recursively).
        series_id: SeriesInstanceUID to read; default: the series with the most slices that is not a
            localizer.

    Raises:
        ImageReadError: No series, or one that is no volume (mixed orientations, missing slices,
            uneven spacing, gantry tilt, no pixel data), named in one line.
    """
    from dltk2.io.dicom_series import SeriesRules, read_series

    try:
        return read_series(folder, SeriesRules(series_uid=series_id)).image
    except DataError as error:
        raise ImageReadError(str(error)) from None


def read_image(
    path: PathLike,
    pixel_type: int | None = None,
    require_finite: bool = True,
) -> sitk.Image:
    """Reads an image file, or a DICOM series from a folder, with its geometry.

    Args:
        path: A file SimpleITK reads, or a folder holding one DICOM series.
        pixel_type: SimpleITK pixel type to cast to (e.g. ``sitk.sitkFloat32``); None keeps the file's.
        require_finite: Raise if a floating-point image holds NaN or infinite voxels.

    Returns:
        The image.

    Raises:
        ImageReadError: Missing, truncated or corrupt file, or non-finite voxels; the message names
            the file and the problem in one line.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        image = read_dicom_series(path)
    elif path.name.endswith((".nii", ".nii.gz")):
        image = read_nifti(path)
    else:
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as error:
            size = path.stat().st_size
            raise ImageReadError(
                f"{path}: cannot read image ({size} bytes; truncated or corrupt?): {error_description(error)}"
            ) from error
    if pixel_type is not None and image.GetPixelID() != pixel_type:
        image = sitk.Cast(image, pixel_type)
    if require_finite:
        check_finite(sitk.GetArrayViewFromImage(image), str(path))
    return image


@dataclasses.dataclass(frozen=True)
class ImageInformation:
    """What an image file's header says: dimension, values per voxel and the grid (no voxels read)."""

    dimension: int
    components: int
    geometry: ImageGeometry


def read_image_information(path: PathLike) -> ImageInformation:
    """An image's header only: for checking many files before any is read in full.

    Raises:
        ImageReadError: Missing, or a header that cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():  # a DICOM series: its grid from the headers
        from dltk2.io.dicom_series import SeriesRules, choose_series, find_series, series_geometry

        try:
            _, size, spacing, origin, direction = series_geometry(choose_series(find_series(path), SeriesRules(),
                                                                                str(path)), str(path))
        except DataError as error:
            raise ImageReadError(str(error)) from None
        return ImageInformation(3, 1, ImageGeometry(size, spacing, origin, direction))
    if path.name.endswith((".nii", ".nii.gz")) and _is_nifti2(path):
        image = read_image(path, require_finite=False)  # NIfTI-2: ITK has no header-only read
        return ImageInformation(image.GetDimension(), image.GetNumberOfComponentsPerPixel(),
                                ImageGeometry.from_image(image))
    reader = read_header(path)
    geometry = ImageGeometry(tuple(int(s) for s in reader.GetSize()), tuple(reader.GetSpacing()),
                             tuple(reader.GetOrigin()), tuple(reader.GetDirection()))
    return ImageInformation(reader.GetDimension(), reader.GetNumberOfComponents(), geometry)


def read_array(
    path: PathLike, dtype: np.dtype | type | None = np.float32, require_finite: bool = True
) -> tuple[np.ndarray, ImageGeometry]:
    """Reads an image as a numpy array in (z, y, x) order, with its geometry.

    Args:
        path: See :func:`read_image`.
        dtype: numpy dtype of the returned array; None keeps the file's.
        require_finite: See :func:`read_image`.

    Returns:
        ``(array, geometry)``; array shape (z, y, x) or (z, y, x, components).
    """
    image = read_image(path, require_finite=require_finite)
    array = sitk.GetArrayFromImage(image)
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    return array, ImageGeometry.from_image(image)


def read_voxels(
    path: PathLike, dtype: np.dtype | type | None = np.float32, require_finite: bool = True
) -> np.ndarray:
    """Reads an image's voxels as a (z, y, x) array, without geometry: the input pipeline's read.

    Gives what ``read_array(path, dtype)[0]`` gives, faster for the common ``.nii`` / ``.nii.gz``:
    the file is inflated once (by ISA-L where installed, outside the GIL, so parallel reads use
    every core) and its voxels are taken straight from the bytes, where ITK inflates through small
    buffers and copies twice. NIfTI with intensity scaling, vector or complex voxels, other formats
    and DICOM folders go through :func:`read_array`.

    Args:
        path: See :func:`read_image`.
        dtype: numpy dtype of the returned array; None keeps the file's.
        require_finite: Raise if a floating-point image holds NaN or infinite voxels.

    Returns:
        Array of shape (z, y, x) (or (t, z, y, x) for a 4D NIfTI), as SimpleITK orders it.

    Raises:
        ImageReadError: Missing, truncated or corrupt file, or non-finite voxels; the message names
            the file and the problem in one line.
    """
    path = Path(path)
    name = path.name
    if not (name.endswith(".nii") or name.endswith(".nii.gz")) or not path.is_file():
        return read_array(path, dtype, require_finite)[0]
    voxels = _nifti_voxels(path, _nifti_content(path))
    if voxels is None:
        return read_array(path, dtype, require_finite)[0]
    if require_finite:
        check_finite(voxels, str(path))
    if dtype is None:
        return voxels.astype(voxels.dtype.newbyteorder("="))
    return voxels.astype(dtype)


def array_to_image(array: np.ndarray, geometry: ImageGeometry | None = None) -> sitk.Image:
    """Makes a SimpleITK image from a (z, y, x) array, with ``geometry`` if given."""
    image = sitk.GetImageFromArray(np.asarray(array))
    if geometry is not None:
        geometry.apply_to(image)
    return image


def write_image(
    image: sitk.Image | np.ndarray,
    path: PathLike,
    geometry: ImageGeometry | None = None,
    compress: bool = True,
) -> Path:
    """Writes an image atomically: to a temporary file beside ``path``, then renamed.

    A killed write therefore never leaves a half file under the final name.

    Args:
        image: A SimpleITK image, or a (z, y, x) array (then ``geometry`` sets its grid).
        path: Destination; the extension chooses the format (``.nii.gz``, ``.mha``, ``.nrrd``...).
        geometry: Grid for an array input; for an image input, replaces its grid if given.
        compress: Compress where the format allows it.

    Two-file formats (``.mhd``, ``.nhdr``) name their data file inside the header, so they are written
    in place rather than renamed.

    Returns:
        The path written.
    """
    path = Path(path)
    if isinstance(image, np.ndarray):
        image = array_to_image(image, geometry)
    elif geometry is not None:
        image = geometry.apply_to(sitk.Image(image))
    if path.suffix in (".mhd", ".nhdr"):
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(path), useCompression=compress)
        return path
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    with atomic_destination(path, suffix=suffix) as temporary:
        sitk.WriteImage(image, str(temporary), useCompression=compress)
    return path


def read_volume(path: PathLike) -> tuple[np.ndarray, ImageGeometry, "SeriesVolume | None"]:
    """A scan to predict on: its float32 (z, y, x) voxels, its grid and, for a DICOM series folder, the series.

    Args:
        path: An image file (NIfTI read by :func:`read_voxels`) or a folder holding a DICOM series
            (:func:`dltk2.io.dicom_series.read_series`; its files are the evidence a report cites).

    Raises:
        ImageReadError: A file or series that cannot be read, named.
    """
    path = Path(path)
    if path.is_dir():
        from dltk2.io.dicom_series import read_series

        try:
            volume = read_series(path)
        except DataError as error:
            raise ImageReadError(str(error)) from None
        return volume.array, volume.geometry, volume
    return read_voxels(path), read_image_information(path).geometry, None
