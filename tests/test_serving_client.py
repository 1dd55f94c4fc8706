"""Tests of dltk2.serving_client: the REST and gRPC Predict calls over loopback, answering as the SavedModel."""

import json

import numpy as np
import pytest

from dltk2.export import call_signature, export_predictor
from dltk2.inference import CropAveragingPredictor
from dltk2.networks.resnet import resnet_3d
from dltk2.serving_client import grpc_request, predict_grpc, predict_rest, rest_body
from serving_standin import serve


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = resnet_3d((8, 8, 8, 1), num_classes=2, filters=(4, 8), strides=(1, 2))
    predictor = CropAveragingPredictor(model, [8, 8, 8], 2, task="classification")
    volume = np.random.default_rng(0).normal(100, 20, (10, 12, 9)).astype(np.float32)
    _, saved_model = export_predictor(tmp_path_factory.mktemp("model"), predictor, {"image": volume})
    return saved_model, volume


def test_both_protocols_answer_what_the_saved_model_answers(exported):
    saved_model, volume = exported
    expected = call_signature(saved_model, {"image": volume})
    with serve({"ixi_sex": saved_model}) as (rest, grpc_target):
        by_rest = predict_rest(f"{rest}/v1/models/ixi_sex:predict", {"image": volume})
        by_grpc = predict_grpc(grpc_target, "ixi_sex", {"image": volume})
    for outputs in (by_rest, by_grpc):
        assert set(outputs) == set(expected)
        np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], rtol=1e-6)
        assert int(outputs["class_id"]) == int(expected["class_id"])


def test_the_requests_are_what_tf_serving_reads(exported):
    _, volume = exported
    body = rest_body({"image": volume, "spacing": np.array([0.8, 0.8, 2.5])})
    assert json.loads(json.dumps(body))["signature_name"] == "serving_default"
    assert np.asarray(body["inputs"]["image"]).shape == (10, 12, 9)
    request = grpc_request("synapse", {"image": volume}, version=3)
    assert request.model_spec.name == "synapse" and request.model_spec.version.value == 3
    assert request.inputs["image"].dtype == 1 and len(request.inputs["image"].tensor_content) == volume.nbytes


def test_an_unknown_model_or_no_server_is_one_line(exported):
    saved_model, volume = exported
    with serve({"ixi_sex": saved_model}) as (rest, grpc_target):
        with pytest.raises(ConnectionError, match=r"^http://127.0.0.1:\d+/v1/models/nope:predict: HTTP 404: .*nope"):
            predict_rest(f"{rest}/v1/models/nope:predict", {"image": volume})
        with pytest.raises(ConnectionError, match=r"^127.0.0.1:\d+: NOT_FOUND: .*nope"):
            predict_grpc(grpc_target, "nope", {"image": volume})
    with pytest.raises(ConnectionError, match=r"^127.0.0.1:\d+: UNAVAILABLE: "):
        predict_grpc(grpc_target, "ixi_sex", {"image": volume}, timeout_s=5)


def test_a_dicom_series_folder_is_a_request_an_oriented_model_answers_as_its_nifti(tmp_path):
    """A DICOM series and the same scan as NIfTI, turned: one answer, by gRPC, from their files alone."""
    import SimpleITK as sitk

    import make_dicom_series
    from dltk2.io.orientation import reorient_image
    from dltk2.serving_client import scan_inputs

    model = resnet_3d((8, 8, 8, 1), num_classes=2, filters=(4, 8), strides=(1, 2))
    predictor = CropAveragingPredictor(model, [8, 8, 8], 2, orientation="LPS", spacing_mm=[2.0, 2.0, 2.0])
    image = sitk.GetImageFromArray(np.random.default_rng(1).integers(0, 600, (10, 12, 9)).astype(np.float32))
    image.SetSpacing((1.5, 1.5, 2.5))
    make_dicom_series.write_series(image, tmp_path / "series", modality="MR")
    sitk.WriteImage(reorient_image(image, "SAR"), str(tmp_path / "turned.nii.gz"))
    _, saved_model = export_predictor(tmp_path / "model", predictor, predictor.warmup_inputs())
    from_series, from_nifti = scan_inputs(str(tmp_path / "series")), scan_inputs(str(tmp_path / "turned.nii.gz"))
    assert sorted(from_series) == ["direction", "image", "spacing"] and from_series["image"].dtype == np.float32
    with serve({"ixi_sex": saved_model}) as (_, grpc_target):
        answers = [predict_grpc(grpc_target, "ixi_sex", inputs) for inputs in (from_series, from_nifti)]
    np.testing.assert_allclose(answers[0]["probabilities"], answers[1]["probabilities"], rtol=1e-6)
    np.testing.assert_allclose(answers[0]["probabilities"], predictor.predict(**from_series)["probabilities"],
                               rtol=1e-6)
    assert sorted(scan_inputs(str(tmp_path / "series"), with_geometry=False)) == ["image"]
