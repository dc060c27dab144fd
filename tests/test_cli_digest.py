"""``solidline digest``: the preview from a fresh clone, sending through a real SMTP server,
exit codes, bad subscriber files, and a sending process killed at random points."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from conftest import FakeClock, entities, meeting
from smtp_server import Recorder, Server, free_port, smtp_server
from solidline import JsonlLog
from solidline.cli import main
from solidline.delivery import Ledger

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = {"SOLIDLINE_UNSUBSCRIBE_KEY": "a test key, long and random in real life"}
WEEK_END = "2026-11-16"  # the window 9–15 November 2026, long over


def config_text(port: int, subscribers: str = "subscribers.csv", **newsletter: str) -> str:
    extra = "".join(f'{k} = "{v}"\n' for k, v in newsletter.items())
    return f"""
[log]
path = "events"

[site]
base_url = "https://example.org/solidline/"
title = "The record"

[newsletter]
subscribers = "{subscribers}"
sender = "The record <digest@example.org>"
{extra}
[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
rate_per_second = 200
retries = 1
retry_delay = 0.01
timeout = 5
"""


def write_subscribers(folder: Path, count: int) -> None:
    lines = ["address,name,interests,language"]
    lines += [f"reader{i:03d}@example.org,Reader {i},,en" for i in range(count)]
    (folder / "subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A record whose lines were recorded on 10 November 2026, three subscribers, a config."""
    with JsonlLog(
        tmp_path / "events", clock=FakeClock(dt.datetime(2026, 11, 10, tzinfo=dt.UTC))
    ) as log:
        log.append(entities("cpusa", "cpv", "la"))
        log.append(
            [
                meeting("m1", "cpusa", "cpv"),
                meeting("m2", "cpv", "la", when="2026-12-01", status="scheduled"),
            ]
        )
    write_subscribers(tmp_path, 3)
    (tmp_path / "solidline.toml").write_text(config_text(free_port()), encoding="utf-8")
    return tmp_path


def digest(
    folder: Path, *args: str, env: dict[str, str | None] | None = None
) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["--config", str(folder / "solidline.toml"), "digest", *args], env=env or {}
    )
    return result.exit_code, result.output


def use_server(folder: Path, server: Server, **newsletter: str) -> None:
    (folder / "solidline.toml").write_text(config_text(server.port, **newsletter), encoding="utf-8")


# -- preview ---------------------------------------------------------------------------------------


NO_KEY: dict[str, str | None] = {"SOLIDLINE_UNSUBSCRIBE_KEY": None}


def test_a_fresh_clone_previews_the_record_into_the_outbox(tmp_path: Path) -> None:
    code, output = digest(ROOT, "--ending", "2026-11-30", "--outbox", str(tmp_path), env=NO_KEY)
    assert code == 0, output
    assert "PREVIEW key" in output
    assert "weekly window 23–29 November 2026 (20261123-20261130): 24 new" in output
    written = tmp_path / "20261123-20261130"
    assert len(list(written.glob("*.eml"))) == 5
    assert (written / "index.html").exists()


def test_interests_in_entities_defined_after_the_window_are_not_mistakes(tmp_path: Path) -> None:
    # the record's entities were all defined on 23 November 2026; a window before that day
    # still accepts the example subscribers, whose interests name them
    code, output = digest(ROOT, "--ending", "2026-11-16", "--outbox", str(tmp_path), env=NO_KEY)
    assert code == 0, output
    assert "0 new" in output
    assert "5 subscriber(s)" in output


def test_the_default_window_is_the_last_one_ended(folder: Path) -> None:
    code, output = digest(folder, "--period", "daily", env=KEY_ENV)
    assert code == 0
    assert "nothing new in the window" in output


def test_an_empty_window_can_still_be_previewed(folder: Path) -> None:
    code, output = digest(folder, "--ending", "2026-11-09", "--send-empty", env=KEY_ENV)
    assert code == 0
    assert "wrote 3 message(s)" in output


def test_a_window_must_end_on_a_boundary(folder: Path) -> None:
    code, output = digest(folder, "--ending", "2026-11-18", env=KEY_ENV)
    assert code == 2
    assert "nearest end on 2026-11-16 and 2026-11-23" in output


def test_since_last_send_cannot_take_a_period(folder: Path) -> None:
    code, output = digest(folder, "--since-last-send", "--period", "daily", env=KEY_ENV)
    assert code == 2
    assert "not both" in output


# -- sending ---------------------------------------------------------------------------------------


def test_send_delivers_once_and_a_second_run_sends_nothing(folder: Path) -> None:
    with smtp_server() as server:
        use_server(folder, server)
        code, output = digest(folder, "--send", "--ending", WEEK_END, env=KEY_ENV)
        assert code == 0, output
        assert "planned 3 new message(s); 3 to send" in output
        assert "sent 3" in output
        code, output = digest(folder, "--send", "--ending", WEEK_END, env=KEY_ENV)
        assert code == 0
        assert "planned 0 new message(s); 0 to send" in output
    received = server.handler.received
    assert sorted(r.recipients[0] for r in received) == [
        f"reader{i:03d}@example.org" for i in range(3)
    ]
    for got in received:
        message = got.parsed()
        assert message.defects == []
        for header in ("Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post"):
            assert message[header], header
        assert message["Date"].datetime == dt.datetime(2026, 11, 16, tzinfo=dt.UTC)


def test_send_needs_the_unsubscribe_key(folder: Path) -> None:
    code, output = digest(
        folder, "--send", "--ending", WEEK_END, env={"SOLIDLINE_UNSUBSCRIBE_KEY": ""}
    )
    assert code == 1
    assert "SOLIDLINE_UNSUBSCRIBE_KEY holds no unsubscribe key" in output


def test_send_refuses_a_window_that_has_not_ended(folder: Path) -> None:
    future = dt.date.today() + dt.timedelta(days=8 - dt.date.today().isoweekday())
    code, output = digest(folder, "--send", "--ending", future.isoformat(), env=KEY_ENV)
    assert code == 2
    assert "has not ended" in output


def test_an_unreachable_server_exits_6_and_the_next_run_delivers(folder: Path) -> None:
    code, output = digest(folder, "--send", "--ending", WEEK_END, env=KEY_ENV)
    assert code == 6
    assert "cannot reach" in output
    with smtp_server() as server:
        use_server(folder, server)
        code, output = digest(folder, "--send", "--ending", WEEK_END, env=KEY_ENV)
    assert code == 0
    assert "planned 0 new message(s); 3 to send" in output
    assert len(server.handler.received) == 3


def test_a_refused_recipient_is_reported_and_not_retried(folder: Path) -> None:
    with smtp_server(Recorder(refuse={"reader001@example.org"})) as server:
        use_server(folder, server)
        code, output = digest(folder, "--send", "--ending", WEEK_END, env=KEY_ENV)
        assert code == 6
        assert "rejected: reader001@example.org" in output
        code, output = digest(folder, "--send", "--ending", WEEK_END, env=KEY_ENV)
        assert code == 0
        assert "0 to send" in output


def test_a_bad_subscriber_file_stops_everything(folder: Path) -> None:
    digest(folder, "--send", "--ending", WEEK_END, env=KEY_ENV)  # no server: 3 left pending
    (folder / "subscribers.csv").write_text(
        "address,name,interests,language\nreader000@example.org,A,,en\n"
        "bad address,B,,en\nreader002@example.org,C,nobody,en\n",
        encoding="utf-8",
    )
    with smtp_server() as server:
        use_server(folder, server)
        code, output = digest(folder, "--send", "--ending", WEEK_END, env=KEY_ENV)
        assert code == 1
        assert "line 3: 'bad address' is not an email address" in output
        assert "line 4: unknown interest(s) nobody" in output
        preview_code, _ = digest(folder, "--ending", WEEK_END, env=KEY_ENV)
    assert preview_code == 1
    assert server.handler.received == []
    assert not (folder / "outbox").exists()


def test_since_last_send_starts_where_the_last_window_ended(folder: Path) -> None:
    with smtp_server() as server:
        use_server(folder, server)
        assert digest(folder, "--send", "--ending", WEEK_END, env=KEY_ENV)[0] == 0
        code, output = digest(folder, "--since-last-send", env=KEY_ENV)
    assert code == 0
    assert "since-last-send window 16" in output
    assert "(20261116-" in output
    assert "nothing new" in output


def test_another_run_holding_the_ledger_exits_4(folder: Path) -> None:
    with Ledger.open(folder / "deliveries"):
        code, output = digest(folder, "--send", "--ending", WEEK_END, env=KEY_ENV)
    assert code == 4
    assert "another digest run" in output


def test_the_outbox_transport_delivers_files_through_the_ledger(folder: Path) -> None:
    (folder / "solidline.toml").write_text(
        config_text(free_port(), transport="outbox", outbox="pickup"), encoding="utf-8"
    )
    code, output = digest(folder, "--send", "--ending", WEEK_END, env=KEY_ENV)
    assert code == 0
    assert "sent 3" in output
    assert len(list((folder / "pickup").glob("*.eml"))) == 3


# -- the crash test --------------------------------------------------------------------------------

ROUNDS = int(os.environ.get("SOLIDLINE_CRASH_ROUNDS", "15"))
SUBSCRIBERS = 30


def _send_process(folder: Path, *, capture: bool = False) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "solidline",
            "--config",
            str(folder / "solidline.toml"),
            "digest",
            "--send",
            "--ending",
            WEEK_END,
        ],
        env={**os.environ, **KEY_ENV},
        stderr=subprocess.STDOUT,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
    )


class _Killer:
    """Kills the sending process from inside the server, after it keeps the n-th message and
    before the client hears "250": the accept that races a crash, made certain."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.at: int | None = None
        self.count = 0

    def __call__(self, received: Any) -> None:
        self.count += 1
        if self.process is not None and self.count == self.at:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


def _kill_somewhere(
    process: subprocess.Popen[bytes], server: Server, rng: random.Random, killer: _Killer
) -> None:
    """SIGKILL at a random moment: some time after the start, just after a message lands, or
    while the server is accepting one."""
    choice = rng.random()
    if choice < 0.25:
        killer.process, killer.at = process, killer.count + rng.randint(1, SUBSCRIBERS // 2)
        process.wait()
        killer.process = None
        return
    if choice < 0.55:
        deadline = time.monotonic() + rng.uniform(0.0, 1.2)
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.001)
    else:
        target = len(server.handler.received) + rng.randint(1, SUBSCRIBERS // 2)
        while len(server.handler.received) < target and process.poll() is None:
            time.sleep(0.0005)
        time.sleep(rng.uniform(0.0, 0.003))
    process.send_signal(signal.SIGKILL)
    process.wait()


def _planned(folder: Path) -> list[str]:
    lines = (folder / "deliveries" / "ledger.jsonl").read_bytes().splitlines()
    return [d["message_id"] for d in map(orjson.loads, lines) if d["kind"] == "planned"]


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(ROUNDS))
def test_killed_anywhere_and_resumed_every_digest_arrives_once(folder: Path, round_: int) -> None:
    rng = random.Random(round_)
    write_subscribers(folder, SUBSCRIBERS)
    kills = rng.randint(1, 3)
    killer = _Killer()
    with smtp_server(Recorder(on_accept=killer)) as server:
        use_server(folder, server)
        for _ in range(kills):
            _kill_somewhere(_send_process(folder), server, rng, killer)
        finish = _send_process(folder, capture=True)
        output, _ = finish.communicate(timeout=120)
        assert finish.returncode == 0, output.decode()
    received: list[Any] = list(server.handler.received)
    ids = Counter(r.message_id for r in received)
    planned = _planned(folder)
    assert len(planned) == len(set(planned)) == SUBSCRIBERS
    assert set(ids) == set(planned)  # every planned digest arrived …
    duplicates = sum(ids.values()) - len(ids)
    assert duplicates <= kills  # … and at most the one in flight at each kill twice,
    by_recipient: dict[str, set[str]] = {}
    for got in received:
        by_recipient.setdefault(got.recipients[0], set()).add(got.message_id)
    assert all(len(mids) == 1 for mids in by_recipient.values())  # with the same Message-ID
    copies: dict[str, set[bytes]] = {}
    for got in received:
        copies.setdefault(got.message_id, set()).add(got.data)
    assert all(len(versions) == 1 for versions in copies.values())  # and the same bytes


@pytest.mark.slow
def test_a_kill_racing_the_accept_sends_that_one_again_with_the_same_message_id(
    folder: Path,
) -> None:
    write_subscribers(folder, SUBSCRIBERS)
    killer = _Killer()
    with smtp_server(Recorder(on_accept=killer)) as server:
        use_server(folder, server)
        killer.process, killer.at = _send_process(folder), 5
        assert killer.process.wait() == -signal.SIGKILL
        killer.process = None
        finish = _send_process(folder, capture=True)
        output, _ = finish.communicate(timeout=120)
    assert finish.returncode == 0, output.decode()
    # the killed run had planned the first batches; this one plans the rest and sends all left
    assert f"; {SUBSCRIBERS - 4} to send" in output.decode()
    assert f"sent {SUBSCRIBERS - 4}, rejected 0" in output.decode()
    ids = [r.message_id for r in server.handler.received]
    assert len(ids) == SUBSCRIBERS + 1
    assert len(set(ids)) == SUBSCRIBERS
    assert ids[4] == ids[5]  # the raced one, again, with the same Message-ID
    assert server.handler.received[4].data == server.handler.received[5].data
