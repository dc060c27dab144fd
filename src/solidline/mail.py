"""Mail: the bytes of one digest message, and the addresses and header text in it.

:func:`build_message` gives the bytes of one digest mail: multipart/alternative, plain text first
and HTML last, both quoted-printable (7-bit clean), CRLF line ends. The header section is written
here rather than by :mod:`email`'s folder, which in Python 3.11 drops the spaces between encoded
words (``Kính gửi`` arrives as ``Kínhgửi``) and encodes long ASCII headers such as
``List-Unsubscribe`` into encoded words. Every value is one line (names and subjects are cleaned
of control characters, addresses checked), non-ASCII text becomes RFC 2047 encoded words of whole
characters, and an address with a non-ASCII local part makes the message need SMTPUTF8.

Where the bytes go (an outbox folder, the delivery ledger, SMTP) is :mod:`solidline.delivery`
and :mod:`solidline.smtp`.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import functools
import hashlib
import re
import unicodedata
from collections.abc import Iterator, Sequence
from email import quoprimime

import attrs

from ._errors import SubscriberError

__all__ = [
    "Outgoing",
    "build_message",
    "clean_text",
    "message_id",
    "normalize_address",
    "parse_sender",
]

_LINE = 78  # the length RFC 5322 asks lines to keep to
_QP_LINE = 78  # email.policy.default.max_line_length: where EmailMessage.set_content wraps
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
    _check_local_part(address, local)
    ascii_domain = _ascii_domain(address, domain)
    if len(local.encode()) > 64 or len(local.encode()) + len(ascii_domain) + 1 > 254:
        raise SubscriberError(f"{address!r} is too long for an email address")
    return f"{local}@{ascii_domain}"


def _check_local_part(address: str, local: str) -> None:
    if any(unicodedata.category(c)[0] in _UNSAFE_CATEGORIES for c in local if ord(c) > 127) or (
        not _LOCAL.fullmatch(local)
    ):
        raise SubscriberError(f"{address!r} is not an email address: bad characters before '@'")


def _ascii_domain(address: str, domain: str) -> str:
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
    return ascii_domain


def clean_text(text: str) -> str:
    """Text safe for one line of a header: control and separator characters become spaces."""
    spaced = "".join(
        " " if unicodedata.category(c)[0] in _UNSAFE_CATEGORIES and c != "\u200d" else c
        for c in text
    )
    return " ".join(spaced.split())


def parse_sender(sender: str) -> tuple[str | None, str]:
    """``"The record <digest@example.org>"`` → ``("The record", "digest@example.org")``.

    Raises:
        SubscriberError: the address in it is not one mail can come from.
    """
    name, address = email.utils.parseaddr(sender.replace("\r", " ").replace("\n", " "))
    if not address:
        raise SubscriberError(f"sender {sender!r} holds no address ('Name <name@domain>')")
    return (clean_text(name) or None), normalize_address(address)


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
    """The MIME body: the bytes :mod:`email` writes for an ``EmailMessage`` with ``text`` set
    as content and ``html`` added as the alternative, both quoted-printable, with SMTP's line
    ends. Written out directly, since the generator costs as much as the encoding itself."""
    # a fixed boundary keeps the bytes the same on every run; "=_" cannot occur in QP text
    boundary = "=_solidline_" + hashlib.sha256(message_id.encode()).hexdigest()[:24]
    return (
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'
        f"{_part('plain', text, boundary)}{_part('html', html, boundary)}--{boundary}--\r\n"
    ).encode("ascii")


def _part(subtype: str, content: str, boundary: str) -> str:
    """One alternative, encoded as ``email.contentmanager`` does: its lines joined by LF and
    quoted-printable wrapped at the default policy's 78 characters (each line on its own, so
    line by line is the same), lines ended by CRLF."""
    return (
        f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{_encoded(content)}\r\n"
    )


# characters: the lines of a digest part are encoded and remembered in blocks about this long
_BLOCK = 4096


def _encoded(content: str, block: int = _BLOCK) -> str:
    """``content``'s lines (as split in UTF-8) each encoded by :func:`_quoted_printable`.

    Cut into blocks of whole lines, each remembered: the messages of one digest differ only
    in a few lines (salutation, unsubscribe link), so most blocks are found again, and a
    lookup a block costs less than one a line. A block ends after a line feed, so that no line
    (nor a CR LF) spans two.
    """
    if not content:
        return _quoted_printable(b"")  # no text at all is one empty line
    blocks, start = [], 0
    while start < len(content):
        cut = content.find("\n", start + block)
        end = len(content) if cut < 0 else cut + 1
        blocks.append(_encoded_block(content[start:end]))
        start = end
    return "".join(blocks)


@functools.lru_cache(maxsize=1024)
def _encoded_block(block: str) -> str:
    return "".join(_quoted_printable(line) for line in block.encode().splitlines() or [b""])


@functools.lru_cache(maxsize=16_384)
def _quoted_printable(line: bytes) -> str:
    """A line encoded, CRLF after it. Remembered: the messages of one digest share most lines."""
    return quoprimime.body_encode(line.decode("latin-1"), _QP_LINE, eol="\r\n") + "\r\n"


# -- header values ---------------------------------------------------------------------------------


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
