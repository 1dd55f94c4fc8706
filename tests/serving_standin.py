"""A stand-in for TensorFlow Serving on loopback: its REST and gRPC Predict, answered from a SavedModel.

No ``tensorflow_model_server`` binary is installable here (no Debian or PyPI package); this answers the
same two requests the same way (columnar JSON ``inputs`` -> ``outputs``; ``PredictRequest`` ->
``PredictResponse``), so the clients of :mod:`dltk2.serving_client` are tested over real sockets.
"""

import contextlib
import json
import re
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


def _call(models, name, signature_name, inputs):
    if name not in models:
        raise KeyError(f"Servable not found for request: Latest({name})")
    signature = models[name].signatures[signature_name]
    specs = signature.structured_input_signature[1]
    tensors = {key: tf.constant(np.asarray(value, specs[key].dtype.as_numpy_dtype)) for key, value in inputs.items()}
    return {key: np.asarray(value.numpy()) for key, value in signature(**tensors).items()}


def _jsonable(value: np.ndarray):
    if value.dtype.kind in "OS":
        return np.vectorize(lambda item: item.decode() if isinstance(item, bytes) else item)(value).tolist()
    return value.tolist()


@contextlib.contextmanager
def serve(saved_models: dict):
    """Serves ``{name: SavedModel folder}``; yields ``(rest_base_url, grpc_target)``."""
    models = {name: tf.saved_model.load(str(path)) for name, path in saved_models.items()}

    class Rest(BaseHTTPRequestHandler):
        def do_POST(self):
            match = re.fullmatch(r"/v1/models/([^/:]+)(?:/versions/\d+)?:predict", self.path)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            try:
                if not match:
                    raise KeyError(f"Malformed request: POST {self.path}")
                outputs = _call(models, match.group(1), body.get("signature_name", "serving_default"), body["inputs"])
                status, answer = 200, {"outputs": {key: _jsonable(value) for key, value in outputs.items()}}
            except KeyError as error:
                status, answer = 404, {"error": str(error).strip("'\"")}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    class Predict(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
            try:
                outputs = _call(models, request.model_spec.name, request.model_spec.signature_name or
                                "serving_default", inputs)
            except KeyError as error:
                context.abort(grpc.StatusCode.NOT_FOUND, str(error).strip("'\""))
            response = predict_pb2.PredictResponse()
            for key, value in outputs.items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
            return response

    http = ThreadingHTTPServer(("127.0.0.1", 0), Rest)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    limit = [("grpc.max_receive_message_length", 1 << 30), ("grpc.max_send_message_length", 1 << 30)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=limit)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Predict(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{http.server_address[1]}", f"127.0.0.1:{port}"
    finally:
        server.stop(None)
        http.shutdown()
        http.server_close()


def assert_clients_answer_alike(saved_model, model_name: str, inputs: dict, rtol: float = 1e-5) -> dict:
    """Sends ``inputs`` by REST and by gRPC (:mod:`dltk2.serving_client`) to ``saved_model`` served here.

    Both must answer what the SavedModel's ``serving_default`` answers; returns those outputs.
    """
    from dltk2.export import call_signature
    from dltk2.serving_client import predict_grpc, predict_rest

    expected = call_signature(saved_model, inputs)
    with serve({model_name: saved_model}) as (rest, grpc_target):
        answers = [predict_rest(f"{rest}/v1/models/{model_name}:predict", inputs),
                   predict_grpc(grpc_target, model_name, inputs)]
    for answer in answers:
        assert set(answer) == set(expected)
        for key, value in expected.items():
            value = np.asarray(value)
            if value.dtype.kind in "OSU":
                decoded = np.vectorize(lambda item: item.decode() if isinstance(item, bytes) else item)
                assert np.array_equal(decoded(np.asarray(answer[key])), decoded(value)), key
            else:
                np.testing.assert_allclose(np.asarray(answer[key], value.dtype), value, rtol=rtol, atol=1e-6,
                                           err_msg=key)
    return expected
