"""DICOM out: a label map as a DICOM Segmentation, a finding as a Structured Report, both referencing their source.

A PACS shows what it can read: a SEG (highdicom's ``Segmentation``, one segment per class with its
coded anatomy, frames referencing the source slices they lie on) overlays the CT it was computed
from, and a Comprehensive SR (highdicom's TID 1500 Measurement Report) lists the model's finding,
its probability and the model's identity, with the images it looked at as evidence. Both carry the
source's patient and study, so they file beside it; with a ``salt`` they are de-identified by
:func:`dltk2.io.deidentification.deidentify` (PS3.15 Basic Profile; UIDs replaced by the same salted
pseudonyms as a de-identified copy of the source, so the references still hold between the two).

UIDs are derived from the source images and the model, so writing the same result twice gives the
same instance (a PACS replaces it, or keeps the one it has, rather than filing a second copy); a
series that grew (a slice that came late) gets a new instance in the same result series.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping, Sequence

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from dltk2.errors import DataError
from dltk2.io.atomic import atomic_destination
from dltk2.io.deidentification import deidentify
from dltk2.io.dicom_series import SeriesVolume

MANUFACTURER = "dltk2"

# BTCV's 13 organs as SNOMED CT anatomy (with laterality where the organ is paired).
ORGAN_CODES: dict[str, tuple[Code, Code | None]] = {
    "spleen": (codes.SCT.Spleen, None), "right kidney": (codes.SCT.Kidney, codes.SCT.Right),
    "left kidney": (codes.SCT.Kidney, codes.SCT.Left), "gallbladder": (codes.SCT.Gallbladder, None),
    "esophagus": (codes.SCT.Esophagus, None), "liver": (codes.SCT.Liver, None), "stomach": (codes.SCT.Stomach, None),
    "aorta": (codes.SCT.Aorta, None), "inferior vena cava": (codes.SCT.InferiorVenaCava, None),
    "portal and splenic veins": (codes.SCT.PortalVein, None), "pancreas": (codes.SCT.Pancreas, None),
    "right adrenal gland": (codes.SCT.AdrenalGland, codes.SCT.Right),
    "left adrenal gland": (codes.SCT.AdrenalGland, codes.SCT.Left),
}
# Procedures by modality (SNOMED CT), for the SR's "procedure reported".
PROCEDURE_CODES = {"CT": Code("77477000", "SCT", "Computed tomography"),
                   "MR": Code("312250003", "SCT", "Magnetic resonance imaging"),
                   "CR": Code("168537006", "SCT", "Plain radiography"), "DX": Code("168537006", "SCT", "Plain radiography")}


@dataclasses.dataclass(frozen=True)
class ModelIdentity:
    """Who made the result: the algorithm's name and version (an SR's observer device, a SEG's algorithm).

    Attributes:
        name: The application or model, e.g. ``synapse_ct_seg``.
        version: The exported version, e.g. ``"3"``.
        source: Where the model came from (its folder's name), recorded as the algorithm's source.
    """

    name: str
    version: str
    source: str = ""

    @classmethod
    def of_model_folder(cls, model_path: str | Path) -> "ModelIdentity":
        """The application named in the folder's run configuration, at its latest exported version."""
        from dltk2.export import existing_versions
        from dltk2.model_folder import ModelFolder

        folder = ModelFolder(model_path)
        versions = existing_versions(folder.export)
        # The folder's name, not its path: a LO holds 64 characters, and a server's paths are no
        # business of the PACS.
        return cls(folder.read_config().application, str(versions[-1]) if versions else "unexported",
                   Path(model_path).resolve().name)

    def algorithm(self) -> hd.AlgorithmIdentificationSequence:
        return hd.AlgorithmIdentificationSequence(name=self.name, family=codes.DCM.ArtificialIntelligence,
                                                  version=self.version[:64], source=self.source[:64] or None)

    def uid(self, *parts: str) -> str:
        """A UID stable for this model and these parts (a source series, the kind of object)."""
        return generate_uid(entropy_srcs=[MANUFACTURER, self.name, self.version, *parts])


def read_secret(path: str | Path) -> str:
    """The de-identification secret held in a file (its first line).

    Raises:
        DataError: No such file, or an empty one.
    """
    path = Path(path)
    try:
        secret = path.read_text().strip().splitlines()
    except OSError as error:
        raise DataError(f"{path}: cannot read the de-identification key: {error.strerror or error}") from None
    if not secret or not secret[0].strip():
        raise DataError(f"{path}: the de-identification key file is empty")
    return secret[0].strip()


def source_datasets(volume: SeriesVolume) -> list[Dataset]:
    """The source files of a volume, whole, in the volume's slice order (one per file)."""
    seen, datasets = set(), []
    for frame in volume.frames:
        if frame.path not in seen:
            seen.add(frame.path)
            datasets.append(pydicom.dcmread(frame.path))
    return datasets


def _instance_uids(sources: Sequence[Dataset]) -> list[str]:
    """The sources' SOP Instance UIDs, sorted: what a result's own UID is derived from."""
    return sorted(str(source.SOPInstanceUID) for source in sources)


def _write(dataset: Dataset, path: str | Path, salt: str | None) -> Path:
    if salt is not None:
        before = dataset
        dataset = deidentify(dataset, salt)
        # What the profile removed comes back empty (its "Z"): a SEG's or SR's type 2 attributes
        # (Referenced Performed Procedure Step, Study ID) must be present. The device serial number
        # (X/Z/D) is the model's version, no one's identifier, and type 1 in a SEG's equipment.
        for element in before:
            if element.tag not in dataset and not element.tag.is_private:
                dataset.add_new(element.tag, element.VR, [] if element.VR == "SQ" else None)
        if "DeviceSerialNumber" in before:
            dataset.DeviceSerialNumber = before.DeviceSerialNumber
    path = Path(path)
    with atomic_destination(path) as temporary:
        dataset.save_as(temporary, enforce_file_format=True)
    return path


def segment_descriptions(class_names: Mapping[int, str], model: ModelIdentity,
                         anatomy: Mapping[str, tuple[Code, Code | None]] = ORGAN_CODES
                         ) -> list[hd.seg.SegmentDescription]:
    """One segment per class 1..n (segment number = label value), coded by ``anatomy`` where it knows the name.

    Names are matched with underscores read as spaces (:data:`dltk2.datasets.synapse.ORGANS`'
    ``right_kidney`` is ``right kidney``); an unknown name is an "Anatomical Structure".
    """
    numbers = sorted(class_names)
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"segments must be numbered 1..n like the labels, got {numbers}")
    descriptions = []
    for number in numbers:
        name = class_names[number].replace("_", " ")  # "right_kidney" -> "right kidney", as a reader reads it
        structure, laterality = anatomy.get(name.lower(), (codes.SCT.AnatomicalStructure, None))
        description = hd.seg.SegmentDescription(
            segment_number=number, segment_label=name, segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=structure, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=model.algorithm(), tracking_uid=model.uid("segment", name),
            tracking_id=f"{model.name} {name}")
        if laterality is not None:
            modifier = Dataset()
            modifier.CodeValue, modifier.CodingSchemeDesignator = laterality.value, laterality.scheme_designator
            modifier.CodeMeaning = laterality.meaning
            description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [modifier]
        descriptions.append(description)
    return descriptions


def write_segmentation(labels: np.ndarray, volume: SeriesVolume, class_names: Mapping[int, str], path: str | Path,
                       model: ModelIdentity, salt: str | None = None, series_number: int = 900) -> Path:
    """Writes a label map on a series' grid as a DICOM SEG (binary segments, empty frames left out).

    Args:
        labels: int (z, y, x) on ``volume``'s grid: slice k lies on ``volume.frames[k]``.
        volume: The series it was computed from (:func:`dltk2.io.dicom_series.read_series`).
        class_names: Label value -> segment name (background 0 not included).
        path: The ``.dcm`` to write (atomically).
        model: The algorithm recorded in each segment.
        salt: De-identify the SEG with this secret (see the module docstring); None keeps the
            source's patient and study.

    Returns:
        ``path``.
    """
    sources = source_datasets(volume)
    labels = np.asarray(labels)
    if labels.shape != volume.array.shape:
        raise ValueError(f"labels {labels.shape} are not on the series' grid {volume.array.shape}")
    if len(sources) == 1 and len(volume.frames) > 1:  # one multi-frame source: its own frame order
        order = np.argsort([frame.index for frame in volume.frames])
        labels = labels[order]
    source_series = str(sources[0].SeriesInstanceUID)
    segmentation = hd.seg.Segmentation(
        source_images=sources, pixel_array=labels.astype(np.uint8 if labels.max() < 256 else np.uint16),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(class_names, model),
        series_instance_uid=model.uid("seg series", source_series), series_number=series_number,
        sop_instance_uid=model.uid("seg", source_series, *_instance_uids(sources)), instance_number=1, manufacturer=MANUFACTURER,
        manufacturer_model_name=model.name, software_versions=model.version, device_serial_number=model.version,
        series_description=f"{model.name} segmentation"[:64], content_label="SEGMENTATION",
        content_description=f"{model.name} {model.version}"[:64], content_creator_name="dltk2^model")
    return _write(segmentation, path, salt)


@dataclasses.dataclass(frozen=True)
class Finding:
    """What a classifier or regressor found, as TID 1501 (a measurement group) states it.

    Attributes:
        concept: What was evaluated, for a qualitative evaluation ``concept: value`` (e.g. DCM 121032
            "Subject Sex": "Female"), or the name of ``measurement``. None: ``value`` is the group's
            own "Finding" (DCM 121071, e.g. SNOMED CT "Nodule").
        value: The coded answer; None for a measurement or a site only.
        probability: The model's probability of its answer, [0, 1].
        measurement: A number with its unit (e.g. an age in UCUM ``a``), named ``concept``.
        site: Where: the group's finding site (e.g. SNOMED CT "Chest" for a body part).
    """

    concept: Code | None = None
    value: Code | None = None
    probability: float | None = None
    measurement: tuple[float, Code] | None = None
    site: Code | None = None


# dltk2's body-part classes as SNOMED CT anatomy (a report's finding site).
BODY_PART_CODES = {"Skull": codes.SCT.Skull, "Spine": codes.SCT.Spine, "Chest": codes.SCT.Chest,
                   "Breast": codes.SCT.Breast, "Abdomen": codes.SCT.Abdomen, "Musculoskeletal": codes.SCT.Extremity,
                   "none": codes.SCT.Unknown}
# The chest classifier's classes as findings (TID 1501's "Finding", DCM 121071).
CHEST_FINDING_CODES = {"normal": codes.SCT.Normal, "nodule": codes.SCT.Nodule}
# MRNet's targets: "abnormal" is a normal/abnormal finding; a tear is present or absent. SNOMED CT has
# no single concept for MRNet's "ACL tear" and "meniscal tear" as its readers graded them: codes of
# dltk2's private scheme (99DLTK2, as PS3.16 allows for local codes) name them.
LOCAL_SCHEME = "99DLTK2"
MRNET_CONCEPTS = {"abnormal": (None, {"normal": codes.SCT.Normal, "abnormal": codes.SCT.Abnormal}),
                  "acl": (Code("ACL-TEAR", LOCAL_SCHEME, "Anterior cruciate ligament tear"),
                          {"normal": codes.SCT.Absent, "abnormal": codes.SCT.Present}),
                  "meniscus": (Code("MENISCAL-TEAR", LOCAL_SCHEME, "Meniscal tear"),
                               {"normal": codes.SCT.Absent, "abnormal": codes.SCT.Present})}
SEX = Code("121032", "DCM", "Subject Sex")
AGE = Code("121033", "DCM", "Subject Age")
MALE, FEMALE = Code("248153007", "SCT", "Male"), Code("248152002", "SCT", "Female")


def write_finding_report(sources: Sequence[Dataset], findings: Sequence[Finding], path: str | Path,
                         model: ModelIdentity, salt: str | None = None, series_number: int = 901) -> Path:
    """Writes the findings as a Comprehensive SR (TID 1500) with the source images as evidence.

    Each finding is one measurement group (TID 1501): its finding, finding site or qualitative
    evaluation (the coded answer), the probability (DCM 122157, unit 1) and any measurement, the model
    as observer device and algorithm, and every source image referenced.

    Args:
        sources: The images the model evaluated (whole datasets; one series or several).
        findings: What it found.
        path: The ``.dcm`` to write (atomically).
        model: The model (observer device and algorithm).
        salt: De-identify the report (see the module docstring).
    """
    if not sources:
        raise ValueError("a report needs the images it reports on")
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=model.uid("device"), name=model.name, manufacturer_name=MANUFACTURER, model_name=model.version))
    groups = []
    for number, finding in enumerate(findings, start=1):
        measurements = []
        if finding.probability is not None:
            measurements.append(hd.sr.Measurement(name=codes.DCM.Probability, value=float(finding.probability),
                                                  unit=codes.UCUM.NoUnits))
        if finding.measurement is not None:
            if finding.concept is None:
                raise ValueError("a measurement needs its concept (its name)")
            measurements.append(hd.sr.Measurement(name=finding.concept, value=float(finding.measurement[0]),
                                                  unit=finding.measurement[1]))
        evaluations = ([hd.sr.QualitativeEvaluation(name=finding.concept, value=finding.value)]
                       if finding.value is not None and finding.concept is not None else [])
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=model.uid("finding", str(number),
                                                                       str(sources[0].SeriesInstanceUID)),
                                                         identifier=f"{model.name} finding {number}"),
            finding_type=finding.value if finding.concept is None else None,
            finding_sites=[hd.sr.FindingSite(anatomic_location=finding.site)] if finding.site is not None else None,
            measurements=measurements or None, qualitative_evaluations=evaluations or None,
            source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(ds) for ds in sources],
            algorithm_id=hd.sr.AlgorithmIdentification(name=model.name, version=model.version)))
    modality = str(sources[0].get("Modality", ""))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=PROCEDURE_CODES.get(modality, codes.DCM.ImagingMeasurementReport),
        imaging_measurements=groups)
    source_series = str(sources[0].SeriesInstanceUID)
    document = hd.sr.ComprehensiveSR(
        evidence=list(sources), content=report, series_instance_uid=model.uid("sr series", source_series),
        series_number=series_number, sop_instance_uid=model.uid("sr", source_series, *_instance_uids(sources)),
        instance_number=1,
        manufacturer=MANUFACTURER, series_description=f"{model.name} findings"[:64], is_complete=True,
        is_final=False, is_verified=False)
    if any(code is not None and code.scheme_designator == LOCAL_SCHEME
           for finding in findings for code in (finding.concept, finding.value, finding.site)):  # PS3.3 C.12.1.1.2: a local scheme is declared, so a reader knows whose codes these are
        scheme = Dataset()
        scheme.CodingSchemeDesignator, scheme.CodingSchemeName = LOCAL_SCHEME, "dltk2 local codes"
        scheme.CodingSchemeResponsibleOrganization = MANUFACTURER
        document.CodingSchemeIdentificationSequence = [scheme]
    return _write(document, path, salt)
