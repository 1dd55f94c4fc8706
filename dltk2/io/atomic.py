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


@contextlib.contextmanager
def atomic_destination(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yields a new empty temporary file beside ``path`` to write; renames it over ``path`` at the end.

    If the block raises (or is interrupted), the temporary file is removed and ``path`` keeps its old
    content, or stays absent. The parent folder is created.

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
