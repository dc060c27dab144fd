"""Digests: what the record gained over a window of recorded time.

:func:`select_digest` folds the log as it stood at the window's end and picks

- the entries first recorded in the window (a backfilled 1962 event is news too),
- the corrections, retractions and status changes recorded in it, of entries recorded earlier,
- what is coming up: scheduled entries that may fall within ``upcoming_days`` of the window's end,
- anniversaries in the days after the window (as many days as it spans), so that they arrive
  before the day rather than after it.

:meth:`Digest.for_interests` keeps what one subscriber asked for; :mod:`solidline.newsletter`
renders it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Literal, TypeVar

import attrs

from .codec import Recorded
from .log import EventLog
from .model import Amendment, Corrected, Event, Fact, Retracted, Source, StatusChanged
from .timeline import Anniversary, Entry, Projection, Timeline
from .windows import Window

__all__ = ["Change", "Digest", "select_digest", "select_digest_and_entities"]

ChangeKind = Literal["corrected", "retracted", "status", "withdrawn"]


@attrs.frozen
class Change:
    """A correction, retraction or status change recorded in the window, of an older entry.

    Attributes:
        kind: ``corrected``, ``retracted``, ``status`` (a status change) or ``withdrawn`` (a
            correction or status change that was itself retracted).
        event: the amended event as the record states it at the window's end.
        detail: what changed, for people (``"Changed: title, when"``, ``"Now postponed"``;
            empty for a retraction).
        reason: the reason the amendment gives, if any.
        sources: the amendment's sources.
        recorded_at: when the amendment was recorded.
    """

    kind: ChangeKind
    event: Fact
    detail: str
    reason: str
    sources: tuple[Source, ...]
    recorded_at: dt.datetime

    @property
    def entities(self) -> tuple[str, ...]:
        return self.event.entities()


_Item = TypeVar("_Item", Entry, Change, Anniversary)


@attrs.frozen
class Digest:
    """What a window brought, before it is cut to a subscriber's interests.

    Attributes:
        window: the window of recorded time.
        entries: the entries first recorded in the window, in timeline order.
        changes: corrections, retractions and status changes of older entries.
        upcoming: scheduled entries ahead of the window's end.
        anniversaries: anniversaries in the days after the window.
        names: every entity's short name, by id.
    """

    window: Window
    entries: tuple[Entry, ...]
    changes: tuple[Change, ...]
    upcoming: tuple[Entry, ...]
    anniversaries: tuple[Anniversary, ...]
    names: Mapping[str, str] = attrs.field(eq=False)
    # for each collection: entity -> the positions of its items that name it, built when first
    # asked for (a run cuts one digest for hundreds of subscribers)
    _mentions: dict[str, dict[str, list[int]]] = attrs.field(
        init=False, factory=dict, eq=False, repr=False
    )

    @property
    def is_empty(self) -> bool:
        """Nothing new: no entries and no changes (coming up and anniversaries alone are not)."""
        return not self.entries and not self.changes

    def for_interests(self, interests: Collection[str]) -> Digest:
        """The part of the digest that concerns these interests (all of it for none)."""
        if not interests:
            return self
        return attrs.evolve(
            self,
            entries=self._matching("entries", self.entries, interests),
            changes=self._matching("changes", self.changes, interests),
            upcoming=self._matching("upcoming", self.upcoming, interests),
            anniversaries=self._matching("anniversaries", self.anniversaries, interests),
        )

    def _matching(
        self, name: str, items: tuple[_Item, ...], interests: Collection[str]
    ) -> tuple[_Item, ...]:
        """The items, in their order, naming every entity of at least one interest."""
        if name not in self._mentions:
            index: dict[str, list[int]] = {}
            for position, item in enumerate(items):
                entities = item.entry.entities if isinstance(item, Anniversary) else item.entities
                for entity in entities:
                    index.setdefault(entity, []).append(position)
            self._mentions[name] = index
        mentions = self._mentions[name]
        found: set[int] = set()
        for interest in interests:
            first, *others = interest.split("~")
            naming = set(mentions.get(first, ()))
            for entity in others:
                naming.intersection_update(mentions.get(entity, ()))
            found |= naming
        return tuple(items[position] for position in sorted(found))

    def name(self, key: str) -> str:
        """The readable name of an entity or a relationship (``"CPUSA – CPV"``)."""
        return " – ".join(self.names.get(part, part) for part in key.split("~"))

    def groups(self, interests: Collection[str] = ()) -> list[tuple[str, list[Entry]]]:
        """The new entries grouped by relationship: ``[(title, entries)]``, by title.

        An entry appears once, under the first of its relationships the subscriber asked for
        (or its first relationship; an entry of one entity goes under that entity).
        """
        groups: dict[str, list[Entry]] = {}
        for entry in self.entries:
            groups.setdefault(self._group_of(entry, interests), []).append(entry)
        named = [(self.name(key), entries) for key, entries in groups.items()]
        return sorted(named, key=lambda group: group[0].casefold())

    def _group_of(self, entry: Entry, interests: Collection[str]) -> str:
        pairs = list(entry.relationships())
        wanted = [p for p in pairs if p in interests]
        wanted = wanted or [p for p in pairs if set(p.split("~")) & set(interests)]
        if wanted or pairs:
            return (wanted or pairs)[0]
        return next((e for e in entry.entities if e in interests), entry.entities[0])


def select_digest(log: EventLog, window: Window, *, upcoming_days: int = 60) -> Digest:
    """What the record gained in ``window``, as the record stood at the window's end.

    Args:
        log: the event log.
        window: the window of recorded time.
        upcoming_days: how far past the window's end "coming up" looks.
    """
    return _selected(log, window, upcoming_days, Projection(as_of=window.last_moment))


def select_digest_and_entities(
    log: EventLog, window: Window, *, upcoming_days: int = 60
) -> tuple[Digest, frozenset[str]]:
    """:func:`select_digest`, and every entity the record defines now, after the window too
    (what subscribers' interests are checked against): the same fold, taken on to the log's
    end, so that the lines before the window's end are read once.
    """
    projection = Projection(as_of=window.last_moment)
    digest = _selected(log, window, upcoming_days, projection)
    projection.as_of = None
    projection.update(log)
    return digest, frozenset(projection.entities())


def _selected(log: EventLog, window: Window, upcoming_days: int, projection: Projection) -> Digest:
    """The digest of ``window``, folding the log into ``projection`` up to the window's end."""
    in_window, recorded = _replay(log, window, projection)
    entries = projection.entries()
    definitions = projection.entities()
    end = window.end.date()
    horizon = end + dt.timedelta(days=upcoming_days)
    first_day, span = window.days_after()
    everything = Timeline("all", "All events", tuple(entries), definitions, projection.head)
    changes = (_change(projection, r, recorded, window) for r in in_window)
    return Digest(
        window=window,
        entries=tuple(e for e in entries if window.contains(e.published)),
        changes=tuple(c for c in changes if c is not None),
        upcoming=tuple(e for e in everything.upcoming(end) if e.when.lower <= horizon),
        anniversaries=everything.anniversaries(first_day, before=0, after=span - 1),
        names={k: d.short_name or d.name for k, d in definitions.items()},
    )


def _replay(
    log: EventLog, window: Window, projection: Projection
) -> tuple[list[Recorded], dict[str, dt.datetime]]:
    """Fold the log into ``projection``; the records in the window, and when each was recorded."""
    in_window: list[Recorded] = []
    recorded: dict[str, dt.datetime] = {}
    records = log.read()
    try:
        projection.apply(_noting(records, window, in_window, recorded))
    finally:
        close: Callable[[], None] | None = getattr(records, "close", None)
        if close is not None:
            close()
    return in_window, recorded


def _noting(
    records: Iterable[Recorded],
    window: Window,
    in_window: list[Recorded],
    recorded: dict[str, dt.datetime],
) -> Iterator[Recorded]:
    for record in records:
        recorded[record.id] = record.recorded_at
        if window.contains(record.recorded_at):
            in_window.append(record)
        yield record


def _change(
    projection: Projection, record: Recorded, recorded: Mapping[str, dt.datetime], window: Window
) -> Change | None:
    amendment = record.event
    if not isinstance(amendment, (Corrected, Retracted, StatusChanged)):
        return None
    kind, target = _kind_and_target(projection, amendment)
    if kind is None or target is None or window.contains(recorded[target]):
        return None  # an entry new in the window is shown as it now stands
    event = projection.current(target)
    if not isinstance(event, Fact):
        return None
    return Change(
        kind,
        event,
        _detail(kind, amendment, projection),
        amendment.reason,
        amendment.sources,
        record.recorded_at,
    )


def _kind_and_target(
    projection: Projection, amendment: Amendment
) -> tuple[ChangeKind | None, str | None]:
    try:
        target = projection.current(amendment.target)
    except KeyError:
        return None, None
    if isinstance(target, Fact):
        if isinstance(amendment, Retracted):
            return "retracted", amendment.target
        return ("corrected" if isinstance(amendment, Corrected) else "status"), amendment.target
    if isinstance(amendment, Retracted) and isinstance(target, (Corrected, StatusChanged)):
        return "withdrawn", target.target
    return None, None


def _detail(kind: ChangeKind, amendment: Event, projection: Projection) -> str:
    if isinstance(amendment, Corrected):
        return f"Changed: {', '.join(sorted(amendment.changes))}"
    if isinstance(amendment, StatusChanged):
        when = f", {amendment.when.display()}" if amendment.when else ""
        return f"Now {amendment.status}{when}"
    if kind == "withdrawn":
        assert isinstance(amendment, Retracted)
        withdrawn = projection.current(amendment.target)
        what = "correction" if isinstance(withdrawn, Corrected) else "status change"
        return f"An earlier {what} was withdrawn"
    return ""
