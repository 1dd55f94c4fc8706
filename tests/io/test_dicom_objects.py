"""Tests of dltk2.io.dicom_objects: SEG and SR validated by dciodvfy and read back with highdicom."""

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

import make_dicom_series
from helpers import assert_valid_dicom
from dltk2.io.deidentification import deidentify
from dltk2.io.dicom_objects import (AGE, FEMALE, ORGAN_CODES, SEX, Finding, ModelIdentity, source_datasets,
                                    write_finding_report, write_segmentation)
from dltk2.io.dicom_series import read_series

NAMES = {number: name.replace(" ", "_") for number, name in enumerate(ORGAN_CODES, start=1)}  # as synapse.ORGANS
MODEL = ModelIdentity("synapse_ct_seg", "3", "synapse_model_folder_" + "x" * 60)  # a source longer than LO's 64


@pytest.fixture
def series(rng, tmp_path):
    """A CT phantom series on an oblique grid, files in random order, and labels of two organs on it."""
    image = sitk.GetImageFromArray(rng.integers(-1000, 400, (10, 24, 20)).astype(np.float32))
    image.SetSpacing((0.8, 0.7, 2.5))
    image.SetOrigin((-10.0, -20.0, 30.0))
    angle = np.deg2rad(12.0)
    image.SetDirection([np.cos(angle), -np.sin(angle), 0, np.sin(angle), np.cos(angle), 0, 0, 0, 1])
    make_dicom_series.write_series(image, tmp_path / "ct", seed=1)
    labels = np.zeros((10, 24, 20), np.uint8)
    labels[2:6, 5:15, 4:12] = 6  # liver
    labels[3:8, 10:20, 12:18] = 2  # right kidney
    return read_series(tmp_path / "ct"), labels


def test_a_seg_validates_overlays_its_source_slices_and_holds_the_labels(series, tmp_path):
    volume, labels = series
    path = write_segmentation(labels, volume, NAMES, tmp_path / "seg.dcm", MODEL)
    assert_valid_dicom(path)
    seg = hd.seg.segread(path)
    assert seg.get_segment_numbers() == list(range(1, 14))
    sources = source_datasets(volume)
    uids = [str(ds.SOPInstanceUID) for ds in sources]
    assert {uid for _, _, uid in seg.get_source_image_uids()} == set(uids)
    read_back = seg.get_pixels_by_source_instance(uids, combine_segments=True, skip_overlap_checks=True)
    np.testing.assert_array_equal(read_back, labels)
    # Each frame lies exactly on the slice it references: same position, same orientation.
    positions = {uid: ds.ImagePositionPatient for uid, ds in zip(uids, sources)}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        source_uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        np.testing.assert_allclose(frame.PlanePositionSequence[0].ImagePositionPatient, positions[source_uid],
                                   atol=1e-5)
    np.testing.assert_allclose(seg.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient,
                               sources[0].ImageOrientationPatient, atol=1e-6)
    kidney = seg.get_segment_description(2)
    assert kidney.SegmentLabel == "right kidney"
    assert kidney.segmented_property_type.meaning == "Kidney"
    assert kidney.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning == "Right"
    assert kidney.algorithm_identification[0].AlgorithmName == "synapse_ct_seg"
    assert seg.PatientID == sources[0].PatientID and seg.StudyInstanceUID == sources[0].StudyInstanceUID
    # Written again: the same instance, which a PACS replaces instead of filing twice.
    again = write_segmentation(labels, volume, NAMES, tmp_path / "again.dcm", MODEL)
    assert pydicom.dcmread(again).SOPInstanceUID == seg.SOPInstanceUID


def test_a_seg_of_an_enhanced_multiframe_ct(series, tmp_path):
    volume, labels = series
    (tmp_path / "enhanced").mkdir()
    make_dicom_series.write_enhanced(source_datasets(volume), tmp_path / "enhanced" / "ct.dcm")
    enhanced = read_series(tmp_path / "enhanced")
    path = write_segmentation(labels, enhanced, NAMES, tmp_path / "seg.dcm", MODEL)
    assert_valid_dicom(path)
    seg = hd.seg.segread(path)
    source = pydicom.dcmread(tmp_path / "enhanced" / "ct.dcm")
    frames = seg.get_pixels_by_source_frame(str(source.SOPInstanceUID), list(range(1, 11)), combine_segments=True,
                                             skip_overlap_checks=True, assert_missing_frames_are_empty=True)
    order = [frame.index for frame in enhanced.frames]  # volume slice k is source frame order[k]
    np.testing.assert_array_equal(frames[order], labels)


def _identifiers(dataset):
    """Every value of the source that PS3.15's Basic Profile removes or replaces (names, IDs, dates, UIDs)."""
    kept = deidentify(dataset, "x")
    values = set()
    for element in dataset.iterall():
        if element.VR in ("SQ", "OB", "OW", "US", "SS", "UL", "SL", "FL", "FD", "DS", "IS", "CS"):
            continue
        value = str(element.value)
        if len(value) >= 4 and (element.tag not in kept or str(kept[element.tag].value) != value):
            values.add(value)
    return values


def test_de_identified_seg_and_sr_hold_no_identifier_of_the_source_and_keep_their_references(series, tmp_path):
    volume, labels = series
    sources = source_datasets(volume)
    identifiers = set().union(*(_identifiers(ds) for ds in sources))
    assert {"PHANTOM01", "Phantom^One", str(sources[0].StudyInstanceUID)} <= identifiers
    seg = write_segmentation(labels, volume, NAMES, tmp_path / "seg.dcm", MODEL, salt="secret")
    sr = write_finding_report(sources, [Finding(SEX, FEMALE, 0.83)], tmp_path / "sr.dcm", MODEL, salt="secret")
    for path in (seg, sr):
        assert_valid_dicom(path)
        text = path.read_bytes().decode("latin-1")
        assert not [value for value in identifiers if value in text], path.name
        assert pydicom.dcmread(path).PatientIdentityRemoved == "YES"
    # The references point at the de-identified source, written with the same secret.
    anonymous = {str(deidentify(ds, "secret").SOPInstanceUID) for ds in sources}
    assert {uid for _, _, uid in hd.seg.segread(seg).get_source_image_uids()} == anonymous


def test_an_sr_reports_the_finding_its_probability_and_the_model_with_the_images_as_evidence(series, tmp_path):
    volume, _ = series
    sources = source_datasets(volume)
    nodule, chest = pydicom.sr.codedict.codes.SCT.Nodule, pydicom.sr.codedict.codes.SCT.Chest
    findings = [Finding(SEX, FEMALE, 0.83), Finding(AGE, measurement=(47.5, AGE_UNIT)),
                Finding(value=nodule, probability=0.7, site=chest)]
    path = write_finding_report(sources, findings, tmp_path / "sr.dcm", MODEL)
    assert_valid_dicom(path)
    report = hd.sr.srread(path)
    assert report.PatientID == sources[0].PatientID
    evidence = {item.ReferencedSOPInstanceUID for study in report.CurrentRequestedProcedureEvidenceSequence
                for series_item in study.ReferencedSeriesSequence for item in series_item.ReferencedSOPSequence}
    assert evidence == {str(ds.SOPInstanceUID) for ds in sources}
    sex, age, lesion = report.content.get_image_measurement_groups()
    assert sex.get_qualitative_evaluations()[0].value == FEMALE
    probability = sex.get_measurements()[0]
    assert probability.value == pytest.approx(0.83) and probability.unit.value == "1"
    assert age.get_measurements()[0].value == pytest.approx(47.5) and age.get_measurements()[0].unit.value == "a"
    assert len(sex.source_images) == len(sources)
    assert lesion.finding_type == nodule and lesion.finding_sites[0].value == chest
    assert not lesion.get_qualitative_evaluations() and lesion.get_measurements()[0].value == pytest.approx(0.7)
    with pytest.raises(ValueError, match="a measurement needs its concept"):
        write_finding_report(sources, [Finding(measurement=(1.0, AGE_UNIT))], tmp_path / "bad.dcm", MODEL)
    observer = [item for item in report.ContentSequence if item.ConceptNameCodeSequence[0].CodeMeaning ==
                "Device Observer Name"]
    assert observer[0].TextValue == "synapse_ct_seg"


AGE_UNIT = pydicom.sr.codedict.codes.UCUM.Year
