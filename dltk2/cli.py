"""The command-line launcher: absl's ``app.run`` with user errors reported in one line.

A missing column, an unreadable image, a NaN volume or a model folder in use by another run is the
user's situation, not a bug (:mod:`dltk2.errors`): the script prints ``error: <file>: <problem>``
and exits with status 2 instead of a traceback.

Import this module first in a script (``import dltk2.cli``): before TensorFlow loads, it quiets
TensorFlow's C++ INFO and WARNING lines unless ``TF_CPP_MIN_LOG_LEVEL`` is set
(:func:`dltk2.environment.quiet_tensorflow_log`), and its start-up lines that ignore that level
unless it is 0 (:func:`dltk2.quiet_start.quiet_tensorflow_start`); ``dltk2`` turns oneDNN on.
"""

from __future__ import annotations

import os

from dltk2.environment import quiet_tensorflow_log
from dltk2.quiet_start import quiet_tensorflow_start

quiet_tensorflow_log()
if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() not in ("0", ""):  # a user who chose 0 sees every line
    quiet_tensorflow_start()

import re  # noqa: E402  (after the log level: TensorFlow reads it at its first log line)
import sys  # noqa: E402
from typing import Callable  # noqa: E402


from absl import app, flags  # noqa: E402

from dltk2.errors import USER_ERRORS, first_line  # noqa: E402

FLAGS = flags.FLAGS

def define_run_flags(export: bool = False) -> None:
    """The flags every training script shares: --restart, --verbose, --precision, --devices (and --export)."""
    flags.DEFINE_boolean("restart", False, "Delete an existing model folder and start over.")
    flags.DEFINE_boolean("verbose", False, "Log more, and a progress bar per epoch.")
    flags.DEFINE_enum("precision", "auto", ["auto", "float32", "mixed_float16", "mixed_bfloat16"],
                      "Precision policy; auto: mixed_float16 on GPU, float32 on CPU.")
    flags.DEFINE_list("devices", [], "Devices for MirroredStrategy, e.g. /gpu:0,/gpu:1; default: all GPUs.")
    if export:
        flags.DEFINE_boolean("export", True, "Export model.keras and a SavedModel when training ends.")


def run_settings():
    """The :class:`dltk2.training.RunSettings` of the parsed flags of :func:`define_run_flags`."""
    from dltk2.training.run import RunSettings

    return RunSettings(model_path=FLAGS.model_path, restart=FLAGS.restart, verbose=FLAGS.verbose,
                       precision=FLAGS.precision, devices=list(FLAGS.devices),
                       export=FLAGS.export if "export" in FLAGS else True)


def define_cross_validation_flags(output_columns: str | None = None) -> None:
    """cross_validate.py's flags: --model_paths (one folder per fold) and, given its columns, --output_csv.

    Args:
        output_columns: The out-of-fold table's columns, for --output_csv's help; None: no --output_csv
            (an application that writes a folder of its own instead).
    """
    flags.DEFINE_list("model_paths", None, "One model folder per fold (train.py --fold k), in any order.")
    if output_columns:
        flags.DEFINE_string("output_csv", None, f"Also write the out-of-fold predictions ({output_columns}) here.")
    flags.mark_flags_as_required(["model_paths"])


def print_table(table) -> None:
    """Prints a metrics table (a pandas DataFrame) as the scripts do: no index, four decimals."""
    print(table.to_string(index=False, float_format=lambda value: f"{value:.4f}"))


def from_flags(config_class, **values):
    """An instance of a dataclass whose fields are named as flags, from the parsed flags.

    Fields without a flag keep their defaults; ``values`` override both.
    """
    import dataclasses

    for field in dataclasses.fields(config_class):
        if field.name not in values and field.name in FLAGS:
            values[field.name] = FLAGS[field.name].value
    return config_class(**values)


def data_error_message(error: BaseException) -> str | None:
    """The one-line description of a user error (:data:`dltk2.errors.USER_ERRORS`), or None for a bug.

    Errors raised inside a tf.data pipeline arrive as ``tf.errors.OpError``; the pipeline's Python
    step remembers the original (:func:`dltk2.io.pipeline.user_error_in`), whose first line is
    returned. The reader's own line (``reading [row]: <file>: <problem>``) is also found in the
    message of an ``OpError`` from another process or thread.
    """
    if isinstance(error, USER_ERRORS + (app.UsageError,)):
        return first_line(error)
    if "tensorflow" not in sys.modules:  # no TensorFlow loaded: the error cannot come from a pipeline
        return None
    import tensorflow as tf

    from dltk2.io.pipeline import user_error_in

    if isinstance(error, tf.errors.OpError):
        original = user_error_in(error)
        if original is not None:
            return first_line(original)
        match = re.search(r"ReaderError: (reading \[.*)", error.message)
        if match:
            return match.group(1).strip()
    return None


HELP_FLAGS = ("--help", "-help", "-h", "-?", "--helpshort")


def application_help() -> str:
    """The running script's docstring and every flag it defines, its own and those dltk2 defines for it.

    absl's ``--help`` lists only the flags of the main module; an application's flags are partly
    defined by dltk2's modules (:func:`define_run_flags`, :mod:`dltk2.apps.ixi_hh_cli`).
    """
    main_module = sys.modules.get("__main__")
    lines = [(getattr(main_module, "__doc__", None) or "").strip(), ""]
    by_module = FLAGS.flags_by_module_dict()
    main_name = sys.argv[0]
    for module in sorted(by_module, key=lambda name: (name != main_name, name)):
        if module == main_name or module.startswith("dltk2"):
            lines.append(FLAGS.module_help(module))
    lines.append("\nabsl's own flags: --helpfull")
    return "\n".join(line for line in lines if line is not None)


def run(main: Callable[[list[str]], None]) -> None:
    """``absl.app.run(main)``, printing data errors as one line (exit status 2).

    ``--help`` (before any ``--``) prints :func:`application_help` and exits 0, before anything
    imports TensorFlow.
    """
    arguments = sys.argv[1:sys.argv.index("--")] if "--" in sys.argv else sys.argv[1:]
    if any(argument in HELP_FLAGS for argument in arguments):
        print(application_help())
        sys.exit(0)

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
