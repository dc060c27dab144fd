"""The id index saved beside a log's segments, so that a writer opening a big log need not read
all of it to learn which ids it holds.

The file names the line it covers up to (seq and digest) and where the next line starts. It is
a cache, never trusted over the log: it is used only when the line at that place still has that
digest (the digest of a line vouches, through the chain, for every line before it), and the
index is then caught up from there; anything else (no file, another version, a log that was
cut back or rewritten) and it is rebuilt from the log. It is written to a temporary file and
renamed over the old one, so a reader sees a whole file or the one before.
"""

from __future__ import annotations

import contextlib
import itertools
import operator
import os
from pathlib import Path
from typing import Any

import attrs
import orjson

from ._base import Head, _Index

__all__ = ["Saved", "load", "save"]

FILE = ".index"
_VERSION = 1


@attrs.frozen
class Saved:
    """An index as saved: what it covers and where the log goes on after it."""

    index: _Index
    head: Head
    position: tuple[int, int, int, int]  # the next seq, its segment's first seq, offset, line
    marks: dict[int, tuple[int, int, int]]  # seq -> segment first seq, offset, line


def save(folder: Path, saved: Saved) -> None:
    """Write the index atomically (a temporary file renamed over the old one).

    It is not synced: after a crash a missing or torn file is only rebuilt, never believed.
    """
    index = saved.index
    # one text, not a list: a million short strings parse several times slower than one long
    ids = "\n".join(index.ids)
    in_order = all(map(operator.eq, index.ids.values(), itertools.count(1)))
    if not in_order or ids.count("\n") != len(index.ids) - 1:
        return  # not one id per seq, or an id with a newline (neither in a sound log)
    data = orjson.dumps({
        "version": _VERSION,
        "head": attrs.asdict(saved.head),
        "position": saved.position,
        "marks": [[seq, *place] for seq, place in saved.marks.items()],
        "ids": ids,
        "kinds": index.kinds,
        "entities": sorted(index.entities),
        "same_as": index.same_as,
        "retracted": sorted(index.retracted),
    })
    temporary = folder / f"{FILE}.{os.getpid()}.tmp"
    try:
        temporary.write_bytes(data)
        os.replace(temporary, folder / FILE)
    except OSError:  # a cache that cannot be written is only a slower next open
        with contextlib.suppress(OSError):
            temporary.unlink()


def load(folder: Path) -> Saved | None:
    """The saved index, or None when there is none or it is not one this version wrote.

    The caller must still check that the log holds the head line just before the position.
    """
    try:
        raw: dict[str, Any] = orjson.loads((folder / FILE).read_bytes())
        if raw.get("version") != _VERSION:
            return None
        ids = raw["ids"].split("\n")
        index = _Index(
            ids=dict(zip(ids, range(1, len(ids) + 1), strict=True)),
            kinds=raw["kinds"],
            entities=set(raw["entities"]),
            same_as={link: (a, b) for link, (a, b) in raw["same_as"].items()},
            retracted=set(raw["retracted"]),
        )
        head = Head(**raw["head"])
        next_seq, first, offset, line = raw["position"]
        marks = {seq: (f, o, n) for seq, f, o, n in raw["marks"]}
        if head.seq != len(ids) or next_seq != head.seq + 1:
            return None
        return Saved(index, head, (next_seq, first, offset, line), marks)
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
