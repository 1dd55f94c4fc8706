"""Tests of dltk2.export: TF Serving layout, versions, atomic writes, warm-up requests."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dltk2.export import (call_signature, existing_versions, export_saved_model, read_warmup_requests,
                          save_keras_model)


def small_model():
    inputs = keras.Input((3,), name="values")
    return keras.Model(inputs, keras.layers.Dense(2, name="scores")(inputs))


def endpoints(model):
    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="values")])
    def serving_default(values):
        scores = model(values)
        return {"scores": scores, "best": tf.argmax(scores, axis=-1, output_type=tf.int32)}

    return {"serving_default": serving_default}


def test_export_writes_versioned_folders_with_named_signature(tmp_path, rng):
    model = small_model()
    values = rng.normal(size=(4, 3)).astype(np.float32)
    first = export_saved_model(tmp_path / "my_model", model, endpoints(model), warmup_inputs={"values": values})
    second = export_saved_model(tmp_path / "my_model", model, endpoints(model))
    assert first == tmp_path / "my_model" / "1" and second == tmp_path / "my_model" / "2"
    assert existing_versions(tmp_path / "my_model") == [1, 2]
    assert not [p for p in (tmp_path / "my_model").iterdir() if p.name.startswith(".")]
    (tmp_path / "plain").mkdir()  # the version folder is as readable as any new folder (a server's user)
    assert first.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777
    outputs = call_signature(first, {"values": values})
    np.testing.assert_allclose(outputs["scores"], model(values), rtol=1e-6)
    np.testing.assert_array_equal(outputs["best"], np.argmax(model(values), axis=-1))
    signature = tf.saved_model.load(str(first)).signatures["serving_default"]
    assert list(signature.structured_input_signature[1]) == ["values"]
    (request,) = read_warmup_requests(first)
    assert request.model_spec.name == "my_model"
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["values"]), values)
    with pytest.raises(FileExistsError):
        export_saved_model(tmp_path / "my_model", model, endpoints(model), version=2)


def test_export_needs_serving_default(tmp_path):
    model = small_model()
    with pytest.raises(ValueError, match="serving_default"):
        export_saved_model(tmp_path, model, {"other": endpoints(model)["serving_default"]})


def test_failed_export_leaves_no_version_folder(tmp_path, monkeypatch):
    model = small_model()

    def broken_write(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", broken_write)
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(tmp_path / "m", model, endpoints(model))
    assert list((tmp_path / "m").iterdir()) == []


def test_save_keras_model_round_trips_and_checks_extension(tmp_path, rng):
    model = small_model()
    path = save_keras_model(model, tmp_path / "model.keras")
    (tmp_path / "plain").touch()
    assert path.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777
    values = rng.normal(size=(2, 3)).astype(np.float32)
    np.testing.assert_allclose(keras.models.load_model(path)(values), model(values), rtol=1e-6)
    with pytest.raises(ValueError, match=".keras"):
        save_keras_model(model, tmp_path / "model.h5")


def test_an_export_that_another_process_took_the_version_of_moves_to_the_next(tmp_path, monkeypatch):
    model = small_model()
    base = tmp_path / "m"
    real_rename = __import__("os").rename
    raced = []

    def rename(source, destination):  # another exporter finishes version 1 just before this one
        if not raced:
            raced.append(destination)
            export_saved_model(base, model, endpoints(model))
        return real_rename(source, destination)

    monkeypatch.setattr("dltk2.export.os.rename", rename)
    final = export_saved_model(base, model, endpoints(model))
    assert raced == [base / "1"] and final == base / "2" and existing_versions(base) == [1, 2]
    (base / "7").mkdir()
    (base / "7" / "notes.txt").write_text("a folder someone made")
    monkeypatch.undo()
    assert export_saved_model(base, model, endpoints(model)) == base / "8"


def test_a_saved_model_stores_each_weight_once(tmp_path):
    from dltk2.networks.resnet import resnet_3d

    model = resnet_3d((16, 16, 16, 1), num_classes=2, filters=(8, 16, 32), strides=(1, 2, 2))

    @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 16, 1], tf.float32, name="x")])
    def serving_default(x):
        return {"logits": model(x, training=False)}

    exported = export_saved_model(tmp_path / "m", model, {"serving_default": serving_default})
    stored = sum(path.stat().st_size for path in (exported / "variables").iterdir())
    weights = sum(weight.size * 4 for weight in model.get_weights())  # 304,872 bytes of float32
    assert weights <= stored < 1.1 * weights  # before: 618,631 bytes, every weight twice (keras#23553)
    reader = tf.train.load_checkpoint(str(exported / "variables" / "variables"))
    stored_shapes = [shape for name, shape in reader.get_variable_to_shape_map().items() if "VARIABLE_VALUE" in name]
    assert sorted(map(tuple, stored_shapes)) == sorted(weight.shape for weight in model.get_weights())
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(call_signature(exported, {"x": x})["logits"], model(x, training=False), rtol=1e-5,
                               atol=1e-6)
