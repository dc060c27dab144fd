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
      spool/           the planned messages' bytes, one file each, until sent

A run *plans* (spools each message, fsyncs, then appends one batch of ``planned`` lines), then for
each planned message not yet done *sends* it and *records* ``sent`` (fdatasync). Killed anywhere
and run again, it sends what is planned and not recorded: every digest arrives, and only a message
whose SMTP accept raced the kill can arrive twice, with the same bytes and the same Message-ID.
The ledger is a small file of its own rather than an :class:`~solidline.EventLog`: delivery lines
are not events of the record, and need no types, entity checks or hash chain.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import attrs
import orjson
from markupsafe import escape

from ._errors import CorruptLog, DeliveryError, DurabilityError
from ._files import exclusive_lock, fsync_folder, write_atomically
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
    :class:`~solidline.DeliveryError` when the message cannot be delivered.
    """

    def deliver(self, message: Outgoing) -> None: ...

    def close(self) -> None: ...


def _file_name(message_id: str) -> str:
    return hashlib.sha256(message_id.encode()).hexdigest()[:32] + ".eml"


class OutboxTransport:
    """Delivers into a folder: one ``.eml`` file per message, written atomically.

    The file is named after the Message-ID, so delivering a message again replaces its file.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def deliver(self, message: Outgoing) -> None:
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
        self._fd: int | None = None

    @classmethod
    @contextmanager
    def open(cls, folder: Path) -> Iterator[Ledger]:
        """Hold the ledger for a run: take its lock (or raise), recover a torn tail, read it.

        Raises:
            LogLocked: another run holds it.
            CorruptLog: a line in the middle is not what a run wrote.
        """
        ledger = cls(folder)
        ledger.spool.mkdir(parents=True, exist_ok=True)
        with _locked(ledger.folder):
            ledger._recover()
            for leftover in ledger.spool.glob(".*.tmp"):  # a spool write cut by a crash
                leftover.unlink()
            ledger._lines = ledger._read(strict=True)
            ledger._fd = os.open(ledger.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                yield ledger
            finally:
                os.close(ledger._fd)
                ledger._fd = None

    @classmethod
    def read_only(cls, folder: Path) -> Ledger:
        """The ledger's lines as they are now, without the lock (a torn tail is skipped)."""
        ledger = cls(folder)
        ledger._lines = ledger._read(strict=False) if ledger.file.exists() else []
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
        return any(line.get("message_id") == message_id for line in self._lines)

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

        Messages the ledger already knows are left out. Returns how many were planned.
        """
        fresh = [m for m in messages if not self.knows(m.message_id)]
        if not fresh:
            return 0
        lines = [_line("window", {**window, "messages": len(fresh)})]
        try:
            lines += [self._spool(message) for message in fresh]
            fsync_folder(self.spool)
        except OSError as exc:
            raise DurabilityError(
                f"{self.spool}: cannot spool the planned messages: {exc}"
            ) from exc
        self._append(lines)
        return len(fresh)

    def _spool(self, message: Outgoing) -> dict[str, Any]:
        """Write the message's bytes to the spool; its ``planned`` line."""
        name = _file_name(message.message_id)
        write_atomically(self.spool / name, message.data)
        return _line(
            "planned",
            {
                "message_id": message.message_id,
                "from": message.sender,
                "to": message.recipient,
                "smtputf8": message.smtputf8,
                "file": f"spool/{name}",
                "sha256": hashlib.sha256(message.data).hexdigest(),
            },
        )

    def record(self, kind: str, message_id: str, **details: str) -> None:
        """Record that a message was ``sent`` or ``rejected`` (durably)."""
        self._append([_line(kind, {"message_id": message_id, **details})])
        if kind in ("sent", "rejected"):
            (self.spool / _file_name(message_id)).unlink(missing_ok=True)

    def _append(self, lines: list[dict[str, Any]]) -> None:
        if self._fd is None:
            raise RuntimeError("the ledger is read-only; use Ledger.open() to write")
        data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            os.fdatasync(self._fd)
        except OSError as exc:
            raise DurabilityError(f"{self.file}: cannot record deliveries: {exc}") from exc
        self._lines.extend(lines)

    def load(self, line: dict[str, Any]) -> Outgoing:
        """The spooled message a ``planned`` line names, checked against its hash."""
        path = self.folder / line["file"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DeliveryError(f"{path}: the spooled message is gone ({exc})") from None
        if hashlib.sha256(data).hexdigest() != line["sha256"]:
            raise DeliveryError(f"{path}: the spooled message changed since it was planned")
        return Outgoing(line["message_id"], line["from"], line["to"], data, line["smtputf8"])


def deliver_pending(
    ledger: Ledger, transport: Transport, *, progress: Callable[[Outgoing, str], None] | None = None
) -> DeliveryReport:
    """Send every planned message the ledger has not recorded as done, in plan order.

    Each one is recorded ``sent`` right after the transport accepts it; one refused for good is
    recorded ``rejected``; one failing for now stays planned for the next run.
    """
    report = DeliveryReport()
    pending = ledger.pending()
    for index, line in enumerate(pending):
        try:
            message = ledger.load(line)
            transport.deliver(message)
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
        ledger.record("sent", line["message_id"])
        report.sent += 1
        if progress is not None:
            progress(message, "sent")
    return report
