"""SMTP: the transport that hands digests to a mail server.

:class:`SmtpTransport` speaks SMTP with SSL or STARTTLS, a login whose password comes only from
the environment, SMTPUTF8 when a message needs it and the server offers it, a rate limit, and
retries of temporary (4xx) failures. It keeps the :class:`~solidline.delivery.Transport`
contract: a failure for now is :class:`~solidline.delivery.Deferred`, no connection or a refused
login is :class:`~solidline.delivery.Unavailable`, a refusal for good any other
:class:`~solidline.DeliveryError`.
"""

from __future__ import annotations

import base64
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from contextlib import suppress

from ._errors import DeliveryError
from .config import SmtpConfig
from .delivery import Deferred, Unavailable
from .mail import Outgoing

__all__ = ["SmtpTransport"]


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

    def deliver(
        self, message: Outgoing, before_accept: Callable[[], None] | None = None
    ) -> None:
        """Send one message, retrying temporary failures with a doubling delay.

        ``before_accept`` is called once the message's body is on its way and before the final
        "." that lets the server accept it; if it raises, the connection is dropped without that
        "." (the server discards the message) and the error propagates.

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
            outcome = self._attempt(message, before_accept)
            if outcome is None:
                return
            reachable, failure = outcome
        if not reachable:
            raise Unavailable(failure)
        raise Deferred(
            f"{message.recipient}: still failing after "
            f"{self.config.retries + 1} attempts: {failure}"
        )

    def _attempt(
        self, message: Outgoing, before_accept: Callable[[], None] | None
    ) -> tuple[bool, str] | None:
        """One try: None once sent, else whether the server was reached and what failed.

        Raises:
            DeliveryError: refused for good.
        """
        try:
            connection = self._connected()
        except (smtplib.SMTPException, OSError) as exc:
            return False, f"cannot reach {self._where()}: {_describe(exc)}"
        try:
            self._send(connection, message, before_accept)
            return None
        except _Withheld as withheld:
            self._drop()
            raise withheld.cause from None
        except smtplib.SMTPRecipientsRefused as exc:
            code, failure = _refusal(exc, message.recipient)
        except smtplib.SMTPResponseException as exc:
            code, failure = exc.smtp_code, _reply(exc.smtp_code, exc.smtp_error)
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            code, failure = 0, f"connection lost: {_describe(exc)}"
        if not (code == 0 or 400 <= code < 500):
            raise DeliveryError(f"{message.recipient}: refused by the server: {failure}")
        return True, failure

    def _send(
        self,
        connection: smtplib.SMTP,
        message: Outgoing,
        before_accept: Callable[[], None] | None,
    ) -> None:
        options: list[str] = []
        if message.smtputf8:
            if not connection.has_extn("smtputf8"):
                raise DeliveryError(
                    f"{message.recipient}: the address needs SMTPUTF8, which "
                    f"{self.config.host} does not offer"
                )
            options = ["SMTPUTF8", *(["BODY=8BITMIME"] if connection.has_extn("8bitmime") else [])]
        _sendmail(connection, message, options, before_accept)

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
                raise Unavailable(
                    f"{self._where()} refused the login as {self.config.username!r}: "
                    f"{_reply(exc.smtp_code, exc.smtp_error)}"
                ) from None
            except (ssl.SSLError, smtplib.SMTPNotSupportedError) as exc:
                raise Unavailable(f"{self._where()}: {_describe(exc)}") from None
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
            # the final "." goes in a write of its own (see _sendmail): without this, Nagle's
            # algorithm holds it until the server acknowledges the body (up to 40 ms a message)
            if connection.sock is not None:
                connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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


class _Withheld(Exception):
    """``before_accept`` raised ``cause``: the message was not let through."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


_LINE_STARTING_WITH_A_DOT = re.compile(rb"(?m)^\.")


def _sendmail(
    connection: smtplib.SMTP,
    message: Outgoing,
    options: list[str],
    before_accept: Callable[[], None] | None,
) -> None:
    """``smtplib.SMTP.sendmail`` for one recipient and bytes, step by step, so that
    ``before_accept`` runs between the body and the final "." (smtplib sends both at once).
    Replies and errors are sendmail's."""
    connection.ehlo_or_helo_if_needed()
    esmtp: list[str] = []
    if connection.does_esmtp:
        if connection.has_extn("size"):
            esmtp.append(f"size={len(message.data)}")
        esmtp += options
    code, reply = connection.mail(message.sender, esmtp)
    if code != 250:
        _give_up(connection, code)
        raise smtplib.SMTPSenderRefused(code, reply, message.sender)
    code, reply = connection.rcpt(message.recipient)
    if code not in (250, 251):
        _give_up(connection, code)
        raise smtplib.SMTPRecipientsRefused({message.recipient: (code, reply)})
    code, reply = connection.docmd("data")
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    body = _LINE_STARTING_WITH_A_DOT.sub(b"..", message.data)
    connection.send(body if body.endswith(b"\r\n") else body + b"\r\n")
    if before_accept is not None:
        try:
            before_accept()
        except BaseException as exc:
            raise _Withheld(exc) from exc
    connection.send(b".\r\n")
    code, reply = connection.getreply()
    if code != 250:
        _give_up(connection, code)
        raise smtplib.SMTPDataError(code, reply)


def _give_up(connection: smtplib.SMTP, code: int) -> None:
    """What sendmail does after a refusal: close on 421, else reset for the next message."""
    if code == 421:
        connection.close()
    else:
        with suppress(smtplib.SMTPServerDisconnected):
            connection.rset()


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
