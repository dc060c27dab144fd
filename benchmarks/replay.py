"""Replay: read the whole log, check the chain, decode every line, fold it into every timeline.

Baselines in the same rounds: ``orjson.loads`` over the same files (the floor), and
eventsourcing's SQLite recorder selecting and decoding the same number of events.
Targets: at least 250,000 events/s, and at least twice eventsourcing's read-and-decode rate.
"""

from __future__ import annotations

import gc
from pathlib import Path

from solidline import JsonlLog, Projection, Timeline

from . import Context, Figure, rounds
from .baselines import EventsourcingStore, log_lines, orjson_loop

__all__ = ["all_timelines", "eventsourcing_copy", "replay", "run"]


def all_timelines(projection: Projection) -> list[Timeline]:
    """The whole record's timeline, every entity's and every relationship's, as publish cuts them.

    The projection indexes its entries by entity and by relationship once per head, so cutting
    every timeline is one pass however many there are.
    """
    return [
        projection.timeline(),
        *(projection.timeline(entity=e) for e in projection.entity_keys()),
        *(projection.timeline(relationship=p) for p in projection.relationships()),
    ]


def replay(path: Path) -> int:
    """Fold the log at ``path`` from its first line into every timeline; the lines read."""
    with JsonlLog(path, readonly=True) as log:
        projection = Projection.from_log(log)
        all_timelines(projection)
    return projection.head.seq


def replay_collector_paused(path: Path) -> int:
    """:func:`replay` with Python's cyclic garbage collector paused while it runs.

    Not what a user gets today: it shows what pausing the collector inside a bulk fold (such
    as ``Projection.apply``) would be worth. A million events leave some ten million objects
    the collector otherwise walks again and again as they accumulate.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return replay(path)
    finally:
        if enabled:
            gc.enable()


def read_and_decode(path: Path) -> int:
    """Only read, check and decode (no fold): what eventsourcing's figure compares with."""
    with JsonlLog(path, readonly=True) as log:
        return sum(1 for _ in log.read())


def eventsourcing_copy(context: Context, count: int) -> Path:
    """An eventsourcing SQLite database holding the synthetic log's events (made once)."""
    path = context.cache / f"eventsourcing-{count}-seed1.sqlite"
    marker = path.with_suffix(".complete")
    if not marker.exists():
        for stale in path.parent.glob(path.name + "*"):
            stale.unlink()
        store = EventsourcingStore(path)
        batch = []
        for event in store.events_from(log_lines(context.log(count))):
            batch.append(event)
            if len(batch) == 1000:
                store.append(batch)
                batch = []
        if batch:
            store.append(batch)
        store.close()
        marker.touch()
    return path


def run(context: Context) -> list[Figure]:
    count = context.events
    path = context.log(count)
    store = EventsourcingStore(eventsourcing_copy(context, count))
    try:
        best = rounds(
            {
                "replay": lambda: replay(path),
                "paused": lambda: replay_collector_paused(path),
                "read": lambda: read_and_decode(path),
                "orjson": lambda: orjson_loop(path),
                "eventsourcing": store.read,
            },
            context.repeats,
        )
    finally:
        store.close()
    rate = {name: count / seconds for name, seconds in best.items()}
    command = f"{context.command} --only replay --events {count}"
    return [
        Figure(f"replay of {count:,} events (read, chain, decode, fold into every timeline)",
               rate["replay"], "events/s", "eventsourcing SQLite read-and-decode",
               rate["eventsourcing"], "≥ 250,000 events/s and ≥ 2× eventsourcing",
               rate["replay"] >= 250_000 and rate["replay"] >= 2 * rate["eventsourcing"], command),
        Figure(f"replay of {count:,} events", rate["replay"], "events/s",
               "orjson.loads loop over the same files", rate["orjson"], "(the floor)", None,
               command),
        Figure(f"replay of {count:,} events, garbage collector paused", rate["paused"],
               "events/s", "eventsourcing SQLite read-and-decode", rate["eventsourcing"],
               "(what pausing the collector in the fold would give)", None, command),
        Figure(f"read and decode {count:,} events (no fold)", rate["read"], "events/s",
               "eventsourcing SQLite read-and-decode", rate["eventsourcing"], "(for reference)",
               None, command),
    ]
