"""Event logs behind one interface: JSON Lines (the default), memory, PostgreSQL."""

from __future__ import annotations

import os

from ._base import GENESIS, EventLog, Head, VerifyReport
from .jsonl import JsonlLog
from .memory import MemoryLog

__all__ = ["GENESIS", "EventLog", "Head", "JsonlLog", "MemoryLog", "VerifyReport", "open_log"]


def open_log(
    location: str | os.PathLike[str], *, readonly: bool = False, **options: object
) -> EventLog:
    """Open the log at ``location``: a directory path, or a ``postgresql://`` URL.

    Args:
        location: where the log is.
        readonly: open for reading only (no lock taken, no recovery).
        options: passed to the backend's constructor.
    """
    text = os.fspath(location)
    if text.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresLog  # optional extra: psycopg

        return PostgresLog(text, readonly=readonly, **options)  # type: ignore[arg-type]
    return JsonlLog(text, readonly=readonly, create=not readonly, **options)  # type: ignore[arg-type]
