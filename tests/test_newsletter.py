"""windows.py, subscribers.py, unsubscribe.py, digest.py and newsletter.py: windows, subscribers,
what a digest selects, how it renders, golden files."""

from __future__ import annotations

import datetime as dt
import html
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import solidline.newsletter as newsletter_module
from conftest import FakeClock, entities, meeting
from solidline import (
    Corrected,
    Meeting,
    MemoryLog,
    Participant,
    RelationsEstablished,
    Retracted,
    StatusChanged,
    SubscriberError,
    open_log,
)
from solidline.digest import Digest, select_digest, select_digest_and_entities
from solidline.newsletter import DigestRenderer, Mailing, compose
from solidline.subscribers import LANGUAGES, Subscriber, load_subscribers
from solidline.timeline import Projection
from solidline.unsubscribe import (
    PREVIEW_KEY,
    unsubscribe_links,
    unsubscribe_token,
    verify_unsubscribe_token,
)
from solidline.windows import Window, last_window, window_ending, window_since

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "digest"
KEY = b"test key: not a secret"
UTC = dt.UTC


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# -- windows ---------------------------------------------------------------------------------------


def test_weekly_windows_run_monday_to_monday() -> None:
    window = window_ending("weekly", dt.date(2026, 11, 30))
    assert (window.start, window.end) == (at(2026, 11, 23), at(2026, 11, 30))
    assert window.label == "20261123-20261130"
    assert window.dates() == "23–29 November 2026"
    assert window.contains(at(2026, 11, 23))
    assert not window.contains(at(2026, 11, 30))


def test_monthly_and_daily_windows() -> None:
    month = window_ending("monthly", dt.date(2027, 1, 1))
    assert (month.start, month.end) == (at(2026, 12, 1), at(2027, 1, 1))
    assert month.dates() == "1–31 December 2026"
    day = window_ending("daily", dt.date(2026, 11, 24))
    assert day.dates() == "23 November 2026"
    assert day.days_after() == (dt.date(2026, 11, 24), 1)


def test_a_window_must_end_on_its_boundary() -> None:
    with pytest.raises(ValueError, match=r"nearest end on 2026-11-23 and 2026-11-30"):
        window_ending("weekly", dt.date(2026, 11, 26))
    with pytest.raises(ValueError, match="months run"):
        window_ending("monthly", dt.date(2026, 11, 26))


@given(
    st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.sampled_from(["daily", "weekly", "monthly"]),
)
def test_last_window_is_the_last_one_ended(now: dt.datetime, period: Any) -> None:
    window = last_window(period, now)
    assert window.end <= now
    following = Window(window.end, window.end + dt.timedelta(days=1), period)
    assert last_window(period, window.end) == window or following.start == window.end
    # the next window has not ended yet
    assert now < window.end + (window.end - window.start) + dt.timedelta(days=3)


def test_spans_across_months_and_years() -> None:
    assert window_ending("weekly", dt.date(2026, 12, 7)).dates() == "30 November – 6 December 2026"
    assert (
        window_ending("weekly", dt.date(2027, 1, 4)).dates() == "28 December 2026 – 3 January 2027"
    )


def test_since_last_send_runs_to_the_second() -> None:
    window = window_since(
        at(2026, 11, 30), at(2026, 12, 2, 6, 30, 15) + dt.timedelta(microseconds=9)
    )
    assert window.label == "20261130-20261202T063015Z"
    assert window.period == "since-last-send"


# -- subscribers -----------------------------------------------------------------------------------


def test_the_example_subscriber_file_loads_against_the_record() -> None:
    with open_log(ROOT / "events", readonly=True) as log:
        digest = select_digest(log, window_ending("weekly", dt.date(2026, 11, 30)))
    subscribers = load_subscribers(ROOT / "examples" / "subscribers.csv", entities=digest.names)
    assert {s.language for s in subscribers} >= {"en", "vi", "lo"}
    assert all(s.address.endswith("@example.org") for s in subscribers)
    assert [s.salutation() for s in subscribers[:3]] == [
        "Dear Subscriber One,",
        "Kính gửi Bạn đọc,",
        "ຮຽນ ຜູ້ອ່ານ,",
    ]


def test_csv_and_json_lines(tmp_path: Path) -> None:
    csv_file = tmp_path / "s.csv"
    csv_file.write_text(
        "\ufeffaddress,name,interests,language\n"
        'a@example.org,Reader A,"cpv~cpusa, la",vi\n\n'
        "b@Example.ORG,,,\n",
        encoding="utf-8",
    )
    jsonl = tmp_path / "s.jsonl"
    jsonl.write_text(
        '{"address": "a@example.org", "name": "Reader A", '
        '"interests": ["cpv~cpusa", "la"], "language": "vi"}\n'
        '{"address": "b@Example.ORG"}\n',
        encoding="utf-8",
    )
    expected = (
        Subscriber(
            address="a@example.org", name="Reader A", interests=("cpusa~cpv", "la"), language="vi"
        ),
        Subscriber(address="b@example.org"),
    )
    assert load_subscribers(csv_file, entities={"cpv", "cpusa", "la"}) == expected
    assert load_subscribers(jsonl, entities={"cpv", "cpusa", "la"}) == expected


def test_every_bad_line_is_reported_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "subscribers.csv"
    path.write_text(
        "address,name,interests,language\n"
        "good@example.org,Good,cpv,en\n"
        "not-an-address,Bad,,en\n"
        "c@example.org,Unknown interest,cpv~nobody,en\n"
        "d@example.org,Bad language,,xx\n"
        "good@example.org,Again,,en\n"
        "e@example.org,Too,many,en,fields\n"
        "f@example.org,Bad interest,Not An Id,en\n",
        encoding="utf-8",
    )
    with pytest.raises(SubscriberError) as error:
        load_subscribers(path, entities={"cpv", "cpusa"})
    message = str(error.value)
    assert "6 bad line(s); nothing is sent to anyone" in message
    for line, what in [
        (3, "not-an-address"),
        (4, "unknown interest(s) cpv~nobody"),
        (5, "language 'xx'"),
        (6, "already on line 2"),
        (7, "more fields"),
        (8, "'Not' is not an interest"),
    ]:
        assert re.search(rf"line {line}: .*{re.escape(what)}", message), (line, message)


def test_a_header_row_is_required(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("a@example.org,A\n", encoding="utf-8")
    with pytest.raises(SubscriberError, match="line 1: the header row"):
        load_subscribers(path)


def test_bad_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"address": "a@example.org", "colour": "red"}\n[1]\n{oops\n', encoding="utf-8")
    with pytest.raises(SubscriberError) as error:
        load_subscribers(path)
    assert "line 1: unknown field(s) colour" in str(error.value)
    assert "line 2: each line must be a JSON object" in str(error.value)
    assert "line 3: not valid JSON" in str(error.value)


def test_names_lose_line_breaks() -> None:
    subscriber = Subscriber(address="a@example.org", name="Reader\r\nBcc: x@example.org")
    assert subscriber.name == "Reader Bcc: x@example.org"
    assert Subscriber(address="a@example.org", name=" \n ").salutation() == "Hello,"


# -- unsubscribe tokens ----------------------------------------------------------------------------


def test_unsubscribe_tokens_verify() -> None:
    token = unsubscribe_token("a@example.org", KEY, list_id="digest.example.org")
    assert verify_unsubscribe_token("a@example.org", token, KEY, list_id="digest.example.org")
    assert verify_unsubscribe_token("a@EXAMPLE.org", token, KEY, list_id="digest.example.org")
    assert not verify_unsubscribe_token("b@example.org", token, KEY, list_id="digest.example.org")
    assert not verify_unsubscribe_token(
        "a@example.org", token, b"other key", list_id="digest.example.org"
    )
    assert not verify_unsubscribe_token("a@example.org", token, KEY, list_id="other")
    assert not verify_unsubscribe_token(
        "a@example.org", token[:-1] + "A", KEY, list_id="digest.example.org"
    )
    assert not verify_unsubscribe_token("not an address", token, KEY)
    assert not verify_unsubscribe_token("a@example.org", "ü" * 43, KEY)


def test_unsubscribe_links_carry_the_token() -> None:
    links = unsubscribe_links(
        "bạn.đọc@example.org",
        key=KEY,
        list_id="l",
        url="https://example.org/u",
        mailto="unsubscribe@example.org",
    )
    token = unsubscribe_token("bạn.đọc@example.org", KEY, list_id="l")
    assert links.url.startswith("https://example.org/u?address=b%E1%BA%A1n")
    assert links.url.isascii()
    assert links.url.endswith(f"&token={token}")
    assert links.mailto == f"mailto:unsubscribe@example.org?subject=unsubscribe%20{token}"


# -- selection -------------------------------------------------------------------------------------


WEEK = window_ending("weekly", dt.date(2026, 11, 30))


@pytest.fixture
def record(
    clock: FakeClock,
    make_entities: Callable[..., Any],
    make_meeting: Callable[..., Meeting],
    make_source: Callable[..., Any],
) -> MemoryLog:
    """A week-old record, and a week of news: new entries, corrections, a retraction …"""
    log = MemoryLog(clock=clock)
    clock.now = at(2026, 11, 16, 9)
    log.append([*make_entities("cpusa", "cpv", "la", "vn")])
    log.append(
        [
            make_meeting("old-meeting", "cpusa", "cpv", title="An older meeting"),
            make_meeting("old-wrong", "cpusa", "cpv", title="A meeting that was not"),
            make_meeting(
                "old-planned",
                "la",
                "vn",
                when="2026-12-10",
                status="scheduled",
                title="A planned meeting",
            ),
            RelationsEstablished(
                id="relations",
                when="1962-12-05",
                title="Relations established",
                parties=["la", "vn"],
                sources=[make_source()],
            ),
        ]
    )
    clock.now = at(2026, 11, 24, 10)
    log.append(
        [
            make_meeting("new-one", "cpusa", "cpv", title="A new meeting"),
            make_meeting("new-two", "la", "vn", when="1975", title="A backfilled 1975 meeting"),
            make_meeting(
                "new-future",
                "cpv",
                "vn",
                when="2027-01",
                status="scheduled",
                title="Talks next January",
            ),
            Corrected(
                id="fix-old",
                target="old-meeting",
                changes={"title": "An older meeting, fixed"},
                reason="the article gave the wrong title",
                sources=[make_source()],
            ),
            Retracted(id="drop-old", target="old-wrong", reason="it did not happen"),
            StatusChanged(id="postponed", target="old-planned", status="postponed"),
            Corrected(id="fix-new", target="new-one", changes={"summary": "More"}, reason="detail"),
        ]
    )
    clock.now = at(2026, 11, 30, 0)  # the first moment of the next window
    log.append(make_meeting("next-week", "cpusa", "cpv", title="Next week's news"))
    return log


def test_a_digest_holds_what_the_window_recorded(record: MemoryLog) -> None:
    digest = select_digest(record, WEEK)
    assert [e.id for e in digest.entries] == ["new-two", "new-one", "new-future"]
    assert digest.entries[1].event.summary == "More"  # a new entry as it now stands
    assert [(c.kind, c.event.id) for c in digest.changes] == [
        ("corrected", "old-meeting"),
        ("retracted", "old-wrong"),
        ("status", "old-planned"),
    ]
    assert digest.changes[0].event.title == "An older meeting, fixed"
    assert digest.changes[0].detail == "Changed: title"
    assert digest.changes[2].detail == "Now postponed"
    assert [e.id for e in digest.upcoming] == ["new-future"]  # old-planned is now postponed
    assert select_digest(record, WEEK, upcoming_days=31).upcoming == ()  # January is too far
    assert [(a.entry.id, a.years, a.date) for a in digest.anniversaries] == [
        ("relations", 64, dt.date(2026, 12, 5))
    ]
    assert not digest.is_empty


def test_the_next_window_is_not_in_this_one(record: MemoryLog) -> None:
    after = select_digest(record, window_ending("weekly", dt.date(2026, 12, 7)))
    assert [e.id for e in after.entries] == ["next-week"]
    assert after.changes == ()
    before = select_digest(record, window_ending("weekly", dt.date(2026, 11, 23)))
    assert "new-one" not in [e.id for e in before.entries]


def test_the_entities_defined_now_come_with_the_digest(
    record: MemoryLog, clock: FakeClock, make_entities: Callable[..., Any]
) -> None:
    clock.now = at(2026, 12, 2, 9)
    record.append(make_entities("newcomer"))
    selected, defined = select_digest_and_entities(record, WEEK)
    assert "newcomer" in defined
    assert "newcomer" not in selected.names
    assert defined == set(Projection.from_log(record).entities())
    assert selected == select_digest(record, WEEK)


def test_interests_pick_entries_changes_and_groups(record: MemoryLog) -> None:
    digest = select_digest(record, WEEK)
    laos = digest.for_interests(("la",))
    assert [e.id for e in laos.entries] == ["new-two"]
    assert [c.event.id for c in laos.changes] == ["old-planned"]
    assert [a.entry.id for a in laos.anniversaries] == ["relations"]
    pair = digest.for_interests(("cpusa~cpv",))
    assert [e.id for e in pair.entries] == ["new-one"]
    assert digest.for_interests(()) is digest
    assert [(title, [e.id for e in entries]) for title, entries in digest.groups()] == [
        ("Party CPUSA – Party CPV", ["new-one"]),
        ("Party CPV – Party VN", ["new-future"]),
        ("Party LA – Party VN", ["new-two"]),
    ]


def test_an_empty_window(record: MemoryLog) -> None:
    digest = select_digest(record, window_ending("weekly", dt.date(2026, 11, 9)))
    assert digest.is_empty
    assert digest.entries == ()
    assert digest.changes == ()


# -- rendering -------------------------------------------------------------------------------------

SUBSCRIBER = Subscriber(address="subscriber.one@example.org", name="Subscriber One")


def links_for(subscriber: Subscriber) -> Any:
    return unsubscribe_links(
        subscriber.address,
        key=KEY,
        list_id="digest.example.org",
        url="https://example.org/solidline/unsubscribe",
        mailto="unsubscribe@example.org",
    )


def renderer(**overrides: Any) -> DigestRenderer:
    fields: dict[str, Any] = {"title": "solidline", "archive_url": "https://example.org/solidline/"}
    return DigestRenderer(**(fields | overrides))


def test_the_html_is_inlined_narrow_and_dark_mode_ready(record: MemoryLog) -> None:
    out = renderer().render(
        select_digest(record, WEEK), SUBSCRIBER, unsubscribe=links_for(SUBSCRIBER)
    )
    assert out.subject == "solidline: weekly digest, 23–29 November 2026"
    assert '<meta name="color-scheme" content="light dark">' in out.html
    assert 'width="600"' in out.html
    assert "max-width: 600px" in out.html
    style_blocks = re.findall(r"<style[^>]*>(.*?)</style>", out.html, flags=re.S)
    assert len(style_blocks) == 1
    assert style_blocks[0].strip().startswith("@media (prefers-color")
    assert 'class="entry-title" style="' in out.html  # the rules were inlined
    for section in ("New in the record", "Corrections and retractions", "Anniversaries"):
        assert section in out.html
        assert section.upper() in out.text
    assert "64</span> years since: Relations established" in out.html
    assert "Dear Subscriber One," in out.text
    assert links_for(SUBSCRIBER).url in out.text
    assert html.escape(links_for(SUBSCRIBER).url) in out.html


class _Tags(HTMLParser):
    """Every element and its attribute names, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, set[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {name for name, _ in attrs}))


def test_event_text_is_escaped_in_html_and_intact_in_text(
    clock: FakeClock, make_entities: Callable[..., Any], make_source: Callable[..., Any]
) -> None:
    log = MemoryLog(clock=clock)
    clock.now = at(2026, 11, 24)
    script = "<script>alert('x')</script>"
    attribute = '" onmouseover="alert(1)" data-x="'
    image = "<img src=x onerror=alert(2)>"
    log.append(
        [
            *make_entities("cpusa", "cpv"),
            Meeting(
                id="xss",
                when="2024-09-22",
                title=f"Title {script}",
                summary=f"Summary {attribute} {image}",
                place=f"Place {image}",
                participants=[Participant(entity="cpusa"), Participant(entity="cpv")],
                sources=[
                    make_source(title=f"Source {script}", url='https://example.org/a?b=1&c="2"')
                ],
            ),
        ]
    )
    name = f"Reader {image}"
    subscriber = Subscriber(address="a@example.org", name=name)
    out = renderer().render(select_digest(log, WEEK), subscriber, unsubscribe=links_for(subscriber))
    body = out.html.split("<body", 1)[1]
    tags = _Tags()
    tags.feed(out.html)
    assert not {"script", "img"} & {tag for tag, _ in tags.found}
    assert not {"onmouseover", "onerror", "data-x"} & {a for _, attrs in tags.found for a in attrs}
    assert (
        "&lt;script&gt;alert('x')&lt;/script&gt;" in body
        or "&lt;script&gt;alert(&#39;x&#39;)" in body
    )
    assert "&lt;img src=x onerror=alert(2)&gt;" in body
    assert 'href="https://example.org/a?b=1&amp;c=&quot;2&quot;"' in body
    for raw in (f"Title {script}", attribute, image, f"Source {script}", f"Dear {name},"):
        assert raw in out.text


def test_a_long_digest_is_cut_to_the_size_limit(
    clock: FakeClock, make_entities: Callable[..., Any], make_meeting: Callable[..., Meeting]
) -> None:
    log = MemoryLog(clock=clock)
    clock.now = at(2026, 11, 24)
    log.append(make_entities("cpusa", "cpv"))
    log.append(
        [
            make_meeting(
                f"m{i:04d}", "cpusa", "cpv", summary="A summary. " * 40, title=f"Meeting number {i}"
            )
            for i in range(400)
        ]
    )
    out = renderer().render(select_digest(log, WEEK), SUBSCRIBER, unsubscribe=links_for(SUBSCRIBER))
    assert len(out.html.encode()) <= 102_000
    assert out.omitted > 0
    assert out.shown + out.omitted == 400
    bigger = renderer().render(
        select_digest(log, WEEK), SUBSCRIBER, unsubscribe=links_for(SUBSCRIBER)
    )
    assert bigger.shown == out.shown  # deterministic
    more = f"{out.omitted} more new entries"
    assert more in out.html
    assert 'href="https://example.org/solidline/"' in out.html
    assert more in out.text
    assert out.text.count("Meeting number") == out.shown
    one_more = renderer(max_html_bytes=len(out.html.encode()) + 2_000)
    assert (
        one_more.render(
            select_digest(log, WEEK), SUBSCRIBER, unsubscribe=links_for(SUBSCRIBER)
        ).shown
        >= out.shown
    )


def test_templates_can_be_overridden(tmp_path: Path, record: MemoryLog) -> None:
    (tmp_path / "digest.txt.j2").write_text("{{ salutation }} {{ groups | length }} groups\n")
    out = renderer(templates=tmp_path).render(
        select_digest(record, WEEK), SUBSCRIBER, unsubscribe=links_for(SUBSCRIBER)
    )
    assert out.text == "Dear Subscriber One, 3 groups\n"
    assert "<!DOCTYPE html>" in out.html  # the default HTML template still serves


def test_a_preview_says_so(record: MemoryLog) -> None:
    links = unsubscribe_links(
        SUBSCRIBER.address,
        key=PREVIEW_KEY,
        list_id="l",
        url="https://example.org/u",
        mailto="u@example.org",
    )
    out = renderer().render(
        select_digest(record, WEEK), SUBSCRIBER, unsubscribe=links, preview=True
    )
    assert "preview key" in out.html
    assert "PREVIEW" in out.text


# -- one edition shared by many subscribers -------------------------------------------------------


def _long_digest() -> Digest:
    """A week of 90 new meetings over three relationships, long enough to be cut, with
    corrections of older ones, meetings coming up and anniversaries."""
    clock = FakeClock(at(2026, 11, 10, 9))
    log = MemoryLog(clock=clock)
    log.append(entities("cpusa", "cpv", "la", "vn"))
    pairs = [("cpusa", "cpv"), ("la", "vn"), ("cpv", "vn"), ("cpusa", "la", "vn")]
    log.append(
        [meeting(f"old{i}", *pairs[i % 4], when=f"19{60 + i}-12-0{i % 5 + 1}") for i in range(8)]
    )
    clock.now = at(2026, 11, 24, 9)
    log.append(
        [
            meeting(
                f"m{i:03d}",
                *pairs[i % 4],
                when="2026-12-15" if i % 10 == 0 else "2024-09-22",
                status="scheduled" if i % 10 == 0 else "occurred",
                summary="Talks & more <b>. " * (i % 7 + 1),
            )
            for i in range(90)
        ]
    )
    log.append(
        [
            Corrected(id=f"fix{i}", target=f"old{i}", changes={"title": "Fixed"}, reason="typo")
            for i in (1, 2, 3)
        ]
    )
    return select_digest(log, WEEK)


LONG_DIGEST = _long_digest()

NAMES = st.text(st.sampled_from(list("Ab &<>\"'=;.ຮé\u00a0\u200d\ue000")), max_size=24)
INTERESTS = st.sampled_from([(), ("cpusa~cpv",), ("la", "vn"), ("vn",)])


def _names_all_of_one(entities: tuple[str, ...], interests: tuple[str, ...]) -> bool:
    return any(all(p in entities for p in i.split("~")) for i in interests)


@given(
    st.lists(
        st.sampled_from(["cpusa", "cpv", "la", "vn", "nobody", "cpusa~cpv", "cpv~vn", "la~vn"]),
        min_size=1,
        max_size=4,
    )
)
def test_a_part_keeps_what_names_an_interest_in_order(interests: list[str]) -> None:
    wanted = tuple(interests)
    digest = LONG_DIGEST
    part = digest.for_interests(wanted)
    for name in ("entries", "changes", "upcoming"):
        everything = getattr(digest, name)
        kept = tuple(x for x in everything if _names_all_of_one(x.entities, wanted))
        assert getattr(part, name) == kept
    assert part.anniversaries == tuple(
        a for a in digest.anniversaries if _names_all_of_one(a.entry.entities, wanted)
    )


@pytest.fixture(scope="module")
def copied_templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged templates, copied: an override that renders for each subscriber alone."""
    folder = tmp_path_factory.mktemp("templates")
    for name in ("digest.html.j2", "digest.txt.j2"):
        shutil.copyfile(ROOT / "templates" / name, folder / name)
    return folder


@settings(max_examples=25, deadline=None)
@given(
    people=st.lists(
        st.tuples(NAMES, INTERESTS, st.sampled_from(sorted(LANGUAGES))), min_size=1, max_size=8
    ),
    limit=st.integers(2_000, 90_000),
    url=st.sampled_from(["https://example.org/u", 'https://example.org/u?l=a&b="c"<\'>']),
)
def test_subscribers_of_one_edition_get_the_bytes_of_their_own_render(
    copied_templates: Path, people: list[tuple[str, tuple[str, ...], str]], limit: int, url: str
) -> None:
    subscribers = [
        Subscriber(address=f"reader{n}@example.org", name=name, interests=i, language=language)
        for n, (name, i, language) in enumerate(people)
    ]
    mailing = Mailing(
        title="The record",
        sender=("The record", "digest@example.org"),
        list_id="digest.example.org",
        unsubscribe_url=url,
        unsubscribe_mailto="digest@example.org",
        archive_url="https://example.org/record/",
        max_html_bytes=limit,
    )
    shared = compose(LONG_DIGEST, subscribers, mailing, key=KEY)
    alone = compose(
        LONG_DIGEST, subscribers, attrs.evolve(mailing, templates=copied_templates), key=KEY
    )
    assert [c.rendered for c in shared] == [c.rendered for c in alone]
    assert [c.message for c in shared] == [c.message for c in alone]
    assert all(len(c.rendered.html.encode()) <= limit or c.rendered.shown == 0 for c in shared)


# -- golden files: the digest of events/ -----------------------------------------------------------


def events_digest() -> Digest:
    with open_log(ROOT / "events", readonly=True) as log:
        return select_digest(log, WEEK)


@pytest.mark.parametrize("suffix", ["html", "txt"])
def test_golden_digest_of_the_record(suffix: str) -> None:
    out = renderer().render(events_digest(), SUBSCRIBER, unsubscribe=links_for(SUBSCRIBER))
    produced = (out.html if suffix == "html" else out.text).encode()
    golden = GOLDEN / f"events-weekly-20261123-20261130.{suffix}"
    if os.environ.get("SOLIDLINE_REGENERATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(produced)
    assert produced == golden.read_bytes(), (
        f"{golden.name} differs; if the change is meant, regenerate with "
        "SOLIDLINE_REGENERATE_GOLDEN=1 and review the diff"
    )


# -- in a real browser: light and dark -------------------------------------------------------------

PAGE_LIGHT, CARD_LIGHT = (0xEF, 0xEC, 0xE6), (0xFF, 0xFF, 0xFF)
PAGE_DARK, CARD_DARK = (0x12, 0x11, 0x10), (0x1C, 0x1B, 0x19)


def _screenshot(browser: str, page: Path, target: Path, profile: Path, *dark: str) -> None:
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--window-size=700,1400",
            *dark,
            f"--screenshot={target}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert target.exists()


def _rows(path: Path, until: int = 701) -> tuple[tuple[int, int], list[bytes]]:
    """(width, height) and the first RGB rows of an 8-bit, non-interlaced RGB(A) PNG."""
    data, position, idat = path.read_bytes(), 8, b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        chunk = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8
            assert colour in (2, 6)
            assert chunk[12] == 0
        elif kind == b"IDAT":
            idat += chunk
    size = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * size
    rows, previous = [], bytearray(stride)
    for y in range(min(height, until)):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            left = line[x - size] if x >= size else 0
            up, corner = previous[x], previous[x - size] if x >= size else 0
            guess = left + up - corner
            paeth = min(
                (abs(guess - left), 0, left),
                (abs(guess - up), 1, up),
                (abs(guess - corner), 2, corner),
            )[2]
            line[x] = (line[x] + (0, left, up, (left + up) // 2, paeth)[kind]) & 255
        rows.append(bytes(b for x, b in enumerate(line) if x % size < 3))
        previous = line
    return (width, height), rows


def _pixel(rows: list[bytes], x: int, y: int) -> tuple[int, ...]:
    return tuple(rows[y][3 * x : 3 * x + 3])


@pytest.mark.browser
def test_the_digest_in_headless_chromium_light_and_dark(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install chromium (see .ci/run)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    page = GOLDEN / "events-weekly-20261123-20261130.html"
    light, dark = tmp_path / "digest-light.png", tmp_path / "digest-dark.png"
    _screenshot(browser, page, light, tmp_path / "profile-light")
    # preferredColorScheme 0 is dark; --force-dark-mode alone does it too in Chromium 156
    _screenshot(
        browser,
        page,
        dark,
        tmp_path / "profile-dark",
        "--force-dark-mode",
        "--blink-settings=preferredColorScheme=0",
    )
    (size, light_rows), (_, dark_rows) = _rows(light), _rows(dark)
    assert size == (700, 1400)
    assert _pixel(light_rows, 10, 700) == PAGE_LIGHT
    assert _pixel(light_rows, 60, 700) == CARD_LIGHT
    assert _pixel(dark_rows, 10, 700) == PAGE_DARK
    assert _pixel(dark_rows, 60, 700) == CARD_DARK
    # the card is at most 600 px wide and centred: page colour at both sides
    assert _pixel(light_rows, 40, 700) == PAGE_LIGHT
    assert _pixel(light_rows, 660, 700) == PAGE_LIGHT
    assert _pixel(light_rows, 50, 700) == CARD_LIGHT
    assert _pixel(light_rows, 649, 700) == CARD_LIGHT
    if os.environ.get("SOLIDLINE_REGENERATE_GOLDEN") == "1":
        for shot in (light, dark):
            shutil.copyfile(shot, ROOT / "docs" / shot.name)


_NO_MARK = st.text(st.characters(blacklist_categories=("Co", "Cs")), max_size=12)


@given(
    pieces=st.lists(st.tuples(_NO_MARK, st.sampled_from([0, 1])), max_size=8),
    tail=_NO_MARK,
    salutation=_NO_MARK,
    url=_NO_MARK,
)
def test_filling_in_the_marks_is_replacing_each_in_turn(
    pieces: list[tuple[str, int]], tail: str, salutation: str, url: str
) -> None:
    text = "".join(piece + newsletter_module._MARKS[mark] for piece, mark in pieces) + tail
    values = newsletter_module._Personal(salutation, url)
    one_by_one = text
    for mark, value in zip(newsletter_module._MARKS, values, strict=True):
        one_by_one = one_by_one.replace(mark, value)
    assert newsletter_module._personalised(text, values) == one_by_one
