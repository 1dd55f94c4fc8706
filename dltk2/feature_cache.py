"""Cached backbone features ("CNN codes"): run a frozen feature extractor over a data set once.

Training a dense head on a frozen backbone needs the backbone's output for every image, and that output
does not change while the head trains. :func:`cached_features` computes it once and stores it with a
fingerprint: the backbone's weights (a digest), the input size, and the data files (names, sizes,
modification times). A later call with the same fingerprint loads the file instead of running the
backbone; any change (other weights, other images, another size) recomputes it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Iterable, Mapping

import keras
import numpy as np
import tensorflow as tf

from dltk2.io.atomic import write_bytes_atomically


@dataclasses.dataclass
class CachedFeatures:
    """Features (n, d) float32, labels (n,) int32, names (n,) str, and whether they were just computed."""

    features: np.ndarray
    labels: np.ndarray
    names: np.ndarray
    computed: bool


def weights_digest(model: keras.Model) -> str:
    """SHA-256 (hex, 16 characters) of a model's weights, in order: equal weights, equal digest."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(str(value.shape).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()[:16]


def files_fingerprint(files: Iterable[str | Path]) -> list[list]:
    """``[name, size in bytes, modification time in ns]`` of each file, sorted by path."""
    fingerprint = []
    for path in sorted(str(f) for f in files):
        status = os.stat(path)
        fingerprint.append([path, status.st_size, status.st_mtime_ns])
    return fingerprint


def cached_features(feature_model: keras.Model, dataset: tf.data.Dataset, cache_path: str | Path,
                    fingerprint: Mapping) -> CachedFeatures:
    """The features of every image of ``dataset``, from ``cache_path`` when its fingerprint matches.

    Args:
        feature_model: (batch, h, w, c) -> (batch, d), run in inference mode.
        dataset: A finite dataset of ``(images, labels, names)`` batches, in a fixed order.
        cache_path: The ``.npz`` file (written atomically).
        fingerprint: What the features depend on besides the model's weights (JSON-serialisable:
            input size, data files, ...); the weights' digest is added here.
    """
    cache_path = Path(cache_path)
    key = json.dumps({**fingerprint, "weights": weights_digest(feature_model)}, sort_keys=True, default=str)
    if cache_path.exists():
        with np.load(cache_path, allow_pickle=False) as stored:
            if str(stored["fingerprint"]) == key:
                return CachedFeatures(stored["features"], stored["labels"], stored["names"], computed=False)
    predict = tf.function(lambda images: feature_model(images, training=False))
    features, labels, names = [], [], []
    for images, batch_labels, batch_names in dataset:
        features.append(tf.cast(predict(images), tf.float32).numpy())
        labels.append(batch_labels.numpy())
        names.append(batch_names.numpy().astype(str))
    if not features:
        raise ValueError(f"{cache_path}: the dataset gave no images")
    result = CachedFeatures(np.concatenate(features), np.concatenate(labels).astype(np.int32),
                            np.concatenate(names), computed=True)
    buffer = io.BytesIO()
    np.savez(buffer, features=result.features, labels=result.labels, names=result.names, fingerprint=np.array(key))
    write_bytes_atomically(cache_path, buffer.getvalue())
    return result
