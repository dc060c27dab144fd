"""The runnable examples run, and the scheduled-job files name commands that exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from solidline.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_record_a_meeting_runs_and_shows_the_congress_held() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "record_a_meeting.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "22 September 2024  CPUSA delegation meets CPV General Secretary To Lam" in result.stdout
    assert "January 2026  CPV 14th National Congress  [occurred]" in result.stdout
    assert "chain intact" in result.stdout


def test_scheduled_jobs_call_commands_the_cli_has() -> None:
    text = "".join(p.read_text() for p in EXAMPLES.iterdir() if p.suffix in {"", ".service"})
    used = set(re.findall(r"(?:bin/|[{;] )solidline (?:--config \S+ )?([a-z]+)", text))
    assert {"publish", "digest"} <= used
    for command in used:
        assert CliRunner().invoke(main, [command, "--help"]).exit_code == 0, command
