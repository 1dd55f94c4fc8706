"""Tests of dltk2.io.image: formats, geometry round trips, DICOM series, clear errors."""

import gzip
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from dltk2.io.image import (ImageGeometry, ImageReadError, array_to_image, read_array, read_dicom_series,
                            read_image, read_voxels, write_image)


@pytest.mark.parametrize("extension", [".nii", ".nii.gz", ".mha", ".mhd", ".nrrd"])
def test_write_then_read_keeps_voxels_and_geometry(tmp_path, oblique_image, extension):
    path = write_image(oblique_image, tmp_path / f"image{extension}")
    again = read_image(path)
    assert ImageGeometry.from_image(again).isclose(ImageGeometry.from_image(oblique_image))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(again), sitk.GetArrayFromImage(oblique_image))


def test_read_array_gives_zyx_order_and_geometry(tmp_path, oblique_image):
    path = write_image(oblique_image, tmp_path / "image.nii.gz")
    array, geometry = read_array(path)
    assert array.shape == (7, 11, 13)
    assert geometry.size == (13, 11, 7)
    assert geometry.spacing == pytest.approx((0.7, 0.8, 3.0))
    rebuilt = array_to_image(array, geometry)
    assert ImageGeometry.from_image(rebuilt).isclose(geometry)


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path, oblique_image, monkeypatch):
    target = tmp_path / "image.nii.gz"
    write_image(oblique_image, target)
    before = target.read_bytes()

    def failing_write(*args, **kwargs):
        Path(args[1]).write_bytes(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", failing_write)
    with pytest.raises(RuntimeError, match="disk full"):
        write_image(oblique_image, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.nii.gz"]


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(ImageReadError, match=r"nothere\.nii\.gz: no such file"):
        read_image(tmp_path / "nothere.nii.gz")


def test_truncated_gzip_names_the_file(tmp_path, oblique_image):
    path = write_image(oblique_image, tmp_path / "image.nii.gz")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as error:
        read_image(truncated)
    message = str(error.value)
    assert "truncated.nii.gz: truncated or corrupt gzip stream" in message
    assert "\n" not in message


@pytest.mark.parametrize("extension", [".nii", ".mha", ".nrrd"])
def test_truncated_uncompressed_and_other_formats_name_the_file(tmp_path, oblique_image, extension):
    path = write_image(oblique_image, tmp_path / f"image{extension}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=rf"image\{extension}: (truncated|cannot read)"):
        read_image(path)


def test_corrupt_file_names_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(gzip.compress(b"this is not an image at all" * 20))
    with pytest.raises(ImageReadError, match="corrupt.nii.gz"):
        read_image(corrupt)


def test_nan_voxels_are_reported_with_count(tmp_path):
    array = np.ones((4, 5, 6), np.float32)
    array[1, 2, 3] = np.nan
    array[0, 0, 0] = np.inf
    path = write_image(array, tmp_path / "nan.nii.gz")
    with pytest.raises(ImageReadError, match=r"nan\.nii\.gz: 2 of 120 voxels are NaN or infinite"):
        read_array(path)
    # Without the check the read goes through with the voxels as stored (ITK's reader made NaN 0),
    # as read_voxels gives them.
    values, _ = read_array(path, require_finite=False)
    assert np.isnan(values[1, 2, 3]) and np.isinf(values[0, 0, 0]) and values[1, 1, 1] == 1.0
    np.testing.assert_array_equal(values, read_voxels(path, require_finite=False))


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_2_reads_as_nibabel_and_its_nifti_1_twin_say(tmp_path, suffix, rng):
    import nibabel
    import SimpleITK as sitk

    array = rng.normal(size=(7, 5, 6)).astype(np.float32)  # nibabel's (i, j, k)
    affine = np.array([[0, -1.5, 0, 10], [2.0, 0, 0, -20], [0, 0, 3.0, 5], [0, 0, 0, 1]])  # permuted, flipped
    nibabel.save(nibabel.Nifti2Image(array, affine), tmp_path / f"v2{suffix}")
    nibabel.save(nibabel.Nifti1Image(array, affine), tmp_path / f"v1{suffix}")
    image = read_image(tmp_path / f"v2{suffix}")
    itk = sitk.ReadImage(str(tmp_path / f"v1{suffix}"))  # ITK reads NIfTI-1 only
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), array.transpose(2, 1, 0))
    for get in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        np.testing.assert_allclose(getattr(image, get)(), getattr(itk, get)(), atol=1e-6, err_msg=get)
    np.testing.assert_array_equal(read_voxels(tmp_path / f"v2{suffix}"), array.transpose(2, 1, 0))
    raw = (tmp_path / f"v2{suffix}").read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(raw[: len(raw) - 40])
    with pytest.raises(ImageReadError, match=f"cut{suffix}: truncated"):
        read_image(tmp_path / f"cut{suffix}")


def test_nan_voxels_in_other_formats_are_reported(tmp_path):
    array = np.ones((4, 5, 6), np.float32)
    array[2, 2, 2] = np.nan
    path = write_image(array, tmp_path / "nan.mha")
    with pytest.raises(ImageReadError, match=r"nan\.mha: 1 of 120 voxels"):
        read_array(path)


def _write_dicom_series(folder: Path, num_slices: int = 4) -> None:
    """A CT series from pydicom's CT_small.dcm, one slice per 2.5 mm, shuffled file order."""
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    series_uid = pydicom.uid.generate_uid()
    folder.mkdir()
    for index in [2, 0, 3, 1][:num_slices]:
        dataset = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        dataset.SeriesInstanceUID = series_uid
        dataset.SOPInstanceUID = pydicom.uid.generate_uid()
        dataset.InstanceNumber = index + 1
        position = [float(v) for v in template.ImagePositionPatient]
        dataset.ImagePositionPatient = [position[0], position[1], position[2] + 2.5 * index]
        pixels = dataset.pixel_array.copy()
        pixels[0, 0] = index  # mark the slice
        dataset.PixelData = pixels.tobytes()
        dataset.save_as(folder / f"slice_{index}.dcm")


def test_dicom_series_folder_is_sorted_by_position(tmp_path):
    folder = tmp_path / "series"
    _write_dicom_series(folder)
    image = read_image(folder)
    array = sitk.GetArrayFromImage(image)
    assert array.shape[0] == 4
    assert image.GetSpacing()[2] == pytest.approx(2.5)
    reference = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    slope, intercept = float(reference.RescaleSlope), float(reference.RescaleIntercept)
    expected = reference.pixel_array.astype(float) * slope + intercept
    np.testing.assert_allclose(array[1, 5:, 5:], expected[5:, 5:])
    # The marked corner gives each slice's index in position order.
    assert [int(round((array[i, 0, 0] - intercept) / slope)) for i in range(4)] == [0, 1, 2, 3]


def test_folder_without_dicom_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageReadError, match="empty: no DICOM files"):
        read_dicom_series(tmp_path / "empty")


NIBABEL_DATA = Path(__import__("nibabel").__file__).parent / "tests" / "data"


@pytest.mark.parametrize("name", ["anatomical.nii", "example4d.nii.gz", "functional.nii", "standard.nii.gz",
                                  "reoriented_anat_moved.nii"])
def test_read_voxels_equals_simpleitk_on_nibabel_test_images(name):
    # Little- and big-endian, 3D and 4D, scaled (left to ITK) and unscaled, several voxel types.
    path = NIBABEL_DATA / name
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    ours = read_voxels(path, dtype=None)
    assert ours.shape == reference.shape and ours.dtype == reference.dtype
    np.testing.assert_array_equal(ours, reference)
    np.testing.assert_array_equal(read_voxels(path), reference.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("extension", [".nii", ".nii.gz"])
def test_read_voxels_equals_read_array(tmp_path, rng, dtype, extension):
    array = (rng.random((5, 6, 7)) * 200).astype(dtype)
    path = write_image(array, tmp_path / f"image{extension}")
    assert _voxel_layout_of(path) is not None  # the fast path, not ITK's
    np.testing.assert_array_equal(read_voxels(path, dtype=None), read_array(path, dtype=None)[0])
    np.testing.assert_array_equal(read_voxels(path), read_array(path)[0])


def _voxel_layout_of(path):
    from dltk2.io import nifti

    content = path.read_bytes()
    return nifti._nifti_voxel_layout(gzip.decompress(content) if path.suffix == ".gz" else content)


def test_read_voxels_leaves_scaled_nifti_and_nifti2_to_the_right_reader(tmp_path, rng):
    import nibabel

    array = rng.integers(0, 100, (6, 5, 4)).astype(np.int16)  # nibabel's (x, y, z)
    scaled = nibabel.Nifti1Image(array, np.eye(4))
    scaled.header.set_slope_inter(2.0, -5.0)
    nibabel.save(scaled, tmp_path / "scaled.nii.gz")
    assert _voxel_layout_of(tmp_path / "scaled.nii.gz") is None  # ITK applies the scaling
    np.testing.assert_allclose(read_voxels(tmp_path / "scaled.nii.gz"), read_array(tmp_path / "scaled.nii.gz")[0])
    np.testing.assert_allclose(read_voxels(tmp_path / "scaled.nii.gz"), array.T * 2.0 - 5.0)
    nibabel.save(nibabel.Nifti2Image(array, np.eye(4)), tmp_path / "two.nii")
    np.testing.assert_array_equal(read_voxels(tmp_path / "two.nii", dtype=None), array.T)


def test_read_voxels_reads_big_endian_files(tmp_path, rng):
    import nibabel

    array = rng.normal(size=(6, 5, 4)).astype(">f4")
    image = nibabel.Nifti1Image(array, np.eye(4), header=nibabel.Nifti1Header(endianness=">"))
    nibabel.save(image, tmp_path / "big.nii")
    assert _voxel_layout_of(tmp_path / "big.nii")[0] == np.dtype(">f4")
    ours = read_voxels(tmp_path / "big.nii", dtype=None)
    assert ours.dtype == np.dtype("float32") and ours.dtype.isnative
    np.testing.assert_array_equal(ours, array.T.astype(np.float32))


def test_read_voxels_with_zlib_when_isal_is_missing(tmp_path, oblique_image, monkeypatch):
    from dltk2.io import nifti

    path = write_image(oblique_image, tmp_path / "image.nii.gz")
    monkeypatch.setattr(nifti, "_gunzip", gzip.decompress)
    np.testing.assert_array_equal(read_voxels(path), sitk.GetArrayFromImage(oblique_image))


def test_read_voxels_errors_name_the_file_in_one_line(tmp_path, oblique_image):
    with pytest.raises(ImageReadError, match=r"gone\.nii\.gz: no such file"):
        read_voxels(tmp_path / "gone.nii.gz")
    data = write_image(oblique_image, tmp_path / "image.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.nii\.gz: truncated or corrupt gzip stream \(.+\)$"):
        read_voxels(tmp_path / "cut.nii.gz")
    raw = write_image(oblique_image, tmp_path / "image.nii").read_bytes()
    (tmp_path / "cut.nii").write_bytes(raw[:-100])
    with pytest.raises(ImageReadError, match=r"cut\.nii: truncated NIfTI file \(\d+ of \d+ bytes"):
        read_voxels(tmp_path / "cut.nii")
    (tmp_path / "junk.nii.gz").write_bytes(gzip.compress(b"not an image" * 50))
    with pytest.raises(ImageReadError, match=r"junk\.nii\.gz"):
        read_voxels(tmp_path / "junk.nii.gz")
    array = np.ones((3, 4, 5), np.float32)
    array[1, 1, 1] = np.nan
    write_image(array, tmp_path / "nan.nii.gz")
    with pytest.raises(ImageReadError, match=r"nan\.nii\.gz: 1 of 60 voxels are NaN or infinite"):
        read_voxels(tmp_path / "nan.nii.gz")


def test_read_voxels_of_other_formats_goes_through_simpleitk(tmp_path, oblique_image):
    path = write_image(oblique_image, tmp_path / "image.mha")
    np.testing.assert_array_equal(read_voxels(path), sitk.GetArrayFromImage(oblique_image))
