"""The contract every event log backend keeps, as one test class to subclass per backend.

How to use it for a backend (JSON Lines, memory, PostgreSQL …)::

    from log_contract import LogContract

    class TestMyLog(LogContract):
        @pytest.fixture
        def make_log(self, tmp_path_factory):          # any fixtures the backend needs
            def make(**options):                         # options: clock=, require_entities=
                return MyLog(fresh_storage(), **options)
            return make

        def stored(self, log):                           # optional, see below
            return exact_bytes_of(log)

        def reopen(self, log):                           # optional, see below
            return MyLog(same_storage_as(log))

- ``make_log(**options)`` must return a **new, empty** log each time it is called (the property
  tests call it once per example) and pass ``options`` on to :class:`EventLog`. It must also
  close what it opened when the test ends (the ``log`` fixture closes the log it made itself).
- ``stored(log)`` returns something that changes whenever the backend stores anything. The
  default compares the head and every line's digest through the public API; override it with the
  exact stored bytes where the backend can give them, so that "writes nothing" means that.
- ``reopen(log)`` returns a second handle on the same stored log (another process or connection
  would hold one). The default skips the tests that need it.

Everything here goes through the public interface of :class:`solidline.log.EventLog`, so a
backend passes it by keeping the same promises, not by sharing code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings

from conftest import FakeClock, entities, meeting, source
from solidline import (
    ConflictingAppend,
    Corrected,
    EntityDefined,
    HeadMoved,
    InvalidEvent,
    Retracted,
    SameAs,
    StatusChanged,
    UnknownTarget,
)
from solidline.dates import parse_date
from solidline.log import GENESIS, EventLog, Head
from solidline.model import Event
from strategies import histories

MakeLog = Callable[..., EventLog]

# A factory fixture is safe to share between hypothesis examples (each call makes a new log),
# and each backend's subclass runs the same property on its own logs.
_per_example = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors]
)


def _ids(log: EventLog, start: int = 1) -> list[str]:
    return [record.id for record in log.read(start)]


class LogContract:
    """What every log promises. Subclass it; see the module docstring."""

    # -- what a backend provides ------------------------------------------------------------------

    @pytest.fixture
    def make_log(self) -> MakeLog:
        raise NotImplementedError("a LogContract subclass provides a make_log fixture")

    def stored(self, log: EventLog) -> Any:
        """What the backend holds; by default the head and every line's digest."""
        return log.head, [(r.seq, r.digest) for r in log.read()]

    def reopen(self, log: EventLog) -> EventLog:
        """Another handle on the same stored log."""
        pytest.skip(f"{type(log).__name__} has no second handle on the same log")

    @pytest.fixture
    def log(self, make_log: MakeLog) -> Iterator[EventLog]:
        log = make_log()
        yield log
        log.close()

    @pytest.fixture
    def defined(self, log: EventLog) -> EventLog:
        """The log with three parties defined (seq 1 to 3)."""
        log.append(entities("cpusa", "cpv", "lprp"))
        return log

    def assert_refused(
        self, log: EventLog, batch: Any, error: type[Exception], **kwargs: Any
    ) -> pytest.ExceptionInfo[Exception]:
        """``append(batch)`` raises ``error`` and leaves what is stored exactly as it was."""
        before = self.stored(log)
        with pytest.raises(error) as caught:
            log.append(batch, **kwargs)
        assert self.stored(log) == before
        return caught

    # -- appending and reading --------------------------------------------------------------------

    def test_an_empty_log(self, log: EventLog) -> None:
        assert log.head == Head()
        assert list(log.read()) == []
        assert log.get("nothing") is None
        with pytest.raises(KeyError):
            log.get_seq(1)
        assert log.verify().lines == 0

    def test_append_one_event(self, log: EventLog) -> None:
        [event] = entities("cpusa")
        [record] = log.append(event)
        assert (record.seq, record.prev) == (1, GENESIS)
        assert record.event == attrs.evolve(event, id="entity:cpusa")
        assert record.id == "entity:cpusa"  # generated: an entity's definition is entity:<id>
        assert log.head == Head(1, record.digest, log.head.recorded_at)
        assert list(log.read()) == [record]
        assert log.get("entity:cpusa") == record
        assert log.get_seq(1) == record

    def test_append_a_batch_and_read_from_any_seq(self, defined: EventLog) -> None:
        log = defined
        batch = [meeting(f"m{n}", "cpusa", "cpv") for n in range(1, 6)]
        records = log.append(batch)
        assert [r.seq for r in records] == [4, 5, 6, 7, 8]
        assert [r.event for r in records] == batch
        everything = list(log.read())
        assert [r.seq for r in everything] == list(range(1, 9))
        for start in range(0, 11):
            assert list(log.read(start)) == everything[max(start, 1) - 1 :]
        assert list(log.read(3, 6)) == everything[2:5]
        assert [log.get_seq(seq) for seq in range(1, 9)] == everything

    def test_a_batch_shares_one_recorded_at_and_chains_its_lines(self, defined: EventLog) -> None:
        records = defined.append([meeting(f"m{n}", "cpusa") for n in range(3)])
        assert len({r.recorded_at for r in records}) == 1
        assert records[0].prev == defined.get_seq(3).digest
        assert [r.prev for r in records[1:]] == [r.digest for r in records[:-1]]

    def test_an_event_without_id_gets_a_stable_one(self, defined: EventLog) -> None:
        [first] = defined.append(meeting(None, "cpusa"))
        assert first.id.startswith("meeting-")
        assert defined.get(first.id) == first
        before = self.stored(defined)
        [again] = defined.append(meeting(None, "cpusa"))  # the same draft, appended again
        assert again == first
        assert self.stored(defined) == before

    def test_an_empty_batch_writes_nothing(self, defined: EventLog) -> None:
        before = self.stored(defined)
        assert defined.append([]) == []
        assert self.stored(defined) == before

    def test_what_is_not_an_event_is_refused(self, defined: EventLog) -> None:
        self.assert_refused(defined, [meeting("m1"), {"type": "meeting"}], InvalidEvent)

    # -- optimistic concurrency -------------------------------------------------------------------

    def test_expected_head_that_matches_appends(self, defined: EventLog) -> None:
        [record] = defined.append(meeting("m1"), expected_head=3)
        assert record.seq == 4

    @pytest.mark.parametrize("expected", [0, 2, 4])
    def test_expected_head_that_moved_writes_nothing(
        self, defined: EventLog, expected: int
    ) -> None:
        caught = self.assert_refused(defined, meeting("m1"), HeadMoved, expected_head=expected)
        assert isinstance(caught.value, HeadMoved)
        assert (caught.value.expected, caught.value.actual) == (expected, 3)
        assert defined.get("m1") is None

    def test_a_second_handle_sees_appends_and_moved_heads(self, defined: EventLog) -> None:
        other = self.reopen(defined)
        try:
            assert _ids(other) == _ids(defined)
            defined.append(meeting("m1"))
            assert other.get("m1") == defined.get("m1")
            with pytest.raises(HeadMoved):
                other.append(meeting("m2"), expected_head=3)
            [record] = other.append(meeting("m2"), expected_head=4)
            assert record.prev == defined.get_seq(4).digest
            assert defined.head == other.head
            assert defined.verify().lines == 5
        finally:
            other.close()

    # -- idempotence and conflicts ----------------------------------------------------------------

    def test_the_same_event_again_returns_its_record_and_writes_nothing(
        self, defined: EventLog
    ) -> None:
        [original] = defined.append(meeting("m1"))
        defined.append(meeting("m2"))
        before = self.stored(defined)
        [again] = defined.append(meeting("m1"))
        assert again == original  # same seq, same recorded_at, same chain
        assert self.stored(defined) == before

    def test_a_batch_of_old_and_new_events_writes_only_the_new(self, defined: EventLog) -> None:
        [m1] = defined.append(meeting("m1"))
        records = defined.append([meeting("m2"), meeting("m1"), meeting("m3"), meeting("m2")])
        assert [r.seq for r in records] == [5, 4, 6, 5]
        assert records[1] == m1
        assert _ids(defined, 4) == ["m1", "m2", "m3"]

    def test_the_same_id_with_other_content_is_refused(self, defined: EventLog) -> None:
        defined.append(meeting("m1"))
        changed = meeting("m1", title="Another title")
        caught = self.assert_refused(defined, [meeting("m2"), changed], ConflictingAppend)
        assert "m1" in str(caught.value)
        assert defined.get("m2") is None
        assert defined.get("m1").event == meeting("m1")  # type: ignore[union-attr]

    def test_the_same_id_twice_in_a_batch_with_other_content_is_refused(
        self, defined: EventLog
    ) -> None:
        batch = [meeting("m1"), meeting("m1", title="Another title")]
        self.assert_refused(defined, batch, ConflictingAppend)

    # -- references between events: a refused batch writes nothing and leaves no trace -----------

    def test_an_amendment_of_an_unknown_event_is_refused(self, defined: EventLog) -> None:
        batch = [
            meeting("m1"),
            StatusChanged(id="s1", target="m0", status="cancelled"),
        ]
        caught = self.assert_refused(defined, batch, UnknownTarget)
        assert caught.value.field == "target"  # type: ignore[attr-defined]
        assert defined.get("m1") is None
        # the refused batch left nothing behind in the log's index either
        self.assert_refused(defined, StatusChanged(target="m1", status="cancelled"), UnknownTarget)

    def test_an_undefined_entity_is_refused(self, defined: EventLog) -> None:
        batch = [*entities("pcc"), meeting("m1", "cpusa", "pcc"), meeting("m2", "cpusa", "kpv")]
        caught = self.assert_refused(defined, batch, InvalidEvent)
        assert caught.value.field == "entities"  # type: ignore[attr-defined]
        assert "kpv" in str(caught.value)
        # pcc was defined in the refused batch only: it is still unknown
        self.assert_refused(defined, meeting("m3", "pcc"), InvalidEvent)
        [record] = defined.append(entities("pcc"))
        assert record.seq == 4

    def test_entities_may_be_defined_in_the_same_batch(self, log: EventLog) -> None:
        records = log.append([*entities("pcc"), meeting("m1", "pcc")])
        assert [r.seq for r in records] == [1, 2]

    def test_entities_need_no_definition_when_the_log_does_not_require_it(
        self, make_log: MakeLog
    ) -> None:
        log = make_log(require_entities=False)
        try:
            assert log.append(meeting("m1", "nobody-defined-this"))[0].seq == 1
        finally:
            log.close()

    def test_a_status_change_must_name_a_fact(self, defined: EventLog) -> None:
        caught = self.assert_refused(
            defined, StatusChanged(target="entity:cpusa", status="cancelled"), UnknownTarget
        )
        assert "factual" in str(caught.value)

    def test_an_amendment_may_name_an_event_of_its_own_batch(self, defined: EventLog) -> None:
        records = defined.append(
            [meeting("m1"), StatusChanged(id="s1", target="m1", status="postponed")]
        )
        assert [r.seq for r in records] == [4, 5]

    def test_a_same_as_cycle_is_refused(self, defined: EventLog) -> None:
        defined.append([meeting("a"), meeting("b"), meeting("c")])
        defined.append(
            [SameAs(id="ab", target="a", other="b"), SameAs(id="bc", target="b", other="c")]
        )
        for link in (
            SameAs(id="ca", target="c", other="a"),
            SameAs(id="ba", target="b", other="a"),
        ):
            caught = self.assert_refused(defined, link, InvalidEvent)
            assert caught.value.field == "other"  # type: ignore[attr-defined]
        # a retracted link no longer joins them: the same pair may be linked again
        defined.append(Retracted(id="r-ab", target="ab", reason="two different meetings"))
        assert defined.append(SameAs(id="ab2", target="a", other="b"))[0].seq == 10

    def test_a_same_as_cycle_within_one_batch_is_refused(self, defined: EventLog) -> None:
        defined.append([meeting("a"), meeting("b")])
        batch = [SameAs(id="ab", target="a", other="b"), SameAs(id="ba", target="b", other="a")]
        self.assert_refused(defined, batch, InvalidEvent)

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"when": "2024-13-01"}, "changes.when"),
            ({"title": ""}, "changes.title"),
            ({"title": 5}, "changes.title"),
            ({"sources": []}, "changes.sources"),
            ({"participants": [{"entity": "Not An Id"}]}, "changes.participants[0].entity"),
            ({"no_such_field": "x"}, "changes.no_such_field"),
        ],
    )
    def test_a_correction_that_would_make_its_target_invalid_is_refused(
        self, defined: EventLog, changes: dict[str, Any], field: str
    ) -> None:
        defined.append(meeting("m1"))
        correction = Corrected(id="c1", target="m1", changes=changes, reason="typo")
        caught = self.assert_refused(defined, correction, InvalidEvent)
        assert caught.value.field == field  # type: ignore[attr-defined]
        # the same correction of an event of its own batch is checked as well
        fresh = attrs.evolve(correction, target="m2")
        caught = self.assert_refused(defined, [meeting("m2"), fresh], InvalidEvent)
        assert caught.value.field == field  # type: ignore[attr-defined]

    def test_a_valid_correction_is_recorded(self, defined: EventLog) -> None:
        defined.append(meeting("m1"))
        correction = Corrected(
            id="c1", target="m1", changes={"when": "2024-09-23", "title": "Đổi tên"}, reason="x"
        )
        assert defined.append(correction)[0].event == correction

    # -- what cannot be read back is not written ---------------------------------------------------

    @pytest.mark.parametrize(
        "field", ["title", "summary", "place", "note"], ids=lambda f: f"lone surrogate in {f}"
    )
    def test_a_lone_surrogate_is_refused(self, defined: EventLog, field: str) -> None:
        bad = meeting("m1", **{field: "Hà Nội \ud800 Vientiane"})
        self.assert_refused(defined, [meeting("m0"), bad], InvalidEvent)

    def test_a_field_of_the_wrong_type_that_attrs_let_through_is_refused(
        self, defined: EventLog
    ) -> None:
        # attrs checks types only where a validator does: these objects can be built, but a
        # reader could not decode their lines
        with attrs.validators.disabled():
            unchecked_source = source(url="not a url")
        sneaky: list[tuple[Event, str | None]] = [
            (
                EntityDefined(entity="pcc", kind="party", name="PCC", aliases=("Cuba", 5)),
                "aliases[1]",
            ),
            (meeting("m1", people=["a name, not a Person"]), None),
            (meeting("m2", sources=[source(), "a source"]), None),
            # a date built by hand, whose text does not parse
            (meeting("m3", when=attrs.evolve(parse_date("2024"), text="2024-13")), "when"),
            # an event of the model holding a value built with its validators off
            (meeting("m4", sources=[unchecked_source]), "sources[0].url"),
        ]
        for event, field in sneaky:
            caught = self.assert_refused(defined, [meeting("m0"), event], InvalidEvent)
            assert caught.value.field == field  # type: ignore[attr-defined]

    def test_an_event_built_without_its_validators_is_refused(self, defined: EventLog) -> None:
        with attrs.validators.disabled():
            bad = [meeting("m1", sources=[]), meeting("has a space"), meeting("../up")]
        for event in bad:
            caught = self.assert_refused(defined, event, InvalidEvent)
            assert caught.value.field in ("sources", "id")  # type: ignore[attr-defined]

    # -- time -----------------------------------------------------------------------------------

    def test_recorded_at_never_decreases_when_the_clock_goes_back(self, make_log: MakeLog) -> None:
        clock = FakeClock()
        log = make_log(clock=clock)
        try:
            stamps = [log.append(entities("cpusa"))[0].recorded_at]
            for n, step in enumerate([60, -3600, 1, -86400 * 400, 0, 86400 * 400 + 7200]):
                clock.advance(step)
                stamps.append(log.append(meeting(f"m{n}"))[0].recorded_at)
            at_14_01 = datetime(2026, 11, 23, 14, 1, tzinfo=UTC)
            # while the clock is behind the last stamp, time stands still in the log
            assert stamps == [
                clock.start,
                at_14_01,
                at_14_01,
                at_14_01,
                at_14_01,
                at_14_01,
                clock.now,
            ]
            assert [r.recorded_at for r in log.read()] == stamps
            assert log.head.recorded_at == "2026-11-23T15:01:01.000000Z"
            assert log.verify().lines == 7
        finally:
            log.close()

    def test_recorded_at_is_utc_with_microseconds(self, make_log: MakeLog) -> None:
        in_vientiane = datetime(2030, 1, 2, 10, 4, 5, 678901, tzinfo=timezone(timedelta(hours=7)))
        log = make_log(clock=lambda: in_vientiane)
        try:
            [record] = log.append(entities("cpv"))
            assert record.recorded_at == datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
            assert log.head.recorded_at == "2030-01-02T03:04:05.678901Z"
        finally:
            log.close()

    # -- verify and the property ----------------------------------------------------------------

    def test_verify_passes_and_reports_the_head(self, defined: EventLog) -> None:
        defined.append([meeting("m1"), StatusChanged(target="m1", status="cancelled")])
        report = defined.verify()
        assert (report.lines, report.head, report.decoded) == (5, defined.head, True)
        assert defined.verify(decode=False).lines == 5

    @_per_example
    @given(batches=histories(max_batches=4, max_batch_size=4))
    def test_what_is_appended_is_read_back_in_order_with_the_chain_intact(
        self, make_log: MakeLog, batches: list[list[Event]]
    ) -> None:
        log = make_log()
        try:
            records = [r for batch in batches for r in log.append(batch)]
            appended = [event for batch in batches for event in batch]
            read = list(log.read())
            assert read == records
            assert [r.event for r in read] == appended
            assert [r.seq for r in read] == list(range(1, len(appended) + 1))
            assert [r.prev for r in read] == [GENESIS] + [r.digest for r in read[:-1]]
            assert log.head == Head(len(read), read[-1].digest, log.head.recorded_at)
            assert log.verify().lines == len(read)
        finally:
            log.close()
