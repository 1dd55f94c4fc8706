"""Paths built from values in a table (subject and exam ids), refused when they would leave their folder.

An MRNet CSV row ``../../../outside/9999,1`` used to train on ``<data_dir>/train/sagittal/../../../
outside/9999.npy``, a file outside the data folder. An id is a name, not a path: it may not hold a
path separator, be ``.`` or ``..``, or be empty, and the joined path must stay inside the folder
(checked on the names, so a data folder that is itself a symbolic link still works).
"""

from __future__ import annotations

import os
from pathlib import Path

from dltk2.errors import DataError


def check_name(name: str, source: str, what: str = "id") -> str:
    """``name`` if it can be one component of a path; otherwise a DataError naming ``source``.

    Args:
        name: The value from the table.
        source: The table (file) it came from, for the message.
        what: What the value is (``"id"``, ``"exam id"``), for the message.
    """
    text = str(name)
    if (not text.strip() or text in (".", "..") or "/" in text or "\\" in text or os.sep in text
            or "\x00" in text):
        raise DataError(f"{source}: {what} {text!r} is not a plain name (it would name a file outside the "
                        "data folder, or none)")
    return text


def path_inside(folder: str | Path, *parts: str, source: str) -> Path:
    """``folder / parts...``, refusing a result that is not inside ``folder`` (compared by name).

    Raises:
        DataError: The joined path leaves ``folder``; the message names ``source``.
    """
    folder = Path(folder)
    joined = folder.joinpath(*parts)
    base = os.path.normpath(os.path.abspath(folder))
    target = os.path.normpath(os.path.abspath(joined))
    if os.path.commonpath([base, target]) != base or target == base:
        raise DataError(f"{source}: {os.path.join(*parts)!r} names a path outside {folder}")
    return joined
