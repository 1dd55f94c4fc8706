"""Writing files atomically: to a temporary file beside the target, then renamed over it.

A write that is killed half-way leaves the old file (or none) under the final name, never half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd


def write_bytes_atomically(path: str | Path, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically, creating the parent folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_csv_atomically(table: pd.DataFrame, path: str | Path, **to_csv_kwargs) -> Path:
    """``table.to_csv(path, index=False, **to_csv_kwargs)``, atomically."""
    return write_bytes_atomically(path, table.to_csv(index=False, **to_csv_kwargs).encode())
