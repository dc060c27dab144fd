"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1, on a free port, in a thread.

``smtp_server(...)`` starts one and yields a :class:`Server` whose ``handler`` records what
arrives. Variants: SMTPUTF8 or not, AUTH (a user and password), STARTTLS or SSL on connect (with
a self-signed certificate made by the ``openssl`` command), scripted replies to DATA (``451``
then ``250``), refused recipients.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import attrs
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER = "digest@example.org"
PASSWORD = "s3cret-smtp-pässword"


@attrs.frozen
class Received:
    """One message the server accepted."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    smtputf8: bool
    authenticated: bool

    def parsed(self) -> EmailMessage:
        message = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(message, EmailMessage)
        return message

    @property
    def message_id(self) -> str:
        return str(self.parsed()["Message-ID"])


class Recorder:
    """An aiosmtpd handler that keeps what it accepts.

    Args:
        replies: replies to give to DATA before accepting, one per message (``"451 …"``).
        refuse: recipient addresses to refuse with 550.
        on_accept: called with each accepted message after it is kept and before the client
            hears "250" (a test can kill the client there: an accept that races a crash).
    """

    def __init__(
        self,
        replies: list[str] | None = None,
        refuse: set[str] | None = None,
        on_accept: Callable[[Received], None] | None = None,
    ) -> None:
        self.replies = list(replies or [])
        self.refuse = refuse or set()
        self.on_accept = on_accept
        self.received: list[Received] = []
        self.attempts = 0
        self.lock = threading.Lock()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.attempts += 1
            if self.replies:
                return self.replies.pop(0)
            received = Received(
                envelope.mail_from,
                tuple(envelope.rcpt_tos),
                envelope.original_content,
                envelope.smtp_utf8,
                bool(session.authenticated),
            )
            self.received.append(received)
        if self.on_accept is not None:
            self.on_accept(received)
        return "250 2.0.0 Message accepted for delivery"

    def message_ids(self) -> list[str]:
        with self.lock:
            return [r.message_id for r in self.received]


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@attrs.frozen
class Server:
    host: str
    port: int
    handler: Recorder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1: (cert.pem, key.pem), by openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@contextlib.contextmanager
def smtp_server(
    handler: Recorder | None = None,
    *,
    smtputf8: bool = False,
    auth: bool = False,
    tls: str | None = None,
    certificate: tuple[Path, Path] | None = None,
) -> Iterator[Server]:
    """Run aiosmtpd on 127.0.0.1 for the ``with`` block.

    Args:
        handler: the recorder (a fresh one by default).
        smtputf8: offer SMTPUTF8.
        auth: offer AUTH and require it (``USER``/``PASSWORD``).
        tls: ``"starttls"`` (required before MAIL) or ``"ssl"`` (TLS on connect).
        certificate: (cert, key) files, needed for ``tls``.
    """
    handler = handler or Recorder()
    options: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
    if auth:
        # aiosmtpd counts only STARTTLS as TLS when offering AUTH, not TLS on connect
        options.update(
            authenticator=_authenticator, auth_required=True, auth_require_tls=tls == "starttls"
        )
    if tls is not None:
        assert certificate is not None
        context = _server_context(*certificate)
        if tls == "starttls":
            options.update(tls_context=context, require_starttls=True)
        else:
            options.update(ssl_context=context)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield Server("127.0.0.1", port, handler)
    finally:
        controller.stop()
