"""Writing files atomically: to a temporary file beside the target, then renamed over it.

A write that is killed half-way leaves the old file (or none) under the final name, never half a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import pandas as pd


def current_umask() -> int:
    """The process' file-creation mask (read from /proc where it can be, without changing it)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: the only portable read sets it, briefly
    os.umask(mask)
    return mask


def default_mode(directory: bool = False) -> int:
    """The permissions ``open()`` / ``mkdir()`` would give a new file / folder under the current umask.

    ``tempfile`` creates its files 0600 and folders 0700; renamed into place they would keep those,
    and a model server running as another user could not read the model.
    """
    return (0o777 if directory else 0o666) & ~current_umask()


@contextlib.contextmanager
def atomic_destination(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yields a new empty temporary file beside ``path`` to write; renames it over ``path`` at the end.

    If the block raises (or is interrupted), the temporary file is removed and ``path`` keeps its old
    content, or stays absent. The parent folder is created; the file gets the permissions a plain
    ``open()`` would give it (:func:`default_mode`).

    Args:
        path: The final file.
        suffix: End of the temporary name, for writers that choose the format by it (``.keras``,
            ``.weights.h5``, ``.nii.gz``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, default_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: str | Path, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically, creating the parent folder; returns the path."""
    with atomic_destination(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text_atomically(path: str | Path, text: str) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` atomically, creating the parent folder; returns the path."""
    return write_bytes_atomically(path, text.encode("utf-8"))


def write_csv_atomically(table: pd.DataFrame, path: str | Path, **to_csv_kwargs) -> Path:
    """``table.to_csv(path, index=False, **to_csv_kwargs)``, atomically."""
    return write_bytes_atomically(path, table.to_csv(index=False, **to_csv_kwargs).encode())


def replace_atomically(write, path: str | Path) -> Path:
    """Calls ``write(temporary_path)`` beside ``path``, then renames it over ``path``.

    For writers that take a path (``model.save``, ``model.save_weights``): a kill half-way leaves the
    old file or none, never half a file, and no temporary. The temporary name keeps Keras' required
    suffixes (``.keras``, ``.weights.h5``).
    """
    path = Path(path)
    suffix = ".weights.h5" if path.name.endswith(".weights.h5") else path.suffix
    with atomic_destination(path, suffix=suffix) as temporary:
        write(str(temporary))
    return path
