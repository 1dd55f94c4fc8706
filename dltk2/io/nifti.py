"""NIfTI-1 and NIfTI-2 read by dltk2 itself: truncation caught, NaN kept as stored, voxels fast.

ITK reads a truncated NIfTI file without a word (the missing voxels become zeros), cannot read NIfTI-2,
and replaces NaN voxels silently on some paths; :func:`read_nifti` reads the header and voxels here
(geometry from ITK's header reader, NIfTI-2 through nibabel); :func:`dltk2.io.image.read_voxels`, the
input pipeline's fast path, takes a plain NIfTI's voxels straight from the bytes inflated here (gzip
through ISA-L).
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from pathlib import Path
from typing import NamedTuple, Union

import numpy as np
import SimpleITK as sitk

from dltk2.io.itk import ImageReadError, error_description, read_header

PathLike = Union[str, os.PathLike]


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
        raise ImageReadError(f"{path}: truncated or corrupt gzip stream ({error_description(error)})") from error


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
                                 f"{error_description(error)}") from error
    reader = read_header(path)
    if tuple(reversed(voxels.shape)) != tuple(reader.GetSize()):  # a layout ITK reads otherwise: let it read
        return sitk.ReadImage(str(path))
    image = sitk.GetImageFromArray(voxels.astype(voxels.dtype.newbyteorder("=")), isVector=False)
    image.SetSpacing(reader.GetSpacing())
    image.SetOrigin(reader.GetOrigin())
    image.SetDirection(reader.GetDirection())
    return image


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
        raise ImageReadError(f"{path}: unreadable NIfTI-2 file ({error_description(error)})") from error
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


def _is_nifti2(path: Path) -> bool:
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as stream:
            head = stream.read(4)
    except (OSError, EOFError, zlib.error):
        return False
    return len(head) == 4 and 540 in (struct.unpack("<i", head)[0], struct.unpack(">i", head)[0])


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
