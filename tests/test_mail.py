"""mail.py, smtp.py and delivery.py: the messages' bytes, the SMTP transport against a real
server, the ledger."""

from __future__ import annotations

import datetime as dt
import email.header
import hashlib
import os
import smtplib
import time
from collections.abc import Iterator
from email import policy
from email.errors import NonASCIILocalPartDefect
from email.message import EmailMessage
from email.parser import BytesParser, Parser
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import solidline.mail as mail_module
from smtp_server import PASSWORD, USER, Recorder, free_port, make_certificate, smtp_server
from solidline import (
    CorruptLog,
    DeliveryError,
    DurabilityError,
    LogLocked,
    SubscriberError,
)
from solidline.config import SmtpConfig
from solidline.delivery import Ledger, OutboxTransport, deliver_pending, write_outbox
from solidline.mail import (
    Outgoing,
    build_message,
    clean_text,
    message_id,
    normalize_address,
    parse_sender,
)
from solidline.smtp import SmtpTransport

WINDOW_END = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
EXPECTED_HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
]


def make(
    name: str | None = "Subscriber One",
    address: str = "subscriber.one@example.org",
    subject: str = "The record: weekly digest, 23–29 November 2026",
    **extra: Any,
) -> Outgoing:
    mid = message_id("20261123-20261130", address, "example.org", "digest.example.org")
    fields: dict[str, Any] = {
        "sender": ("The record", "digest@example.org"),
        "recipient": (name, address),
        "subject": subject,
        "text": "Dear Subscriber One,\n\nOne new entry.\n",
        "html": "<!DOCTYPE html><html><body><p>Dear Subscriber One,</p></body></html>\n",
        "date": WINDOW_END,
        "message_id": mid,
        "list_id": "digest.example.org",
        "unsubscribe_url": "https://example.org/record/unsubscribe?address=x&token=t",
        "unsubscribe_mailto": "mailto:unsubscribe@example.org?subject=unsubscribe%20t",
    }
    return build_message(**(fields | extra))


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def parse_utf8(data: bytes) -> EmailMessage:
    """A message with UTF-8 headers (SMTPUTF8): the bytes parser would not decode them."""
    message = Parser(policy=policy.SMTPUTF8).parsestr(data.decode("utf-8"))
    assert isinstance(message, EmailMessage)
    return message


def decoded(raw_header: str) -> str:
    """A header decoded by the RFC 2047 rules (whitespace between encoded words dropped)."""
    return str(email.header.make_header(email.header.decode_header(raw_header)))


def raw_header(data: bytes, name: str) -> str:
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    unfolded = head.replace("\r\n ", " ").split("\r\n")
    return next(line.split(": ", 1)[1] for line in unfolded if line.startswith(f"{name}: "))


def assert_clean(message: EmailMessage) -> None:
    assert message.defects == []
    for name in message:
        # RFC 6532 allows a UTF-8 local part; CPython's parser flags it under every policy
        defects = [
            d
            for d in message[name].defects
            if not (message.policy.utf8 and isinstance(d, NonASCIILocalPartDefect))
        ]
        assert defects == [], name
    for part in message.walk():
        assert part.defects == []


# -- messages --------------------------------------------------------------------------------------


def test_a_message_has_every_header_and_text_before_html() -> None:
    outgoing = make()
    message = parse(outgoing.data)
    assert_clean(message)
    assert list(message.keys()) == EXPECTED_HEADERS
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Date"].datetime == WINDOW_END
    assert message["Message-ID"] == outgoing.message_id
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = str(message["List-Unsubscribe"])
    assert unsubscribe == (
        "<https://example.org/record/unsubscribe?address=x&token=t>, "
        "<mailto:unsubscribe@example.org?subject=unsubscribe%20t>"
    )
    assert b"\r\n" in outgoing.data
    assert b"\n" not in outgoing.data.replace(b"\r\n", b"")
    assert max(len(line) for line in outgoing.data.split(b"\r\n")) <= 998
    assert outgoing.data.isascii()
    assert not outgoing.smtputf8


def test_the_same_input_gives_the_same_bytes() -> None:
    assert make().data == make().data
    assert make().data != make(address="other@example.org").data


def _body_by_email_package(text: str, html: str, mid: str) -> bytes:
    """The body as ``email`` writes it: what ``build_message`` wrote before it wrote it out."""
    body = EmailMessage()
    body.set_content(text, cte="quoted-printable")
    body.add_alternative(html, subtype="html", cte="quoted-printable")
    for part in body.iter_parts():
        del part["MIME-Version"]
    body.set_boundary("=_solidline_" + hashlib.sha256(mid.encode()).hexdigest()[:24])
    return body.as_bytes(policy=policy.SMTP)


_BODY_TEXT = st.lists(
    st.sampled_from([" ", "\t", "\n", "\r", "\r\n", "=", ".", "\x0b", "\x85", "\u2028", "ü"])
    | st.characters(codec="utf-8")
    | st.builds(lambda n, c: c * n, st.integers(60, 170), st.sampled_from(["a", " ", "=", "é"])),
    max_size=60,
).map("".join)


@settings(max_examples=300)
@given(text=_BODY_TEXT, html=_BODY_TEXT)
def test_the_body_is_byte_for_byte_what_the_email_package_writes(text: str, html: str) -> None:
    outgoing = make(text=text, html=html)
    body = b"MIME-Version: 1.0\r\n" + outgoing.data.split(b"\r\nMIME-Version: 1.0\r\n", 1)[1]
    assert body == _body_by_email_package(text, html, outgoing.message_id)


@settings(max_examples=300)
@given(content=_BODY_TEXT, block=st.integers(1, 80))
def test_encoding_in_blocks_is_encoding_line_by_line(content: str, block: int) -> None:
    lines = content.encode().splitlines() or [b""]
    line_by_line = "".join(mail_module._quoted_printable(line) for line in lines)
    assert mail_module._encoded(content, block) == line_by_line


def test_message_id_is_per_subscriber_and_window() -> None:
    one = message_id("20261123-20261130", "a@example.org", "example.org", "digest.example.org")
    assert one == message_id(
        "20261123-20261130", "a@example.org", "example.org", "digest.example.org"
    )
    assert one.startswith("<digest.20261123-20261130.")
    assert one.endswith("@example.org>")
    assert one != message_id(
        "20261130-20261207", "a@example.org", "example.org", "digest.example.org"
    )
    assert one != message_id(
        "20261123-20261130", "b@example.org", "example.org", "digest.example.org"
    )


@pytest.mark.parametrize(
    ("name", "subject"),
    [
        ("Bạn đọc", "Bản tin hằng tuần: Kính gửi bạn đọc, 23–29 tháng 11 năm 2026"),
        ("ຜູ້ອ່ານ", "ຂ່າວສານປະຈຳອາທິດ: ຄວາມສຳພັນ ລາວ – ຫວຽດນາມ ທີ່ຍາວນານ " * 3),
        (
            'Subscriber "One", Esq. <x>',
            "ASCII only, but long enough to be folded once or twice " * 3,
        ),
        ("=?utf-8?q?not_an_encoded_word?=", "=?utf-8?q?nor_this?= subject"),
    ],
)
def test_non_ascii_names_and_subjects_round_trip(name: str, subject: str) -> None:
    outgoing = make(name=name, subject=subject)
    message = parse(outgoing.data)
    assert_clean(message)
    assert outgoing.data.isascii()
    assert str(message["Subject"]) == clean_text(subject)
    assert decoded(raw_header(outgoing.data, "Subject")) == clean_text(subject)
    to = message["To"].addresses[0]
    assert to.addr_spec == "subscriber.one@example.org"
    assert decoded(raw_header(outgoing.data, "To")).startswith(name) or '"' in name
    for line in outgoing.data.split(b"\r\n\r\n")[0].split(b"\r\n"):
        assert len(line) <= 100  # encoded words keep folded lines short


def test_python_folder_would_lose_the_spaces_we_keep() -> None:
    # the reason the header section is written by hand (CPython 3.11's email folder)
    subject = "Kính gửi Bạn đọc, " + "tuần này " * 8
    assert decoded(raw_header(make(subject=subject).data, "Subject")) == clean_text(subject)


def test_a_non_ascii_address_needs_smtputf8() -> None:
    outgoing = make(name="Bạn đọc", address="bạn.đọc@example.org")
    assert outgoing.smtputf8
    message = parse_utf8(outgoing.data)
    assert message["To"].addresses[0].addr_spec == "bạn.đọc@example.org"
    assert str(message["To"]) == "Bạn đọc <bạn.đọc@example.org>"


_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=80)
_breaks = st.sampled_from(
    [
        "\r\n",
        "\n",
        "\r",
        "\r\nBcc: victim@example.com\r\n",
        "\nX-Injected: yes",
        "\u2028",
        "\x85",
        "\x00",
        "\x0b",
    ]
)
_injected = st.tuples(_text, _breaks, _text).map("".join)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.one_of(_text, _injected),
    subject=st.one_of(_text, _injected),
    address=st.one_of(_injected, st.emails(), _injected.map(lambda s: f"a{s}@example.org")),
)
def test_line_breaks_never_add_a_header(name: str, subject: str, address: str) -> None:
    try:
        canonical = normalize_address(address)
    except SubscriberError:
        return  # refused before it reaches a header
    outgoing = make(name=name, address=canonical, subject=subject)
    message = parse(outgoing.data)
    assert list(message.keys()) == EXPECTED_HEADERS
    assert "\n" not in str(message["Subject"])
    assert "\r" not in str(message["Subject"])
    if not outgoing.smtputf8:
        assert message["To"].addresses[0].addr_spec == canonical
    assert message.defects == []


@pytest.mark.parametrize(
    "address",
    [
        "plain@example.org",
        "first.last+tag@sub.example.org",
        "bạn.đọc@example.org",
        "user@bücher.example",
    ],
)
def test_good_addresses(address: str) -> None:
    assert "@" in normalize_address(address)


def test_domains_are_lower_case_ascii() -> None:
    assert normalize_address("Someone@Bücher.Example") == "Someone@xn--bcher-kva.example"


@pytest.mark.parametrize(
    "address",
    [
        "",
        "no-at-sign",
        "@example.org",
        "a@",
        "a b@example.org",
        "a@example",
        "a..b@example.org",
        '"quoted"@example.org',
        "a@[127.0.0.1]",
        "a@-bad-.org",
        "a\r\n@example.org",
        "a@example.org\r\nBcc: x@example.org",
        "a\u200b@example.org",
        "x" * 65 + "@example.org",
    ],
)
def test_bad_addresses(address: str) -> None:
    with pytest.raises(SubscriberError):
        normalize_address(address)


def test_parse_sender() -> None:
    assert parse_sender("The record <Digest@Example.org>") == ("The record", "Digest@example.org")
    assert parse_sender("digest@example.org") == (None, "digest@example.org")
    with pytest.raises(SubscriberError):
        parse_sender("The record")


# -- SMTP against aiosmtpd -------------------------------------------------------------------------


def smtp_config(port: int, **overrides: Any) -> SmtpConfig:
    fields: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "retries": 2,
        "retry_delay": 0.01,
        "rate_per_second": 1000.0,
        "timeout": 10.0,
    }
    return SmtpConfig(**(fields | overrides))


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def send_all(transport: SmtpTransport, messages: list[Outgoing]) -> None:
    try:
        for message in messages:
            transport.deliver(message)
    finally:
        transport.close()


def test_smtp_without_smtputf8_sends_encoded_headers() -> None:
    with smtp_server(smtputf8=False) as server:
        messages = [
            make(name="Bạn đọc", address="ban.doc@example.org"),
            make(name="ຜູ້ອ່ານ", address="phu.an@example.org"),
        ]
        send_all(SmtpTransport(smtp_config(server.port)), messages)
    received = server.handler.received
    assert [r.recipients for r in received] == [("ban.doc@example.org",), ("phu.an@example.org",)]
    for got, sent in zip(received, messages, strict=True):
        assert not got.smtputf8
        message = got.parsed()
        assert_clean(message)
        assert list(message.keys())[:8] == EXPECTED_HEADERS[:8]
        assert message["Message-ID"] == sent.message_id
        assert (
            got.data.replace(b"\r\n", b"\n").rstrip() == sent.data.replace(b"\r\n", b"\n").rstrip()
        )


def test_smtp_without_smtputf8_refuses_a_non_ascii_address_for_good() -> None:
    with smtp_server(smtputf8=False) as server:
        transport = SmtpTransport(smtp_config(server.port))
        with pytest.raises(DeliveryError, match="SMTPUTF8"):
            transport.deliver(make(address="bạn.đọc@example.org"))
        transport.deliver(make())  # the connection is still good for the others
        transport.close()
    assert len(server.handler.received) == 1


def test_smtp_with_smtputf8_delivers_a_non_ascii_address() -> None:
    with smtp_server(smtputf8=True) as server:
        outgoing = make(name="Bạn đọc", address="bạn.đọc@example.org")
        send_all(SmtpTransport(smtp_config(server.port)), [outgoing])
    (got,) = server.handler.received
    assert got.smtputf8
    assert got.recipients == ("bạn.đọc@example.org",)
    message = parse_utf8(got.data)
    assert_clean(message)
    assert message["To"].addresses[0].addr_spec == "bạn.đọc@example.org"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_smtp_auth_logs_in_and_never_shows_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    with smtp_server(auth=True) as server:
        good = SmtpTransport(smtp_config(server.port, username=USER), password=PASSWORD)
        send_all(good, [make()])
        bad = SmtpTransport(smtp_config(server.port, username=USER), password="wrong-" + PASSWORD)
        with pytest.raises(DeliveryError) as refused:
            bad.deliver(make())
    assert server.handler.received[0].authenticated
    assert "refused the login" in str(refused.value)
    for text in (str(refused.value), repr(bad), repr(good), *capsys.readouterr()):
        assert PASSWORD not in text


def test_smtp_login_without_a_password_is_refused_before_connecting() -> None:
    with pytest.raises(DeliveryError, match="SOLIDLINE_SMTP_PASSWORD"):
        SmtpTransport(smtp_config(free_port(), username=USER), password=None)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_smtp_over_tls_with_auth(security: str, certificate: tuple[Path, Path]) -> None:
    with smtp_server(auth=True, tls=security, certificate=certificate) as server:
        config = smtp_config(
            server.port, security=security, username=USER, ca_file=str(certificate[0])
        )
        send_all(SmtpTransport(config, password=PASSWORD), [make()])
    assert server.handler.received[0].authenticated
    assert_clean(server.handler.received[0].parsed())


def test_smtp_tls_refuses_an_untrusted_certificate(certificate: tuple[Path, Path]) -> None:
    with smtp_server(tls="ssl", certificate=certificate) as server:
        transport = SmtpTransport(smtp_config(server.port, security="ssl"))
        with pytest.raises(DeliveryError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
            transport.deliver(make())
    assert server.handler.received == []


def test_smtp_starttls_is_required_when_configured() -> None:
    with smtp_server() as server:  # offers no STARTTLS
        transport = SmtpTransport(smtp_config(server.port, security="starttls"))
        with pytest.raises(DeliveryError, match="STARTTLS"):
            transport.deliver(make())
    assert server.handler.received == []


def test_smtp_retries_a_temporary_failure() -> None:
    sleeps: list[float] = []
    handler = Recorder(replies=["451 4.3.0 Try again later"])
    with smtp_server(handler) as server:
        send_all(SmtpTransport(smtp_config(server.port), sleep=sleeps.append), [make()])
    assert handler.attempts == 2
    assert len(handler.received) == 1
    assert sleeps == [0.01]


def test_smtp_gives_up_on_a_lasting_temporary_failure() -> None:
    handler = Recorder(replies=["451 4.3.0 Try again later"] * 3)
    with smtp_server(handler) as server:
        transport = SmtpTransport(smtp_config(server.port), sleep=lambda _: None)
        with pytest.raises(DeliveryError, match="still failing after 3 attempts: 451"):
            transport.deliver(make())
        transport.close()
    assert handler.received == []


def test_smtp_permanent_refusal_is_not_retried() -> None:
    handler = Recorder(refuse={"gone@example.org"})
    with smtp_server(handler) as server:
        transport = SmtpTransport(smtp_config(server.port))
        with pytest.raises(DeliveryError, match="550"):
            transport.deliver(make(address="gone@example.org"))
        transport.close()
    assert handler.attempts == 0


def test_smtp_rate_limit_spaces_the_messages() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    with smtp_server() as server:
        transport = SmtpTransport(
            smtp_config(server.port, rate_per_second=4.0), sleep=sleep, clock=lambda: now[0]
        )
        send_all(transport, [make(address=f"s{i}@example.org") for i in range(5)])
    assert sleeps == [0.25] * 4
    assert len(server.handler.received) == 5


def test_smtp_unreachable_server_stops_the_run() -> None:
    transport = SmtpTransport(smtp_config(free_port()), sleep=lambda _: None)
    with pytest.raises(DeliveryError, match="cannot reach"):
        transport.deliver(make())


# -- the ledger ------------------------------------------------------------------------------------

WINDOW = {
    "period": "weekly",
    "start": "2026-11-23T00:00:00+00:00",
    "end": "2026-11-30T00:00:00+00:00",
}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(tmp_path / "deliveries") as held:
        yield held


def messages(count: int) -> list[Outgoing]:
    return [make(address=f"s{i}@example.org") for i in range(count)]


def test_plan_then_deliver_then_nothing_left(ledger: Ledger, tmp_path: Path) -> None:
    assert ledger.plan(WINDOW, messages(3)) == 3
    assert ledger.plan(WINDOW, messages(4)) == 1  # the first three are known
    report = deliver_pending(ledger, OutboxTransport(tmp_path / "out"))
    assert report.ok
    assert report.sent == 4
    assert len(list((tmp_path / "out").glob("*.eml"))) == 4
    assert ledger.pending() == []
    assert list(ledger.spool.iterdir()) == []
    assert ledger.last_window_end() == dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    assert deliver_pending(ledger, OutboxTransport(tmp_path / "out")).sent == 0


def test_a_second_run_waits_for_the_lock(ledger: Ledger) -> None:
    with pytest.raises(LogLocked), Ledger.open(ledger.folder):
        pass


def test_a_torn_tail_is_quarantined(tmp_path: Path) -> None:
    folder = tmp_path / "deliveries"
    with Ledger.open(folder) as ledger:
        ledger.plan(WINDOW, messages(2))
    with open(folder / "ledger.jsonl", "ab") as handle:
        handle.write(b'{"at":"2026-11-30T00:00:01Z","kind":"sent","message_')
    with Ledger.open(folder) as ledger:
        assert len(ledger.pending()) == 2
    quarantined = list(folder.glob("ledger.jsonl.*.quarantine"))
    assert len(quarantined) == 1
    assert quarantined[0].read_bytes().endswith(b'"message_')
    assert (folder / "ledger.jsonl").read_bytes().endswith(b"}\n")


def test_a_damaged_line_in_the_middle_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "deliveries"
    with Ledger.open(folder) as ledger:
        ledger.plan(WINDOW, messages(2))
    lines = (folder / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    lines[1] = b"garbage\n"
    (folder / "ledger.jsonl").write_bytes(b"".join(lines))
    with pytest.raises(CorruptLog, match="line 2"), Ledger.open(folder):
        pass


def test_a_changed_spool_file_is_not_sent(ledger: Ledger, tmp_path: Path) -> None:
    ledger.plan(WINDOW, messages(2))
    first = ledger.pending()[0]
    with open(ledger.folder / first["file"], "r+b") as spooled:  # one byte of the first message
        spooled.seek(first["offset"] + first["size"] - 3)
        spooled.write(b"?")
    report = deliver_pending(ledger, OutboxTransport(tmp_path / "out"))
    assert report.sent == 1
    assert len(report.rejected) == 1
    assert "changed since it was planned" in report.rejected[0][1]


def test_rejected_and_deferred_are_reported(ledger: Ledger) -> None:
    ledger.plan(
        WINDOW,
        [
            make(address="gone@example.org"),
            make(address="later@example.org"),
            make(address="fine@example.org"),
        ],
    )
    handler = Recorder(replies=[], refuse={"gone@example.org"})
    handler.replies = ["451 busy"] * 3  # 'later' gets all three attempts refused
    with smtp_server(handler) as server:
        transport = SmtpTransport(smtp_config(server.port), sleep=lambda _: None)
        report = deliver_pending(ledger, transport)
        transport.close()
    assert report.sent == 1
    assert not report.ok
    assert [r for r, _ in report.rejected] == ["gone@example.org"]
    assert [r for r, _ in report.deferred] == ["later@example.org"]
    assert [line["to"] for line in ledger.pending()] == ["later@example.org"]


def test_an_unreachable_server_leaves_everything_planned(ledger: Ledger) -> None:
    ledger.plan(WINDOW, messages(3))
    transport = SmtpTransport(smtp_config(free_port()), sleep=lambda _: None)
    report = deliver_pending(ledger, transport)
    assert report.stopped
    assert "cannot reach" in report.stopped
    assert len(report.deferred) == 3
    assert len(ledger.pending()) == 3


def test_a_plan_is_one_spool_file_and_files_no_pending_message_needs_go(tmp_path: Path) -> None:
    folder = tmp_path / "deliveries"
    with Ledger.open(folder) as ledger:
        ledger.plan(WINDOW, messages(3))
    spooled = list((folder / "spool").iterdir())
    assert len(spooled) == 1
    (folder / "spool" / "cut-short.spool").write_bytes(b"a plan a crash cut short")
    (folder / "spool" / ".cut.0123.solidline-tmp").write_bytes(b"half")
    with Ledger.open(folder) as ledger:
        assert list((folder / "spool").iterdir()) == spooled
        assert [ledger.load(line).data for line in ledger.pending()] == [
            m.data for m in messages(3)
        ]


def test_a_ledger_of_old_with_a_spool_file_each_message_is_delivered(tmp_path: Path) -> None:
    folder = tmp_path / "deliveries"
    message = make()
    (folder / "spool").mkdir(parents=True)
    (folder / "spool" / "one.eml").write_bytes(message.data)
    planned = {
        "at": "2026-11-30T00:00:01Z",
        "kind": "planned",
        "message_id": message.message_id,
        "from": message.sender,
        "to": message.recipient,
        "smtputf8": False,
        "file": "spool/one.eml",
        "sha256": hashlib.sha256(message.data).hexdigest(),
    }
    (folder / "ledger.jsonl").write_bytes(orjson.dumps(planned) + b"\n")
    with Ledger.open(folder) as ledger:
        report = deliver_pending(ledger, OutboxTransport(tmp_path / "out"))
    assert report.sent == 1
    assert [p.read_bytes() for p in (tmp_path / "out").iterdir()] == [message.data]
    assert list((folder / "spool").iterdir()) == []


class _Syncs:
    """Stands in for ``os.fdatasync`` in the ledger: slow (so that a record is still being
    synced while the next message goes out), noting how much of each file it made durable."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.durable: dict[int, int] = {}
        self.calls = 0
        self.fail_at = fail_at

    def __call__(self, fd: int) -> None:
        self.calls += 1
        size = os.fstat(fd).st_size
        time.sleep(0.01)
        if self.calls == self.fail_at:
            raise OSError(5, "Input/output error")
        self.durable[fd] = max(self.durable.get(fd, 0), size)


def test_a_message_is_accepted_only_once_the_record_before_it_is_durable(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record of a message is synced while the next one is transmitted, and the server may
    accept that one only after the sync: at every accept, all that the ledger holds is durable,
    so a crash leaves at most the message being accepted without its record."""
    ledger.plan(WINDOW, messages(6))
    syncs = _Syncs()
    monkeypatch.setattr("solidline.delivery.os.fdatasync", syncs)
    unsynced_at_accept: list[int] = []

    def on_accept(received: Any) -> None:
        size = ledger.file.stat().st_size
        unsynced_at_accept.append(size - max(syncs.durable.values(), default=size))

    with smtp_server(Recorder(on_accept=on_accept)) as server:
        transport = SmtpTransport(smtp_config(server.port))
        report = deliver_pending(ledger, transport)
        transport.close()
    assert report.sent == 6
    assert unsynced_at_accept == [0] * 6
    assert syncs.calls == 6  # one a message: the overlap saves waiting, not syncing
    assert [line["to"] for line in ledger.pending()] == []
    assert list(ledger.spool.iterdir()) == []


def test_a_failed_record_stops_the_run_before_the_next_message_is_accepted(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.plan(WINDOW, messages(4))
    monkeypatch.setattr("solidline.delivery.os.fdatasync", _Syncs(fail_at=1))
    with smtp_server() as server:
        transport = SmtpTransport(smtp_config(server.port))
        with pytest.raises(DurabilityError, match="cannot record deliveries"):
            deliver_pending(ledger, transport)
        transport.close()
        # the first record failed: the second message went out, but without its final "."
        assert [r.recipients for r in server.handler.received] == [("s0@example.org",)]


def test_the_transport_sends_the_bytes_smtplib_sendmail_sends() -> None:
    """The transport sends step by step what ``sendmail`` sends at once: leading dots doubled,
    a missing line end added, the SIZE the server asks for."""
    bodies = [
        b"Subject: x\r\n\r\n.\r\n..\r\n.x\r\nend",
        b"Subject: y\r\n\r\n.",
        b"Subject: z\r\n\r\nplain\r\n",
        b".Subject: w\r\n\r\n\r\n.\r\n",
    ]
    with smtp_server() as server:
        with smtplib.SMTP(server.host, server.port) as plain:
            for body in bodies:
                plain.sendmail("a@example.org", ["b@example.org"], body)
        transport = SmtpTransport(smtp_config(server.port))
        send_all(
            transport,
            [Outgoing("<x@y>", "a@example.org", "b@example.org", body) for body in bodies],
        )
    received = [r.data for r in server.handler.received]
    assert len(received) == 2 * len(bodies)
    assert received[len(bodies) :] == received[: len(bodies)]
    assert received[0].endswith(b"\r\n.\r\n..\r\n.x\r\nend\r\n")  # undone by the server


def test_write_outbox_writes_eml_html_and_an_index(tmp_path: Path) -> None:
    sent = messages(2)
    index = write_outbox(tmp_path / "w", [(m, "Subject <b>", "<p>hi</p>") for m in sent])
    assert sorted(p.suffix for p in index.parent.iterdir()) == [
        ".eml",
        ".eml",
        ".html",
        ".html",
        ".html",
    ]
    assert "Subject &lt;b&gt;" in index.read_text()
    write_outbox(tmp_path / "w", [(sent[0], "s", "<p>hi</p>")])  # stale files go
    assert len(list(index.parent.glob("*.eml"))) == 1
