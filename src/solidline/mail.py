"""Mail: MIME messages, transports (an outbox folder, SMTP) and the delivery ledger.

**Messages.** :func:`build_message` gives the bytes of one digest mail: multipart/alternative,
plain text first and HTML last, both quoted-printable (7-bit clean), CRLF line ends. The header
section is written here rather than by :mod:`email`'s folder, which in Python 3.11 drops the
spaces between encoded words (``Kính gửi`` arrives as ``Kínhgửi``) and encodes long ASCII headers
such as ``List-Unsubscribe`` into encoded words. Every value is one line (names and subjects are
cleaned of control characters, addresses checked), non-ASCII text becomes RFC 2047 encoded words
of whole characters, and an address with a non-ASCII local part makes the message need SMTPUTF8.

**Transports.** :class:`OutboxTransport` writes ``.eml`` files; :class:`SmtpTransport` speaks
SMTP with SSL or STARTTLS, a login whose password comes only from the environment, SMTPUTF8 when
a message needs it and the server offers it, a rate limit, and retries of temporary (4xx) failures.

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

import base64
import datetime as dt
import email.utils
import fcntl
import hashlib
import os
import re
import smtplib
import ssl
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Any, Protocol

import attrs
import orjson
from markupsafe import escape

from ._errors import CorruptLog, DeliveryError, DurabilityError, LogLocked, SubscriberError
from .config import SmtpConfig

__all__ = [
    "DeliveryReport",
    "Ledger",
    "OutboxTransport",
    "Outgoing",
    "SmtpTransport",
    "Transport",
    "build_message",
    "clean_text",
    "deliver_pending",
    "message_id",
    "normalize_address",
    "parse_sender",
    "write_outbox",
]

_LINE = 78  # the length RFC 5322 asks lines to keep to
_EW_BYTES = 45  # UTF-8 bytes per encoded word: 60 base64 characters, 72 with the =?utf-8?b??=
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")


# -- addresses and header text --------------------------------------------------------------------

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]"
_LOCAL = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_UNSAFE_CATEGORIES = ("C", "Z")  # control, format, surrogate, unassigned; separators


def normalize_address(address: str) -> str:
    """An email address checked and made canonical: the domain in lower-case ASCII (IDNA).

    Quoted local parts and address literals are refused; a non-ASCII local part is allowed
    (it needs a server that offers SMTPUTF8).

    Raises:
        SubscriberError: not an address mail can be sent to.
    """
    if not isinstance(address, str):
        raise SubscriberError(f"an address must be text, got {type(address).__name__}")
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise SubscriberError(f"{address!r} is not an email address (expected name@domain)")
    if any(unicodedata.category(c)[0] in _UNSAFE_CATEGORIES for c in local if ord(c) > 127) or (
        not _LOCAL.fullmatch(local)
    ):
        raise SubscriberError(f"{address!r} is not an email address: bad characters before '@'")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise SubscriberError(f"{address!r} is not an email address: bad domain") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise SubscriberError(
            f"{address!r} is not an email address: the domain needs a dot and only letters, "
            "digits and inner hyphens"
        )
    if len(local.encode()) > 64 or len(local.encode()) + len(ascii_domain) + 1 > 254:
        raise SubscriberError(f"{address!r} is too long for an email address")
    return f"{local}@{ascii_domain}"


def clean_text(text: str) -> str:
    """Text safe for one line of a header: control and separator characters become spaces."""
    spaced = "".join(
        " " if unicodedata.category(c)[0] in _UNSAFE_CATEGORIES and c != "\u200d" else c
        for c in text
    )
    return " ".join(spaced.split())


# -- messages --------------------------------------------------------------------------------------


@attrs.frozen
class Outgoing:
    """A message ready for a transport.

    Attributes:
        message_id: its ``Message-ID`` (with the angle brackets).
        sender: the envelope sender (an address).
        recipient: the envelope recipient (an address).
        data: the whole message, CRLF line ends.
        smtputf8: whether it needs a server that offers SMTPUTF8 (a non-ASCII address).
    """

    message_id: str
    sender: str
    recipient: str
    data: bytes
    smtputf8: bool = False


def parse_sender(sender: str) -> tuple[str | None, str]:
    """``"The record <digest@example.org>"`` → ``("The record", "digest@example.org")``.

    Raises:
        SubscriberError: the address in it is not one mail can come from.
    """
    name, address = email.utils.parseaddr(sender.replace("\r", " ").replace("\n", " "))
    if not address:
        raise SubscriberError(f"sender {sender!r} holds no address ('Name <name@domain>')")
    return (clean_text(name) or None), normalize_address(address)


def message_id(window_label: str, address: str, domain: str, list_id: str = "") -> str:
    """The Message-ID of one subscriber's digest of one window: the same on every run.

    ``<digest.{window start}-{window end}.{16 hex of sha256(list id, address)}@{domain}>``.
    """
    digest = hashlib.sha256(f"{list_id}\0{address}".encode()).hexdigest()[:16]
    return f"<digest.{window_label}.{digest}@{domain}>"


def build_message(
    *,
    sender: tuple[str | None, str],
    recipient: tuple[str | None, str],
    subject: str,
    text: str,
    html: str,
    date: dt.datetime,
    message_id: str,
    list_id: str,
    unsubscribe_url: str,
    unsubscribe_mailto: str,
    reply_to: str | None = None,
) -> Outgoing:
    """One digest mail as bytes.

    Args:
        sender: (name, address) of ``From``; the address is also the envelope sender.
        recipient: (name, address) of ``To``.
        subject: the subject (made one line here, whatever it holds).
        text: the plain text body.
        html: the HTML body.
        date: the ``Date`` header.
        message_id: the ``Message-ID``, angle brackets included.
        list_id: the ``List-Id`` (``digest.example.org``).
        unsubscribe_url: the https one-click unsubscribe link.
        unsubscribe_mailto: the ``mailto:`` unsubscribe link.
        reply_to: an address for ``Reply-To``.
    """
    utf8 = not (sender[1].isascii() and recipient[1].isascii())
    headers = [
        _header("From", _mailbox(*sender)),
        _header("To", _mailbox(*recipient)),
        _header("Subject", _unstructured(subject)),
        _header("Date", [email.utils.format_datetime(date.astimezone(dt.UTC))]),
        _header("Message-ID", [clean_text(message_id)]),
    ]
    if reply_to:
        headers.append(_header("Reply-To", _mailbox(*parse_sender(reply_to))))
    headers += [
        _header("List-Id", [f"<{clean_text(list_id)}>"]),
        _header(
            "List-Unsubscribe", [f"<{_ascii(unsubscribe_url)}>,", f"<{_ascii(unsubscribe_mailto)}>"]
        ),
        _header("List-Unsubscribe-Post", ["List-Unsubscribe=One-Click"]),
    ]
    body = _body(text, html, message_id)
    data = "".join(headers).encode("utf-8" if utf8 else "ascii") + body
    return Outgoing(message_id, sender[1], recipient[1], data, utf8)


def _body(text: str, html: str, message_id: str) -> bytes:
    body = EmailMessage()
    body.set_content(text, cte="quoted-printable")
    body.add_alternative(html, subtype="html", cte="quoted-printable")
    for part in body.iter_parts():
        del part["MIME-Version"]
    # a fixed boundary keeps the bytes the same on every run; "=_" cannot occur in QP text
    body.set_boundary("=_solidline_" + hashlib.sha256(message_id.encode()).hexdigest()[:24])
    return body.as_bytes(policy=SMTP_POLICY)


def _ascii(value: str) -> str:
    value = clean_text(value)
    if not value.isascii():
        raise ValueError(f"{value!r} must be ASCII (percent-encode it)")
    return value


def _header(name: str, words: Sequence[str]) -> str:
    """``Name: word word …`` folded between words to keep lines near 78 characters."""
    lines = [f"{name}:"]
    for word in words:
        if len(lines[-1]) + 1 + len(word) > _LINE and lines[-1] != f"{name}:":
            lines.append(f" {word}")
        else:
            lines[-1] += f" {word}"
    return "\r\n".join(lines) + "\r\n"


def _unstructured(text: str) -> list[str]:
    """Words of a one-line text; all encoded words when any is not plain ASCII."""
    words = clean_text(text).split(" ")
    plain = all(w.isascii() and "=?" not in w and len(w) <= _LINE - 12 for w in words)
    return words if plain else _encoded_words(" ".join(words))


def _mailbox(name: str | None, address: str) -> list[str]:
    name = clean_text(name or "")
    if not name:
        return [f"<{address}>"]
    if name.isascii() and len(name) <= 60 and "=?" not in name:
        words = name.split(" ") if _ATOM_PHRASE.fullmatch(name) else [_quoted(name)]
        return [*words, f"<{address}>"]
    return [*_encoded_words(name), f"<{address}>"]


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _encoded_words(text: str) -> list[str]:
    """RFC 2047 ``B`` encoded words of whole characters (and whole clusters where they fit)."""
    chunks: list[str] = []
    current = ""
    for cluster in _clusters(text):
        if len((current + cluster).encode()) <= _EW_BYTES:
            current += cluster
            continue
        if current:
            chunks.append(current)
        current = ""
        for char in cluster:  # a cluster longer than a word: split between code points
            if len((current + char).encode()) > _EW_BYTES:
                chunks.append(current)
                current = ""
            current += char
    if current:
        chunks.append(current)
    return [f"=?utf-8?b?{base64.b64encode(c.encode()).decode('ascii')}?=" for c in chunks]


def _clusters(text: str) -> Iterator[str]:
    """A base character with the combining marks after it (Lao vowels, Vietnamese tones)."""
    cluster = ""
    for char in text:
        if cluster and (
            unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Mc", "Me")
        ):
            cluster += char
            continue
        if cluster:
            yield cluster
        cluster = char
    if cluster:
        yield cluster


# -- transports ------------------------------------------------------------------------------------


class _Deferred(DeliveryError):
    """A temporary failure for one message: it stays planned and is tried on the next run."""


class _Unavailable(DeliveryError):
    """The transport cannot send at all now (no connection, login refused): stop the run."""


class Transport(Protocol):
    """Delivers :class:`Outgoing` messages.

    ``deliver`` raises :class:`~solidline.DeliveryError` when the message cannot be delivered.
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
            raise _Unavailable(f"cannot write to the outbox {self.folder}: {exc}") from None

    def close(self) -> None:
        pass


class SmtpTransport:
    """Delivers over SMTP, one connection reused for the run.

    Args:
        config: host, port, security, login and the rate and retry settings.
        password: the login password (read from the environment by the caller); never logged.
        ssl_context: the TLS context (default: the system's trust, or ``config.ca_file``).
        sleep: waits a number of seconds (tests pass their own).
        clock: a monotonic clock in seconds.
    """

    def __init__(
        self,
        config: SmtpConfig,
        *,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if config.username and not password:
            raise DeliveryError(
                f"SMTP login as {config.username!r} needs a password: set the environment "
                f"variable {config.password_env}"
            )
        self.config = config
        self._password = password
        self._context = ssl_context or ssl.create_default_context(cafile=config.ca_file)
        self._sleep = sleep
        self._clock = clock
        self._connection: smtplib.SMTP | None = None
        self._next_turn = 0.0

    def __repr__(self) -> str:  # no password here, ever
        c = self.config
        return f"SmtpTransport({c.host}:{self._port()}, {c.security}, user={c.username!r})"

    def deliver(self, message: Outgoing) -> None:
        """Send one message, retrying temporary failures with a doubling delay.

        Raises:
            DeliveryError: refused for good (5xx, or it needs SMTPUTF8 and the server lacks it);
                a temporary failure that outlasted the retries; or no connection at all.
        """
        delay, failure, reachable = self.config.retry_delay, "", True
        for attempt in range(self.config.retries + 1):
            if attempt:
                self._sleep(delay)
                delay *= 2
            self._wait_turn()
            try:
                connection = self._connected()
            except (smtplib.SMTPException, OSError) as exc:
                failure, reachable = f"cannot reach {self._where()}: {_describe(exc)}", False
                continue
            reachable = True
            try:
                self._send(connection, message)
                return
            except smtplib.SMTPRecipientsRefused as exc:
                code, failure = _refusal(exc, message.recipient)
            except smtplib.SMTPResponseException as exc:
                code, failure = exc.smtp_code, _reply(exc.smtp_code, exc.smtp_error)
            except (smtplib.SMTPException, OSError) as exc:
                self._drop()
                code, failure = 0, f"connection lost: {_describe(exc)}"
            if not (code == 0 or 400 <= code < 500):
                raise DeliveryError(f"{message.recipient}: refused by the server: {failure}")
        if not reachable:
            raise _Unavailable(failure)
        raise _Deferred(
            f"{message.recipient}: still failing after "
            f"{self.config.retries + 1} attempts: {failure}"
        )

    def _send(self, connection: smtplib.SMTP, message: Outgoing) -> None:
        options: list[str] = []
        if message.smtputf8:
            if not connection.has_extn("smtputf8"):
                raise DeliveryError(
                    f"{message.recipient}: the address needs SMTPUTF8, which "
                    f"{self.config.host} does not offer"
                )
            options = ["SMTPUTF8", *(["BODY=8BITMIME"] if connection.has_extn("8bitmime") else [])]
        connection.sendmail(message.sender, [message.recipient], message.data, options)

    def _wait_turn(self) -> None:
        now = self._clock()
        if now < self._next_turn:
            self._sleep(self._next_turn - now)
            now = self._next_turn
        self._next_turn = now + 1.0 / self.config.rate_per_second

    def _connected(self) -> smtplib.SMTP:
        """The open connection, or a new one; a refused login or TLS stops the run at once."""
        if self._connection is None:
            try:
                self._connection = self._connect()
            except smtplib.SMTPAuthenticationError as exc:
                raise _Unavailable(
                    f"{self._where()} refused the login as {self.config.username!r}: "
                    f"{_reply(exc.smtp_code, exc.smtp_error)}"
                ) from None
            except (ssl.SSLError, smtplib.SMTPNotSupportedError) as exc:
                raise _Unavailable(f"{self._where()}: {_describe(exc)}") from None
        return self._connection

    def _where(self) -> str:
        return f"{self.config.host}:{self._port()}"

    def _port(self) -> int:
        default = {"ssl": 465, "starttls": 587, "none": 25}[self.config.security]
        return self.config.port or default

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        connection: smtplib.SMTP
        if config.security == "ssl":
            connection = smtplib.SMTP_SSL(
                config.host, self._port(), timeout=config.timeout, context=self._context
            )
        else:
            connection = smtplib.SMTP(config.host, self._port(), timeout=config.timeout)
        try:
            connection.ehlo()
            if config.security == "starttls":
                if not connection.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError(
                        f"{config.host} does not offer STARTTLS (security = 'starttls')"
                    )
                connection.starttls(context=self._context)
                connection.ehlo()
            if config.username:
                _login(connection, config.username, self._password or "")
        except BaseException:
            connection.close()
            raise
        return connection

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        """Say QUIT and close the connection."""
        if self._connection is not None:
            with suppress(smtplib.SMTPException, OSError):
                self._connection.quit()
            self._drop()


def _login(connection: smtplib.SMTP, user: str, password: str) -> None:
    if (user + password).isascii():
        connection.login(user, password)
        return
    # smtplib encodes credentials as ASCII; AUTH PLAIN takes UTF-8 (RFC 4616)
    if "plain" not in connection.esmtp_features.get("auth", "").lower().split():
        raise smtplib.SMTPAuthenticationError(504, b"non-ASCII credentials need AUTH PLAIN")
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
    code, reply = connection.docmd("AUTH", f"PLAIN {token}")
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, reply)


def _refusal(exc: smtplib.SMTPRecipientsRefused, recipient: str) -> tuple[int, str]:
    code, reply = next(iter(exc.recipients.values()), (550, b"refused"))
    return code, _reply(code, reply)


def _describe(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__


def _reply(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return f"{code} {' '.join(text.split())}"


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
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Digest preview: {escape(folder.name)}</title></head><body>"
        f"<h1>Digest preview: {len(rows)} message(s)</h1><ul>{''.join(rows)}</ul></body></html>\n"
    )
    write_atomically(index, page.encode())
    return index


# -- the ledger ------------------------------------------------------------------------------------


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` by a synced temporary file renamed over it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
        lock = os.open(ledger.folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LogLocked(
                    f"{ledger.folder}: another digest run holds the delivery ledger; "
                    "try again when it has finished"
                ) from None
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
        finally:
            os.close(lock)

    @classmethod
    def read_only(cls, folder: Path) -> Ledger:
        """The ledger's lines as they are now, without the lock (a torn tail is skipped)."""
        ledger = cls(folder)
        ledger._lines = ledger._read(strict=False) if ledger.file.exists() else []
        return ledger

    # -- reading -----------------------------------------------------------------------------------

    def _read(self, *, strict: bool) -> list[dict[str, Any]]:
        try:
            data = self.file.read_bytes()
        except FileNotFoundError:
            return []
        lines = []
        complete = data[: data.rfind(b"\n") + 1]
        for number, raw in enumerate(complete.splitlines(), 1):
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
        try:
            data = self.file.read_bytes()
        except FileNotFoundError:
            return
        keep = data.rfind(b"\n") + 1
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
        lines = [{"at": _now(), "kind": "window", **window, "messages": len(fresh)}]
        try:
            for message in fresh:
                name = _file_name(message.message_id)
                write_atomically(self.spool / name, message.data)
                lines.append(
                    {
                        "at": _now(),
                        "kind": "planned",
                        "message_id": message.message_id,
                        "from": message.sender,
                        "to": message.recipient,
                        "smtputf8": message.smtputf8,
                        "file": f"spool/{name}",
                        "sha256": hashlib.sha256(message.data).hexdigest(),
                    }
                )
            _fsync_folder(self.spool)
        except OSError as exc:
            raise DurabilityError(
                f"{self.spool}: cannot spool the planned messages: {exc}"
            ) from exc
        self._append(lines)
        return len(fresh)

    def record(self, kind: str, message_id: str, **details: str) -> None:
        """Record that a message was ``sent`` or ``rejected`` (durably)."""
        self._append([{"at": _now(), "kind": kind, "message_id": message_id, **details}])
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
        except _Unavailable as exc:
            report.stopped = str(exc)
            report.deferred += [
                (rest["to"], "not tried: the run stopped") for rest in pending[index:]
            ]
            break
        except _Deferred as exc:
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
