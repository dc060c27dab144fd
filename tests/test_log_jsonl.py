"""JsonlLog: the log contract, and what only files give: the line format, bad and tampered
lines, crash recovery, several writer processes, segments, durability."""

from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest

from conftest import FakeClock, entities, meeting
from log_contract import LogContract, MakeLog
from solidline import (
    ChainBroken,
    CorruptLog,
    DurabilityError,
    Event,
    InvalidEvent,
    JsonlLog,
    LogError,
    UnknownEventType,
    UnknownTarget,
    event_type,
)
from solidline.log import GENESIS, EventLog, Head, _ranges, jsonl
from solidline.model import Corrected, Retracted
from tampering import tampered_copies, verified

TESTS = Path(__file__).parent
FIRST = "00000000000000000001.jsonl"


class TestJsonlLog(LogContract):
    @pytest.fixture
    def make_log(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeLog]:
        opened: list[JsonlLog] = []

        def make(**options: Any) -> JsonlLog:
            opened.append(JsonlLog(tmp_path_factory.mktemp("log"), **options))
            return opened[-1]

        yield make
        for log in opened:
            log.close()

    def stored(self, log: EventLog) -> Any:
        assert isinstance(log, JsonlLog)
        return files(log.path)

    def reopen(self, log: EventLog) -> EventLog:
        assert isinstance(log, JsonlLog)
        return JsonlLog(log.path)


# -- helpers -----------------------------------------------------------------------------------


def files(path: Path) -> dict[str, bytes]:
    """Every file of a log directory but the lock, by name, with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.name != ".lock"}


def lines(segment: Path) -> list[bytes]:
    return segment.read_bytes().splitlines(keepends=True)


def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def edited(line: bytes, old: bytes, new: bytes) -> bytes:
    assert line.count(old) == 1, (line, old)
    return line.replace(old, new)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "events"


@pytest.fixture
def six_lines(path: Path) -> Path:
    """A log of six lines in four batches: [1] [2 3 4] [5] [6], each line on its own."""
    with JsonlLog(path, clock=FakeClock()) as log:
        log.append(entities("cpusa"))
        log.append([meeting("m2"), meeting("m3"), meeting("m4")])
        log.append(meeting("m5"))
        log.append(meeting("m6"))
    return path


# -- the line format ---------------------------------------------------------------------------


def test_a_line_is_compact_json_with_keys_in_order_chained_by_sha256(path: Path) -> None:
    clock = FakeClock()
    with JsonlLog(path, clock=clock) as log:
        log.append(entities("cpusa", "cpv"))
        log.append(meeting("m1", "cpusa", "cpv", title='Gặp "<script>" ພັກ'))
    assert sorted(p.name for p in path.iterdir()) == [".lock", FIRST]
    first, second, third = lines(path / FIRST)
    stamp = "2026-11-23T14:00:00.000000Z"

    def expected(seq: int, event_id: str, kind: str, prev: bytes | None, more: int) -> bytes:
        envelope: dict[str, Any] = {
            "seq": seq, "id": event_id, "type": kind, "v": 1, "recorded_at": stamp,
            "prev": GENESIS if prev is None else sha(prev),
        }  # fmt: skip
        if more:
            envelope["more"] = more
        return orjson.dumps(envelope)[:-1] + b',"data":'

    assert first.startswith(expected(1, "entity:cpusa", "entity.defined", None, 1))
    assert second.startswith(expected(2, "entity:cpv", "entity.defined", first, 0))
    assert third.startswith(expected(3, "m1", "meeting", second, 0))
    assert orjson.loads(first)["data"] == {
        "entity": "cpusa",
        "kind": "party",
        "name": "Party CPUSA",
    }
    assert 'Gặp \\"<script>\\" ພັກ'.encode() in third  # UTF-8 as it is, only quotes escaped
    assert all(line.endswith(b"}\n") and b" " not in line[:200] for line in (first, second))


def test_a_log_opened_read_only_is_not_written(six_lines: Path) -> None:
    before = files(six_lines)
    log = JsonlLog(six_lines, readonly=True)
    assert [r.seq for r in log.read()] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(LogError, match="read-only"):
        log.append(meeting("m7"))
    assert files(six_lines) == before


@pytest.mark.parametrize("readonly", [True, False])
def test_what_is_not_a_log_directory_is_refused(tmp_path: Path, readonly: bool) -> None:
    (tmp_path / "file").write_text("not a log")
    with pytest.raises(LogError, match="not a directory"):
        JsonlLog(tmp_path / "file", readonly=readonly)
    with pytest.raises(LogError, match="no log at"):
        JsonlLog(tmp_path / "missing", readonly=True)
    with pytest.raises(LogError, match="no log at"):
        JsonlLog(tmp_path / "missing", create=False)


@event_type("testjsonl.tally")
@attrs.frozen(kw_only=True)
class Tally(Event):
    """An application's event whose fields happen to be named like the envelope's."""

    label: str
    more: int
    data: str


def test_an_event_field_named_more_does_not_hide_its_batch(path: Path) -> None:
    with JsonlLog(path) as log:
        [record] = log.append(Tally(id="t1", label="a", more=3, data="x"))
        line = lines(path / FIRST)[0]
        assert b',"more":3,' in line
        assert JsonlLog(path, readonly=True).get_seq(1) == record
        assert [r.event for r in log.read()] == [record.event]


# -- bad lines in a segment --------------------------------------------------------------------

Edit = Callable[[bytes], bytes]


def _replacing(old: bytes, new: bytes) -> Edit:
    return lambda line: edited(line, old, new)


def _cutting(start: bytes, end: bytes, new: bytes) -> Edit:
    """Replace the bytes from ``start`` up to (not including) ``end`` with ``new``."""
    return lambda line: line[: line.index(start)] + new + line[line.index(end) :]


BAD_LINES: dict[str, tuple[Edit, str | None, type[CorruptLog]]] = {
    # what is wrong with line 2 (a meeting, first of a batch), the field named, the error
    "malformed JSON": (lambda line: line[:40] + b"\n", None, CorruptLog),
    "invalid UTF-8": (_replacing(b"Meeting m2", b"Meeting \xff\xfe"), None, CorruptLog),
    "NUL bytes": (_replacing(b"Meeting m2", b"Meet\x00\x00 m2"), None, CorruptLog),
    "not an object": (lambda line: b"[1, 2]\n", "line", CorruptLog),
    "seq a string": (_replacing(b'"seq":2', b'"seq":"2"'), "seq", CorruptLog),
    "v a bool": (_replacing(b'"v":1', b'"v":true'), "v", CorruptLog),
    "no prev": (_replacing(b'"prev":', b'"qrev":'), "prev", CorruptLog),
    "more negative": (_replacing(b'"more":2', b'"more":-1'), "more", CorruptLog),
    "unknown type": (_replacing(b'"meeting"', b'"rally"'), "type", CorruptLog),
    "unknown version": (_replacing(b'"v":1', b'"v":7'), "v", CorruptLog),
    "bad EDTF": (_replacing(b'"2024-09-22"', b'"2024-13-22"'), "data.when", CorruptLog),
    "int for str": (_replacing(b'"Meeting m2"', b"5"), "data.title", CorruptLog),
    "str for int": (_replacing(b'"data":{', b'"data":{"ordinal":"14",'), "data.ordinal",
                    CorruptLog),
    "unknown field": (_replacing(b'"data":{', b'"data":{"colour":"red",'), "data.colour",
                      CorruptLog),
    "no sources": (_cutting(b'"sources"', b'"participants"', b""), "data.sources", CorruptLog),
    "empty sources": (_cutting(b'"sources"', b'"participants"', b'"sources":[],'),
                      "data.sources", CorruptLog),
    "id with a slash": (_replacing(b'"id":"m2"', b'"id":"m/2"'), "id", CorruptLog),
    "id with ..": (_replacing(b'"id":"m2"', b'"id":"../m2"'), "id", CorruptLog),
    "id with a space": (_replacing(b'"id":"m2"', b'"id":"m 2"'), "id", CorruptLog),
    "seq out of order": (_replacing(b'"seq":2', b'"seq":3'), "seq", ChainBroken),
    "prev of another line": (_cutting(b'"prev":', b',"more"', b'"prev":"' + b"f" * 64 + b'"'),
                             "prev", ChainBroken),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_LINES)
def test_a_bad_line_is_reported_with_segment_line_and_field(six_lines: Path, case: str) -> None:
    edit, field, error = BAD_LINES[case]
    segment = six_lines / FIRST
    original = lines(segment)
    segment.write_bytes(b"".join([original[0], edit(original[1]), *original[2:]]))
    before = files(six_lines)
    with pytest.raises(error) as caught:
        JsonlLog(six_lines, readonly=True).verify()
    assert (caught.value.segment, caught.value.line, caught.value.field) == (FIRST, 2, field)
    assert f"{FIRST}, line 2" in str(caught.value)
    # the damage is in the middle: opening for writing refuses, and moves nothing
    with pytest.raises(CorruptLog):
        JsonlLog(six_lines)
    assert files(six_lines) == before


def test_reading_stops_at_a_bad_line_with_its_place(six_lines: Path) -> None:
    segment = six_lines / FIRST
    original = lines(segment)
    segment.write_bytes(b"".join([*original[:4], b"{oops\n", original[5]]))
    log = JsonlLog(six_lines, readonly=True)
    read: list[int] = []
    with pytest.raises(CorruptLog) as caught:
        read.extend(r.seq for r in log.read())
    assert read == [1, 2, 3, 4]
    assert (caught.value.line, caught.value.field) == (5, None)


# -- tamper evidence: every line position --------------------------------------------------------


def _swap(original: list[bytes], k: int) -> list[bytes]:
    swapped = list(original)
    swapped[k - 1], swapped[k] = original[k], original[k - 1]
    return swapped


def _edit_text(original: list[bytes], k: int) -> list[bytes]:
    """Change one letter of line k's title (or name); the line stays a valid event."""
    changed = list(original)
    line = original[k - 1]
    at = line.index(b'"Party' if k == 1 else b'"Meeting') + 1
    changed[k - 1] = line[:at] + b"X" + line[at + 1 :]
    return changed


def _break_json(original: list[bytes], k: int) -> list[bytes]:
    return [*original[: k - 1], original[k - 1].replace(b"{", b"[", 1), *original[k:]]


TAMPERING = {
    # how, the line it is reported at (for line k of n), the field, the error
    "edit a letter of the data": (_edit_text, lambda k: k + 1, "prev"),
    "break the JSON": (_break_json, lambda k: k, None),
    "delete the line": (lambda o, k: [*o[: k - 1], *o[k:]], lambda k: k, "seq"),
    "swap it with the next": (_swap, lambda k: k, "seq"),
}  # fmt: skip


@pytest.mark.parametrize("how", TAMPERING)
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_tampering_with_any_line_is_found_at_that_line(six_lines: Path, how: str, k: int) -> None:
    tamper, reported_at, field = TAMPERING[how]
    segment = six_lines / FIRST
    segment.write_bytes(b"".join(tamper(lines(segment), k)))
    before = files(six_lines)
    with pytest.raises(CorruptLog) as caught:
        JsonlLog(six_lines, readonly=True).verify()
    assert (caught.value.segment, caught.value.line) == (FIRST, reported_at(k))
    assert caught.value.field == field
    if field is not None:
        assert isinstance(caught.value, ChainBroken)
    # a writer refuses to open it and moves nothing (it would otherwise chain onto the edit)
    if how != "break the JSON" or k < 5:
        with pytest.raises(CorruptLog):
            JsonlLog(six_lines)
        assert files(six_lines) == before


@pytest.mark.parametrize("how", ["edit a letter of the data", "delete the line"])
def test_tampering_with_the_last_line_shows_only_against_a_known_head(
    six_lines: Path, how: str
) -> None:
    # no line follows the last one to hold its hash: verify() passes, and only a head kept
    # elsewhere (published, mailed) tells the difference
    known = JsonlLog(six_lines, readonly=True).verify().head
    segment = six_lines / FIRST
    segment.write_bytes(b"".join(TAMPERING[how][0](lines(segment), 6)))
    report = JsonlLog(six_lines, readonly=True).verify()
    assert report.head != known
    assert report.head.digest != known.digest


# -- crash recovery ----------------------------------------------------------------------------


TAILS = {
    "half a line": lambda path: _append(path, b'{"seq":7,"id":"m7","type":"meet'),
    "NUL padding": lambda path: _append(path, b"\0" * 4096),
    "NULs then a newline": lambda path: _append(path, b"\0" * 100 + b"\n"),
    "a batch without its last line": lambda path: _cut_batch(path, lines_kept=2, extra=0),
    "a batch cut inside its last line": lambda path: _cut_batch(path, lines_kept=2, extra=30),
    "a batch cut after its first line": lambda path: _cut_batch(path, lines_kept=1, extra=0),
}


def _append(path: Path, tail: bytes) -> bytes:
    with (path / FIRST).open("ab") as f:
        f.write(tail)
    return tail


def _cut_batch(path: Path, lines_kept: int, extra: int) -> bytes:
    segment = path / FIRST
    size = segment.stat().st_size
    with JsonlLog(path, clock=FakeClock()) as log:
        log.append([meeting("t1"), meeting("t2"), meeting("t3")])
    batch = segment.read_bytes()[size:]
    keep = sum(len(line) for line in batch.splitlines(keepends=True)[:lines_kept]) + extra
    segment.write_bytes(segment.read_bytes()[: size + keep])
    return batch[:keep]


@pytest.mark.parametrize("tail", TAILS)
def test_a_crashed_writers_tail_is_quarantined_by_the_next_writer(
    six_lines: Path, tail: str
) -> None:
    good = (six_lines / FIRST).read_bytes()
    torn = TAILS[tail](six_lines)
    assert (six_lines / FIRST).read_bytes() == good + torn
    # readers, before any recovery, see the whole batches only
    reader = JsonlLog(six_lines, readonly=True)
    if tail != "NULs then a newline":  # a complete garbage line is an error to a reader
        assert [r.id for r in reader.read()] == ["entity:cpusa", "m2", "m3", "m4", "m5", "m6"]
        assert reader.head.seq == 6
        assert reader.get("t1") is None
        with pytest.raises(KeyError):
            reader.get_seq(7)
        assert reader.verify().lines == 6
    # the next writer moves the tail aside, byte for byte, and carries on from seq 7
    log = JsonlLog(six_lines)
    quarantine = six_lines / f"{FIRST}.{len(good)}.quarantine"
    assert log.quarantined == [quarantine]
    assert quarantine.read_bytes() == torn
    assert (six_lines / FIRST).read_bytes() == good
    [record] = log.append(meeting("m7"))
    assert (record.seq, record.prev) == (7, sha(lines(six_lines / FIRST)[5]))
    assert log.verify().lines == 7
    assert JsonlLog(six_lines, readonly=True).verify().head == log.head
    log.close()


def test_a_second_crash_at_the_same_place_keeps_both_tails(six_lines: Path) -> None:
    size = (six_lines / FIRST).stat().st_size
    first = _append(six_lines, b'{"seq":7,"id":"first crash"')
    JsonlLog(six_lines).close()
    second = _append(six_lines, b'{"seq":7,"id":"second crash, other bytes"')
    log = JsonlLog(six_lines)
    assert (six_lines / f"{FIRST}.{size}.quarantine").read_bytes() == first
    assert log.quarantined == [six_lines / f"{FIRST}.{size}.2.quarantine"]
    assert log.quarantined[0].read_bytes() == second
    log.close()


def test_a_reader_never_sees_a_batch_being_written(six_lines: Path) -> None:
    segment = six_lines / FIRST
    _cut_batch(six_lines, lines_kept=3, extra=0)
    whole = segment.read_bytes()
    batch_start = len(whole) - sum(len(line) for line in lines(segment)[-3:])
    for cut in range(batch_start, len(whole) + 1, 7):
        segment.write_bytes(whole[:cut])
        seen = [r.id for r in JsonlLog(six_lines, readonly=True).read()]
        assert seen[6:] == ([] if cut < len(whole) else ["t1", "t2", "t3"])


@pytest.mark.parametrize(
    "damage",
    [b"garbage\n", b'{"seq":7,"id":"x"}\n', b"\0" * 10 + b"\n"],
    ids=["garbage", "an envelope that does not chain", "NULs"],
)
def test_damage_before_valid_lines_is_not_taken_for_a_crash(six_lines: Path, damage: bytes) -> None:
    segment = six_lines / FIRST
    original = lines(segment)
    segment.write_bytes(b"".join([*original[:3], damage, *original[3:]]))
    before = files(six_lines)
    with pytest.raises(CorruptLog) as caught:
        JsonlLog(six_lines)
    assert (caught.value.segment, caught.value.line) == (FIRST, 4)
    assert files(six_lines) == before


def crash_rounds() -> int:
    thorough = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
    return int(os.environ.get("SOLIDLINE_CRASH_ROUNDS", 200 if thorough else 20))


Spawn = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def spawn_writer() -> Iterator[Spawn]:
    """``spawn_writer(path, tag, *args)``: a log_writer.py process, killed if a test fails."""
    started: list[subprocess.Popen[str]] = []

    def spawn(path: Path, tag: str, *args: str) -> subprocess.Popen[str]:
        started.append(
            subprocess.Popen(
                [sys.executable, str(TESTS / "log_writer.py"), str(path), tag, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        return started[-1]

    yield spawn
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def _reported(output: str) -> list[tuple[int, int, str]]:
    """The appends a writer reported: only whole lines, the last may be cut by the kill."""
    done = output.split("\n")[:-1]
    return [(int(a), int(b), tag) for a, b, tag in (line.split() for line in done[1:])]


def _batches(ids: list[str]) -> dict[str, tuple[int, set[str]]]:
    found: dict[str, tuple[int, set[str]]] = {}
    for event_id in ids:
        if event_id.startswith("entity:"):
            continue
        tag, _, position = event_id.rpartition("-")
        size = int(position.partition("of")[2])
        found.setdefault(tag, (size, set()))[1].add(event_id)
    return found


@pytest.mark.slow
def test_a_writer_killed_at_any_moment_leaves_a_readable_log(
    path: Path, spawn_writer: Spawn
) -> None:
    seed = random.randrange(2**32)
    chance = random.Random(seed)
    reported: list[tuple[int, int, str]] = []
    for round_ in range(crash_rounds()):
        writer = spawn_writer(path, f"r{round_}")
        assert writer.stdout is not None
        assert writer.stdout.readline() == "ready\n", writer.communicate()
        time.sleep(chance.uniform(0, 0.06))  # a few appends at most, often one cut short
        writer.send_signal(signal.SIGKILL)
        output, _ = writer.communicate()
        reported += _reported("ready\n" + output)

        log = JsonlLog(path)  # recovers what the kill left
        ids = [r.id for r in log.read()]
        for first, last, tag in reported:
            size = last - first + 1
            assert ids[first - 1 : last] == [f"{tag}-{i}of{size}" for i in range(size)], seed
        for tag, (size, present) in _batches(ids).items():
            assert len(present) == size, f"batch {tag} is half visible (seed {seed})"
        assert log.verify().lines == len(ids)
        log.close()
    assert reported, "no writer got as far as one append: kill later"
    with JsonlLog(path) as log:
        head = log.head.seq
        assert log.append(meeting("after", "cpv"))[0].seq == head + 1
        assert log.verify().lines == head + 1


@pytest.mark.slow
def test_four_processes_appending_at_once(path: Path, spawn_writer: Spawn) -> None:
    JsonlLog(path).close()
    writers = [spawn_writer(path, f"p{n}", "200", "--wait") for n in range(4)]
    for writer in writers:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "ready\n"
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    outputs = [writer.communicate(timeout=120) for writer in writers]
    assert [writer.returncode for writer in writers] == [0] * 4, outputs
    log = JsonlLog(path, readonly=True)
    records = list(log.read())
    ids = [r.id for r in records]
    assert [r.seq for r in records] == list(range(1, 4 * 200 + 2))
    assert len(set(ids)) == len(ids)
    assert sum(1 for i in ids if i.startswith("p")) == 800
    for out, _ in outputs:
        for first, last, tag in _reported(out):
            size = last - first + 1
            assert ids[first - 1 : last] == [f"{tag}-{i}of{size}" for i in range(size)]
    interleaved = {i.partition("-")[0] for i in ids[1:]}
    assert interleaved == {"p0", "p1", "p2", "p3"}
    assert log.verify().lines == 801
    assert not list(path.glob("*.quarantine"))


# -- segments and streaming ------------------------------------------------------------------------


def test_segments_rotate_never_split_a_batch_and_stream_from_any_seq(path: Path) -> None:
    chance = random.Random(7)
    with JsonlLog(path, segment_bytes=4096, clock=FakeClock()) as log:
        log.append(entities("cpusa"))
        n = 0
        while n < 150:
            size = chance.randint(1, 6)
            log.append([meeting(f"m{n + i}") for i in range(size)])
            n += size
        log.append([meeting(f"big{i}") for i in range(12)])  # larger than a segment
        everything = list(log.read())
    segments = sorted(path.glob("*.jsonl"))
    assert len(segments) > 5
    seq = 1
    for segment in segments:
        segment_lines = lines(segment)
        assert segment.name == f"{seq:020d}.jsonl"
        assert [orjson.loads(line)["seq"] for line in segment_lines] == list(
            range(seq, seq + len(segment_lines))
        )
        assert "more" not in orjson.loads(segment_lines[-1])  # the batch ended in the segment
        assert len(segment_lines) == 12 or segment.stat().st_size <= 4096
        seq += len(segment_lines)
    reader = JsonlLog(path, readonly=True)
    for start in [1, 2, 77, 100, seq - 13, seq - 12, seq - 1, seq, seq + 5]:
        assert list(reader.read(start)) == everything[start - 1 :]
    assert list(reader.read(60, 70)) == everything[59:69]
    assert reader.verify().lines == seq - 1


@pytest.mark.parametrize("segment_bytes", [20_000, 64 << 20])
def test_a_line_read_from_the_mark_before_it_is_the_line_streamed(
    path: Path, segment_bytes: int
) -> None:
    chance = random.Random(3)
    with JsonlLog(path, segment_bytes=segment_bytes, clock=FakeClock()) as log:
        log.append(entities("cpusa"))
        n = 0
        while n < 700:
            size = chance.choice([1, 2, 7, 40, 300])
            # now and then a line longer than the chunks a line is read in
            log.append([meeting(f"m{n + i}", summary="x" * chance.choice([0, 10, 70_000]))
                        for i in range(size)])
            n += size
        handles = [log, JsonlLog(path, readonly=True), JsonlLog(path, readonly=True)]
        handles[1].verify(decode=False)  # marks where its blocks begin
        for handle in handles:
            head = handle.head.seq
            assert head == n + 1
            for seq in [*range(1, head + 1, 3), *range(head - 9, head + 2)]:
                plain = EventLog._raw_at(handle, seq) if seq <= head else None
                if plain is None:
                    with pytest.raises(KeyError):
                        handle._raw_at(seq)
                else:
                    assert handle._raw_at(seq) == plain


def test_a_torn_tail_in_a_later_segment_is_quarantined_there(path: Path) -> None:
    with JsonlLog(path, segment_bytes=2048) as log:
        log.append(entities("cpusa"))
        for n in range(20):
            log.append(meeting(f"m{n}"))
    last = sorted(path.glob("*.jsonl"))[-1]
    assert last.name != FIRST
    good = last.read_bytes()
    last.write_bytes(good + b'{"seq":99')
    with JsonlLog(path) as log:
        assert log.quarantined == [path / f"{last.name}.{len(good)}.quarantine"]
        assert log.append(meeting("m20"))[0].seq == 22
        assert log.verify().lines == 22


def test_reading_uses_memory_independent_of_the_log_size(path: Path) -> None:
    with JsonlLog(path, segment_bytes=4096) as log:
        log.append(entities("cpusa"))
        log.append([meeting(f"m{n}") for n in range(100)])
        stream = log.read()
        assert next(stream).seq == 1
        # a generator, not a list: the rest is read as it is asked for
        assert not isinstance(stream, list)
        assert sum(1 for _ in stream) == 100


# -- durability ------------------------------------------------------------------------------------


def _failing_fdatasync(fd: int) -> None:
    raise OSError(errno.EIO, os.strerror(errno.EIO))


def test_a_failed_fdatasync_is_a_durability_error(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = JsonlLog(path)
    log.append(entities("cpusa"))
    monkeypatch.setattr(os, "fdatasync", _failing_fdatasync)
    with pytest.raises(DurabilityError) as caught:
        log.append(meeting("m1"))
    assert caught.value.errno == errno.EIO
    assert isinstance(caught.value, OSError)
    assert "solidline verify" in str(caught.value)
    # the append did not count: the handle's own index and head were rolled back
    assert "m1" not in log._index.ids
    assert log._head.seq == 1
    log.close()


def test_a_log_opened_not_durable_does_not_sync_until_asked(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(os, "fdatasync", calls.append)
    with JsonlLog(path, durable=False) as log:
        log.append(entities("cpusa"))
        log.append(meeting("m1"))
        assert calls == []
        log.sync()
        assert len(calls) == 1
    with JsonlLog(path) as log:
        log.append(meeting("m2"))
        assert len(calls) == 2


def test_a_retry_after_a_failed_fdatasync_is_not_silently_a_no_op(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = JsonlLog(path)
    log.append(entities("cpusa"))
    monkeypatch.setattr(os, "fdatasync", _failing_fdatasync)
    with pytest.raises(DurabilityError):
        log.append(meeting("m1"))
    calls: list[int] = []
    monkeypatch.setattr(os, "fdatasync", calls.append)
    with pytest.raises(DurabilityError, match="appends no more"):
        log.append(meeting("m1"))  # the handle refuses: the unsynced line proves nothing
    log.close()
    assert calls == []
    with JsonlLog(path) as reopened:  # a new handle, after a look at the disk, carries on
        assert reopened.verify().lines == 2
        reopened.append(meeting("m2"))
    assert calls, "the append on the new handle was synced"


# -- the bad input corpus, at append: nothing is written -------------------------------------------


def _unchecked(event: Event, **raw: Any) -> Event:
    """``event`` with fields set to values its class would refuse (no validator, no converter)."""
    for name, value in raw.items():
        object.__setattr__(event, name, value)
    return event


BAD_EVENTS = {
    "bad EDTF": (lambda: _unchecked(meeting("m9"), when="2024-13-22"), "when"),
    "int where str": (lambda: _unchecked(meeting("m9"), title=5), "title"),
    "str where int": (lambda: _unchecked(_congress(), ordinal="14"), "ordinal"),
    "bool where int": (lambda: _unchecked(_congress(), ordinal=True), "ordinal"),
    "no source": (lambda: _unchecked(meeting("m9"), sources=()), "sources"),
    "id with a slash": (lambda: _unchecked(meeting("m9"), id="a/b"), "id"),
    "id with ..": (lambda: _unchecked(meeting("m9"), id=".."), "id"),
    "id with a space": (lambda: _unchecked(meeting("m9"), id="a b"), "id"),
    "a lone surrogate": (lambda: meeting("m9", title="Hà Nội \udc80"), None),
}


def _congress() -> Event:
    from solidline import Congress

    return Congress(
        id="c9", when="2021-01", title="13th Congress", sources=meeting("x").sources,
        organisation="cpusa", ordinal=13,
    )  # fmt: skip


@pytest.mark.parametrize("case", BAD_EVENTS)
def test_an_invalid_event_appended_writes_nothing(six_lines: Path, case: str) -> None:
    make, field = BAD_EVENTS[case]
    before = files(six_lines)
    with JsonlLog(six_lines) as log:
        with pytest.raises(InvalidEvent) as caught:
            log.append([meeting("ok"), make()])
        assert caught.value.field == field
        assert files(six_lines) == before
        assert log.append(meeting("ok"))[0].seq == 7  # the log goes on as if nothing happened


def test_an_unknown_type_appended_writes_nothing(six_lines: Path) -> None:
    class Rally(Event):
        type = "testjsonl.rally_not_registered"

    before = files(six_lines)
    with JsonlLog(six_lines) as log, pytest.raises(UnknownEventType):
        log.append([meeting("ok"), Rally(id="r1")])
    assert files(six_lines) == before


def test_a_new_segment_is_made_durable_in_its_directory(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    log = JsonlLog(path, segment_bytes=1024)
    monkeypatch.setattr(os, "fsync", fsync)
    log.append(entities("cpusa"))
    assert synced == [str(path)]  # the first segment's name is durable
    log.append(meeting("m1"))
    assert synced == [str(path)]  # no new segment, no directory fsync
    while len(list(path.glob("*.jsonl"))) < 2:
        log.append(meeting(f"m{len(synced) + 100}-{log.head.seq}"))
    assert synced == [str(path)] * 2
    log.close()


# -- verify on every core --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def segmented(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log of about 300 events in batches of 1 to 8, over several segments."""
    path = tmp_path_factory.mktemp("segmented")
    chance = random.Random(11)
    clock = FakeClock()
    with JsonlLog(path, segment_bytes=20_000, clock=clock) as log:
        log.append(entities("cpusa", "pcf"))
        n = 0
        while n < 300:
            size = chance.randint(1, 8)
            log.append([meeting(f"m{n + i}", chance.choice(["cpusa", "pcf"]))
                        for i in range(size)])
            clock.advance(chance.choice([0, 1, 3600]))
            n += size
    assert len(list(path.glob("*.jsonl"))) > 4
    return path


@pytest.fixture
def in_small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify in one process, in blocks of a few lines (so that faults fall near their ends)."""
    monkeypatch.setattr(_ranges, "PARALLEL_BYTES", 1 << 62)
    monkeypatch.setattr(jsonl, "_CHUNK", 2500)


@pytest.fixture
def in_ranges(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Verify in worker processes however small the log, in ranges of a few lines; the list
    counts the ranges checked (to show the workers did the checking)."""
    checked: list[int] = []
    real = _ranges.checked_ranges

    def counting(todo: list[_ranges.Range], workers: int) -> Iterator[Any]:
        checked.append(len(todo))
        return real(todo, workers)

    monkeypatch.setattr(_ranges, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(_ranges, "RANGE_BYTES", 2500)
    monkeypatch.setattr(_ranges, "checked_ranges", counting)
    return checked


def test_verifying_on_every_core_finds_what_the_line_by_line_check_finds(
    segmented: Path, tmp_path: Path, in_ranges: list[int]
) -> None:
    assert verified(segmented) == verified(segmented, line_by_line=True)
    chance = random.Random(5)
    for round_, folder in tampered_copies(segmented, tmp_path, chance, 40):
        assert verified(folder) == verified(folder, line_by_line=True), round_
    assert len(in_ranges) == 41
    assert min(in_ranges) > 10
    assert not multiprocessing.active_children()


@pytest.mark.usefixtures("in_small_blocks")
def test_verifying_by_small_blocks_finds_what_the_line_by_line_check_finds(
    segmented: Path, tmp_path: Path
) -> None:
    chance = random.Random(6)
    for round_, folder in tampered_copies(segmented, tmp_path, chance, 40):
        assert verified(folder) == verified(folder, line_by_line=True), round_


def test_verifying_on_every_core_notes_where_lines_start(
    segmented: Path, in_ranges: list[int]
) -> None:
    log = JsonlLog(segmented, readonly=True)
    report = log.verify(decode=False)
    assert in_ranges
    everything = list(JsonlLog(segmented, readonly=True).read())
    assert report.lines == len(everything)
    for start in [1, 2, 50, 151, len(everything) - 1, len(everything)]:
        assert list(log.read(start)) == everything[start - 1 :]

def _with_bad_data(segmented: Path, folder: Path, k: int) -> Path:
    """A copy of the log whose line ``k`` has a canonical envelope but data that is not JSON."""
    folder.mkdir()
    everything = b"".join(segment.read_bytes() for segment in sorted(segmented.glob("*.jsonl")))
    bad = everything.splitlines(keepends=True)[k - 1].replace(b'"data":{', b'"data":{X', 1)
    for segment in sorted(segmented.glob("*.jsonl")):
        content = [bad if orjson.loads(line)["seq"] == k else line for line in lines(segment)]
        (folder / segment.name).write_bytes(b"".join(content))
    return folder


@pytest.mark.usefixtures("in_small_blocks")
def test_a_line_whose_data_is_not_json_is_found_at_its_place_by_blocks(
    segmented: Path, tmp_path: Path
) -> None:
    for k in range(1, 80):
        folder = _with_bad_data(segmented, tmp_path / f"log{k}", k)
        found = verified(folder)
        assert found == verified(folder, line_by_line=True)
        assert found[2:4] == (k - int(found[1][:20]) + 1, None)



def test_a_line_whose_data_is_not_json_is_found_at_its_place_by_ranges(
    segmented: Path, tmp_path: Path, in_ranges: list[int]
) -> None:
    for k in range(1, 80, 3):
        folder = _with_bad_data(segmented, tmp_path / f"log{k}", k)
        found = verified(folder)
        assert found == verified(folder, line_by_line=True)
        assert found[2:4] == (k - int(found[1][:20]) + 1, None)
    assert in_ranges


def _rechained_with_bad_type(segmented: Path, folder: Path, k: int) -> Path:
    """A copy of the log whose line ``k`` has a type that is not UTF-8, every line after it
    chained again to the changed bytes: only the text itself is wrong, not the chain."""
    folder.mkdir()
    digest = b""
    for segment in sorted(segmented.glob("*.jsonl")):
        content = []
        for line in lines(segment):
            envelope = orjson.loads(line)
            if envelope["seq"] > k:
                line = line.replace(envelope["prev"].encode(), digest, 1)
            elif envelope["seq"] == k:
                line = line.replace(b'"type":"meeting"', b'"type":"meet\xffing"', 1)
            digest = hashlib.sha256(line).hexdigest().encode()
            content.append(line)
        (folder / segment.name).write_bytes(b"".join(content))
    return folder


@pytest.mark.parametrize("parallel", [False, True])
def test_a_type_that_is_not_utf8_under_a_sound_chain_is_found_at_its_place(
    segmented: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallel: bool
) -> None:
    # in blocks of a few lines in one process, or in ranges of a few lines in workers
    monkeypatch.setattr(_ranges, "PARALLEL_BYTES", 0 if parallel else 1 << 62)
    monkeypatch.setattr(_ranges, "RANGE_BYTES", 2500)
    monkeypatch.setattr(jsonl, "_CHUNK", 2500)
    for k in (5, 40, 41, 150):
        folder = _rechained_with_bad_type(segmented, tmp_path / f"log{k}", k)
        found = verified(folder)
        assert found == verified(folder, line_by_line=True)
        assert found[0] is CorruptLog
        assert found[2] == k - int(found[1][:20]) + 1
        with pytest.raises(CorruptLog):  # a writer's first catch-up indexes by blocks too
            JsonlLog(folder).append(meeting("one-more", "cpusa"))


# -- the saved index -------------------------------------------------------------------------------


@pytest.fixture
def saving(monkeypatch: pytest.MonkeyPatch, segmented: Path, tmp_path: Path) -> Path:
    """A copy of the segmented log; an index is saved after 50 lines indexed."""
    monkeypatch.setattr(jsonl, "_SAVE_AFTER", 50)
    copy = tmp_path / "copy"
    copy.mkdir()
    for segment in segmented.glob("*.jsonl"):
        (copy / segment.name).write_bytes(segment.read_bytes())
    return copy


def _rebuilt(path: Path) -> tuple[Any, Head]:
    """The index and head of the log as built from its lines alone (the saved one moved away)."""
    saved = path / ".index"
    kept = saved.read_bytes() if saved.exists() else None
    saved.unlink(missing_ok=True)
    log = JsonlLog(path, readonly=True)
    head = log.head
    if kept is not None:
        saved.write_bytes(kept)
    return log._index, head


def test_a_writer_saves_the_index_and_the_next_one_starts_from_it(saving: Path) -> None:
    with JsonlLog(saving) as first:
        head = first.head
    assert (saving / ".index").exists()
    with JsonlLog(saving) as second:
        assert second._saved_seq == head.seq  # it did not read the log from the start
        assert (second._index, second.head) == _rebuilt(saving)
        # it goes on as a writer that read everything would: ids, duplicates, references
        m3 = second.get("m3")
        assert m3 is not None
        assert second.append(m3.event)[0] == m3  # already recorded: not written again
        fix = Corrected(id="c1", target="m2", changes={"title": "Fixed"}, reason="typo")
        recorded = second.append([meeting("new1", "cpusa"), fix])
        assert [r.seq for r in recorded] == [head.seq + 1, head.seq + 2]
        with pytest.raises(UnknownTarget):
            second.append(Corrected(id="c2", target="nowhere", changes={"title": "x"},
                                    reason="x"))
    third = JsonlLog(saving)
    assert (third.head, third._index) == _rebuilt(saving)[::-1]
    assert JsonlLog(saving, readonly=True).verify().lines == head.seq + 2


def test_a_saved_index_is_caught_up_with_what_others_appended(saving: Path) -> None:
    with JsonlLog(saving) as first:
        assert first.head.seq
    with JsonlLog(saving, require_entities=False) as other:
        other.append([meeting(f"later{n}") for n in range(60)])
    (saving / ".index").write_bytes((saving / ".index").read_bytes())  # still the older one
    with JsonlLog(saving) as second:
        assert (second._index, second.head) == _rebuilt(saving)
        assert second.get("later59") is not None


@pytest.mark.parametrize("change", ["garbage", "cut back", "rewritten", "other log", "gone"])
def test_a_saved_index_that_does_not_match_the_log_is_not_used(
    saving: Path, segmented: Path, tmp_path: Path, change: str
) -> None:
    with JsonlLog(saving) as first:
        assert first.head.seq
    last = sorted(saving.glob("*.jsonl"))[-1]
    if change == "garbage":
        (saving / ".index").write_bytes(b'{"version":1,"ids":[')
    elif change == "cut back":  # the last batch removed: the saved head is no longer there
        kept = lines(last)
        last.write_bytes(b"".join(kept[: len(kept) - 1 - orjson.loads(kept[-2]).get("more", 0)]))
    elif change == "rewritten":  # same length, same seq, another digest
        kept = lines(last)
        last.write_bytes(b"".join([*kept[:-1], kept[-1].replace(b"Meeting", b"Meetinq", 1)]))
    elif change == "other log":
        other = tmp_path / "other"
        with JsonlLog(other, require_entities=False, segment_bytes=20_000) as log:
            for n in range(20):
                log.append([meeting(f"x{n}-{i}") for i in range(16)])
        (saving / ".index").write_bytes((other / ".index").read_bytes())
    elif change == "gone":
        last.unlink()
    log = JsonlLog(saving, readonly=True)
    try:
        found: Any = (log._index, log.head)
    except CorruptLog as exc:
        found = (type(exc), exc.segment, exc.line, exc.field)
    assert log._saved_seq == 0  # looked for, not used
    try:
        expected: Any = _rebuilt(saving)
    except CorruptLog as exc:
        expected = (type(exc), exc.segment, exc.line, exc.field)
    assert found == expected


def test_a_crashed_writers_tail_is_quarantined_with_a_saved_index(saving: Path) -> None:
    with JsonlLog(saving) as first:
        head = first.head
    last = sorted(saving.glob("*.jsonl"))[-1]
    good = last.read_bytes()
    last.write_bytes(good + b'{"seq":99')
    with JsonlLog(saving) as log:
        assert log._saved_seq == head.seq
        assert log.quarantined == [saving / f"{last.name}.{len(good)}.quarantine"]
        assert log.append(meeting("after", "pcf"))[0].seq == head.seq + 1
    assert JsonlLog(saving, readonly=True).verify().lines == head.seq + 1


def test_a_reader_uses_a_saved_index_and_never_writes_one(saving: Path) -> None:
    assert JsonlLog(saving, readonly=True).head.seq
    assert not (saving / ".index").exists()
    with JsonlLog(saving) as writer:
        head = writer.head
    reader = JsonlLog(saving, readonly=True)
    assert reader.head == head
    assert reader._saved_seq == head.seq


_DOOMED: list[_ranges.Range] = []  # the range a worker dies on (set before the workers fork)
_CHECK_RANGE = _ranges.check_range


def _dying(part: _ranges.Range) -> _ranges.RangeFacts | None:
    if part in _DOOMED:
        os._exit(1)  # as if killed: no result, no exception
    return _CHECK_RANGE(part)


def test_a_worker_that_dies_leaves_the_rest_to_the_line_by_line_check(
    segmented: Path, in_ranges: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    segments = sorted((int(p.name[:20]), p) for p in segmented.glob("*.jsonl"))
    monkeypatch.setattr(_ranges, "check_range", _dying)
    _DOOMED[:] = [list(_ranges.ranges(segments))[5]]
    try:
        assert verified(segmented) == verified(segmented, line_by_line=True)
    finally:
        _DOOMED.clear()
    assert in_ranges
    assert not multiprocessing.active_children()


def _indexed(path: Path, *, line_by_line: bool = False) -> tuple[Any, ...]:
    log = JsonlLog(path, readonly=True)
    if line_by_line:
        log._index_blocks = lambda: None  # type: ignore[method-assign]
    try:
        head = log.head
    except CorruptLog as exc:
        return (type(exc), exc.segment, exc.line, exc.field, exc.reason)
    return (head, log._index)


def test_the_first_catch_up_on_every_core_builds_the_same_index(
    segmented: Path, tmp_path: Path, in_ranges: list[int]
) -> None:
    with JsonlLog(segmented, readonly=True) as log:
        first = next(r for r in log.read() if r.event.type == "meeting").event
    extra = tmp_path / "extra"
    extra.mkdir()
    for segment in segmented.glob("*.jsonl"):
        (extra / segment.name).write_bytes(segment.read_bytes())
    with JsonlLog(extra) as log:  # amendments and entities for the index to hold
        log.append([*entities("dkp"), Retracted(id="r1", target=first.id, reason="wrong")])
    assert _indexed(extra) == _indexed(extra, line_by_line=True)
    chance = random.Random(8)
    for round_, folder in tampered_copies(extra, tmp_path, chance, 15):
        assert _indexed(folder) == _indexed(folder, line_by_line=True), round_
    assert len(in_ranges) == 17  # the writer above, then one for each log checked in ranges


def _rechained(source: Path, folder: Path, k: int, old: bytes, new: bytes) -> Path:
    """A copy of the log with ``old`` replaced in line ``k`` and the chain after it made good
    again, as a forger would: a fault only decoding the event can find."""
    folder.mkdir()
    segments = sorted(source.glob("*.jsonl"))
    every = [lines(segment) for segment in segments]
    prev = None
    for content in every:
        for n, line in enumerate(content):
            envelope = orjson.loads(line)
            if envelope["seq"] == k:
                line = line.replace(old, new, 1)
            elif prev is not None:
                line = line.replace(envelope["prev"].encode(), prev.encode(), 1)
            content[n] = line
            prev = sha(line) if envelope["seq"] >= k else None
    for segment, content in zip(segments, every, strict=True):
        (folder / segment.name).write_bytes(b"".join(content))
    return folder


def test_an_event_that_does_not_decode_in_a_worker_is_reported_at_its_place(
    segmented: Path, tmp_path: Path, in_ranges: list[int]
) -> None:
    with JsonlLog(segmented, readonly=True) as log:
        definition = next(r for r in log.read(2) if r.event.type == "entity.defined")
    folder = _rechained(segmented, tmp_path / "forged", definition.seq, b'"kind":"party"',
                        b'"kind":"banana"')
    found = _indexed(folder)
    assert found == _indexed(folder, line_by_line=True)
    assert found[0] is CorruptLog
    assert found[2:4] == (definition.seq, "data.kind")
    assert in_ranges
