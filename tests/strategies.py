"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

import calendar
import datetime

from hypothesis import strategies as st

# --- Dates ------------------------------------------------------------------------------------
# EDTF strings of the subset solidline.dates supports. Each generator also yields the bounds the
# text should have, worked out here independently of the parser, so tests can check one against
# the other.

Bounded = tuple[str, datetime.date, datetime.date]

_FIRST_DAY = datetime.date(1, 1, 1)
_LAST_DAY = datetime.date(9999, 12, 31)
_SEASON_MONTHS = {"21": (3, 5), "22": (6, 8), "23": (9, 11), "24": (12, 2)}


def _last_day(year: int, month: int) -> datetime.date:
    return datetime.date(year, month, calendar.monthrange(year, month)[1])


def _whole_years(text: str, first: int, last: int) -> Bounded:
    return text, datetime.date(first, 1, 1), datetime.date(last, 12, 31)


def _days() -> st.SearchStrategy[Bounded]:
    return st.dates(_FIRST_DAY, _LAST_DAY).map(lambda d: (d.isoformat(), d, d))


def _months() -> st.SearchStrategy[Bounded]:
    return st.dates(_FIRST_DAY, _LAST_DAY).map(
        lambda d: (d.isoformat()[:7], d.replace(day=1), _last_day(d.year, d.month))
    )


def _unknown_days() -> st.SearchStrategy[Bounded]:
    return _months().map(lambda b: (b[0] + "-XX", b[1], b[2]))


def _years() -> st.SearchStrategy[Bounded]:
    return st.integers(1, 9999).map(lambda y: _whole_years(f"{y:04d}", y, y))


def _unknown_months() -> st.SearchStrategy[Bounded]:
    suffixes = st.sampled_from(["-XX", "-XX-XX"])
    return st.tuples(_years(), suffixes).map(lambda t: (t[0][0] + t[1], t[0][1], t[0][2]))


def _decades() -> st.SearchStrategy[Bounded]:
    return st.integers(1, 999).map(lambda d: _whole_years(f"{d:03d}X", d * 10, d * 10 + 9))


def _centuries() -> st.SearchStrategy[Bounded]:
    return st.integers(1, 99).map(lambda c: _whole_years(f"{c:02d}XX", c * 100, c * 100 + 99))


def _season(year: int, code: str) -> Bounded:
    first, last = _SEASON_MONTHS[code]
    last_year = year + 1 if last < first else year
    return f"{year:04d}-{code}", datetime.date(year, first, 1), _last_day(last_year, last)


def _seasons() -> st.SearchStrategy[Bounded]:
    # Winter 9999 would end in the year 10000, which the parser rightly rejects.
    codes = st.sampled_from(sorted(_SEASON_MONTHS))
    return st.builds(_season, st.integers(1, 9998), codes)


def single_edtf_dates_with_bounds() -> st.SearchStrategy[Bounded]:
    """One EDTF date (no interval) of any supported form, qualified or not, with its bounds."""
    forms = st.one_of(
        _days(),
        _months(),
        _years(),
        _seasons(),
        _decades(),
        _centuries(),
        _unknown_months(),
        _unknown_days(),
    )
    qualifiers = st.sampled_from(["", "?", "~", "%"])
    return st.tuples(forms, qualifiers).map(lambda t: (t[0][0] + t[1], t[0][1], t[0][2]))


def _interval(start: Bounded | str, end: Bounded | str) -> Bounded:
    """Join two ends (a string is ``..`` or empty), swapping them if the start is after the end."""
    if not isinstance(start, str) and not isinstance(end, str) and start[1] > end[2]:
        start, end = end, start
    lower = _FIRST_DAY if isinstance(start, str) else start[1]
    upper = _LAST_DAY if isinstance(end, str) else end[2]
    start_text = start if isinstance(start, str) else start[0]
    end_text = end if isinstance(end, str) else end[0]
    return f"{start_text}/{end_text}", lower, upper


def edtf_intervals_with_bounds() -> st.SearchStrategy[Bounded]:
    """An EDTF interval, with open (``..``) or unknown (empty) ends now and then."""
    ends = st.one_of(single_edtf_dates_with_bounds(), st.sampled_from(["..", ""]))
    pairs = st.tuples(ends, ends).filter(
        lambda p: not (isinstance(p[0], str) and isinstance(p[1], str))
    )
    return pairs.map(lambda p: _interval(*p))


def edtf_dates_with_bounds() -> st.SearchStrategy[Bounded]:
    """Any supported EDTF string with the first and last day it can mean."""
    return st.one_of(single_edtf_dates_with_bounds(), edtf_intervals_with_bounds())


def edtf_dates() -> st.SearchStrategy[str]:
    """Any EDTF string solidline supports: every form, qualifier and kind of interval."""
    return edtf_dates_with_bounds().map(lambda b: b[0])
