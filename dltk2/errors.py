"""The errors a user's inputs and surroundings cause, as opposed to bugs: each is reported in one line.

A missing column, a truncated NIfTI, a DICOM with a window width of 0, TFRecord shards of two
conversions in one folder, a model folder another process is training in, a database server that
does not answer: none of these is a defect of the program, and a traceback would only hide the one
line that matters. Every such error derives from :class:`DataError` or :class:`ResourceError`, its
message starts with the file, folder or peer it concerns, and :func:`dltk2.cli.run` prints that
line (``error: <message>``) and exits with status 2. Anything else is a bug and keeps its traceback.

Raise them as early as the inputs can be checked, before a network is built or a file is written.
"""

from __future__ import annotations


class DataError(ValueError):
    """An input that cannot be used: a file, a table, a value. The message names it and the problem."""


class ResourceError(RuntimeError):
    """A resource that cannot be used now: held by another process, or a server that does not answer."""


USER_ERRORS = (DataError, ResourceError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
               PermissionError)


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
