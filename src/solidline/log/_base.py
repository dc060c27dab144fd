"""What every event log shares: the append protocol, the hash chain, the id index, reading.

A backend stores lines (bytes) by seq and provides four primitives: an exclusive writer lock,
the lines from a seq on, and a durable write of one batch. Everything else (ids, idempotence,
references between events, timestamps, the chain, decoding) lives here, once, so every backend
keeps the same promises and passes the same contract tests.
"""

from __future__ import annotations

import abc
import hashlib
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import attrs
import orjson

from .._errors import (
    ChainBroken,
    ConflictingAppend,
    CorruptLog,
    HeadMoved,
    InvalidEvent,
    UnknownTarget,
)
from ..codec import (
    Recorded,
    check_envelope,
    decode_event,
    encode_event,
    encode_line,
    event_data,
    format_timestamp,
    parse_timestamp,
    registered_types,
    structure_event,
)
from ..model import Amendment, EntityDefined, Event, Fact, SameAs, StatusChanged

__all__ = ["GENESIS", "EventLog", "Head", "RawLine", "VerifyReport"]

GENESIS = "0" * 64
# A line as encode_line writes it, whole and with its newline (captured, for hashing), then seq,
# id, type, recorded_at, prev and more. Strings without quotes, backslashes or control
# characters; numbers without leading zeros. The data is only seen to be an object (the hash
# chain vouches for its bytes), and prev only to be 64 characters long (it is compared with the
# digest of the line before). Matches begin at a line's start and end at its newline, so a block
# is canonical throughout when its matches add up to its length.
_CANONICAL = re.compile(
    rb'^(\{"seq":(0|[1-9][0-9]*),"id":"([^"\\\x00-\x1f]*)","type":"([^"\\\x00-\x1f]*)",'
    rb'"v":(?:0|[1-9][0-9]*),"recorded_at":"([^"\\\x00-\x1f]*)","prev":"(.{64})"'
    rb'(?:,"more":(0|[1-9][0-9]*))?,"data":\{.*\}\}\n)',
    re.MULTILINE,
)
_DIGEST = operator.methodcaller("digest")
_RECENT = 4096  # events a handle keeps of what it appended, for checking corrections
Clock = Callable[[], datetime]


@attrs.frozen
class Head:
    """The last line of a log: its seq (0 when empty), its digest and its time."""

    seq: int = 0
    digest: str = GENESIS
    recorded_at: str = ""


@attrs.frozen
class RawLine:
    """One line as stored, with the place it is stored at (for error messages)."""

    seq: int
    raw: bytes
    segment: str
    line: int

    def fault(self, message: str, field: str | None = None, *, chain: bool = False) -> CorruptLog:
        cls = ChainBroken if chain else CorruptLog
        return cls(message, segment=self.segment, line=self.line, field=field)


@attrs.frozen
class VerifyReport:
    """What :meth:`EventLog.verify` checked."""

    lines: int
    head: Head
    decoded: bool


@attrs.define
class _Prepared:
    event: Event
    id: str
    data: bytes


@attrs.define
class _Index:
    """What the append checks need, kept small: a million ids fit in about 100 MB."""

    ids: dict[str, int] = attrs.Factory(dict)  # event id -> seq
    kinds: dict[str, str] = attrs.Factory(dict)  # id -> type, for all but facts
    entities: set[str] = attrs.Factory(set)
    same_as: dict[str, tuple[str, str]] = attrs.Factory(dict)  # link id -> (a, b)
    retracted: set[str] = attrs.Factory(set)
    # the same-as links naming each event, made when first asked for and then kept up to date
    # by _index_event. Only ever added to: a link taken back (a refused batch) or retracted is
    # passed over where it is read.
    touching: dict[str, list[str]] | None = attrs.field(default=None, eq=False, repr=False)

    def update(self, other: _Index) -> None:
        """Add what another index holds (of other lines): as if its events were indexed here."""
        self.ids.update(other.ids)
        self.kinds.update(other.kinds)
        self.entities |= other.entities
        self.same_as.update(other.same_as)
        self.retracted |= other.retracted
        self.touching = None

    def links(self) -> dict[str, list[str]]:
        """The ids of the same-as links naming each event (some may have been taken back)."""
        if self.touching is None:
            self.touching = {}
            for link_id, pair in self.same_as.items():
                _touch(self.touching, link_id, pair)
        return self.touching


class EventLog(abc.ABC):
    """An append-only log of events with a hash chain. Use a backend: ``JsonlLog``, ``MemoryLog``.

    Args:
        clock: gives the current time (UTC) for ``recorded_at``; tests pass their own.
        require_entities: refuse events naming an entity no ``entity.defined`` event defines.
    """

    name: str = "log"

    def __init__(self, *, clock: Clock | None = None, require_entities: bool = True) -> None:
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self._require_entities = require_entities
        self._index = _Index()
        self._head = Head()
        self._pending: list[_Prepared] = []
        # what this handle appended lately, by seq: corrections mostly name recent events
        self._recent: dict[int, _Prepared] = {}

    # -- the backend's primitives ------------------------------------------------------------------

    @abc.abstractmethod
    def _locked(self) -> AbstractContextManager[None]:
        """Hold the exclusive writer lock; recover a torn tail if the backend can have one."""

    @abc.abstractmethod
    def _raw_lines(self, start: int) -> Iterator[RawLine]:
        """Stored lines from seq ``start`` on, whole batches only, in seq order."""

    @abc.abstractmethod
    def _write(self, lines: list[bytes], first_seq: int) -> None:
        """Store one batch durably and atomically (all lines or none)."""

    def _line_blocks(self) -> Iterator[tuple[int, bytes, bool, str, int]]:
        """Every stored line in blocks: the seq of the first, the lines joined, whether the block
        ends a segment, the segment and the first line's number in it. Backends that can read
        their storage in bulk override it."""
        lines: list[RawLine] = []
        for line in self._raw_lines(1):
            lines.append(line)
            if len(lines) == 4096:
                yield _as_block(lines, False)
                lines = []
        if lines:
            yield _as_block(lines, True)

    def close(self) -> None:  # noqa: B027 (a backend with nothing to release need not override)
        """Release what the log holds open. The log may not be used afterwards."""

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- appending ---------------------------------------------------------------------------------

    def append(
        self, events: Event | Iterable[Event], *, expected_head: int | None = None
    ) -> list[Recorded]:
        """Append one event or a batch, atomically: all of them are recorded or none is.

        An event whose id is already in the log with the same content is not written again; its
        original record is returned in its place.

        Args:
            events: an event or an iterable of events.
            expected_head: the seq the caller last saw; if the log has moved on, nothing is
                written and :class:`HeadMoved` is raised.

        Returns:
            One :class:`Recorded` per event given, in order.

        Raises:
            InvalidEvent: an event that cannot be recorded (nothing is written).
            UnknownTarget: an amendment naming an event the log does not hold.
            ConflictingAppend: an id already recorded with other content.
            HeadMoved: ``expected_head`` did not match.
            DurabilityError: the write could not be made durable.
        """
        batch = [events] if isinstance(events, Event) else list(events)
        prepared = [self._prepare(event, n) for n, event in enumerate(batch)]
        with self._locked():
            self._catch_up()
            if expected_head is not None and expected_head != self._head.seq:
                raise HeadMoved(expected_head, self._head.seq)
            return self._append_locked(prepared)

    def _prepare(self, event: Event, position: int) -> _Prepared:
        if not isinstance(event, Event):
            raise InvalidEvent(f"batch item {position} is a {type(event).__name__}, not an Event")
        event_id, data = encode_event(event, where=f"batch item {position}")
        return _Prepared(event, event_id, data)

    def _append_locked(self, prepared: list[_Prepared]) -> list[Recorded]:
        undo: list[tuple[Any, str]] = []
        try:
            seqs, new = self._plan(prepared, undo)
            written = self._write_batch(new) if new else {}
        except BaseException:
            for container, key in reversed(undo):  # a refused batch leaves no trace
                container.discard(key) if isinstance(container, set) else container.pop(key)
            raise
        return [written[seq] if seq in written else self.get_seq(seq) for seq in seqs]

    def _plan(self, prepared: list[_Prepared], undo: list[tuple[Any, str]]
              ) -> tuple[list[int], list[_Prepared]]:
        """Check the batch against the index (updating it) and pick the events to write."""
        seqs: list[int] = []
        new: list[_Prepared] = []
        self._pending = new  # a correction may name an event of its own batch
        batch_ids: dict[str, int] = {}
        for item in prepared:
            seq = self._index.ids.get(item.id)
            if seq is None:
                self._check_references(item.event, self._index)
                seq = self._head.seq + len(new) + 1
                _index_event(self._index, item.id, item.event, seq, undo)
                batch_ids[item.id] = len(new)
                new.append(item)
            else:
                self._check_same_content(item, seq, batch_ids, new)
            seqs.append(seq)
        return seqs, new

    def _write_batch(self, new: list[_Prepared]) -> dict[int, Recorded]:
        stamp = max(format_timestamp(self._clock()), self._head.recorded_at)
        prev, first = self._head.digest, self._head.seq + 1
        lines: list[bytes] = []
        records: dict[int, Recorded] = {}
        for n, item in enumerate(new):
            line = encode_line(
                seq=first + n, event_id=item.id, type_name=item.event.type,
                version=item.event.version, recorded_at=stamp, prev=prev,
                more=len(new) - n - 1, data=item.data,
            )
            digest = hashlib.sha256(line).hexdigest()
            event = item.event if item.event.id else attrs.evolve(item.event, id=item.id)
            records[first + n] = Recorded(first + n, parse_timestamp(stamp), prev, digest, event)
            lines.append(line)
            prev = digest
        self._write(lines, first)
        self._head = Head(first + len(new) - 1, prev, stamp)
        if len(self._recent) > _RECENT:
            self._recent.clear()
        self._recent.update(zip(range(first, first + len(new)), new, strict=True))
        return records

    def _check_same_content(
        self, item: _Prepared, seq: int, batch_ids: dict[str, int], new: list[_Prepared]
    ) -> None:
        if item.id in batch_ids:
            earlier = new[batch_ids[item.id]]
            same = (earlier.event.type, earlier.data) == (item.event.type, item.data)
        else:
            raw = self._raw_at(seq).raw
            same = _line_content(raw) == (item.event.type, item.event.version, item.data)
        if not same:
            raise ConflictingAppend(
                f"event {item.id!r} is already recorded (seq {seq}) with other content; "
                "record an event.corrected naming it instead of appending it again"
            )

    # -- references between events -----------------------------------------------------------------

    def _check_references(self, event: Event, index: _Index) -> None:
        if (
            self._require_entities
            and not isinstance(event, EntityDefined)
            and not index.entities.issuperset(event.entities())  # (in C: the common case)
        ):
            unknown = [e for e in event.entities() if e not in index.entities]
            if unknown:
                raise InvalidEvent(
                    f"names entities that no entity.defined event defines: {', '.join(unknown)}; "
                    "record their definitions first (in the same batch is fine)",
                    field="entities",
                    where=f"event {event.id!r}" if event.id else None,
                )
        if isinstance(event, Amendment):
            self._check_target(event, event.target, index, "target")
        if isinstance(event, SameAs):
            self._check_target(event, event.other, index, "other")
            if _connected(index, event.target, event.other):
                raise InvalidEvent(
                    f"{event.target!r} and {event.other!r} are already linked as the same "
                    "event; another link would make a cycle",
                    field="other",
                )
        if isinstance(event, Amendment) and event.type == "event.corrected":
            self._check_correction(event, index)

    def _check_target(self, event: Amendment, target: str, index: _Index, field: str) -> None:
        if target not in index.ids:
            raise UnknownTarget(
                f"{event.type} names {target!r}, which the log does not hold; "
                "check the id (`solidline log` lists them)",
                field=field,
            )
        needs_fact = isinstance(event, StatusChanged | SameAs)
        if needs_fact and target in index.kinds:
            raise UnknownTarget(
                f"{event.type} must name a factual event, but {target!r} is a "
                f"{index.kinds[target]}",
                field=field,
            )

    def _check_correction(self, event: Amendment, index: _Index) -> None:
        changes: dict[str, Any] = getattr(event, "changes", {})
        cls, data = self._stored_data(index.ids[event.target])
        try:
            structure_event(cls, data | changes | {"id": event.target}, where=None)
        except InvalidEvent as exc:
            raise InvalidEvent(
                f"the corrected {cls.type} would be invalid: {exc.reason}",
                field=f"changes.{exc.field}" if exc.field else "changes",
            ) from None

    def _stored_data(self, seq: int) -> tuple[type[Event], dict[str, Any]]:
        """The class and data of the event at ``seq``, as a reader has them: from what this
        handle appended lately (or is appending) if it can, else from the line."""
        batch = seq - self._head.seq  # from 1: an event of the same batch, not written yet
        item = self._pending[batch - 1] if batch > 0 else self._recent.get(seq)
        if item is not None:
            return type(item.event), orjson.loads(item.data)
        line = self._raw_at(seq)
        envelope = _envelope(line)
        cls = registered_types().get(envelope["type"])
        if cls is None or envelope["v"] != cls.version:  # decoded: upcast, or refused
            target = _decode(line, envelope).event
            return type(target), event_data(target)
        return cls, envelope["data"]

    # -- reading -----------------------------------------------------------------------------------

    @property
    def head(self) -> Head:
        """The last line of the log as it is now."""
        self._catch_up()
        return self._head

    def read(self, start: int = 1, stop: int | None = None, *, check_chain: bool = True
             ) -> Iterator[Recorded]:
        """Stream the recorded events from seq ``start`` up to (not including) ``stop``.

        Memory does not grow with the log; a batch being written is seen whole or not at all.

        Raises:
            CorruptLog: a line that does not parse or decode, with its place and field.
            ChainBroken: a line whose seq or ``prev`` does not follow (with ``check_chain``).
        """
        for line, envelope, digest in self._checked_lines(start, stop, check_chain=check_chain):
            yield _decode(line, envelope, digest)

    def get(self, event_id: str) -> Recorded | None:
        """The record of the event with this id, or None."""
        self._catch_up()
        seq = self._index.ids.get(event_id)
        return None if seq is None else self.get_seq(seq)

    def get_seq(self, seq: int) -> Recorded:
        """The record at ``seq``. Raises KeyError past the head."""
        return _decode(self._raw_at(seq))

    def _raw_at(self, seq: int) -> RawLine:
        for line in self._raw_lines(seq):
            return line
        raise KeyError(f"no line with seq {seq} in {self.name}")

    def verify(self, *, decode: bool = True) -> VerifyReport:
        """Check every line: JSON, envelope, seq without gaps, the hash chain, and the event.

        Args:
            decode: also build every event (catches unknown types and invalid fields).

        Raises:
            CorruptLog: at the first fault, naming segment, line and field.
        """
        seen: set[str] = set()
        count, head = 0, Head()
        if not decode:  # whole blocks at once, as far as they are plainly sound
            count, head = self._verify_blocks(seen)
        lines = self._checked_lines(head.seq + 1, None, check_chain=True,
                                    prev=head.digest, last_ts=head.recorded_at)
        for line, envelope, digest in lines:
            if envelope["id"] in seen:
                raise line.fault(f"id {envelope['id']!r} is recorded twice", "id")
            seen.add(envelope["id"])
            if decode:
                _decode(line, envelope, digest)
            count += 1
            head = Head(line.seq, digest, envelope["recorded_at"])
        return VerifyReport(count, head, decode)

    def _verify_blocks(self, seen: set[str]) -> tuple[int, Head]:
        """Check the chain a block of lines at a time, without parsing each line in Python.

        See :meth:`_sound_blocks`; the line-by-line check continues from the returned count and
        head, and reports any fault exactly as ever.
        """
        count, head = 0, Head()
        for block in self._sound_blocks(seen):
            count += len(block.lines)
            head = block.head
        return count, head

    def _sound_blocks(self, seen: set[str]) -> Iterator[_Block]:
        """The log from its start in blocks of whole batches, as far as they are plainly sound.

        Each block is checked with one regular expression over its bytes (every line must have
        the canonical envelope :func:`encode_line` writes), one SHA-256 per line and list
        comparisons: seq, prev and recorded_at follow on, and no id comes twice (``seen`` gets
        the ids). The hash chain vouches for every byte of a line but the last one (the next
        line holds its hash), so the data itself is not parsed. The blocks stop before the
        first line that is not plainly sound, and always before the log's last line: the
        caller reads on line by line from there, with every check. The last line they hold is
        followed by one whose ``prev`` was compared with its digest (a line whose data does not
        parse is therefore found by the line-by-line check, at its own place).
        """
        head, pending = Head(), None
        carried = b""  # the start of a batch the last block ended in the middle of
        for first, data, segment_ends, segment, line in self._line_blocks():
            if carried:
                count = carried.count(b"\n")
                if first != head.seq + 1 + count:
                    break
                first, data, line = head.seq + 1, carried + data, line - count
            block = _check_block(first, data, head, seen, segment, line)
            if block is None:
                break
            carried = data[block.size :]
            if carried and segment_ends:  # a batch without its end: read it line by line
                break
            if block.lines:
                if pending is not None:
                    yield pending
                pending, head = block, block.head
                seen.update(block.ids)
        if pending is not None:  # its last line: no line checked so far holds its hash
            seen.discard(pending.ids[-1])
            pending = pending.without_last()
        if pending is not None and pending.lines:
            yield pending

    def _checked_lines(
        self, start: int, stop: int | None, *, check_chain: bool, prev: str | None = None,
        last_ts: str = "",
    ) -> Iterator[tuple[RawLine, dict[str, Any], str]]:
        """Each line with its parsed envelope and its digest, checked against the line before.

        ``prev`` and ``last_ts`` are those of the line before ``start``, when the caller knows
        them (otherwise the first line's ``prev`` is taken on trust, unless it is the first).
        """

        start = max(start, 1)
        expected_seq = start
        for line in self._raw_lines(start):
            if stop is not None and line.seq >= stop:
                return
            envelope = _envelope(line)
            if envelope["seq"] != expected_seq:
                raise line.fault(f"seq {envelope['seq']} where {expected_seq} was due", "seq",
                                 chain=True)
            if check_chain:
                if prev is None:
                    prev = envelope["prev"] if start > 1 else GENESIS
                if envelope["prev"] != prev:
                    raise line.fault("prev is not the hash of the line before: the log was "
                                     "edited, reordered or truncated here", "prev", chain=True)
                if envelope["recorded_at"] < last_ts:
                    raise line.fault("recorded_at goes back in time", "recorded_at", chain=True)
                envelope["prev"] = prev  # the same text: a million records keep one copy of it
                last_ts = envelope["recorded_at"]
            prev = hashlib.sha256(line.raw).hexdigest()
            expected_seq += 1
            yield line, envelope, prev

    # -- the index ---------------------------------------------------------------------------------

    def _catch_up(self) -> None:
        """Bring the id index and head up to date with what is stored (others may append)."""
        if self._head.seq == 0:
            self._first_catch_up()
        index, head = self._index, self._head
        for line in self._raw_lines(head.seq + 1):
            envelope = _envelope(line)
            if envelope["seq"] != head.seq + 1 or envelope["prev"] != head.digest:
                raise line.fault("does not follow the line before it (seq or prev)", "prev",
                                 chain=True)
            event = _decode(line).event if _indexes(envelope["type"]) else None
            _index_event(index, envelope["id"], event, envelope["seq"])
            head = Head(envelope["seq"], hashlib.sha256(line.raw).hexdigest(),
                        envelope["recorded_at"])
        self._head = head

    def _first_catch_up(self) -> None:
        """Index the log from its start: most of it a block at a time. A backend that keeps a
        saved index loads it instead, when it still matches."""
        self._index_blocks()

    def _index_blocks(self) -> None:
        """Index the plainly sound blocks of the log: facts by id alone; other events decoded."""
        index, indexes = self._index, {}
        for block in self._sound_blocks(set()):
            seqs = range(block.first, block.first + len(block.lines))
            index.ids.update(zip(block.ids, seqs, strict=True))
            for n, type_name in enumerate(block.types):
                if type_name not in indexes:
                    indexes[type_name] = _indexes(type_name.decode())
                if indexes[type_name]:
                    line = RawLine(block.first + n, block.lines[n], block.segment, block.line + n)
                    _index_event(index, block.ids[n], _decode(line).event, line.seq)
            self._head = block.head


@attrs.define
class _Block:
    """Consecutive whole lines found plainly sound, with what the checks took out of them."""

    first: int
    lines: tuple[bytes, ...]
    digests: bytes  # the hex digests of the lines, joined
    stamps: tuple[bytes, ...]
    ids: list[str]
    types: tuple[bytes, ...]
    mores: tuple[bytes, ...]
    segment: str = ""
    line: int = 0  # the line number of the first line in its segment

    @property
    def head(self) -> Head:
        """The block's last line."""
        return self.head_at(len(self.lines) - 1)

    @property
    def size(self) -> int:
        """The length of the block's lines in bytes."""
        return sum(map(len, self.lines))

    def head_at(self, n: int) -> Head:
        """The block's line ``n`` (from 0) as a head."""
        return Head(self.first + n, self.digests[64 * n : 64 * n + 64].decode(),
                    self.stamps[n].decode())

    def without_last(self) -> _Block:
        return self.first_lines(len(self.lines) - 1)

    def first_lines(self, n: int) -> _Block:
        """The block cut to its first ``n`` lines."""
        return _Block(self.first, self.lines[:n], self.digests[: 64 * n], self.stamps[:n],
                      self.ids[:n], self.types[:n], self.mores[:n], self.segment, self.line)


def _check_lines(first: int, data: bytes, head: Head) -> _Block | None:
    """The lines of ``data`` (whole lines) if every one has the canonical envelope and they
    follow ``head`` and each other: seq, prev (the hash chain) and recorded_at. Else None.

    The work is done a block at a time in C: one regular expression, one SHA-256 per line
    through ``map``, one conversion of all digests to hex and comparisons of joined bytes.
    """
    found = _CANONICAL.findall(data)
    if not found:
        return None
    lines, seqs, ids, types, stamps, prevs, mores = zip(*found, strict=True)
    if sum(map(len, lines)) != len(data):  # the matches, whole lines, do not cover the block
        return None
    digests = b"".join(map(_DIGEST, map(hashlib.sha256, lines))).hex().encode()
    if (
        list(map(int, seqs)) != list(range(first, first + len(lines)))
        or prevs[0] != head.digest.encode()
        or b"".join(prevs[1:]) != digests[:-64]
        or stamps[0] < head.recorded_at.encode()
        or not all(map(operator.le, stamps, stamps[1:]))
    ):
        return None
    try:  # ids, types and times are text to the line-by-line check (orjson refuses bad UTF-8)
        texts = b"\n".join(ids).decode().split("\n")
        b"".join(stamps + types).decode()
    except UnicodeDecodeError:
        return None
    return _Block(first, lines, digests, stamps, texts, types, mores)


def _check_block(first: int, data: bytes, head: Head, seen: set[str], segment: str, line: int
                 ) -> _Block | None:
    """The whole batches of a block of lines following ``head``, or None where a line is not
    plainly sound (see :meth:`EventLog._sound_blocks`). Lines after the last whole batch begin
    a batch the next block ends; they are not in the result."""
    block = _check_lines(first, data, head)
    if block is None:
        return None
    whole = len(block.lines)
    while whole and block.mores[whole - 1] not in (b"", b"0"):
        whole -= 1
    if whole < len(block.lines):
        block = block.first_lines(whole)
    if len(set(block.ids)) != whole or not seen.isdisjoint(block.ids):
        return None
    block.segment, block.line = segment, line
    return block


def _as_block(lines: list[RawLine], ends: bool) -> tuple[int, bytes, bool, str, int]:
    data = b"".join(line.raw for line in lines)
    return lines[0].seq, data, ends, lines[0].segment, lines[0].line


def _envelope(line: RawLine) -> dict[str, Any]:
    try:
        envelope = orjson.loads(line.raw)
    except orjson.JSONDecodeError as exc:
        raise line.fault(f"is not valid JSON ({exc}); the log was damaged here") from None
    bad = check_envelope(envelope)
    if bad is not None:
        raise line.fault("is missing or has a wrong type", bad)
    return envelope  # type: ignore[no-any-return]


def _decode(line: RawLine, envelope: dict[str, Any] | None = None, digest: str | None = None
            ) -> Recorded:
    """The record of a line, from its envelope and digest when the caller has them already."""
    if envelope is None:
        envelope = _envelope(line)
    try:
        event = decode_event(envelope["type"], envelope["v"], envelope["id"], envelope["data"],
                             where=None)
        stamp = parse_timestamp(envelope["recorded_at"])
    except InvalidEvent as exc:
        # the id, type and version are the envelope's; every other field is in its data
        envelope_keys = ("id", "type", "v")
        field = "data." + exc.field if exc.field and exc.field not in envelope_keys else exc.field
        raise line.fault(exc.reason, field) from None
    except ValueError as exc:
        raise line.fault(str(exc), "recorded_at") from None
    if digest is None:
        digest = hashlib.sha256(line.raw).hexdigest()
    return Recorded(envelope["seq"], stamp, envelope["prev"], digest, event)


def _line_content(raw: bytes) -> tuple[str, int, bytes]:
    envelope = orjson.loads(raw)
    return envelope["type"], envelope["v"], orjson.dumps(envelope["data"])


def _indexes(type_name: str) -> bool:
    """Whether the index needs the whole event (entities and amendments), not only its id."""
    cls = registered_types().get(type_name)
    return cls is not None and not issubclass(cls, Fact)


def _index_event(
    index: _Index, event_id: str, event: Event | None, seq: int,
    undo: list[tuple[Any, str]] | None = None,
) -> None:
    """Add an event to the index; ``undo`` collects what was added, to take it back."""
    added: list[tuple[Any, str]] = [(index.ids, event_id)]
    index.ids[event_id] = seq
    if event is not None and not isinstance(event, Fact):
        index.kinds[event_id] = event.type
        added.append((index.kinds, event_id))
        if isinstance(event, EntityDefined) and event.entity not in index.entities:
            index.entities.add(event.entity)
            added.append((index.entities, event.entity))
        elif isinstance(event, SameAs):
            index.same_as[event_id] = (event.target, event.other)
            added.append((index.same_as, event_id))
            if index.touching is not None:
                _touch(index.touching, event_id, (event.target, event.other))
        elif (
            event.type == "event.retracted"
            and isinstance(event, Amendment)
            and event.target not in index.retracted
        ):
            index.retracted.add(event.target)
            added.append((index.retracted, event.target))
    if undo is not None:
        undo.extend(added)


def _touch(touching: dict[str, list[str]], link_id: str, pair: tuple[str, str]) -> None:
    for end in pair:
        touching.setdefault(end, []).append(link_id)


def _connected(index: _Index, a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are already joined by same-as links that stand (not retracted).

    Only the links around ``a`` are followed, not every link of the log."""
    touching, same_as, retracted = index.links(), index.same_as, index.retracted
    seen, todo = {a}, [a]
    while todo:
        node = todo.pop()
        for link_id in touching.get(node, ()):
            pair = same_as.get(link_id)
            if pair is None or node not in pair or link_id in retracted:
                continue  # taken back, named another pair when taken back, or retracted
            nxt = pair[1] if pair[0] == node else pair[0]
            if nxt == b:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False
