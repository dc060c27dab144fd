"""Exports: a timeline as text for a terminal and in TimelineJS's JSON format."""

from __future__ import annotations

import calendar
import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import entities, meeting, source
from solidline import JsonlLog, MemoryLog, Period, StatusChanged, parse_date
from solidline.dates import Precision
from solidline.exports import describe_source, timeline_text, timelinejs
from solidline.timeline import Projection, Timeline, timeline
from strategies import edtf_dates

ROOT = Path(__file__).parent.parent


def _timeline(*events: Any) -> Timeline:
    log = MemoryLog()
    log.append([*entities("la", "vn"), *events])
    return Projection.from_log(log).timeline(relationship="la~vn")


def _periods(*whens: str) -> Timeline:
    return _timeline(
        *(
            Period(id=f"p{n}", when=w, title=w, sources=[source()], participants=["la", "vn"])
            for n, w in enumerate(whens)
        )
    )


def _dates_of(whens: list[str]) -> dict[str, tuple[dict[str, int], dict[str, int] | None]]:
    events = timelinejs(_periods(*whens))["events"]
    return {e["text"]["headline"]: (e["start_date"], e.get("end_date")) for e in events}


# -- TimelineJS ----------------------------------------------------------------------------------

DATES = [
    # when, start_date, end_date
    ("2024-09-22", {"year": 2024, "month": 9, "day": 22}, None),
    ("2024-06", {"year": 2024, "month": 6}, None),
    ("2026", {"year": 2026}, None),
    ("2024-21", {"year": 2024, "month": 3}, None),
    ("2024-24/2025-23", {"year": 2024, "month": 12}, {"year": 2025, "month": 11}),
    ("2024-06/2024", {"year": 2024, "month": 6}, {"year": 2024, "month": 12, "day": 31}),
    ("202X", {"year": 2020}, None),
    ("2024-06-XX", {"year": 2024, "month": 6}, None),
    ("1945/1975", {"year": 1945}, {"year": 1975}),
    ("2024-06/2024-09-15", {"year": 2024, "month": 6}, {"year": 2024, "month": 9, "day": 15}),
    ("2024-06-22/2024-07", {"year": 2024, "month": 6, "day": 22}, {"year": 2024, "month": 7}),
    ("2024-06~/2024-09?", {"year": 2024, "month": 6}, {"year": 2024, "month": 9}),
    ("1962-09-05/..", {"year": 1962, "month": 9, "day": 5}, None),
    ("../2021-06", {"year": 2021, "month": 6}, None),
    ("2021/", {"year": 2021}, None),
    ("/2021", {"year": 2021}, None),
    ("1945/1945", {"year": 1945}, None),
    ("2024-06-01/2024-06-01", {"year": 2024, "month": 6, "day": 1}, None),
    ("190X/19XX", {"year": 1900}, {"year": 1999}),
]


@pytest.mark.parametrize(("when", "start", "end"), DATES, ids=[d[0] for d in DATES])
def test_timelinejs_dates_keep_the_precision_of_each_end(
    when: str, start: dict[str, int], end: dict[str, int] | None
) -> None:
    assert _dates_of([when]) == {when: (start, end)}


def test_timelinejs_event_fields_are_escaped_html() -> None:
    tl = _timeline(
        meeting(
            "m1", "la", "vn", title="<b>Talks</b> & more", summary="A <script>x</script> meeting",
            sources=[source(title="Tom & Jerry", publisher="<i>Press</i>", published="2024-10-08")],
        ),
        StatusChanged(target="m1", status="scheduled"),
    )  # fmt: skip
    data = timelinejs(tl)
    assert data["title"] == {"text": {"headline": "Party LA – Party VN", "text": "1 events"}}
    (event,) = data["events"]
    assert event == {
        "unique_id": "m1",
        "group": "meeting",
        "display_date": "22 September 2024",
        "text": {
            "headline": "&lt;b&gt;Talks&lt;/b&gt; &amp; more",
            "text": "<p>A &lt;script&gt;x&lt;/script&gt; meeting</p><ul><li>Tom &amp; Jerry "
            "(&lt;i&gt;Press&lt;/i&gt;, 8 October 2024)</li></ul>",
        },
        "start_date": {"year": 2024, "month": 9, "day": 22},
    }
    orjson.dumps(data)


def test_timelinejs_of_the_laos_vietnam_record() -> None:
    with JsonlLog(ROOT / "events", readonly=True) as log:
        data = timelinejs(timeline(log, relationship="la~vn"))
    assert data["title"]["text"] == {"headline": "Laos – Vietnam", "text": "6 events"}
    first, second = data["events"][:2]
    assert (first["display_date"], first["start_date"], first["end_date"]) == (
        "1945–1975",
        {"year": 1945},
        {"year": 1975},
    )
    assert second["start_date"] == {"year": 1962, "month": 9, "day": 5}
    assert "end_date" not in second
    assert [e["display_date"] for e in data["events"][2:]] == [
        "2021 (uncertain)",
        "2021 (uncertain)",
        "2021 (uncertain)",
        "June 2021 (uncertain)",
    ]


_PARTS = {Precision.DAY: 3, Precision.MONTH: 2, Precision.SEASON: 2}


def _first_day(date: dict[str, int]) -> dt.date:
    return dt.date(date["year"], date.get("month", 1), date.get("day", 1))


def _last_day(date: dict[str, int]) -> dt.date:
    year, month = date["year"], date.get("month", 12)
    return dt.date(year, month, date.get("day", calendar.monthrange(year, month)[1]))


@given(st.lists(edtf_dates(), min_size=1, max_size=6, unique=True))
def test_timelinejs_places_every_date_within_its_bounds(whens: list[str]) -> None:
    dates = _dates_of(whens)
    assert set(dates) == set(whens)
    for when, (start, end) in dates.items():
        date = parse_date(when)
        first = date if not date.is_interval else date.start or date.end
        assert first is not None
        assert len(start) == _PARTS.get(first.precision, 1)
        assert date.lower <= _first_day(start)
        assert _last_day(start) <= date.upper
        if end is not None:
            assert date.start is not None
            assert date.end is not None
            assert len(end) in (_PARTS.get(date.end.precision, 1), 3)
            assert _first_day(start) <= _first_day(end)
            assert _last_day(end) == date.upper


# -- text ----------------------------------------------------------------------------------------


def test_describe_source() -> None:
    assert describe_source(source(published="2024-10-08")) == (
        "To our comrades in Vietnam: Solidarity! (CPUSA International Department, 8 October 2024)"
    )


def test_timeline_text() -> None:
    tl = _timeline(
        meeting("m1", "la", "vn", summary="They met.", when="2021-06?"),
        meeting("m2", "la", "vn", when="2026", status="scheduled"),
    )
    assert timeline_text(tl).splitlines() == [
        "Party LA – Party VN",
        "===================",
        "",
        "June 2021 (uncertain)  Meeting m1",
        "    They met.",
        "    source: To our comrades in Vietnam: Solidarity! (CPUSA International Department, "
        "29 January 2021)",
        "",
        "2026  Meeting m2  [scheduled]",
        "    source: To our comrades in Vietnam: Solidarity! (CPUSA International Department, "
        "29 January 2021)",
    ]
    colored = timeline_text(tl, color=True)
    assert colored.startswith("\x1b[1mParty LA – Party VN\x1b[0m\n")
    assert "\x1b[1mJune 2021 (uncertain)\x1b[0m  Meeting m1" in colored


def test_timeline_text_of_an_empty_timeline() -> None:
    assert timeline_text(_timeline()) == "Party LA – Party VN\n===================\n(no entries)"


def test_a_date_from_the_first_year_on_is_placed() -> None:
    assert _dates_of(["0001/..", "../9999"]) == {
        "0001/..": ({"year": 1}, None),
        "../9999": ({"year": 9999}, None),
    }
