"""Writing files so that a crash leaves either the old bytes or the new, never a mix.

One place for what the log, the site, the delivery ledger and the projection cache all need:
a synced temporary file beside the target, renamed over it, and the folder synced so that the
rename itself survives a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from ._errors import LogLocked

__all__ = [
    "TEMPORARY_SUFFIX",
    "exclusive_lock",
    "fsync_folder",
    "write_atomically",
    "write_temporary",
]

TEMPORARY_SUFFIX = ".solidline-tmp"


def fsync_folder(folder: Path) -> None:
    """Make the folder's entries (a created, renamed or removed file) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temporary(target: Path, data: bytes) -> Path:
    """Write ``data`` to a new, synced temporary file beside ``target``; return its path.

    The file gets the usual mode (0o666 less the umask: a web server must read what ``publish``
    writes); it is removed again if writing fails.
    """
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}{TEMPORARY_SUFFIX}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temporary.unlink()
        raise
    os.close(fd)
    return temporary


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: readers and a crash see the old bytes or the new."""
    os.replace(write_temporary(path, data), path)
    fsync_folder(path.parent)


@contextlib.contextmanager
def exclusive_lock(path: Path, busy: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block.

    Raises:
        LogLocked: at once, with the message ``busy``, when another process holds it.
        OSError: the lock file cannot be opened.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LogLocked(busy) from None
        yield
    finally:
        os.close(fd)  # closing releases the flock
