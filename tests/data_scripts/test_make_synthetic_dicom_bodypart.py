"""Tests of data_scripts/make_synthetic_dicom_bodypart.py: valid DICOM, classes, patients, determinism."""

import hashlib

import pydicom

import make_synthetic_dicom_bodypart as synthetic
from dltk2.io.dicom import body_part_class, read_dataset, read_pixels


def digest(folder):
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.rglob("*.dcm")))).hexdigest()


def test_files_are_valid_with_every_class_and_several_images_per_patient(tmp_path):
    folder = synthetic.make_dataset(tmp_path / "a", num_images=40, seed=5, size=48)
    files = sorted(folder.rglob("*.dcm"))
    assert len(files) == 40
    classes, patients, photometric = set(), {}, set()
    for path in files:
        dataset = read_dataset(path)
        assert read_pixels(dataset, path).shape == (48, 48)
        assert dataset.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert dataset.PatientName and dataset.PatientBirthDate and any(e.tag.is_private for e in dataset)
        classes.add(body_part_class(dataset))
        patients.setdefault(dataset.PatientID, set()).add(dataset.StudyInstanceUID)
        photometric.add(dataset.PhotometricInterpretation)
    assert classes == set(synthetic.CLASSES)
    assert len(patients) < 40 and all(len(studies) == 1 for studies in patients.values())
    assert photometric == {"MONOCHROME1", "MONOCHROME2"}


def test_same_seed_same_files(tmp_path):
    first = synthetic.make_dataset(tmp_path / "a", num_images=6, seed=1, size=32)
    second = synthetic.make_dataset(tmp_path / "b", num_images=6, seed=1, size=32)
    other = synthetic.make_dataset(tmp_path / "c", num_images=6, seed=2, size=32)
    assert digest(first) == digest(second) != digest(other)
