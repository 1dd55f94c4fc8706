"""DICOM files: pixels as the modality means them, de-identification, and the body part shown.

Pixels: :func:`read_pixels` applies the Modality LUT (RescaleSlope/Intercept) and the VOI LUT (or
window centre/width), inverts MONOCHROME1 so that bright is dense everywhere, and keeps every frame
of a multi-frame file. Compressed transfer syntaxes (JPEG 2000, JPEG-LS, JPEG lossless, RLE) are
decoded by pydicom's pixel-data plugins (pylibjpeg with its openjpeg and libjpeg plugins, or
python-gdcm). A file that is not DICOM, is truncated, has no pixel data or whose codec is missing
raises :class:`DicomError` naming the file, the transfer syntax and the problem.

De-identification (:func:`deidentify`): private tags removed; the direct identifiers of DICOM PS3.15
Annex E's basic profile (names, IDs, dates of birth, addresses, institution, accession number...)
blanked or removed; patient ID and UIDs replaced by stable pseudonyms (the same input and salt give
the same pseudonym, so studies still group by patient).

Body part (:func:`body_part_class`): BodyPartExamined's defined terms (PS3.16 Annex L) mapped to 7
classes, falling back to words of the study and series descriptions.
"""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.dataset import FileMetaDataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dltk2.errors import DataError

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

# PS3.15 Annex E basic profile: attributes removed or emptied (keywords; those pydicom knows).
IDENTIFYING_KEYWORDS = (
    "PatientName", "PatientBirthDate", "PatientBirthTime", "PatientBirthName", "PatientAddress",
    "PatientTelephoneNumbers", "PatientMotherBirthName", "OtherPatientIDs", "OtherPatientNames",
    "OtherPatientIDsSequence", "PatientInsurancePlanCodeSequence", "MilitaryRank", "BranchOfService",
    "MedicalRecordLocator", "EthnicGroup", "Occupation", "AdditionalPatientHistory", "PatientComments",
    "ReferringPhysicianName", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
    "PerformingPhysicianName", "NameOfPhysiciansReadingStudy", "PhysiciansOfRecord", "OperatorsName",
    "RequestingPhysician", "ScheduledPerformingPhysicianName", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber", "AccessionNumber", "StudyID",
    "RequestAttributesSequence", "AdmissionID", "IssuerOfPatientID", "CountryOfResidence", "RegionOfResidence",
    "CurrentPatientLocation", "PatientState", "ResponsiblePerson", "ResponsibleOrganization",
    "PersonName", "ContentCreatorName", "InstanceCreatorUID", "TextComments", "ImageComments",
)
# UIDs replaced by pseudonymous UIDs (2.25.<integer>), so references between files still match.
UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
                "MediaStorageSOPInstanceUID", "ReferencedSOPInstanceUID")


class DicomError(DataError):
    """A DICOM file that cannot be used; the message names the file and the problem."""


def _transfer_syntax(dataset: Dataset) -> str:
    meta = getattr(dataset, "file_meta", None)
    uid = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if uid is None:
        return "unknown transfer syntax"
    return f"{uid.name} ({uid})"


def read_dataset(path: str | Path, stop_before_pixels: bool = False) -> Dataset:
    """Reads a DICOM file (a Part 10 file, or a bare dataset that pydicom can still read).

    Raises:
        DicomError: Missing, not DICOM, or truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise DicomError(f"{path}: no such file")
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
    except (EOFError, OSError, ValueError, KeyError, TypeError, AttributeError, NotImplementedError) as error:
        raise DicomError(f"{path}: unreadable or truncated DICOM ({type(error).__name__}: {error})") from None
    meta = dataset.file_meta if hasattr(dataset, "file_meta") else FileMetaDataset()
    if "TransferSyntaxUID" not in meta:  # no file meta: the encoding the file was read with
        implicit, little = getattr(dataset, "original_encoding", (True, True))
        meta.TransferSyntaxUID = {(True, True): ImplicitVRLittleEndian, (False, True): ExplicitVRLittleEndian,
                                  (False, False): ExplicitVRBigEndian}.get((implicit, little), ImplicitVRLittleEndian)
        dataset.file_meta = meta
    if len(dataset) == 0:
        raise DicomError(f"{path}: truncated DICOM (no data elements after the file meta, {_transfer_syntax(dataset)})")
    return dataset


def read_pixels(dataset: Dataset, path: str | Path = "<dataset>", apply_voi: bool = True) -> np.ndarray:
    """The image as the modality means it, float32, bright = dense.

    Args:
        dataset: A dataset read with its pixel data.
        path: The file, for error messages.
        apply_voi: Apply the VOI LUT or window centre/width (the display window).

    Returns:
        (rows, columns) or, multi-frame, (frames, rows, columns); colour images (RGB, YBR, and palette
        colour through its lookup table) keep a last axis of 3.

    Raises:
        DicomError: No pixel data, a missing codec or a pixel data element too short.
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
    except (ValueError, EOFError, OSError, KeyError, AttributeError, TypeError) as error:
        raise DicomError(f"{path}: pixel data unreadable or truncated ({_transfer_syntax(dataset)}): "
                         f"{str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}"
                         ) from None
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric.startswith("MONOCHROME"):
        values = apply_modality_lut(pixels, dataset)
        if apply_voi and ("VOILUTSequence" in dataset or "WindowCenter" in dataset):
            values = apply_voi_lut(values, dataset)
        values = np.asarray(values, np.float32)
        if photometric == "MONOCHROME1":
            values = values.max() + values.min() - values
        return values
    if photometric == "PALETTE COLOR":
        return np.asarray(apply_color_lut(pixels, dataset), np.float32)
    return np.asarray(pixels, np.float32)


def to_unsigned(image: np.ndarray, bits: int = 8) -> np.ndarray:
    """Scales an image's range linearly onto uint8 (``bits=8``) or uint16 (``bits=16``); constant -> 0."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    image = np.asarray(image, np.float64)
    low, high = float(np.min(image)), float(np.max(image))
    top = 2 ** bits - 1
    scaled = np.zeros_like(image) if high <= low else (image - low) / (high - low) * top
    return np.round(scaled).astype(np.uint8 if bits == 8 else np.uint16)


def pseudonym(value: str, salt: str, length: int = 16) -> str:
    """A stable pseudonym: the first ``length`` hex digits of SHA-256(salt + value)."""
    return hashlib.sha256(f"{salt}\x00{value}".encode()).hexdigest()[:length]


def pseudonymous_uid(uid: str, salt: str) -> str:
    """A valid DICOM UID (``2.25.<integer>``, at most 64 characters) derived from ``uid`` and ``salt``."""
    return "2.25." + str(int(hashlib.sha256(f"{salt}\x00{uid}".encode()).hexdigest()[:30], 16))


def deidentify(dataset: Dataset, salt: str) -> Dataset:
    """A de-identified copy: PS3.15 basic-profile identifiers removed, private tags removed, IDs pseudonymised.

    PatientID becomes :func:`pseudonym` of itself; UIDs become :func:`pseudonymous_uid`; everything in
    :data:`IDENTIFYING_KEYWORDS` is removed (in sequences too). PatientIdentityRemoved is set to YES and
    DeidentificationMethod says what was done. The pixel data are left as they are (burnt-in text is
    not detected).
    """
    result = _deidentify_in_place(copy.deepcopy(dataset), salt)
    result.PatientIdentityRemoved = "YES"
    result.DeidentificationMethod = "PS3.15 basic profile; no private tags; pseudonyms"
    return result


def _deidentify_in_place(dataset: Dataset, salt: str) -> Dataset:
    dataset.remove_private_tags()
    for keyword in IDENTIFYING_KEYWORDS:
        if keyword in dataset:
            delattr(dataset, keyword)
    if "PatientID" in dataset:
        dataset.PatientID = pseudonym(str(dataset.PatientID), salt)
    for keyword in UID_KEYWORDS:
        if keyword in dataset and dataset.get(keyword):
            setattr(dataset, keyword, pseudonymous_uid(str(dataset.get(keyword)), salt))
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                _deidentify_in_place(item, salt)
    meta = getattr(dataset, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = pseudonymous_uid(str(meta.MediaStorageSOPInstanceUID), salt)
    return dataset


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
