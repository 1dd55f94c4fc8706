"""The node's spool: every received instance as a file, durable before its C-STORE is answered.

Layout under the configured ``spool`` folder::

    instances/<SeriesInstanceUID>/<SOPInstanceUID>.dcm   as received (DICOM File Format, the sender's syntax)
    results/<SeriesInstanceUID>/<application>_<seg|sr>.dcm   what the models made of it
    state.db                                             dltk2.node.state (by default)

A file is written to a temporary name, flushed to the disk (``fsync``), renamed into place and its
folder flushed, so once the SCP answers success the instance survives a kill or a power cut; a
write interrupted before that leaves no file under a final name. Names are UIDs (digits and dots,
checked), never a patient's name.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from dltk2.io.atomic import default_mode

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def is_uid(value: str) -> bool:
    """A DICOM UID: digits and dots, at most 64 characters (also safe as a file name)."""
    return len(value) <= 64 and _UID.match(value) is not None


def _fsync_folder(folder: Path) -> None:
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_durably(path: Path, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically and flushes it and its folder to the disk."""
    folder = path.parent
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    if created:
        _fsync_folder(folder.parent)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, default_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_folder(folder)
    return path


class Spool:
    """The spool folder (see the module docstring)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def series_folder(self, series_instance_uid: str) -> Path:
        return self.root / "instances" / series_instance_uid

    def results_folder(self, series_instance_uid: str) -> Path:
        return self.root / "results" / series_instance_uid

    def store(self, series_instance_uid: str, sop_instance_uid: str, data: bytes) -> str:
        """Writes one instance durably; returns its path relative to the spool."""
        if not (is_uid(series_instance_uid) and is_uid(sop_instance_uid)):
            raise ValueError(f"not UIDs: {series_instance_uid!r}, {sop_instance_uid!r}")
        path = self.series_folder(series_instance_uid) / f"{sop_instance_uid}.dcm"
        write_durably(path, data)
        return str(path.relative_to(self.root))

    def instance_files(self) -> list[Path]:
        """Every spooled instance (``instances/<series>/<sop>.dcm``), sorted."""
        return sorted((self.root / "instances").glob("*/*.dcm"))

    def remove_temporaries(self) -> int:
        """Deletes what writes killed half-way left (``.<name>.tmp``); returns how many."""
        count = 0
        for path in (self.root / "instances").glob("*/.*.tmp"):
            path.unlink(missing_ok=True)
            count += 1
        return count
