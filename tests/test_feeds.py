"""Tests of solidline.feeds: Atom and RSS read back by feedparser and by newsboat.

Golden files: tests/golden/feeds/<key>.atom and .rss are the feeds of the real record (events/)
rendered with the fixed specs of tests/feed_reader.py, compared byte for byte. When the record
or the feed format changes on purpose, regenerate them and review the diff:

    SOLIDLINE_REGENERATE_GOLDEN=1 pytest tests/test_feeds.py -k golden

The real feed reader is newsboat (Debian package ``newsboat``); without it these tests skip,
unless CI is set, where they fail. The locale tests use the Debian package ``locales-all`` when
it is installed (vi_VN, lo_LA …) and fall back to C.UTF-8 and POSIX.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import locale
import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import feedparser
import lxml.etree
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from feed_reader import (
    Newsboat,
    render_record,
    serve,
    spec_for,
    timeline_keys,
    timeline_of,
)
from solidline import (
    Corrected,
    EntityDefined,
    InvalidEvent,
    JsonlLog,
    Meeting,
    MemoryLog,
    Participant,
    Person,
    Retracted,
    Source,
    Statement,
    StatusChanged,
    feeds,
)
from solidline.feeds import FeedCache, FeedSpec, render_feed
from solidline.log import Head
from solidline.timeline import Entry, Projection, Timeline

HERE = Path(__file__).resolve().parent
EVENTS = HERE.parent / "events"
GOLDEN = HERE / "golden" / "feeds"
GOLDEN_KEYS = ("all", "cpusa~cpv", "la~vn", "cpusa~lprp")
REGENERATE = os.environ.get("SOLIDLINE_REGENERATE_GOLDEN") == "1"
FORMATS = ("atom", "rss")
T0 = dt.datetime(2026, 3, 1, 9, 30, 15, 250_000, tzinfo=dt.UTC)
STATUS_MARKS = {"scheduled": "[scheduled]", "postponed": "[postponed]", "cancelled": "[cancelled]"}


# -- expectations, written independently of solidline.feeds ----------------------------------------


def xml_safe(text: str) -> str:
    """Characters XML 1.0 cannot carry, or discourages (C1 controls, DEL, U+FDD0..U+FDEF),
    replaced by U+FFFD, as the feeds promise."""

    def allowed(c: str) -> bool:
        n = ord(c)
        return (
            c in "\t\n\r"
            or 0x20 <= n <= 0x7E
            or 0xA0 <= n <= 0xD7FF
            or (0xE000 <= n <= 0xFFFD and not 0xFDD0 <= n <= 0xFDEF)
            or 0x10000 <= n <= 0x10FFFF
        )

    return "".join(c if allowed(c) else "\ufffd" for c in text)


def expected_title(entry: Entry) -> str:
    title = f"{entry.when.display()} — {entry.title}"
    mark = STATUS_MARKS.get(entry.status)
    return " ".join(xml_safe(f"{mark} {title}" if mark else title).split())


def expected_entries(timeline: Timeline, limit: int) -> list[Entry]:
    """The most recently updated entries first: (updated, published, seq, id), descending."""
    ranked = sorted(
        timeline.entries, key=lambda e: (e.updated, e.published, e.seq, e.id), reverse=True
    )
    return ranked[:limit]


def as_text(detail: Any) -> str:
    """A feedparser text construct as plain text, read as its type says."""
    if detail.type == "text/plain":
        return str(detail.value)
    assert detail.type == "text/html", detail
    return html.unescape(detail.value)


def words(text: str) -> str:
    """Whitespace as HTML sees it: every run is one space."""
    return " ".join(text.split())


def seconds(moment: dt.datetime) -> tuple[int, ...]:
    return tuple(moment.astimezone(dt.UTC).timetuple())[:6]


def parsed_seconds(value: Any) -> tuple[int, ...]:
    return tuple(value)[:6]


def tag(spec: FeedSpec, kind: str, name: str) -> str:
    host = spec.base_url.split("/")[2]
    return f"tag:{host},{spec.tag_date}:{kind}/{name}"


# -- reading a feed back ---------------------------------------------------------------------------


def read_back(xml: bytes, timeline: Timeline, spec: FeedSpec, format: str) -> Any:
    """Parse with feedparser and check the feed and every entry, exactly; returns the parse."""
    parsed = feedparser.parse(xml)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == ("atom10" if format == "atom" else "rss20")
    check_feed(parsed.feed, timeline, spec, format)
    wanted = expected_entries(timeline, spec.limit)
    assert [e.id for e in parsed.entries] == [tag(spec, "event", w.id) for w in wanted]
    for got, want in zip(parsed.entries, wanted, strict=True):
        check_entry(got, want, timeline, spec, format)
    return parsed


def check_feed(feed: Any, timeline: Timeline, spec: FeedSpec, format: str) -> None:
    assert as_text(feed.title_detail) == words(xml_safe(f"{timeline.title} — {spec.site_title}"))
    assert feed.link == spec.base_url + spec.page_path
    links = {link.rel: link.href for link in feed.links}
    assert links == {"alternate": feed.link, "self": spec.base_url + spec.feed_path}
    assert parsed_seconds(feed.updated_parsed) == seconds(feed_updated(timeline))
    if format == "atom":
        assert feed.id == tag(spec, "feed", timeline.key)


def feed_updated(timeline: Timeline) -> dt.datetime:
    if timeline.entries:
        return max(e.updated for e in timeline.entries)
    if timeline.head.recorded_at:
        return dt.datetime.fromisoformat(timeline.head.recorded_at.replace("Z", "+00:00"))
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def check_entry(got: Any, want: Entry, timeline: Timeline, spec: FeedSpec, format: str) -> None:
    link = f"{spec.base_url}{spec.page_path}#{want.id}"
    assert as_text(got.title_detail) == expected_title(want)
    assert got.link == link
    assert [(x.rel, x.href) for x in got.links] == [("alternate", link)]
    assert parsed_seconds(got.published_parsed) == seconds(want.published)
    if format == "atom":
        assert parsed_seconds(got.updated_parsed) == seconds(want.updated)
    plain = xml_safe(want.event.summary).strip() or expected_title(want)
    if format == "atom":  # plain text, exactly
        assert got.summary == xml_safe(plain).strip()
    else:  # RSS <description> is HTML, where runs of whitespace are one space
        assert words(html.unescape(got.summary)) == words(xml_safe(plain))
    check_content(got.content[0].value, want, timeline)


def check_content(content: str, want: Entry, timeline: Timeline) -> None:
    """The HTML content names the date, status, summary and every source, and links them."""
    text = words(html.unescape(content))
    assert want.when.display() in text
    mark = STATUS_MARKS.get(want.status)
    assert mark is None or mark in text
    assert words(xml_safe(want.event.summary)) in text
    for source in want.sources:
        for part in (source.title, source.publisher, source.published.display(), source.quote):
            assert words(xml_safe(part or "")) in text
    wanted = [xml_safe(s.url) for s in want.sources if s.url]
    assert [unquote(href) for href in hrefs(content)] == wanted


def hrefs(fragment: str) -> list[str]:
    """The href of every <a> in an HTML fragment."""
    found: list[str] = []

    class Links(HTMLParser):
        def handle_starttag(self, tag: str, attributes: list[tuple[str, str | None]]) -> None:
            found.extend(v or "" for k, v in attributes if tag == "a" and k == "href")

    Links().feed(fragment)
    return found


# -- building records ------------------------------------------------------------------------------


class Clock:
    """A settable clock for the log: record times are whatever the test says."""

    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def tick(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


def source(**changes: Any) -> Source:
    fields = {"title": "A report", "publisher": "A publisher", "published": "2024-10-08"}
    return Source(**(fields | changes))


def meeting(event_id: str, *entities: str, **changes: Any) -> Meeting:
    fields: dict[str, Any] = {
        "id": event_id,
        "when": "2024-09-22",
        "title": f"Meeting {event_id}",
        "summary": f"Summary of {event_id}.",
        "sources": [source()],
        "participants": [Participant(entity=e) for e in entities],
    }
    return Meeting(**(fields | changes))


def entities(*ids: str) -> list[EntityDefined]:
    return [EntityDefined(entity=e, kind="party", name=f"Party {e.upper()}") for e in ids]


def projection_of(log: MemoryLog) -> Projection:
    return Projection.from_log(log)


def direct_timeline(entries: list[Entry], key: str = "a~b") -> Timeline:
    """A timeline built from entries directly, for text the log itself refuses."""
    head = Head(len(entries), "0" * 64, "2026-03-01T09:30:15.250000Z")
    return Timeline(key, "A – B", tuple(entries), {}, head)


def direct_entry(
    n: int, event: Meeting, published: dt.datetime = T0, updated: dt.datetime | None = None
) -> Entry:
    return Entry(
        id=event.id or f"e{n}",
        event=event,
        sources=event.sources,
        ids=(event.id or f"e{n}",),
        history=(),
        entities=event.entities(),
        published=published,
        updated=updated or published,
        seq=n,
    )


SPEC_AB = spec_for("a~b", "atom")


def spec_ab(format: str, **changes: Any) -> FeedSpec:
    return spec_for("a~b", format, **changes)


# -- the spec --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_url", "example.org/solidline/"),
        ("base_url", "https://example.org/solidline"),
        ("base_url", "ftp://example.org/"),
        ("base_url", "https://example.org/?q=1/"),
        ("feed_path", "/feeds/a.atom"),
        ("feed_path", "feeds/a b.atom"),
        ("page_path", "page.html#top"),
        ("page_path", ""),
        ("tag_date", "26"),
        ("tag_date", "2026-13"),
        ("tag_date", "2026-02-30"),
        ("limit", 0),
    ],
)
def test_spec_refuses_bad_values(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        spec_for("a~b", "atom", **{field: value})


def test_spec_gives_absolute_urls_and_a_tag_authority_from_the_host() -> None:
    spec = spec_for("a~b", "rss", base_url="https://Example.ORG:8443/s/", tag_date="2026-05")
    assert spec.tag_authority == "tag:example.org,2026-05:"
    assert spec.feed_url == "https://Example.ORG:8443/s/feeds/a~b.rss"
    assert spec.page_url == "https://Example.ORG:8443/s/relationships/a~b.html"


def test_render_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="atom"):
        render_feed(direct_timeline([]), SPEC_AB, "json")  # type: ignore[arg-type]


# -- the real record -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def record() -> Projection:
    return Projection.from_log(JsonlLog(EVENTS, readonly=True))


RECORD_KEYS = timeline_keys(Projection.from_log(JsonlLog(EVENTS, readonly=True)))


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("key", RECORD_KEYS)
def test_every_feed_of_the_record_reads_back(record: Projection, key: str, format: str) -> None:
    timeline = timeline_of(record, key)
    spec = spec_for(key, format)
    read_back(render_feed(timeline, spec, format), timeline, spec, format)


@pytest.mark.parametrize("format", FORMATS)
def test_the_whole_record_feed_holds_every_entry(record: Projection, format: str) -> None:
    timeline = record.timeline()
    parsed = feedparser.parse(render_feed(timeline, spec_for("all", format), format))
    assert len(parsed.entries) == len(timeline.entries) > 20


# -- hostile text ----------------------------------------------------------------------------------

HOSTILE = [
    "<script>alert(1)</script>",
    "a ]]> b <![CDATA[ c ]]> \" ' & &amp; &lt;",
    '<img src=x onerror="alert(1)"> <a href="javascript:alert(1)">x</a>',
    "controls \x00\x01\x02\x03\x04\x05\x06\x07\x08 \x0b\x0c \x0e\x0f\x10\x1b\x1f\x7f end",
    "\ufffe\uffff non-characters",
    "ພາສາລາວ: ສາທາລະນະລັດ ປະຊາທິປະໄຕ ປະຊາຊົນລາວ",
    "Tiếng Việt: Cộng hòa Xã hội chủ nghĩa Việt Nam",
    "line one\nline two\r\nline three\ttabbed  ",
]


def hostile_log() -> MemoryLog:
    clock = Clock()
    log = MemoryLog(clock=clock)
    log.append(
        [
            EntityDefined(
                entity="la", kind="state", name="ສາທາລະນະລັດ ປະຊາທິປະໄຕ ປະຊາຊົນລາວ", short_name="ລາວ"
            ),
            EntityDefined(
                entity="vn",
                kind="state",
                name="Cộng hòa Xã hội chủ nghĩa Việt Nam",
                short_name="Việt Nam",
            ),
            EntityDefined(
                entity="x",
                kind="organisation",
                name='<script>alert("x")</script>',
                short_name="]]>\x00",
            ),
        ]
    )
    for n, text in enumerate(HOSTILE):
        clock.tick(seconds=n % 3)  # some equal times too
        url = f'https://example.org/{n}?a=1&b="<script>"'
        log.append(
            meeting(
                f"hostile-{n}",
                "la",
                "vn",
                "x",
                title=f"{text} title",
                summary=f"{text} summary",
                place=f"{text} place",
                note=f"{text} note",
                people=[Person(name=f"{text} person")],
                sources=[
                    source(
                        title=f"{text} source",
                        publisher=f"{text} publisher",
                        quote=f"{text} quote",
                        url=url,
                    )
                ],
            )
        )
    clock.tick(hours=1)
    log.append(StatusChanged(target="hostile-0", status="scheduled", when="2027-05"))
    return log


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("key", ["la~vn", "x", "all"])
def test_hostile_text_reads_back_exactly(key: str, format: str) -> None:
    timeline = timeline_of(projection_of(hostile_log()), key)
    spec = spec_for(key, format)
    xml = render_feed(timeline, spec, format)
    parsed = read_back(xml, timeline, spec, format)
    assert b"<script" not in xml
    assert b"<img" not in xml
    assert len(parsed.entries) == len(HOSTILE)
    assert "ພາສາລາວ" in xml.decode()
    assert "Tiếng Việt" in xml.decode()


def test_lone_surrogates_are_refused_by_the_log() -> None:
    log = MemoryLog(clock=Clock())
    log.append(entities("a", "b"))
    head = log.head
    with pytest.raises(InvalidEvent):
        log.append(meeting("m", "a", "b", title="half a pair \ud800"))
    assert log.head == head


@pytest.mark.parametrize("format", FORMATS)
def test_control_characters_and_surrogates_are_replaced(format: str) -> None:
    # feedgen fault 4: lxml raises ValueError ("All strings must be XML compatible") on these;
    # the feed replaces them with U+FFFD instead.
    bad = "\x00\x08\x0b\x0c\x0e\x1f\ud800\udfff\ufffe"
    event = meeting(
        "m",
        "a",
        "b",
        title=f"t{bad}t",
        summary=f"s{bad}s",
        sources=[source(quote=f"q{bad}q", title=f"st{bad}")],
    )
    timeline = direct_timeline([direct_entry(1, event)])
    spec = spec_ab(format)
    xml = render_feed(timeline, spec, format)
    parsed = read_back(xml, timeline, spec, format)
    assert parsed.entries[0].title.endswith("t" + "\ufffd" * len(bad) + "t")


# Any code point, lone surrogates included, with the troublesome ones drawn often.
hostile_characters = st.one_of(
    st.characters(exclude_categories=()),
    st.sampled_from(list("\x00\x08\x0b\x1f\x7f\x80\x9f\ud800\udfff\ufffe<>&;]\"'\r\n ພệ")),
)
any_text = st.text(hostile_characters, max_size=60)
text_without_blank = st.text(hostile_characters, min_size=1, max_size=40).filter(
    lambda s: s.strip() != ""
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=text_without_blank,
    summary=any_text,
    quote=text_without_blank,
    publisher=text_without_blank,
    status=st.sampled_from(["occurred", "scheduled", "postponed", "cancelled"]),
    format=st.sampled_from(FORMATS),
)
def test_any_text_reads_back(
    title: str, summary: str, quote: str, publisher: str, status: str, format: str
) -> None:
    assume(not any(map(feedparser_repairs, (title, summary, quote, publisher))))
    event = meeting(
        "m",
        "a",
        "b",
        title=title,
        summary=summary,
        status=status,
        sources=[source(quote=quote, publisher=publisher)],
    )
    timeline = direct_timeline([direct_entry(1, event)])
    spec = spec_ab(format)
    read_back(render_feed(timeline, spec, format), timeline, spec, format)


def feedparser_repairs(text: str) -> bool:
    """Whether feedparser takes ``text`` for double-encoded UTF-8 and "repairs" it.

    feedparser (mixin.py, ``pop``) re-decodes any element text whose Latin-1 bytes are valid
    UTF-8: "Â¡" reads back as "¡". That is the reader's guess, not a fault of the feed.
    """
    try:
        return text.encode("iso-8859-1").decode("utf-8") != text
    except UnicodeError:
        return False


@pytest.mark.parametrize("format", FORMATS)
def test_text_feedparser_would_repair_is_written_exactly(format: str) -> None:
    text = "Â¡ Ã©"
    assert feedparser_repairs(text)
    event = meeting("m", "a", "b", title=text, summary=text, sources=[source(quote=text)])
    timeline = direct_timeline([direct_entry(1, event)])
    xml = render_feed(timeline, spec_ab(format), format)
    titles = lxml.etree.fromstring(xml).xpath(
        "//*[local-name()='entry' or local-name()='item']/*[local-name()='title']/text()"
    )
    assert [title.endswith(text) for title in titles] == [True]


# -- order, limit, determinism ---------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    stamps=st.lists(st.integers(0, 3), min_size=1, max_size=25),
    limit=st.integers(1, 30),
    seed=st.randoms(use_true_random=False),
)
def test_order_is_total_and_independent_of_input_order(
    stamps: list[int], limit: int, seed: random.Random
) -> None:
    entries = []
    for n, stamp in enumerate(stamps, start=1):
        published = T0 + dt.timedelta(seconds=stamp)
        updated = published + dt.timedelta(seconds=stamps[-n] % 2)
        entries.append(direct_entry(n, meeting(f"e{n}", "a", "b"), published, updated))
    shuffled = list(entries)
    seed.shuffle(shuffled)
    for format in FORMATS:
        spec = spec_ab(format, limit=limit)
        xml = render_feed(direct_timeline(entries), spec, format)
        assert render_feed(direct_timeline(shuffled), spec, format) == xml
        read_back(xml, direct_timeline(entries), spec, format)


def test_many_entries_with_equal_times_keep_the_log_order() -> None:
    log = MemoryLog(clock=Clock())  # the clock never moves: every line has the same time
    log.append(entities("a", "b"))
    log.append([meeting(f"m{n:03}", "a", "b") for n in range(200)])
    timeline = projection_of(log).timeline(relationship="a~b")
    parsed = feedparser.parse(render_feed(timeline, spec_ab("atom", limit=500), "atom"))
    assert [e.id.rsplit("/", 1)[1] for e in parsed.entries] == [
        f"m{n:03}" for n in reversed(range(200))
    ]


@pytest.mark.parametrize("format", FORMATS)
def test_thousands_of_entries_respect_the_limit(format: str) -> None:
    clock = Clock()
    log = MemoryLog(clock=clock)
    log.append(entities("a", "b"))
    for batch in range(30):
        clock.tick(minutes=1)
        log.append([meeting(f"m{batch}-{n}", "a", "b") for n in range(100)])
    clock.tick(minutes=1)
    log.append(Corrected(target="m0-0", changes={"title": "Corrected"}, reason="typo"))
    timeline = projection_of(log).timeline(relationship="a~b")
    assert len(timeline.entries) == 3000
    spec = spec_ab(format, limit=25)
    parsed = read_back(render_feed(timeline, spec, format), timeline, spec, format)
    assert len(parsed.entries) == 25
    assert parsed.entries[0].title.endswith("— Corrected")  # a correction is news again
    assert parsed.entries[1].id.endswith("/m29-99")


def test_an_empty_feed_is_dated_by_the_record() -> None:
    clock = Clock()
    log = MemoryLog(clock=clock)
    empty = projection_of(log).timeline(relationship="a~b")
    for format in FORMATS:
        spec = spec_ab(format)
        parsed = read_back(render_feed(empty, spec, format), empty, spec, format)
        assert parsed.feed.updated_parsed[:3] == (1970, 1, 1)
    log.append(entities("a", "b"))
    timeline = projection_of(log).timeline(relationship="a~b")
    for format in FORMATS:
        spec = spec_ab(format)
        parsed = read_back(render_feed(timeline, spec, format), timeline, spec, format)
        assert parsed_seconds(parsed.feed.updated_parsed) == seconds(T0)


# -- corrections, retractions, status --------------------------------------------------------------


def corrected_log() -> tuple[MemoryLog, Clock]:
    clock = Clock()
    log = MemoryLog(clock=clock)
    log.append(entities("a", "b"))
    log.append([meeting("m1", "a", "b"), meeting("m2", "a", "b", when="1962-09-05")])
    return log, clock


@pytest.mark.parametrize("format", FORMATS)
def test_a_correction_updates_updated_and_keeps_published_and_id(format: str) -> None:
    log, clock = corrected_log()
    before = feedparser.parse(render_feed(projection_of(log).timeline(), spec_ab(format), format))
    clock.tick(days=3)
    log.append(Corrected(target="m2", changes={"title": "Relations established"}, reason="typo"))
    timeline = projection_of(log).timeline()
    spec = spec_ab(format)
    after = read_back(render_feed(timeline, spec, format), timeline, spec, format)
    old = {e.id: e for e in before.entries}
    new = after.entries[0]
    assert new.id == tag(spec, "event", "m2")
    assert new.id in old
    assert new.title == "5 September 1962 — Relations established"
    assert new.published_parsed == old[new.id].published_parsed
    assert parsed_seconds(after.feed.updated_parsed) == seconds(clock.now)
    if format == "atom":
        assert parsed_seconds(new.updated_parsed) == seconds(clock.now)
        assert old[new.id].updated_parsed != new.updated_parsed


@pytest.mark.parametrize("format", FORMATS)
def test_a_retraction_removes_the_entry(format: str) -> None:
    log, clock = corrected_log()
    clock.tick(days=1)
    log.append(Retracted(target="m1", reason="never happened"))
    timeline = projection_of(log).timeline()
    spec = spec_ab(format)
    parsed = read_back(render_feed(timeline, spec, format), timeline, spec, format)
    assert [e.id for e in parsed.entries] == [tag(spec, "event", "m2")]


def test_status_other_than_occurred_is_shown() -> None:
    log, clock = corrected_log()
    clock.tick(days=1)
    log.append(StatusChanged(target="m1", status="postponed", when="2027"))
    timeline = projection_of(log).timeline()
    parsed = read_back(
        render_feed(timeline, spec_ab("rss"), "rss"), timeline, spec_ab("rss"), "rss"
    )
    assert parsed.entries[0].title == "[postponed] 2027 — Meeting m1"
    assert "[postponed]" in parsed.entries[0].content[0].value
    assert not parsed.entries[1].title.startswith("[")


def test_a_statement_with_its_own_fields_renders() -> None:
    log = MemoryLog(clock=Clock())
    log.append(entities("a", "b"))
    log.append(
        Statement(
            id="s",
            when="2021-01-29",
            title="Solidarity",
            speaker="a",
            addressees=["b"],
            quote="We stand with you",
            sources=[source()],
        )
    )
    timeline = projection_of(log).timeline(entity="b")
    spec = spec_for("b", "atom")
    read_back(render_feed(timeline, spec, "atom"), timeline, spec, "atom")


# -- feedgen 1.0.0 faults, each worked around ------------------------------------------------------


def test_an_entry_has_one_link_only(record: Projection) -> None:
    # feedgen fault 1: an entry's links lose rel and type, so a second link (a source, say)
    # would be a second rel="alternate" link of the same type: invalid Atom, and readers
    # pick either. One link, the timeline page, is all an entry may have.
    xml = render_feed(record.timeline(), spec_for("all", "atom"), "atom")
    for entry in feedparser.parse(xml).entries:
        assert len(entry.links) == 1
    assert xml.count(b"<link ") == 2 + len(record.timeline().entries)  # self + page + one each


def test_the_rss_channel_links_to_the_page_not_to_the_feed(record: Projection) -> None:
    # feedgen fault 2: the RSS channel <link> is the last link added; the page must be last.
    spec = spec_for("cpusa~cpv", "rss")
    parsed = feedparser.parse(render_feed(record.timeline(relationship="cpusa~cpv"), spec, "rss"))
    assert parsed.feed.link == spec.page_url != spec.feed_url
    assert b"<link>" + spec.page_url.encode() + b"</link>" in render_feed(
        record.timeline(relationship="cpusa~cpv"), spec, "rss"
    )


@pytest.mark.parametrize("format", FORMATS)
def test_rendering_never_touches_the_locale(
    record: Projection, format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # feedgen fault 3: feedgen.util.formatRFC2822 calls locale.setlocale, process-wide and not
    # thread-safe. The RSS dates are written without it.
    def refuse(*args: object) -> str:
        raise AssertionError(f"locale.setlocale{args} called while rendering a feed")

    monkeypatch.setattr(locale, "setlocale", refuse)
    render_feed(record.timeline(), spec_for("all", format), format)


def test_rss_dates_come_from_the_record_never_from_now(record: Projection) -> None:
    # feedgen defaults lastBuildDate to now(); it must be the newest entry's updated.
    timeline = record.timeline()
    xml = render_feed(timeline, spec_for("all", "rss"), "rss")
    newest = max(e.updated for e in timeline.entries)
    assert xml.count(b"<lastBuildDate>") == 1
    assert parsed_seconds(feedparser.parse(xml).feed.updated_parsed) == seconds(newest)
    assert xml.count(b"<pubDate>") == len(timeline.entries)


def test_the_generator_is_fixed(record: Projection) -> None:
    atom = render_feed(record.timeline(), spec_for("all", "atom"), "atom")
    assert b"<generator>solidline</generator>" in atom
    assert b"version=" not in atom.split(b"?>", 1)[1]  # no feedgen version in the feed
    rss = render_feed(record.timeline(), spec_for("all", "rss"), "rss")
    assert b"<generator>solidline</generator>" in rss


def available_locales(names: list[str]) -> list[str]:
    found = []
    saved = locale.setlocale(locale.LC_ALL)
    try:
        for name in names:
            try:
                locale.setlocale(locale.LC_ALL, name)
            except locale.Error:
                continue
            found.append(name)
    finally:
        locale.setlocale(locale.LC_ALL, saved)
    return found


LOCALES = available_locales(
    [
        "vi_VN.UTF-8",
        "lo_LA.UTF-8",
        "de_DE.UTF-8",
        "fr_FR.UTF-8",
        "ja_JP.UTF-8",
        "th_TH.UTF-8",
        "C.UTF-8",
        "POSIX",
    ]
)


def test_threads_with_other_locales_render_identical_bytes(record: Projection) -> None:
    keys = ["all", "cpusa~cpv", "la~vn"]
    wanted = {
        (k, f): render_feed(timeline_of(record, k), spec_for(k, f), f)
        for k in keys
        for f in FORMATS
    }
    saved = locale.setlocale(locale.LC_ALL)
    failures: list[str] = []
    start = threading.Barrier(8)

    def work(n: int) -> None:
        start.wait()
        for _ in range(5):
            for (key, format), xml in wanted.items():
                locale.setlocale(locale.LC_ALL, LOCALES[n % len(LOCALES)])
                if render_feed(timeline_of(record, key), spec_for(key, format), format) != xml:
                    failures.append(f"thread {n}: {key}.{format}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so that a race shows
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
        locale.setlocale(locale.LC_ALL, saved)
    assert failures == []


def environments() -> Iterator[dict[str, str]]:
    first = "vi_VN.UTF-8" if "vi_VN.UTF-8" in LOCALES else "C.UTF-8"
    second = "lo_LA.UTF-8" if "lo_LA.UTF-8" in LOCALES else "POSIX"
    yield {"TZ": "Asia/Vientiane", "LC_ALL": first, "PYTHONHASHSEED": "1"}
    yield {"TZ": "America/Los_Angeles", "LC_ALL": second, "PYTHONHASHSEED": "2"}
    yield {"TZ": "UTC", "LC_ALL": "POSIX", "PYTHONHASHSEED": "3"}


RENDER_IN_SUBPROCESS = """
import hashlib, json, locale, sys
locale.setlocale(locale.LC_ALL, "")  # take the environment's locale, as an application may
sys.path.insert(0, sys.argv[1])
from feed_reader import render_record
feeds = render_record(sys.argv[2])
print(json.dumps({name: hashlib.sha256(xml).hexdigest() for name, xml in feeds.items()}))
"""


def test_subprocesses_with_other_time_zones_and_locales_render_identical_bytes() -> None:
    results = []
    for changes in environments():
        env = {k: v for k, v in os.environ.items() if not k.startswith("LC_")} | changes
        done = subprocess.run(
            [sys.executable, "-c", RENDER_IN_SUBPROCESS, str(HERE), str(EVENTS)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, (changes, done.stderr)
        results.append(json.loads(done.stdout))
    assert len(results[0]) == 2 * len(RECORD_KEYS)
    assert results[0] == results[1] == results[2]


# -- golden files ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden_feeds() -> dict[str, bytes]:
    return render_record(EVENTS, list(GOLDEN_KEYS))


@pytest.mark.parametrize("name", [f"{k}.{f}" for k in GOLDEN_KEYS for f in FORMATS])
def test_golden(golden_feeds: dict[str, bytes], name: str) -> None:
    path = GOLDEN / name
    if REGENERATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(golden_feeds[name])
    assert path.exists(), f"{path} is missing: run with SOLIDLINE_REGENERATE_GOLDEN=1"
    assert golden_feeds[name] == path.read_bytes(), (
        f"{name} differs from its golden file; if the change is meant, regenerate with "
        "SOLIDLINE_REGENERATE_GOLDEN=1 and review the diff"
    )


# -- a real feed reader: newsboat ------------------------------------------------------------------


def record_copy(clock: Clock) -> MemoryLog:
    """The real record in a writable log, so that a test can append to it."""
    log = MemoryLog(clock=clock)
    log.append([r.event for r in JsonlLog(EVENTS, readonly=True).read()])
    return log


def publish(site: Path, log: MemoryLog, key: str, format: str) -> tuple[Timeline, FeedSpec]:
    timeline = timeline_of(projection_of(log), key)
    spec = spec_for(key, format)
    target = site / spec.feed_path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(render_feed(timeline, spec, format))
    return timeline, spec


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("key", ["all", "cpusa~cpv"])
def test_newsboat_stores_every_entry_once(tmp_path: Path, key: str, format: str) -> None:
    clock = Clock()
    log = record_copy(clock)
    site = tmp_path / "site"
    timeline, spec = publish(site, log, key, format)
    with serve(site) as served:
        reader = Newsboat(tmp_path / "reader", [served.url + spec.feed_path])
        reader.reload()
        items = reader.items()
        expected = {tag(spec, "event", e.id): e for e in timeline.entries}
        assert sorted(i.guid for i in items) == sorted(expected)
        for item in items:
            entry = expected[item.guid]
            stored = html.unescape(item.title) if format == "rss" else item.title
            assert stored == expected_title(entry)
            assert item.url == f"{spec.page_url}#{entry.id}"
            assert item.pub_date == int(entry.published.timestamp())
            assert item.unread == 1
            assert item.deleted == 0

        reader.mark_all_read()
        items = [i._replace(unread=0) for i in items]
        publish(site, log, key, format)  # the same record again: nothing new, nothing unread
        reader.reload()
        assert reader.items() == items
        assert served.fetched == ["/" + spec.feed_path] * 2  # really read twice

        clock.tick(days=1)
        target = next(iter(timeline.entries)).id
        log.append(Corrected(target=target, changes={"title": "Corrected title"}, reason="typo"))
        publish(site, log, key, format)  # a correction is the same item, not a new one
        reader.reload()
        after = reader.items()
        assert [i.guid for i in after] == [i.guid for i in items]
        assert next(i for i in after if i.guid == tag(spec, "event", target)).title.endswith(
            "— Corrected title"
        )


# -- one cache for the feeds of one head -----------------------------------------------------------


def test_a_shared_cache_gives_every_feed_of_the_record_the_same_bytes(record: Projection) -> None:
    cache = FeedCache()
    for key in RECORD_KEYS:
        timeline = timeline_of(record, key)
        for format in FORMATS:
            spec = spec_for(key, format, limit=7)
            alone = render_feed(timeline, spec, format)
            assert render_feed(timeline, spec, format, cache=cache) == alone, (key, format)


def test_a_full_cache_forgets_and_still_gives_the_same_bytes(
    record: Projection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FeedCache, "SIZE", 3)
    cache = FeedCache()
    timeline = record.timeline()
    for format in FORMATS:
        spec = spec_for("all", format)
        assert render_feed(timeline, spec, format, cache=cache) == render_feed(
            timeline, spec, format
        )


def _markup_entry_html(timeline: Timeline, entry: Entry) -> str:
    """The entry's HTML as ``Markup.format`` builds it: what ``feeds._entry_html`` must equal."""
    event = entry.event
    mark = STATUS_MARKS.get(entry.status)
    parts = [
        Markup("<p><strong>{}</strong>{}</p>").format(
            entry.when.display(), f" {mark}" if mark else ""
        )
    ]
    if feeds._xml_text(event.summary).strip():
        parts.append(Markup("<p>{}</p>").format(event.summary))
    if event.place:
        parts.append(Markup("<p>Place: {}</p>").format(event.place))
    names = ", ".join(timeline.name(e) for e in entry.entities)
    if names:
        parts.append(Markup("<p>Involving: {}</p>").format(names))
    if event.note:
        parts.append(Markup("<p>Note: {}</p>").format(event.note))
    cited = []
    for s in entry.sources:
        title = Markup("<cite>{}</cite>").format(s.title)
        if s.url is not None:
            title = Markup('<a href="{}">{}</a>').format(feeds._href(s.url), title)
        one = Markup("<li>{}, {}, {}").format(title, s.publisher, s.published.display())
        if s.quote:
            one += Markup("<blockquote>{}</blockquote>").format(s.quote)
        cited.append(one + Markup("</li>"))
    parts.append(Markup("<p>Sources:</p><ul>{}</ul>").format(Markup("").join(cited)))
    return str(Markup("\n").join(parts))


def test_entry_html_of_the_record_and_of_hostile_text_is_what_markup_builds(
    record: Projection,
) -> None:
    for projection in (record, projection_of(hostile_log())):
        timeline = projection.timeline()
        for entry in timeline.entries:
            assert feeds._entry_html(timeline, entry) == _markup_entry_html(timeline, entry)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=text_without_blank,
    summary=any_text,
    quote=text_without_blank,
    publisher=text_without_blank,
    place=any_text,
    status=st.sampled_from(["occurred", "scheduled", "postponed", "cancelled"]),
    url=st.sampled_from([None, 'https://example.org/0?a=1&b="<script>"', "https://x.org/a'b"]),
)
def test_entry_html_of_any_text_is_what_markup_builds(
    title: str, summary: str, quote: str, publisher: str, place: str, status: str, url: str | None
) -> None:
    event = meeting(
        "m",
        "a",
        "b",
        title=title,
        summary=summary,
        place=place.strip() or None,
        note=summary.strip() or None,
        status=status,
        sources=[source(quote=quote, publisher=publisher, url=url)],
    )
    timeline = direct_timeline([direct_entry(1, event)])
    entry = timeline.entries[0]
    assert feeds._entry_html(timeline, entry) == _markup_entry_html(timeline, entry)
