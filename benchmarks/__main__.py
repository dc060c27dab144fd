"""``python -m benchmarks``: run every benchmark and print a table of figures and baselines.

Examples::

    python -m benchmarks                          # 100,000 events, 3 rounds
    python -m benchmarks --events 1000000         # the sizes the targets are stated for
    python -m benchmarks --only replay --only verify --repeats 5
    python -m benchmarks --events 2000 --repeats 1 --markdown results.md
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
from pathlib import Path

from . import Context, Figure

BENCHMARKS = ("replay", "verify", "append", "publish", "digest")


def machine() -> str:
    """Cores, CPU model and Python version, for the record of where figures were taken."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores, {model}, Python {platform.python_version()} "
            f"({platform.python_implementation()}), {platform.system()} {platform.release()}")


def _number(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def table(figures: list[Figure], *, markdown: bool = False) -> str:
    """The figures as a table: figure, baseline, ratio, target, met."""
    head = ("figure", "value", "baseline", "baseline value", "ratio", "target", "met")
    rows = []
    for f in figures:
        met = "" if f.met is None else ("yes" if f.met else "NO")
        ratio = "" if f.ratio is None else f"{f.ratio:.3g}×"
        rows.append((f.name, f"{_number(f.value)} {f.unit}", f.baseline,
                     _number(f.baseline_value), ratio, f.target, met))
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(head, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="size of the large log")
    parser.add_argument("--small", type=int, default=1_000,
                        help="size of the small log (the no-op publish comparison)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the best one counts")
    parser.add_argument("--only", action="append", choices=BENCHMARKS,
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--cache", type=Path, help="where generated logs are kept "
                        "(default: $TMPDIR/solidline-bench)")
    parser.add_argument("--markdown", type=Path, help="also write the table here, as Markdown")
    args = parser.parse_args(argv)
    context = Context(events=args.events, small=args.small, repeats=args.repeats)
    if args.cache:
        context.cache = args.cache
    print(f"# {machine()}", flush=True)
    figures: list[Figure] = []
    try:
        for name in args.only or BENCHMARKS:
            began = time.perf_counter()
            module = importlib.import_module(f"benchmarks.{name}")
            found = module.run(context)
            figures.extend(found)
            print(f"# {name}: {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
            print(table(found), flush=True)
    finally:
        context.cleanup()
    print()
    print(table(figures))
    if args.markdown:
        notes = "".join(f"- {f.name}: `{f.command}`" + (f"; {f.note}" if f.note else "") + "\n"
                        for f in figures)
        args.markdown.write_text(
            f"Machine: {machine()}\n\n{table(figures, markdown=True)}\n\n{notes}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
