"""The baselines solidline is measured against.

- :func:`orjson_loop`: every line of the same log files through ``orjson.loads`` and nothing
  else: the practical floor for reading JSON Lines in Python.
- :class:`EventsourcingStore`: the ``eventsourcing`` library (PyPI) with its SQLite recorder, the
  way its documentation sets it up: a :class:`~eventsourcing.persistence.Mapper` with its
  JSON transcoder turns domain events (frozen dataclasses) into stored events and back, and the
  application recorder keeps them in one table (WAL journal, SQLite's default
  ``synchronous=FULL``, so that a commit is durable). The domain event carries the same data as
  the solidline line (type, id and the event's JSON data); eventsourcing decodes it into a
  dataclass holding that data as dicts and lists, without validating it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import (
    DatetimeAsISO,
    JSONTranscoder,
    Mapper,
    UUIDAsHex,
)
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

__all__ = ["EventsourcingStore", "RecordedEvent", "log_lines", "orjson_loop"]


def log_lines(path: Path) -> Iterator[bytes]:
    """The lines of a JSON Lines log directory, segment after segment."""
    for segment in sorted(path.glob("*.jsonl")):
        with segment.open("rb") as f:
            yield from f


def orjson_loop(path: Path) -> int:
    """Parse every line of the log with ``orjson.loads``; the number of lines."""
    count = 0
    loads = orjson.loads
    for segment in sorted(path.glob("*.jsonl")):
        with segment.open("rb") as f:
            for line in f:
                loads(line)
                count += 1
    return count


class RecordedEvent(DomainEvent):
    """An event of the record as an eventsourcing domain event."""

    type: str
    event_id: str
    data: dict[str, Any]


RECORD_ID = uuid.UUID("5e1d11e0-0000-4000-8000-000000000001")


class EventsourcingStore:
    """One eventsourcing SQLite database holding the record as one sequence of domain events."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.datastore = SQLiteDatastore(str(path))
        self.recorder = SQLiteApplicationRecorder(self.datastore)
        self.recorder.create_table()
        transcoder = JSONTranscoder()
        transcoder.register(UUIDAsHex())
        transcoder.register(DatetimeAsISO())
        self.mapper: Mapper[uuid.UUID] = Mapper(transcoder=transcoder)
        self.version = self.recorder.max_notification_id() or 0

    def synchronous(self) -> int:
        """SQLite's ``PRAGMA synchronous`` of the connections (2 = FULL)."""
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("PRAGMA synchronous")
            return int(cursor.fetchone()[0])

    def events_from(self, lines: Iterable[bytes]) -> Iterator[RecordedEvent]:
        """Domain events carrying what the given solidline lines carry."""
        for line in lines:
            envelope = orjson.loads(line)
            self.version += 1
            yield RecordedEvent(
                originator_id=RECORD_ID,
                originator_version=self.version,
                timestamp=dt.datetime.fromisoformat(envelope["recorded_at"][:-1]).replace(
                    tzinfo=dt.UTC
                ),
                type=envelope["type"],
                event_id=envelope["id"],
                data=envelope["data"],
            )

    def append(self, events: list[RecordedEvent]) -> None:
        """Map and insert the events in one transaction (one durable commit)."""
        self.recorder.insert_events([self.mapper.to_stored_event(e) for e in events])

    def read(self, page: int = 1000) -> int:
        """Select every stored event and decode it into a domain event; how many."""
        count, start = 0, 1
        to_domain_event = self.mapper.to_domain_event
        while True:
            notifications = self.recorder.select_notifications(start, page)
            if not notifications:
                return count
            for notification in notifications:
                to_domain_event(notification)
            count += len(notifications)
            start = notifications[-1].id + 1

    def close(self) -> None:
        self.datastore.close()

