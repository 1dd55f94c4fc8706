"""Tests of dltk2.io.deidentification: PS3.15's Basic Profile, checked against an independent table."""

import datetime

import pydicom
import pytest
from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from pydicom.data import get_testdata_file

import make_synthetic_dicom_bodypart as synthetic
from dltk2.io.confidentiality_profile import PROFILE, entry_for
from dltk2.io.deidentification import date_shift_days, deidentify, pseudonym, pseudonymous_uid


def reference_table():
    """Tag -> Basic Profile action from dicom-anonymizer's copy of Table E.1-1 (2026c edition)."""
    table = {}
    for category, tags in dicom_anonymization_database_selector("dicomfields_2026c").items():
        if category == "ALL_TAGS":
            continue
        action = category[: -len("_TAGS")].replace("_", "/").replace("U/STAR", "U*")
        for tag in tags:
            if isinstance(tag, tuple) and len(tag) == 2:
                table[f"{tag[0]:04x}{tag[1]:04x}"] = action
    return table


def test_the_table_agrees_with_an_independent_copy_of_e_1_1_row_for_row():
    reference = reference_table()
    ours = {tag: entry.basic for tag, entry in PROFILE.items() if "x" not in tag}
    assert len(ours) > 600
    assert {tag: action for tag, action in ours.items() if reference.get(tag) != action} == {}
    assert set(reference) - set(ours) == set()
    assert entry_for(0x5002, 0x3000).basic == "X" and entry_for(0x6000, 0x3000).basic == "X"  # curves, overlays


@pytest.fixture(scope="module")
def header(tmp_path_factory):
    """A synthetic radiograph's header with what a RIS leaves in it, plus nested references."""
    folder = synthetic.make_dataset(tmp_path_factory.mktemp("dicom"), num_images=1, seed=4, size=16)
    dataset = pydicom.dcmread(next(folder.rglob("*.dcm")))
    referenced = pydicom.Dataset()
    referenced.ReferencedSOPClassUID = dataset.SOPClassUID
    referenced.ReferencedSOPInstanceUID = "1.2.3.4.5"
    dataset.ReferencedImageSequence = [referenced]
    requested = pydicom.Dataset()
    requested.RequestedProcedureID = "RP-NESTED"
    requested.ScheduledProcedureStepID = "SPS-1"
    dataset.RequestAttributesSequence = [requested]
    dataset.InstanceCreationDate = "20240102"
    dataset.BodyPartExamined = "CHEST"
    return dataset


def test_everything_the_issue_found_is_gone(header):
    clean = deidentify(header, "salt")
    for keyword in ("ConsultingPhysicianName", "NamesOfIntendedRecipientsOfResults", "OperatorsName",
                    "ReferringPhysicianName", "PlacerOrderNumberImagingServiceRequest", "RequestedProcedureID",
                    "MedicalAlerts", "PatientReligiousPreference", "PatientAge", "PatientBirthDate", "PatientName",
                    "AccessionNumber", "InstitutionName", "StationName", "DeviceSerialNumber", "StudyDescription",
                    "RequestAttributesSequence"):
        assert not clean.get(keyword), keyword
    assert not any(element.tag.is_private for element in clean.iterall())
    assert not [element for element in clean.iterall() if element.VR == "PN" and element.value]
    assert "PatientName" in clean and "PatientBirthDate" in clean  # Z: present and empty (type 2)
    assert clean.BodyPartExamined == header.BodyPartExamined and clean.Modality == header.Modality
    assert clean.PixelData == header.PixelData and clean.SOPClassUID == header.SOPClassUID


def test_uids_are_replaced_consistently_in_sequences_and_file_meta(header):
    clean = deidentify(header, "salt")
    assert clean.SOPInstanceUID == pseudonymous_uid(header.SOPInstanceUID, "salt") != header.SOPInstanceUID
    assert clean.file_meta.MediaStorageSOPInstanceUID == clean.SOPInstanceUID
    assert clean.ReferencedImageSequence[0].ReferencedSOPInstanceUID == pseudonymous_uid("1.2.3.4.5", "salt")
    assert clean.ReferencedImageSequence[0].ReferencedSOPClassUID == header.SOPClassUID  # a class, kept
    assert clean.PatientID == pseudonym(header.PatientID, "salt")
    assert deidentify(header, "other").SOPInstanceUID != clean.SOPInstanceUID


def day(text):
    return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def test_dates_shift_by_one_patients_offset_or_stay_or_go(header):
    shift = date_shift_days(header.PatientID, "salt")
    assert 365 <= shift <= 3652 and shift == date_shift_days(header.PatientID, "salt")
    shifted = deidentify(header, "salt", dates="shift")
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "InstanceCreationDate"):  # the last: not listed
        assert (day(header.get(keyword)) - day(shifted.get(keyword))).days == shift, keyword
    assert shifted.StudyTime == header.StudyTime and shifted.LongitudinalTemporalInformationModified == "MODIFIED"
    assert not shifted.PatientBirthDate  # no option keeps it
    kept = deidentify(header, "salt", dates="keep")
    assert kept.StudyDate == header.StudyDate and kept.InstanceCreationDate == header.InstanceCreationDate
    removed = deidentify(header, "salt", dates="remove")
    assert not [e for e in removed.iterall() if e.VR in ("DA", "DT", "TM") and e.value]
    codes = [item.CodeValue for item in shifted.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113107"] and shifted.PatientIdentityRemoved == "YES"
    assert all(len(value) <= 64 for value in shifted.DeidentificationMethod)


def test_patient_characteristics_are_kept_only_on_request(header):
    assert not deidentify(header, "salt").get("PatientSex")
    kept = deidentify(header, "salt", patient_characteristics=True)
    assert kept.PatientSex == header.PatientSex and kept.PatientAge == header.PatientAge


def test_overlays_and_private_tags_of_a_real_file_are_removed():
    dataset = pydicom.dcmread(get_testdata_file("MR-SIEMENS-DICOM-WithOverlays.dcm"))
    overlay_data = (0x6000, 0x3000)
    assert overlay_data in dataset and any(element.tag.is_private for element in dataset)
    clean = deidentify(dataset, "s")
    assert overlay_data not in clean and not any(element.tag.is_private for element in clean)
    assert dataset.PatientName  # the original is untouched


def test_the_result_is_still_a_valid_file(header, tmp_path):
    path = tmp_path / "clean.dcm"
    deidentify(header, "salt").save_as(path, enforce_file_format=True)
    again = pydicom.dcmread(path)
    assert again.pixel_array.shape == header.pixel_array.shape


def test_unknown_date_mode_is_refused(header):
    with pytest.raises(ValueError, match="dates must be one of"):
        deidentify(header, "salt", dates="blur")


def test_an_item_shared_by_two_sequences_is_cleaned_once():
    """highdicom's SEG puts one referenced-instance item in two places: its UID is hashed once, not twice."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3.4"
    dataset = Dataset()
    dataset.PatientID = "P1"
    dataset.ReferencedImageSequence = Sequence([item])
    dataset.SourceImageSequence = Sequence([item])
    cleaned = deidentify(dataset, "salt")
    expected = pseudonymous_uid("1.2.3.4", "salt")
    assert cleaned.ReferencedImageSequence[0].ReferencedSOPInstanceUID == expected
    assert cleaned.SourceImageSequence[0].ReferencedSOPInstanceUID == expected
