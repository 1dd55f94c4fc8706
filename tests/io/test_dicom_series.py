"""Tests of dltk2.io.dicom_series: pydicom's real series and written phantoms, against SimpleITK's reader."""

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

import make_dicom_series
from dltk2.errors import DataError
from dltk2.io.dicom import DicomError
from dltk2.io.dicom_series import SeriesRules, choose_series, find_series, read_series
from dltk2.io.image import read_image, read_image_information

DICOMDIR_TESTS = Path(get_testdata_file("DICOMDIR")).parent


def simpleitk_series(folder, series_uid=None):
    return sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_uid or ""))


def assert_same_volume(ours: sitk.Image, theirs: sitk.Image, atol=1e-6):
    assert ours.GetSize() == theirs.GetSize()
    np.testing.assert_allclose(ours.GetSpacing(), theirs.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(ours.GetOrigin(), theirs.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(ours.GetDirection(), theirs.GetDirection(), atol=atol)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(theirs).astype(np.float32))


def test_pydicoms_ct_series_reads_as_simpleitk_reads_it():
    folder = DICOMDIR_TESTS / "98892001" / "CT5N"
    volume = read_series(folder)
    assert_same_volume(volume.image, simpleitk_series(folder))
    assert volume.image.GetSize() == (16, 16, 5) and volume.image.GetSpacing()[2] == pytest.approx(2.5)
    assert {frame.intercept for frame in volume.frames} == {-1024.0}  # HU: applied, as SimpleITK applies it
    positions = [frame.position[2] for frame in volume.frames]
    assert positions == sorted(positions) and len({f.sop_instance_uid for f in volume.frames}) == 5


def test_a_study_folder_gives_its_axial_series_not_the_localizer():
    study = DICOMDIR_TESTS / "98892001"
    series = find_series(study)
    assert sorted(s.frame_count for s in series) == [2, 5]
    chosen = choose_series(series)
    assert "AXIAL" in chosen.image_types and chosen.frame_count == 5
    assert_same_volume(read_series(study).image, simpleitk_series(study / "CT5N"))
    with pytest.raises(DataError, match=r"no series to read as a volume .*'Scout', 2 images\): image type LOCALIZER"):
        read_series(study, SeriesRules(description="scout"))
    with pytest.raises(DataError, match="modality CT.*modality CT"):
        read_series(study, SeriesRules(modalities=("MR",)))


def test_pydicoms_series_that_are_no_volume_are_refused_in_one_line():
    # 4 CT slices 202.5 then 1.25 mm apart: SimpleITK makes them one 68.3 mm spaced volume.
    assert simpleitk_series(DICOMDIR_TESTS / "77654033" / "CT2").GetSpacing()[2] == pytest.approx(68.33, abs=0.01)
    with pytest.raises(DataError, match=r"CT2: series .* \(CT 'Routine Brain', 4 images\): 161 slice\(s\) missing"):
        read_series(DICOMDIR_TESTS / "77654033" / "CT2")
    # A tri-plane pilot: each series' three slices face three ways.
    pilot = next(s for s in find_series(DICOMDIR_TESTS / "98892003" / "MR2") if s.frame_count == 3)
    with pytest.raises(DataError, match="'T/S/C RF FAST PILOT', 3 images\\): slices face 3 ways"):
        read_series(pilot)
    with pytest.raises(DataError, match="slices face 7 ways"):  # radial angiography projections
        read_series(DICOMDIR_TESTS / "98892003" / "MR700")
    with pytest.raises(DataError, match=r"MR1: no series to read as a volume .*: 1 image\(s\)"):
        read_series(DICOMDIR_TESTS / "98892003" / "MR1")
    with pytest.raises(DataError, match=r"TINY_ALPHA: no series .*\(CT '', 50 images\): no pixel data \(CT Image Storage\)"):
        read_series(DICOMDIR_TESTS / "TINY_ALPHA")


@pytest.fixture
def phantom(rng):
    """A CT-like volume (HU) on a 15 degree oblique, anisotropic grid."""
    image = sitk.GetImageFromArray(rng.integers(-1000, 1500, (12, 20, 24)).astype(np.float32))
    image.SetSpacing((0.8, 0.7, 2.5))
    image.SetOrigin((-100.0, -80.0, 30.0))
    angle = np.deg2rad(15.0)
    image.SetDirection([np.cos(angle), 0, np.sin(angle), 0, 1, 0, -np.sin(angle), 0, np.cos(angle)])
    return image


def test_a_written_series_in_random_file_order_is_the_volume_and_simpleitks(phantom, tmp_path):
    make_dicom_series.write_series(phantom, tmp_path / "series", seed=1)
    (tmp_path / "series" / "notes.txt").write_text("not DICOM")
    volume = read_series(tmp_path / "series")
    assert_same_volume(volume.image, phantom)
    assert_same_volume(volume.image, simpleitk_series(tmp_path / "series"))
    assert read_image_information(tmp_path / "series").geometry.size == phantom.GetSize()
    assert_same_volume(read_image(tmp_path / "series"), phantom)


@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_an_enhanced_multiframe_image_reads_as_its_single_frame_series(phantom, tmp_path, modality):
    (tmp_path / "enhanced").mkdir()
    image = phantom if modality == "CT" else phantom + 1000.0  # MR values >= 0
    make_dicom_series.write_enhanced(make_dicom_series.series_datasets(image, seed=2, modality=modality),
                                     tmp_path / "enhanced" / "image.dcm")
    volume = read_series(tmp_path / "enhanced")
    assert len(volume.series.paths) == 1 and volume.series.frame_count == 12 and volume.series.modality == modality
    assert_same_volume(volume.image, image)
    assert sorted(frame.index for frame in volume.frames) == list(range(12))


def test_per_slice_rescale_is_applied(phantom, tmp_path):
    paths = make_dicom_series.write_series(phantom, tmp_path / "series", seed=3)
    for path in paths[::2]:  # half the slices stored as (HU + 2048) / 2 with slope 2
        dataset = pydicom.dcmread(path)
        hu = dataset.pixel_array.astype(np.int64) - 1024
        if np.any(hu % 2):
            hu = hu - hu % 2
        dataset.PixelData = ((hu + 2048) // 2).astype(np.uint16).tobytes()
        dataset.RescaleSlope, dataset.RescaleIntercept = 2, -2048
        dataset.save_as(path)
    ours = sitk.GetArrayFromImage(read_series(tmp_path / "series").image)
    np.testing.assert_array_equal(ours, sitk.GetArrayFromImage(simpleitk_series(tmp_path / "series")))


def _axial(rng):
    image = sitk.GetImageFromArray(rng.integers(-1000, 1500, (12, 10, 8)).astype(np.float32))
    image.SetSpacing((0.8, 0.7, 2.5))
    return image


@pytest.mark.parametrize("change, message", [
    (lambda k, p: None if k == 5 else p, r"1 slice\(s\) missing: a gap of 5 mm after the slice at 10.00 mm where "
                                         r"slices are 2.5 mm apart"),
    (lambda k, p: p + [0, 0, 0.4 * (k > 6)], "uneven slice spacing: 2.5 to 2.9 mm between slices"),
    (lambda k, p: p + [0, 0.5 * k, 0], r"slices are sheared 11.31 degrees against their normal \(gantry tilt\)"),
    (lambda k, p: p - [0, 0, 2.5 * (k == 4)], r"2 or more slices at one position \(0.00, 0.00, 7.50 mm\)"),
])
def test_missing_slices_uneven_spacing_tilt_and_repeats_are_refused_naming_the_series(rng, tmp_path, change, message):
    paths = make_dicom_series.write_series(_axial(rng), tmp_path / "series", seed=4,
                                           series_description="abdomen 2.5")
    for path in paths:
        dataset = pydicom.dcmread(path)
        position = change(int(dataset.InstanceNumber) - 1, np.asarray(dataset.ImagePositionPatient, float))
        if position is None:
            path.unlink()
            continue
        dataset.ImagePositionPatient = [float(v) for v in position]
        dataset.save_as(path)
    with pytest.raises(DataError, match=f"series: series [0-9.]+ \\(CT 'abdomen 2.5', 1[12] images\\): {message}"):
        read_series(tmp_path / "series")


def test_of_two_series_in_a_folder_the_rules_choose(rng, tmp_path):
    image = _axial(rng)
    study = make_dicom_series.series_datasets(image)[0].StudyInstanceUID
    make_dicom_series.write_series(image, tmp_path / "study" / "thin", series_number=2, study_uid=study,
                                   series_description="thin")
    thick = image[:, :, ::2]
    make_dicom_series.write_series(thick, tmp_path / "study" / "thick", series_number=3, study_uid=study,
                                   series_description="thick")
    assert [s.description for s in find_series(tmp_path / "study")] == ["thin", "thick"]
    assert_same_volume(read_series(tmp_path / "study").image, image)
    assert_same_volume(read_series(tmp_path / "study", SeriesRules(description="^thick$")).image, thick)
    uid = find_series(tmp_path / "study")[1].uid
    assert_same_volume(read_series(tmp_path / "study", SeriesRules(series_uid=uid)).image, thick)
    assert_same_volume(read_image(tmp_path / "study"), image)


def test_a_truncated_file_is_named_before_anything_is_read(rng, tmp_path):
    paths = make_dicom_series.write_series(_axial(rng), tmp_path / "series", seed=5)
    whole = paths[3].read_bytes()
    paths[3].write_bytes(whole[:-100])  # in its pixel data
    with pytest.raises(DicomError, match=f"{paths[3].name}: truncated: its pixel data needs {len(whole)} bytes, "
                                         f"the file has {len(whole) - 100}"):
        find_series(tmp_path / "series")
    dataset = pydicom.dcmread(paths[2])
    del dataset.PixelData
    dataset.save_as(paths[2])
    paths[3].write_bytes(whole)
    with pytest.raises(DataError, match=f"{paths[2].name} holds no pixel data"):
        read_series(tmp_path / "series")
    paths[3].write_bytes(whole[:600])  # in its header
    with pytest.raises(DicomError, match=f"{paths[3].name}: .*truncated"):
        read_series(tmp_path / "series")
    shutil.rmtree(tmp_path / "series")
    with pytest.raises(DataError, match="series: no such folder"):
        find_series(tmp_path / "series")
