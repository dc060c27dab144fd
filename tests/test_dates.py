"""Tests for solidline.dates: the EDTF subset, its bounds, sort key and English display."""

from __future__ import annotations

import datetime

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from solidline._errors import InvalidDate, SolidlineError
from solidline.dates import EDTFDate, Precision, _parse_form, _plain_day, parse_date
from strategies import edtf_dates, edtf_dates_with_bounds, edtf_intervals_with_bounds

D = datetime.date
MIN, MAX = datetime.date.min, datetime.date.max

SINGLE_DATES = [
    # text, lower, upper, precision, uncertain, approximate, display
    ("2024-09-22", D(2024, 9, 22), D(2024, 9, 22), Precision.DAY, False, False,
     "22 September 2024"),
    ("2024-06", D(2024, 6, 1), D(2024, 6, 30), Precision.MONTH, False, False, "June 2024"),
    ("2024-02", D(2024, 2, 1), D(2024, 2, 29), Precision.MONTH, False, False, "February 2024"),
    ("2026", D(2026, 1, 1), D(2026, 12, 31), Precision.YEAR, False, False, "2026"),
    ("0800", D(800, 1, 1), D(800, 12, 31), Precision.YEAR, False, False, "800"),
    ("2021~", D(2021, 1, 1), D(2021, 12, 31), Precision.YEAR, False, True, "about 2021"),
    ("2024-06?", D(2024, 6, 1), D(2024, 6, 30), Precision.MONTH, True, False,
     "June 2024 (uncertain)"),
    ("2024-06%", D(2024, 6, 1), D(2024, 6, 30), Precision.MONTH, True, True,
     "about June 2024 (uncertain)"),
    ("2024-06-12~", D(2024, 6, 12), D(2024, 6, 12), Precision.DAY, False, True,
     "about 12 June 2024"),
    ("202X", D(2020, 1, 1), D(2029, 12, 31), Precision.DECADE, False, False, "the 2020s"),
    ("190X", D(1900, 1, 1), D(1909, 12, 31), Precision.DECADE, False, False, "1900–1909"),
    ("19XX", D(1900, 1, 1), D(1999, 12, 31), Precision.CENTURY, False, False, "the 1900s"),
    ("2024-XX", D(2024, 1, 1), D(2024, 12, 31), Precision.YEAR, False, False,
     "2024 (month unknown)"),
    ("2024-XX-XX", D(2024, 1, 1), D(2024, 12, 31), Precision.YEAR, False, False,
     "2024 (month and day unknown)"),
    ("2024-06-XX", D(2024, 6, 1), D(2024, 6, 30), Precision.MONTH, False, False,
     "June 2024 (day unknown)"),
    ("2024-XX?", D(2024, 1, 1), D(2024, 12, 31), Precision.YEAR, True, False,
     "2024 (month unknown, uncertain)"),
    ("2024-21", D(2024, 3, 1), D(2024, 5, 31), Precision.SEASON, False, False, "spring 2024"),
    ("2024-22", D(2024, 6, 1), D(2024, 8, 31), Precision.SEASON, False, False, "summer 2024"),
    ("2024-23", D(2024, 9, 1), D(2024, 11, 30), Precision.SEASON, False, False, "autumn 2024"),
    ("2024-24", D(2024, 12, 1), D(2025, 2, 28), Precision.SEASON, False, False, "winter 2024"),
    ("2023-24", D(2023, 12, 1), D(2024, 2, 29), Precision.SEASON, False, False, "winter 2023"),
    ("2024-22~", D(2024, 6, 1), D(2024, 8, 31), Precision.SEASON, False, True,
     "about summer 2024"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "lower", "upper", "precision", "uncertain", "approximate", "display"), SINGLE_DATES
)
def test_single_dates(text, lower, upper, precision, uncertain, approximate, display):
    date = parse_date(text)
    assert (date.text, str(date)) == (text, text)
    assert (date.lower, date.upper) == (lower, upper)
    assert date.precision is precision
    assert (date.uncertain, date.approximate) == (uncertain, approximate)
    assert date.display() == display
    assert not date.is_interval
    assert (date.start, date.end, date.open_start, date.open_end) == (None, None, False, False)


INTERVALS = [
    # text, lower, upper, start text, end text, display
    ("1945/1975", D(1945, 1, 1), D(1975, 12, 31), "1945", "1975", "1945–1975"),
    ("1962-09-05/..", D(1962, 9, 5), MAX, "1962-09-05", None, "from 5 September 1962"),
    ("../2021", MIN, D(2021, 12, 31), None, "2021", "until 2021"),
    ("/2021", MIN, D(2021, 12, 31), None, "2021", "until 2021 (start unknown)"),
    ("2021/", D(2021, 1, 1), MAX, "2021", None, "from 2021 (end unknown)"),
    ("2024-06~/2024-09", D(2024, 6, 1), D(2024, 9, 30), "2024-06~", "2024-09",
     "about June 2024 – September 2024"),
    ("2024-06-22/2024-07-03", D(2024, 6, 22), D(2024, 7, 3), "2024-06-22", "2024-07-03",
     "22 June 2024 – 3 July 2024"),
    ("202X/2031", D(2020, 1, 1), D(2031, 12, 31), "202X", "2031", "the 2020s – 2031"),
    ("2024-24/2025-01", D(2024, 12, 1), D(2025, 1, 31), "2024-24", "2025-01",
     "winter 2024 – January 2025"),
    ("2024/2024", D(2024, 1, 1), D(2024, 12, 31), "2024", "2024", "2024–2024"),
    # The start only has to be able to fall on or before the end.
    ("2024-06/2024", D(2024, 6, 1), D(2024, 12, 31), "2024-06", "2024", "June 2024 – 2024"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "lower", "upper", "start", "end", "display"), INTERVALS)
def test_intervals(text, lower, upper, start, end, display):
    date = parse_date(text)
    assert str(date) == text
    assert (date.lower, date.upper) == (lower, upper)
    assert date.precision is Precision.INTERVAL
    assert date.is_interval
    assert (None if date.start is None else date.start.text) == start
    assert (None if date.end is None else date.end.text) == end
    assert (date.open_start, date.open_end) == (start is None, end is None)
    assert date.display() == display


def test_interval_qualifiers_come_from_either_end():
    assert parse_date("2024-06?/2024-09").uncertain
    assert parse_date("2024-06/2024-09%").approximate
    assert not parse_date("2024-06/2024-09").uncertain


def test_month_out_of_range_message():
    with pytest.raises(InvalidDate) as caught:
        parse_date("2024-13-01")
    assert str(caught.value) == (
        "'2024-13-01' is not an EDTF date: month 13 is out of range "
        "(expected e.g. 2024-09-22, 2024-06, 2026, 1945/1975, 2021~)"
    )


BAD = {
    "": "empty",
    "junk": "not a form",
    " 2024": "whitespace",
    "2024 ": "whitespace",
    "2024\n": "whitespace",
    "2024 /2025": "whitespace",
    "2023-02-29": "day 29 is out of range for February 2023",
    "2024-02-30": "day 30",
    "2024-04-31": "day 31",
    "2024-01-00": "day 0",
    "2024-00": "month 0",
    "2024-13": "month 13",
    "2024-20": "month 20",
    "2024-25": "season 25",
    "2024-21-01": "season",
    "2025/2024": "after the end",
    "2024-07/2024-06-30": "after the end",
    "/": "at least one known end",
    "../..": "at least one known end",
    "../": "at least one known end",
    "2024/2025/2026": "more than one",
    "Y170000002": "long years",
    "-0044": "negative years",
    "0000": "year 0000",
    "00XX": "year 0000",
    "000X": "year 0000",
    "9999-24": "winter 9999",
    "2024-06-01T10:00": "times of day",
    "201x": "capital X",
    "2024-6": "two digits",
    "2024-6-1": "two digits",
    "24": "four digits",
    "12345": "four digits",
    "201X-05": "cannot have a month",
    "1XXX": "not a form",
    "2024-XX-05": "unknown month",
    "2024?-06": "not a form",
    "2024~~": "not a form",
    "?2024": "not a form",
    "2024-06-12?~": "not a form",
    "..": "not a form",
    "2024/..~": "not a form",
    "２０２４": "not a form",
    "2024-09-22" * 5: "longer than",
}


@pytest.mark.parametrize(("text", "reason"), BAD.items())
def test_bad_dates_raise_invalid_date(text, reason):
    with pytest.raises(InvalidDate, match="is not an EDTF date") as caught:
        parse_date(text)
    message = str(caught.value)
    assert repr(text[:40]) in message
    assert reason in message
    assert "expected e.g. 2024-09-22" in message


def test_invalid_date_is_a_value_error_and_a_solidline_error():
    with pytest.raises(ValueError):  # noqa: PT011 - the builtin is the point here
        parse_date("junk")
    with pytest.raises(SolidlineError):
        parse_date("junk")


def test_equality_and_hash_use_the_text_only():
    date = parse_date("2024")
    assert date == parse_date("2024")
    assert date != parse_date("2024-XX")  # same bounds, different dates
    assert attrs.evolve(date, upper=D(2030, 1, 1)) == date
    assert len({date, parse_date("2024"), parse_date("2024-XX")}) == 2


def test_dates_are_frozen_and_not_orderable():
    date = parse_date("2024")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        date.text = "2025"  # type: ignore[misc]
    with pytest.raises(TypeError):
        _ = date < parse_date("2025")  # type: ignore[operator]


def test_repr_shows_how_to_get_the_date_back():
    assert repr(parse_date("2024-06~")) == "parse_date('2024-06~')"


def test_contains():
    june = parse_date("2024-06")
    assert june.contains(D(2024, 6, 1))
    assert june.contains(D(2024, 6, 30))
    assert not june.contains(D(2024, 7, 1))
    assert parse_date("1962-09-05/..").contains(D(9999, 1, 1))
    assert parse_date("../2021").contains(D(1, 1, 1))


def test_sort_key_puts_wider_spans_first_for_the_same_first_day():
    texts = ["2024-06-01", "2024-06", "2024-05", "2024", "2024-22", "2023/2024", "../2024"]
    ordered = sorted((parse_date(t) for t in texts), key=lambda d: (d.sort_key, d.text))
    assert [d.text for d in ordered] == [
        "../2024",
        "2023/2024",
        "2024",
        "2024-05",
        "2024-22",
        "2024-06",
        "2024-06-01",
    ]


@given(edtf_dates_with_bounds())
def test_bounds_match_the_oracle(bounded):
    text, lower, upper = bounded
    date = parse_date(text)
    assert (date.lower, date.upper) == (lower, upper)


@given(edtf_dates())
def test_text_round_trips(text):
    date = parse_date(text)
    assert date.text == text
    assert parse_date(str(date)) == date
    assert parse_date.__wrapped__(text) == date  # the cache changes nothing


@given(edtf_dates())
def test_lower_is_never_after_upper(text):
    date = parse_date(text)
    assert date.lower <= date.upper
    assert date.contains(date.lower)
    assert date.contains(date.upper)


@given(edtf_dates())
def test_display_never_fails_and_is_never_empty(text):
    shown = parse_date(text).display()
    assert isinstance(shown, str)
    assert shown.strip() == shown
    assert shown


@given(edtf_intervals_with_bounds())
def test_interval_bounds_come_from_the_ends(bounded):
    date = parse_date(bounded[0])
    assert date.is_interval
    assert date.lower == (MIN if date.start is None else date.start.lower)
    assert date.upper == (MAX if date.end is None else date.end.upper)
    assert not (date.start is None and date.end is None)


def _sort_key_and_text(date: EDTFDate) -> tuple[tuple[int, int], str]:
    return date.sort_key, date.text


@given(
    st.lists(edtf_dates(), max_size=30).flatmap(
        lambda ts: st.tuples(st.just(ts), st.permutations(ts))
    )
)
def test_sorting_does_not_depend_on_input_order(texts_and_shuffled):
    texts, shuffled = texts_and_shuffled
    first = sorted((parse_date(t) for t in texts), key=_sort_key_and_text)
    second = sorted((parse_date(t) for t in shuffled), key=_sort_key_and_text)
    assert [d.text for d in first] == [d.text for d in second]


@given(edtf_dates(), edtf_dates(), edtf_dates())
def test_sort_key_is_a_total_preorder(a, b, c):
    x, y, z = (parse_date(t).sort_key for t in (a, b, c))
    assert all(type(part) is int for part in x)
    assert x <= y or y <= x
    if x <= y and y <= z:
        assert x <= z


@given(edtf_dates(), edtf_dates())
def test_sort_key_follows_the_bounds(a, b):
    first, second = parse_date(a), parse_date(b)
    if first.lower < second.lower or (first.lower == second.lower and first.upper > second.upper):
        assert first.sort_key < second.sort_key


@given(st.text())
def test_any_text_parses_or_raises_invalid_date(text):
    _parses_or_raises_invalid_date(text)


@given(st.text(alphabet="0123456789-/X?~%.Y ", max_size=25))
def test_edtf_like_text_parses_or_raises_invalid_date(text):
    _parses_or_raises_invalid_date(text)


def _parses_or_raises_invalid_date(text: str) -> None:
    message = None
    try:
        date = parse_date(text)
    except InvalidDate as error:
        message = str(error)
    else:
        assert date.text == text
        assert date.lower <= date.upper
        assert date.display()
    assert message is None or repr(text[:40]) in message


# -- the plain-day shortcut builds what the regular expression builds -----------------------------

_DAY_LIKE = st.builds(
    lambda year, month, day, sep1, sep2: f"{year}{sep1}{month}{sep2}{day}",
    st.sampled_from(["2024", "0000", "0001", "9999", "1900", "2000", "2023", "２０２４", "20X4"]),
    st.sampled_from(["00", "01", "02", "09", "12", "13", "21", "24", "XX", "1x", " 1"]),
    st.sampled_from(["00", "01", "28", "29", "30", "31", "32", "XX", "1 ", "+1"]),
    st.sampled_from(["-", "/", "_"]),
    st.sampled_from(["-", "~", "-"]),
)


@given(st.one_of(_DAY_LIKE, st.text(alphabet="0123456789-X?~% ", max_size=12)))
def test_the_plain_day_shortcut_builds_what_the_general_parser_builds(text):
    plain = _plain_day(text)
    if plain is None:
        return
    general = _parse_form(text, text)
    assert attrs.asdict(plain, recurse=False) == attrs.asdict(general, recurse=False)


@given(edtf_dates())
def test_the_shortcut_takes_plain_days_only(text):
    assert (_plain_day(text) is not None) == (
        len(text) == 10 and parse_date(text).precision is Precision.DAY
        and not (parse_date(text).uncertain or parse_date(text).approximate)
    )
