"""DICOM files: pixels as the modality means them, de-identification, and the body part shown.

Pixels: :func:`read_pixels` applies the Modality LUT (RescaleSlope/Intercept) and the VOI LUT (or
window centre/width), inverts MONOCHROME1 so that bright is dense everywhere, and keeps every frame
of a multi-frame file. Compressed transfer syntaxes (JPEG 2000, JPEG-LS, JPEG lossless, RLE) are
decoded by pydicom's pixel-data plugins (pylibjpeg with its openjpeg and libjpeg plugins, or
python-gdcm). A file that is not DICOM, is truncated, has no pixel data or whose codec is missing
raises :class:`DicomError` naming the file, the transfer syntax and the problem.

De-identification (:func:`deidentify`, from :mod:`dltk2.io.deidentification`): DICOM PS3.15's
Basic Application Level Confidentiality Profile as its Table E.1-1 lists it, dates shifted per patient
by default; patient ID and UIDs replaced by stable salted pseudonyms (studies still group by patient).

Body part (:func:`body_part_class`): BodyPartExamined's defined terms (PS3.16 Annex L) mapped to 7
classes, falling back to words of the study and series descriptions.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.dataset import FileMetaDataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dltk2.errors import DataError, first_line
from dltk2.io.deidentification import deidentify, pseudonym, pseudonymous_uid  # noqa: F401  (part of this API)

BODY_PART_CLASSES = ("none", "Skull", "Spine", "Chest", "Breast", "Abdomen", "Musculoskeletal")

# BodyPartExamined defined terms (DICOM PS3.16 Annex L, and common vendor spellings) -> class.
BODY_PART_TERMS = {
    "Skull": ("SKULL", "HEAD", "BRAIN", "HEADNECK", "FACE", "JAW", "TMJ", "SINUS", "ORBIT", "EAR", "NOSE",
              "IAC", "MANDIBLE", "MAXILLA", "CEREBRUM", "CEREBELLUM", "PITUITARY", "ZYGOMA"),
    "Spine": ("SPINE", "CSPINE", "TSPINE", "LSPINE", "SSPINE", "CTSPINE", "TLSPINE", "LSSPINE", "WHOLESPINE",
              "COCCYX", "SACRUM", "CERVICALSPINE", "THORACICSPINE", "LUMBARSPINE", "VERTEBRA"),
    "Chest": ("CHEST", "THORAX", "LUNG", "HEART", "RIB", "RIBS", "STERNUM", "MEDIASTINUM", "CHESTABDOMEN",
              "CHEST_TO_PELVIS", "CHESTABDPELVIS", "AORTA", "CORONARYARTERY", "ESOPHAGUS"),
    "Breast": ("BREAST", "MAMMA", "MAMMO", "AXILLA"),
    "Abdomen": ("ABDOMEN", "PELVIS", "ABDOMENPELVIS", "ABDPELVIS", "LIVER", "KIDNEY", "PANCREAS", "SPLEEN",
                "STOMACH", "BLADDER", "COLON", "GALLBLADDER", "RECTUM", "UTERUS", "PROSTATE", "BOWEL",
                "ADRENAL", "DUODENUM", "ILEUM", "JEJUNUM", "KUB"),
    "Musculoskeletal": ("EXTREMITY", "UPRLIMB", "UPPER_LIMB", "LOWRLIMB", "LOWER_LIMB", "SHOULDER", "CLAVICLE",
                        "SCAPULA", "ARM", "HUMERUS", "ELBOW", "FOREARM", "RADIUS", "ULNA", "WRIST", "HAND",
                        "FINGER", "THUMB", "HIP", "FEMUR", "THIGH", "KNEE", "PATELLA", "LEG", "TIBIA",
                        "FIBULA", "ANKLE", "FOOT", "TOE", "HEEL", "CALCANEUS", "JOINT", "BONE", "SKELETON"),
}
_TERM_TO_CLASS = {term: name for name, terms in BODY_PART_TERMS.items() for term in terms}

class DicomError(DataError):
    """A DICOM file that cannot be used; the message names the file and the problem."""


def _transfer_syntax(dataset: Dataset) -> str:
    meta = getattr(dataset, "file_meta", None)
    uid = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if uid is None:
        return "unknown transfer syntax"
    return f"{uid.name} ({uid})"


_VRS = frozenset(b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR "
                 b"US UT UV".split())


def looks_like_dicom(head: bytes) -> bool:
    """Whether a file's first bytes are DICOM: ``DICM`` after the 128-byte preamble, or a bare dataset.

    A bare dataset (an old ACR-NEMA-style file, no preamble) must start with a data element of group
    0x0002 or 0x0008, little- or big-endian, followed by a known VR (explicit) or a plausible length
    (implicit). Anything else is not DICOM, and no forced parse is tried: pydicom's forced read of a
    non-DICOM file cost about 0.7 s per MB, and an ingest folder holds reports, images, archives.

    Args:
        head: At least the file's first 132 bytes (fewer for a shorter file).
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    for endian in "<>":
        group = struct.unpack(endian + "H", head[:2])[0]
        if group not in (0x0002, 0x0008):
            continue
        if head[4:6] in _VRS:
            return True
        if struct.unpack(endian + "I", head[4:8])[0] < 1 << 24:
            return True
    return False


def read_dataset(path: str | Path, stop_before_pixels: bool = False) -> Dataset:
    """Reads a DICOM file (a Part 10 file, or a bare dataset that pydicom can still read).

    Raises:
        DicomError: Missing, not DICOM (checked on the first bytes, see :func:`looks_like_dicom`),
            truncated or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise DicomError(f"{path}: no such file")
    try:
        with open(path, "rb") as stream:
            head = stream.read(132)
    except OSError as error:
        raise DicomError(f"{path}: unreadable ({first_line(error)})") from None
    if not looks_like_dicom(head):
        raise DicomError(f"{path}: not a DICOM file (no DICM prefix, and it does not start with a data element)")
    try:
        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
        except InvalidDicomError:
            # No preamble or file meta: old ACR-NEMA-style files are still DICOM if they say what they are.
            dataset = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True)
            if "SOPClassUID" not in dataset and "PixelData" not in dataset:
                raise DicomError(f"{path}: not a DICOM file (no DICM prefix, no SOP class)") from None
    except DicomError:
        raise
    except Exception as error:  # pydicom raises many types for malformed files; each is this file's fault
        raise DicomError(f"{path}: unreadable or truncated DICOM ({type(error).__name__}: {first_line(error)})"
                         ) from None
    meta = dataset.file_meta if hasattr(dataset, "file_meta") else FileMetaDataset()
    if "TransferSyntaxUID" not in meta:  # no file meta: the encoding the file was read with
        implicit, little = getattr(dataset, "original_encoding", (True, True))
        meta.TransferSyntaxUID = {(True, True): ImplicitVRLittleEndian, (False, True): ExplicitVRLittleEndian,
                                  (False, False): ExplicitVRBigEndian}.get((implicit, little), ImplicitVRLittleEndian)
        dataset.file_meta = meta
    if len(dataset) == 0:
        raise DicomError(f"{path}: truncated DICOM (no data elements after the file meta, {_transfer_syntax(dataset)})")
    return dataset


def _number(dataset: Dataset, keyword: str, path) -> float | None:
    """A numeric attribute (its first value), None if absent; DicomError if it is not a finite number."""
    if keyword not in dataset:
        return None
    try:
        value = dataset[keyword].value
        if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
            value = value[0] if len(value) else None
        number = None if value is None or value == "" else float(value)
    except (ValueError, TypeError, IndexError, OverflowError) as error:
        raise DicomError(f"{path}: {keyword} is not a number ({first_line(error)})") from None
    if number is not None and not np.isfinite(number):
        raise DicomError(f"{path}: {keyword} is {number} (not a finite number)")
    return number


def _check_pixel_transforms(dataset: Dataset, path, apply_voi: bool) -> None:
    """Refuses the modality and VOI attributes that would turn pixels into nonsense or NaN, by name."""
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        _number(dataset, keyword, path)
    if "ModalityLUTSequence" in dataset and dataset.ModalityLUTSequence:
        item = dataset.ModalityLUTSequence[0]
        if "LUTDescriptor" not in item or "LUTData" not in item:
            raise DicomError(f"{path}: Modality LUT Sequence without its LUT Descriptor or LUT Data")
    if apply_voi and "WindowCenter" in dataset and "VOILUTSequence" not in dataset:
        _number(dataset, "WindowCenter", path)
        width = _number(dataset, "WindowWidth", path)
        function = str(dataset.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
            raise DicomError(f"{path}: VOI LUT Function {function!r} is not LINEAR, LINEAR_EXACT or SIGMOID")
        if width is None or width <= 0 or (function == "LINEAR" and width < 1):
            raise DicomError(f"{path}: Window Width {width} (must be >= 1, or > 0 for LINEAR_EXACT)")
    if apply_voi and "VOILUTSequence" in dataset and dataset.VOILUTSequence:
        item = dataset.VOILUTSequence[0]
        if "LUTDescriptor" not in item or "LUTData" not in item:
            raise DicomError(f"{path}: VOI LUT Sequence without its LUT Descriptor or LUT Data")


def read_pixels(dataset: Dataset, path: str | Path = "<dataset>", apply_voi: bool = True) -> np.ndarray:
    """The image as the modality means it, float32, bright = dense.

    Args:
        dataset: A dataset read with its pixel data.
        path: The file, for error messages.
        apply_voi: Apply the VOI LUT or window centre/width (the display window).

    Returns:
        (rows, columns) or, multi-frame, (frames, rows, columns); colour images (RGB, YBR, and palette
        colour through its lookup table) keep a last axis of 3. Every value is finite.

    Raises:
        DicomError: No pixel data, a missing codec, a pixel data element too short, or pixel
            transformations that cannot be applied: a rescale slope or window that is not a finite
            number, a window width below 1, an unknown VOI LUT function, a LUT sequence without its
            descriptor, palette colour without its lookup table, or non-finite results.
    """
    if not any(keyword in dataset for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise DicomError(f"{path}: has no pixel data (SOP class {dataset.get('SOPClassUID', 'unknown')}, "
                         f"{_transfer_syntax(dataset)})")
    try:
        pixels = dataset.pixel_array
    except (RuntimeError, NotImplementedError, ImportError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DicomError(f"{path}: cannot decode {_transfer_syntax(dataset)}: {first} (install pylibjpeg with "
                         f"pylibjpeg-openjpeg and pylibjpeg-libjpeg, or python-gdcm)") from None
    except Exception as error:  # ValueError, EOFError, KeyError...: the file's pixel data, not a bug
        raise DicomError(f"{path}: pixel data unreadable or truncated ({_transfer_syntax(dataset)}): "
                         f"{first_line(error)}") from None
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    try:
        if photometric.startswith("MONOCHROME"):
            _check_pixel_transforms(dataset, path, apply_voi)
            values = apply_modality_lut(pixels, dataset)
            if apply_voi and ("VOILUTSequence" in dataset or "WindowCenter" in dataset):
                values = apply_voi_lut(values, dataset)
            values = np.asarray(values, np.float32)
            if photometric == "MONOCHROME1":
                values = values.max() + values.min() - values
        elif photometric == "PALETTE COLOR":
            values = np.asarray(apply_color_lut(pixels, dataset), np.float32)
        else:
            values = np.asarray(pixels, np.float32)
    except DicomError:
        raise
    except Exception as error:  # pydicom's LUT functions raise ValueError, KeyError, AttributeError...
        raise DicomError(f"{path}: cannot apply its {photometric} pixel transformations ({type(error).__name__}: "
                         f"{first_line(error)})") from None
    finite = np.isfinite(values)
    if not finite.all():
        raise DicomError(f"{path}: {int(values.size - np.count_nonzero(finite))} of {values.size} pixel values are "
                         "NaN or infinite after the modality and VOI transformations")
    return values


def to_unsigned(image: np.ndarray, bits: int = 8) -> np.ndarray:
    """Scales an image's range linearly onto uint8 (``bits=8``) or uint16 (``bits=16``); constant -> 0."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    image = np.asarray(image, np.float64)
    low, high = float(np.min(image)), float(np.max(image))
    top = 2 ** bits - 1
    scaled = np.zeros_like(image) if high <= low else (image - low) / (high - low) * top
    return np.round(scaled).astype(np.uint8 if bits == 8 else np.uint16)


PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def remove_pixel_data(dataset: Dataset) -> Dataset:
    """Deletes pixel data in place, in sequences too (icon images); returns the dataset."""
    for keyword in PIXEL_KEYWORDS:
        if keyword in dataset:
            delattr(dataset, keyword)
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                remove_pixel_data(item)
    return dataset


def _words(text: str) -> list[str]:
    return [word for word in re.split(r"[^A-Z]+", text.upper()) if word]


def body_part_class(dataset: Dataset) -> str:
    """One of :data:`BODY_PART_CLASSES` for a dataset (header only).

    BodyPartExamined first (its defined term, spaces and underscores ignored); failing that, the words
    of StudyDescription, SeriesDescription and ProtocolName, in that order; ``"none"`` if nothing
    matches.
    """
    body_part = str(dataset.get("BodyPartExamined", "") or "").upper()
    for candidate in (body_part.replace(" ", ""), body_part.replace(" ", "").replace("_", "")):
        if candidate in _TERM_TO_CLASS:
            return _TERM_TO_CLASS[candidate]
    for keyword in ("BodyPartExamined", "StudyDescription", "SeriesDescription", "ProtocolName"):
        for word in _words(str(dataset.get(keyword, "") or "")):
            if word in _TERM_TO_CLASS:
                return _TERM_TO_CLASS[word]
    return "none"


def header_summary(dataset: Dataset) -> dict[str, Any]:
    """The header fields the database keeps: UIDs, modality, body part and its class, patient ID."""
    return {
        "sop_instance_uid": str(dataset.get("SOPInstanceUID", "") or ""),
        "study_instance_uid": str(dataset.get("StudyInstanceUID", "") or ""),
        "series_instance_uid": str(dataset.get("SeriesInstanceUID", "") or ""),
        "modality": str(dataset.get("Modality", "") or ""),
        "body_part_examined": str(dataset.get("BodyPartExamined", "") or ""),
        "body_part": body_part_class(dataset),
        "patient_id": str(dataset.get("PatientID", "") or ""),
        "transfer_syntax": _transfer_syntax(dataset),
    }
