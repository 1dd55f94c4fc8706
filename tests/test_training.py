"""Tests of dltk2.training: strategy, precision policy, resumable training, multi-worker."""

import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from dltk2.networks.resnet import resnet_3d
from dltk2.model_folder import ModelFolder
from dltk2.run_config import RunConfig
from dltk2.training import (as_float32, learning_rate_schedule, prepare_model_dir,
                            select_precision_policy, select_strategy, steps_done, train)


@pytest.fixture(autouse=True)
def float32_policy_after():
    yield
    keras.mixed_precision.set_global_policy("float32")


def toy_dataset(batch_size=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=64).astype(np.int32)
    images = rng.normal(labels[:, None, None, None, None], 1.0, size=(64, 8, 8, 8, 1)).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(batch_size)


def tiny_model():
    model = resnet_3d((8, 8, 8, 1), num_classes=2, filters=(4, 8), strides=(1, 2))
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def test_default_strategy_is_one_device(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert select_strategy().num_replicas_in_sync == 1


def test_mirrored_strategy_over_given_devices(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    strategy = select_strategy(devices)
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    assert strategy.num_replicas_in_sync == 2


def test_auto_precision_is_float32_on_cpu_and_float16_is_refused():
    assert not tf.config.list_physical_devices("GPU")
    assert select_precision_policy("auto") == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    with pytest.raises(ValueError, match="no float16 CPU kernels for 3D pooling"):
        select_precision_policy("mixed_float16")
    with pytest.raises(ValueError, match="unknown precision policy"):
        select_precision_policy("float8")


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_both_cpu_precision_policies_train_the_resnet(policy):
    select_precision_policy(policy)
    model = tiny_model()
    assert model.get_layer("unit_1_0").compute_dtype == ("bfloat16" if policy == "mixed_bfloat16" else "float32")
    assert model.output.dtype == "float32"
    history = model.fit(toy_dataset(), epochs=1, steps_per_epoch=3, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_mixed_precision_model_converts_to_float32_for_export(rng):
    select_precision_policy("mixed_bfloat16")
    mixed = tiny_model()
    keras.mixed_precision.set_global_policy("float32")
    converted = as_float32(mixed)
    assert {layer.compute_dtype for layer in converted.layers if layer.weights} == {"float32"}
    assert converted.get_layer("unit_1_0").compute_dtype == "float32"
    inputs = rng.normal(size=(2, 8, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(converted(inputs), mixed(inputs), atol=0.05)  # bfloat16 vs float32 rounding
    assert as_float32(converted) is converted


def test_float16_pooling_really_has_no_cpu_kernel():
    # The reason for refusing mixed_float16 on CPU, checked rather than assumed.
    with pytest.raises((tf.errors.NotFoundError, tf.errors.InvalidArgumentError, tf.errors.UnimplementedError)):
        tf.nn.max_pool3d(tf.zeros((1, 4, 4, 4, 1), tf.float16), 2, 2, "SAME")


def test_train_resumes_and_continues_the_step_count(tmp_path):
    model_path = prepare_model_dir(tmp_path / "model")
    train(tiny_model(), toy_dataset(), model_path, max_steps=4, steps_per_epoch=2, verbose=0)
    assert steps_done(model_path) == 4
    first = keras.models.load_model(model_path / "checkpoints" / "last.keras")
    # A new process would build a fresh model: the backup restores weights, optimizer and epoch.
    resumed = tiny_model()
    train(resumed, toy_dataset(), model_path, max_steps=8, steps_per_epoch=2, verbose=0)
    assert int(resumed.optimizer.iterations.numpy()) == 8
    assert steps_done(model_path) == 8
    assert not np.allclose(first.get_weights()[0], resumed.get_weights()[0])
    # Asking for no more steps than done trains nothing.
    again = tiny_model()
    train(again, toy_dataset(), model_path, max_steps=8, steps_per_epoch=2, verbose=0)
    assert int(again.optimizer.iterations.numpy()) == 8
    assert list((model_path / "logs").iterdir())


def test_validation_writes_best_checkpoint(tmp_path):
    model_path = prepare_model_dir(tmp_path / "model")
    validation = toy_dataset(seed=1).take(2)
    train(tiny_model(), toy_dataset(), model_path, 4, 2, validation_dataset=validation, verbose=0)
    assert (model_path / "checkpoints" / "best.keras").exists()
    state = json.loads((model_path / "training_state.json").read_text())
    assert "val_loss" in state["last_logs"]


def test_tensorboard_scalars_are_on_the_optimizer_step_axis(tmp_path):
    model_path = prepare_model_dir(tmp_path / "model")
    train(tiny_model(), toy_dataset(), model_path, 6, 3, validation_dataset=toy_dataset(seed=1).take(2), verbose=0)
    steps = {}
    for events in (model_path / "logs").rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                if value.tag.startswith("epoch_"):
                    steps.setdefault(f"{events.parent.name}/{value.tag}", []).append(event.step)
    assert steps["train/epoch_loss"] == [3, 6] and steps["validation/epoch_loss"] == [3, 6]  # not epochs 0, 1


def test_default_progress_is_plain_lines_with_the_first_step_and_every_epoch(tmp_path, capsys):
    train(tiny_model(), toy_dataset(), prepare_model_dir(tmp_path / "model"), 4, 2,
          validation_dataset=toy_dataset(seed=1).take(2))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("step 1/4 (epoch 1/2): ") and "first step after" in lines[0]
    assert [line.split(" (")[0] for line in lines if line.startswith("epoch ")] == ["epoch 1/2", "epoch 2/2"]
    assert not [line for line in lines if "\r" in line or "━" in line]  # no progress bar in a log file


def test_the_end_of_a_validation_set_of_unknown_length_is_not_reported_as_an_interruption(tmp_path):
    # filter() hides the length, as the readers' unbatch does: Keras learns it when the first pass ends.
    validation = toy_dataset(seed=1).take(3).filter(lambda images, labels: True)
    assert validation.cardinality() == tf.data.UNKNOWN_CARDINALITY
    filters_before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(tiny_model(), toy_dataset(), prepare_model_dir(tmp_path / "model"), 4, 2,
              validation_dataset=validation, verbose=0)
        assert not [w for w in caught if "ran out of data" in str(w.message)]
        # A training set that ends early is still reported, by Keras, and stops the run.
        with pytest.warns(UserWarning, match="ran out of data"):
            train(tiny_model(), toy_dataset().take(3), prepare_model_dir(tmp_path / "short"), 8, 4, verbose=0)
    assert warnings.filters == filters_before
    # A validation pass that fails leaves the warning filters as they were, too.
    failing = validation.map(lambda images, labels: (tf.debugging.assert_all_finite(images / 0.0, "NaN"), labels))
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN"):
        train(tiny_model(), toy_dataset(), prepare_model_dir(tmp_path / "failing"), 2, 2, validation_dataset=failing,
              verbose=0)
    assert warnings.filters == filters_before


def test_restart_deletes_and_default_keeps(tmp_path):
    model_path = prepare_model_dir(tmp_path / "model")
    (model_path / "keep.txt").write_text("x")
    prepare_model_dir(model_path)
    assert (model_path / "keep.txt").exists()
    prepare_model_dir(model_path, restart=True)
    assert not (model_path / "keep.txt").exists()


def test_cosine_schedule_decays_to_zero_and_run_config_round_trips(tmp_path):
    schedule = learning_rate_schedule(1e-3, "cosine", 100)
    assert float(schedule(0)) == pytest.approx(1e-3) and float(schedule(100)) == pytest.approx(0.0, abs=1e-9)
    assert learning_rate_schedule(1e-3) == 1e-3
    config = RunConfig("toy", "regression", [4, 4, 4])
    ModelFolder(tmp_path).write_config(config)
    assert ModelFolder(tmp_path).read_config() == config


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_workers(model_path, max_steps):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    script = Path(__file__).with_name("multiworker_worker.py")
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
                   TF_CPP_MIN_LOG_LEVEL="2")
        processes.append(subprocess.Popen([sys.executable, str(script), str(model_path), str(max_steps)], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=240)
        finally:
            process.kill()
        assert process.returncode == 0, stderr[-3000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    return results


@pytest.mark.slow  # fresh processes, each importing TensorFlow
def test_multi_worker_mirrored_strategy_with_two_processes_on_localhost(tmp_path):
    model_path = tmp_path / "model"
    results = _run_workers(model_path, 6)
    for result in results:
        assert result["multi_worker"] is True
        assert result["replicas"] == 2 and result["steps"] == 6 and len(result["loss"]) == 2
        assert all(np.isfinite(result["loss"]))
    # Gradients are all-reduced: trainable weights are identical on both workers. (Batch-norm moving
    # statistics are each worker's own, as Keras' unsynchronised BatchNormalization keeps them.)
    assert results[0]["checksum"] == pytest.approx(results[1]["checksum"], rel=1e-6)
    assert results[0]["loss"] == results[1]["loss"]
    assert steps_done(model_path) == 6
    assert (model_path / "checkpoints" / "last.keras").exists()
    # A restarted cluster resumes from the chief's backup.
    resumed = _run_workers(model_path, 9)
    assert [r["steps"] for r in resumed] == [9, 9] and len(resumed[0]["loss"]) == 1
    assert steps_done(model_path) == 9
