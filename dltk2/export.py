"""Exporting trained models: a ``.keras`` file and a SavedModel in TF Serving's layout.

TF Serving loads ``<base>/<integer version>/saved_model.pb`` and answers on the ``serving_default``
signature. :func:`export_saved_model` writes the next version folder atomically (a temporary folder,
renamed when complete), with the preprocessing the model needs inside the graph, and a warm-up file
``assets.extra/tf_serving_warmup_requests`` so the first real request is not slow.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Mapping

import keras
import numpy as np
import tensorflow as tf

from dltk2.io.atomic import atomic_destination, default_mode

logger = logging.getLogger(__name__)


def save_keras_model(model: keras.Model, path: str | Path) -> Path:
    """Saves a ``.keras`` file atomically (temporary file beside it, then renamed)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: a Keras model file must end in .keras")
    with atomic_destination(path, suffix=".keras") as temporary:
        model.save(str(temporary))
    return path


def existing_versions(export_base: str | Path) -> list[int]:
    """Integer version folders under ``export_base`` holding a ``saved_model.pb``, ascending."""
    export_base = Path(export_base)
    if not export_base.is_dir():
        return []
    return sorted(
        int(child.name)
        for child in export_base.iterdir()
        if re.fullmatch(r"\d+", child.name) and (child / "saved_model.pb").exists()
    )


def export_saved_model(
    export_base: str | Path,
    model: keras.Model,
    endpoints: Mapping[str, Callable],
    version: int | None = None,
    warmup_inputs: Mapping[str, np.ndarray] | None = None,
    extra_trackables: tuple = (),
) -> Path:
    """Writes a SavedModel for TF Serving as ``<export_base>/<version>/``.

    Args:
        export_base: The model's folder in TF Serving's model base path.
        model: The Keras model whose variables the endpoints use (saved once, as the graphs use them).
        endpoints: Signature name -> ``tf.function`` with an ``input_signature`` whose specs are named
            (the request's input names); it returns a dict (the response's output names). One must be
            ``serving_default``.
        version: Version folder; default: one above the highest existing.
        warmup_inputs: Inputs of one ``serving_default`` request, written as the warm-up file.
        extra_trackables: Objects holding resources the graphs do not show (lookup tables).

    Returns:
        The version folder written.
    """
    if "serving_default" not in endpoints:
        raise ValueError(f"endpoints need 'serving_default' (got {sorted(endpoints)})")
    export_base = Path(export_base)
    export_base.mkdir(parents=True, exist_ok=True)
    chosen = version is not None
    if chosen and (export_base / str(int(version))).exists():
        raise FileExistsError(f"{export_base / str(int(version))}: version already exported; choose another version")

    archive = keras.export.ExportArchive()
    # The endpoints' variables are found from their graphs and saved once. ``archive.track(model)``
    # would add the model's Keras variables beside them, and each Keras variable is serialised apart
    # from the tf.Variable it wraps: every SavedModel held its weights twice (keras-team/keras#23553),
    # 618,631 bytes of variables for 304,872 bytes of weights. Only objects with resources the graphs
    # do not show (lookup tables) are tracked.
    for trackable in extra_trackables:
        archive.track(trackable)
    # serving_default first: Keras also aliases the first endpoint to it.
    for name in ["serving_default"] + [n for n in endpoints if n != "serving_default"]:
        archive.add_endpoint(name, endpoints[name])

    temporary = Path(tempfile.mkdtemp(prefix=".export.tmp-", dir=export_base))
    try:
        archive.write_out(str(temporary), verbose=False)
        if warmup_inputs is not None:
            write_warmup_requests(temporary, warmup_inputs, model_name=export_base.name)
        os.chmod(temporary, default_mode(directory=True))  # mkdtemp's 0700 would shut out a server's user
        while True:  # another export may take the next version meanwhile: then the one after it
            if not chosen:  # above every integer folder, complete or not
                taken = [int(child.name) for child in export_base.iterdir() if re.fullmatch(r"\d+", child.name)]
                version = max(taken, default=0) + 1
            final = export_base / str(int(version))
            try:
                os.rename(temporary, final)  # fails if final exists and is not empty: never replaces an export
                break
            except OSError:
                if chosen or not final.exists():
                    raise
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    logger.info("exported SavedModel to %s", final)
    return final


def write_warmup_requests(
    saved_model_dir: str | Path,
    inputs: Mapping[str, np.ndarray],
    model_name: str,
    signature_name: str = "serving_default",
    repeats: int = 1,
) -> Path:
    """Writes ``assets.extra/tf_serving_warmup_requests``: PredictRequests TF Serving replays at load."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = Path(saved_model_dir) / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True, exist_ok=True)
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
    )
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    with tf.io.TFRecordWriter(str(path)) as writer:
        for _ in range(repeats):
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(saved_model_dir: str | Path) -> list:
    """The PredictRequests of a SavedModel's warm-up file (to check what a client would send)."""
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(saved_model_dir) / "assets.extra" / "tf_serving_warmup_requests"
    requests = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        requests.append(log.predict_log.request)
    return requests


def call_signature(saved_model_dir: str | Path, inputs: Mapping[str, np.ndarray], name: str = "serving_default"):
    """Loads a SavedModel and calls one signature with named numpy inputs, as TF Serving would."""
    loaded = tf.saved_model.load(str(saved_model_dir))
    signature = loaded.signatures[name]
    outputs = signature(**{key: tf.constant(value) for key, value in inputs.items()})
    return {key: value.numpy() for key, value in outputs.items()}


def export_predictor(
    model_path, predictor, warmup_inputs: Mapping[str, np.ndarray] | None = None, version: int | None = None
) -> tuple[Path, Path]:
    """Writes a predictor to its model folder: ``model.keras``, ``predictor.json``, ``export/<version>/``.

    After it, :func:`dltk2.inference.load_predictor` rebuilds the same predictor from the folder alone,
    and the SavedModel's signatures are its ``serving_functions()``.

    Args:
        model_path: The model folder (a path or :class:`dltk2.model_folder.ModelFolder`).
        predictor: A :class:`dltk2.inference.Predictor` (crop averaging, sliding-window segmenter, 2D
            image or series classifier).
        warmup_inputs: The named inputs of one ``serving_default`` request (e.g. ``{"image": volume}``);
            default: the predictor's own (:meth:`~dltk2.inference.Predictor.warmup_inputs`).
        version: See :func:`export_saved_model`.

    Returns:
        ``(keras_file, saved_model_dir)``.
    """
    from dltk2.inference.predictor import save_predictor_config
    from dltk2.model_folder import as_model_folder

    folder = as_model_folder(model_path)
    keras_file = save_keras_model(predictor.model, folder.model_file)
    save_predictor_config(folder, predictor)
    saved_model_dir = export_saved_model(
        folder.export,
        predictor.model,
        predictor.serving_functions(),
        version=version,
        warmup_inputs=predictor.warmup_inputs() if warmup_inputs is None else warmup_inputs,
    )
    return keras_file, saved_model_dir
