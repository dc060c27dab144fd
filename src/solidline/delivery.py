"""Delivery: where messages go, and the ledger that sends each planned message once.

**Transports.** A :class:`Transport` delivers :class:`~solidline.mail.Outgoing` messages and
tells a failure for now (:class:`Deferred`: tried again on the next run) from one that stops the
run (:class:`Unavailable`) and one for good (any other :class:`~solidline.DeliveryError`).
:class:`OutboxTransport` writes ``.eml`` files; :class:`~solidline.smtp.SmtpTransport` speaks
SMTP. :func:`write_outbox` writes a preview for a person to look at first.

**The ledger.** Sending goes through a :class:`Ledger`, a JSON Lines log of its own in a folder::

    deliveries/
      ledger.jsonl     {"at": …, "kind": "planned" | "sent" | "rejected" | "window", …}
      lock             flock'ed for the whole run: no two runs overlap
      spool/           the planned messages' bytes, a file a plan (or batch), until all are done

A run *plans* (writes the messages into one spool file, fsyncs, then appends one batch of
``planned`` lines naming each message's place in it), then for each planned message not yet done
*sends* it and *records* ``sent`` (fdatasync). ``digest --send`` plans in batches, each sent
while the next is composed; a message is sent only after its batch's lines are durable. Killed
anywhere and run again, it sends what is planned and not recorded: every digest arrives, and only
a message whose SMTP accept raced the kill can arrive twice, with the same bytes and the same
Message-ID.

The ``sent`` record of one message is made durable while the next one is transmitted: the
transport waits for it (:meth:`Ledger.settle`) only before it lets the server accept the next
(SMTP's final "."), so at any moment at most one accepted message lacks a durable record, as when
each record was synced before the next message began.

The ledger is a small file of its own rather than an :class:`~solidline.EventLog`: delivery lines
are not events of the record, and need no types, entity checks or hash chain.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import attrs
import orjson
from markupsafe import escape

from ._errors import CorruptLog, DeliveryError, DurabilityError
from ._files import exclusive_lock, write_atomically
from .mail import Outgoing

__all__ = [
    "Deferred",
    "DeliveryReport",
    "Ledger",
    "OutboxTransport",
    "Transport",
    "Unavailable",
    "deliver_pending",
    "write_atomically",
    "write_outbox",
]


# -- transports ------------------------------------------------------------------------------------


class Deferred(DeliveryError):
    """A temporary failure for one message: it stays planned and is tried on the next run."""


class Unavailable(DeliveryError):
    """The transport cannot send at all now (no connection, login refused): stop the run."""


class Transport(Protocol):
    """Delivers :class:`Outgoing` messages.

    ``deliver`` raises :class:`Deferred` for a failure worth trying again on the next run,
    :class:`Unavailable` when nothing can be sent now, and any other
    :class:`~solidline.DeliveryError` when the message cannot be delivered. It calls
    ``before_accept`` (if given) after the message is transmitted and before the receiver can
    accept it; if that raises, the message is not accepted and the error propagates.
    """

    def deliver(
        self, message: Outgoing, before_accept: Callable[[], None] | None = None
    ) -> None: ...

    def close(self) -> None: ...


def _file_name(message_id: str) -> str:
    return hashlib.sha256(message_id.encode()).hexdigest()[:32] + ".eml"


class OutboxTransport:
    """Delivers into a folder: one ``.eml`` file per message, written atomically.

    The file is named after the Message-ID, so delivering a message again replaces its file.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def deliver(
        self, message: Outgoing, before_accept: Callable[[], None] | None = None
    ) -> None:
        if before_accept is not None:
            before_accept()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomically(self.folder / _file_name(message.message_id), message.data)
        except OSError as exc:
            raise Unavailable(f"cannot write to the outbox {self.folder}: {exc}") from None

    def close(self) -> None:
        pass


def write_outbox(folder: Path, messages: Sequence[tuple[Outgoing, str, str]]) -> Path:
    """Write a preview: each message as ``.eml``, its HTML beside it, and an ``index.html``.

    Args:
        folder: the folder for this window's messages (what it held before is replaced).
        messages: ``(message, subject, html)`` for each message.

    Returns:
        The path of ``index.html``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob("*.eml"), *folder.glob("*.html")]:
        stale.unlink()
    rows = []
    for message, subject, html in messages:
        stem = _file_name(message.message_id).removesuffix(".eml")
        write_atomically(folder / f"{stem}.eml", message.data)
        write_atomically(folder / f"{stem}.html", html.encode())
        rows.append(
            f'<li><a href="{stem}.html">{escape(subject)}</a> to {escape(message.recipient)} '
            f'(<a href="{stem}.eml">.eml</a>)</li>'
        )
    index = folder / "index.html"
    write_atomically(index, _preview_page(folder.name, rows).encode())
    return index


def _preview_page(name: str, rows: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Digest preview: {escape(name)}</title></head><body>"
        f"<h1>Digest preview: {len(rows)} message(s)</h1><ul>{''.join(rows)}</ul></body></html>\n"
    )


# -- writing files durably -------------------------------------------------------------------------


# -- the ledger ------------------------------------------------------------------------------------


def _line(kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A ledger line: when, what kind, then ``fields`` in their order."""
    at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"at": at, "kind": kind, **fields}


@attrs.define
class DeliveryReport:
    """What a run of :func:`deliver_pending` did.

    Attributes:
        sent: how many messages were sent (and recorded).
        rejected: ``(recipient, reason)`` of messages refused for good (recorded; not retried).
        deferred: ``(recipient, reason)`` of messages left for the next run.
        stopped: why the run stopped early, if it did.
    """

    sent: int = 0
    rejected: list[tuple[str, str]] = attrs.Factory(list)
    deferred: list[tuple[str, str]] = attrs.Factory(list)
    stopped: str | None = None

    @property
    def ok(self) -> bool:
        """Whether every planned message was delivered."""
        return not self.rejected and not self.deferred and self.stopped is None

    def add(self, other: DeliveryReport) -> None:
        """Count what another run of :func:`deliver_pending` did, too."""
        self.sent += other.sent
        self.rejected += other.rejected
        self.deferred += other.deferred
        self.stopped = self.stopped or other.stopped


def _locked(folder: Path) -> contextlib.AbstractContextManager[None]:
    """Hold ``folder``'s lock file for the block, or raise at once if a run holds it."""
    busy = f"{folder}: another digest run holds the delivery ledger; try again when it has finished"
    return exclusive_lock(folder / "lock", busy)


class Ledger:
    """The delivery ledger in ``folder``; use :meth:`open` to hold it for a run.

    Args:
        folder: the ledger's folder (created on :meth:`open`).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.file = self.folder / "ledger.jsonl"
        self.spool = self.folder / "spool"
        self._lines: list[dict[str, Any]] = []
        self._known: set[str] = set()
        # the spool file of each planned message not yet done, and how many of those each holds
        self._spooled: dict[str, str] = {}
        self._holding: dict[str, int] = {}
        self._fd: int | None = None
        self._syncer: ThreadPoolExecutor | None = None
        self._syncing: Future[None] | None = None

    @classmethod
    @contextmanager
    def open(cls, folder: Path) -> Iterator[Ledger]:
        """Hold the ledger for a run: take its lock (or raise), recover a torn tail, read it.

        Spool files that no pending message needs (written by a plan a crash cut short, or whose
        messages are all done) are removed.

        Raises:
            LogLocked: another run holds it.
            CorruptLog: a line in the middle is not what a run wrote.
        """
        ledger = cls(folder)
        ledger.spool.mkdir(parents=True, exist_ok=True)
        with _locked(ledger.folder):
            ledger._recover()
            ledger._take(ledger._read(strict=True))
            for leftover in ledger.spool.iterdir():
                if f"spool/{leftover.name}" not in ledger._holding:
                    leftover.unlink()
            ledger._fd = os.open(ledger.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                yield ledger
                ledger.settle()
            finally:
                if ledger._syncer is not None:  # a sync in flight finishes before the file closes
                    ledger._syncer.shutdown(wait=True)
                os.close(ledger._fd)
                ledger._fd = None

    @classmethod
    def read_only(cls, folder: Path) -> Ledger:
        """The ledger's lines as they are now, without the lock (a torn tail is skipped)."""
        ledger = cls(folder)
        ledger._take(ledger._read(strict=False) if ledger.file.exists() else [])
        return ledger

    # -- reading -----------------------------------------------------------------------------------

    def _contents(self) -> tuple[bytes, int]:
        """The file's bytes (none if there is no file) and where its last complete line ends."""
        try:
            data = self.file.read_bytes()
        except FileNotFoundError:
            data = b""
        return data, data.rfind(b"\n") + 1

    def _read(self, *, strict: bool) -> list[dict[str, Any]]:
        data, complete = self._contents()
        lines = []
        for number, raw in enumerate(data[:complete].splitlines(), 1):
            try:
                line = orjson.loads(raw)
                if not isinstance(line, dict) or "kind" not in line:
                    raise ValueError("not a ledger line")
            except ValueError as exc:
                if not strict:
                    continue
                raise CorruptLog(
                    f"not a ledger line ({exc}); move the file aside and look",
                    segment=str(self.file),
                    line=number,
                ) from None
            lines.append(line)
        return lines

    def _take(self, lines: list[dict[str, Any]]) -> None:
        """Add lines read or written to what the ledger knows."""
        self._lines.extend(lines)
        for line in lines:
            message_id = line.get("message_id")
            if message_id is None:
                continue
            self._known.add(message_id)
            if line["kind"] == "planned":
                self._spooled[message_id] = line["file"]
                self._holding[line["file"]] = self._holding.get(line["file"], 0) + 1
            elif line["kind"] in ("sent", "rejected"):
                self._done(message_id)

    def _done(self, message_id: str) -> str | None:
        """Note that a message is done; its spool file if no pending message needs it now."""
        file = self._spooled.pop(message_id, None)
        if file is None:
            return None
        self._holding[file] -= 1
        if self._holding[file]:
            return None
        del self._holding[file]
        return file

    def _recover(self) -> None:
        """Move bytes after the last newline (a write cut by a crash) to a quarantine file."""
        data, keep = self._contents()
        if keep == len(data):
            return
        quarantine = self.file.with_name(f"{self.file.name}.{keep}.quarantine")
        write_atomically(quarantine, data[keep:])
        with open(self.file, "r+b") as handle:
            handle.truncate(keep)
            os.fsync(handle.fileno())

    def planned(self) -> dict[str, dict[str, Any]]:
        """Every planned message's line, by Message-ID, in plan order."""
        return {line["message_id"]: line for line in self._lines if line["kind"] == "planned"}

    def done(self) -> dict[str, str]:
        """Message-ID → ``sent`` or ``rejected``, for every message that is done."""
        return {
            line["message_id"]: line["kind"]
            for line in self._lines
            if line["kind"] in ("sent", "rejected")
        }

    def knows(self, message_id: str) -> bool:
        """Whether the message was planned (whatever became of it)."""
        return message_id in self._known

    def pending(self) -> list[dict[str, Any]]:
        """The planned messages not yet sent or rejected, in plan order."""
        done = self.done()
        return [line for mid, line in self.planned().items() if mid not in done]

    def last_window_end(self) -> dt.datetime | None:
        """The end of the latest window planned, if any (``--since-last-send`` starts there)."""
        ends = [line["end"] for line in self._lines if line["kind"] == "window"]
        return dt.datetime.fromisoformat(max(ends)) if ends else None

    # -- writing -----------------------------------------------------------------------------------

    def plan(self, window: dict[str, str], messages: Sequence[Outgoing]) -> int:
        """Spool ``messages`` and record them as planned, in one durable batch.

        The messages go into one spool file, synced once (a file each cost a sync each).
        Messages the ledger already knows are left out. Returns how many were planned.
        """
        fresh = [m for m in messages if not self.knows(m.message_id)]
        if not fresh:
            return 0
        return self.record_planned(window, self.spool_messages(fresh))

    def spool_messages(self, messages: Sequence[Outgoing]) -> list[dict[str, Any]]:
        """Write the messages' bytes into one spool file, durably; their ``planned`` lines, for
        :meth:`record_planned` (which may be called in another process holding the ledger).

        The file is named after the Message-IDs, so planning the same messages again (after a
        crash before their lines were recorded) replaces it.

        Raises:
            DurabilityError: the spool cannot be written.
        """
        ids = hashlib.sha256("\n".join(m.message_id for m in messages).encode())
        name = f"{ids.hexdigest()[:32]}.spool"
        try:
            write_atomically(self.spool / name, b"".join(m.data for m in messages))
        except OSError as exc:
            raise DurabilityError(
                f"{self.spool}: cannot spool the planned messages: {exc}"
            ) from exc
        lines, offset = [], 0
        for message in messages:
            lines.append(
                _line(
                    "planned",
                    {
                        "message_id": message.message_id,
                        "from": message.sender,
                        "to": message.recipient,
                        "smtputf8": message.smtputf8,
                        "file": f"spool/{name}",
                        "offset": offset,
                        "size": len(message.data),
                        "sha256": hashlib.sha256(message.data).hexdigest(),
                    },
                )
            )
            offset += len(message.data)
        return lines

    def record_planned(self, window: dict[str, str], lines: list[dict[str, Any]]) -> int:
        """Record spooled messages (:meth:`spool_messages`) as planned in ``window``, in one
        durable batch. Returns how many."""
        if lines:
            self._append([_line("window", {**window, "messages": len(lines)}), *lines])
        return len(lines)

    def record(self, kind: str, message_id: str, **details: str) -> None:
        """Record that a message was ``sent`` or ``rejected`` (durably, before returning)."""
        self.record_later(kind, message_id, **details)
        self.settle()

    def record_later(self, kind: str, message_id: str, **details: str) -> None:
        """Record that a message was ``sent`` or ``rejected``: durable by the next
        :meth:`settle`, which the caller must wait for before the next message can be accepted.

        The line is written at once and synced in the background, with the spool file removed
        after it once no pending message needs it.
        """
        self.settle()
        line = _line(kind, {"message_id": message_id, **details})
        self._write([line])
        file = self._done(message_id) if kind in ("sent", "rejected") else None
        self._take([line])
        if self._syncer is None:
            self._syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-sync")
        self._syncing = self._syncer.submit(self._make_durable, file)

    def settle(self) -> None:
        """Wait until every line recorded so far is durable.

        Raises:
            DurabilityError: the sync failed.
        """
        syncing, self._syncing = self._syncing, None
        if syncing is not None:
            syncing.result()

    def _make_durable(self, file: str | None) -> None:
        self._sync()
        if file is not None:
            (self.folder / file).unlink(missing_ok=True)

    def _append(self, lines: list[dict[str, Any]]) -> None:
        self.settle()
        self._write(lines)
        self._sync()
        self._take(lines)

    def _write(self, lines: list[dict[str, Any]]) -> None:
        if self._fd is None:
            raise RuntimeError("the ledger is read-only; use Ledger.open() to write")
        data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            raise DurabilityError(f"{self.file}: cannot record deliveries: {exc}") from exc

    def _sync(self) -> None:
        assert self._fd is not None
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            raise DurabilityError(f"{self.file}: cannot record deliveries: {exc}") from exc

    def load(self, line: dict[str, Any]) -> Outgoing:
        """The spooled message a ``planned`` line names, checked against its hash."""
        path = self.folder / line["file"]
        try:
            with open(path, "rb") as handle:
                handle.seek(line.get("offset", 0))
                data = handle.read(line.get("size", -1))  # a line of old: a file each message
        except OSError as exc:
            raise DeliveryError(f"{path}: the spooled message is gone ({exc})") from None
        if hashlib.sha256(data).hexdigest() != line["sha256"]:
            raise DeliveryError(f"{path}: the spooled message changed since it was planned")
        return Outgoing(line["message_id"], line["from"], line["to"], data, line["smtputf8"])


def deliver_pending(
    ledger: Ledger,
    transport: Transport,
    *,
    progress: Callable[[Outgoing, str], None] | None = None,
    lines: Sequence[dict[str, Any]] | None = None,
) -> DeliveryReport:
    """Send every planned message the ledger has not recorded as done, in plan order (or the
    planned ``lines`` given, if not done).

    Each one is recorded ``sent`` once the transport accepts it; one refused for good is
    recorded ``rejected``; one failing for now stays planned for the next run. A ``sent`` record
    is synced while the next message is transmitted, and the transport lets that one be
    accepted only once the record is durable (``before_accept``).
    """
    report = DeliveryReport()
    pending = ledger.pending()
    if lines is not None:
        chosen = {line["message_id"] for line in lines}
        pending = [line for line in pending if line["message_id"] in chosen]
    for index, line in enumerate(pending):
        try:
            message = ledger.load(line)
            transport.deliver(message, ledger.settle)
        except Unavailable as exc:
            report.stopped = str(exc)
            report.deferred += [
                (rest["to"], "not tried: the run stopped") for rest in pending[index:]
            ]
            break
        except Deferred as exc:
            report.deferred.append((line["to"], str(exc)))
            continue
        except DeliveryError as exc:
            ledger.record("rejected", line["message_id"], reason=str(exc))
            report.rejected.append((line["to"], str(exc)))
            continue
        ledger.record_later("sent", line["message_id"])
        report.sent += 1
        if progress is not None:
            progress(message, "sent")
    ledger.settle()
    return report
