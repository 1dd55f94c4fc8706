"""Tests of dltk2.checkpoints: a kill at any point of an epoch's commit leaves a folder that resumes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from dltk2 import checkpoints
from dltk2.checkpoints import is_complete_archive, steps_done
from dltk2.errors import ResourceError
from dltk2.networks.resnet import resnet_3d
from dltk2.training import load_trained_model, prepare_model_dir, train


def toy_dataset(seed=0, repeat=True):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=32).astype(np.int32)
    images = rng.normal(labels[:, None, None, None, None], 1.0, size=(32, 8, 8, 8, 1)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    return (dataset.repeat() if repeat else dataset.take(8)).batch(4)


def tiny_model():
    model = resnet_3d((8, 8, 8, 1), num_classes=2, filters=(4, 8), strides=(1, 2))
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def run(model_path, max_steps=8):
    model = tiny_model()
    train(model, toy_dataset(), model_path, max_steps, 2, validation_dataset=toy_dataset(1, repeat=False),
          verbose=0)
    return model


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (the atomic writer's cleanup aside)."""


def kill_at(monkeypatch, name, occurrence):
    """Makes the ``occurrence``-th rename onto a file called ``name`` kill the run instead."""
    real_replace, seen = os.replace, []

    def replace(source, destination):
        if Path(destination).name == name:
            seen.append(destination)
            if len(seen) == occurrence:
                raise Killed(destination)
        return real_replace(source, destination)

    monkeypatch.setattr(os, "replace", replace)


def assert_finished_consistently(model_path, max_steps=8):
    state = json.loads((model_path / "training_state.json").read_text())
    assert state["steps_done"] == max_steps and state["epoch"] == max_steps // 2
    assert (model_path / "backup" / state["backup"]).exists()
    assert sorted(p.name for p in (model_path / "backup").iterdir()) == sorted(
        [state["backup"], state["previous"]["backup"]])
    for name in ("last.keras", "best.keras"):
        assert is_complete_archive(model_path / "checkpoints" / name), name
    history = pd.read_csv(model_path / "history.csv")
    assert list(history["epoch"]) == list(range(max_steps // 2))  # each epoch once, none lost, none twice
    best = state["best"]
    assert best["value"] == pytest.approx(history["val_loss"].min()) and best["epoch"] == history["val_loss"].idxmin()
    assert not [p for p in (model_path / "checkpoints").iterdir() if p.name.startswith(".")]
    load_trained_model(model_path)


@pytest.mark.parametrize("name, occurrence", [
    ("last.keras", 4),                 # the final last.keras: the case
    ("best.keras", 1),
    ("epoch-000002.weights.h5", 1),    # the backup
    ("history.csv", 3),
    ("training_state.json", 2),        # the commit itself
])
def test_a_kill_anywhere_in_the_commit_resumes_and_finishes(tmp_path, monkeypatch, name, occurrence):
    model_path = prepare_model_dir(tmp_path / "model")
    kill_at(monkeypatch, name, occurrence)
    with pytest.raises(Killed):
        run(model_path)
    committed = steps_done(model_path)
    assert committed < 8
    monkeypatch.undo()
    resumed = run(model_path)
    assert int(resumed.optimizer.iterations.numpy()) == 8
    assert_finished_consistently(model_path)


def test_a_damaged_last_checkpoint_of_a_finished_run_is_written_again(tmp_path, capsys):
    model_path = prepare_model_dir(tmp_path / "model")
    run(model_path)
    last = model_path / "checkpoints" / "last.keras"
    last.write_bytes(last.read_bytes()[:1000])  # as a writer of before left it
    again = run(model_path)
    assert "written again from the backup of step 8" in capsys.readouterr().out
    assert is_complete_archive(last)
    np.testing.assert_array_equal(keras.models.load_model(last).get_weights()[0], again.get_weights()[0])


def test_a_damaged_best_checkpoint_gives_way_to_the_last(tmp_path, capsys):
    model_path = prepare_model_dir(tmp_path / "model")
    run(model_path, 4)
    best = model_path / "checkpoints" / "best.keras"
    best.write_bytes(best.read_bytes()[:-100])
    model = load_trained_model(model_path)
    assert "best.keras is damaged" in capsys.readouterr().out and model.count_params() > 0
    (model_path / "checkpoints" / "last.keras").write_bytes(b"PK")
    with pytest.raises(checkpoints.DataError, match="damaged checkpoint"):
        load_trained_model(model_path)


def test_a_damaged_backup_falls_back_to_the_previous_one(tmp_path, capsys):
    model_path = prepare_model_dir(tmp_path / "model")
    run(model_path, 6)
    state = json.loads((model_path / "training_state.json").read_text())
    (model_path / "backup" / state["backup"]).write_bytes(b"\x89HDF damaged")
    resumed = run(model_path, 8)
    assert "resuming from the previous backup at step 4" in capsys.readouterr().out
    assert int(resumed.optimizer.iterations.numpy()) == 8
    assert_finished_consistently(model_path)


def test_a_best_score_of_the_discarded_epoch_is_taken_back_with_it(tmp_path, capsys):
    model_path = prepare_model_dir(tmp_path / "model")
    run(model_path, 6)
    state = json.loads((model_path / "training_state.json").read_text())
    history = pd.read_csv(model_path / "history.csv")
    kept = history[history["epoch"] < 2]["val_loss"]
    state["previous"]["best"] = {**state["best"], "value": float(kept.min()), "epoch": int(kept.idxmin())}
    state["best"] = {**state["best"], "value": 0.0, "epoch": 2}  # the epoch whose backup is damaged was best
    (model_path / "training_state.json").write_text(json.dumps(state))
    (model_path / "backup" / state["backup"]).write_bytes(b"\x89HDF damaged")
    run(model_path, 8)
    assert "resuming from the previous backup at step 4" in capsys.readouterr().out
    assert_finished_consistently(model_path)  # the best is among the epochs history.csv records


def test_a_folder_of_keras_backup_and_restore_still_resumes(tmp_path):
    model_path = prepare_model_dir(tmp_path / "model")
    run(model_path, 4)
    state = json.loads((model_path / "training_state.json").read_text())
    backup = model_path / "backup"
    (backup / state["backup"]).rename(backup / "latest.weights.h5")  # as BackupAndRestore named it
    (backup / state["previous"]["backup"]).unlink()
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": 2, "batch": 0}))
    legacy = {key: state[key] for key in ("steps_done", "max_steps", "steps_per_epoch", "last_logs")}
    (model_path / "training_state.json").write_text(json.dumps(legacy))
    resumed = tiny_model()
    train(resumed, toy_dataset(), model_path, 8, 2, verbose=0)
    assert int(resumed.optimizer.iterations.numpy()) == 8 and steps_done(model_path) == 8  # 4 restored + 4


HOLDER = """
import sys, time
from dltk2.io.locks import lock_folder
lock_folder(sys.argv[1], "model folder")
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_process_on_one_model_folder_is_refused_until_the_first_ends(tmp_path):
    model_path = tmp_path / "model"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(model_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ResourceError, match=rf"{model_path}: model folder in use by pid {holder.pid} on "):
            prepare_model_dir(model_path, restart=True)
        assert (model_path / ".lock").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    prepare_model_dir(model_path, restart=True)  # the kernel released the killed holder's lock
    assert sorted(p.name for p in model_path.iterdir()) == [".lock", "checkpoints"]


KILLED_RUN = """
import os, signal, sys
from pathlib import Path
import numpy as np, tensorflow as tf, keras
from dltk2.networks.resnet import resnet_3d
from dltk2.training import prepare_model_dir, train
real, seen = os.replace, []
def replace(source, destination):
    if Path(destination).name == "last.keras":
        seen.append(1)
        if len(seen) == 4 and len(sys.argv) > 2:  # the final last.keras of 8 steps: half written, then SIGKILL
            Path(source).write_bytes(Path(source).read_bytes()[:500])
            os.kill(os.getpid(), signal.SIGKILL)
    return real(source, destination)
os.replace = replace
rng = np.random.default_rng(0)
labels = rng.integers(0, 2, size=32).astype(np.int32)
images = rng.normal(labels[:, None, None, None, None], 1.0, size=(32, 8, 8, 8, 1)).astype(np.float32)
data = tf.data.Dataset.from_tensor_slices((images, labels))
model = resnet_3d((8, 8, 8, 1), num_classes=2, filters=(4, 8), strides=(1, 2))
model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
train(model, data.repeat().batch(4), prepare_model_dir(sys.argv[1]), 8, 2, validation_dataset=data.take(8).batch(4),
      verbose=0)
print("steps", int(model.optimizer.iterations.numpy()))
"""


@pytest.mark.slow
def test_sigkill_during_the_final_last_checkpoint_write_resumes_and_finishes(tmp_path):
    model_path = tmp_path / "model"
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, str(model_path), "kill"], env=environment,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert steps_done(model_path) == 6
    for attempt in range(2):  # every restart finishes, the second has nothing left to do
        started = time.time()
        again = subprocess.run([sys.executable, "-c", KILLED_RUN, str(model_path)], env=environment,
                               capture_output=True, text=True, timeout=300)
        assert again.returncode == 0 and "steps 8" in again.stdout, again.stderr[-2000:]
        assert time.time() - started < 300
    assert_finished_consistently(model_path)
