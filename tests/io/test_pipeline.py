"""Tests of dltk2.io.pipeline: the options every dltk2 input pipeline ends with, and the exit drain."""

import threading

import numpy as np
import pytest
import tensorflow as tf

from dltk2.io import pipeline
from dltk2.io.pipeline import drain_python_calls, pipeline_options, py_function, with_pipeline_options

DATA = tf.data.experimental.AutoShardPolicy.DATA


def test_options_turn_the_autotuning_model_off_and_set_the_shard_policy():
    options = pipeline_options(DATA)
    assert options.autotune.enabled is False
    assert options.experimental_distribute.auto_shard_policy == DATA
    default = pipeline_options()
    assert default.experimental_distribute.auto_shard_policy == tf.data.Options().experimental_distribute.auto_shard_policy


def test_options_hold_through_later_transformations_and_later_options_win():
    dataset = with_pipeline_options(tf.data.Dataset.range(4), DATA).map(lambda x: x + 1).batch(2)
    assert dataset.options().autotune.enabled is False
    assert dataset.options().experimental_distribute.auto_shard_policy == DATA
    options = tf.data.Options()
    options.autotune.enabled = True
    assert dataset.with_options(options).options().autotune.enabled is True
    assert [batch.tolist() for batch in dataset.as_numpy_iterator()] == [[1, 2], [3, 4]]


def test_autotuned_map_still_runs_calls_in_parallel_without_the_model():
    # Each call waits at a two-party barrier: with one call at a time the first call would time out.
    barrier = threading.Barrier(2, timeout=30)

    def meet(value):
        barrier.wait()
        return value

    dataset = tf.data.Dataset.range(6).map(lambda x: tf.py_function(meet, [x], tf.int64),
                                           num_parallel_calls=tf.data.AUTOTUNE)
    values = sorted(int(value) for value in with_pipeline_options(dataset).prefetch(tf.data.AUTOTUNE))
    assert values == list(range(6))
    assert not barrier.broken


def test_prefetch_autotune_buffers_without_the_model():
    # The producer runs ahead of a consumer that has not asked yet: elements are made before they are taken.
    made = []

    def make(value):
        made.append(int(value))
        return value

    dataset = with_pipeline_options(tf.data.Dataset.range(10).map(lambda x: tf.py_function(make, [x], tf.int64))
                                    .prefetch(tf.data.AUTOTUNE))
    iterator = iter(dataset)
    first = int(next(iterator))
    for _ in range(200):
        if len(made) > 1:
            break
        threading.Event().wait(0.01)
    assert first == 0 and len(made) > 1
    assert np.array_equal([first] + [int(value) for value in iterator], np.arange(10))


@pytest.fixture
def calls(monkeypatch):
    """A fresh record of pipeline calls, so that closing it does not close the suite's pipelines."""
    fresh = pipeline._PythonCalls()
    monkeypatch.setattr(pipeline, "_calls", fresh)
    return fresh


def test_py_function_gives_what_tf_py_function_gives_and_counts_its_calls(calls):
    dataset = tf.data.Dataset.range(5).map(lambda x: py_function(lambda v: v * 2, [x], tf.int64),
                                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    assert [int(value) for value in dataset] == [0, 2, 4, 6, 8]
    assert calls.active == 0 and calls.last_end > float("-inf")


def test_after_the_drain_calls_fail_at_once_naming_the_exit(calls):
    assert drain_python_calls(quiet_s=0.0) is True
    entered = []
    dataset = tf.data.Dataset.range(3).map(lambda x: py_function(lambda v: entered.append(v) or v, [x], tf.int64))
    with pytest.raises(tf.errors.OpError, match="interpreter is exiting"):
        next(iter(dataset))
    assert entered == [] and calls.active == 0


class CallInFlight:
    """A pipeline whose one Python call blocks until released, read by a thread of its own."""

    def __init__(self) -> None:
        self.entered, self.release, self.results = threading.Event(), threading.Event(), []

        def blocked(value):
            self.entered.set()
            self.release.wait(30)
            return value

        dataset = tf.data.Dataset.range(1).map(lambda x: py_function(blocked, [x], tf.int64))
        self.consumer = threading.Thread(target=lambda: self.results.extend(int(value) for value in dataset))
        self.consumer.start()
        assert self.entered.wait(30)

    def finish(self) -> list[int]:
        self.release.set()
        self.consumer.join(30)
        return self.results


def test_the_drain_waits_for_a_call_in_flight(calls):
    call = CallInFlight()
    threading.Timer(0.2, call.release.set).start()
    assert drain_python_calls(quiet_s=0.05) is True
    assert call.release.is_set() and calls.active == 0  # it returned only after the call did
    assert call.finish() == [0]


def test_the_drain_gives_up_after_its_timeout_and_says_so(calls, capsys):
    call = CallInFlight()
    try:
        assert drain_python_calls(quiet_s=0.05, timeout_s=0.1) is False
        assert "1 input pipeline read(s) still running after 0.1 s at exit" in capsys.readouterr().err
        assert not call.release.is_set()
    finally:
        results = call.finish()
    assert results == [0]
