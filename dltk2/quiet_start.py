"""TensorFlow's start-up chatter kept off a command-line run's terminal and logs.

``import tensorflow`` followed by its first device query printed nine lines to stderr before anything
of the script's own, on every run of every script (TF 2.21, 2 CPU cores, no GPU)::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... port.cc:153] oneDNN custom operations are on. You may see slightly different ...
    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    (the same three lines again, from TensorFlow's second native library)
    E0000 ... cuda_platform.cc:52] failed call to cuInit: ... UNKNOWN ERROR (303)

They come from C++ before absl's log is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` (even 3) does not
hide them. :func:`quiet_tensorflow_start` installs an import hook: TensorFlow's import and its first
device listing run with file descriptor 2 captured, and every captured line but these goes back to
stderr, in order, when the import ends (or fails). The command-line launcher (:mod:`dltk2.cli`) calls
it unless the user set ``TF_CPP_MIN_LOG_LEVEL=0`` (who asks for TensorFlow's INFO lines gets all of
them; a level of 1-3 asks for fewer, which these lines ignore); the library import does not.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import re
import sys
import tempfile
from typing import Callable, Iterator

CHATTER = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} [\d:.]+\s+\d+ (port|cudart_stub|cpu_feature_guard)\.cc:\d+\] "
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\."
    r"|E\d{4} [\d:.]+\s+\d+ cuda_platform\.cc:\d+\] failed call to cuInit: )")
"""The start-up lines dropped; anything else TensorFlow prints while importing is kept."""


@contextlib.contextmanager
def filtered_stderr(drop: Callable[[str], bool]) -> Iterator[None]:
    """Captures file descriptor 2 (C++ and Python writes alike) and writes back the lines not dropped."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines(keepends=True)
                    if not drop(line)]
            if kept:
                os.write(2, "".join(kept).encode())


def _is_chatter(line: str) -> bool:
    return CHATTER.match(line) is not None


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` through the finders after it and runs its import under :func:`filtered_stderr`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: later imports of submodules are not ours
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                break
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            with filtered_stderr(_is_chatter):
                execute(module)
                module.config.list_physical_devices("GPU")  # cuInit's line, now rather than at the first op

        spec.loader.exec_module = exec_module
        return spec


def quiet_tensorflow_start() -> bool:
    """Drops TensorFlow's start-up lines from this process' stderr, unless TensorFlow is loaded already.

    Returns:
        True if the hook was installed.
    """
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietImport) for f in sys.meta_path):
        return False
    sys.meta_path.insert(0, _QuietImport())
    return True
