"""Tests of dltk2.feature_cache: features computed once, reused, recomputed when what they depend on changes."""

import keras
import numpy as np
import tensorflow as tf

from dltk2.feature_cache import cached_features, files_fingerprint, weights_digest


def _model(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    return keras.Model(inputs, outputs)


def _dataset(rng, n=10):
    images = rng.uniform(size=(n, 8, 8, 1)).astype(np.float32)
    labels = np.arange(n) % 2
    names = np.array([f"image{i}.png" for i in range(n)])
    return images, labels, tf.data.Dataset.from_tensor_slices((images, labels, names)).batch(4)


def test_features_are_computed_once_then_loaded(rng, tmp_path):
    model = _model(0)
    images, labels, dataset = _dataset(rng)
    cache = tmp_path / "features" / "train.npz"
    first = cached_features(model, dataset, cache, {"size": 8})
    assert first.computed and cache.exists()
    np.testing.assert_allclose(first.features, model.predict(images, verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(first.labels, labels)
    assert first.names.tolist() == [f"image{i}.png" for i in range(10)]
    stamp = cache.stat().st_mtime_ns

    def explode(*_):
        raise AssertionError("the backbone ran again")

    again = cached_features(model, dataset.map(lambda i, label, n: (tf.py_function(explode, [i], tf.float32), label, n)), cache, {"size": 8})
    assert not again.computed and cache.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.features, first.features)
    np.testing.assert_array_equal(again.names, first.names)


def test_other_weights_or_inputs_recompute(rng, tmp_path):
    images, _, dataset = _dataset(rng)
    cache = tmp_path / "codes.npz"
    cached_features(_model(0), dataset, cache, {"size": 8})
    other = _model(1)
    assert cached_features(other, dataset, cache, {"size": 8}).computed  # other weights
    assert not cached_features(other, dataset, cache, {"size": 8}).computed
    assert cached_features(other, dataset, cache, {"size": 9}).computed  # other fingerprint


def test_weight_digest_and_file_fingerprint(tmp_path):
    assert weights_digest(_model(0)) == weights_digest(_model(0)) != weights_digest(_model(1))
    path = tmp_path / "a.tfrecord"
    path.write_bytes(b"12345")
    (name, size, _), = files_fingerprint([path])
    assert name == str(path) and size == 5
