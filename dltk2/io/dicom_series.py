"""DICOM series in: the series of a folder, one chosen by rules, read as a volume with its geometry.

A hospital's export is a folder of files from one study or several: localizers beside the axial
series, a tri-plane pilot whose three slices face three ways, a thin and a thick reconstruction.
:func:`find_series` groups the files by SeriesInstanceUID (headers only); :func:`choose_series` picks
one by :class:`SeriesRules` (UID, modality, description, image type, then the most slices);
:func:`read_series` sorts its slices along the slice normal (from ImagePositionPatient and
ImageOrientationPatient, not file names or InstanceNumber), applies each slice's RescaleSlope and
RescaleIntercept, and builds a volume whose spacing, origin and direction are SimpleITK's for the same
files. Enhanced multi-frame CT and MR (one file, per-frame functional groups) read the same way.

What a volume cannot honestly be made of is refused with one line naming the folder and the series:
slices facing different ways, several slices at one position, a missing slice or uneven spacing, and
gantry tilt (slices sheared against their normal). SimpleITK's ``ImageSeriesReader`` reads all of
these, with a warning at most, into a volume with one spacing: on pydicom's ``dicomdirtests`` it turns
a 4-slice CT with gaps of 2.5 to 134 mm into 68.3 mm slices, and the three faces of a pilot into one
block.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dltk2.errors import DataError, first_line
from dltk2.io.dicom import DicomError, looks_like_dicom

# Directions closer than this (cosines) are one orientation; slices closer than this (mm) one position.
ORIENTATION_TOLERANCE = 1e-4
POSITION_TOLERANCE = 1e-3
# Spacing between slices may vary by this share of its median (scanners write positions rounded to
# 0.01 mm or in float32); more is uneven.
SPACING_TOLERANCE = 0.01
# Slices sheared against their normal by more than this angle are gantry-tilted (degrees).
TILT_TOLERANCE_DEGREES = 0.01

if TYPE_CHECKING:
    from dltk2.io.image import ImageGeometry

_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage (DICOMDIR)


@dataclasses.dataclass
class Series:
    """One series' files, from their headers.

    Attributes:
        uid: SeriesInstanceUID.
        headers: Each file's dataset without its pixel data, in file-name order.
        paths: The files, aligned with ``headers``.
    """

    uid: str
    headers: list[Dataset]
    paths: list[Path]

    def _first(self, keyword: str, default=""):
        return self.headers[0].get(keyword, default) if self.headers else default

    @property
    def modality(self) -> str:
        return str(self._first("Modality"))

    @property
    def description(self) -> str:
        return str(self._first("SeriesDescription"))

    @property
    def number(self) -> int:
        value = self._first("SeriesNumber", None)
        return int(value) if value not in (None, "") else 0

    @property
    def image_types(self) -> set[str]:
        """Every ImageType value any of its files carries (``ORIGINAL``, ``LOCALIZER``, ``AXIAL``...)."""
        return {str(value).upper() for header in self.headers for value in (header.get("ImageType") or [])}

    @property
    def frame_count(self) -> int:
        return sum(int(header.get("NumberOfFrames", 1) or 1) for header in self.headers)

    def describe(self) -> str:
        """``series <uid> (<modality> '<description>', <n> images)``: how messages name it."""
        return f"series {self.uid} ({self.modality} {self.description!r}, {self.frame_count} images)"


@dataclasses.dataclass(frozen=True)
class SeriesRules:
    """How :func:`choose_series` picks one series of a folder.

    Attributes:
        series_uid: This SeriesInstanceUID and no other.
        modalities: Allowed modalities (e.g. ``("CT",)``); empty: any.
        description: A regular expression the SeriesDescription must contain (case-insensitive).
        exclude_image_types: ImageType values that disqualify a series (localizers by default).
        require_image_types: ImageType values a series must carry (e.g. ``("ORIGINAL", "PRIMARY")``).
        min_images: Fewest images (slices or frames) a series must have to be a volume.
    """

    series_uid: str | None = None
    modalities: tuple[str, ...] = ()
    description: str | None = None
    exclude_image_types: tuple[str, ...] = ("LOCALIZER",)
    require_image_types: tuple[str, ...] = ()
    min_images: int = 2

    def rejects(self, series: Series) -> str | None:
        """Why ``series`` is not a candidate, or None if it is."""
        if self.series_uid is not None and series.uid != self.series_uid:
            return "another SeriesInstanceUID"
        if self.modalities and series.modality.upper() not in {m.upper() for m in self.modalities}:
            return f"modality {series.modality}"
        if self.description is not None and not re.search(self.description, series.description, re.IGNORECASE):
            return f"description {series.description!r}"
        excluded = series.image_types & {t.upper() for t in self.exclude_image_types}
        if excluded:
            return f"image type {'/'.join(sorted(excluded))}"
        missing = {t.upper() for t in self.require_image_types} - series.image_types
        if missing:
            return f"no image type {'/'.join(sorted(missing))}"
        if not any("PixelData" in header or "FloatPixelData" in header for header in series.headers):
            return f"no pixel data ({series.headers[0].get('SOPClassUID', 'unknown').name if series.headers else ''})"
        if series.frame_count < self.min_images:
            return f"{series.frame_count} image(s)"
        return None


def _dicom_files(folder: Path) -> Iterable[Path]:
    for root, directories, files in os.walk(folder):
        directories.sort()
        for name in sorted(files):
            path = Path(root) / name
            try:
                with open(path, "rb") as handle:
                    head = handle.read(132)
            except OSError:
                continue
            if looks_like_dicom(head):
                yield path


def _read_header(path: Path) -> Dataset | None:
    try:
        # Large values (the pixel data) are skipped, not read: their presence is still known.
        dataset = pydicom.dcmread(path, defer_size=4096, force=True)
    except (InvalidDicomError, OSError, ValueError, EOFError) as error:
        raise DicomError(f"{path}: unreadable DICOM header: {first_line(error)}") from None
    meta = getattr(dataset, "file_meta", None)
    if meta is not None and meta.get("MediaStorageSOPClassUID") == _DIRECTORY_SOP_CLASS:
        return None
    missing = [keyword for keyword in ("SOPInstanceUID", "SeriesInstanceUID") if keyword not in dataset]
    if missing:  # both are type 1 in every IOD: a header that ends before them was cut short
        raise DicomError(f"{path}: no {' or '.join(missing)}: not a complete DICOM instance "
                         f"({path.stat().st_size} bytes; truncated?)")
    pixels = dataset.get_item("PixelData", keep_deferred=True) if "PixelData" in dataset else None
    length, start = getattr(pixels, "length", None), getattr(pixels, "value_tell", None)
    if length not in (None, 0xFFFFFFFF) and start is not None and start + length > path.stat().st_size:
        raise DicomError(f"{path}: truncated: its pixel data needs {start + length} bytes, the file has "
                         f"{path.stat().st_size}")
    return dataset


def find_series(folder: str | os.PathLike) -> list[Series]:
    """The DICOM series under ``folder`` (recursively), from headers only, largest first.

    Files that are not DICOM (by their preamble or first tag) and DICOMDIR files are passed over.

    Raises:
        DicomError: A DICOM file whose header cannot be read, named.
        DataError: No DICOM file under ``folder``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    groups: dict[str, Series] = {}
    for path in _dicom_files(folder):
        header = _read_header(path)
        if header is None:
            continue
        uid = str(header.SeriesInstanceUID)
        series = groups.setdefault(uid, Series(uid, [], []))
        series.headers.append(header)
        series.paths.append(path)
    if not groups:
        raise DataError(f"{folder}: no DICOM files")
    return sorted(groups.values(), key=lambda s: (-s.frame_count, s.number, s.uid))


def choose_series(series: Sequence[Series], rules: SeriesRules = SeriesRules(), where: str = "") -> Series:
    """The series ``rules`` allow with the most images (ties: the lowest SeriesNumber).

    Raises:
        DataError: None allowed; the message lists each series and why it was passed over.
    """
    candidates = [s for s in series if rules.rejects(s) is None]
    if not candidates:
        reasons = "; ".join(f"{s.describe()}: {rules.rejects(s)}" for s in series)
        raise DataError(f"{where}: no series to read as a volume ({reasons})")
    return min(candidates, key=lambda s: (-s.frame_count, s.number, s.uid))


@dataclasses.dataclass(frozen=True)
class Frame:
    """One 2D image of a series: a single-frame file or one frame of a multi-frame file."""

    path: Path
    index: int | None  # frame number (0-based) in a multi-frame file; None for a single-frame file
    sop_instance_uid: str
    position: np.ndarray  # ImagePositionPatient, mm (LPS)
    orientation: np.ndarray  # ImageOrientationPatient: row then column direction cosines
    pixel_spacing: tuple[float, float]  # (between rows, between columns), mm
    slope: float
    intercept: float
    rows: int
    columns: int


def _group_value(header: Dataset, frame: int, sequence: str, keyword: str):
    """A functional-group attribute of one frame of an enhanced multi-frame file (per-frame, then shared)."""
    for groups, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        items = header.get(groups)
        if items is not None and len(items) > index:
            macro = items[index].get(sequence)
            if macro is not None and len(macro) and keyword in macro[0]:
                return macro[0].get(keyword)
    return header.get(keyword)


def _frames(series: Series, where: str) -> list[Frame]:
    frames = []
    for header, path in zip(series.headers, series.paths):
        if "PixelData" not in header and "FloatPixelData" not in header:
            raise DataError(f"{where}: {series.describe()}: {path.name} holds no pixel data")
        count = int(header.get("NumberOfFrames", 1) or 1)
        multi = "PerFrameFunctionalGroupsSequence" in header
        for index in range(count):
            if multi:
                value = lambda sequence, keyword: _group_value(header, index, sequence, keyword)  # noqa: E731
                position = value("PlanePositionSequence", "ImagePositionPatient")
                orientation = value("PlaneOrientationSequence", "ImageOrientationPatient")
                spacing = value("PixelMeasuresSequence", "PixelSpacing")
                slope = value("PixelValueTransformationSequence", "RescaleSlope")
                intercept = value("PixelValueTransformationSequence", "RescaleIntercept")
            else:
                position, orientation = header.get("ImagePositionPatient"), header.get("ImageOrientationPatient")
                spacing, slope = header.get("PixelSpacing"), header.get("RescaleSlope")
                intercept = header.get("RescaleIntercept")
            if position is None or orientation is None or spacing is None:
                missing = [name for name, v in (("ImagePositionPatient", position), ("ImageOrientationPatient",
                           orientation), ("PixelSpacing", spacing)) if v is None]
                raise DataError(f"{where}: {series.describe()}: {path.name} has no {', '.join(missing)}: "
                                "no place in the patient")
            frames.append(Frame(path, index if multi or count > 1 else None, str(header.get("SOPInstanceUID", "")),
                                np.asarray(position, np.float64), np.asarray(orientation, np.float64),
                                (float(spacing[0]), float(spacing[1])),
                                float(slope) if slope not in (None, "") else 1.0,
                                float(intercept) if intercept not in (None, "") else 0.0,
                                int(header.Rows), int(header.Columns)))
    return frames


@dataclasses.dataclass
class SeriesVolume:
    """A series read as a volume.

    Attributes:
        array: float32 (slices, rows, columns) = (z, y, x), values after the Modality LUT (HU for CT).
        geometry: The grid: (x, y, z) = (columns, rows, slices along the normal).
        series: The series read.
        frames: The images in the volume's slice order (slice k of ``array`` is ``frames[k]``).
    """

    array: np.ndarray
    geometry: "ImageGeometry"
    series: Series
    frames: list[Frame]

    @functools.cached_property
    def image(self) -> sitk.Image:
        """The volume as a SimpleITK image (a copy, made once)."""
        return self.geometry.apply_to(sitk.GetImageFromArray(self.array))


def _sorted_frames(frames: list[Frame], series: Series, where: str) -> tuple[list[Frame], float, np.ndarray]:
    """The frames in slice order, their spacing (mm) and the slice normal; refuses what is no volume."""
    name = f"{where}: {series.describe()}"
    orientations = np.stack([frame.orientation for frame in frames])
    distinct = np.unique(np.round(orientations / ORIENTATION_TOLERANCE / 10).astype(np.int64), axis=0)
    if np.abs(orientations - orientations[0]).max() > ORIENTATION_TOLERANCE:
        raise DataError(f"{name}: slices face {len(distinct)} ways (ImageOrientationPatient differs): mixed "
                        "orientations are no volume")
    for attribute in ("rows", "columns", "pixel_spacing"):
        values = {getattr(frame, attribute) for frame in frames}
        if len(values) > 1:
            raise DataError(f"{name}: slices differ in {attribute.replace('_', ' ')} ({sorted(values)[:4]})")
    row, column = frames[0].orientation[:3], frames[0].orientation[3:]
    normal = np.cross(row, column)
    order = np.argsort([frame.position @ normal for frame in frames], kind="stable")
    frames = [frames[i] for i in order]
    positions = np.stack([frame.position for frame in frames])
    distances = positions @ normal
    if len(frames) < 2:
        raise DataError(f"{name}: one slice is no volume")
    steps = np.diff(distances)
    if steps.min() < POSITION_TOLERANCE:
        at = int(np.argmin(steps))
        where_mm = ", ".join(f"{v:.2f}" for v in positions[at])
        raise DataError(f"{name}: {np.sum(steps < POSITION_TOLERANCE) + 1} or more slices at one position "
                        f"({where_mm} mm): several echoes, phases or acquisitions in one series")
    spacing = float(np.median(steps))
    uneven = np.abs(steps - spacing) > SPACING_TOLERANCE * spacing
    if uneven.any():
        ratio = steps / spacing
        if np.all(np.abs(ratio - np.round(ratio)) < SPACING_TOLERANCE):
            gaps = int(np.sum(np.round(ratio) - 1))
            first = int(np.argmax(uneven))
            raise DataError(f"{name}: {gaps} slice(s) missing: a gap of {steps[first]:.3g} mm after the slice at "
                            f"{distances[first]:.2f} mm where slices are {spacing:.3g} mm apart")
        raise DataError(f"{name}: uneven slice spacing: {steps.min():.3g} to {steps.max():.3g} mm between slices")
    shear = positions - positions[0] - np.outer(distances - distances[0], normal)
    tilt = np.degrees(np.arctan2(np.linalg.norm(shear[-1]), distances[-1] - distances[0]))
    if tilt > TILT_TOLERANCE_DEGREES:
        raise DataError(f"{name}: slices are sheared {tilt:.2f} degrees against their normal (gantry tilt); "
                        "resample it to an orthogonal grid first")
    return frames, spacing, normal


def series_geometry(series: Series, where: str = "") -> tuple[list[Frame], tuple, tuple, tuple, tuple]:
    """A series' slice order and grid from its headers alone: ``(frames, size, spacing, origin, direction)``.

    Size, spacing and origin in SimpleITK's (x, y, z) order (mm); direction row-major, columns the
    row direction, the column direction and the slice normal.
    """
    frames, spacing, normal = _sorted_frames(_frames(series, where), series, where)
    spacing = float(spacing)
    first = frames[0]
    direction = np.stack([first.orientation[:3], first.orientation[3:], normal], axis=1)
    return (frames, (first.columns, first.rows, len(frames)), (first.pixel_spacing[1], first.pixel_spacing[0], spacing),
            tuple(float(v) for v in first.position), tuple(float(v) for v in direction.flatten()))


_NATIVE_SYNTAXES = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}


def _raw_pixels(header: Dataset, path: Path, frames: int) -> np.ndarray | None:
    """The stored pixels of an uncompressed little-endian file, read straight from their offset; None otherwise.

    The header was parsed once already (:func:`find_series`): parsing the whole file again for its
    pixel data cost as much as reading them (0.48 s of 1.1 s for a 200-slice CT).
    """
    meta = getattr(header, "file_meta", None)
    if meta is None or meta.get("TransferSyntaxUID") not in _NATIVE_SYNTAXES or "PixelData" not in header:
        return None
    element = header.get_item("PixelData", keep_deferred=True)  # its offset, not its value
    bits, signed = int(header.get("BitsAllocated", 0)), int(header.get("PixelRepresentation", 0)) == 1
    if bits not in (8, 16, 32) or int(header.get("SamplesPerPixel", 1)) != 1 or \
            getattr(element, "value_tell", None) is None or element.length == 0xFFFFFFFF:
        return None
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    count = frames * int(header.Rows) * int(header.Columns)
    if element.length < count * dtype.itemsize:
        return None
    pixels = np.fromfile(path, dtype, count, offset=element.value_tell)
    stored = int(header.get("BitsStored", bits))
    if signed and stored < bits:  # sign-extend from BitsStored, as pydicom does
        shift = bits - stored
        pixels = (pixels << shift) >> shift
    return pixels.reshape(frames, int(header.Rows), int(header.Columns))


def _pixels(frames: list[Frame], series: Series, where: str) -> np.ndarray:
    """(slices, rows, columns) float32 after each frame's rescale; each file read once."""
    headers = dict(zip(series.paths, series.headers))
    volume = np.empty((len(frames), frames[0].rows, frames[0].columns), np.float32)
    decoded: dict[Path, np.ndarray] = {}
    for k, frame in enumerate(frames):
        if frame.path not in decoded:
            header = headers[frame.path]
            count = int(header.get("NumberOfFrames", 1) or 1)
            try:
                pixels = _raw_pixels(header, frame.path, count)
                if pixels is None:  # compressed, big-endian or unusual: pydicom's decoders
                    pixels = pydicom.dcmread(frame.path, force=True).pixel_array
            except Exception as error:  # a codec missing, truncated pixel data: the file and the reason
                raise DicomError(f"{where}: {frame.path}: cannot decode the pixel data: {first_line(error)}") from None
            decoded = {frame.path: pixels.reshape((count,) + pixels.shape[-2:]) if count > 1 else pixels}
        pixels = decoded[frame.path]
        plane = pixels[frame.index] if frame.index is not None else pixels.reshape(pixels.shape[-2:])
        if plane.shape != volume.shape[1:]:
            raise DataError(f"{where}: {frame.path}: {plane.shape} pixels; a slice must be one grey image")
        if frame.slope != 1.0 or frame.intercept != 0.0:
            np.multiply(plane, np.float32(frame.slope), out=volume[k], casting="unsafe")
            volume[k] += np.float32(frame.intercept)
        else:
            volume[k] = plane
    return volume


def read_series(source: str | os.PathLike | Series, rules: SeriesRules = SeriesRules()) -> SeriesVolume:
    """Reads one series of a folder (chosen by ``rules``) as a float32 volume on its own grid.

    Each file's header is parsed once (pixel data deferred), uncompressed pixels are read straight
    from their offset, and the volume stays a numpy array (a SimpleITK image is made only if asked
    for): a 200-slice 512 x 512 CT takes 0.25 s and 243 MB here, against 0.53 s and 508 MB for
    SimpleITK's ``ImageSeriesReader`` and 2.5 s and 1.5 GB for MONAI's ``LoadImage(PydicomReader)``
    (``benchmarks/dicom_series.py``, 2 cores, medians of 3 rounds).

    Args:
        source: A folder (a series or a study; searched recursively) or a :class:`Series`.
        rules: Which series, where the folder holds several.

    Raises:
        DataError: No series allowed, or one that is no volume (see the module docstring); the
            message names the folder and the series.
        DicomError: A file whose header or pixels cannot be read.
    """
    if isinstance(source, Series):
        series, where = source, str(source.paths[0].parent)
    else:
        where = str(source)
        series = choose_series(find_series(source), rules, where)
    from dltk2.io.image import ImageGeometry

    frames, size, spacing, origin, direction = series_geometry(series, where)
    return SeriesVolume(_pixels(frames, series, where), ImageGeometry(size, spacing, origin, direction), series, frames)
