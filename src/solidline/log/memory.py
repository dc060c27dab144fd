"""An event log in memory: for tests, examples, and projections built on the fly."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager

from ._base import EventLog, RawLine

__all__ = ["MemoryLog"]


class MemoryLog(EventLog):
    """A log held in a list of lines; safe to share between threads, gone when the process ends.

    Same lines, same chain and same checks as :class:`JsonlLog`, so it is a faithful stand-in.
    """

    name = "memory"

    def __init__(self, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self._lines: list[bytes] = []
        self._lock = threading.Lock()

    def _locked(self) -> AbstractContextManager[None]:
        return _Holding(self._lock)

    def _raw_lines(self, start: int) -> Iterator[RawLine]:
        end = len(self._lines)  # a batch is added in one extend, so a snapshot holds whole ones
        for seq in range(max(start, 1), end + 1):
            yield RawLine(seq, self._lines[seq - 1], self.name, seq)

    def _write(self, lines: list[bytes], first_seq: int) -> None:
        self._lines.extend(lines)

    def lines(self) -> list[bytes]:
        """A copy of the stored lines (for tests and for exporting)."""
        return list(self._lines)


class _Holding(AbstractContextManager[None]):
    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
