"""The README starts with the two commands a fresh machine needs, and CI runs the second."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```sh\n(.+?)\n```", readme)


def test_readme_starts_with_install_and_run_then_install_and_test() -> None:
    first, second = _commands()[:2]
    assert "pip install ." in first
    assert first.endswith("solidline publish")
    assert "pip install -e '.[test]'" in second
    assert second.endswith("pytest")


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    second = _commands()[1]
    pattern = re.search(r'grep -m1 -E "(.+?)" README.md', ci)
    assert pattern is not None, ".ci/run must take the test command from the README"
    assert re.match(pattern.group(1).replace("\\\\", "\\"), second)
