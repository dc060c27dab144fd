"""MemoryLog: the log contract, and what only an in-memory log has (its lines, threads)."""

from __future__ import annotations

import threading
from typing import Any

import orjson
import pytest

from conftest import entities, meeting
from log_contract import LogContract, MakeLog
from solidline import MemoryLog
from solidline.log import EventLog


class TestMemoryLog(LogContract):
    @pytest.fixture
    def make_log(self) -> MakeLog:
        return MemoryLog

    def stored(self, log: EventLog) -> Any:
        assert isinstance(log, MemoryLog)
        return log.lines()


def test_lines_are_a_copy() -> None:
    log = MemoryLog()
    log.append(entities("cpusa"))
    lines = log.lines()
    lines.clear()
    assert len(log.lines()) == 1
    assert orjson.loads(log.lines()[0])["id"] == "entity:cpusa"


def test_the_lines_are_those_a_jsonl_log_writes(tmp_path: Any) -> None:
    from conftest import FakeClock
    from solidline import JsonlLog

    batches = [entities("cpusa", "cpv"), [meeting("m1", "cpusa", "cpv")], [meeting(None, "cpv")]]
    memory, jsonl = MemoryLog(clock=FakeClock()), JsonlLog(tmp_path / "log", clock=FakeClock())
    for batch in batches:
        assert memory.append(batch) == jsonl.append(batch)
    [segment] = (tmp_path / "log").glob("*.jsonl")
    assert b"".join(memory.lines()) == segment.read_bytes()
    jsonl.close()


def test_threads_appending_at_once_leave_a_gap_free_chain() -> None:
    log = MemoryLog()
    log.append(entities("cpusa"))
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for batch in range(10):
                log.append([meeting(f"{name}-{batch}-{n}") for n in range(batch % 4 + 1)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    records = list(log.read())
    per_thread = sum(batch % 4 + 1 for batch in range(10))
    assert [r.seq for r in records] == list(range(1, 4 * per_thread + 2))
    assert len({r.id for r in records}) == len(records)
    assert log.verify().lines == len(records)
