"""Timelines in other shapes: readable text for a terminal, and TimelineJS's JSON format."""

from __future__ import annotations

import datetime as dt
from typing import Any

from markupsafe import escape

from .dates import EDTFDate
from .model import Source
from .timeline import Entry, Timeline

__all__ = ["describe_source", "timeline_text", "timelinejs"]

_STATUS_MARK = {"scheduled": "scheduled", "postponed": "postponed", "cancelled": "cancelled"}


def describe_source(source: Source) -> str:
    """``Title (Publisher, 8 October 2024)``."""
    return f"{source.title} ({source.publisher}, {source.published.display()})"


def timeline_text(timeline: Timeline, *, color: bool = False) -> str:
    """The timeline as plain text: one block per entry, date first, sources indented."""
    lines = [_bold(timeline.title, color), _bold("=" * len(timeline.title), color)]
    if not timeline.entries:
        lines.append("(no entries)")
    for entry in timeline.entries:
        status = _STATUS_MARK.get(entry.status)
        mark = f"  [{status}]" if status else ""
        lines.append("")
        lines.append(f"{_bold(entry.when.display(), color)}  {entry.title}{mark}")
        if entry.event.summary:
            lines.append(f"    {entry.event.summary}")
        for source in entry.sources:
            lines.append(f"    source: {describe_source(source)}")
    return "\n".join(lines)


def _bold(text: str, color: bool) -> str:
    return f"\x1b[1m{text}\x1b[0m" if color else text


def timelinejs(timeline: Timeline) -> dict[str, Any]:
    """The timeline in Knight Lab TimelineJS's JSON format (``timeline.json``).

    Dates keep their precision (a month-precise date has no day); spans get an ``end_date``.
    Text fields are HTML there, so every value is escaped.
    """
    return {
        "title": {"text": {"headline": str(escape(timeline.title)),
                           "text": f"{len(timeline.entries)} events"}},
        "events": [_timelinejs_event(entry) for entry in timeline.entries if _placeable(entry.when)],
    }


def _placeable(when: EDTFDate) -> bool:
    return when.lower != dt.date.min or when.upper != dt.date.max


def _timelinejs_event(entry: Entry) -> dict[str, Any]:
    when = entry.when
    sources = "".join(f"<li>{escape(describe_source(s))}</li>" for s in entry.sources)
    event: dict[str, Any] = {
        "unique_id": entry.id,
        "group": entry.event.type,
        "display_date": when.display(),
        "text": {
            "headline": str(escape(entry.title)),
            "text": f"<p>{escape(entry.event.summary)}</p><ul>{sources}</ul>",
        },
        "start_date": _tjs_date(when.lower if when.lower != dt.date.min else when.upper, when),
    }
    if when.is_interval and when.upper not in (dt.date.max, when.lower):
        event["end_date"] = _tjs_date(when.upper, when)
    return event


def _tjs_date(day: dt.date, when: EDTFDate) -> dict[str, int]:
    precision = when.precision.name
    date = {"year": day.year}
    if precision in ("DAY", "MONTH", "INTERVAL"):
        date["month"] = day.month
    if precision in ("DAY", "INTERVAL"):
        date["day"] = day.day
    return date
