"""The site's timelines cut into sections: the fast path against the plain one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import meeting
from solidline import JsonlLog
from solidline.pages import Section, _period_name, _periods, _split
from solidline.timeline import Entry, Projection
from strategies import edtf_dates

EVENTS = Path(__file__).resolve().parent.parent / "events"
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


# -- the plain cut, as it was written first: one period at a time ----------------------------------


def plain_period_of(entry: Entry, depth: int) -> Any:
    lower, upper = entry.when.lower, entry.when.upper
    if lower == dt.date.min:
        return None
    if depth == 0:
        return lower.year // 10
    key = (lower.year, lower.month, lower.day)[:depth]
    return key if key == (upper.year, upper.month, upper.day)[:depth] else None


def plain_split(entries: Sequence[Entry], depth: int, limit: int, key: Any = None) -> list[Section]:
    groups: dict[Any, list[Entry]] = {}
    wider: list[Entry] = []
    for entry in entries:
        period = plain_period_of(entry, depth)
        if depth and period is None:
            wider.append(entry)
        else:
            groups.setdefault(period, []).append(entry)
    sections = []
    if wider:
        slug, heading, first = _period_name(depth - 1, key)
        within = ("a year", "a month", "a day")[depth - 1]
        sections.append(
            Section(slug, f"{heading}, not dated to {within}", tuple(wider), first, depth - 1)
        )
    for period, members in groups.items():
        if len(members) > limit and period is not None and depth < 3:
            sections.extend(plain_split(members, depth + 1, limit, period))
        else:
            slug, heading, first = _period_name(depth, period)
            sections.append(Section(slug, heading, tuple(members), first, depth))
    return sections


def described(sections: list[Section]) -> list[tuple[Any, ...]]:
    return [(s.slug, s.heading, [id(e) for e in s.entries], s.first, s.depth) for s in sections]


def entry_on(n: int, when: str) -> Entry:
    event = meeting(f"m{n}", "a", "b", when=when)
    return Entry(
        id=f"m{n}",
        event=event,
        sources=event.sources,
        ids=(f"m{n}",),
        history=(),
        entities=event.entities(),
        published=T0,
        updated=T0,
        seq=n,
    )


# a few dates drawn many times: periods that fill up and split, down to days
crowded_dates = st.lists(edtf_dates(), min_size=1, max_size=6).flatmap(
    lambda pool: st.lists(st.sampled_from(pool), min_size=1, max_size=40)
)


@settings(deadline=None)
@given(st.one_of(crowded_dates, st.lists(edtf_dates(), max_size=30)), st.integers(1, 5))
def test_the_cut_is_the_plain_cut(dates: list[str], limit: int) -> None:
    entries = sorted((entry_on(n, when) for n, when in enumerate(dates)), key=lambda e: e.sort_key)
    assert described(_split(entries, limit)) == described(plain_split(entries, 0, limit))
    for entry in entries:
        assert _periods(entry) == tuple(plain_period_of(entry, depth) for depth in range(4))


def test_the_cut_of_the_record_is_the_plain_cut() -> None:
    projection = Projection.from_log(JsonlLog(EVENTS, readonly=True))
    for key in ("all", *projection.entity_keys()):
        timeline = projection.timeline(entity=key) if key != "all" else projection.timeline()
        for limit in (1, 2, 5, 50):
            ours = described(_split(timeline.entries, limit))
            assert ours == described(plain_split(timeline.entries, 0, limit))
