"""Tampering with a log's lines, and what verifying it finds: for tests that compare the fast
checks (blocks, ranges on every core) with the line-by-line one."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from solidline import CorruptLog, JsonlLog
from solidline.log import EventLog, Head

KINDS = ("letter", "json", "delete", "swap", "duplicate", "more", "crlf", "tail", "seq")


def tamper(original: list[bytes], chance: random.Random) -> list[bytes]:
    """The lines (each with its newline) with one of :data:`KINDS` of damage at a random line."""
    lines = list(original)
    k = chance.randrange(len(lines))
    how = chance.choice(KINDS)
    line = lines[k]
    if how == "letter":
        at = chance.randrange(1, len(line) - 2)
        lines[k] = line[:at] + (b"X" if line[at : at + 1] != b"X" else b"Y") + line[at + 1 :]
    elif how == "json":
        lines[k] = line.replace(b"}", b"]", 1)
    elif how == "delete":
        del lines[k]
    elif how == "swap" and k + 1 < len(lines):
        lines[k], lines[k + 1] = lines[k + 1], lines[k]
    elif how == "duplicate":
        lines.insert(k, line)
    elif how == "more":
        lines[k] = line.replace(b',"data":', b',"more":3,"data":', 1)
    elif how == "crlf":
        lines[k] = line[:-1] + b"\r\n"
    elif how == "tail":
        lines.append(line[: len(line) // 2])
    elif how == "seq":
        lines[k] = line.replace(b'{"seq":', b'{"seq":0', 1)
    return lines


def tampered_copies(
    source: Path, into: Path, chance: random.Random, rounds: int
) -> Iterator[tuple[int, Path]]:
    """``rounds`` copies of the log's segments in ``source``, each with one segment tampered."""
    segments = sorted(source.glob("*.jsonl"))
    for round_ in range(rounds):
        folder = into / f"log{round_}"
        folder.mkdir()
        victim = chance.choice(segments)
        for segment in segments:
            content = segment.read_bytes().splitlines(keepends=True)
            if segment == victim:
                content = tamper(content, chance)
            (folder / segment.name).write_bytes(b"".join(content))
        yield round_, folder


def verified(log: EventLog | Path, *, line_by_line: bool = False) -> tuple[Any, ...]:
    """What ``verify(decode=False)`` finds (lines and head, or the fault and its place); with
    ``line_by_line``, without the block and range checks."""
    if isinstance(log, Path):
        log = JsonlLog(log, readonly=True)
    if line_by_line:
        log._verify_blocks = lambda seen: (0, Head())  # type: ignore[method-assign]
    try:
        report = log.verify(decode=False)
    except CorruptLog as exc:
        return (type(exc), exc.segment, exc.line, exc.field, exc.reason)
    return (report.lines, report.head)
