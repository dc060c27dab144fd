"""Verify: check the seq and hash chain of every line, and (in full) decode every event.

Baseline in the same rounds: ``orjson.loads`` over the same files. Target: the chain check
(``solidline verify --chain-only``) at 1,000,000 lines/s or more.
"""

from __future__ import annotations

from solidline import JsonlLog

from . import Context, Figure, rounds
from .baselines import orjson_loop

__all__ = ["run"]


def run(context: Context) -> list[Figure]:
    count = context.events
    path = context.log(count)

    def verify(decode: bool) -> int:
        with JsonlLog(path, readonly=True) as log:
            return log.verify(decode=decode).lines

    best = rounds(
        {
            "chain": lambda: verify(False),
            "full": lambda: verify(True),
            "orjson": lambda: orjson_loop(path),
        },
        context.repeats,
    )
    rate = {name: count / seconds for name, seconds in best.items()}
    command = f"{context.command} --only verify --events {count}"
    return [
        Figure(f"verify --chain-only, {count:,} lines", rate["chain"], "lines/s",
               "orjson.loads loop over the same files", rate["orjson"], "≥ 1,000,000 lines/s",
               rate["chain"] >= 1_000_000, command),
        Figure(f"verify (chain and every event decoded), {count:,} lines", rate["full"],
               "lines/s", "orjson.loads loop over the same files", rate["orjson"],
               "(for reference)", None, command),
    ]
