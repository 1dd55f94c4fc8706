"""Tests of dltk2.progress: plain lines, the first step at once, then at most one per interval."""

import re

import keras
import numpy as np
import pytest

from dltk2.progress import TrainingProgress, duration, format_logs, progress_lines


def fit(progress, steps=6, steps_per_epoch=3):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.ones((6, 2), np.float32)
    model.fit(x, np.zeros(6), batch_size=2, steps_per_epoch=steps_per_epoch, epochs=steps // steps_per_epoch,
              validation_data=(x, np.zeros(6)), verbose=0, callbacks=[progress])


def test_a_long_interval_shows_the_first_step_and_each_epoch():
    lines = []
    fit(TrainingProgress(6, 3, interval_s=3600, best_epoch=lambda: 0, write=lines.append))
    assert len(lines) == 3
    assert re.fullmatch(r"step 1/6 \(epoch 1/2\): loss=[\d.e-]+; first step after \d+ s \(tracing included\)", lines[0])
    assert re.fullmatch(r"epoch 1/2 \(step 3/6, \d+ s\): loss=[\d.e-]+, val_loss=[\d.e-]+; best so far", lines[1])
    assert lines[2].startswith("epoch 2/2 (step 6/6, ") and "best so far" not in lines[2]


def test_no_interval_shows_every_step_with_its_speed_and_time_left():
    lines = []
    fit(TrainingProgress(6, 3, interval_s=0, write=lines.append))
    steps = [line for line in lines if line.startswith("step ")]
    assert [int(line.split()[1].split("/")[0]) for line in steps] == [1, 2, 3, 4, 5, 6]
    assert re.search(r"; [\d.]+ steps/s, about \d+ s left$", steps[2])


def test_loops_report_done_items_and_the_time_left():
    lines = []
    assert list(progress_lines(range(4), 4, "cases", interval_s=0, write=lines.append)) == [0, 1, 2, 3]
    assert lines[0] == "cases 1/4 done (25 %), about 0 s left" and len(lines) == 3
    assert list(progress_lines(iter("ab"), None, "windows", interval_s=0, write=lines.append)) == ["a", "b"]
    assert lines[-1] == "windows 1/? done"


@pytest.mark.parametrize("seconds, text", [(0.4, "0 s"), (59.4, "59 s"), (200, "3 min 20 s"), (3900, "1 h 05 min")])
def test_durations_read_as_a_person_says_them(seconds, text):
    assert duration(seconds) == text


def test_logs_in_keras_order_with_four_significant_digits():
    assert format_logs({"loss": 0.693147, "val_accuracy": 0.5}) == "loss=0.6931, val_accuracy=0.5"
