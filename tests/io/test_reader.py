"""Tests of dltk2.io.reader: modes, several examples per volume, errors, MirroredStrategy."""

import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from dltk2.io.image import read_array, write_image
from dltk2.io.reader import CsvError, Mode, Reader, _stack_aligned, read_csv_columns, resolve_csv_path
from dltk2.sampling import extract_random_example_array


@pytest.fixture
def volumes(tmp_path, rng):
    """Five volumes of different sizes, the label of each its row number."""
    rows = []
    for index in range(5):
        shape = (6 + index, 8, 7 + (index % 2))
        path = write_image(rng.normal(index, 1.0, size=shape).astype(np.float32), tmp_path / f"v{index}.nii.gz")
        rows.append([f"subject{index}", str(path), str(index)])
    return pd.DataFrame(rows, columns=["id", "image", "label"])


def read_fn(file_reference, mode, params):
    subject, path, label = file_reference
    image, _ = read_array(path)
    if mode == Mode.PREDICT:
        yield {"features": {"x": image}}
        return
    (crops,) = extract_random_example_array(image[..., None], params["example_size"], params["n_examples"],
                                            rng=np.random.default_rng())
    for crop in crops:
        yield {"features": {"x": crop}, "labels": {"y": np.int32(label)}}


def make_reader():
    return Reader(read_fn, {"features": {"x": tf.float32}, "labels": {"y": tf.int32}},
                  {"features": {"x": [4, 4, 4, 1]}, "labels": {"y": []}})


PARAMS = {"example_size": [4, 4, 4], "n_examples": 3}


def test_train_mode_repeats_shuffles_and_batches(volumes):
    dataset = make_reader().dataset(volumes, Mode.TRAIN, PARAMS, batch_size=4, seed=0)
    assert dataset.element_spec[0].shape.as_list() == [4, 4, 4, 4, 1]
    labels = np.concatenate([y.numpy() for _, y in dataset.take(30)])
    assert len(labels) == 120  # far more than 5 volumes x 3 crops: the dataset repeats
    assert set(labels) == {0, 1, 2, 3, 4}
    assert not np.array_equal(labels[:15], np.repeat(np.arange(5), 3))  # shuffled
    options = dataset.options()  # dltk2.io.pipeline's: no autotuning model, rows sharded by element
    assert options.autotune.enabled is False
    assert options.experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA


def test_eval_mode_is_one_ordered_pass_with_several_examples_per_volume(volumes):
    dataset = make_reader().dataset(volumes, Mode.EVAL, PARAMS, batch_size=4)
    batches = list(dataset)
    labels = np.concatenate([y.numpy() for _, y in batches])
    np.testing.assert_array_equal(labels, np.repeat(np.arange(5), 3))
    assert batches[-1][0].shape[0] == 3  # the short last batch is kept
    # The crops come from the right volumes: intensity mean follows the label.
    images = np.concatenate([x.numpy() for x, _ in batches])
    assert np.corrcoef(images.mean(axis=(1, 2, 3, 4)), labels)[0, 1] > 0.95


def test_predict_mode_gives_features_only_with_their_own_shapes(volumes):
    reader = Reader(read_fn, {"features": {"x": tf.float32}, "labels": {"y": tf.int32}},
                    {"features": {"x": [None, None, None]}})
    shapes = [x.shape for x in reader.dataset(volumes, Mode.PREDICT, PARAMS, batch_size=1)]
    assert [tuple(s) for s in shapes] == [(1, 6 + i, 8, 7 + (i % 2)) for i in range(5)]


def test_unreadable_file_fails_with_its_name(volumes, tmp_path):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not an image")
    volumes.loc[2, "image"] = str(broken)
    dataset = make_reader().dataset(volumes, Mode.EVAL, PARAMS, batch_size=2)
    with pytest.raises(tf.errors.OpError, match="broken.nii.gz"):
        for _ in dataset:
            pass


def test_skip_errors_skips_and_counts_bad_rows(volumes, tmp_path):
    volumes.loc[1, "image"] = str(tmp_path / "missing.nii.gz")
    reader = make_reader()
    dataset = reader.dataset(volumes, Mode.EVAL, PARAMS, batch_size=5, skip_errors=True)
    labels = np.concatenate([y.numpy() for _, y in dataset])
    np.testing.assert_array_equal(labels, np.repeat([0, 2, 3, 4], 3))
    assert len(reader.skipped) == 1
    assert "missing.nii.gz: no such file" in reader.skipped[0][1]


def test_wrong_example_shape_is_reported(volumes):
    reader = Reader(read_fn, {"features": {"x": tf.float32}, "labels": {"y": tf.int32}},
                    {"features": {"x": [5, 5, 5, 1]}, "labels": {"y": []}})
    with pytest.raises(tf.errors.OpError, match=r"does not match \(5, 5, 5, 1\)"):
        next(iter(reader.dataset(volumes, Mode.EVAL, PARAMS)))


def test_reader_feeds_fit_under_two_replica_mirrored_strategy(volumes):
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2
    strategy = tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.HierarchicalCopyAllReduce())
    dataset = make_reader().dataset(volumes, Mode.TRAIN, PARAMS, batch_size=4, seed=1)
    with strategy.scope():
        model = keras.Sequential([keras.Input((4, 4, 4, 1)), keras.layers.GlobalAveragePooling3D(),
                                  keras.layers.Dense(5)])
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(dataset, epochs=1, steps_per_epoch=5, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert int(model.optimizer.iterations.numpy()) == 5


def test_read_csv_columns_names_file_and_missing_column(tmp_path):
    path = tmp_path / "subjects.csv"
    path.write_text("IXI_ID,AGE\nIXI002,35.8\n")
    assert read_csv_columns(path, ["IXI_ID"])["IXI_ID"].tolist() == ["IXI002"]
    with pytest.raises(CsvError, match=r"subjects\.csv: lacks column\(s\) 'SEX_ID \(1=m, 2=f\)' \(has 'IXI_ID', 'AGE'\)"):
        read_csv_columns(path, ["IXI_ID", "SEX_ID (1=m, 2=f)"])
    with pytest.raises(CsvError, match="no such CSV file"):
        read_csv_columns(tmp_path / "none.csv", ["IXI_ID"])
    (tmp_path / "empty.csv").write_text("IXI_ID,AGE\n")
    with pytest.raises(CsvError, match="no rows"):
        read_csv_columns(tmp_path / "empty.csv", ["IXI_ID"])


USER_SCRIPT = """
import dltk2, sys, numpy as np, tensorflow as tf, keras
from dltk2.io.reader import Reader, Mode
from dltk2.io.image import read_array

def read_fn(row, mode, params):
    image, _ = read_array(row[0])
    yield {"features": {"x": image[:4, :4, :4, None]}, "labels": {"y": np.int32(0)}}

reader = Reader(read_fn, {"features": {"x": tf.float32}, "labels": {"y": tf.int32}},
                {"features": {"x": [4, 4, 4, 1]}, "labels": {"y": []}})
dataset = reader.dataset([[path] for path in sys.argv[1:]], Mode.TRAIN, batch_size=2)
model = keras.Sequential([keras.Input((4, 4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(dataset, steps_per_epoch=20, epochs=1, verbose=0)
"""


@pytest.mark.slow  # fresh processes, each importing TensorFlow
def test_a_script_that_hits_a_bad_file_exits_cleanly_instead_of_aborting(volumes, tmp_path):
    # Without dltk2.io.pipeline's exit drain this aborted ("FATAL: exception not rethrown") or hung at exit.
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(Path(volumes.loc[0, "image"]).read_bytes()[:200])
    paths = list(volumes["image"]) + [str(broken)]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for _ in range(3):
        result = subprocess.run([sys.executable, "-c", USER_SCRIPT, *paths], capture_output=True, text=True,
                                timeout=120, env=environment)
        assert result.returncode == 1, result.stderr[-2000:]
        assert re.search(r"ReaderError: reading .*broken\.nii\.gz: .*truncated or corrupt", result.stderr)


LIVE_ITERATOR_SCRIPT = """
import atexit, sys, time

reads = {"started": 0, "running": 0}


def watch_the_end_of_exit():
    # Registered before dltk2 is imported, so it runs after dltk2's exit handler, just before the
    # interpreter's finalization, which stops any thread that then asks for the GIL.
    started = reads["started"]
    time.sleep(0.3)
    print(f"reads started at the end of exit: {reads['started'] - started}; running: {reads['running']}", flush=True)


atexit.register(watch_the_end_of_exit)

import dltk2, numpy as np, tensorflow as tf
from dltk2.io.reader import Reader, Mode
from dltk2.io.image import read_array


def read_fn(row, mode, params):
    reads["started"] += 1
    reads["running"] += 1
    try:
        time.sleep(0.02)  # the pipeline still fills its buffers when the script ends
        image, _ = read_array(row[0])
        yield {"features": {"x": image[:4, :4, :4, None]}, "labels": {"y": np.int32(0)}}
    finally:
        reads["running"] -= 1


reader = Reader(read_fn, {"features": {"x": tf.float32}, "labels": {"y": tf.int32}},
                {"features": {"x": [4, 4, 4, 1]}, "labels": {"y": []}})
iterator = iter(reader.dataset([[path] for path in sys.argv[1:]], Mode.TRAIN, batch_size=2))
next(iterator)
next(iterator)
print("read two batches", flush=True)
"""


@pytest.mark.slow  # fresh processes, each importing TensorFlow
def test_a_script_that_ends_with_a_live_training_iterator_exits(volumes):
    # The script ends while its endless pipeline is still reading. Reads that ask for the GIL during
    # finalization are stopped; the process then aborted ("FATAL: exception not rethrown") or hung in
    # the iterator's destructor (6 of 11 runs before dltk2.io.pipeline's exit handler). With it, no
    # read runs or starts once the exit handlers are done.
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", LIVE_ITERATOR_SCRIPT, *volumes["image"]], capture_output=True,
                            text=True, timeout=120, env=environment)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == ["read two batches", "reads started at the end of exit: 0; running: 0"]
    assert "still running" not in result.stderr


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint8])
def test_stacked_examples_are_aligned_for_tensorflow_and_equal_to_np_stack(rng, dtype):
    arrays = [rng.random((16, 64, 33)) * 200 for _ in range(3)]  # float64 in, cast as astype does
    stacked = _stack_aligned(arrays, dtype)
    assert stacked.ctypes.data % 64 == 0 and stacked.dtype == dtype
    np.testing.assert_array_equal(stacked, np.stack(arrays).astype(dtype))
    with pytest.raises(ValueError, match="same shape"):
        _stack_aligned([arrays[0], arrays[1][:3]], dtype)


def test_paths_in_a_csv_are_taken_from_its_folder_whatever_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "data" / "img").mkdir(parents=True)
    (tmp_path / "data" / "img" / "a.nii.gz").write_bytes(b"")
    (tmp_path / "old" / "img").mkdir(parents=True)
    (tmp_path / "old" / "img" / "b.nii.gz").write_bytes(b"")
    csv = tmp_path / "data" / "cases.csv"
    csv.write_text(f"id,imgs,lbls\na,img/a.nii.gz,\nb,old/img/b.nii.gz,\nc,{tmp_path}/x.nii.gz,\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    table = read_csv_columns(csv, ["id", "imgs"], path_columns=["imgs", "lbls"])
    assert table["imgs"].tolist() == [str(tmp_path / "data" / "img" / "a.nii.gz"), str(tmp_path / "data" / "old" /
                                      "img" / "b.nii.gz"), f"{tmp_path}/x.nii.gz"]
    assert table["lbls"].tolist() == ["", "", ""]
    monkeypatch.chdir(tmp_path)  # an older CSV's paths, relative to where it was written from
    assert resolve_csv_path("old/img/b.nii.gz", tmp_path / "data") == "old/img/b.nii.gz"
    assert resolve_csv_path("img/a.nii.gz", tmp_path / "data") == str(tmp_path / "data" / "img" / "a.nii.gz")
