"""The embedded default: a directory of JSON Lines segment files.

Layout::

    events/
      00000000000000000001.jsonl     lines 1 … n (the name is the first seq, 20 digits)
      00000000000000004711.jsonl     the next segment, begun when the last passed its size
      .lock                          flock'ed by writers
      .index                         the id index as of some line, to open a big log quickly
      00000000000000004711.jsonl.<offset>.quarantine   bytes a crashed writer left behind

Writers take an exclusive ``flock`` on ``.lock``, write a whole batch with one ``write()`` and
``fdatasync`` before returning. Readers take no lock: they read whole lines and whole batches
only (a line's ``more`` says how many lines of its batch follow), so a batch being written is
seen entirely or not at all. Under the lock, a torn or NUL-padded tail left by a crash is moved
to a quarantine file and the segment is cut back to its last whole batch.
"""

from __future__ import annotations

import bisect
import fcntl
import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from .._errors import ChainBroken, CorruptLog, DurabilityError, LogError
from .._files import fsync_folder
from . import _ranges, _saved_index
from ._base import EventLog, Head, RawLine, _decode, _index_event

__all__ = ["JsonlLog"]

_SEGMENT = re.compile(r"(\d{20})\.jsonl")
_CHUNK = 1 << 20
_SMALL_CHUNK = 1 << 16  # reading one line from a mark
_MARK_EVERY = 256  # lines between two marks of where a line starts
_ENVELOPE_PREFIX = 480  # seq, id, type, v, recorded_at, prev, more fit in this many bytes
_SAVE_AFTER = 10_000  # lines indexed beyond the saved index that make saving it again worth it


class JsonlLog(EventLog):
    """A log in a directory of JSON Lines segments (see the module docstring for the layout).

    Args:
        path: the log directory.
        create: create the directory if it does not exist.
        readonly: open for reading only (no lock, no recovery, no append).
        durable: ``fdatasync`` before each append returns; with False, call :meth:`sync`.
        segment_bytes: begin a new segment when the current one would grow past this size.
        clock, require_entities: as for :class:`EventLog`.

    Raises:
        LogError: the directory does not exist (and ``create`` is false) or is not a log.
        CorruptLog: a damaged line that is not a crashed writer's tail (it is left in place).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        readonly: bool = False,
        durable: bool = True,
        segment_bytes: int = 64 << 20,
        **options: object,
    ) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.path = Path(path)
        self.name = str(self.path)
        self.readonly = readonly
        self.durable = durable
        self.segment_bytes = segment_bytes
        self.quarantined: list[Path] = []
        self._sync_failed: str | None = None
        self._lock_fd: int | None = None
        self._writer: tuple[Path, int] | None = None
        self._next: tuple[int, int, int, int] | None = None  # seq, segment first seq, offset, line
        # where some lines start, to read from any seq without scanning its segment from the top
        self._marks: dict[int, tuple[int, int, int]] = {}  # seq -> segment first seq, offset, line
        self._marked: list[int] = []  # the seqs of _marks, sorted
        self._held: list[tuple[int, Path]] | None = None  # the segments, while the lock is held
        self._saved_seq: int | None = None  # the head of the saved index, once looked for
        self._open_directory(create and not readonly)
        if not readonly:
            with self._locked():  # recovers a crashed writer's tail, if there is one
                pass

    def _open_directory(self, create: bool) -> None:
        if self.path.is_dir():
            return
        if self.path.exists():
            raise LogError(f"{self.path} is not a directory; a log is a directory of segments")
        if not create:
            raise LogError(f"there is no log at {self.path}; create it with a first append")
        self.path.mkdir(parents=True)
        fsync_folder(self.path.parent)

    def close(self) -> None:
        if not self.readonly and self._saved_seq is not None and self._sync_failed is None:
            self._save_index_if_behind()  # (not after a failed sync: the head may be lost)
        if self._writer is not None:
            os.close(self._writer[1])
            self._writer = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def sync(self) -> None:
        """Make every append so far durable (for logs opened with ``durable=False``)."""
        if self._writer is not None:
            _fdatasync(self._writer[1], self._writer[0])

    # -- segments ----------------------------------------------------------------------------------

    def _segments(self) -> list[tuple[int, Path]]:
        if self._held is not None:  # under the lock no one else makes a segment
            return list(self._held)
        found = []
        with os.scandir(self.path) as entries:
            for entry in entries:
                match = _SEGMENT.fullmatch(entry.name)
                if match:
                    found.append((int(match.group(1)), Path(entry.path)))
        found.sort()
        return found

    def _segment_name(self, first: int) -> Path:
        return self.path / f"{first:020d}.jsonl"

    # -- reading -----------------------------------------------------------------------------------

    def _raw_lines(self, start: int) -> Iterator[RawLine]:
        if self._nothing_after(start):
            return
        segments = self._segments()
        if not segments:
            return
        start = max(start, 1)
        firsts = [first for first, _ in segments]
        i = max(bisect.bisect_right(firsts, start) - 1, 0)
        offset = line = 0
        if self._next is not None and self._next[0] == start and self._next[1] == firsts[i]:
            offset, line = self._next[2], self._next[3]
        else:
            at = bisect.bisect_right(self._marked, start) - 1
            if at >= 0 and self._marks[self._marked[at]][0] == firsts[i]:
                _, offset, line = self._marks[self._marked[at]]
        for first, path in segments[i:]:
            yield from self._segment_lines(first, path, start, offset, line)
            offset = line = 0

    def _segment_lines(
        self, first: int, path: Path, start: int, offset: int, line: int
    ) -> Iterator[RawLine]:
        """Whole lines of whole batches from one segment, from ``offset`` (line ``line``) on."""
        batch: list[RawLine] = []
        name = path.name
        for raw, end in _read_lines(path, offset):
            line += 1
            seq = first + line - 1
            if seq < start:
                continue
            item = RawLine(seq, raw, name, line)
            if _more(raw):
                batch.append(item)
                continue
            if batch:
                batch.append(item)
                yield from batch
                batch = []
            else:
                yield item
            self._note_position(seq + 1, first, end, line)

    def _raw_at(self, seq: int) -> RawLine:
        """One line of the log as far as it is known whole (a correction's target, read to check
        the correction): from the nearest mark before it, the lines between counted in C."""
        segments = self._segments()
        i = bisect.bisect_right([first for first, _ in segments], seq) - 1
        if not 1 <= seq <= self._head.seq or i < 0:  # (past the head: whole batches only)
            return super()._raw_at(seq)
        first, path = segments[i]
        begin, offset = first, 0
        at = bisect.bisect_right(self._marked, seq) - 1
        if at >= 0 and self._marks[self._marked[at]][0] == first:
            begin, offset = self._marked[at], self._marks[self._marked[at]][1]
        raw = _nth_line(path, offset, seq - begin)
        if raw is None:
            return super()._raw_at(seq)
        return RawLine(seq, raw, path.name, seq - first + 1)

    def _nothing_after(self, start: int) -> bool:
        """Whether the log surely ends before ``start``: two stats instead of a directory scan."""
        known = self._next
        if known is None or known[0] != start:
            return False
        if self._held is not None:  # under the lock, no one else writes, and the tail
            # recovery left _next at the end of the last segment (see _locked)
            return bool(self._held) and known[1] == self._held[-1][0]
        folder = self.name  # os.stat on text: pathlib costs more than the system calls
        try:
            if os.stat(f"{folder}/{known[1]:020d}.jsonl").st_size != known[2]:
                return False
        except FileNotFoundError:
            return False
        # a writer that began a new segment named it after its first line: the next seq
        return not os.path.exists(f"{folder}/{start:020d}.jsonl")

    def _note_position(self, seq: int, first: int, offset: int, line: int) -> None:
        if self._next is None or seq > self._next[0]:
            self._next = (seq, first, offset, line)
        if seq - (self._marked[-1] if self._marked else 1) >= _MARK_EVERY:
            self._mark(seq, first, offset, line)

    def _mark(self, seq: int, first: int, offset: int, line: int) -> None:
        if seq not in self._marks:
            self._marks[seq] = (first, offset, line)
            bisect.insort(self._marked, seq)

    def _line_blocks(self) -> Iterator[tuple[int, bytes, bool, str, int]]:
        """Every whole line, segment after segment, in blocks of about a megabyte."""
        for first, path in self._segments():
            with path.open("rb") as f:
                seq, offset, rest = first, 0, b""
                chunk = f.read(_CHUNK)
                while chunk:
                    buffer = rest + chunk if rest else chunk
                    chunk = f.read(_CHUNK)
                    cut = buffer.rfind(b"\n") + 1
                    rest = buffer[cut:]
                    if not cut:
                        continue
                    self._mark(seq, first, offset, seq - first)
                    yield seq, buffer[:cut], not chunk, path.name, seq - first + 1
                    seq, offset = seq + buffer.count(b"\n", 0, cut), offset + cut

    def _verify_blocks(self, seen: set[str]) -> tuple[int, Head]:
        """Check the chain on every core when the log is big enough for that to pay (see
        :mod:`._ranges`); otherwise a block at a time in this process."""
        linked = _ranges.linked(self._segments(), seen, whole_events=False, mark=self._mark)
        if linked is None:
            return super()._verify_blocks(seen)
        return linked.lines, linked.head

    def _index_blocks(self) -> None:
        """Index the log as far as it is plainly sound, on every core when that pays."""
        linked = _ranges.linked(self._segments(), set(), whole_events=True, mark=self._mark)
        if linked is None:
            super()._index_blocks()
            return
        index, end = self._index, linked.head.seq  # the last line is left to the catch-up
        for part, facts, ids in linked.ranges:
            taken = min(len(ids), end - facts.first + 1)
            index.ids.update(zip(ids[:taken], range(facts.first, facts.first + taken),
                                 strict=True))
            if facts.index is not None:
                index.update(facts.index)
            segment = os.path.basename(part.path)
            for seq, raw in facts.events:  # only a range's last line (the workers did the rest)
                if seq <= end:
                    line = RawLine(seq, raw, segment, seq - part.first + 1)
                    _index_event(index, ids[seq - facts.first], _decode(line).event, seq)
        self._head = linked.head

    # -- the saved index ---------------------------------------------------------------------------

    def _first_catch_up(self) -> None:
        if not self._load_index():
            super()._first_catch_up()

    def _catch_up(self) -> None:
        super()._catch_up()
        if not self.readonly:
            self._save_index_if_behind()

    def _load_index(self) -> bool:
        """Take the saved index if the log still holds its head line where it says (once)."""
        if self._saved_seq is not None:
            return False
        self._saved_seq = 0
        saved = _saved_index.load(self.path)
        if saved is None or not self._holds(saved.head, saved.position):
            return False
        self._index, self._head, self._next = saved.index, saved.head, saved.position
        for seq, place in saved.marks.items():
            self._mark(seq, *place)
        self._saved_seq = saved.head.seq
        return True

    def _holds(self, head: Head, position: tuple[int, int, int, int]) -> bool:
        """Whether the line just before ``position`` is ``head``: by its digest, the whole log
        up to it is then the log the index was made from."""
        path = self._segment_name(position[1])
        raw = _line_ending_at(path, position[2])
        return (
            raw is not None
            and hashlib.sha256(raw).hexdigest() == head.digest
            and (_loads(raw) or {}).get("seq") == head.seq
        )

    def _save_index_if_behind(self) -> None:
        saved = self._saved_seq or 0
        if self._head.seq - saved < _SAVE_AFTER or self._next is None:
            return
        if self._next[0] != self._head.seq + 1:
            return  # where the next line starts is not known: the file could not be checked
        _saved_index.save(self.path, _saved_index.Saved(self._index, self._head, self._next,
                                                        dict(self._marks)))
        self._saved_seq = self._head.seq

    # -- writing -----------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self._sync_failed is not None:
            # after a failed fsync the kernel may have dropped the pages: what is in the file
            # proves nothing, so this handle appends no more (PostgreSQL takes the same view)
            raise DurabilityError(
                5, f"an earlier fdatasync of {self._sync_failed} failed, so this handle appends "
                "no more; check the disk, run `solidline verify`, and open the log again",
            )
        if self.readonly:
            raise LogError(f"{self.path} was opened read-only")
        if self._lock_fd is None:
            self._lock_fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            self._held = self._segments()
            if self._head.seq == 0:  # the saved index also tells recovery where to look
                self._load_index()
            self._recover_tail()  # from here until released, _next is where the log ends
            yield
        finally:
            self._held = None
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _write(self, lines: list[bytes], first_seq: int) -> None:
        data = b"".join(lines)
        segments = self._segments()
        first, path = segments[-1] if segments else (first_seq, self._segment_name(first_seq))
        known = self._next
        if not segments:
            size = 0
        elif known is not None and known[:2] == (first_seq, first) and self._held is not None:
            size = known[2]  # the end of the log, as the lock found it (no stat needed)
        else:
            size = path.stat().st_size
        if not segments or (size and size + len(data) > self.segment_bytes):
            first, path, size = first_seq, self._segment_name(first_seq), 0
            _create_segment(path)
            if self._held is not None:
                self._held.append((first, path))
        fd = self._writer_fd(path)
        _write_all(fd, data, path)
        if self.durable:
            try:
                _fdatasync(fd, path)
            except DurabilityError:
                self._sync_failed = path.name
                raise
        after = first_seq + len(lines)
        self._next = (after, first, size + len(data), after - first)
        if first_seq - (self._marked[-1] if self._marked else 1) >= _MARK_EVERY:
            self._mark(first_seq, first, size, first_seq - first)

    def _writer_fd(self, path: Path) -> int:
        if self._writer is None or self._writer[0] != path:
            if self._writer is not None:
                os.close(self._writer[1])
            self._writer = (path, os.open(path, os.O_WRONLY | os.O_APPEND))
        return self._writer[1]

    # -- recovery ----------------------------------------------------------------------------------

    def _recover_tail(self) -> None:
        """Quarantine what a crashed writer left after the last whole batch (under the lock)."""
        segments = self._segments()
        if not segments:
            return
        first, path = segments[-1]
        size = path.stat().st_size
        known = self._next if self._next is not None and self._next[1] == first else None
        if known is not None and known[2] == size:
            return  # nothing was written since we last looked
        start: tuple[int, int, str | None]
        if known is not None and known[0] == self._head.seq + 1:
            start = (known[2], known[0], self._head.digest)
        else:
            start = (0, first, self._prev_digest(segments))
        good, seq, line = _good_length(path, *start, first)
        if good < size:
            self._quarantine(path, good, size)
        # where the next line starts: the next lock looks no further (nor reads the whole
        # segment again, which a log opened without a saved index had it do)
        self._note_position(seq, first, good, line)

    def _prev_digest(self, segments: list[tuple[int, Path]]) -> str | None:
        """The digest of the line before the last segment, to check the chain across it."""
        if len(segments) < 2:
            return "0" * 64
        last = None
        for raw, _ in _read_lines(segments[-2][1], 0):
            last = raw
        return None if last is None else hashlib.sha256(last).hexdigest()

    def _quarantine(self, path: Path, good: int, size: int) -> None:
        with path.open("rb") as f:
            f.seek(good)
            tail = f.read(size - good)
        target = path.with_name(f"{path.name}.{good}.quarantine")
        n = 1
        while target.exists() and target.read_bytes() != tail:  # a crash at the same place again
            n += 1
            target = path.with_name(f"{path.name}.{good}.{n}.quarantine")
        with target.open("wb") as out:
            out.write(tail)
            out.flush()
            os.fsync(out.fileno())
        with path.open("r+b") as f:
            f.truncate(good)
            f.flush()
            os.fsync(f.fileno())
        fsync_folder(self.path)
        self.quarantined.append(target)
        self._next = None
        first = int(path.name[:20])
        gone = [s for s in self._marked if self._marks[s][0] == first and self._marks[s][1] > good]
        for seq in gone:
            del self._marks[seq]
            self._marked.remove(seq)


# -- helpers ---------------------------------------------------------------------------------------


def _read_lines(path: Path, offset: int) -> Iterator[tuple[bytes, int]]:
    """Complete lines of a file from ``offset``, each with the offset just past it."""
    with path.open("rb") as f:
        f.seek(offset)
        rest = b""
        while chunk := f.read(_CHUNK):
            buffer = rest + chunk if rest else chunk
            begin = 0
            while (nl := buffer.find(b"\n", begin)) >= 0:
                yield buffer[begin : nl + 1], offset + nl + 1
                begin = nl + 1
            offset += begin
            rest = buffer[begin:]
    # an unterminated rest is a batch still being written, or a crashed writer's tail


def _nth_line(path: Path, offset: int, skip: int) -> bytes | None:
    """The whole line ``skip`` lines after the one that starts at ``offset``, or None."""
    with path.open("rb") as f:
        f.seek(offset)
        buffer = b""
        while chunk := f.read(_SMALL_CHUNK):
            buffer += chunk
            count = buffer.count(b"\n")
            if count <= skip:  # the line does not end in this chunk: keep only its start
                skip -= count
                buffer = buffer[buffer.rfind(b"\n") + 1 :]
                continue
            begin = 0
            for _ in range(skip):
                begin = buffer.index(b"\n", begin) + 1
            return buffer[begin : buffer.index(b"\n", begin) + 1]
    return None


def _line_ending_at(path: Path, offset: int) -> bytes | None:
    """The whole line that ends (with its newline) just before ``offset``, or None."""
    try:
        with path.open("rb") as f:
            begin, tail = offset, b""
            while begin > 0:
                begin = max(0, begin - 4096)
                f.seek(begin)
                tail = f.read(offset - begin)
                if len(tail) != offset - begin or not tail.endswith(b"\n"):
                    return None
                start = tail.rfind(b"\n", 0, len(tail) - 1)
                if start >= 0:
                    return tail[start + 1 :]
            return tail or None
    except OSError:
        return None


def _more(raw: bytes) -> int:
    # only the envelope, before "data": an event's own field may be called "more"; ids and type
    # names cannot hold a quote, so the first ,"data": is the envelope's
    data_at = raw.find(b',"data":')
    at = raw.find(b',"more":', 0, data_at if data_at >= 0 else _ENVELOPE_PREFIX)
    if at < 0:
        return 0
    end = raw.find(b",", at + 8)
    try:
        return int(raw[at + 8 : end])
    except ValueError:
        return 0


def _good_length(path: Path, offset: int, expected: int, prev: str | None, first: int
                 ) -> tuple[int, int, int]:
    """The length of the segment's prefix of whole, valid, chained batches, the seq of the line
    after it and the number of lines in it.

    ``expected`` is the seq of the line at ``offset``; ``first`` the segment's first seq. Only
    lines that do not parse (torn, NUL-padded) can be a crashed writer's tail. Raises CorruptLog
    when a line that parses does not follow the chain, or follows a damaged line: that is damage
    (an edit, a deletion, a bad disk), not a crash, and nothing is moved.
    """
    good, line = offset, expected - first
    after = (expected, line)
    pending, bad_at = 0, None
    for raw, end in _read_lines(path, offset):
        line += 1
        envelope = _loads(raw)
        if envelope is None:
            bad_at = bad_at or line
            continue
        if bad_at is not None:
            raise CorruptLog("damaged line before valid ones; the log was altered here",
                             segment=path.name, line=bad_at)
        if envelope.get("seq") != expected:
            raise ChainBroken(f"seq {envelope.get('seq')!r} where {expected} was due; the log "
                              "was altered here", segment=path.name, line=line, field="seq")
        if prev is not None and envelope.get("prev") != prev:
            raise ChainBroken("prev is not the hash of the line before: the log was edited, "
                              "reordered or truncated here", segment=path.name, line=line,
                              field="prev")
        prev, expected = hashlib.sha256(raw).hexdigest(), expected + 1
        more = envelope.get("more", 0)
        pending = pending - 1 if pending else more if isinstance(more, int) else 0
        if not pending:
            good, after = end, (expected, line)
    return good, *after


def _loads(raw: bytes) -> dict[str, object] | None:
    if b"\0" in raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _create_segment(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.close(fd)
    fsync_folder(path.parent)


def _write_all(fd: int, data: bytes, path: Path) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fdatasync(fd: int, path: Path) -> None:
    try:
        os.fdatasync(fd)
    except OSError as exc:
        # never retried: after a failed fsync the kernel may have dropped the dirty pages
        raise DurabilityError(
            exc.errno, f"fdatasync of {path} failed ({exc.strerror}); the last append may be "
            "lost: check the disk, then run `solidline verify`",
        ) from None
