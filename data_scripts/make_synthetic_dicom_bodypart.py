"""Makes radiograph-like DICOM files (CR and DX) of the 7 body-part classes, with realistic headers.

Each patient (PatientID, name, birth date: identifiers the pipeline must de-identify) has one to three
images of one body part; some patients also have a QA phantom image ("none"). Images are drawn in
a 12-bit range with per-image exposure, position, size and noise:

- Skull: an elliptical bright calvarium with a darker brain and orbits; Spine: a column of vertebral
  blocks with discs; Chest: dark lung fields, ribs, a heart shadow; Breast: a half-dome of tissue
  against one edge (mammography view); Abdomen: soft tissue with gas bubbles and a pelvic ring;
  Musculoskeletal: a limb with a long bone (cortex and marrow) and a joint; none: a QA phantom
  (step wedge and line pairs).

Headers say the body part as real ones do: mostly BodyPartExamined (a PS3.16 defined term),
sometimes only a study description ("XR CHEST PA"). Some files are MONOCHROME1 (inverted), some
carry a window centre and width, and a private vendor tag that de-identification must remove, as
it must the other names (consulting physician, intended recipients, operator), the order and
procedure identifiers, medical alerts, religious preference, age, station and device serial number.

Example:
    python data_scripts/make_synthetic_dicom_bodypart.py --output_dir data/dicom_synthetic --num_images 140 --seed 0
"""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
from absl import app, flags
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

FLAGS = flags.FLAGS

CLASSES = ("none", "Skull", "Spine", "Chest", "Breast", "Abdomen", "Musculoskeletal")
BODY_PART_TERMS = {"Skull": ["SKULL", "HEAD"], "Spine": ["LSPINE", "CSPINE", "TSPINE"], "Chest": ["CHEST"],
                   "Breast": ["BREAST"], "Abdomen": ["ABDOMEN", "PELVIS"],
                   "Musculoskeletal": ["KNEE", "HAND", "SHOULDER", "FOOT", "ELBOW"]}
DESCRIPTIONS = {"Skull": "XR SKULL 2 VIEWS", "Spine": "XR LUMBAR SPINE", "Chest": "XR CHEST PA",
                "Breast": "MAMMO SCREENING BREAST", "Abdomen": "XR ABDOMEN SUPINE",
                "Musculoskeletal": "XR KNEE 3 VIEWS", "none": "QA PHANTOM"}
CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
MAMMO_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.2"


def _uid(rng: np.random.Generator) -> str:
    """A UID that the seed determines (pydicom's generate_uid hashes the entropy source)."""
    return generate_uid(entropy_srcs=[str(rng.integers(2 ** 62))])


def _grid(size):
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    return y / size, x / size


def _ellipse(y, x, cy, cx, ry, rx, angle=0.0):
    c, s = np.cos(angle), np.sin(angle)
    u, v = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0


def draw(body_part: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Attenuation-like image in [0, 1] (bright = dense), before exposure and noise."""
    y, x = _grid(size)
    j = lambda scale=0.05: rng.uniform(-scale, scale)  # noqa: E731  (a small random offset)
    image = np.zeros((size, size), np.float32)
    if body_part == "Skull":
        cy, cx, ry, rx = 0.5 + j(), 0.5 + j(), 0.38 + j(0.04), 0.32 + j(0.04)
        image[_ellipse(y, x, cy, cx, ry, rx)] = 0.9
        image[_ellipse(y, x, cy, cx, ry - 0.04, rx - 0.04)] = 0.45
        for side in (-1, 1):
            image[_ellipse(y, x, cy + 0.12, cx + side * 0.11, 0.05, 0.06)] = 0.25
    elif body_part == "Spine":
        cx = 0.5 + j()
        image += 0.35 * np.exp(-((x - cx) / 0.25) ** 2)
        for k in range(int(rng.integers(5, 8))):
            top = 0.05 + k * 0.14 + j(0.01)
            block = (y > top) & (y < top + 0.1) & (np.abs(x - cx) < 0.09 + j(0.01))
            image[block] = 0.85
    elif body_part == "Chest":
        image += 0.55 * _ellipse(y, x, 0.55, 0.5 + j(), 0.5, 0.45)
        for side in (-1, 1):
            lung = _ellipse(y, x, 0.48 + j(), 0.5 + side * (0.19 + j(0.02)), 0.3 + j(0.03), 0.14 + j(0.02))
            image[lung] = 0.15
        for k in range(8):
            ribs = np.abs(y - (0.25 + 0.065 * k) - 0.08 * np.abs(x - 0.5)) < 0.008
            image[ribs & (image > 0.1)] += 0.25
        image[_ellipse(y, x, 0.62 + j(), 0.55 + j(), 0.14, 0.13)] = 0.6
        image[np.abs(x - 0.5) < 0.03] += 0.2
    elif body_part == "Breast":
        side = 0.0 if rng.random() < 0.5 else 1.0
        dome = ((x - side) / (0.55 + j(0.08))) ** 2 + ((y - 0.5 - j()) / (0.42 + j(0.05))) ** 2 <= 1
        image[dome] = 0.4
        image += dome * 0.2 * rng.random((size, size)).astype(np.float32).clip(0.6, 1.0)
    elif body_part == "Abdomen":
        image += 0.5 * _ellipse(y, x, 0.5, 0.5 + j(), 0.55, 0.45)
        for _ in range(int(rng.integers(4, 9))):
            image[_ellipse(y, x, rng.uniform(0.25, 0.6), rng.uniform(0.3, 0.7), 0.04, 0.05)] = 0.2
        ring = _ellipse(y, x, 0.85, 0.5, 0.14, 0.3) & ~_ellipse(y, x, 0.85, 0.5, 0.1, 0.24)
        image[ring] = 0.85
        image[(np.abs(x - 0.5) < 0.05) & (y < 0.7)] = 0.7
    elif body_part == "Musculoskeletal":
        angle = j(0.4)
        limb = _ellipse(y, x, 0.5, 0.5, 0.6, 0.2 + j(0.03), angle)
        image[limb] = 0.35
        for half in (-1, 1):
            bone = _ellipse(y, x, 0.5 + half * 0.24, 0.5 + half * 0.03, 0.22, 0.065, angle)
            marrow = _ellipse(y, x, 0.5 + half * 0.24, 0.5 + half * 0.03, 0.2, 0.035, angle)
            image[bone] = 0.9
            image[marrow] = 0.6
    else:  # QA phantom: step wedge and line pairs
        steps = int(rng.integers(5, 10))
        image += (np.floor(x * steps) / steps * 0.8) * (y < 0.45)
        frequency = rng.uniform(10, 30)
        image += (y > 0.55) * (0.5 + 0.4 * np.sign(np.sin(2 * np.pi * frequency * x)))
    return np.clip(image, 0, 1)


def make_file(path: Path, body_part: str, patient: dict, rng: np.random.Generator, size: int) -> None:
    """Writes one DICOM file (explicit VR little endian, 12 bits stored)."""
    attenuation = draw(body_part, size, rng)
    exposure = rng.uniform(0.6, 1.0)
    values = attenuation * exposure * 3500 + rng.uniform(100, 400)
    values = values + rng.normal(0, rng.uniform(20, 80), values.shape)
    monochrome1 = rng.random() < 0.25
    stored = np.clip(values, 0, 4095)
    if monochrome1:
        stored = 4095 - stored
    sop_class = MAMMO_IMAGE_STORAGE if body_part == "Breast" else (CR_IMAGE_STORAGE if rng.random() < 0.5
                                                                    else DX_IMAGE_STORAGE)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = _uid(rng)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = sop_class
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = patient["study_uid"]
    dataset.SeriesInstanceUID = _uid(rng)
    dataset.Modality = "MG" if body_part == "Breast" else ("CR" if sop_class == CR_IMAGE_STORAGE else "DX")
    dataset.PatientName = patient["name"]
    dataset.PatientID = patient["id"]
    dataset.PatientBirthDate = patient["birth_date"]
    dataset.PatientSex = patient["sex"]
    dataset.InstitutionName = "Synthetic General Hospital"
    dataset.ReferringPhysicianName = "Doe^Jane"
    dataset.AccessionNumber = f"A{rng.integers(10 ** 6, 10 ** 7)}"
    dataset.StudyDate = dataset.SeriesDate = dataset.AcquisitionDate = patient["study_date"]
    dataset.StudyTime = "101500"
    years = int(patient["study_date"][:4]) - int(patient["birth_date"][:4])
    dataset.PatientAge = f"{years:03d}Y"
    # What else a radiology information system leaves in a header (PS3.15 removes all of it).
    dataset.ConsultingPhysicianName = "Roe^Richard"
    dataset.NamesOfIntendedRecipientsOfResults = ["Poe^Edgar", "Moe^Mary"]
    dataset.OperatorsName = "Tech^Terry"
    dataset.PlacerOrderNumberImagingServiceRequest = f"ORD{patient['id']}"
    dataset.RequestedProcedureID = f"RP{patient['id']}"
    dataset.MedicalAlerts = "contrast allergy"
    dataset.PatientReligiousPreference = "none stated"
    dataset.StationName = "CR-ROOM-3"
    dataset.DeviceSerialNumber = "SN-0042"
    dataset.StudyDescription = DESCRIPTIONS[body_part]
    if body_part != "none" and rng.random() < 0.8:
        dataset.BodyPartExamined = str(rng.choice(BODY_PART_TERMS[body_part]))
    dataset.Rows, dataset.Columns = attenuation.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 12, 11, 0
    dataset.RescaleSlope, dataset.RescaleIntercept, dataset.RescaleType = 1, 0, "US"
    if rng.random() < 0.5:
        dataset.WindowCenter, dataset.WindowWidth = 2048, 4096
    dataset.PixelSpacing = [0.2, 0.2]
    block = dataset.private_block(0x0029, "SYNTHETIC VENDOR", create=True)
    block.add_new(0x10, "LO", f"operator {patient['name']}")
    dataset.PixelData = np.round(stored).astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    dataset.save_as(temporary, enforce_file_format=True)
    temporary.replace(path)


def make_dataset(output_dir: str | Path, num_images: int, seed: int = 0, size: int = 128) -> Path:
    """Writes ``num_images`` files as ``<output_dir>/<patient>/<n>.dcm``, every class about equally often."""
    output_dir = Path(output_dir)
    rng = np.random.default_rng(seed)
    written = 0
    patient_number = 0
    while written < num_images:
        patient_number += 1
        birth = datetime.date(1940, 1, 1) + datetime.timedelta(days=int(rng.integers(0, 25000)))
        patient = {"id": f"PAT{seed:02d}{patient_number:05d}", "name": f"Synthetic^Patient{patient_number}",
                   "birth_date": birth.strftime("%Y%m%d"), "sex": str(rng.choice(["F", "M"])),
                   "study_uid": _uid(rng), "study_date": "20240101"}
        body_part = CLASSES[(patient_number - 1) % len(CLASSES)]
        for _ in range(min(int(rng.integers(1, 4)), num_images - written)):
            make_file(output_dir / patient["id"] / f"{written:05d}.dcm", body_part, patient, rng, size)
            written += 1
    return output_dir


def define_flags() -> None:
    flags.DEFINE_string("output_dir", None, "Folder to write <patient>/<n>.dcm into.")
    flags.DEFINE_integer("num_images", 140, "Number of DICOM files.")
    flags.DEFINE_integer("seed", 0, "Random seed; the same seed gives the same images.")
    flags.DEFINE_integer("size", 128, "Rows and columns of each image.")
    flags.mark_flag_as_required("output_dir")


def main(argv):
    del argv
    make_dataset(FLAGS.output_dir, FLAGS.num_images, FLAGS.seed, FLAGS.size)
    print(f"wrote {FLAGS.num_images} DICOM files to {FLAGS.output_dir}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
