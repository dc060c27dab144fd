"""Append: one event at a time (each made durable with fdatasync) and batches of 100.

Baseline in the same rounds: eventsourcing's SQLite application recorder inserting the same
events, one transaction (one durable commit) per append. Targets: single durable appends at
least 1.5× eventsourcing's rate; batches of 100 at 150,000 events/s or more.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from pathlib import Path

from solidline import Event, JsonlLog
from solidline.codec import event_data

from . import Context, Figure, timed
from .baselines import RECORD_ID, EventsourcingStore, RecordedEvent
from .generate import events

__all__ = ["run"]


def _workload(singles: int, batched: int) -> tuple[list[Event], list[Event], list[Event]]:
    """Entity definitions, then the events to append one by one, then those to batch."""
    definitions: list[Event] = []
    rest: list[Event] = []
    for batch, _ in events(10_000 + singles + batched, seed=2):
        (definitions if batch[0].type == "entity.defined" else rest).extend(batch)
    return definitions, rest[:singles], rest[singles : singles + batched]


def _solidline(path: Path, before: list[Event], todo: list[Event], size: int
               ) -> Callable[[], int]:
    """Appending ``todo`` in batches of ``size`` to a log holding ``before`` (not timed)."""
    def append() -> int:
        with JsonlLog(path) as log:  # durable: fdatasync before each append returns
            for start in range(0, len(todo), size):
                log.append(todo[start : start + size])
        return len(todo)

    with JsonlLog(path, durable=False) as log:
        for start in range(0, len(before), 1000):
            log.append(before[start : start + 1000])
        log.sync()
    return append


def _eventsourcing(path: Path, todo: list[Event], size: int) -> Callable[[], int]:
    store = EventsourcingStore(path)
    version = itertools.count(1)
    domain_events = [
        RecordedEvent(originator_id=RECORD_ID, originator_version=next(version),
                      timestamp=dt.datetime.now(dt.UTC), type=e.type, event_id=e.id or "",
                      data=event_data(e))
        for e in todo
    ]

    def append() -> int:
        for start in range(0, len(domain_events), size):
            store.append(domain_events[start : start + size])
        store.close()
        return len(domain_events)

    return append


def run(context: Context) -> list[Figure]:
    singles = max(20, min(300, context.events // 100))
    batched = 100 * max(2, min(50, context.events // 1000))
    definitions, one_by_one, in_batches = _workload(singles, batched)
    best: dict[str, float] = {}
    synchronous = 0
    for round_ in range(context.repeats):
        cases = {
            "single": _solidline(context.fresh(f"single-{round_}") / "log", definitions,
                                 one_by_one, 1),
            "es-single": _eventsourcing(context.fresh(f"es-single-{round_}") / "es.sqlite",
                                        one_by_one, 1),
            "batch": _solidline(context.fresh(f"batch-{round_}") / "log",
                                definitions + one_by_one, in_batches, 100),
            "es-batch": _eventsourcing(context.fresh(f"es-batch-{round_}") / "es.sqlite",
                                       in_batches, 100),
        }
        for name, append in cases.items():
            seconds, _ = timed(append)
            best[name] = min(best.get(name, seconds), seconds)
        store = EventsourcingStore(context.scratch / f"es-single-{round_}" / "es.sqlite")
        synchronous = store.synchronous()
        store.close()
    rate = {
        "single": singles / best["single"], "es-single": singles / best["es-single"],
        "batch": batched / best["batch"], "es-batch": batched / best["es-batch"],
    }
    command = f"{context.command} --only append --events {context.events}"
    note = f"SQLite journal_mode=WAL, synchronous={synchronous} (2 = FULL)"
    return [
        Figure(f"durable single-event append ({singles} appends, fdatasync each)",
               rate["single"], "events/s", "eventsourcing SQLite, one commit per event",
               rate["es-single"], "≥ 1.5× eventsourcing",
               rate["single"] >= 1.5 * rate["es-single"], command, note),
        Figure(f"durable batched append ({batched // 100} batches of 100)", rate["batch"],
               "events/s", "eventsourcing SQLite, one commit per 100", rate["es-batch"],
               "≥ 150,000 events/s", rate["batch"] >= 150_000, command, note),
    ]
