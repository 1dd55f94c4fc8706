"""One writer at a time: advisory locks on model folders and conversion outputs.

Two ``train.py`` on one ``--model_path`` both trained, appended to one history and collided at the
export; two conversions into one folder interleaved their shards. A second writer now stops at once
with one line naming the folder and the process that holds it (:class:`dltk2.errors.ResourceError`).

The lock is ``flock`` on a small file (``.lock`` in a model folder): the kernel releases it when its
holder exits, however it exits (a SIGKILL included), so there is never a stale lock to delete by
hand. The file itself stays; it records who held it last (pid, host, start time, command), which is
what the refusal prints. Locks are per process: asking again for a lock this process holds, or for a
folder inside a folder it holds, returns at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from dltk2.errors import ResourceError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux or macOS: no locking
    fcntl = None

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"

_held: dict[Path, int] = {}  # resolved folder -> file descriptor of its lock


def _holder_description(lock_file: Path) -> str:
    try:
        holder = json.loads(lock_file.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0)))
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {when} ({holder.get('command', '?')})"


def held_by_this_process(folder: str | Path) -> bool:
    """True if this process holds the lock of ``folder`` or of a folder above it."""
    folder = Path(folder).resolve()
    return any(folder == held or held in folder.parents for held in _held)


def lock_folder(folder: str | Path, what: str = "folder") -> Path:
    """Takes the lock of ``folder`` (created if missing) for the rest of this process, or refuses.

    Args:
        folder: The folder one writer at a time may change.
        what: What the folder is, for the refusal (``"model folder"``).

    Returns:
        The lock file.

    Raises:
        ResourceError: Another process holds it: ``<folder>: <what> in use by pid N on host ...``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    resolved = folder.resolve()
    lock_file = folder / LOCK_NAME
    if held_by_this_process(resolved) or fcntl is None:
        return lock_file
    descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise ResourceError(f"{folder}: {what} in use by {_holder_description(lock_file)}; wait for it to end "
                            "or choose another folder") from None
    # The script's name only: its arguments may hold a database password.
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
              "command": Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"}
    os.ftruncate(descriptor, 0)
    os.write(descriptor, json.dumps(holder).encode())
    _held[resolved] = descriptor
    return lock_file


def unlock_folder(folder: str | Path) -> None:
    """Releases a lock this process took with :func:`lock_folder` (it is released at exit anyway)."""
    descriptor = _held.pop(Path(folder).resolve(), None)
    if descriptor is not None:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


@contextlib.contextmanager
def locked_folder(folder: str | Path, what: str = "folder") -> Iterator[Path]:
    """:func:`lock_folder` for the duration of a ``with`` block (unless this process held it before)."""
    already = held_by_this_process(folder)
    lock_file = lock_folder(folder, what)
    try:
        yield lock_file
    finally:
        if not already:
            unlock_folder(folder)
