"""Benchmarks of solidline, each side by side with a baseline run in the same process run.

``python -m benchmarks`` runs them all and prints a table; ``--events`` sets the size of the
large log (generated once by :mod:`benchmarks.generate` into a cache folder outside the
repository). Absolute times on a shared machine mean little: every figure is reported beside a
baseline measured in the same run, in alternating rounds, and the ratio is what the targets are
about. Each module has ``run(context) -> list[Figure]``.
"""

from __future__ import annotations

import gc
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Context", "Figure", "rounds", "timed"]


@dataclass(frozen=True)
class Figure:
    """One measured figure, its baseline, and the target it is held to.

    ``higher_is_better`` says which way the ratio ``value / baseline_value`` should go; ``met``
    is None where there is no target, only a figure to report.
    """

    name: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    target: str = ""
    met: bool | None = None
    command: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if not self.baseline_value:
            return None
        return self.value / self.baseline_value


@dataclass
class Context:
    """What every benchmark gets: sizes, a scratch folder, and the cached synthetic logs."""

    events: int = 100_000
    small: int = 1_000
    repeats: int = 3
    cache: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "solidline-bench")
    scratch: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="solidline-bench-")))
    command: str = "python -m benchmarks"

    def log(self, count: int) -> Path:
        """The synthetic log of ``count`` events (seed 1), generated on first use."""
        from .generate import cached_log

        return cached_log(count, 1, self.cache)

    def copy_log(self, count: int, name: str) -> Path:
        """A private copy of the synthetic log, for benchmarks that append to it."""
        target = self.scratch / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(self.log(count), target)
        return target

    def fresh(self, name: str) -> Path:
        """An empty scratch folder."""
        target = self.scratch / name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        return target

    def cleanup(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds of wall time one call takes, and its result.

    The garbage collector runs as it would for a user (it is only made to start clean).
    """
    gc.collect()
    began = time.perf_counter()
    result = fn()
    return time.perf_counter() - began, result


def rounds(cases: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """The best time of each case over ``repeats`` rounds, the cases alternating in each round.

    Alternating keeps a burst of load from other processes from landing on one case only.
    """
    best: dict[str, float] = {}
    for _ in range(repeats):
        for name, fn in cases.items():
            seconds, _ = timed(fn)
            best[name] = min(best.get(name, seconds), seconds)
    return best
