"""Tests of dltk2.quiet_start: TensorFlow's start-up lines off stderr, everything else kept, in order."""

import os
import subprocess
import sys

import pytest

from dltk2.quiet_start import CHATTER, filtered_stderr

SEEN = [  # as TensorFlow 2.21 printed them on a 2-core machine without a GPU
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796204742.249564    4834 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders.",
    "I0000 00:00:1796204742.249800    4834 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU "
    "will not be used.",
    "E0000 00:00:1796204745.130095    4834 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)",
]


def test_the_start_up_lines_are_dropped_and_others_kept_in_order(capfd):
    with filtered_stderr(lambda line: CHATTER.match(line) is not None):
        os.write(2, ("\n".join([SEEN[0], "first of mine", *SEEN[1:], "second of mine", ""])).encode())
        os.write(2, b"E0000 00:00:1.0 1 cuda_executor.cc:1] a real CUDA error\n")
    assert capfd.readouterr().err == "first of mine\nsecond of mine\nE0000 00:00:1.0 1 cuda_executor.cc:1] a real CUDA error\n"


def test_what_was_written_is_kept_when_the_block_fails(capfd):
    with pytest.raises(ZeroDivisionError), filtered_stderr(lambda line: False):
        os.write(2, b"before the failure\n")
        1 / 0
    assert capfd.readouterr().err == "before the failure\n"


SCRIPT = "import dltk2.cli, sys; import tensorflow as tf; import keras; sys.stderr.write('mine\\n'); print(tf.add(1, 2).numpy())"


@pytest.mark.slow
@pytest.mark.parametrize("level", [None, "2", "0"])
def test_a_script_starts_quietly_unless_the_user_asked_for_every_line(level):
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    if level is not None:
        environment["TF_CPP_MIN_LOG_LEVEL"] = level
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=environment,
                            timeout=120, check=True)
    assert result.stdout == "3\n"
    if level != "0":
        assert result.stderr == "mine\n"
    else:  # the user's level: every line TensorFlow writes
        assert SEEN[0] in result.stderr and "\nmine\n" in result.stderr
