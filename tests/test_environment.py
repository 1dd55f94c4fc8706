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


MALLOC_PROBE = ("import dltk2.environment as e; from dltk2.environment import configure_malloc; "
                "print(configure_malloc())")


def _glibc() -> bool:
    import ctypes

    try:
        return bool(ctypes.CDLL("libc.so.6").gnu_get_libc_version())
    except (OSError, AttributeError):
        return False


def test_malloc_thresholds_are_raised_on_glibc():
    assert _run(MALLOC_PROBE).stdout.strip() == str(_glibc())


@pytest.mark.parametrize("variable", [{"DLTK2_MALLOC_TUNING": "0"}, {"MALLOC_TRIM_THRESHOLD_": "1000000"},
                                      {"MALLOC_MMAP_THRESHOLD_": "65536"}])
def test_malloc_is_left_alone_when_the_user_chose(variable):
    assert _run(MALLOC_PROBE, **variable).stdout.strip() == "False"


def test_the_launcher_quiets_tensorflows_warnings_unless_the_user_chose_and_the_library_does_not():
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    probe = "import os, {module}; print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"
    launched = subprocess.run([sys.executable, "-c", probe.format(module="dltk2.cli")], capture_output=True,
                              text=True, env=environment, timeout=120, check=True)
    assert launched.stdout.strip() == "2"
    chosen = subprocess.run([sys.executable, "-c", probe.format(module="dltk2.cli")], capture_output=True,
                            text=True, env=dict(environment, TF_CPP_MIN_LOG_LEVEL="0"), timeout=120, check=True)
    assert chosen.stdout.strip() == "0"
    library = subprocess.run([sys.executable, "-c", probe.format(module="dltk2")], capture_output=True, text=True,
                             env=environment, timeout=120, check=True)
    assert library.stdout.strip() == "None"
