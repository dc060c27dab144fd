"""Checking a JSON Lines log's chain on every core: segments cut into byte ranges.

SHA-256 of a short line costs about as much as the rest of the check, and hashlib holds the GIL
for buffers that small, so using more than one core takes processes. Each worker checks one
range of a segment completely (the canonical envelope of every line, seq, the hash chain and
recorded_at inside the range) and sends back only what links it to its neighbours: the first
line's seq, prev and time, the last line's, and the ids (for the duplicate check). The parent
links the ranges in order and stops at the first that does not fit; the caller checks on line
by line from there, so faults are found and reported exactly as the one-process check does.
The first catch-up of the id index uses the same ranges, asking also for the lines of the
events the index needs whole (entities and amendments).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import attrs

from .._errors import CorruptLog
from ._base import (
    _CANONICAL,
    Head,
    RawLine,
    _check_lines,
    _decode,
    _Index,
    _index_event,
    _indexes,
)

__all__ = ["Linked", "Range", "RangeFacts", "check_range", "checked_ranges", "linked", "ranges",
           "worth_it"]

RANGE_BYTES = 8 << 20  # the work a worker takes at a time
PARALLEL_BYTES = 24 << 20  # below this a log is checked in one process (forking costs more)
_CHUNK = 1 << 20  # what a worker checks at once (a megabyte keeps the lines in cache)


@attrs.frozen
class Range:
    """Whole lines of a segment, bytes ``start`` to ``end``; does it open or close the segment?"""

    path: str
    first: int  # the segment's first seq (from its name)
    start: int
    end: int
    opens: bool
    closes: bool
    whole_events: bool = False  # send back the lines of events the id index needs whole


@attrs.frozen
class RangeFacts:
    """What a worker found in a sound range: enough to link it to the ranges around it."""

    first: int  # the seq of the range's first line
    prev: str  # its prev
    stamp: str  # its recorded_at
    lines: int
    last: Head  # the range's last line
    before_last: Head | None  # the line before that, when it is in the range
    more: bytes  # the last line's "more" (empty when it has none)
    ids: str  # every line's id, joined by newlines (ids cannot hold one)
    events: tuple[tuple[int, bytes], ...] = ()  # seq and line of each event asked for whole
    # with whole_events: those events but the last line's indexed in the worker (the last line
    # may be one the caller leaves out, so it stays in events)
    index: _Index | None = None


@attrs.define
class Linked:
    """The ranges found sound and linked, with their ids, and what they add up to."""

    ranges: list[tuple[Range, RangeFacts, list[str]]] = attrs.Factory(list)
    lines: int = 0
    head: Head = attrs.Factory(Head)


def linked(segments: list[tuple[int, Path]], seen: set[str], *, whole_events: bool,
           mark: Callable[[int, int, int, int], None]) -> Linked | None:
    """The log's ranges checked on every core and linked, or None when that does not pay.

    ``mark`` is told where each linked range starts (seq, segment, offset, line).
    """
    if not worth_it(sum(path.stat().st_size for _, path in segments)):
        return None
    todo = list(ranges(segments, whole_events=whole_events))
    checked = checked_ranges(todo, os.cpu_count() or 1)
    try:
        return link(todo, checked, seen, mark)
    finally:
        checked.close()


def link(todo: list[Range], checked: Iterator[RangeFacts | None], seen: set[str],
         mark: Callable[[int, int, int, int], None]) -> Linked:
    """Link the checked ranges in order, as far as they are sound and follow each other.

    Like the block check, it stops before the first range that does not fit, and before the
    last line of those that do (no line checked holds its hash); ``seen`` gets the ids.
    """
    result = Linked()
    head, before = Head(), Head()
    for part, facts in zip(todo, checked, strict=True):
        if facts is None or not _follows(part, facts, head):
            break
        ids = facts.ids.split("\n")
        known = len(seen)
        seen.update(ids)
        if len(seen) != known + len(ids):  # an id twice: take these back, stop here
            seen.difference_update(ids)
            seen.update(id_ for _, _, earlier in result.ranges for id_ in earlier)
            break
        result.ranges.append((part, facts, ids))
        mark(facts.first, part.first, part.start, facts.first - part.first)
        result.lines += facts.lines
        before, head = facts.before_last or head, facts.last
    if result.ranges:  # the last line linked: no line checked so far holds its hash
        seen.discard(result.ranges[-1][2][-1])
        result.lines -= 1
        result.head = before
    return result


def _follows(part: Range, facts: RangeFacts, head: Head) -> bool:
    """Whether a checked range continues the log after ``head``: seq, chain and time, a
    segment's first seq as its name says, and a segment's end at the end of a batch."""
    return (
        facts.first == head.seq + 1
        and facts.prev == head.digest
        and facts.stamp >= head.recorded_at
        and (not part.opens or facts.first == part.first)
        and (not part.closes or facts.more in (b"", b"0"))
    )


def worth_it(total_bytes: int) -> bool:
    """Whether checking in worker processes pays: a big log, more than one core, and no other
    threads in this process (forking one that has threads can deadlock the child)."""
    return (
        total_bytes >= PARALLEL_BYTES
        and (os.cpu_count() or 1) > 1
        and threading.active_count() == 1
        and "fork" in multiprocessing.get_all_start_methods()
    )


def ranges(segments: list[tuple[int, Path]], *, whole_events: bool = False) -> Iterator[Range]:
    """The segments cut into ranges of about :data:`RANGE_BYTES`, each ending at a newline.

    Bytes after a segment's last newline (a batch being written, or a crashed writer's tail)
    are in no range, as they are in no line a reader sees.
    """
    for first, path in segments:
        with path.open("rb") as f:
            end = _last_newline(f.fileno(), os.fstat(f.fileno()).st_size)
            start = 0
            while start < end:
                cut = _next_newline(f.fileno(), start + RANGE_BYTES, end)
                yield Range(str(path), first, start, cut, start == 0, cut == end, whole_events)
                start = cut


def checked_ranges(todo: list[Range], workers: int
                   ) -> Generator[RangeFacts | None, None, None]:
    """The facts of each range in order, checked by ``workers`` forked processes; None for a
    range that is not plainly sound, or when a worker died (killed, out of memory): the caller
    then checks on line by line. When the iterator is closed, the ranges not begun are
    dropped, and the workers finish the one they are on and exit."""
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_ignore_interrupts) as pool:
        futures = [pool.submit(check_range, part) for part in todo]
        try:
            for future in futures:
                try:
                    yield future.result()
                except BrokenProcessPool:
                    yield None
                    return
        finally:
            for future in futures:
                future.cancel()


def check_range(part: Range) -> RangeFacts | None:
    """Check one range completely, a megabyte at a time (runs in a worker)."""
    try:
        fd = os.open(part.path, os.O_RDONLY)
    except OSError:
        return None  # gone or unreadable: the line-by-line check says what is wrong
    try:
        facts = _check_chunks(_chunks(fd, part.start, part.end), part.whole_events)
    except OSError:
        return None
    finally:
        os.close(fd)
    return _indexed(part, facts) if facts is not None and part.whole_events else facts


def _indexed(part: Range, facts: RangeFacts) -> RangeFacts | None:
    """The facts with the events asked for whole indexed, but the last line's; None when one
    does not decode (the line-by-line catch-up reports it)."""
    index, segment = _Index(), os.path.basename(part.path)
    ids = facts.ids.split("\n")
    for seq, raw in facts.events:
        if seq != facts.last.seq:
            line = RawLine(seq, raw, segment, seq - part.first + 1)
            try:
                event = _decode(line).event
            except CorruptLog:
                return None
            _index_event(index, ids[seq - facts.first], event, seq)
    last = tuple(item for item in facts.events if item[0] == facts.last.seq)
    return attrs.evolve(facts, events=last, index=index)


def _check_chunks(chunks: Iterator[bytes], whole_events: bool) -> RangeFacts | None:
    data = next(chunks, b"")
    opening = _line_before(data)
    if opening is None:
        return None
    head, before, more = opening, opening, b""
    lines, ids, events = 0, [], []
    needs: dict[bytes, bool] = {}  # type name -> whether the index needs its events whole
    while data:
        block = _check_lines(head.seq + 1, data, head)
        if block is None:
            return None
        before = block.head_at(len(block.lines) - 2) if len(block.lines) > 1 else head
        head, more = block.head, block.mores[-1]
        lines += len(block.lines)
        ids += block.ids
        if whole_events:
            for n, type_name in enumerate(block.types):
                if type_name not in needs:
                    needs[type_name] = _indexes(type_name.decode())
                if needs[type_name]:
                    events.append((block.first + n, block.lines[n]))
        data = next(chunks, b"")
    return RangeFacts(opening.seq + 1, opening.digest, opening.recorded_at, lines, head,
                      before if lines > 1 else None, more, "\n".join(ids), tuple(events))


def _chunks(fd: int, start: int, end: int) -> Iterator[bytes]:
    """Whole lines of the file from ``start`` to ``end``, about a megabyte at a time; a last
    piece that is not a whole line (the file shrank) comes as it is, for the check to refuse."""
    rest = b""
    while start < end:
        read = os.pread(fd, min(_CHUNK, end - start), start)
        if not read:
            break
        start += len(read)
        data = rest + read
        cut = data.rfind(b"\n") + 1
        data, rest = data[:cut], data[cut:]
        if data:
            yield data
    if rest:
        yield rest


def _line_before(data: bytes) -> Head | None:
    """What the first line of ``data`` says of the line before it: its seq and digest. Its
    time is not known; the first line's own time stands in (no later line may be earlier)."""
    match = _CANONICAL.match(data)
    if match is None:
        return None
    try:
        return Head(int(match.group(2)) - 1, match.group(6).decode(), match.group(5).decode())
    except UnicodeDecodeError:
        return None


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group: the parent stops the workers, quietly
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _last_newline(fd: int, size: int) -> int:
    """The offset just past the last newline of a file of ``size`` bytes (0 if none)."""
    end = size
    while end > 0:
        begin = max(0, end - _CHUNK)
        at = os.pread(fd, end - begin, begin).rfind(b"\n")
        if at >= 0:
            return begin + at + 1
        end = begin
    return 0


def _next_newline(fd: int, offset: int, end: int) -> int:
    """The offset just past the first newline at or after ``offset``, or ``end``."""
    while offset < end:
        data = os.pread(fd, min(1 << 16, end - offset), offset)
        at = data.find(b"\n")
        if at >= 0:
            return offset + at + 1
        offset += len(data)
    return end
