"""Tests for solidline.log.postgres against a real PostgreSQL server.

The server is the one ``SOLIDLINE_TEST_PG_DSN`` names, else one the tests start for themselves
(see ``pg_server.py``). Every test gets a table of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest

from conftest import FakeClock, entities, meeting
from log_contract import LogContract
from pg_server import NoPostgres, start_server
from solidline import ConflictingAppend, DurabilityError, EntityDefined, Event, LogError
from solidline.log import EventLog, JsonlLog, open_log
from solidline.log.postgres import PostgresLog

MakeLog = Callable[..., PostgresLog]


# -- the server and a table per test -----------------------------------------------------------


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """The test server's DSN: ``SOLIDLINE_TEST_PG_DSN``, else a server started here."""
    given = os.environ.get("SOLIDLINE_TEST_PG_DSN")
    if given:
        yield given
        return
    try:
        server = start_server()
    except NoPostgres as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}: .ci/run must install postgresql (source .ci/postgres.sh)")
        pytest.skip(f"PostgreSQL is not installed ({exc}); set SOLIDLINE_TEST_PG_DSN or install it")
    try:
        yield server.dsn
    finally:
        server.stop()


def fresh_table() -> str:
    return f"solidline_test_{uuid.uuid4().hex[:16]}"


def drop_table(dsn: str, name: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")
        conn.execute(f"DROP FUNCTION IF EXISTS {name}_refuse")


@pytest.fixture
def pg_table(pg_dsn: str) -> Iterator[str]:
    """A fresh table name; the table is dropped after the test."""
    name = fresh_table()
    yield name
    drop_table(pg_dsn, name)


@pytest.fixture
def open_handle(pg_dsn: str, pg_table: str) -> Iterator[MakeLog]:
    """Open handles on the test's table, each with its own connections as another host's."""
    opened: list[PostgresLog] = []

    def make(**options: Any) -> PostgresLog:
        options.setdefault("table", pg_table)
        log = PostgresLog(pg_dsn, **options)
        opened.append(log)
        return log

    yield make
    for log in opened:
        log.close()


def sql(dsn: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def stored_lines(dsn: str, table: str) -> list[bytes]:
    return [bytes(row[0]) for row in sql(dsn, f"SELECT line FROM {table} ORDER BY seq")]


# -- the contract ---------------------------------------------------------------------------------


@pytest.mark.postgres
class TestPostgresLogContract(LogContract):
    """The contract every log keeps, on a real server; each log a fresh table."""

    @pytest.fixture
    def make_log(self, pg_dsn: str) -> Iterator[MakeLog]:
        opened: list[PostgresLog] = []

        def make(**options: Any) -> PostgresLog:
            log = PostgresLog(pg_dsn, table=fresh_table(), **options)
            opened.append(log)
            return log

        yield make
        for log in opened:
            log.close()
            drop_table(pg_dsn, log.table)

    def stored(self, log: EventLog) -> Any:
        assert isinstance(log, PostgresLog)
        return sql(log.dsn, f"SELECT seq, id, line, recorded_at FROM {log.table} ORDER BY seq")

    def reopen(self, log: EventLog) -> EventLog:
        assert isinstance(log, PostgresLog)
        return PostgresLog(log.dsn, table=log.table)


# -- events ----------------------------------------------------------------------------------------


def entity(n: int | str) -> EntityDefined:
    """The definition of ``org-<n>``, with the id ``e-<n>``."""
    return attrs.evolve(entities(f"org-{n}")[0], id=f"e-{n}")


# -- basics ----------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_append_read_and_reopen(open_handle: MakeLog) -> None:
    log = open_handle()
    assert log.head.seq == 0
    first = log.append(entity(1))
    batch = log.append(
        [entity(2), meeting("m-1", "org-1", "org-2", title="Delegations meet — «solidarność» 团结")]
    )
    assert [r.seq for r in [*first, *batch]] == [1, 2, 3]
    assert [r.event.id for r in log.read()] == ["e-1", "e-2", "m-1"]
    again = open_handle()  # another connection sees the same log
    assert again.get("m-1") == batch[1]
    assert again.head == log.head
    assert again.verify().lines == 3


@pytest.mark.postgres
def test_the_table_holds_seq_id_line_and_recorded_at(
    open_handle: MakeLog, pg_dsn: str, pg_table: str
) -> None:
    log = open_handle()
    recorded = log.append([entity(1), entity(2)])
    rows = sql(pg_dsn, f"SELECT seq, id, line, recorded_at FROM {pg_table} ORDER BY seq")
    assert [(seq, id_) for seq, id_, _, _ in rows] == [(1, "e-1"), (2, "e-2")]
    assert [row[3] for row in rows] == [r.recorded_at for r in recorded]
    assert all(row[2].endswith(b"}\n") for row in rows)


@pytest.mark.postgres
def test_open_log_dispatches_postgresql_urls(pg_dsn: str, pg_table: str) -> None:
    if not pg_dsn.startswith(("postgresql://", "postgres://")):
        pytest.skip("SOLIDLINE_TEST_PG_DSN is not a URL")
    with open_log(pg_dsn, table=pg_table) as log:
        assert isinstance(log, PostgresLog)
        log.append(entity(1))
        assert log.head.seq == 1


@pytest.mark.postgres
def test_reads_stream_in_chunks_across_batches(open_handle: MakeLog) -> None:
    log = open_handle(chunk_size=3)
    for n in range(10):
        log.append(entity(n))
    log.append([entity(f"b{n}") for n in range(5)])  # a batch across chunk boundaries
    assert [r.seq for r in log.read()] == list(range(1, 16))
    assert [r.seq for r in log.read(4, 12)] == list(range(4, 12))
    assert log.get_seq(13).event.id == "e-b2"
    assert open_handle(chunk_size=2).verify().lines == 15


# -- several hosts ---------------------------------------------------------------------------------


@pytest.mark.postgres
def test_two_hosts_appending_at_once_leave_a_gap_free_chain(
    open_handle: MakeLog, pg_table: str
) -> None:
    # one names the table with its schema, one without: they must take the same lock
    hosts = [open_handle(), open_handle(table=f"public.{pg_table}")]
    errors: list[BaseException] = []

    def writer(log: PostgresLog, name: str) -> None:
        try:
            for n in range(20):
                batch = [entity(f"{name}-{n}-{k}") for k in range(1 + n % 3)]
                log.append(batch)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(hosts[i % 2], f"w{i}")) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    expected = 4 * sum(1 + n % 3 for n in range(20))
    fresh = open_handle()
    report = fresh.verify()
    assert report.lines == expected
    assert [r.seq for r in fresh.read()] == list(range(1, expected + 1))
    assert hosts[0].head == hosts[1].head == report.head


@pytest.mark.postgres
def test_the_same_event_from_two_hosts_is_recorded_once(open_handle: MakeLog) -> None:
    a, b = open_handle(), open_handle()
    first = a.append(entity(1))
    assert b.append(entity(1)) == first
    with pytest.raises(ConflictingAppend):
        b.append(EntityDefined(id="e-1", entity="org-1", kind="party", name="Other"))
    assert a.head.seq == 1


@pytest.mark.postgres
def test_hosts_creating_the_table_at_once(open_handle: MakeLog) -> None:
    logs: list[PostgresLog] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            logs.append(open_handle())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    logs[0].append(entity(1))
    assert all(log.head.seq == 1 for log in logs)


# -- the same bytes as JSON Lines -------------------------------------------------------------


@pytest.mark.postgres
def test_the_table_exports_to_the_bytes_jsonl_writes(
    open_handle: MakeLog, pg_dsn: str, pg_table: str, tmp_path: Path
) -> None:
    batches: list[list[Event]] = [
        [entity(1)],
        [
            entity(2),
            entity(3),
            meeting("m-1", "org-1", "org-2", title="Delegations meet — «solidarność» 团结"),
        ],
        [entity(1)],  # already recorded: written once
        [meeting("m-2", "org-2", "org-3"), entity(4)],
    ]
    jsonl = JsonlLog(tmp_path / "log", clock=FakeClock())
    pg = open_handle(clock=FakeClock())
    for batch in batches:
        assert jsonl.append(batch) == pg.append(batch)
    segments = sorted((tmp_path / "log").glob("*.jsonl"))
    exported = b"".join(stored_lines(pg_dsn, pg_table))
    assert exported == b"".join(path.read_bytes() for path in segments)
    export = tmp_path / "export" / f"{1:020d}.jsonl"  # and the export is a valid JSONL log
    export.parent.mkdir()
    export.write_bytes(exported)
    assert JsonlLog(export.parent, readonly=True).verify().head == pg.head
    jsonl.close()


# -- LISTEN / NOTIFY -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_wait_for_new_returns_at_once_when_the_log_is_ahead(open_handle: MakeLog) -> None:
    reader, writer = open_handle(), open_handle()
    assert reader.wait_for_new(0.05) is None
    writer.append([entity(1), entity(2)])
    assert reader.wait_for_new(10) == 2
    assert reader.wait_for_new(10, after=1) == 2
    assert reader.head.seq == 2  # reading moves what "new" means
    assert reader.wait_for_new(0.05) is None


@pytest.mark.postgres
def test_wait_for_new_is_woken_by_a_notification(pg_dsn: str, pg_table: str) -> None:
    class AppendsAfterLooking(PostgresLog):
        """Another host appends just after the reader looked at the table: only NOTIFY tells."""

        appends = 0

        def _max_seq(self, conn: Any) -> int:
            seen = super()._max_seq(conn)
            if self.appends:
                self.appends -= 1
                with PostgresLog(pg_dsn, table=pg_table) as writer:
                    writer.append(entity(seen + 1))
            return seen

    with AppendsAfterLooking(pg_dsn, table=pg_table) as reader:
        reader.appends = 1
        assert reader.wait_for_new(30) == 1
        reader.appends = 1
        assert reader.wait_for_new(30, after=1) == 2


@pytest.mark.postgres
def test_wait_for_new_wakes_a_waiting_thread(open_handle: MakeLog) -> None:
    reader, writer = open_handle(), open_handle()
    writer.append(entity(1))
    got: list[int | None] = []
    waiting = threading.Thread(target=lambda: got.append(reader.wait_for_new(30, after=1)))
    waiting.start()
    writer.append([entity(2), entity(3)])
    waiting.join()
    assert got == [3]


@pytest.mark.postgres
def test_wait_for_new_ignores_foreign_payloads_and_failed_commits(
    open_handle: MakeLog, pg_dsn: str, pg_table: str
) -> None:
    reader, writer = open_handle(), open_handle()
    assert reader.wait_for_new(0.01) is None  # listening from here on
    sql(pg_dsn, "SELECT pg_notify(%s, 'hello')", (reader.channel,))
    _fail_at_commit(pg_dsn, pg_table, "e-late")
    with pytest.raises(DurabilityError):
        writer.append(entity("late"))  # notified inside a transaction that did not commit
    assert reader.wait_for_new(0.2) is None


# -- failures --------------------------------------------------------------------------------------


def _fail_at_commit(dsn: str, table: str, event_id: str) -> None:
    """A deferred constraint trigger: the insert of ``event_id`` fails only at COMMIT."""
    sql(
        dsn,
        f"""
        CREATE FUNCTION {table}_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.id = '{event_id}' THEN RAISE EXCEPTION 'refused at commit'; END IF;
            RETURN NULL;
        END $$;
        CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON {table}
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {table}_refuse();
    """,
    )


@pytest.mark.postgres
def test_a_batch_the_server_refuses_leaves_no_trace(
    open_handle: MakeLog, pg_dsn: str, pg_table: str
) -> None:
    log = open_handle()
    log.append(entity(1))
    sql(pg_dsn, f"ALTER TABLE {pg_table} ADD CONSTRAINT no_bad CHECK (id <> 'e-bad')")
    with pytest.raises(LogError, match="nothing was recorded"):
        log.append([entity(2), entity("bad"), entity(3)])
    assert log.head.seq == 1
    assert open_handle().head.seq == 1
    assert log.get("e-2") is None
    assert log.append(entity(2))[0].seq == 2  # the refused ids were not kept in the index
    assert log.verify().lines == 2


@pytest.mark.postgres
def test_a_failed_commit_is_a_durability_error_and_leaves_no_trace(
    open_handle: MakeLog, pg_dsn: str, pg_table: str
) -> None:
    log = open_handle()
    log.append(entity(1))
    _fail_at_commit(pg_dsn, pg_table, "e-late")
    with pytest.raises(DurabilityError, match="may or may not be recorded"):
        log.append([entity(2), entity("late")])
    assert log.get("e-2") is None
    assert log.append(entity(2))[0].seq == 2
    assert stored_lines(pg_dsn, pg_table) == [r.raw for r in log._raw_lines(1)]


@pytest.mark.postgres
def test_dropped_connections_are_opened_again(open_handle: MakeLog, pg_dsn: str) -> None:
    log = open_handle()
    log.append(entity(1))
    assert log._reader is not None
    assert log._writer is not None
    pids = (log._reader.info.backend_pid, log._writer.info.backend_pid)
    sql(pg_dsn, "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (list(pids),))
    assert log.get("e-1") is not None
    assert log.append(entity(2))[0].seq == 2


@pytest.mark.postgres
def test_a_closed_log_refuses_to_work(open_handle: MakeLog) -> None:
    log = open_handle()
    log.close()
    log.close()
    with pytest.raises(LogError, match="closed"):
        log.append(entity(1))


# -- the table's schema ----------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_table_that_is_not_a_log_is_refused(
    open_handle: MakeLog, pg_dsn: str, pg_table: str
) -> None:
    sql(pg_dsn, f"CREATE TABLE {pg_table} (seq bigint)")
    with pytest.raises(LogError, match="is not a solidline log"):
        open_handle()


@pytest.mark.postgres
def test_an_unknown_schema_version_is_refused(
    open_handle: MakeLog, pg_dsn: str, pg_table: str
) -> None:
    open_handle().append(entity(1))
    sql(pg_dsn, f"COMMENT ON TABLE {pg_table} IS 'solidline event log, schema 99'")
    with pytest.raises(LogError, match="schema version 99"):
        open_handle()


@pytest.mark.postgres
def test_readonly_and_create_false(open_handle: MakeLog) -> None:
    with pytest.raises(LogError, match="there is no log table"):
        open_handle(readonly=True)
    with pytest.raises(LogError, match="there is no log table"):
        open_handle(create=False)
    open_handle().append(entity(1))
    reader = open_handle(readonly=True)
    assert reader.head.seq == 1
    with pytest.raises(LogError, match="read-only"):
        reader.append(entity(2))


@pytest.mark.postgres
def test_a_schema_qualified_table(open_handle: MakeLog, pg_dsn: str, pg_table: str) -> None:
    sql(pg_dsn, f"CREATE SCHEMA {pg_table}_s; CREATE SCHEMA {pg_table}_t")
    try:
        log = open_handle(table=f"{pg_table}_s.events")
        log.append(entity(1))
        assert stored_lines(pg_dsn, f"{pg_table}_s.events") == [r.raw for r in log._raw_lines(1)]
        assert log.channel == "events_appended"
        # a table of the same name elsewhere shares the channel, but does not wake this log
        other = open_handle(table=f"{pg_table}_t.events")
        assert other.wait_for_new(0.01) is None
        log.append(entity(2))
        assert other.wait_for_new(0.2) is None
        log.close()
        other.close()
    finally:
        sql(pg_dsn, f"DROP SCHEMA {pg_table}_s CASCADE; DROP SCHEMA {pg_table}_t CASCADE")


# -- without a server ------------------------------------------------------------------------------


@pytest.mark.parametrize("table", ["1abc", "a-b", "a.b.c", "x" * 64, 'a"; drop'])
def test_names_that_are_not_plain_identifiers_are_refused(table: str) -> None:
    with pytest.raises(LogError, match="name"):
        PostgresLog("postgresql://nowhere.invalid/x", table=table)


def test_a_missing_psycopg_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    with pytest.raises(LogError, match=r"install solidline\[postgres\]"):
        PostgresLog("postgresql://nowhere.invalid/x")


def test_an_unreachable_server_is_a_log_error(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="cannot connect"):
        PostgresLog(f"postgresql://nobody@/x?host={tmp_path}&connect_timeout=2")
