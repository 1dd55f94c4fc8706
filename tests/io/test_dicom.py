"""Tests of dltk2.io.dicom on the real files that ship with pydicom and pydicom-data."""

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut
from pydicom.uid import UID

from dltk2.io.dicom import (BODY_PART_CLASSES, DicomError, body_part_class, looks_like_dicom,
                            read_dataset, read_pixels, to_unsigned)
from helpers import ODD_FILE_REASONS, odd_dicom_files


def pixels(name):
    path = get_testdata_file(name)
    return read_pixels(read_dataset(path), path)


@pytest.mark.parametrize("uncompressed, compressed", [
    ("RG1_UNCR.dcm", "RG1_J2KR.dcm"),            # CR chest, JPEG 2000 lossless
    ("MR2_UNCR.dcm", "MR2_J2KR.dcm"),            # MR shoulder, JPEG 2000 lossless
    ("emri_small.dcm", "emri_small_jpeg_ls_lossless.dcm"),  # MR head, JPEG-LS, 10 frames
    ("emri_small.dcm", "emri_small_RLE.dcm"),    # RLE lossless
    ("emri_small.dcm", "emri_small_big_endian.dcm"),
])
def test_lossless_codecs_decode_to_the_uncompressed_pixels(uncompressed, compressed):
    np.testing.assert_array_equal(pixels(compressed), pixels(uncompressed))


def test_lossy_jpeg_2000_is_close_to_the_original():
    original, lossy = pixels("RG1_UNCR.dcm"), pixels("RG1_J2KI.dcm")
    assert original.shape == lossy.shape
    assert np.abs(original - lossy).mean() < 0.02 * np.ptp(original)


def test_modality_lut_gives_hounsfield_units():
    path = get_testdata_file("CT_small.dcm")
    dataset = pydicom.dcmread(path)
    expected = apply_modality_lut(dataset.pixel_array, dataset)
    np.testing.assert_allclose(read_pixels(dataset, path, apply_voi=False), expected)
    assert float(dataset.RescaleSlope) == 1 and float(dataset.RescaleIntercept) == -1024


def test_multi_frame_keeps_every_frame():
    assert pixels("emri_small.dcm").shape == (10, 64, 64)


def test_window_centre_and_width_are_applied():
    path = get_testdata_file("RG1_UNCR.dcm")
    dataset = pydicom.dcmread(path)
    raw = dataset.pixel_array
    centre = float(np.median(raw))
    dataset.WindowCenter, dataset.WindowWidth = centre, 200
    values = read_pixels(dataset, path)
    # Everything below the window is one value, everything above another, and both are there.
    below, above = values[raw < centre - 150], values[raw > centre + 150]
    assert below.size and above.size
    assert len(np.unique(below)) == 1 and len(np.unique(above)) == 1
    # This radiograph is MONOCHROME1 (high values dark): after inversion they come out low.
    assert dataset.PhotometricInterpretation == "MONOCHROME1" and above[0] < below[0]


def test_monochrome1_is_inverted():
    path = get_testdata_file("CT_small.dcm")
    dataset = pydicom.dcmread(path)
    normal = read_pixels(dataset, path, apply_voi=False)
    dataset.PhotometricInterpretation = "MONOCHROME1"
    inverted = read_pixels(dataset, path, apply_voi=False)
    np.testing.assert_allclose(inverted, normal.max() + normal.min() - normal)


def test_file_without_pixel_data(tmp_path):
    path = get_testdata_file("reportsi.dcm")  # a structured report
    with pytest.raises(DicomError, match="reportsi.dcm: has no pixel data"):
        read_pixels(read_dataset(path), path)


def test_truncated_file():
    path = get_testdata_file("emri_small_jpeg_2k_lossless_too_short.dcm")
    with pytest.raises(DicomError, match="too_short.dcm: truncated"):
        read_pixels(read_dataset(path), path)


def test_truncated_pixel_data(tmp_path):
    data = open(get_testdata_file("CT_small.dcm"), "rb").read()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: len(data) - 5000])
    with pytest.raises(DicomError, match="cut.dcm: .*truncated"):
        read_pixels(read_dataset(path), path)


def test_not_dicom(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("not an image, just some text\n" * 20)
    with pytest.raises(DicomError, match="notes.dcm: not a DICOM file"):
        read_dataset(path)
    with pytest.raises(DicomError, match="missing.dcm: no such file"):
        read_dataset(tmp_path / "missing.dcm")


def test_missing_codec_names_the_transfer_syntax(tmp_path):
    dataset = pydicom.dcmread(get_testdata_file("RG1_J2KR.dcm"))
    dataset.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2: no decoder exists
    path = tmp_path / "mpeg.dcm"
    dataset.save_as(path)
    with pytest.raises(DicomError, match=r"mpeg.dcm: cannot decode MPEG2 .*1\.2\.840\.10008\.1\.2\.4\.100"):
        read_pixels(read_dataset(path), path)


def test_old_files_without_preamble_still_read():
    path = get_testdata_file("OT-PAL-8-face.dcm")
    image = read_pixels(read_dataset(path), path)  # palette colour: through its lookup table
    assert image.shape == (480, 640, 3) and image.max() > 255


@pytest.mark.parametrize("name, expected", [
    ("RG1_UNCR.dcm", "Chest"), ("RG3_UNCR.dcm", "Musculoskeletal"), ("MR2_UNCR.dcm", "Musculoskeletal"),
    ("emri_small.dcm", "Skull"), ("MR-SIEMENS-DICOM-WithOverlays.dcm", "Abdomen"), ("CT_small.dcm", "none"),
])
def test_body_part_of_the_real_files(name, expected):
    assert body_part_class(pydicom.dcmread(get_testdata_file(name), stop_before_pixels=True)) == expected


@pytest.mark.parametrize("fields, expected", [
    ({"BodyPartExamined": "LSPINE"}, "Spine"), ({"BodyPartExamined": "CHEST"}, "Chest"),
    ({"BodyPartExamined": "BREAST"}, "Breast"), ({"BodyPartExamined": "KNEE"}, "Musculoskeletal"),
    ({"BodyPartExamined": "PELVIS"}, "Abdomen"), ({"BodyPartExamined": "HEAD"}, "Skull"),
    ({"StudyDescription": "XR CHEST PA"}, "Chest"), ({"SeriesDescription": "L-SPINE lat", "BodyPartExamined": ""},
                                                      "Spine"),
    ({"SeriesDescription": "lumbar SPINE"}, "Spine"), ({"StudyDescription": "QA phantom"}, "none"),
])
def test_body_part_mapping(fields, expected):
    dataset = pydicom.Dataset()
    for key, value in fields.items():
        setattr(dataset, key, value)
    assert body_part_class(dataset) == expected and expected in BODY_PART_CLASSES


def test_to_unsigned():
    image = np.array([[-1000.0, 0.0], [500.0, 1000.0]])
    assert to_unsigned(image, 8).tolist() == [[0, 128], [191, 255]]
    assert to_unsigned(image, 16).dtype == np.uint16 and to_unsigned(image, 16).max() == 65535
    assert not to_unsigned(np.ones((2, 2))).any()


def test_each_odd_file_is_one_dicom_error_naming_it(tmp_path):
    files = odd_dicom_files(tmp_path)
    assert set(files) == set(ODD_FILE_REASONS)
    for name, path in files.items():
        with pytest.raises(DicomError) as error:
            read_pixels(read_dataset(path), path)
        message = str(error.value)
        assert message.startswith(f"{path}: ") and "\n" not in message, message
        assert ODD_FILE_REASONS[name] in message, (name, message)


def test_a_non_dicom_file_is_refused_on_its_first_bytes_without_a_forced_parse(tmp_path, monkeypatch):
    path = odd_dicom_files(tmp_path)["not_dicom_1mb"]
    monkeypatch.setattr(pydicom, "dcmread", lambda *a, **k: pytest.fail("parsed a non-DICOM file"))
    with pytest.raises(DicomError, match="not a DICOM file"):
        read_dataset(path)


def test_bare_datasets_without_a_preamble_are_still_read(tmp_path):
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    dataset = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del dataset.file_meta
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, dataset)  # no preamble, no file meta: as ACR-NEMA files are
    path = tmp_path / "bare.dcm"
    path.write_bytes(buffer.getvalue())
    assert looks_like_dicom(path.read_bytes()[:132])
    np.testing.assert_array_equal(read_pixels(read_dataset(path), path), pixels("CT_small.dcm"))
    assert not looks_like_dicom(b"%PDF-1.7\n" + bytes(200)) and not looks_like_dicom(b"\x08\x00")
