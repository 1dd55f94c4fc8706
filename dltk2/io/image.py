"""Reading and writing medical images with SimpleITK, geometry kept.

Arrays are in SimpleITK's (z, y, x) order; spacing and origin are in (x, y, z) order and millimetres,
as SimpleITK gives them. Supported: NIfTI (``.nii``, ``.nii.gz``), MetaImage (``.mha``, ``.mhd``),
NRRD (``.nrrd``, ``.nhdr``) and any other format SimpleITK reads, plus a folder holding one DICOM series.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import struct
import zlib
from pathlib import Path
from typing import NamedTuple, Union

import numpy as np
import SimpleITK as sitk

from dltk2.errors import DataError
from dltk2.io.atomic import atomic_destination

PathLike = Union[str, os.PathLike]


class ImageReadError(DataError, IOError):
    """An image could not be read, or its content is unusable (for example NaN voxels)."""


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


def _error_description(error: BaseException) -> str:
    """The line of an error's message that says what went wrong, or its type's name when it has none."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # SimpleITK's messages start with a source location; the description is the last line.
    return lines[-1] if lines else type(error).__name__


class _NiftiHeader(NamedTuple):
    endian: str  # struct's "<" or ">"
    dims: tuple[int, ...]  # NIfTI's dim[0..7]: rank, then extents
    datatype: int
    bitpix: int
    offset: int  # where the voxels start, bytes
    slope: float
    intercept: float


def _nifti_header(header: bytes) -> _NiftiHeader | None:
    """The fields dltk2 reads from a NIfTI-1 or NIfTI-2 header (its first 540 bytes); None if neither."""
    for endian in "<>":
        if len(header) >= 348 and struct.unpack(endian + "i", header[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            datatype, bitpix = struct.unpack(endian + "2h", header[70:74])
            offset = max(int(struct.unpack(endian + "f", header[108:112])[0]), 348)
            slope, intercept = struct.unpack(endian + "2f", header[112:120])
            return _NiftiHeader(endian, dims, datatype, bitpix, offset, slope, intercept)
        if len(header) >= 540 and struct.unpack(endian + "i", header[:4])[0] == 540:
            datatype, bitpix = struct.unpack(endian + "2h", header[12:16])
            dims = struct.unpack(endian + "8q", header[16:80])
            offset = max(struct.unpack(endian + "q", header[168:176])[0], 540)
            slope, intercept = struct.unpack(endian + "2d", header[176:192])
            return _NiftiHeader(endian, dims, datatype, bitpix, offset, slope, intercept)
    return None


def _nifti_layout(header: bytes) -> tuple[str, int, int, int] | None:
    """(endianness, data offset, voxel data bytes, datatype code) of a NIfTI-1/2 header; None if unsure."""
    fields = _nifti_header(header)
    if fields is None or not 1 <= fields.dims[0] <= 7 or fields.bitpix <= 0:
        return None
    voxels = 1
    for extent in fields.dims[1 : fields.dims[0] + 1]:
        voxels *= max(int(extent), 1)
    return fields.endian, fields.offset, voxels * fields.bitpix // 8, fields.datatype


def _nifti_content(path: Path) -> bytes:
    """A NIfTI file's bytes, inflated (ISA-L where installed)."""
    try:
        content = path.read_bytes()
        return _gunzip(content) if path.name.endswith(".gz") else content
    except Exception as error:  # zlib.error, EOFError, isal's IsalError, OSError
        raise ImageReadError(f"{path}: truncated or corrupt gzip stream ({_error_description(error)})") from error


def _nifti_voxels(path: Path, content: bytes) -> np.ndarray | None:
    """The voxels of a plain NIfTI-1/2 image (see :func:`_nifti_voxel_layout`) in (z, y, x) order, else None.

    Raises:
        ImageReadError: Fewer bytes than the header promises.
    """
    layout = _nifti_voxel_layout(content[:540])
    if layout is None:
        return None
    voxel_type, offset, shape = layout
    count = int(np.prod(shape))
    if len(content) < offset + count * voxel_type.itemsize:
        raise ImageReadError(f"{path}: truncated NIfTI file ({len(content)} of "
                             f"{offset + count * voxel_type.itemsize} bytes uncompressed)")
    return np.frombuffer(content, voxel_type, count, offset).reshape(shape)


def read_nifti(path: PathLike) -> sitk.Image:
    """Reads a NIfTI-1 or NIfTI-2 file with its geometry, its voxels exactly as stored (NaN kept).

    ITK's NIfTI reader returns a truncated file without complaint, turns NaN voxels into 0 and does
    not read NIfTI-2 at all ("Unable to determine ImageIO reader"), which dltk2's training reader
    (:func:`read_voxels`) did: a NIfTI-2 volume trained, then was refused at deploy as truncated.
    Here the file is inflated once, the voxels of a plain image (one scalar component, no intensity
    scaling) are taken from its bytes, and the geometry comes from ITK's reading of the header
    (NIfTI-1) or from nibabel's affine (NIfTI-2, RAS turned into ITK's LPS). Scaled or vector NIfTI-1
    images go through ITK as before.

    Raises:
        ImageReadError: Truncated, corrupt, or a NIfTI-2 file without nibabel to read it.
    """
    path = Path(path)
    content = _nifti_content(path)
    fields = _nifti_header(content[:540])
    if fields is None:
        raise ImageReadError(f"{path}: not a NIfTI file (no NIfTI-1 or NIfTI-2 header)")
    voxels = _nifti_voxels(path, content)
    if len(content) >= 540 and struct.unpack(fields.endian + "i", content[:4])[0] == 540:
        return _read_nifti2(path, content, voxels)
    if voxels is None:
        expected = _nifti_layout(content[:540])
        if expected is not None and len(content) < expected[1] + expected[2]:
            raise ImageReadError(f"{path}: truncated NIfTI file ({len(content)} of {expected[1] + expected[2]} "
                                 "bytes uncompressed)")
        try:
            return sitk.ReadImage(str(path))
        except RuntimeError as error:
            raise ImageReadError(f"{path}: cannot read image ({path.stat().st_size} bytes; truncated or corrupt?): "
                                 f"{_error_description(error)}") from error
    reader = _header(path)
    if tuple(reversed(voxels.shape)) != tuple(reader.GetSize()):  # a layout ITK reads otherwise: let it read
        return sitk.ReadImage(str(path))
    image = sitk.GetImageFromArray(voxels.astype(voxels.dtype.newbyteorder("=")), isVector=False)
    image.SetSpacing(reader.GetSpacing())
    image.SetOrigin(reader.GetOrigin())
    image.SetDirection(reader.GetDirection())
    return image


def _header(path: Path) -> sitk.ImageFileReader:
    """ITK's reader of ``path`` with its header read (no voxels)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise ImageReadError(f"{path}: cannot read the image header: {_error_description(error)}") from error
    return reader


def _read_nifti2(path: Path, content: bytes, voxels: np.ndarray | None) -> sitk.Image:
    """A NIfTI-2 image: voxels as stored (or scaled by nibabel), geometry from nibabel's affine in LPS."""
    try:
        import nibabel
    except ImportError:  # pragma: no cover - nibabel is in requirements.txt
        raise ImageReadError(f"{path}: a NIfTI-2 file; install nibabel to read it") from None
    try:
        header = nibabel.Nifti2Header.from_fileobj(io.BytesIO(content), check=False)
        image = nibabel.Nifti2Image.from_bytes(content) if voxels is None else None
    except Exception as error:  # nibabel's HeaderDataError, ValueError...
        raise ImageReadError(f"{path}: unreadable NIfTI-2 file ({_error_description(error)})") from error
    if voxels is None:
        data = np.asanyarray(image.dataobj)
        voxels = np.ascontiguousarray(data.transpose(tuple(reversed(range(data.ndim)))))
    affine = header.get_best_affine()
    lps = np.diag([-1.0, -1.0, 1.0]) @ affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    if np.any(spacing == 0):
        raise ImageReadError(f"{path}: NIfTI-2 affine with a zero-length axis")
    result = sitk.GetImageFromArray(voxels.astype(voxels.dtype.newbyteorder("=")), isVector=False)
    dimension = result.GetDimension()
    direction, origin = np.eye(dimension), np.zeros(dimension)
    spacings = np.ones(dimension)
    spatial = min(dimension, 3)
    direction[:spatial, :spatial] = (lps / spacing)[:spatial, :spatial]
    origin[:spatial] = (np.array([-1.0, -1.0, 1.0]) * affine[:3, 3])[:spatial]
    spacings[:spatial] = spacing[:spatial]
    if dimension > 3:
        spacings[3:] = [float(z) or 1.0 for z in header.get_zooms()[3:dimension]]
    result.SetSpacing([float(value) for value in spacings])
    result.SetOrigin([float(value) for value in origin])
    result.SetDirection([float(value) for value in direction.flatten()])
    return result


def read_dicom_series(folder: PathLike, series_id: str | None = None) -> sitk.Image:
    """Reads one DICOM series from a folder as a 3D image, slices sorted by position.

    Args:
        folder: A folder of DICOM files.
        series_id: SeriesInstanceUID to read where the folder holds several; required then.

    Raises:
        ImageReadError: No series, several series and no ``series_id``, or unreadable slices.
    """
    folder = str(folder)
    series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
    if not series_ids:
        raise ImageReadError(f"{folder}: no DICOM series found in the folder")
    if series_id is None:
        if len(series_ids) > 1:
            raise ImageReadError(
                f"{folder}: holds {len(series_ids)} DICOM series ({', '.join(series_ids)}); "
                "pass series_id to choose one"
            )
        series_id = series_ids[0]
    elif series_id not in series_ids:
        raise ImageReadError(f"{folder}: no DICOM series with SeriesInstanceUID {series_id}")
    file_names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, series_id)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(file_names)
    try:
        return reader.Execute()
    except RuntimeError as error:
        raise ImageReadError(f"{folder}: cannot read DICOM series {series_id}: {_error_description(error)}") from error


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
                f"{path}: cannot read image ({size} bytes; truncated or corrupt?): {_error_description(error)}"
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
    if path.is_dir() or path.name.endswith((".nii", ".nii.gz")) and _is_nifti2(path):
        image = read_image(path, require_finite=False)  # DICOM series and NIfTI-2: ITK has no header-only read
        return ImageInformation(image.GetDimension(), image.GetNumberOfComponentsPerPixel(),
                                ImageGeometry.from_image(image))
    reader = _header(path)
    geometry = ImageGeometry(tuple(int(s) for s in reader.GetSize()), tuple(reader.GetSpacing()),
                             tuple(reader.GetOrigin()), tuple(reader.GetDirection()))
    return ImageInformation(reader.GetDimension(), reader.GetNumberOfComponents(), geometry)


def _is_nifti2(path: Path) -> bool:
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as stream:
            head = stream.read(4)
    except (OSError, EOFError, zlib.error):
        return False
    return len(head) == 4 and 540 in (struct.unpack("<i", head)[0], struct.unpack(">i", head)[0])


def check_finite(array: np.ndarray, name: str) -> None:
    """Raises ImageReadError naming ``name`` if ``array`` holds NaN or infinite values."""
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        if not finite.all():
            bad = int(array.size - np.count_nonzero(finite))
            raise ImageReadError(f"{name}: {bad} of {array.size} voxels are NaN or infinite")


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


_NIFTI_VOXEL_TYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4",
                      1024: "i8", 1280: "u8"}

try:  # Intel's ISA-L inflates gzip 2-3x faster than zlib, and releases the GIL as zlib does.
    from isal.igzip import decompress as _gunzip
except ImportError:  # pragma: no cover - isal is in requirements.txt; zlib is the fallback
    from gzip import decompress as _gunzip


def _nifti_voxel_layout(header: bytes) -> tuple[np.dtype, int, tuple[int, ...]] | None:
    """(voxel dtype, data offset, array shape in C order) of a plain NIfTI-1/2 image, else None.

    Plain: one scalar component of a listed type, no intensity scaling (``scl_slope`` 0 or 1 and
    ``scl_inter`` 0), at most 4 dimensions once trailing singleton dimensions above the third are
    dropped (as ITK drops them). Anything else is left to ITK.
    """
    fields = _nifti_header(header)
    if fields is None:
        return None
    endian, dims, datatype, _, offset, slope, intercept = fields
    rank = dims[0]
    if datatype not in _NIFTI_VOXEL_TYPES or not 1 <= rank <= 7 or slope not in (0.0, 1.0) or intercept != 0.0:
        return None
    extents = [int(extent) for extent in dims[1 : rank + 1]]
    while len(extents) > 3 and extents[-1] == 1:
        extents.pop()
    if len(extents) > 4 or min(extents) < 1:
        return None
    return np.dtype(endian + _NIFTI_VOXEL_TYPES[datatype]), offset, tuple(reversed(extents))


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

