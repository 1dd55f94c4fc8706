"""Tests of dltk2.io.pipeline: the options every dltk2 input pipeline ends with."""

import threading

import numpy as np
import tensorflow as tf

from dltk2.io.pipeline import pipeline_options, with_pipeline_options

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
