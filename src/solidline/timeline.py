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
than giving a wrong answer. :meth:`Projection.save` and :meth:`Projection.load` keep a projection
between runs in a file.

What is derived from the fold (which events stand, the merged and sorted entries, the indexes by
entity and by relationship) is computed once per head, when first asked for, and shared by every
timeline cut from it; after an update only the entries the new lines reach are built again.
"""

from __future__ import annotations

import bisect
import calendar
import contextlib
import copyreg
import datetime as dt
import functools
import gc
import hashlib
import heapq
import operator
import os
import pickle
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any, BinaryIO

import attrs
import orjson

from ._errors import InvalidEvent
from .codec import Recorded, _slot_setters, event_data, registered_types, structure_event
from .dates import EDTFDate
from .log import EventLog, Head
from .model import (
    Amendment,
    Corrected,
    EntityDefined,
    Event,
    Fact,
    Participant,
    Person,
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
        ids: every event id merged into the entry (one unless linked by same-as), in seq order.
        history: every line that shaped the entry, in seq order (retracted ones included).
        entities: the entities involved, over all merged reports.
        published: when the record first held the entry.
        updated: when a line last changed it.
        seq: the seq of the line that recorded the event named by ``id``.
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


def _sort_key(entry: Entry) -> tuple[int, int, dt.datetime, int]:
    """:attr:`Entry.sort_key` without the property's call (a fold sorts and merges millions)."""
    lower, negative_upper = entry.event.when.sort_key
    return lower, negative_upper, entry.published, entry.seq


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
    entities: Mapping[str, EntityDefined]
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

    def anniversaries(
        self, on: dt.date, *, before: int = 0, after: int = 6
    ) -> tuple[Anniversary, ...]:
        """Entries with a day-precise date whose anniversary falls in ``[on - before, on + after]``.

        Only events that occurred count. An event of 29 February has its anniversary on
        28 February in common years. A window longer than a year gives one anniversary a year.

        Example: relations established on 1962-09-05 give ``years == 64`` on 2026-09-05.
        """
        start, end = _shift(on, -before), _shift(on, after)
        found = []
        for entry in self.entries:
            day = _day_of(entry)
            if day is None or entry.status != "occurred":
                continue
            for year in range(max(start.year, day.year + 1), end.year + 1):
                date = _same_day_in(day, year)
                if start <= date <= end:
                    found.append(Anniversary(entry, date, year - day.year))
        return tuple(sorted(found, key=lambda a: (a.date, a.entry.sort_key)))

    def name(self, entity: str) -> str:
        """An entity's short name (or its name, or its id when undefined)."""
        return _name(self.entities, entity)


def _shift(day: dt.date, days: int) -> dt.date:
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:  # a window reaching past year 1 or 9999 stops there
        return dt.date.min if days < 0 else dt.date.max


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


class _Item:
    """One event as the projection holds it: its record and the amendments naming it.

    A plain class with slots rather than an attrs one: a checkpoint holds one per line, and
    pickle restores each with one call of the class (no state dict to build and apply).
    """

    __slots__ = ("amendments", "reaches", "record")

    def __init__(
        self,
        record: Recorded,
        amendments: list[str] | tuple[()] = (),
        reaches: tuple[str, ...] = (),
    ) -> None:
        self.record = record
        # the ids of the amendments naming it, in seq order: most events have none, and share
        # the empty tuple until their first (a list each would be a million lists)
        self.amendments = amendments
        # the facts whose entries this event shapes: a fact itself, those an amendment reaches
        self.reaches = reaches

    def __reduce__(self) -> tuple[Any, ...]:
        return _Item, (self.record, self.amendments, self.reaches)


@attrs.define
class _Derived:
    """What one head of the projection derives, computed when first asked for.

    ``retracted`` holds every event a standing retraction names; ``current`` the current state
    of the events with amendments that were asked for.
    """

    retracted: set[str]
    current: dict[str, Event] = attrs.Factory(dict)
    entries: list[Entry] | None = None
    all: tuple[Entry, ...] | None = None
    entities: dict[str, EntityDefined] | None = None


@attrs.define
class _Index:
    """Every standing entry by entity and by relationship, each tuple in timeline order."""

    by_entity: dict[str, tuple[Entry, ...]]
    by_pair: dict[str, tuple[Entry, ...]]

    @classmethod
    def of(cls, entries: Iterable[Entry]) -> _Index:
        by_entity: dict[str, list[Entry]] = {}
        by_pair: dict[str, list[Entry]] = {}
        for entry in entries:
            entities = entry.entities
            for name in entities:
                by_entity.setdefault(name, []).append(entry)
            if len(entities) > 1:
                for key in entry.relationships():
                    by_pair.setdefault(key, []).append(entry)
        return cls(
            {name: tuple(found) for name, found in by_entity.items()},
            {key: tuple(found) for key, found in by_pair.items()},
        )

    def replace(self, gone: list[Entry], fresh: list[Entry]) -> set[str]:
        """Take out the entries ``gone``, put in the sorted entries ``fresh``.

        Returns:
            The entity ids and relationship keys whose tuples changed.
        """
        gone_ids = {id(entry) for entry in gone}
        changed: set[str] = set()
        for index, keys_of in (
            (self.by_entity, _entities_of),
            (self.by_pair, _relationships_of),
        ):
            added: dict[str, list[Entry]] = {}
            for entry in fresh:
                for key in keys_of(entry):
                    added.setdefault(key, []).append(entry)
            keys = set(added)
            for entry in gone:
                keys.update(keys_of(entry))
            for key in keys:
                kept = [e for e in index.get(key, ()) if id(e) not in gone_ids]
                merged = tuple(heapq.merge(kept, added.get(key, ()), key=_sort_key))
                if merged:
                    index[key] = merged
                else:
                    index.pop(key, None)
            changed |= keys
        return changed


def _entities_of(entry: Entry) -> Iterable[str]:
    return entry.entities


def _relationships_of(entry: Entry) -> Iterable[str]:
    return entry.relationships()


class Projection:
    """The whole record folded: every event's current state, ready to cut into timelines.

    Build one with :meth:`from_log`; keep it and call :meth:`update` on the next run to apply
    only what was appended since (it rebuilds if the log was rewritten underneath it). Between
    runs, keep it in a file with :meth:`save` and :meth:`load`.

    Args:
        as_of: fold only the lines recorded at or before this moment (a naive time is UTC).
    """

    def __init__(self, *, as_of: dt.datetime | None = None) -> None:
        self.as_of = _utc(as_of)
        self._reset()

    def _reset(self) -> None:
        self.head = Head()
        self._items: dict[str, _Item] = {}
        self._entities: list[str] = []
        self._retractions: list[str] = []
        # the entries as last derived, and the facts whose entry may have changed since
        self._entries: list[Entry] = []
        self._dirty: set[str] = set()
        self._index: _Index | None = None  # built when first asked for, then kept up to date
        # the timeline keys whose entries changed since take_changes(); None: all of them
        self._changed: set[str] | None = None
        self._derived: _Derived | None = None

    @classmethod
    def from_log(cls, log: EventLog, *, as_of: dt.datetime | None = None) -> Projection:
        """Fold the whole log (or its lines recorded at or before ``as_of``)."""
        projection = cls(as_of=as_of)
        projection.apply(log.read())
        return projection

    def __contains__(self, event_id: object) -> bool:
        """Whether an event with this id has been applied."""
        return event_id in self._items

    @property
    def first(self) -> Recorded | None:
        """The first line applied (the log's first line), or None before any."""
        return next(iter(self._items.values())).record if self._items else None

    def follows(self, log: EventLog) -> bool:
        """Whether ``log`` still holds this projection's head line: if so, :meth:`update`
        applies only the lines after it; if not, it folds the log again from the start."""
        return not self.head.seq or self._checkpoint_holds(log)

    def update(self, log: EventLog) -> int:
        """Apply what was appended since the checkpoint; rebuild if the checkpoint is gone.

        Returns:
            The number of lines applied (all of them after a rebuild).
        """
        if not self.follows(log):
            self._reset()
        return self.apply(log.read(self.head.seq + 1))

    def _checkpoint_holds(self, log: EventLog) -> bool:
        try:
            return log.get_seq(self.head.seq).digest == self.head.digest
        except KeyError:
            return False

    def apply(self, records: Iterable[Recorded]) -> int:
        """Apply records in seq order, stopping at the first recorded after ``as_of``.

        Raises:
            ValueError: a record that does not follow the last one applied (seq or chain hash).
        """
        count, seq, digest, last = 0, self.head.seq, self.head.digest, None
        try:
            with _collector_paused():
                for record in records:
                    if self.as_of is not None and record.recorded_at > self.as_of:
                        break
                    if record.seq != seq + 1 or record.prev != digest:
                        raise ValueError(
                            f"record {record.seq} does not follow {seq} (seq or prev hash); "
                            "fold a log from its start, or call update() to resume from the "
                            "checkpoint"
                        )
                    self._apply_one(record)
                    count, seq, digest, last = count + 1, record.seq, record.digest, record
        finally:
            if last is not None:  # the head's text time is made once, not once a line
                self.head = Head(last.seq, last.digest, _stamp(last))
                self._derived = None
        return count

    def _apply_one(self, record: Recorded) -> None:
        event, event_id = record.event, record.id
        item = self._items[event_id] = _Item(record)
        if isinstance(event, Amendment):
            reaches: dict[str, None] = {}
            for target in _targets(event):
                amended = self._items.get(target)
                if amended is not None:
                    if amended.amendments:
                        amended.amendments.append(event_id)
                    else:
                        amended.amendments = [event_id]
                    reaches.update(dict.fromkeys(amended.reaches))
            item.reaches = tuple(reaches)
            if isinstance(event, Retracted):
                self._retractions.append(event_id)
        elif isinstance(event, Fact):
            item.reaches = (event_id,)
        elif isinstance(event, EntityDefined):
            self._entities.append(event_id)
        self._dirty.update(item.reaches)  # their entries are built again

    # -- current state -----------------------------------------------------------------------------

    def _state(self) -> _Derived:
        if self._derived is None:
            self._derived = _Derived(self._standing_retractions())
        return self._derived

    def _standing_retractions(self) -> set[str]:
        """Every event id a standing retraction names.

        A retraction stands unless a standing retraction names it, and whatever names it was
        recorded after it: so one pass from the newest retraction to the oldest decides each.
        """
        retracted: set[str] = set()
        for retraction_id in reversed(self._retractions):
            if retraction_id not in retracted:
                event = self._items[retraction_id].record.event
                assert isinstance(event, Retracted)
                retracted.add(event.target)
        return retracted

    def is_retracted(self, event_id: str) -> bool:
        """Whether a standing retraction names the event (a retracted retraction does not)."""
        return event_id in self._items and event_id in self._state().retracted

    def current(self, event_id: str) -> Event:
        """The event as the record now states it: standing corrections and status changes applied.

        Raises:
            KeyError: no event with this id has been applied.
        """
        return self._current(event_id, self._state())

    def _current(self, event_id: str, state: _Derived) -> Event:
        item = self._items[event_id]
        if not item.amendments:
            return item.record.event
        memo, retracted = state.current, state.retracted
        todo = [event_id]
        while todo:  # depth first without recursion: amendments of amendments come first
            item = self._items[todo[-1]]
            waiting = [
                a
                for a in item.amendments
                if a not in memo and a not in retracted and self._items[a].amendments
            ]
            if waiting:
                todo.extend(waiting)
                continue
            event = item.record.event
            for amendment_id in item.amendments:
                if amendment_id not in retracted:
                    amendment = (
                        memo[amendment_id]
                        if amendment_id in memo
                        else self._items[amendment_id].record.event
                    )
                    event = _amend(event, amendment)
            memo[todo.pop()] = event
        return memo[event_id]

    def history(self, event_id: str) -> tuple[Recorded, ...]:
        """Every line that shaped the event, in seq order, retracted ones (and itself) included.

        Raises:
            KeyError: no event with this id has been applied.
        """
        if event_id not in self._items:
            raise KeyError(event_id)
        return self._history((event_id,))

    def _history(self, members: Iterable[str]) -> tuple[Recorded, ...]:
        found: dict[int, Recorded] = {}
        todo = list(members)
        while todo:
            item = self._items[todo.pop()]
            if item.record.seq not in found:
                found[item.record.seq] = item.record
                todo.extend(item.amendments)
        return tuple(found[seq] for seq in sorted(found))

    def entities(self) -> dict[str, EntityDefined]:
        """Every standing entity definition, by entity id."""
        return dict(self._entity_definitions())

    def _entity_definitions(self) -> dict[str, EntityDefined]:
        state = self._state()
        if state.entities is None:
            found: dict[str, EntityDefined] = {}
            for event_id in self._entities:
                if event_id not in state.retracted:
                    definition = self._current(event_id, state)
                    assert isinstance(definition, EntityDefined)
                    found[definition.entity] = definition
            state.entities = found
        return state.entities

    def entries(self) -> list[Entry]:
        """Every standing entry of the record, merged by same-as links, in timeline order."""
        return list(self._sorted_entries())

    def _sorted_entries(self) -> list[Entry]:
        state = self._state()
        if state.entries is None:
            state.entries = self._refresh_entries(state)
        return state.entries

    def _refresh_entries(self, state: _Derived) -> list[Entry]:
        """Keep the entries no new line touched, build the others, and merge the two in order."""
        with _collector_paused():
            return self._refreshed_entries(state)

    def _refreshed_entries(self, state: _Derived) -> list[Entry]:
        # The facts a new line reached, and their entries' other reports, are grouped again,
        # with whatever standing links join them to now (a fact no longer retracted brings back
        # its links). Every other entry is as it was: a group changes only when a line reaches
        # one of its facts or a fact linked to them.
        dirty = self._dirty
        if not dirty:
            return self._entries
        seeds = set(dirty)
        for entry in self._entries:
            if not dirty.isdisjoint(entry.ids):
                seeds.update(entry.ids)
        groups = self._groups(seeds, state)
        regrouped = dirty.union(*groups)
        kept: list[Entry] = []
        gone: list[Entry] = []
        for entry in self._entries:
            (kept if regrouped.isdisjoint(entry.ids) else gone).append(entry)
        fresh = [self._entry(members, state) for members in groups]
        fresh.sort(key=_sort_key)
        self._note_changes(gone, fresh)
        if len(fresh) * 64 < len(kept):  # a few: put each in its place
            for entry in fresh:
                bisect.insort(kept, entry, key=_sort_key)
            entries = kept
        else:
            entries = list(heapq.merge(kept, fresh, key=_sort_key))
        self._entries, self._dirty = entries, set()
        return entries

    def _note_changes(self, gone: list[Entry], fresh: list[Entry]) -> None:
        """Keep the index up to date and remember which timelines changed."""
        if self._index is None and self._changed is None:
            return  # a first fold: no index yet, and every timeline is new anyway
        if self._index is not None:
            changed = self._index.replace(gone, fresh)
        else:
            changed = set()
            for entry in (*gone, *fresh):
                changed.update(entry.entities)
                changed.update(entry.relationships())
        if self._changed is not None:
            self._changed |= changed
            self._changed.add("all")

    def take_changes(self) -> set[str] | None:
        """The keys of the timelines whose entries changed since the last call, and forget them.

        A key is ``"all"``, an entity id or a relationship key, as :meth:`timeline` takes them;
        a timeline whose key is not named has the same entries as at the last call (its title
        and entity names may still differ: compare :meth:`entities`). Returns None for a
        projection folded from the start (not loaded, or rebuilt by :meth:`update`), where every
        timeline is new.
        """
        self._sorted_entries()
        changed, self._changed = self._changed, set()
        return changed

    def _groups(self, facts: Iterable[str], state: _Derived) -> list[list[str]]:
        """The standing facts among ``facts`` with those standing same-as links join them to,
        each group in seq order (so its first member names the entry)."""
        items, retracted = self._items, state.retracted
        seen: set[str] = set()
        groups = []
        for first in facts:
            if first in seen or first in retracted:
                continue
            seen.add(first)
            if not items[first].amendments:  # most facts: linked to nothing
                groups.append([first])
                continue
            group, todo = [], [first]
            while todo:
                fact = todo.pop()
                group.append(fact)
                for link_id in items[fact].amendments:
                    link = items[link_id].record.event
                    if isinstance(link, SameAs) and link_id not in retracted:
                        other = link.other if link.target == fact else link.target
                        if other not in seen and other not in retracted:
                            seen.add(other)
                            todo.append(other)
            group.sort(key=lambda f: items[f].record.seq)
            groups.append(group)
        return groups

    def _entry(self, members: list[str], state: _Derived) -> Entry:
        head = members[0]
        item = self._items[head]
        if len(members) == 1 and not item.amendments:  # most entries: a fact as recorded
            record = item.record
            event = record.event
            assert isinstance(event, Fact)
            sources = event.sources
            recorded_at = record.recorded_at
            return _new_entry(  # Entry(...) by position, without the keyword arguments' cost
                head,
                event,
                sources if len(sources) < 2 else _once(sources),
                item.reaches,  # (head,): a fact reaches itself; one tuple for both
                (record,),
                event.entities(),  # each once already
                recorded_at,
                recorded_at,
                record.seq,
            )
        event = self._current(head, state)
        assert isinstance(event, Fact)
        if len(members) == 1:  # most entries: no merging to do
            sources, entities = event.sources, event.entities()
            history = self._history(members) if item.amendments else (item.record,)
        else:
            currents = [event, *(self._current(m, state) for m in members[1:])]
            sources = tuple(s for c in currents for s in getattr(c, "sources", ()))
            entities = tuple(e for c in currents for e in c.entities())
            history = self._history(members)
        return Entry(
            id=head,
            event=event,
            sources=_once(sources),
            ids=tuple(members),
            history=history,
            entities=_once(entities),
            published=item.record.recorded_at,
            updated=max(r.recorded_at for r in history),
            seq=item.record.seq,
        )

    # -- timelines ---------------------------------------------------------------------------------

    def timeline(
        self, *, relationship: Sequence[str] | str | None = None, entity: str | None = None
    ) -> Timeline:
        """The timeline of the whole record, of one entity, or of one relationship."""
        entities = self._entity_definitions()
        if relationship is not None:
            a, b = (
                parse_pair(relationship) if isinstance(relationship, str) else _pair(relationship)
            )
            entries = self._by_pair().get(pair_key(a, b), ())
            key, title = pair_key(a, b), f"{_name(entities, a)} – {_name(entities, b)}"
        elif entity is not None:
            entries = self._by_entity(entity)
            key, title = entity, _name(entities, entity)
        else:
            state = self._state()
            if state.all is None:
                state.all = tuple(self._sorted_entries())
            entries, key, title = state.all, "all", "All events"
        # one read-only view of the definitions, shared by every timeline of this head (a copy
        # each would cost the size of the record's entities for each of thousands of timelines)
        return Timeline(key, title, entries, MappingProxyType(entities), self.head, self.as_of)

    def _by_entity(self, entity: str) -> tuple[Entry, ...]:
        return self._indexed().by_entity.get(entity, ())

    def _by_pair(self) -> dict[str, tuple[Entry, ...]]:
        return self._indexed().by_pair

    def _indexed(self) -> _Index:
        entries = self._sorted_entries()  # brings the index up to date with the head
        if self._index is None:
            with _collector_paused():
                self._index = _Index.of(entries)
        return self._index

    def relationships(self) -> list[str]:
        """Every relationship key with at least one entry, sorted."""
        return sorted(self._by_pair())

    def entity_keys(self) -> list[str]:
        """Every entity that has a definition or an entry, sorted."""
        return sorted(set(self._entity_definitions()) | set(self._indexed().by_entity))

    # -- keeping a projection between runs --------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the projection to ``path`` atomically, for :meth:`load` on the next run.

        The file is a pickle behind a header (format and the event classes' layout) and followed
        by its SHA-256, so that damage or another version is noticed. Unpickling runs code: keep
        the file where only the program that writes it can write (like the log itself), and never
        load a checkpoint from elsewhere.

        Raises:
            OSError: the file could not be written (the old one, if any, is left as it was).
        """
        state = {name: getattr(self, name) for name in _SAVED}
        header = orjson.dumps({"format": _CHECKPOINT_FORMAT, "layout": _layout()})
        _write_atomically(Path(path), _MAGIC + header + b"\n", state)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Projection | None:
        """The projection :meth:`save` wrote to ``path``, or None if the file is missing,
        damaged, or from another version (the caller then builds one with :meth:`from_log`).

        Call :meth:`update` on the result: it applies what the log gained since the save and
        rebuilds if the log is not the one the projection was folded from. Only load files this
        program wrote (see :meth:`save`).
        """
        try:
            state = _read_checkpoint(Path(path))
            if state is None:
                return None
            projection = cls(as_of=state["as_of"])
            for name in _SAVED:
                setattr(projection, name, state[name])
            projection._derived = None
            projection._changed = set()
            return projection
        except Exception:  # whatever the file holds, the answer is "rebuild", never a crash
            return None


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
        as_of: what the record said at that moment (only lines recorded at or before it; a
            naive time is UTC).

    Returns:
        The :class:`Timeline`, entries in date order.

    The fold is kept with the log object (as long as the log lives), so the next call on the
    same log applies only what was appended since; build a :class:`Projection` to decide that
    yourself.
    """
    with _FOLDS_LOCK:
        projection = _fold_of(log, _utc(as_of))
        return projection.timeline(relationship=relationship, entity=entity)


# the folds timeline() keeps: by log, then by as_of (a few of them, the most recent last)
_FOLDS: weakref.WeakKeyDictionary[EventLog, dict[dt.datetime | None, Projection]] = (
    weakref.WeakKeyDictionary()
)
_FOLDS_LOCK = threading.Lock()
_FOLDS_PER_LOG = 4


def _fold_of(log: EventLog, as_of: dt.datetime | None) -> Projection:
    try:
        folds = _FOLDS.setdefault(log, {})
    except TypeError:  # a log that cannot be referenced weakly is folded afresh
        return Projection.from_log(log, as_of=as_of)
    projection = folds.pop(as_of, None)  # taken out: a failed update leaves nothing behind
    if projection is None:
        projection = Projection(as_of=as_of)
    projection.update(log)
    folds[as_of] = projection
    while len(folds) > _FOLDS_PER_LOG:
        del folds[next(iter(folds))]
    return projection


def _pair(pair: Sequence[str]) -> tuple[str, str]:
    if len(pair) != 2:
        raise ValueError(f"a relationship is two entity ids, got {list(pair)!r}")
    return parse_pair(pair_key(pair[0], pair[1]))


def _name(entities: Mapping[str, EntityDefined], entity: str) -> str:
    definition = entities.get(entity)
    return entity if definition is None else definition.short_name or definition.name


def _once(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """The values without repeats, in order."""
    if len(values) == 2:  # most often: two sources, compared without hashing both
        return values if values[0] != values[1] else values[:1]
    return values if len(values) < 2 else tuple(dict.fromkeys(values))


def _targets(event: Amendment) -> tuple[str, ...]:
    return (event.target, event.other) if isinstance(event, SameAs) else (event.target,)


def _stamp(record: Recorded) -> str:
    return record.recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=dt.UTC)


def _amend(event: Event, amendment: Event) -> Event:
    """``event`` with one amendment applied (an amendment's target is the one it was recorded
    with: a correction of ``target`` does not move it).

    A correction is checked against the event it names when it is appended; after other
    corrections it may no longer fit (it clears the only amount of a donation another one gave
    items to, say). Such a correction is left out rather than breaking the timeline.
    """
    if isinstance(amendment, StatusChanged) and isinstance(event, Fact):
        changes: dict[str, Any] = {"status": amendment.status}
        if amendment.when is not None:
            changes["when"] = amendment.when
        return attrs.evolve(event, **changes)
    if isinstance(amendment, Corrected):
        data = event_data(event) | amendment.changes | {"id": event.id}
        try:
            return structure_event(type(event), data, where=f"correction {amendment.id}")
        except InvalidEvent:
            return event
    return event


# -- checkpoint files ------------------------------------------------------------------------------

# A checkpoint file: _MAGIC, a JSON header line, the pickled state, and the SHA-256 (hex) of
# everything before it with a newline. Bump _CHECKPOINT_FORMAT when what _SAVED means changes;
# changes to the fields of the pickled classes are caught by the layout without a bump.
_MAGIC = b"solidline projection checkpoint\n"
_CHECKPOINT_FORMAT = 3  # 3: attrs objects are pickled as their builder and field values
_SAVED = (
    "as_of",
    "head",
    "_items",
    "_entities",
    "_retractions",
    "_entries",
    "_dirty",
    "_index",
)
_TRAILER = 65


def _pickled_classes() -> list[type[Any]]:
    """The attrs classes whose objects a checkpoint holds (each object, whatever its class, is
    pickled; these are also pickled fast and are part of the layout)."""
    classes: list[type[Any]] = [Entry, Recorded, Head, EDTFDate, Source, Person, Participant]
    return classes + [registered_types()[name] for name in sorted(registered_types())]


# The builders of the checkpoint's attrs objects, as pickle finds them: ``_BUILD.<name>``.
_BUILD = SimpleNamespace()
_BUILDERS: dict[type[Any], Callable[..., Any] | None] = {}
_Reducer = Callable[[Any], tuple[Any, ...]]


def _reducers() -> dict[type[Any], _Reducer]:
    """How a checkpoint pickles the objects of :func:`_pickled_classes`: as a call of a builder
    made for the class with the field values, in field order.

    attrs pickles a frozen object as a dict of its fields that its ``__setstate__`` (Python)
    applies one name at a time; a million events are some five million such objects, and
    restoring them was most of the time a load took. A builder takes the values as arguments
    and puts each in its slot: about half the time, and a third less to read. It sets what
    ``__setstate__`` sets (every field, no converter, validator or ``__attrs_post_init__``):
    the values were checked when the objects were made, and the checkpoint is read only if its
    digest and layout (the fields of these classes) match. Classes it cannot see into keep the
    default.
    """
    table: dict[type[Any], _Reducer] = {}
    for cls in _pickled_classes():
        builder = _builder(cls)
        if builder is not None:
            names = [field.name for field in attrs.fields(cls)]
            values = operator.attrgetter(*names)
            table[cls] = (
                functools.partial(_reduce_many, builder, values)
                if len(names) > 1
                else functools.partial(_reduce_one, builder, names[0])
            )
    return table


def _reduce_many(
    builder: Any, values: Callable[[Any], tuple[Any, ...]], obj: Any
) -> tuple[Any, ...]:
    return builder, values(obj)


def _reduce_one(builder: Any, name: str, obj: Any) -> tuple[Any, ...]:
    return builder, (getattr(obj, name),)


def _builder(cls: type[Any]) -> Callable[..., Any] | None:
    """A function that makes an object of ``cls`` from its field values, in field order, and
    that pickle finds by name (None for a class whose slots it cannot set)."""
    if cls in _BUILDERS:
        return _BUILDERS[cls]
    setters = _slot_setters(cls)
    name = f"{cls.__module__}.{cls.__qualname__}".replace(".", "_")
    if setters is None or getattr(_BUILD, name, None) is not None:
        _BUILDERS[cls] = None
        return None
    names: dict[str, Any] = {"new": object.__new__, "cls": cls}
    arguments = []
    lines = ["    self = new(cls)"]
    for i, field in enumerate(attrs.fields(cls)):
        names[f"set{i}"] = setters[field.name]
        arguments.append(f"a{i}")
        lines.append(f"    set{i}(self, a{i})")
    source = f"def {name}({', '.join(arguments)}):\n" + "\n".join(lines) + "\n    return self\n"
    exec(compile(source, f"<solidline checkpoint builder {cls.__qualname__}>", "exec"), names)
    builder: Callable[..., Any] = names[name]
    builder.__module__, builder.__qualname__ = __name__, f"_BUILD.{name}"
    setattr(_BUILD, name, builder)
    _BUILDERS[cls] = builder
    return builder


def _entry_builder() -> Callable[..., Entry]:
    builder = _builder(Entry)
    assert builder is not None  # Entry's __init__ is the one attrs generates, into slots
    return builder


# Entry(...) with the fields by position: what Entry.__init__ does (it has no converters or
# validators) without binding keyword arguments, for the hundreds of thousands a fold makes
_new_entry = _entry_builder()


def _layout() -> str:
    """A digest of the fields of every class a checkpoint pickles: another layout, another file."""
    parts = [
        f"{cls.__module__}.{cls.__qualname__}:{getattr(cls, 'version', '')}:"
        + ",".join(field.name for field in attrs.fields(cls))
        for cls in _pickled_classes()
    ]
    parts.append("_Item:" + ",".join(_Item.__slots__))
    parts.append("_Index:" + ",".join(field.name for field in attrs.fields(_Index)))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class _HashingWriter:
    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.hash = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        return self.file.write(data)


def _write_atomically(path: Path, header: bytes, state: dict[str, Any]) -> None:
    """Write to a temporary file beside ``path``, fsync it, rename it over ``path``."""
    folder = path.parent
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as file:
            writer = _HashingWriter(file)
            writer.write(header)
            pickler = pickle.Pickler(writer, protocol=pickle.HIGHEST_PROTOCOL)
            table: dict[type[Any], Any] = dict(copyreg.dispatch_table)
            pickler.dispatch_table = table | _reducers()
            with _collector_paused():
                pickler.dump(state)
            file.write(writer.hash.hexdigest().encode() + b"\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _read_checkpoint(path: Path) -> dict[str, Any] | None:
    data = path.read_bytes()
    end = len(data) - _TRAILER
    if not data.startswith(_MAGIC) or end < len(_MAGIC):
        return None
    # the body is hashed and unpickled where it lies: slices of it would be copies of it (a
    # gigabyte at a million events, twice)
    with memoryview(data) as view:
        if hashlib.sha256(view[:end]).hexdigest().encode() + b"\n" != data[end:]:
            return None
        header_end = data.index(b"\n", len(_MAGIC), end) + 1
        header = orjson.loads(view[len(_MAGIC) : header_end])
        if header != {"format": _CHECKPOINT_FORMAT, "layout": _layout()}:
            return None
        state = _unpickle(view[header_end:end])
    if not isinstance(state, dict) or set(state) != set(_SAVED):
        return None
    if not isinstance(state["head"], Head) or not isinstance(state["_items"], dict):
        return None
    return state


def _unpickle(data: bytes | memoryview) -> Any:
    _reducers()  # the builders the pickle names
    with _collector_paused():
        return pickle.loads(data)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a projection builds (or pickles) its objects.

    A fold makes millions of small objects and no reference cycles; collections triggered
    meanwhile would only walk the growing heap again and again (a fold is about 1.5 times, a
    load about 3 times faster without them). Whatever was paused runs again afterwards.

    The objects made meanwhile are then handed to the oldest generation at once (freezing and
    unfreezing moves every tracked object there without walking any): left in the youngest,
    they would be walked by the next young collection, again by the middle one, and then by a
    full one, each pass over millions of objects. The collector still collects them, at its
    next full collection. An application that keeps frozen objects of its own is left alone.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if not gc.get_freeze_count():
                gc.freeze()
                gc.unfreeze()
            gc.enable()
