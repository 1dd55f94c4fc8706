"""Writes volumes (the synthetic Synapse phantoms, or any NIfTI) as DICOM CT (or MR) series, as a scanner would.

Each slice is a CT Image Storage file: 16-bit unsigned pixels with RescaleIntercept -1024 (HU =
stored - 1024), ImagePositionPatient and ImageOrientationPatient from the volume's grid (any
direction, oblique included), a patient, study and series, and de-identifiable identifiers. The
files are named by a random number, not by slice, as PACS exports name them: a reader must sort by
position. ``--enhanced`` also writes each series as one Legacy Converted Enhanced CT file (highdicom's
converter, per-frame functional groups).

Example:
    python data_scripts/make_dicom_series.py --input_dir data/synapse_synthetic/img --output_dir data/synapse_dicom
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Sequence

import numpy as np
import pydicom
import SimpleITK as sitk
from absl import app, flags
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pydicom.valuerep import format_number_as_ds

FLAGS = flags.FLAGS


def _ds(value: float) -> str:
    """A decimal string of at most 16 characters (DICOM's DS), as precise as that allows."""
    return format_number_as_ds(float(value))


def series_datasets(image: sitk.Image, patient_id: str = "PHANTOM01", patient_name: str = "Phantom^One",
                    series_description: str = "synthetic abdomen", seed: int = 0,
                    study_uid: str | None = None, series_number: int = 1, modality: str = "CT") -> list[Dataset]:
    """One CT (or MR) dataset per slice of ``image`` (HU, or MR intensities >= 0), in slice order.

    Args:
        image: A 3D SimpleITK image in HU, any direction.
        seed: Seeds the UIDs, so the same call writes the same series.
        study_uid: Put the series into this study (several series of one study); default: a new one.
    """
    if modality not in ("CT", "MR"):
        raise ValueError(f"modality must be CT or MR, got {modality!r}")
    offset = 1024 if modality == "CT" else 0  # CT: HU = stored - 1024; MR: the values as they are
    array = np.clip(np.round(sitk.GetArrayFromImage(image)) + offset, 0, 65535).astype(np.uint16)
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    direction = np.reshape(image.GetDirection(), (3, 3))
    spacing, origin = np.asarray(image.GetSpacing()), np.asarray(image.GetOrigin())
    study_uid = study_uid or generate_uid(entropy_srcs=[patient_id, "study", str(seed)])
    series_uid = generate_uid(entropy_srcs=[patient_id, "series", str(seed), str(series_number)])
    frame_uid = generate_uid(entropy_srcs=[patient_id, "frame", str(seed)])
    now = datetime.datetime(2026, 1, 15, 9, 30, 0)
    datasets = []
    for k in range(array.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[series_uid, str(k)])
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = patient_name, patient_id, "19600101", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
        ds.AccessionNumber, ds.StudyID, ds.ReferringPhysicianName = "A" + patient_id[-6:], "1", ""
        ds.Modality, ds.Manufacturer = modality, "dltk2 synthetic"
        ds.BodyPartExamined = "ABDOMEN" if modality == "CT" else "HEAD"
        ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription = series_number, k + 1, series_description
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"] if modality == "CT" else ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.PositionReferenceIndicator, ds.PatientPosition = "", "FFS"
        position = origin + direction @ (np.array([0.0, 0.0, k]) * spacing)
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.ImageOrientationPatient = [_ds(v) for v in np.concatenate([direction[:, 0], direction[:, 1]])]
        ds.SliceLocation = _ds(position[2])
        ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]
        ds.SliceThickness = _ds(spacing[2])
        ds.AcquisitionNumber = 1
        if modality == "CT":
            ds.KVP = 120
        else:  # the MR Image module's type 1 and 2 attributes, as a 3D gradient-echo T1 writes them
            ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "GR", "SP", "", "3D"
            ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength, ds.MagneticFieldStrength = 9.8, 4.6, 1, 1.5
            ds.ImagedNucleus, ds.ImagingFrequency = "1H", 63.9
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = array.shape[1], array.shape[2]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        if modality == "CT":
            ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
            ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelData = array[k].tobytes()
        datasets.append(ds)
    return datasets


def write_series(image: sitk.Image, folder: str | Path, seed: int = 0, order: Sequence[int] | None = None,
                 **kwargs) -> list[Path]:
    """Writes ``image`` as a CT series into ``folder``, one file per slice named at random; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    datasets = series_datasets(image, seed=seed, **kwargs)
    names = np.random.default_rng(seed).permutation(len(datasets)) if order is None else order
    paths = []
    for ds, name in zip(datasets, names):
        path = folder / f"IM{int(name) * 7919 % 100000:05d}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths


def write_enhanced(datasets: Sequence[Dataset], path: str | Path) -> Path:
    """The series as one Legacy Converted Enhanced CT (or MR) Image file (highdicom), frames in slice order."""
    from highdicom.legacy import LegacyConvertedEnhancedCTImage, LegacyConvertedEnhancedMRImage

    series_uid = datasets[0].SeriesInstanceUID
    convert = LegacyConvertedEnhancedMRImage if datasets[0].Modality == "MR" else LegacyConvertedEnhancedCTImage
    enhanced = convert(
        legacy_datasets=list(datasets), series_instance_uid=generate_uid(entropy_srcs=[series_uid, "enhanced"]),
        series_number=int(datasets[0].SeriesNumber) + 100,
        sop_instance_uid=generate_uid(entropy_srcs=[series_uid, "enhanced", "1"]), instance_number=1)
    enhanced.save_as(path, enforce_file_format=True)
    return Path(path)


def main(argv):
    del argv
    from dltk2.io.image import read_image

    output = Path(FLAGS.output_dir)
    for number, path in enumerate(sorted(Path(FLAGS.input_dir).glob("*.nii*")), start=1):
        stem = path.name.split(".")[0]
        image = read_image(path)
        write_series(image, output / stem, seed=number, patient_id=f"PHANTOM{number:04d}",
                     patient_name=f"Phantom^{stem}")
        if FLAGS.enhanced:
            write_enhanced(series_datasets(image, seed=number, patient_id=f"PHANTOM{number:04d}"),
                           output / f"{stem}_enhanced.dcm")
        print(f"{path} -> {output / stem}")


if __name__ == "__main__":
    flags.DEFINE_string("input_dir", None, "Folder of NIfTI volumes in HU (e.g. a Synapse img/ folder).")
    flags.DEFINE_string("output_dir", None, "Where each volume's series folder goes.")
    flags.DEFINE_boolean("enhanced", False, "Also write each as one Legacy Converted Enhanced CT file.")
    flags.mark_flags_as_required(["input_dir", "output_dir"])
    app.run(main)
