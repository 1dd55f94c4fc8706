"""Clients of a model served by TensorFlow Serving: the REST and the gRPC Predict call.

Every exported dltk2 model is a SavedModel whose ``serving_default`` takes the raw input (a volume in
its own units, an image, a spacing) under named inputs; TF Serving answers both protocols from it::

    tensorflow_model_server --model_name=ixi_sex --model_base_path=$PWD/models/ixi_sex/export \\
        --port=8500 --rest_api_port=8501

The REST call posts the "columnar" form, ``{"signature_name": ..., "inputs": {name: nested lists}}``,
to ``http://HOST:8501/v1/models/NAME:predict`` and gets ``{"outputs": {name: nested lists}}`` back;
the gRPC call sends a ``PredictRequest`` of ``TensorProto`` inputs to ``PredictionService/Predict``
on port 8500 (``tensorflow-serving-api``'s protos) and gets a ``PredictResponse``. gRPC sends the
tensors as bytes (a 2 mm IXI volume of 4.3 MB arrives as 4.3 MB; as JSON text it is about 3x that),
so it is the one for volumes. Both are plain functions of numpy arrays here, and
:func:`scan_inputs` makes a request's inputs from a scan file or a DICOM series folder.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Mapping

import numpy as np

MAX_MESSAGE_BYTES = 1 << 30
"""gRPC's default limit is 4 MiB a message; a CT volume is hundreds of MB."""


def scan_inputs(path: str, with_geometry: bool = True) -> dict[str, np.ndarray]:
    """The named inputs of a 3D model's request for a scan: ``image`` and, for oriented models, its grid.

    Args:
        path: A NIfTI (or other image) file, or a DICOM series folder (a study: the series the
            rules of :func:`dltk2.io.dicom_series.choose_series` pick).
        with_geometry: Add ``spacing`` (x, y, z, mm) and ``direction`` (row-major): what the exported
            graphs of models trained with an orientation take (``predictor.json`` has ``orientation``).

    Raises:
        ImageReadError: The scan cannot be read, named.
    """
    from dltk2.io.image import read_volume

    array, geometry, _ = read_volume(path)
    inputs = {"image": array}
    if with_geometry:
        inputs["spacing"] = np.asarray(geometry.spacing, np.float64)
        inputs["direction"] = np.asarray(geometry.direction, np.float64)
    return inputs


def rest_body(inputs: Mapping[str, np.ndarray], signature_name: str = "serving_default") -> dict:
    """The JSON body of a REST Predict request (columnar ``inputs`` form)."""
    return {"signature_name": signature_name,
            "inputs": {name: np.asarray(value).tolist() for name, value in inputs.items()}}


def predict_rest(url: str, inputs: Mapping[str, np.ndarray], signature_name: str = "serving_default",
                 timeout_s: float = 600.0) -> dict[str, np.ndarray]:
    """POSTs a Predict request to ``http://HOST:PORT/v1/models/NAME[/versions/N]:predict``; the outputs as arrays.

    Raises:
        ConnectionError: The server refused or answered with an error (its message in one line).
    """
    data = json.dumps(rest_body(inputs, signature_name)).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise ConnectionError(f"{url}: HTTP {error.code}: {error.read().decode(errors='replace').strip()}") from None
    except urllib.error.URLError as error:
        raise ConnectionError(f"{url}: {error.reason}") from None
    outputs = answer["outputs"]
    if not isinstance(outputs, dict):  # a signature with a single output answers it bare
        outputs = {"outputs": outputs}
    return {name: np.asarray(value) for name, value in outputs.items()}


def grpc_request(model_name: str, inputs: Mapping[str, np.ndarray], signature_name: str = "serving_default",
                 version: int | None = None):
    """A ``tensorflow_serving.apis.predict_pb2.PredictRequest`` of the named arrays (dtypes kept)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
    return request


def predict_grpc(target: str, model_name: str, inputs: Mapping[str, np.ndarray],
                 signature_name: str = "serving_default", timeout_s: float = 600.0) -> dict[str, np.ndarray]:
    """Calls ``PredictionService/Predict`` at ``target`` (``HOST:PORT``); the outputs as arrays.

    Raises:
        ConnectionError: The call failed (the gRPC status and details in one line).
    """
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
    with grpc.insecure_channel(target, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(grpc_request(model_name, inputs, signature_name), timeout=timeout_s)
        except grpc.RpcError as error:
            raise ConnectionError(f"{target}: {error.code().name}: {error.details()}") from None
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
