"""Digest: a weekly digest for 1,000 subscribers, sent to aiosmtpd on 127.0.0.1.

The run is ``solidline digest --send`` itself (through click's runner, in this process):
select the week's lines from the synthetic log, compose a message per subscriber (interests
mixed: everything, some entities, some relationships), plan them in the delivery ledger, and
deliver over SMTP. The baseline, in the same rounds: a bare ``smtplib`` loop sending the very
bytes the server received from that run, over one connection. Target: at most 1.5× its time.
"""

from __future__ import annotations

import datetime as dt
import random
import smtplib
import socket
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from click.testing import CliRunner

from solidline import EntityDefined, JsonlLog
from solidline.cli import main as solidline_main

from . import Context, Figure, timed

__all__ = ["run"]

KEY = "a benchmark key, long and random in real life"


class _Inbox:
    """An aiosmtpd handler that keeps the bytes of what it accepts."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.received.append(
                (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
        return "250 2.0.0 accepted"


def _subscribers(folder: Path, log: Path, count: int) -> Path:
    """A CSV of ``count`` subscribers: a third want everything, the rest entities or pairs."""
    rng = random.Random(3)
    entities: list[str] = []
    with JsonlLog(log, readonly=True) as reader:
        for record in reader.read():
            if not isinstance(record.event, EntityDefined):
                break
            entities.append(record.event.entity)
    rows = ["address,name,interests,language"]
    for n in range(count):
        roll = rng.random()
        if roll < 0.34:
            interests = ""
        elif roll < 0.67:
            interests = " ".join(rng.sample(entities, rng.randint(1, 3)))
        else:
            pairs = [sorted(rng.sample(entities[:50], 2)) for _ in range(rng.randint(1, 2))]
            interests = " ".join(f"{a}~{b}" for a, b in pairs)
        rows.append(f"reader{n:05d}@example.org,Reader {n},{interests},en")
    path = folder / "subscribers.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _config(folder: Path, log: Path, port: int) -> Path:
    path = folder / "solidline.toml"
    path.write_text(
        f"""
[log]
path = "{log}"

[site]
base_url = "https://example.org/record/"
title = "The record"

[newsletter]
subscribers = "subscribers.csv"
sender = "The record <digest@example.org>"
unsubscribe_url = "https://example.org/record/unsubscribe"
ledger = "deliveries"

[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
rate_per_second = 1000000
timeout = 30
""",
        encoding="utf-8",
    )
    return path


def _last_week(log: Path) -> str:
    """The Monday ending the last whole ISO week of recorded time in the log that has also
    ended in real time: a large synthetic log runs years ahead, and the CLI does not send a
    window that has not ended."""
    with JsonlLog(log, readonly=True) as reader:
        last = dt.date.fromisoformat(reader.head.recorded_at[:10])
    last = min(last, dt.datetime.now(dt.UTC).date())
    return (last - dt.timedelta(days=last.weekday())).isoformat()


def _smtplib_loop(port: int, messages: list[tuple[str, list[str], bytes]]) -> int:
    with smtplib.SMTP("127.0.0.1", port) as connection:
        for sender, recipients, data in messages:
            connection.sendmail(sender, recipients, data)
    return len(messages)


def run(context: Context) -> list[Figure]:
    count = context.events
    subscribers = 1000
    log = context.log(count)
    inbox = _Inbox()
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        ending = _last_week(log)
        best_digest = best_loop = float("inf")
        window_events = 0
        for round_ in range(context.repeats):
            folder = context.fresh(f"digest-{round_}")
            _subscribers(folder, log, subscribers)
            config = _config(folder, log, port)
            inbox.received.clear()
            seconds, result = timed(lambda config=config: CliRunner().invoke(
                solidline_main,
                ["--config", str(config), "digest", "--send", "--period", "weekly",
                 "--ending", ending],
                env={"SOLIDLINE_UNSUBSCRIBE_KEY": KEY},
            ))
            if result.exit_code != 0:
                raise RuntimeError(f"digest failed ({result.exit_code}): {result.output}")
            sent = list(inbox.received)
            window_events = _window_events(result.output)
            best_digest = min(best_digest, seconds)
            loop_seconds, _ = timed(lambda sent=sent: _smtplib_loop(port, sent))
            best_loop = min(best_loop, loop_seconds)
        messages = len(sent)
        size = sum(len(data) for _, _, data in sent) / max(messages, 1)
    finally:
        controller.stop()
    command = f"{context.command} --only digest --events {count}"
    note = (f"{messages} messages of {size / 1000:.0f} kB on average; the week ending "
            f"{ending} holds {window_events} new events; the run reads all {count:,} lines")
    return [
        Figure(f"digest --send to {subscribers:,} subscribers (aiosmtpd, 127.0.0.1)",
               messages / best_digest, "messages/s", "bare smtplib loop, same bytes",
               messages / best_loop, "time ≤ 1.5× the loop's (rate ≥ 0.67×)",
               best_digest <= 1.5 * best_loop, command, note),
        Figure(f"digest --send over a {count:,}-event log", count / best_digest,
               "events/s", "", None, "(reported)", None, command, note),
    ]


def _window_events(output: str) -> int:
    """The number of new entries the run reported for its window."""
    for word, following in zip(output.split(), output.split()[1:], strict=False):
        if following.startswith("new,"):
            try:
                return int(word)
            except ValueError:
                return 0
    return 0
