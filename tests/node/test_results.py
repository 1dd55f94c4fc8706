"""What the node makes of a series: a classifier's finding as an SR; the body-part database fed; non-images skipped."""

from __future__ import annotations

import dataclasses

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from helpers import assert_valid_dicom
from pacs import write_node_config

from dltk2.node.config import load_config
from dltk2.node.results import finding_of
from dltk2.node.server import Node
from dltk2.node.state import DONE, PROCESSING, SKIPPED, SeriesInfo, SeriesRow
from dltk2.run_config import RunConfig


@pytest.fixture(scope="module")
def acl_classifier(tmp_path_factory):
    """An MRNet-like series classifier that always answers "abnormal" (a tear), p = 0.88."""
    import keras

    from dltk2.export import export_predictor
    from dltk2.inference import SeriesClassifier
    from dltk2.model_folder import ModelFolder

    inputs = keras.Input((4, 8, 8, 1))
    dense = keras.layers.Dense(2)
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling3D()(inputs)))
    dense.set_weights([np.zeros((1, 2), np.float32), np.array([0.0, 2.0], np.float32)])
    folder = tmp_path_factory.mktemp("models") / "mrnet_acl"
    export_predictor(folder, SeriesClassifier(model, 4, 8, ["normal", "abnormal"]))
    ModelFolder(folder).write_config(RunConfig(application="mrnet_knee", task="classification", target="acl",
                                               example_size=[4, 8, 8], class_names=["normal", "abnormal"]))
    return folder


def mr_series(folder):
    import make_dicom_series

    image = sitk.GetImageFromArray(np.random.default_rng(0).uniform(0, 400, (5, 12, 12)).astype(np.float32))
    make_dicom_series.write_series(image, folder, modality="MR")
    return folder


def test_a_classifier_reports_its_finding_and_the_series_feeds_the_body_part_database(tmp_path, acl_classifier):
    from dltk2.datasets.dicom_database import open_database

    config_path = write_node_config(tmp_path, acl_classifier, 'url = "http://127.0.0.1:9/dicom-web"',
                                    ingest_database=f"sqlite:///{tmp_path / 'bodypart.db'}")
    config_path.write_text(config_path.read_text().replace('modality = ["CT"]', 'modality = ["MR"]'))
    node = Node(load_config(config_path))
    series = mr_series(tmp_path / "mr")
    for path in series.iterdir():
        assert node.store(path.read_bytes(), str(pydicom.dcmread(path).SOPInstanceUID), "CT01") == 0x0000
    uid = str(pydicom.dcmread(next(series.iterdir())).SeriesInstanceUID)
    node.state.complete({uid})
    assert node.process(node.state.claim_ready(60)) == DONE
    [(sop_uid, _, path)] = node.state.unsent_results()
    report = pydicom.dcmread(path)
    assert report.Modality == "SR" and report.SOPInstanceUID == sop_uid
    assert_valid_dicom(path, inherited=("Study ID",), local_schemes=("99DLTK2",))
    assert report.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99DLTK2"
    text = str(report.ContentSequence)
    assert "Anterior cruciate ligament tear" in text and "Present" in text
    evidence = {item.ReferencedSOPInstanceUID for study in report.CurrentRequestedProcedureEvidenceSequence
                for series_item in study.ReferencedSeriesSequence for item in series_item.ReferencedSOPSequence}
    assert evidence == {str(pydicom.dcmread(file).SOPInstanceUID) for file in series.iterdir()}
    rows = open_database(f"sqlite:///{tmp_path / 'bodypart.db'}").query_body_part("all")
    assert len(rows) == 5


def test_segmentations_and_reports_are_not_processed(tmp_path, acl_classifier):
    node = Node(load_config(write_node_config(tmp_path, acl_classifier, 'url = "http://127.0.0.1:9"')))
    for modality in ("SEG", "SR"):
        info = SeriesInfo(f"1.2.3.{len(modality)}", "1.2.3", modality)
        node.state.add_series(info, PROCESSING)
        assert node.process(SeriesRow(**dataclasses.asdict(info), status=PROCESSING)) == SKIPPED
        assert node.state.status_of(info.series_instance_uid) == SKIPPED
    assert not node.state.unsent_results()


@pytest.mark.parametrize("config, outputs, expected", [
    (RunConfig("IXI_HH_sex", "classification", [8, 8, 8], target="sex", class_names=["male", "female"]),
     {"class_id": 1, "probabilities": [0.2, 0.8]}, ("Subject Sex", "Female", 0.8, None, None)),
    (RunConfig("IXI_HH_age", "regression", [8, 8, 8], target="age"), {"prediction": [47.5]},
     ("Subject Age", None, None, 47.5, None)),
    (RunConfig("dicom_bodypart", "classification", [32, 32], class_names=["Skull", "Chest"]),
     {"class_id": 1, "probabilities": [0.1, 0.9]}, (None, None, 0.9, None, "Chest")),
    (RunConfig("chest_xray_nodule", "classification", [32, 32], class_names=["normal", "nodule"]),
     {"class_id": 1, "probabilities": [0.3, 0.7]}, (None, "Nodule", 0.7, None, None)),
    (RunConfig("my_model", "classification", [8, 8], class_names=["calm", "storm"]),
     {"class_id": 0, "probabilities": [0.6, 0.4]}, ("my_model", "calm", 0.6, None, None)),
])
def test_findings_are_coded_as_the_applications_code_them(config, outputs, expected):
    finding = finding_of(config, {key: np.asarray(value) for key, value in outputs.items()})
    concept, value, probability, measurement, site = expected
    assert (finding.concept.meaning if finding.concept else None) == concept
    assert (finding.value.meaning if finding.value else None) == value
    assert finding.probability == pytest.approx(probability) if probability else finding.probability is None
    assert (finding.measurement[0] if finding.measurement else None) == measurement
    assert (finding.site.meaning if finding.site else None) == site
