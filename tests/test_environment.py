"""Tests of dltk2.environment: oneDNN is turned on unless the user chose, and only before TensorFlow."""

import os
import subprocess
import sys

import pytest

PROBE = "import os, dltk2; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'))"


def _run(code, **env):
    environment = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                          timeout=120, check=True)


def test_dltk2_turns_onednn_on_by_default():
    assert _run(PROBE).stdout.strip() == "1"


@pytest.mark.parametrize("choice", ["0", "1"])
def test_user_choice_is_kept(choice):
    assert _run(PROBE, TF_ENABLE_ONEDNN_OPTS=choice).stdout.strip() == choice


def test_late_import_warns_instead_of_pretending():
    code = ("import logging, tensorflow, os; logging.basicConfig(); import dltk2; "
            "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'))")
    result = _run(code, TF_CPP_MIN_LOG_LEVEL="2")
    assert result.stdout.strip() == "None"
    assert "TensorFlow was imported before dltk2" in result.stderr
