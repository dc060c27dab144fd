"""``solidline publish``: messages and exit codes under cron, and the page in a real browser."""

from __future__ import annotations

import fcntl
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from solidline import JsonlLog, Meeting, Participant, Source
from solidline.cli import main

ROOT = Path(__file__).resolve().parent.parent

SITE = """
[log]
path = "events"

[site]
output = "public"
base_url = "https://example.org/solidline/"
title = "The record"
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder holding a copy of the real record and a solidline.toml publishing it."""
    shutil.copytree(ROOT / "events", tmp_path / "events")
    (tmp_path / "solidline.toml").write_text(SITE, encoding="utf-8")
    return tmp_path


def run(folder: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["publish", "--config", str(folder / "solidline.toml"), *args]
    )
    return result.exit_code, result.output


def snapshot(output: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(output)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(output.rglob("*"))
        if p.is_file() and ".solidline" not in p.parts
    }


def append_meeting(folder: Path) -> None:
    source = Source(title="A report", publisher="A publisher", published="2026-01-02")
    with JsonlLog(folder / "events") as log:
        log.append(
            [
                Meeting(
                    id="2026-01-cpusa-cpv",
                    when="2026-01",
                    title="A new meeting",
                    sources=[source],
                    participants=[Participant(entity="cpusa"), Participant(entity="cpv")],
                )
            ]
        )


def test_publish_then_nothing_new(folder: Path) -> None:
    code, output = run(folder)
    assert code == 0, output
    assert output.startswith("published log head seq 39 to ")
    assert (folder / "public" / "index.html").is_file()

    code, output = run(folder)
    assert code == 0
    assert output.startswith("nothing new: 106 files unchanged (log head seq 39)")


def test_config_given_before_the_command_or_found_in_the_current_folder(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = CliRunner().invoke(main, ["--config", str(folder / "solidline.toml"), "publish"])
    assert result.exit_code == 0, result.output
    monkeypatch.chdir(folder)
    result = CliRunner().invoke(main, ["publish"])
    assert result.exit_code == 0
    assert "nothing new" in result.output


def test_a_run_while_another_holds_the_lock_exits_4(folder: Path) -> None:
    run(folder)
    with (folder / "public" / ".solidline" / "publish.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, output = run(folder)
    assert code == 4
    assert "another `solidline publish` is writing" in output


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        (SITE.replace('"https://example.org/solidline/"', '"example.org"'), "base_url"),
        (SITE + 'outptu = "x"\n', "outptu"),
        (SITE + "entries_per_feed = 0\n", "entries_per_feed"),
    ],
)
def test_a_bad_setting_exits_1_naming_it(folder: Path, toml: str, named: str) -> None:
    (folder / "solidline.toml").write_text(toml, encoding="utf-8")
    code, output = run(folder)
    assert code == 1
    assert str(folder / "solidline.toml") in output
    assert named in output


def test_a_missing_site_table_or_templates_folder_exits_1(folder: Path) -> None:
    toml = folder / "solidline.toml"
    toml.write_text('[log]\npath = "events"\n', encoding="utf-8")
    code, output = run(folder)
    assert code == 1
    assert "[site]" in output

    toml.write_text(SITE + 'templates = "nowhere"\n', encoding="utf-8")
    code, output = run(folder)
    assert code == 1
    assert "'templates'" in output
    assert "nowhere" in output


def test_a_missing_config_file_exits_1(tmp_path: Path) -> None:
    code, output = run(tmp_path)
    assert code == 1
    assert "not found" in output


def test_a_tampered_log_exits_3_and_keeps_the_output(folder: Path) -> None:
    run(folder)
    before = snapshot(folder / "public")
    segment = next((folder / "events").glob("*.jsonl"))
    lines = segment.read_bytes().splitlines(keepends=True)
    lines[20] = lines[20].replace(b'"title":"', b'"title":"Not ', 1)
    segment.write_bytes(b"".join(lines))

    code, output = run(folder)

    assert code == 3
    assert "line 22" in output or "line 21" in output
    assert snapshot(folder / "public") == before


def test_an_output_below_a_file_exits_5(folder: Path) -> None:
    (folder / "file").write_text("")
    toml = folder / "solidline.toml"
    toml.write_text(SITE.replace('output = "public"', 'output = "file/public"'), encoding="utf-8")
    code, output = run(folder)
    assert code == 5
    assert "file/public" in output


@pytest.mark.skipif(
    os.geteuid() == 0,
    reason="root writes into a folder whatever its mode; "
    "test_a_write_that_fails_midway_exits_5 covers the case for root",
)
def test_an_unwritable_output_exits_5_and_keeps_the_output(folder: Path) -> None:
    run(folder)
    before = snapshot(folder / "public")
    append_meeting(folder)
    (folder / "public" / "feeds").chmod(0o500)
    try:
        code, output = run(folder)
    finally:
        (folder / "public" / "feeds").chmod(0o755)
    assert code == 5, output
    assert "cannot write" in output
    assert "previous output" in output
    assert snapshot(folder / "public") == before


def test_a_write_that_fails_midway_exits_5_and_keeps_the_output(folder: Path) -> None:
    """A file size limit makes the big pages fail to write, as a full disk would (even for root)."""
    run(folder)
    before = snapshot(folder / "public")
    append_meeting(folder)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    result = subprocess.run(
        [sys.executable, "-m", "solidline", "publish", "--config", str(folder / "solidline.toml")],
        preexec_fn=limit,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 5, result.stderr
    assert "cannot write" in result.stderr
    assert snapshot(folder / "public") == before
    leftovers = list((folder / "public").rglob("*.solidline-tmp"))
    assert leftovers == []

    code, output = run(folder)  # the next run without the limit catches up
    assert code == 0
    assert "files written" in output


# -- in a real browser -----------------------------------------------------------------------------


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.browser
def test_the_page_renders_in_headless_chromium(folder: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install chromium (see .ci/run)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    run(folder)
    page = folder / "public" / "relationships" / "cpusa~cpv.html"
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    for anchor in (
        "2024-09-22-cpusa-meets-to-lam",
        "2021-01-29-cpusa-solidarity-with-cpv",
        "2020-cpv-masks-to-cpusa-report-2021-01-29",
    ):
        assert f'id="{anchor}"' in dom
    assert dom.count('class="entry ') == 7
    assert "CPUSA – CPV" in dom
