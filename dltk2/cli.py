"""Running command-line applications: absl's ``app.run`` with data errors reported in one line.

A missing column, an unreadable image or a NaN volume is the user's data, not a bug: the script
prints ``error: <file>: <problem>`` and exits with status 2 instead of a traceback.
"""

from __future__ import annotations

import re
import sys
from typing import Callable

import tensorflow as tf
from absl import app, flags

from dltk2.io.image import ImageReadError
from dltk2.io.reader import CsvError, ReaderError

def define_run_flags() -> None:
    """The flags every training script shares: --restart, --verbose, --precision, --devices."""
    flags.DEFINE_boolean("restart", False, "Delete an existing model folder and start over.")
    flags.DEFINE_boolean("verbose", False, "Log more, and a progress bar per epoch.")
    flags.DEFINE_enum("precision", "auto", ["auto", "float32", "mixed_float16", "mixed_bfloat16"],
                      "Precision policy; auto: mixed_float16 on GPU, float32 on CPU.")
    flags.DEFINE_list("devices", [], "Devices for MirroredStrategy, e.g. /gpu:0,/gpu:1; default: all GPUs.")


DATA_ERRORS = (CsvError, ImageReadError, ReaderError, FileNotFoundError)


def data_error_message(error: BaseException) -> str | None:
    """The one-line description of a data error, or None if ``error`` is not one.

    Errors raised by a ``read_fn`` inside tf.data arrive as ``tf.errors.OpError``; their message
    holds the reader's own line (``reading [row]: <file>: <problem>``), which is returned.
    """
    if isinstance(error, DATA_ERRORS):
        return str(error).strip().splitlines()[0]
    if isinstance(error, tf.errors.OpError):
        match = re.search(r"ReaderError: (reading \[.*)", error.message)
        if match:
            return match.group(1).strip()
    return None


def run(main: Callable[[list[str]], None]) -> None:
    """``absl.app.run(main)``, printing data errors as one line (exit status 2)."""

    def guarded(argv: list[str]) -> None:
        try:
            main(argv)
        except Exception as error:  # only data errors become a message; everything else re-raises
            message = data_error_message(error)
            if message is None:
                raise
            sys.stderr.write(f"error: {message}\n")
            # A normal exit: dltk2.io.pipeline drains the pipelines' reads before the interpreter ends.
            sys.exit(2)

    app.run(guarded)
