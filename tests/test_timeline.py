"""Timelines: membership, order, as-of, incremental updates, checkpoints, amendments, anniversaries.

The properties run on histories from ``strategies.timed_histories``: facts about five entities and
amendments of every kind, some naming amendments, some refused by the log (those are left out,
as a caller would see them).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import itertools
import pickle
import re
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import entities, meeting, source
from solidline import (
    Congress,
    Corrected,
    Donation,
    Event,
    InvalidEvent,
    Meeting,
    MemoryLog,
    Period,
    Retracted,
    SameAs,
    StatusChanged,
    UnknownTarget,
)
from solidline.codec import event_data
from solidline.log import EventLog
from solidline.timeline import (
    _CHECKPOINT_FORMAT,
    _SAVED,
    Anniversary,
    Entry,
    Projection,
    Timeline,
    _builder,
    _Index,
    _Item,
    pair_key,
    parse_pair,
    timeline,
)
from strategies import (
    TIMELINE_ENTITIES,
    TIMELINE_EPOCH,
    edtf_dates,
    entities_defined,
    facts,
    merge_histories,
    timed_histories,
)

UTC = dt.UTC
Timed = list[tuple[dt.datetime, list[Event]]]


class Clock:
    """Shows the time the test set: the same clock for every log built from one history."""

    def __init__(self, now: dt.datetime = TIMELINE_EPOCH) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def record(history: Timed, log: EventLog | None = None) -> tuple[EventLog, Timed]:
    """Append the batches in order at their times; keep those the log accepts."""
    clock = Clock()
    log = MemoryLog(clock=clock) if log is None else log
    accepted: Timed = []
    for moment, batch in history:
        clock.now = moment
        try:
            log.append(batch)
        except InvalidEvent:  # unknown target, same-as cycle, correction that does not fit
            continue
        accepted.append((moment, batch))
    return log, accepted


def new_log(*batches: Sequence[Event], step: float = 60) -> tuple[MemoryLog, Clock]:
    """A log of the entities of TIMELINE_ENTITIES and the batches, a clock step apart."""
    clock = Clock()
    log = MemoryLog(clock=clock)
    log.append(entities(*TIMELINE_ENTITIES))
    for batch in batches:
        clock.now += dt.timedelta(seconds=step)
        log.append(batch)
    return log, clock


def assert_same_projection(actual: Projection, expected: Projection, log: EventLog) -> None:
    """Everything a reader can ask of the two projections is equal."""
    assert actual.head == expected.head
    assert actual.entries() == expected.entries()
    assert actual.entities() == expected.entities()
    assert actual.relationships() == expected.relationships()
    assert _view(actual.timeline()) == _view(expected.timeline())
    for key in expected.relationships():
        assert _view(actual.timeline(relationship=key)) == _view(
            expected.timeline(relationship=key)
        )
    for name in TIMELINE_ENTITIES:
        assert _view(actual.timeline(entity=name)) == _view(expected.timeline(entity=name))
    for line in log.read(1, expected.head.seq + 1):
        assert actual.is_retracted(line.id) == expected.is_retracted(line.id)
        assert actual.current(line.id) == expected.current(line.id)
        assert actual.history(line.id) == expected.history(line.id)


_FOLLOWING: weakref.WeakKeyDictionary[EventLog, Projection] = weakref.WeakKeyDictionary()


def fold(log: EventLog) -> Projection:
    """``Projection.from_log(log)``, checked against a projection that has followed the same log
    by updates since the test first asked (each derived before the next update)."""
    rebuilt = Projection.from_log(log)
    following = _FOLLOWING.setdefault(log, Projection())
    following.update(log)
    assert_same_projection(following, rebuilt, log)
    return rebuilt


def _view(tl: Timeline) -> Timeline:
    """The timeline without the moment it was taken at."""
    return attrs.evolve(tl, as_of=None)


def ids_of(entries: Sequence[Entry]) -> list[str]:
    return [e.id for e in entries]


# -- pairs ---------------------------------------------------------------------------------------


def test_pair_key_is_the_same_in_either_order() -> None:
    assert pair_key("cpv", "cpusa") == pair_key("cpusa", "cpv") == "cpusa~cpv"
    assert parse_pair("cpv~cpusa") == ("cpusa", "cpv")
    for bad in ("cpv", "cpv~", "~cpv", "a~b~c", "cpv~cpv"):
        with pytest.raises(ValueError, match="relationship"):
            parse_pair(bad)
    with pytest.raises(ValueError, match="two different entities"):
        pair_key("la", "la")


@given(st.lists(facts(st.sampled_from(TIMELINE_ENTITIES), st.none()), min_size=1, max_size=6))
def test_every_event_is_once_in_the_timeline_of_each_pair_and_entity_it_names(
    drawn: list[Any],
) -> None:
    batch = [attrs.evolve(f, id=f"f{n}") for n, f in enumerate(drawn)]
    log, _ = new_log(batch)
    projection = Projection.from_log(log)
    for fact in batch:
        involved = set(fact.entities())
        for a, b in itertools.combinations(TIMELINE_ENTITIES, 2):
            expected = 1 if {a, b} <= involved else 0
            for key in ((a, b), (b, a), f"{b}~{a}", pair_key(a, b)):
                found = projection.timeline(relationship=key).entries
                assert ids_of(found).count(fact.id) == expected, (fact.id, key)
        for name in TIMELINE_ENTITIES:
            found = projection.timeline(entity=name).entries
            assert ids_of(found).count(fact.id) == (1 if name in involved else 0)
        assert ids_of(projection.timeline().entries).count(fact.id) == 1
    listed = {key for fact in batch for key in _pairs(fact.entities())}
    assert set(projection.relationships()) == listed


def _pairs(names: Sequence[str]) -> set[str]:
    return {pair_key(a, b) for a, b in itertools.combinations(dict.fromkeys(names), 2)}


@given(st.lists(st.sampled_from(TIMELINE_ENTITIES), min_size=2, max_size=5, unique=True), st.data())
def test_the_order_participants_are_listed_in_does_not_matter(
    names: list[str], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(names))
    timelines = []
    for order in (names, shuffled):
        event = meeting("m", *order)
        log, _ = new_log([event])
        projection = Projection.from_log(log)
        (entry,) = projection.entries()
        assert set(entry.relationships()) == _pairs(names)
        timelines.append(
            {key: ids_of(projection.timeline(relationship=key).entries) for key in _pairs(names)}
        )
    assert timelines[0] == timelines[1]
    assert all(found == ["m"] for found in timelines[0].values())


def test_a_relationship_is_two_different_entities() -> None:
    log, _ = new_log([meeting("m", "cpusa", "cpv")])
    projection = Projection.from_log(log)
    with pytest.raises(ValueError, match="two entity ids"):
        projection.timeline(relationship=("cpusa", "cpv", "la"))
    with pytest.raises(ValueError, match="two different"):
        projection.timeline(relationship=("cpv", "cpv"))
    tl = projection.timeline(relationship=["cpv", "cpusa"])
    assert (tl.key, tl.title) == ("cpusa~cpv", "Party CPUSA – Party CPV")
    assert projection.timeline(entity="cpv").title == "Party CPV"
    assert projection.timeline(entity="nobody").entries == ()
    assert projection.timeline(entity="nobody").title == "nobody"


# -- order ---------------------------------------------------------------------------------------


def _independent_key(entry: Entry) -> tuple[dt.date, int, dt.datetime, int]:
    when = entry.when
    return when.lower, -when.upper.toordinal(), entry.published, entry.seq


@given(
    st.lists(facts(st.sampled_from(TIMELINE_ENTITIES), st.none()), min_size=1, max_size=8),
    st.data(),
)
def test_timeline_order_does_not_depend_on_append_order(
    drawn: list[Any], data: st.DataObject
) -> None:
    batch = [attrs.evolve(f, id=f"f{n}") for n, f in enumerate(drawn)]
    orders = [batch, data.draw(st.permutations(batch))]
    steps = data.draw(st.sampled_from([0, 1]))  # 0: every line recorded at the same moment
    results = []
    for order in orders:
        log, _ = new_log(*([event] for event in order), step=steps)
        entries = Projection.from_log(log).entries()
        assert entries == sorted(entries, key=_independent_key)
        keys = [e.sort_key for e in entries]
        assert keys == sorted(keys)
        assert len(set(keys)) == len(keys)
        appended = [e.id for e in order]
        for _, tied in itertools.groupby(entries, key=lambda e: e.when.sort_key):
            tied_ids = [e.id for e in tied]
            # ties of date fall to recorded_at then seq: the order they were appended in
            assert tied_ids == sorted(tied_ids, key=appended.index)
        # what is invariant: the dates in order, and which events share each date
        results.append(
            [
                (key, sorted(e.id for e in tied))
                for key, tied in itertools.groupby(entries, key=lambda e: e.when.sort_key)
            ]
        )
    assert results[0] == results[1]


@given(st.lists(edtf_dates(), min_size=1, max_size=12))
def test_the_sort_key_never_raises_and_orders_by_lower_bound_then_wider_span(
    dates: list[str],
) -> None:
    batch = [
        Period(id=f"p{n}", when=when, title="t", sources=[source()], participants=["la", "vn"])
        for n, when in enumerate(dates)
    ]
    log, _ = new_log(batch)
    entries = Projection.from_log(log).entries()
    for earlier, later in itertools.pairwise(entries):
        assert earlier.when.lower <= later.when.lower
        if earlier.when.lower == later.when.lower:
            assert earlier.when.upper >= later.when.upper
            if earlier.when.upper == later.when.upper:
                assert earlier.seq < later.seq


def test_open_intervals_sort_by_their_bounds() -> None:
    whens = ["../2021", "1962-09-05/..", "1945/1975", "1945", "2021", "1962-09-05", "19XX"]
    log, _ = new_log(
        [
            Period(id=f"p{n}", when=w, title=w, sources=[source()], participants=["la", "vn"])
            for n, w in enumerate(whens)
        ]
    )
    titles = [e.title for e in Projection.from_log(log).entries()]
    assert titles == ["../2021", "19XX", "1945/1975", "1945", "1962-09-05/..", "1962-09-05", "2021"]


# -- as of ---------------------------------------------------------------------------------------


@given(timed_histories(), st.data())
def test_as_of_is_the_replay_of_the_lines_recorded_by_then(history: Timed, data: st.DataObject):
    log, accepted = record(history)
    moments = sorted({moment for moment, _ in accepted})
    tick = dt.timedelta(microseconds=1)
    choices = [TIMELINE_EPOCH - tick, *moments, *(m + tick for m in moments)]
    as_of = data.draw(st.sampled_from(choices))
    prefix, kept = record([(m, b) for m, b in accepted if m <= as_of])
    assert [b for _, b in kept] == [b for m, b in accepted if m <= as_of]

    then = Projection.from_log(log, as_of=as_of)
    assert_same_projection(then, Projection.from_log(prefix), prefix)
    assert then.head == prefix.head
    for relationship in (None, *then.relationships()):
        cut = timeline(log, relationship=relationship, as_of=as_of)
        assert cut.entries == timeline(prefix, relationship=relationship).entries
        assert cut.as_of == as_of


def test_as_of_accepts_a_naive_time_as_utc() -> None:
    log, clock = new_log([meeting("m1", "cpusa", "cpv")])
    clock.now += dt.timedelta(hours=1)
    log.append(meeting("m2", "cpusa", "cpv"))
    naive = (clock.now - dt.timedelta(minutes=1)).replace(tzinfo=None)
    assert ids_of(timeline(log, as_of=naive).entries) == ["m1"]


# -- incremental ---------------------------------------------------------------------------------


@given(timed_histories(), st.data())
def test_updating_in_chunks_gives_what_a_rebuild_gives(history: Timed, data: st.DataObject):
    clock = Clock()
    log = MemoryLog(clock=clock)
    projection = Projection()
    rest = list(history)
    while rest:
        size = data.draw(st.integers(1, len(rest)), label="chunk")
        chunk, rest = rest[:size], rest[size:]
        before = log.head.seq
        for moment, batch in chunk:
            clock.now = moment
            with contextlib.suppress(InvalidEvent):
                log.append(batch)
        assert projection.update(log) == log.head.seq - before
        # each head derived before the next update: what is kept from one head to the next
        assert projection.entries() == Projection.from_log(log).entries()
        if data.draw(st.booleans(), label="look"):
            assert_same_projection(projection, Projection.from_log(log), log)
    assert projection.update(log) == 0
    assert_same_projection(projection, Projection.from_log(log), log)


def _timelines(projection: Projection) -> dict[str, tuple[Entry, ...]]:
    """Every timeline's entries by key, as publish cuts them."""
    found = {"all": projection.timeline().entries}
    for key in projection.relationships():
        found[key] = projection.timeline(relationship=key).entries
    for name in projection.entity_keys():
        found[name] = projection.timeline(entity=name).entries
    return found


@given(timed_histories(), st.data())
def test_the_changes_taken_name_every_timeline_that_changed(
    history: Timed, data: st.DataObject
) -> None:
    clock = Clock()
    log = MemoryLog(clock=clock)
    projection = Projection()
    assert projection.take_changes() is None  # folded from the start: everything is new
    before: dict[str, tuple[Entry, ...]] = {}
    rest = list(history)
    while rest:
        size = data.draw(st.integers(1, len(rest)), label="chunk")
        chunk, rest = rest[:size], rest[size:]
        for moment, batch in chunk:
            clock.now = moment
            with contextlib.suppress(InvalidEvent):
                log.append(batch)
        projection.update(log)
        changes = projection.take_changes()
        now = _timelines(projection)  # the index, kept up to date, against a rebuild's
        assert now == _timelines(Projection.from_log(log))
        differ = {k for k in before.keys() | now.keys() if before.get(k, ()) != now.get(k, ())}
        assert differ <= (changes or set())
        before = now
    assert projection.take_changes() == set()


@given(timed_histories(), timed_histories())
def test_a_checkpoint_another_log_does_not_hold_means_a_rebuild(first: Timed, second: Timed):
    log_a, _ = record(first)
    log_b, _ = record(second)
    projection = Projection.from_log(log_a)
    projection.entries()  # caches of log A, which must not leak into log B's answers
    head = projection.head
    holds = log_b.head.seq >= head.seq and log_b.get_seq(head.seq).digest == head.digest
    applied = projection.update(log_b)
    assert applied == log_b.head.seq - (head.seq if holds else 0)
    assert_same_projection(projection, Projection.from_log(log_b), log_b)


def test_a_log_of_the_same_length_with_other_lines_means_a_rebuild() -> None:
    events = [*entities(*TIMELINE_ENTITIES), meeting("m1", "cpusa", "cpv")]
    log_a = MemoryLog(clock=Clock(TIMELINE_EPOCH))
    log_b = MemoryLog(clock=Clock(TIMELINE_EPOCH + dt.timedelta(days=1)))
    log_a.append(events)
    log_b.append([*events[:-1], meeting("m1", "cpusa", "cpv", title="Another title")])
    assert log_a.head.seq == log_b.head.seq
    projection = Projection.from_log(log_a)
    assert projection.entries()[0].title == "Meeting m1"
    assert projection.update(log_b) == log_b.head.seq
    assert projection.entries()[0].title == "Another title"
    assert projection.entries() == Projection.from_log(log_b).entries()


def test_a_shorter_log_means_a_rebuild() -> None:
    long_log, _ = new_log([meeting("m1", "cpusa", "cpv")], [meeting("m2", "la", "vn")])
    short_log, _ = new_log([meeting("m1", "cpusa", "cpv")])
    projection = Projection.from_log(long_log)
    assert projection.update(short_log) == short_log.head.seq
    assert ids_of(projection.entries()) == ["m1"]


def test_update_applies_only_what_is_new() -> None:
    log, clock = new_log([meeting("m1", "cpusa", "cpv")])
    projection = Projection.from_log(log)
    first = projection.timeline(relationship="cpusa~cpv")
    clock.now += dt.timedelta(minutes=1)
    log.append([meeting("m2", "cpusa", "cpv", when="2020"), meeting("m3", "la", "vn")])
    assert projection.update(log) == 2
    assert ids_of(first.entries) == ["m1"]  # a timeline already cut does not change
    assert ids_of(projection.timeline(relationship="cpv~cpusa").entries) == ["m2", "m1"]
    assert projection.update(log) == 0


def test_apply_refuses_lines_that_do_not_follow() -> None:
    log, _ = new_log([meeting("m1", "cpusa", "cpv")], [meeting("m2", "la", "vn")])
    projection = Projection()
    with pytest.raises(ValueError, match="does not follow"):
        projection.apply(log.read(2))
    projection.apply(log.read(1, 3))
    other = MemoryLog(clock=Clock(TIMELINE_EPOCH + dt.timedelta(days=1)))
    other.append(entities(*TIMELINE_ENTITIES))  # the same events at another time: other lines
    with pytest.raises(ValueError, match="does not follow"):
        projection.apply(other.read(3))
    assert projection.head.seq == 2
    assert projection.update(log) == log.head.seq - 2


# -- checkpoint files ----------------------------------------------------------------------------


@given(timed_histories(), st.data())
def test_save_load_update_gives_what_a_rebuild_gives(history: Timed, data: st.DataObject):
    log, accepted = record(history)
    cut = data.draw(st.integers(0, len(accepted)))
    earlier, _ = record(accepted[:cut])
    projection = Projection.from_log(earlier)
    if data.draw(st.booleans()):
        projection.entries()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "projection.checkpoint"
        projection.save(path)
        loaded = Projection.load(path)
        assert loaded is not None
        assert_same_projection(loaded, projection, earlier)
        loaded.update(log)
        assert_same_projection(loaded, Projection.from_log(log), log)
        assert [p.name for p in Path(folder).iterdir()] == ["projection.checkpoint"]


def _every_field(value: Any) -> Any:
    """The value with every attrs object spelled out: its class and all its fields, those left
    out of ``==`` included (an EDTF date compares by text only)."""
    if attrs.has(type(value)):
        fields = attrs.fields(type(value))
        return (type(value), tuple((f.name, _every_field(getattr(value, f.name))) for f in fields))
    if isinstance(value, _Item):
        return (_Item, _every_field((value.record, value.amendments, value.reaches)))
    if isinstance(value, _Index):
        return (_Index, _every_field((value.by_entity, value.by_pair)))
    if isinstance(value, (tuple, list)):
        return type(value)(_every_field(v) for v in value)
    if isinstance(value, dict):
        return [(k, _every_field(v)) for k, v in value.items()]  # in order
    return value


@given(timed_histories())
def test_a_checkpoint_restores_every_field_of_every_object(history: Timed) -> None:
    log, _ = record(history)
    projection = Projection.from_log(log)
    projection.entries()
    projection.relationships()  # the index too
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "projection.checkpoint"
        projection.save(path)
        loaded = Projection.load(path)
    assert loaded is not None
    for name in _SAVED:
        assert _every_field(getattr(loaded, name)) == _every_field(getattr(projection, name))


def test_a_checkpoint_keeps_the_default_pickling_for_classes_without_slot_setters() -> None:
    @attrs.frozen
    class Plain:
        value: int

        def __init__(self, value: int) -> None:  # its own __init__: no builder
            self.__attrs_init__(value)

    assert _builder(Plain) is None
    assert _builder(Entry) is _builder(Entry) is not None


def _saved(tmp_path: Path) -> tuple[Path, EventLog]:
    log, _ = new_log([meeting("m1", "cpusa", "cpv")], [meeting("m2", "la", "vn")])
    path = tmp_path / "checkpoint"
    Projection.from_log(log).save(path)
    return path, log


def test_a_saved_projection_keeps_its_as_of(tmp_path: Path) -> None:
    log, clock = new_log([meeting("m1", "cpusa", "cpv")])
    as_of = clock.now
    clock.now += dt.timedelta(minutes=1)
    log.append(meeting("m2", "cpusa", "cpv"))
    Projection.from_log(log, as_of=as_of).save(tmp_path / "c")
    loaded = Projection.load(tmp_path / "c")
    assert loaded is not None
    assert loaded.as_of == as_of
    assert loaded.update(log) == 0
    assert ids_of(loaded.entries()) == ["m1"]


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b"", id="empty"),
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b[:-1], id="last-byte-gone"),
        pytest.param(lambda b: _flip(b, len(b) // 2), id="bit-flipped-payload"),
        pytest.param(lambda b: _flip(b, 3), id="bit-flipped-magic"),
        pytest.param(lambda b: _flip(b, len(b) - 5), id="bit-flipped-digest"),
        pytest.param(lambda b: b"not a checkpoint at all\n" * 10, id="garbage"),
        pytest.param(lambda b: pickle.dumps({"head": 1}), id="a-bare-pickle"),
    ],
)
def test_a_damaged_or_old_checkpoint_loads_as_none(tmp_path: Path, damage: Any) -> None:
    path, log = _saved(tmp_path)
    path.write_bytes(damage(path.read_bytes()))
    assert Projection.load(path) is None
    # what the caller does then
    projection = Projection.load(path) or Projection.from_log(log)
    assert ids_of(projection.entries()) == ["m1", "m2"]


def _with_header(data: bytes, header: bytes) -> bytes:
    """The checkpoint with another header line and a digest that fits it."""
    magic_end = data.index(b"\n") + 1
    header_end = data.index(b"\n", magic_end) + 1
    body = data[:magic_end] + header + b"\n" + data[header_end:-65]
    return body + hashlib.sha256(body).hexdigest().encode() + b"\n"


@pytest.mark.parametrize(
    "header",
    [
        b'{"format":%d,"layout":"%%s"}' % (_CHECKPOINT_FORMAT - 1),
        b'{"format":%d,"layout":"%%s"}' % (_CHECKPOINT_FORMAT + 1),
        b'{"format":%d,"layout":"x"}' % _CHECKPOINT_FORMAT,
    ],
    ids=["older-format", "newer-format", "other-layout"],
)
def test_a_checkpoint_of_another_format_or_layout_loads_as_none(
    tmp_path: Path, header: bytes
) -> None:
    path, _ = _saved(tmp_path)
    data = path.read_bytes()
    layout = orjson.loads(data.split(b"\n")[1])["layout"]
    same = b'{"format":%d,"layout":"%s"}' % (_CHECKPOINT_FORMAT, layout.encode())
    path.write_bytes(_with_header(data, same))
    assert Projection.load(path) is not None  # the same header, rewritten: still good
    path.write_bytes(_with_header(data, header.replace(b"%s", layout.encode())))
    assert Projection.load(path) is None


def test_a_missing_or_unreadable_checkpoint_loads_as_none(tmp_path: Path) -> None:
    assert Projection.load(tmp_path / "missing") is None
    assert Projection.load(tmp_path) is None  # a directory


def test_save_replaces_the_file_atomically(tmp_path: Path) -> None:
    path, log = _saved(tmp_path)
    Projection().save(path)
    loaded = Projection.load(path)
    assert loaded is not None
    assert loaded.entries() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    with pytest.raises(OSError, match="No such file"):
        Projection.from_log(log).save(tmp_path / "missing" / "checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


# -- amendments ----------------------------------------------------------------------------------


def _congress(**fields: Any) -> Congress:
    values: dict[str, Any] = {
        "id": "cpv-14",
        "when": "2026",
        "title": "CPV 14th National Party Congress",
        "sources": [source()],
        "organisation": "cpv",
        "ordinal": 14,
        "status": "scheduled",
    }
    return Congress(**(values | fields))


def test_a_status_change_sets_status_and_date_of_the_one_entry() -> None:
    log, clock = new_log([_congress()])
    before = fold(log).entries()
    assert [(e.status, str(e.when)) for e in before] == [("scheduled", "2026")]
    clock.now += dt.timedelta(days=30)
    log.append(StatusChanged(id="held", target="cpv-14", status="occurred", when="2026-01-19"))
    (entry,) = fold(log).entries()
    assert (entry.id, entry.status, str(entry.when)) == ("cpv-14", "occurred", "2026-01-19")
    assert entry.published == before[0].published
    assert entry.updated == clock.now != entry.published
    assert [r.id for r in entry.history] == ["cpv-14", "held"]
    assert fold(log).timeline().upcoming(dt.date(2026, 1, 1)) == ()


@pytest.mark.parametrize(
    ("status", "when", "shown"),
    [("postponed", "2026-06", "2026-06"), ("cancelled", None, "2026"), ("occurred", None, "2026")],
)
def test_postponed_and_cancelled(status: Any, when: str | None, shown: str) -> None:
    log, _ = new_log([_congress()], [StatusChanged(target="cpv-14", status=status, when=when)])
    tl = fold(log).timeline(entity="cpv")
    assert [(e.status, str(e.when)) for e in tl] == [(status, shown)]
    assert tl.upcoming(dt.date(2026, 1, 1)) == ()


def test_the_last_standing_status_change_wins_and_its_retraction_restores() -> None:
    log, _ = new_log(
        [_congress()],
        [StatusChanged(id="s1", target="cpv-14", status="postponed", when="2026-06")],
        [StatusChanged(id="s2", target="cpv-14", status="occurred", when="2026-06-12")],
    )
    assert [(e.status, str(e.when)) for e in fold(log).entries()] == [("occurred", "2026-06-12")]
    log.append(Retracted(target="s2", reason="the date was wrong"))
    assert [(e.status, str(e.when)) for e in fold(log).entries()] == [("postponed", "2026-06")]


def test_a_correction_changes_exactly_the_fields_it_names() -> None:
    original = meeting("m1", "cpusa", "cpv", place="Hanoi", summary="A meeting.")
    log, clock = new_log([original])
    published = fold(log).entries()[0].published
    clock.now += dt.timedelta(days=2)
    log.append(Corrected(id="c1", target="m1", changes={"title": "Better"}, reason="typo"))
    (entry,) = fold(log).entries()
    assert entry.title == "Better"
    assert event_data(entry.event) == event_data(original) | {"title": "Better"}
    assert entry.published == published
    assert entry.updated == clock.now
    assert entry.updated > entry.published
    assert [r.id for r in entry.history] == ["m1", "c1"]


def test_a_correction_of_the_date_moves_the_entry() -> None:
    log, _ = new_log([meeting("m1", "cpusa", "cpv", when="2020"), meeting("m2", "cpusa", "cpv")])
    assert ids_of(fold(log).entries()) == ["m1", "m2"]
    log.append(Corrected(target="m1", changes={"when": "2025-01"}, reason="wrong year"))
    assert ids_of(fold(log).entries()) == ["m2", "m1"]


def test_retracting_a_correction_restores_the_earlier_value() -> None:
    log, _ = new_log(
        [meeting("m1", "cpusa", "cpv")],
        [Corrected(id="c1", target="m1", changes={"title": "First fix"}, reason="r")],
        [Corrected(id="c2", target="m1", changes={"title": "Second fix"}, reason="r")],
    )
    assert fold(log).entries()[0].title == "Second fix"
    log.append(Retracted(id="r2", target="c2", reason="the first fix was right"))
    assert fold(log).entries()[0].title == "First fix"
    log.append(Retracted(id="r1", target="c1", reason="so was the original"))
    entry = fold(log).entries()[0]
    assert entry.title == "Meeting m1"
    assert [r.id for r in entry.history] == ["m1", "c1", "c2", "r2", "r1"]


def test_a_correction_of_a_status_change_applies() -> None:
    log, _ = new_log(
        [_congress()],
        [StatusChanged(id="s", target="cpv-14", status="occurred", when="2026-01-19")],
        [Corrected(id="c", target="s", changes={"when": "2026-01-20"}, reason="typo")],
    )
    (entry,) = fold(log).entries()
    assert (entry.status, str(entry.when)) == ("occurred", "2026-01-20")
    assert [r.id for r in entry.history] == ["cpv-14", "s", "c"]


def test_a_correction_that_no_longer_fits_is_left_out_rather_than_breaking_the_timeline() -> None:
    gift = Donation(
        id="d", when="2020", title="Masks", sources=[source()], donor="cpv", recipient="cpusa",
        items="masks", amount="100.00", currency="USD",
    )  # fmt: skip
    log, _ = new_log(
        [gift],
        [Corrected(id="c1", target="d", changes={"items": None}, reason="money only")],
        # fits the donation as recorded, but not after c1: neither items nor an amount
        [Corrected(id="c2", target="d", changes={"amount": None, "currency": None}, reason="r")],
    )
    (entry,) = fold(log).entries()
    assert isinstance(entry.event, Donation)
    assert (entry.event.items, entry.event.amount) == (None, "100.00")
    assert [r.id for r in entry.history] == ["d", "c1", "c2"]
    log.append(Retracted(target="c1", reason="there were masks"))
    (entry,) = fold(log).entries()
    assert (entry.event.items, entry.event.amount) == ("masks", None)  # type: ignore[attr-defined]


def test_a_retraction_removes_the_entry_and_the_history_keeps_it() -> None:
    log, clock = new_log([meeting("m1", "cpusa", "cpv"), meeting("m2", "cpusa", "cpv")])
    clock.now += dt.timedelta(minutes=5)
    log.append(Retracted(id="r1", target="m1", reason="never happened"))
    projection = fold(log)
    assert ids_of(projection.timeline(relationship="cpusa~cpv").entries) == ["m2"]
    assert projection.is_retracted("m1")
    assert not projection.is_retracted("m2")
    assert [r.id for r in projection.history("m1")] == ["m1", "r1"]
    assert projection.current("m1") == log.get("m1").event  # type: ignore[union-attr]
    with pytest.raises(KeyError):
        projection.history("nothing")
    assert not projection.is_retracted("nothing")


def test_retracting_a_retraction_restores_and_chains_of_any_length_hold() -> None:
    log, _ = new_log([meeting("m1", "cpusa", "cpv")])
    chain = [Retracted(id="r0", target="m1", reason="r")]
    chain += [Retracted(id=f"r{n}", target=f"r{n - 1}", reason="r") for n in range(1, 3001)]
    log.append(chain[:2])
    assert ids_of(Projection.from_log(log).entries()) == ["m1"]
    log.append(chain[2:-1])  # r0 … r2999: r2999 stands, r2998 does not, … r0 does not
    projection = Projection.from_log(log)
    assert ids_of(projection.entries()) == ["m1"]
    assert not projection.is_retracted("m1")
    assert projection.is_retracted("r0")
    log.append(chain[-1])  # r3000: now r0 stands, and m1 is retracted
    projection = Projection.from_log(log)
    assert projection.entries() == []
    assert projection.is_retracted("m1")
    assert projection.is_retracted("r2999")
    assert not projection.is_retracted("r3000")
    assert len(projection.history("m1")) == 3002


def test_same_as_merges_two_reports_and_retracting_the_link_splits_them() -> None:
    first = meeting("report-1", "cpusa", "cpv", sources=[source(title="First article")])
    second = meeting("report-2", "cpv", "cpusa", "la", sources=[source(title="Second article")])
    log, _ = new_log([first], [second])
    assert len(fold(log).entries()) == 2
    log.append(SameAs(id="link", target="report-2", other="report-1"))
    (entry,) = fold(log).timeline(relationship="cpusa~cpv").entries
    assert (entry.id, entry.ids) == ("report-1", ("report-1", "report-2"))
    assert [s.title for s in entry.sources] == ["First article", "Second article"]
    assert entry.entities == ("cpusa", "cpv", "la")
    assert [r.id for r in entry.history] == ["report-1", "report-2", "link"]
    assert ids_of(fold(log).timeline(relationship="la~vn").entries) == []
    assert ids_of(fold(log).timeline(relationship="cpv~la").entries) == ["report-1"]
    log.append(Retracted(id="unlink", target="link", reason="two meetings after all"))
    entries = fold(log).entries()
    assert [(e.id, e.ids) for e in entries] == [
        ("report-1", ("report-1",)),
        ("report-2", ("report-2",)),
    ]
    assert [r.id for r in entries[1].history] == ["report-2", "link", "unlink"]


def test_same_as_chains_merge_into_the_first_recorded_and_retracting_a_member_splits() -> None:
    log, _ = new_log(
        [meeting("a", "cpusa", "cpv"), meeting("b", "cpusa", "cpv"), meeting("c", "cpusa", "cpv")],
        [SameAs(target="c", other="b"), SameAs(target="b", other="a")],
    )
    assert [e.ids for e in fold(log).entries()] == [("a", "b", "c")]
    log.append(Retracted(target="b", reason="not a report of it"))
    assert [e.ids for e in fold(log).entries()] == [("a",), ("c",)]


# -- bad input at append -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amendment",
    [
        Corrected(target="nothing", changes={"title": "x"}, reason="r"),
        StatusChanged(target="nothing", status="occurred"),
        Retracted(target="nothing", reason="r"),
        SameAs(target="m1", other="nothing"),
    ],
    ids=["correction", "status-change", "retraction", "same-as"],
)
def test_an_amendment_of_an_unknown_event_is_refused_and_nothing_changes(amendment: Any) -> None:
    log, _ = new_log([meeting("m1", "cpusa", "cpv")])
    projection = Projection.from_log(log)
    before, lines = projection.timeline(), log.lines()
    with pytest.raises(UnknownTarget):
        log.append([meeting("m2", "la", "vn"), amendment])
    assert log.lines() == lines
    assert projection.update(log) == 0
    assert projection.timeline() == before == fold(log).timeline()


def test_a_same_as_cycle_is_refused_and_nothing_changes() -> None:
    log, _ = new_log(
        [meeting(x, "cpusa", "cpv") for x in "abc"],
        [SameAs(target="a", other="b"), SameAs(target="b", other="c")],
    )
    projection = Projection.from_log(log)
    before, lines = projection.timeline(), log.lines()
    with pytest.raises(InvalidEvent, match="cycle"):
        log.append(SameAs(target="c", other="a"))
    assert log.lines() == lines
    assert projection.update(log) == 0
    assert projection.timeline() == before
    assert [e.ids for e in before] == [("a", "b", "c")]


def test_a_correction_that_would_make_the_event_invalid_is_refused() -> None:
    log, _ = new_log([meeting("m1", "cpusa", "cpv")])
    lines = log.lines()
    with pytest.raises(InvalidEvent):
        log.append(Corrected(target="m1", changes={"when": "not a date"}, reason="r"))
    with pytest.raises(InvalidEvent):
        log.append(Corrected(target="m1", changes={"no_such_field": 1}, reason="r"))
    assert log.lines() == lines


def test_a_cycle_of_standing_links_made_by_retracting_a_retraction_still_merges_once() -> None:
    log, _ = new_log(
        [meeting(x, "cpusa", "cpv") for x in "abc"],
        [SameAs(id="ab", target="a", other="b"), SameAs(id="bc", target="b", other="c")],
        [Retracted(id="r", target="bc", reason="r")],
        [SameAs(id="ca", target="c", other="a")],  # allowed: b~c does not stand
        [Retracted(target="r", reason="it did")],  # now a~b, b~c and c~a all stand
    )
    assert [e.ids for e in fold(log).entries()] == [("a", "b", "c")]


# -- entities ------------------------------------------------------------------------------------


def test_entity_definitions_follow_corrections_and_retractions() -> None:
    log, _ = new_log([meeting("m1", "cpusa", "cpv")])
    log.append(Corrected(target="entity:cpv", changes={"short_name": "ĐCSVN"}, reason="r"))
    projection = fold(log)
    assert projection.timeline(relationship="cpusa~cpv").title == "Party CPUSA – ĐCSVN"
    log.append(Retracted(target="entity:cpusa", reason="r"))
    projection = fold(log)
    assert "cpusa" not in projection.entities()
    assert projection.timeline(relationship="cpusa~cpv").title == "cpusa – ĐCSVN"
    projection.entities().clear()  # a copy: the projection's own is untouched
    assert "cpv" in projection.timeline().entities


@given(st.lists(entities_defined(st.sampled_from(TIMELINE_ENTITIES)), max_size=3))
def test_names_come_from_the_definitions(definitions: list[Any]) -> None:
    log = MemoryLog(clock=Clock())
    kept = {}
    for d in definitions:
        if d.entity not in kept:
            log.append(attrs.evolve(d, id=None))
            kept[d.entity] = d
    tl = Projection.from_log(log).timeline()
    for name in TIMELINE_ENTITIES:
        d = kept.get(name)
        assert tl.name(name) == (name if d is None else d.short_name or d.name)


# -- anniversaries -------------------------------------------------------------------------------


def _on(day: str, status: Any = "occurred") -> Meeting:
    event_id = re.sub(r"[^0-9A-Za-z-]", "_", f"m-{day}-{status}")
    return meeting(event_id, "la", "vn", when=day, status=status)


def test_anniversaries_in_a_window_include_both_edges() -> None:
    tl = Projection.from_log(new_log([_on("1962-09-05")])[0]).timeline()
    assert [a.years for a in tl.anniversaries(dt.date(2026, 9, 5), after=0)] == [64]
    assert [a.years for a in tl.anniversaries(dt.date(2026, 8, 30), after=6)] == [64]
    assert tl.anniversaries(dt.date(2026, 8, 30), after=5) == ()
    assert [a.date for a in tl.anniversaries(dt.date(2026, 9, 6), before=1)] == [
        dt.date(2026, 9, 5)
    ]
    assert tl.anniversaries(dt.date(2026, 9, 6), before=0) == ()
    assert tl.anniversaries(dt.date(1962, 9, 5)) == ()  # the day itself is no anniversary


def test_anniversaries_are_of_day_precise_events_that_occurred() -> None:
    events = [
        _on("1962-09-05"), _on("1962-09-05", "cancelled"), _on("1962-09-05", "scheduled"),
        _on("1962-09"), _on("1962"), _on("1962-09-05/..") , _on("1962-09-05?"),
    ]  # fmt: skip
    tl = Projection.from_log(new_log(events)[0]).timeline()
    found = tl.anniversaries(dt.date(2026, 9, 5))
    assert [a.entry.id for a in found] == ["m-1962-09-05-occurred", "m-1962-09-05_-occurred"]
    assert all(isinstance(a, Anniversary) and a.years == 64 for a in found)


def test_the_29th_of_february() -> None:
    tl = Projection.from_log(new_log([_on("2024-02-29")])[0]).timeline()
    assert [(a.date, a.years) for a in tl.anniversaries(dt.date(2025, 2, 28), after=0)] == [
        (dt.date(2025, 2, 28), 1)
    ]
    assert tl.anniversaries(dt.date(2025, 3, 1), after=0) == ()
    assert [(a.date, a.years) for a in tl.anniversaries(dt.date(2028, 2, 28), after=1)] == [
        (dt.date(2028, 2, 29), 4)
    ]
    assert tl.anniversaries(dt.date(2028, 2, 28), after=0) == ()


def test_a_window_of_several_years_gives_one_anniversary_a_year() -> None:
    tl = Projection.from_log(new_log([_on("2024-02-29")])[0]).timeline()
    found = tl.anniversaries(dt.date(2025, 1, 1), after=4 * 366)
    assert [(a.date, a.years) for a in found] == [
        (dt.date(2025, 2, 28), 1),
        (dt.date(2026, 2, 28), 2),
        (dt.date(2027, 2, 28), 3),
        (dt.date(2028, 2, 29), 4),
    ]


def test_a_window_at_the_ends_of_the_calendar() -> None:
    tl = Projection.from_log(new_log([_on("0001-12-29"), _on("9999-12-30")])[0]).timeline()
    assert [a.years for a in tl.anniversaries(dt.date(9999, 12, 30), before=3, after=10)] == [9998]
    assert tl.anniversaries(dt.date(1, 1, 1), before=10, after=0) == ()


# -- the timeline's other views ------------------------------------------------------------------


def test_entries_between_and_upcoming() -> None:
    log, _ = new_log(
        [
            _congress(),
            meeting("m1", "cpusa", "cpv", when="2024-09-22"),
            meeting("m2", "cpusa", "cpv", when="2024-09/2024-10"),
        ]
    )
    tl = Projection.from_log(log).timeline()
    assert ids_of(tl.entries_between(dt.date(2024, 10, 1), dt.date(2024, 12, 31))) == ["m2"]
    assert ids_of(tl.entries_between(dt.date(2024, 9, 22), dt.date(2024, 9, 22))) == ["m2", "m1"]
    assert ids_of(tl.upcoming(dt.date(2026, 12, 31))) == ["cpv-14"]
    assert tl.upcoming(dt.date(2027, 1, 1)) == ()
    assert len(tl) == 3
    assert [e.id for e in tl] == ids_of(tl.entries)


def test_timelines_of_one_head_are_cut_from_one_fold() -> None:
    log, _ = new_log([meeting("m1", "cpusa", "cpv"), meeting("m2", "la", "vn", "cpv")])
    projection = Projection.from_log(log)
    assert projection.timeline(entity="cpv").entries[0] is projection.timeline().entries[0]
    assert projection.relationships() == ["cpusa~cpv", "cpv~la", "cpv~vn", "la~vn"]
    projection.entries().clear()  # a copy
    projection.relationships().clear()
    assert len(projection.entries()) == 2
    assert len(projection.relationships()) == 4


def test_timeline_of_a_log_follows_its_appends_and_keeps_each_as_of() -> None:
    log, clock = new_log([meeting("m1", "cpusa", "cpv")])
    first = timeline(log, relationship="cpusa~cpv")
    then = clock.now
    clock.now += dt.timedelta(minutes=1)
    log.append(meeting("m2", "cpusa", "cpv"))
    assert ids_of(timeline(log, relationship="cpusa~cpv").entries) == ["m1", "m2"]
    assert ids_of(timeline(log, relationship="cpusa~cpv", as_of=then).entries) == ["m1"]
    assert ids_of(first.entries) == ["m1"]
    clock.now += dt.timedelta(minutes=1)
    log.append(Retracted(target="m1", reason="r"))
    assert ids_of(timeline(log).entries) == ["m2"]
    for seconds in range(8):  # more moments than are kept
        assert ids_of(timeline(log, as_of=then + dt.timedelta(seconds=seconds)).entries) == ["m1"]
    assert ids_of(timeline(log, as_of=clock.now).entries) == ["m2"]
    assert timeline(log).head == log.head


def test_the_garbage_collector_is_left_as_it_was(tmp_path: Path) -> None:
    log, _ = new_log([meeting("m1", "cpusa", "cpv")])
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            projection = Projection.from_log(log)
            projection.entries()
            projection.save(tmp_path / "c")
            assert Projection.load(tmp_path / "c") is not None
            assert gc.isenabled() is enabled
        finally:
            gc.enable()


class _Cycle:
    me: Any = None


def test_cyclic_garbage_is_still_collected_and_frozen_objects_stay_frozen(tmp_path: Path) -> None:
    log, _ = new_log([meeting("m1", "cpusa", "cpv")])
    garbage = _Cycle()
    garbage.me = garbage
    gone = weakref.ref(garbage)
    del garbage
    Projection.from_log(log).entries()  # hands the young objects to the oldest generation
    gc.collect()
    assert gone() is None
    gc.freeze()  # an application's own frozen objects
    try:
        frozen = gc.get_freeze_count()
        projection = Projection.from_log(log)
        projection.entries()
        projection.save(tmp_path / "c")
        assert Projection.load(tmp_path / "c") is not None
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


@given(merge_histories())
def test_merging_followed_line_by_line_gives_what_a_rebuild_gives(events: list[Event]) -> None:
    log, _ = new_log()
    following = Projection()
    for event in events:
        try:
            log.append(event)
        except InvalidEvent:  # a same-as link that would close a cycle
            continue
        following.update(log)
        rebuilt = Projection.from_log(log)
        assert following.entries() == rebuilt.entries()
        assert following.relationships() == rebuilt.relationships()
    assert_same_projection(following, Projection.from_log(log), log)
