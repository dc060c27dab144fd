"""Timelines in other shapes: readable text for a terminal, and TimelineJS's JSON format."""

from __future__ import annotations

import datetime as dt
from typing import Any

from markupsafe import escape

from .dates import EDTFDate, Precision
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
        "title": {
            "text": {
                "headline": str(escape(timeline.title)),
                "text": f"{len(timeline.entries)} events",
            }
        },
        "events": [
            _timelinejs_event(entry) for entry in timeline.entries if _placeable(entry.when)
        ],
    }


def _placeable(when: EDTFDate) -> bool:
    """Whether the date has a known day, month or year to place it at (by its parts, not its
    bounds: ``0001/..`` spans every day there is, and starts in year 1)."""
    return not when.is_interval or when.start is not None or when.end is not None


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
    }
    if not when.is_interval:
        event["start_date"] = _tjs_date(when.lower, when.precision)
        return event
    # each end of an interval at its own precision: 1945/1975 runs from 1945 to 1975, not to
    # 31 December 1975; an open start is placed at the end, an open end at the start
    start, end = when.start, when.end
    first = start if start is not None else end
    assert first is not None  # parse_date refuses an interval with neither end
    event["start_date"] = _tjs_date(first.lower, first.precision)
    if start is not None and end is not None:
        end_date = _tjs_date(end.upper, end.precision)
        if _first_day(end_date) < _first_day(event["start_date"]):  # 2024-06/2024: to the day
            end_date = _tjs_date(end.upper, Precision.DAY)
        if end_date != event["start_date"]:
            event["end_date"] = end_date
    return event


def _tjs_date(day: dt.date, precision: Precision) -> dict[str, int]:
    """A TimelineJS date with the parts the precision knows (a season: its first month)."""
    date = {"year": day.year}
    if precision in (Precision.DAY, Precision.MONTH, Precision.SEASON):
        date["month"] = day.month
    if precision is Precision.DAY:
        date["day"] = day.day
    return date


def _first_day(date: dict[str, int]) -> dt.date:
    return dt.date(date["year"], date.get("month", 1), date.get("day", 1))
