"""Windows: spans of recorded time that a digest covers.

A :class:`Window` is a span of *recorded* time (when lines entered the log, not when events
happened): a day, an ISO week (Monday to Monday) or a calendar month, in UTC
(:func:`window_ending`, :func:`last_window`), or the span since the last send
(:func:`window_since`). :func:`day_span` and :func:`long_date` write its days for people.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Final, Literal

import attrs

__all__ = [
    "PERIODS",
    "Period",
    "Window",
    "day_span",
    "last_window",
    "long_date",
    "window_ending",
    "window_since",
]

Period = Literal["daily", "weekly", "monthly"]
PERIODS: Final[tuple[Period, ...]] = ("daily", "weekly", "monthly")

_UTC = dt.UTC
_MONTHS = tuple(calendar.month_name)


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError(f"a window's bounds must be timezone-aware, got {value!r}")
    return value.astimezone(_UTC)


@attrs.frozen
class Window:
    """A window of recorded time, ``start`` included and ``end`` excluded, in UTC.

    Attributes:
        start: the first moment in the window.
        end: the first moment after it.
        period: ``daily``, ``weekly``, ``monthly`` or ``since-last-send``.
    """

    start: dt.datetime = attrs.field(converter=_utc)
    end: dt.datetime = attrs.field(converter=_utc)
    period: str = "weekly"

    def __attrs_post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"a window must end after it starts: {self.start} to {self.end}")

    def contains(self, moment: dt.datetime) -> bool:
        """Whether ``moment`` lies in ``[start, end)``."""
        return self.start <= moment < self.end

    @property
    def label(self) -> str:
        """``20261123-20261130`` (or with times, ``20261123T145619Z-…``): for ids and names."""
        return f"{_compact(self.start)}-{_compact(self.end)}"

    @property
    def last_moment(self) -> dt.datetime:
        """The last moment in the window (what the record said then is what it covers)."""
        return self.end - dt.timedelta(microseconds=1)

    def dates(self) -> str:
        """The days the window covers, for people: ``23–29 November 2026``."""
        return day_span(self.start.date(), self.last_moment.date())

    def days_after(self) -> tuple[dt.date, int]:
        """The first day after the window and how many days it spans (at least one)."""
        span = max(1, (self.end.date() - self.start.date()).days)
        return self.end.date(), span


def _compact(moment: dt.datetime) -> str:
    if moment.time() == dt.time(0):
        return moment.strftime("%Y%m%d")
    return moment.strftime("%Y%m%dT%H%M%SZ")


def day_span(first: dt.date, last: dt.date) -> str:
    """``23–29 November 2026``, ``30 November – 6 December 2026``, or one day."""
    if first == last:
        return long_date(first)
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}–{last.day} {_MONTHS[last.month]} {last.year}"
    if first.year == last.year:
        return f"{first.day} {_MONTHS[first.month]} – {long_date(last)}"
    return f"{long_date(first)} – {long_date(last)}"


def long_date(day: dt.date) -> str:
    """``23 November 2026``."""
    return f"{day.day} {_MONTHS[day.month]} {day.year}"


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=_UTC)


def _period_start(period: Period, end: dt.date) -> dt.date:
    if period == "daily":
        return end - dt.timedelta(days=1)
    if period == "weekly":
        return end - dt.timedelta(days=7)
    return (end - dt.timedelta(days=1)).replace(day=1)


def _is_boundary(period: Period, day: dt.date) -> bool:
    return period == "daily" or (period == "weekly" and day.weekday() == 0) or day.day == 1


def window_ending(period: Period, end: dt.date) -> Window:
    """The daily, weekly (Monday to Monday) or monthly window that ends at midnight UTC of ``end``.

    Raises:
        ValueError: ``end`` is not where such a window ends (a Monday, the 1st of a month).
    """
    if period not in PERIODS:
        raise ValueError(f"{period!r} is not a period; use one of {', '.join(PERIODS)}")
    if not _is_boundary(period, end):
        before = last_window(period, _midnight(end)).end.date()
        after = before + (dt.timedelta(days=7) if period == "weekly" else dt.timedelta(days=31))
        after = after.replace(day=1) if period == "monthly" else after
        what = "weeks run Monday to Monday" if period == "weekly" else "months run 1st to 1st"
        raise ValueError(
            f"no {period} window ends on {end} ({what}, UTC); the nearest end on "
            f"{before} and {after}"
        )
    return Window(_midnight(_period_start(period, end)), _midnight(end), period)


def last_window(period: Period, now: dt.datetime) -> Window:
    """The last whole window that has ended by ``now``."""
    today = now.astimezone(_UTC).date()
    if period == "weekly":
        end = today - dt.timedelta(days=today.weekday())
    elif period == "monthly":
        end = today.replace(day=1)
    else:
        end = today
    return window_ending(period, end)


def window_since(start: dt.datetime, now: dt.datetime) -> Window:
    """The window from ``start`` (the end of the last send) to ``now``, to the second."""
    return Window(start, now.astimezone(_UTC).replace(microsecond=0), "since-last-send")
