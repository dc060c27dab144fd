"""Timelines: the log folded into what people read.

A :class:`Projection` folds the log's lines, in seq order, into the current state of every event:
status changes, corrections, retractions and same-as links are applied to the events they name
(and a retraction of an amendment undoes it). From a projection come :class:`Timeline` s: of the
whole record, of one entity, and of one *relationship*, an unordered pair of entities written
``"cpusa~cpv"``. An event belongs to the timeline of each of its entities and of every pair
among them.

A projection keeps a checkpoint (the seq and chain hash of the last line it applied), so a
scheduled run applies only what is new: :meth:`Projection.update`. If the log no longer holds
the line the checkpoint names (the hash differs), the projection is rebuilt from the start rather
than giving a wrong answer.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs

from .codec import Recorded, event_data, structure_event
from .dates import EDTFDate
from .log import GENESIS, EventLog, Head
from .model import (
    Amendment,
    Corrected,
    EntityDefined,
    Event,
    Fact,
    Retracted,
    SameAs,
    Source,
    Status,
    StatusChanged,
)

__all__ = [
    "Anniversary",
    "Entry",
    "Projection",
    "Timeline",
    "pair_key",
    "parse_pair",
    "timeline",
]


def pair_key(a: str, b: str) -> str:
    """The key of the relationship between two entities, the same in either order."""
    if a == b:
        raise ValueError(f"a relationship needs two different entities, got {a!r} twice")
    return f"{a}~{b}" if a < b else f"{b}~{a}"


def parse_pair(key: str) -> tuple[str, str]:
    """``"cpv~cpusa"`` → ``("cpusa", "cpv")``."""
    parts = key.split("~")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"{key!r} is not a relationship; write two entity ids as 'cpusa~cpv'")
    a, b = sorted(parts)
    pair_key(a, b)
    return a, b


@attrs.frozen
class Entry:
    """One entry of a timeline: an event as the record now states it.

    Attributes:
        id: the entry's id: the event's id (for merged reports, the first recorded one's).
        event: the event's current state, after status changes and corrections.
        sources: the sources of every report merged into this entry, each once.
        ids: every event id merged into the entry (one unless linked by same-as).
        history: every line that shaped the entry, in seq order (retracted ones included).
        entities: the entities involved, over all merged reports.
        published: when the record first held the entry.
        updated: when a line last changed it.
    """

    id: str
    event: Fact
    sources: tuple[Source, ...]
    ids: tuple[str, ...]
    history: tuple[Recorded, ...]
    entities: tuple[str, ...]
    published: dt.datetime
    updated: dt.datetime
    seq: int

    @property
    def when(self) -> EDTFDate:
        """The event's date, at the precision the record knows it."""
        return self.event.when

    @property
    def status(self) -> Status:
        """``scheduled``, ``occurred``, ``postponed`` or ``cancelled``."""
        return self.event.status

    @property
    def title(self) -> str:
        return self.event.title

    @property
    def sort_key(self) -> tuple[int, int, dt.datetime, int]:
        """(earliest day, wider span first, first recorded, seq): a total order."""
        lower, negative_upper = self.event.when.sort_key
        return lower, negative_upper, self.published, self.seq

    def relationships(self) -> Iterator[str]:
        """The key of every pair among the entry's entities."""
        for i, a in enumerate(self.entities):
            for b in self.entities[i + 1 :]:
                yield pair_key(a, b)


@attrs.frozen
class Anniversary:
    """An entry whose anniversary falls on ``date``, ``years`` after the event."""

    entry: Entry
    date: dt.date
    years: int


@attrs.frozen
class Timeline:
    """The entries of one timeline in date order, and what is needed to show them.

    Attributes:
        key: ``"all"``, an entity id, or a relationship key (``"cpusa~cpv"``).
        title: a readable name (``"CPUSA – CPV"``).
        entries: the entries, sorted by :attr:`Entry.sort_key`.
        entities: every entity definition in the record, by entity id.
        head: the last line the timeline reflects.
        as_of: the recorded time the timeline was taken at, if not now.
    """

    key: str
    title: str
    entries: tuple[Entry, ...]
    entities: dict[str, EntityDefined]
    head: Head
    as_of: dt.datetime | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def entries_between(self, start: dt.date, end: dt.date) -> tuple[Entry, ...]:
        """Entries whose date may fall in ``[start, end]`` (their bounds overlap it)."""
        return tuple(e for e in self.entries if e.when.lower <= end and e.when.upper >= start)

    def upcoming(self, today: dt.date) -> tuple[Entry, ...]:
        """Scheduled entries that may still be ahead of ``today``."""
        return tuple(e for e in self.entries if e.status == "scheduled" and e.when.upper >= today)

    def anniversaries(self, on: dt.date, *, before: int = 0, after: int = 6
                      ) -> tuple[Anniversary, ...]:
        """Entries with a day-precise date whose anniversary falls in ``[on - before, on + after]``.

        Example: relations established on 1962-09-05 give ``years == 64`` on 2026-09-05.
        """
        start, end = on - dt.timedelta(days=before), on + dt.timedelta(days=after)
        found = []
        for entry in self.entries:
            day = _day_of(entry)
            if day is None:
                continue
            for year in {start.year, end.year}:
                date = _same_day_in(day, year)
                if start <= date <= end and year > day.year and entry.status == "occurred":
                    found.append(Anniversary(entry, date, year - day.year))
        return tuple(sorted(found, key=lambda a: (a.date, a.entry.sort_key)))

    def name(self, entity: str) -> str:
        """An entity's short name (or its name, or its id when undefined)."""
        definition = self.entities.get(entity)
        if definition is None:
            return entity
        return definition.short_name or definition.name


def _day_of(entry: Entry) -> dt.date | None:
    when = entry.when
    if when.is_interval or when.lower != when.upper:
        return None
    return when.lower


def _same_day_in(day: dt.date, year: int) -> dt.date:
    if day.month == 2 and day.day == 29 and not calendar.isleap(year):
        return dt.date(year, 2, 28)
    return day.replace(year=year)


# -- the fold --------------------------------------------------------------------------------------


@attrs.define
class _Item:
    """One event as the projection holds it: its record and the amendments naming it."""

    record: Recorded
    amendments: list[str] = attrs.Factory(list)


class Projection:
    """The whole record folded: every event's current state, ready to cut into timelines.

    Build one with :meth:`from_log`; keep it and call :meth:`update` on the next run to apply
    only what was appended since (it rebuilds if the log was rewritten underneath it).
    """

    def __init__(self, *, as_of: dt.datetime | None = None) -> None:
        self.as_of = as_of
        self.head = Head()
        self._items: dict[str, _Item] = {}
        self._facts: list[str] = []
        self._entities: list[str] = []

    @classmethod
    def from_log(cls, log: EventLog, *, as_of: dt.datetime | None = None) -> Projection:
        """Fold the whole log (or its lines recorded at or before ``as_of``)."""
        projection = cls(as_of=as_of)
        projection.apply(log.read())
        return projection

    def update(self, log: EventLog) -> int:
        """Apply what was appended since the checkpoint; rebuild if the checkpoint is gone.

        Returns:
            The number of lines applied (all of them after a rebuild).
        """
        if self.head.seq and not self._checkpoint_holds(log):
            self.__init__(as_of=self.as_of)  # type: ignore[misc]
        return self.apply(log.read(self.head.seq + 1))

    def _checkpoint_holds(self, log: EventLog) -> bool:
        try:
            return log.get_seq(self.head.seq).digest == self.head.digest
        except KeyError:
            return False

    def apply(self, records: Iterable[Recorded]) -> int:
        """Apply records in seq order, stopping at the first recorded after ``as_of``."""
        count = 0
        for record in records:
            if self.as_of is not None and record.recorded_at > self.as_of:
                break
            if record.seq != self.head.seq + 1:
                raise ValueError(f"record {record.seq} does not follow {self.head.seq}")
            self._apply_one(record)
            count += 1
        return count

    def _apply_one(self, record: Recorded) -> None:
        event = record.event
        self._items[record.id] = _Item(record)
        if isinstance(event, Amendment):
            for target in _targets(event):
                if target in self._items:
                    self._items[target].amendments.append(record.id)
        elif isinstance(event, Fact):
            self._facts.append(record.id)
        elif isinstance(event, EntityDefined):
            self._entities.append(record.id)
        self.head = Head(record.seq, record.digest, _stamp(record))

    # -- current state -----------------------------------------------------------------------------

    def is_retracted(self, event_id: str) -> bool:
        """Whether a standing retraction names the event (a retracted retraction does not)."""
        item = self._items.get(event_id)
        if item is None:
            return False
        return any(
            isinstance(self._items[a].record.event, Retracted) and not self.is_retracted(a)
            for a in item.amendments
        )

    def current(self, event_id: str) -> Event:
        """The event as the record now states it: standing corrections and status changes applied."""
        item = self._items[event_id]
        event = item.record.event
        for amendment_id in item.amendments:
            if self.is_retracted(amendment_id):
                continue
            amendment = self.current(amendment_id)
            event = _amend(event, amendment)
        return event

    def entities(self) -> dict[str, EntityDefined]:
        """Every standing entity definition, by entity id."""
        found: dict[str, EntityDefined] = {}
        for event_id in self._entities:
            if not self.is_retracted(event_id):
                definition = self.current(event_id)
                assert isinstance(definition, EntityDefined)
                found[definition.entity] = definition
        return found

    def entries(self) -> list[Entry]:
        """Every standing entry of the record, merged by same-as links, in timeline order."""
        groups = self._groups()
        entries = [self._entry(group) for group in groups]
        entries.sort(key=lambda e: e.sort_key)
        return entries

    def _groups(self) -> list[list[str]]:
        standing = [f for f in self._facts if not self.is_retracted(f)]
        parent = {f: f for f in standing}

        def root(x: str) -> str:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for item in self._items.values():
            link = item.record.event
            if isinstance(link, SameAs) and not self.is_retracted(item.record.id):
                if link.target in parent and link.other in parent:
                    a, b = root(link.target), root(link.other)
                    if a != b:  # keep the first recorded as the root: it names the entry
                        first, second = sorted((a, b), key=lambda x: self._items[x].record.seq)
                        parent[second] = first
        groups: dict[str, list[str]] = {}
        for fact in standing:
            groups.setdefault(root(fact), []).append(fact)
        return list(groups.values())

    def _entry(self, members: list[str]) -> Entry:
        head = members[0]
        event = self.current(head)
        assert isinstance(event, Fact)
        history = sorted(
            {r.seq: r for m in members for r in self._history(m)}.values(), key=lambda r: r.seq
        )
        currents = [self.current(m) for m in members]
        return Entry(
            id=head,
            event=event,
            sources=tuple(dict.fromkeys(s for c in currents for s in getattr(c, "sources", ()))),
            ids=tuple(members),
            history=tuple(history),
            entities=tuple(dict.fromkeys(e for c in currents for e in c.entities())),
            published=self._items[head].record.recorded_at,
            updated=max(r.recorded_at for r in history),
            seq=self._items[head].record.seq,
        )

    def _history(self, event_id: str) -> Iterator[Recorded]:
        item = self._items[event_id]
        yield item.record
        for amendment_id in item.amendments:
            yield from self._history(amendment_id)
        for link in self._links_of(event_id):
            yield from self._history(link)

    def _links_of(self, event_id: str) -> Iterator[str]:
        for item in self._items.values():
            link = item.record.event
            if isinstance(link, SameAs) and event_id in (link.target, link.other):
                if link.target == event_id:  # once per link, from its target's side
                    yield item.record.id

    # -- timelines ---------------------------------------------------------------------------------

    def timeline(self, *, relationship: Sequence[str] | str | None = None,
                 entity: str | None = None) -> Timeline:
        """The timeline of the whole record, of one entity, or of one relationship."""
        entries = self.entries()
        entities = self.entities()
        key, title = "all", "All events"
        if relationship is not None:
            a, b = parse_pair(relationship) if isinstance(relationship, str) else _pair(relationship)
            entries = [e for e in entries if a in e.entities and b in e.entities]
            key, title = pair_key(a, b), f"{_name(entities, a)} – {_name(entities, b)}"
        elif entity is not None:
            entries = [e for e in entries if entity in e.entities]
            key, title = entity, _name(entities, entity)
        return Timeline(key, title, tuple(entries), entities, self.head, self.as_of)

    def relationships(self) -> list[str]:
        """Every relationship key with at least one entry, sorted."""
        return sorted({key for entry in self.entries() for key in entry.relationships()})


def timeline(
    log: EventLog,
    *,
    relationship: Sequence[str] | str | None = None,
    entity: str | None = None,
    as_of: dt.datetime | None = None,
) -> Timeline:
    """The timeline of a log: the whole record, one entity's, or one relationship's.

    Args:
        log: the event log.
        relationship: two entity ids (``("cpusa", "cpv")`` or ``"cpusa~cpv"``), in any order.
        entity: one entity id.
        as_of: what the record said at that moment (only lines recorded at or before it).

    Returns:
        The :class:`Timeline`, entries in date order.
    """
    projection = Projection.from_log(log, as_of=as_of)
    return projection.timeline(relationship=relationship, entity=entity)


def _pair(pair: Sequence[str]) -> tuple[str, str]:
    if len(pair) != 2:
        raise ValueError(f"a relationship is two entity ids, got {list(pair)!r}")
    return parse_pair(pair_key(pair[0], pair[1]))


def _name(entities: dict[str, EntityDefined], entity: str) -> str:
    definition = entities.get(entity)
    return entity if definition is None else definition.short_name or definition.name


def _targets(event: Amendment) -> tuple[str, ...]:
    return (event.target, event.other) if isinstance(event, SameAs) else (event.target,)


def _stamp(record: Recorded) -> str:
    return record.recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _amend(event: Event, amendment: Event) -> Event:
    if isinstance(amendment, StatusChanged) and isinstance(event, Fact):
        changes: dict[str, Any] = {"status": amendment.status}
        if amendment.when is not None:
            changes["when"] = amendment.when
        return attrs.evolve(event, **changes)
    if isinstance(amendment, Corrected):
        data = event_data(event) | amendment.changes | {"id": event.id}
        return structure_event(type(event), data, where=f"correction {amendment.id}")
    return event


_ = GENESIS  # re-exported name kept for readers of checkpoints
