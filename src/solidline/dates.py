"""Dates as EDTF strings: parse them, bound them, sort them and show them to people.

solidline writes when an event happened as an EDTF string (the Library of Congress Extended
Date/Time Format). It understands this subset of levels 0 and 1:

=======================  ======================================  ========================
Form                     Examples                                Precision
=======================  ======================================  ========================
day                      ``2024-09-22``                          ``DAY``
month                    ``2024-06``                             ``MONTH``
season (21–24)           ``2024-21``                             ``SEASON``
year                     ``2026``                                ``YEAR``
unknown month (and day)  ``2024-XX``, ``2024-XX-XX``             ``YEAR``
unknown day              ``2024-06-XX``                          ``MONTH``
decade                   ``202X``                                ``DECADE``
century                  ``19XX``                                ``CENTURY``
qualified                ``2021~``, ``2024-06?``, ``2024-06%``   that of the date
interval                 ``1945/1975``, ``2024-06~/2024-09``     ``INTERVAL``
open end                 ``1962-09-05/..``, ``../2021``          ``INTERVAL``
unknown end              ``2021/``, ``/2021``                    ``INTERVAL``
=======================  ======================================  ========================

``?`` marks a date as uncertain, ``~`` as approximate and ``%`` as both; a qualifier applies to
the whole date (or interval end) it follows and does not widen its bounds. Seasons are the
northern-hemisphere meteorological ones: spring is March–May, summer June–August, autumn
September–November and winter December to February of the next year. Years run from 0001 to
9999; negative years, ``Y`` long years, level 2 forms and times of day are rejected with an
:class:`~solidline._errors.InvalidDate` that says why. An interval may not have both ends open or
unknown, and its start may not lie wholly after its end.

The parser is a single regular expression per date plus integer checks, a few microseconds a
date, and :func:`parse_date` caches what it parsed.
"""

from __future__ import annotations

import datetime
import enum
import functools
import re
from typing import Final

import attrs

from solidline._errors import InvalidDate

__all__ = ["EDTFDate", "Precision", "parse_date"]


class Precision(enum.Enum):
    """How finely an :class:`EDTFDate` is known."""

    DAY = "day"
    MONTH = "month"
    SEASON = "season"
    YEAR = "year"
    DECADE = "decade"
    CENTURY = "century"
    INTERVAL = "interval"


@attrs.frozen(slots=True, repr=False)
class EDTFDate:
    """A parsed EDTF date; build it with :func:`parse_date`.

    Two dates are equal (and hash alike) when their texts are: ``2024`` and ``2024-XX`` share
    bounds but are different dates. Dates are deliberately not orderable; sort by
    :attr:`sort_key`.

    Attributes:
        text: the EDTF string exactly as given; ``str(date)`` returns it.
        lower: the earliest day the date can mean (``date.min`` for an open or unknown start).
        upper: the latest day the date can mean (``date.max`` for an open or unknown end).
        precision: how finely the date is known; ``INTERVAL`` for intervals.
        uncertain: ``?`` or ``%`` (on either end, for an interval).
        approximate: ``~`` or ``%`` (on either end, for an interval).
        is_interval: whether the text has a ``/``.
        start: an interval's start, ``None`` when open or unknown (and for single dates).
        end: an interval's end, ``None`` when open or unknown (and for single dates).
        sort_key: ``(lower.toordinal(), -upper.toordinal())``: earlier first, and for the same
            first day the wider span first. Plain ints, so sorting millions of dates is cheap.
    """

    text: str
    lower: datetime.date = attrs.field(eq=False)
    upper: datetime.date = attrs.field(eq=False)
    precision: Precision = attrs.field(eq=False)
    uncertain: bool = attrs.field(default=False, eq=False)
    approximate: bool = attrs.field(default=False, eq=False)
    is_interval: bool = attrs.field(default=False, eq=False)
    start: EDTFDate | None = attrs.field(default=None, eq=False)
    end: EDTFDate | None = attrs.field(default=None, eq=False)
    sort_key: tuple[int, int] = attrs.field(init=False, eq=False)

    @sort_key.default
    def _sort_key(self) -> tuple[int, int]:
        return (self.lower.toordinal(), -self.upper.toordinal())

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"parse_date({self.text!r})"

    @property
    def open_start(self) -> bool:
        """Whether this is an interval whose start is open (``..``) or unknown (empty)."""
        return self.is_interval and self.start is None

    @property
    def open_end(self) -> bool:
        """Whether this is an interval whose end is open (``..``) or unknown (empty)."""
        return self.is_interval and self.end is None

    def contains(self, day: datetime.date) -> bool:
        """Whether ``day`` lies within the date's bounds (both ends included).

        Args:
            day: the day to test.

        Returns:
            ``lower <= day <= upper``.
        """
        return self.lower <= day <= self.upper

    def display(self) -> str:
        """The date in plain English, for pages, feeds and mails.

        Single dates read ``22 September 2024``, ``June 2024``, ``spring 2024``, ``2026``,
        ``the 2020s`` (``202X``) and ``the 1900s`` (``19XX``); a decade that opens a century
        (``190X``) reads ``1900–1909`` so that it is not taken for the century. Unknown parts
        are noted: ``2024 (month unknown)``. ``~`` puts ``about`` in front, ``?`` adds
        ``(uncertain)`` and ``%`` does both: ``about June 2024 (uncertain)``.

        Intervals join their ends with an en dash, closed up between two single words
        (``1945–1975``) and spaced otherwise (``22 June 2024 – 3 July 2024``). An open end reads
        ``from 5 September 1962`` or ``until 2021``; an unknown one adds a note:
        ``from 2021 (end unknown)``, ``until 2021 (start unknown)``.

        Returns:
            the English text; it is never empty.
        """
        if self.is_interval:
            return _display_interval(self)
        return _display_single(self)


_MONTHS: Final = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# Index 0 is unused so that a month number indexes it directly; February is fixed up for leap years.
_DAYS_IN_MONTH: Final = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# Season code -> (name, first month); each spans three months, winter into the next year.
_SEASONS: Final = {
    21: ("spring", 3),
    22: ("summer", 6),
    23: ("autumn", 9),
    24: ("winter", 12),
}
_EXAMPLES: Final = "expected e.g. 2024-09-22, 2024-06, 2026, 1945/1975, 2021~"
# The longest text the subset allows is a qualified day interval (23 characters); anything much
# longer is rejected before the regular expression looks at it.
_MAX_LENGTH: Final = 40
_SINGLE: Final = re.compile(
    r"(?P<year>[0-9]{4}|[0-9]{3}X|[0-9]{2}XX)"
    r"(?:-(?P<month>[0-9]{2}|XX)(?:-(?P<day>[0-9]{2}|XX))?)?"
    r"(?P<qualifier>[?~%]?)",
    re.ASCII,
)
_OPEN: Final = ".."


@functools.lru_cache(maxsize=1 << 17)  # a million events hold some 70,000 distinct dates
def parse_date(text: str) -> EDTFDate:
    """Parse an EDTF string of the subset described in this module's docstring.

    Results are cached (the last 131,072 distinct texts), so parsing the same date twice is a
    dictionary look-up.

    Args:
        text: the EDTF string, with no whitespace around it.

    Returns:
        the parsed date.

    Raises:
        InvalidDate: the text is not in the supported subset; the message says why and shows
            valid forms.
    """
    if len(text) > _MAX_LENGTH:
        raise _invalid(text, f"it is longer than {_MAX_LENGTH} characters")
    if "/" in text:
        return _parse_interval(text)
    return _parse_single(text, text)


def _invalid(text: str, reason: str) -> InvalidDate:
    shown = repr(text) if len(text) <= _MAX_LENGTH else repr(text[:_MAX_LENGTH]) + "…"
    return InvalidDate(f"{shown} is not an EDTF date: {reason} ({_EXAMPLES})")


def _parse_single(part: str, text: str) -> EDTFDate:
    """Parse one date (not an interval); ``text`` is the whole string, for messages."""
    return _plain_day(part) or _parse_form(part, text)


def _parse_form(part: str, text: str) -> EDTFDate:
    """:func:`_parse_single` by the regular expression, for every form and every fault."""
    match = _SINGLE.fullmatch(part)
    if match is None:
        raise _invalid(text, _explain_mismatch(part))
    year, month, day, qualifier = match.group("year", "month", "day", "qualifier")
    if "X" in year:
        if month is not None:
            raise _invalid(text, f"a year with X digits ({year}) cannot have a month")
        lower, upper, precision = _unspecified_year(year, text)
    elif month is None:
        number = _year(year, text)
        lower, upper, precision = _year_start(number), _year_end(number), Precision.YEAR
    else:
        lower, upper, precision = _month_or_day(_year(year, text), month, day, text)
    return EDTFDate(
        text=part,
        lower=lower,
        upper=upper,
        precision=precision,
        uncertain=qualifier in ("?", "%"),
        approximate=qualifier in ("~", "%"),
    )


def _plain_day(part: str) -> EDTFDate | None:
    """``YYYY-MM-DD`` naming a real day, the form most dates take; None for anything else.

    The same date :func:`_parse_form` builds, without the regular expression: a record of a
    million events holds tens of thousands of distinct days. Anything unusual (another form, a
    day that does not exist, year 0000) is left to it and its messages.
    """
    if len(part) != 10 or part[4] != "-" or part[7] != "-" or not part.isascii():
        return None
    year, month, day = part[:4], part[5:7], part[8:]
    if not (year.isdigit() and month.isdigit() and day.isdigit()):
        return None
    try:
        exact = datetime.date(int(year), int(month), int(day))
    except ValueError:
        return None
    return EDTFDate(text=part, lower=exact, upper=exact, precision=Precision.DAY)


def _explain_mismatch(part: str) -> str:
    """Say why ``part`` is not a date, as precisely as cheap checks allow."""
    if not part:
        return "it is empty"
    if part != part.strip():
        return "it has whitespace around it; remove it"
    if part.startswith("-"):
        return "negative years are not supported (years run from 0001 to 9999)"
    if part.startswith("Y"):
        return "long years (Y…) are not supported (years run from 0001 to 9999)"
    if "T" in part or ":" in part:
        return "times of day are not supported; give the date only"
    if "x" in part:
        return "unknown digits are written with a capital X"
    if re.fullmatch(r"[0-9]{1,3}|[0-9]{5,}", part, re.ASCII):
        return "a year has exactly four digits"
    if re.fullmatch(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}|[0-9]{4}-[0-9]", part, re.ASCII):
        return "months and days have exactly two digits"
    return "it is not a form solidline understands"


def _year(digits: str, text: str) -> int:
    number = int(digits)
    if number == 0:
        raise _invalid(text, "year 0000 is not supported (years run from 0001 to 9999)")
    return number


def _year_start(year: int) -> datetime.date:
    return datetime.date(year, 1, 1)


def _year_end(year: int) -> datetime.date:
    return datetime.date(year, 12, 31)


def _unspecified_year(digits: str, text: str) -> tuple[datetime.date, datetime.date, Precision]:
    """Bounds of ``202X`` (a decade) or ``19XX`` (a century)."""
    is_century = digits.endswith("XX")
    first = int(digits.replace("X", "0"))
    if first == 0:
        raise _invalid(text, f"{digits} would include year 0000, which is not supported")
    span = 100 if is_century else 10
    precision = Precision.CENTURY if is_century else Precision.DECADE
    return _year_start(first), _year_end(first + span - 1), precision


def _month_or_day(
    year: int, month: str, day: str | None, text: str
) -> tuple[datetime.date, datetime.date, Precision]:
    """Bounds of ``YYYY-MM``, ``YYYY-MM-DD``, a season or their ``XX`` forms."""
    if month == "XX":
        if day is not None and day != "XX":
            raise _invalid(text, "a day cannot follow an unknown month (XX)")
        return _year_start(year), _year_end(year), Precision.YEAR
    number = int(month)
    if number in _SEASONS:
        if day is not None:
            raise _invalid(text, f"a season ({month}) cannot have a day")
        return _season_bounds(year, number, text)
    if 25 <= number <= 41:
        raise _invalid(text, f"season {number} is not supported (only 21–24, spring to winter)")
    if not 1 <= number <= 12:
        raise _invalid(text, f"month {number} is out of range")
    last = _days_in_month(year, number)
    if day is None or day == "XX":
        first_day = datetime.date(year, number, 1)
        return first_day, datetime.date(year, number, last), Precision.MONTH
    return _day(year, number, int(day), last, text)


def _day(
    year: int, month: int, day: int, last: int, text: str
) -> tuple[datetime.date, datetime.date, Precision]:
    if not 1 <= day <= last:
        name = _MONTHS[month - 1]
        raise _invalid(text, f"day {day} is out of range for {name} {year} (1–{last})")
    exact = datetime.date(year, month, day)
    return exact, exact, Precision.DAY


def _days_in_month(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _DAYS_IN_MONTH[month]


def _season_bounds(
    year: int, season: int, text: str
) -> tuple[datetime.date, datetime.date, Precision]:
    first_month = _SEASONS[season][1]
    end_year, end_month = (year + 1, 2) if first_month == 12 else (year, first_month + 2)
    if end_year > datetime.MAXYEAR:
        raise _invalid(text, f"winter {year} runs into {end_year} (years run from 0001 to 9999)")
    last = datetime.date(end_year, end_month, _days_in_month(end_year, end_month))
    return datetime.date(year, first_month, 1), last, Precision.SEASON


def _parse_interval(text: str) -> EDTFDate:
    first, _, second = text.partition("/")
    if "/" in second:
        raise _invalid(text, "it has more than one '/'")
    start = _interval_end(first, text)
    end = _interval_end(second, text)
    if start is None and end is None:
        raise _invalid(text, "an interval needs at least one known end")
    if start is not None and end is not None and start.lower > end.upper:
        raise _invalid(text, f"the start ({start.text}) is after the end ({end.text})")
    return EDTFDate(
        text=text,
        lower=datetime.date.min if start is None else start.lower,
        upper=datetime.date.max if end is None else end.upper,
        precision=Precision.INTERVAL,
        uncertain=any(e is not None and e.uncertain for e in (start, end)),
        approximate=any(e is not None and e.approximate for e in (start, end)),
        is_interval=True,
        start=start,
        end=end,
    )


def _interval_end(part: str, text: str) -> EDTFDate | None:
    """Parse one side of an interval: ``None`` for open (``..``) or unknown (empty)."""
    if part in ("", _OPEN):
        return None
    if part != part.strip():
        raise _invalid(text, "an interval end has whitespace around it; remove it")
    return _parse_single(part, text)


def _display_single(date: EDTFDate) -> str:
    text = date.text.rstrip("?~%")
    shown, notes = _display_base(text, date)
    if date.uncertain:
        notes.append("uncertain")
    if notes:
        shown = f"{shown} ({', '.join(notes)})"
    return f"about {shown}" if date.approximate else shown


def _display_base(text: str, date: EDTFDate) -> tuple[str, list[str]]:
    """The unqualified English for a single date, and notes on what is unknown in it."""
    year, _, rest = text.partition("-")
    month, _, day = rest.partition("-")
    if "X" in year:
        return _display_unspecified_year(date), []
    shown_year = str(date.lower.year)
    if not month:
        return shown_year, []
    if month == "XX":
        return shown_year, ["month and day unknown" if day else "month unknown"]
    if int(month) in _SEASONS:
        return f"{_SEASONS[int(month)][0]} {shown_year}", []
    month_year = f"{_MONTHS[date.lower.month - 1]} {shown_year}"
    if not day:
        return month_year, []
    if day == "XX":
        return month_year, ["day unknown"]
    return f"{date.lower.day} {month_year}", []


def _display_unspecified_year(date: EDTFDate) -> str:
    first, last = date.lower.year, date.upper.year
    if date.precision is Precision.DECADE and first % 100 == 0:
        # "the 1900s" is the century 19XX; the decade 190X needs its years spelled out.
        return f"{first}–{last}"
    return f"the {first}s"


def _display_interval(date: EDTFDate) -> str:
    start, end = date.start, date.end
    if start is None:
        # parse_date rejects an interval with neither end, so ``end`` is set here.
        note = " (start unknown)" if date.text.startswith("/") else ""
        return f"until {_display_end(end)}{note}"
    if end is None:
        note = " (end unknown)" if date.text.endswith("/") else ""
        return f"from {start.display()}{note}"
    first, second = start.display(), end.display()
    dash = "–" if " " not in first and " " not in second else " – "
    return f"{first}{dash}{second}"


def _display_end(end: EDTFDate | None) -> str:
    return "an unknown date" if end is None else end.display()
