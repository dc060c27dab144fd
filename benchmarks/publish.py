"""Publish: a full rebuild, a scheduled run with nothing new, and a run after 100 new events.

All on private copies of the synthetic logs. The full rebuild runs in a child process, which
reports its own time and peak resident memory (``ru_maxrss``, the interpreter included).

Targets: a no-op run on the large log costs at most 1.5× the no-op run on the small log;
appending 100 events and publishing costs under 5 % of the full rebuild; peak memory of the
full rebuild is reported and held to under twice the log's size on disk.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from solidline import JsonlLog, publish
from solidline.config import Config, LogConfig, SiteConfig

from . import Context, Figure, rounds, timed
from .generate import more_events

__all__ = ["full_publish", "run"]

_CHILD = """
import json, resource, sys, time
from pathlib import Path
from solidline import publish
from solidline.config import Config, LogConfig, SiteConfig
log, output = sys.argv[1], sys.argv[2]
config = Config(root=Path(output).parent, log=LogConfig(path=log),
                site=SiteConfig(output=output, base_url="https://example.org/record/"))
began = time.perf_counter()
report = publish(config)
seconds = time.perf_counter() - began
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "maxrss_kb": peak, "written": len(report.written),
                  "rendered": report.rendered}))
"""


def config(log: Path, output: Path) -> Config:
    return Config(root=output.parent, log=LogConfig(path=str(log)),
                  site=SiteConfig(output=str(output), base_url="https://example.org/record/"))


def full_publish(log: Path, output: Path) -> dict[str, float]:
    """Publish the log into an empty folder in a child process: its seconds and peak memory."""
    done = subprocess.run([sys.executable, "-c", _CHILD, str(log), str(output)],
                          check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def log_bytes(log: Path) -> int:
    return sum(p.stat().st_size for p in log.glob("*.jsonl"))


def run(context: Context) -> list[Figure]:
    count, small = context.events, context.small
    large_log = context.copy_log(count, "publish-large")
    small_log = context.copy_log(small, "publish-small")
    large_out, small_out = context.scratch / "out-large", context.scratch / "out-small"
    full = full_publish(large_log, large_out)
    full_publish(small_log, small_out)
    large_config, small_config = config(large_log, large_out), config(small_log, small_out)
    # The steady state of a scheduled run: a run stamps the output folders once they are more
    # than 2 s old (site._COARSE_NS), and from then on stats only them. Both sides get there
    # before the rounds, so neither is measured checking every file.
    time.sleep(2.1)
    assert publish(large_config).nothing_new
    assert publish(small_config).nothing_new
    noop = rounds({"large": lambda: publish(large_config), "small": lambda: publish(small_config)},
                  max(context.repeats, 5))
    assert publish(large_config).nothing_new
    assert publish(small_config).nothing_new
    new = more_events(large_log, 100)

    def append() -> None:
        with JsonlLog(large_log) as log:
            log.append(new)

    append_seconds, _ = timed(append)
    update_seconds, report = timed(lambda: publish(large_config))
    size = log_bytes(large_log)
    peak = full["maxrss_kb"] * 1024
    command = f"{context.command} --only publish --events {count} --small {small}"
    return [
        Figure(f"no-op publish, {count:,}-event log", noop["large"], "s",
               f"no-op publish, {small:,}-event log", noop["small"], "≤ 1.5×",
               noop["large"] <= 1.5 * noop["small"], command),
        Figure(f"append 100 events to the {count:,}-event log and publish",
               append_seconds + update_seconds, "s", f"full publish of {count:,} events",
               full["seconds"], "< 5 %", append_seconds + update_seconds < 0.05 * full["seconds"],
               command, f"append {append_seconds:.2f} s (opening the log and indexing it "
               f"included), publish {update_seconds:.2f} s ({report.rendered} timelines "
               f"rendered, {len(report.written)} files written)"),
        Figure(f"peak memory of a full publish of {count:,} events", peak / 1e6, "MB",
               "the log's size on disk", size / 1e6, "< 2×", peak < 2 * size, command,
               f"full publish {full['seconds']:.1f} s, {int(full['rendered'])} timelines, "
               f"{int(full['written'])} files"),
    ]
