"""De-identification by DICOM PS3.15's Basic Application Level Confidentiality Profile.

:func:`deidentify` applies Table E.1-1 (:mod:`dltk2.io.confidentiality_profile`) to every attribute,
in sequences too:

* ``X`` removed, ``Z`` emptied, ``D`` a dummy of the attribute's VR, ``U`` a pseudonymous UID
  (``2.25.<integer>`` from SHA-256 of salt and UID: the same UID gives the same pseudonym, so
  references between instances still match); ``X/Z``, ``X/D``, ``X/Z/D`` remove, ``Z/D`` empties;
  ``X/Z/U*`` (referenced and source image sequences) keeps the sequence with its UIDs replaced.
* Private attributes, curves (50xx) and overlays' data and comments (60xx) are removed.
* Beyond the table, so that nothing it does not list slips through: every other person name (VR PN)
  is removed, and every other date and time (DA, DT, TM) is treated as the table treats dates.
* Patient ID becomes a salted pseudonym (a dummy value, as ``Z`` allows), so that images still group
  by patient for splitting.

Dates (``dates``):

* ``"shift"`` (default), the Retain Longitudinal Temporal Information with Modified Dates Option:
  every date moves back by the same number of days for one patient (365 to 3652, from the salt and
  the patient ID), so intervals within a patient are kept and calendar dates are not. Times are kept.
* ``"keep"``, the Full Dates Option: dates and times kept.
* ``"remove"``, the Basic Profile alone: dates and times removed or emptied.

Patient's Birth Date is emptied in every mode (the table has no option that keeps it); age, sex,
size and weight are removed unless ``patient_characteristics`` (the Retain Patient Characteristics
Option). What remains: the pixel data (burnt-in text is not detected), modality, body part
examined, manufacturer and model, the image's geometry and acquisition parameters, SOP class and
transfer syntax. PatientIdentityRemoved is ``YES``, and DeidentificationMethod and its code sequence
(CID 7050) name the profile and options applied.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import hmac

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dltk2.io.confidentiality_profile import entry_for

DATE_MODES = ("shift", "keep", "remove")
_DUMMY = {"PN": "ANONYMIZED", "DA": "19000101", "TM": "000000", "DT": "19000101000000", "AS": "000Y",
          "DS": "0", "IS": "0", "FL": 0.0, "FD": 0.0, "SL": 0, "SS": 0, "UL": 0, "US": 0}
_CODES = {  # CID 7050 De-identification Method
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "keep": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "shift": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "patient": ("113108", "Retain Patient Characteristics Option"),
}


def pseudonym(value: str, salt: str, length: int = 16) -> str:
    """A stable pseudonym: the first ``length`` hex digits of SHA-256(salt, value)."""
    return hashlib.sha256(f"{salt}\x00{value}".encode()).hexdigest()[:length]


def pseudonymous_uid(uid: str, salt: str) -> str:
    """A valid DICOM UID (``2.25.<integer>``, at most 64 characters) derived from ``uid`` and ``salt``."""
    return "2.25." + str(int(hashlib.sha256(f"{salt}\x00{uid}".encode()).hexdigest()[:30], 16))


def date_shift_days(patient_id: str, salt: str) -> int:
    """Days every date of this patient moves back: 365 to 3652, fixed by the salt and the patient ID."""
    digest = hmac.new(salt.encode(), f"date shift\x00{patient_id}".encode(), hashlib.sha256).digest()
    return 365 + int.from_bytes(digest[:4], "big") % (3652 - 365 + 1)


def _shift_date(value: str, days: int) -> str:
    """A DA (``YYYYMMDD``) or the date part of a DT moved back ``days``; anything shorter is emptied."""
    text = str(value).strip()
    if len(text) < 8 or not text[:8].isdigit():
        return ""
    try:
        shifted = datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8])) - datetime.timedelta(days=days)
    except ValueError:
        return ""
    return shifted.strftime("%Y%m%d") + text[8:]


class _Context:
    def __init__(self, salt: str, dates: str, patient_characteristics: bool, shift: int) -> None:
        self.salt = salt
        self.dates = dates
        self.shift = shift
        options = {"shift": {"M"}, "keep": {"F"}, "remove": set()}[dates]
        if patient_characteristics:
            options.add("P")
        self.options = frozenset(options)
        # Items already cleaned: one item object may sit in two sequences (highdicom's SEG shares its
        # referenced-instance items), and cleaning it twice would hash its UIDs twice.
        self.cleaned: set[int] = set()


def _action(element: DataElement, context: _Context) -> str:
    tag = element.tag
    if tag.is_private:
        return "X"
    entry = entry_for(tag.group, tag.element)
    if entry is not None:
        action = entry.action(context.options)
        return "X" if action == "C" and element.VR not in ("DA", "DT", "TM") else action
    if element.VR == "PN":
        return "X"
    if element.VR in ("DA", "DT", "TM"):  # dates the table does not list, treated as it treats dates
        return {"shift": "C", "keep": "K", "remove": "X"}[context.dates]
    return "K"


def _dummy(element: DataElement):
    return _DUMMY.get(element.VR, "ANONYMIZED" if element.VR in ("LO", "SH", "CS", "LT", "ST", "UT", "UC") else None)


def _clean(dataset: Dataset, context: _Context) -> None:
    if id(dataset) in context.cleaned:
        return
    context.cleaned.add(id(dataset))
    for element in list(dataset):
        action = _action(element, context)
        if action in ("X", "X/Z", "X/D", "X/Z/D"):
            del dataset[element.tag]
        elif action in ("Z", "Z/D"):
            element.value = Sequence() if element.VR == "SQ" else None
        elif action == "U" and element.VR == "UI":
            values = element.value if element.VM > 1 else [element.value]
            replaced = [pseudonymous_uid(str(uid), context.salt) for uid in values if uid]
            element.value = replaced if element.VM > 1 else (replaced[0] if replaced else "")
        elif action == "C" and element.VR in ("DA", "DT"):
            values = element.value if element.VM > 1 else [element.value]
            shifted = [_shift_date(value, context.shift) for value in values]
            element.value = shifted if element.VM > 1 else shifted[0]
        elif action == "D" and element.VR != "SQ":
            dummy = _dummy(element)
            if dummy is None:
                del dataset[element.tag]
            else:
                element.value = dummy
        if element.tag in dataset and element.VR == "SQ" and element.value:
            for item in element.value:  # K, D, C and X/Z/U*: the items are cleaned by the same rules
                _clean(item, context)


def deidentify(dataset: Dataset, salt: str, dates: str = "shift", patient_characteristics: bool = False) -> Dataset:
    """A copy of ``dataset`` de-identified by the Basic Profile (see the module docstring).

    Args:
        dataset: The dataset (not changed).
        salt: The secret that makes UIDs, the patient pseudonym and the date shift unguessable; keep
            it apart from the data (:mod:`dltk2.datasets.dicom_database` keeps it in a key file).
        dates: ``"shift"``, ``"keep"`` or ``"remove"``.
        patient_characteristics: Keep age, sex, size, weight and the like.

    Returns:
        The de-identified copy, file meta included (its instance UID replaced as the dataset's).
    """
    if dates not in DATE_MODES:
        raise ValueError(f"dates must be one of {DATE_MODES}, got {dates!r}")
    patient_id = str(dataset.get("PatientID", "") or "")
    context = _Context(salt, dates, patient_characteristics, date_shift_days(patient_id, salt))
    result = copy.deepcopy(dataset)
    _clean(result, context)
    result.PatientID = pseudonym(patient_id, salt) if patient_id else ""
    result.PatientIdentityRemoved = "YES"
    applied = ["basic"] + ([dates] if dates in ("keep", "shift") else []) + (["patient"] if patient_characteristics else [])
    result.DeidentificationMethod = [_CODES[name][1] for name in applied]  # LO: 64 characters a value
    codes = []
    for name in applied:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = _CODES[name][0], "DCM", _CODES[name][1]
        codes.append(item)
    result.DeidentificationMethodCodeSequence = Sequence(codes)
    result.LongitudinalTemporalInformationModified = {"shift": "MODIFIED", "keep": "UNMODIFIED",
                                                      "remove": "REMOVED"}[dates]
    meta = getattr(result, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = pseudonymous_uid(str(meta.MediaStorageSOPInstanceUID), salt)
    return result
