"""Atom 1.0 and RSS 2.0 feeds of a timeline, through feedgen.

A feed holds the *N most recently updated* entries of a timeline (``FeedSpec.limit``), newest
first: a correction brings an old entry back to the top, and a backfilled 1962 event is news the
day it is recorded. Order is total: (updated, published, seq, id), all descending.

- An entry's id is a ``tag:`` URI made of the event id (never a URL), the same in Atom ``<id>``
  and RSS ``<guid isPermaLink="false">``.
- ``published`` and ``updated`` are the record's times; the event's own date is in the title and
  the content (``22 September 2024 — CPUSA delegation meets …``).
- Each entry has one link: the timeline page, with the entry id as fragment.
- The same record gives the same bytes, whatever the time, time zone, locale or thread: nothing
  reads the clock; the feed's ``updated`` is its newest entry's (the record's head time when the
  feed is empty, the Unix epoch when the record is).

feedgen 1.0.0 has faults this module works around; each is named where it is handled and
covered by a test in ``tests/test_feeds.py`` that fails without the workaround.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import heapq
import html
import re
from collections.abc import Callable, Iterable
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import attrs
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem
from markupsafe import escape

from .codec import parse_timestamp
from .model import Source
from .timeline import Entry, Timeline

__all__ = ["FeedCache", "FeedSpec", "render_feed"]

Format = Literal["atom", "rss"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MEDIA_TYPES: dict[str, str] = {"atom": "application/atom+xml", "rss": "application/rss+xml"}
_STATUS_MARK = {"scheduled": "[scheduled]", "postponed": "[postponed]", "cancelled": "[cancelled]"}
# What XML 1.0 cannot carry: C0 controls but tab, newline and carriage return; lone surrogates;
# U+FFFE and U+FFFF. lxml raises on them (feedgen fault 4). Also what XML 1.0 discourages and
# readers mangle: DEL and the C1 controls (feedparser reads U+0080 as "€"), and the
# non-characters U+FDD0 to U+FDEF.
_NOT_XML = re.compile(
    "[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufdcf\ufdf0-\ufffd\U00010000-\U0010ffff]"
)
_TAG_DATE = re.compile(r"[0-9]{4}(?:-[0-9]{2}(?:-[0-9]{2})?)?", re.ASCII)
_URL_PATH = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@%/-]+", re.ASCII)


# -- the spec --------------------------------------------------------------------------------------


def _check_base_url(_: object, attribute: attrs.Attribute[Any], value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or not value.endswith("/"):
        raise ValueError(
            f"{attribute.name}={value!r}: give an absolute http(s) URL ending with '/', "
            "e.g. 'https://example.org/solidline/'"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{attribute.name}={value!r}: a base URL has no query or fragment")


def _check_path(_: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not _URL_PATH.fullmatch(value) or value.startswith("/"):
        raise ValueError(
            f"{attribute.name}={value!r}: give a path relative to base_url, without a leading "
            "'/', spaces, '?' or '#', e.g. 'feeds/cpusa~cpv.atom'"
        )


def _check_tag_date(_: object, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        if not _TAG_DATE.fullmatch(value):
            raise ValueError(value)
        dt.date.fromisoformat((value + "-01-01")[:10])  # 2026 -> 2026-01-01, a real day?
    except ValueError:
        raise ValueError(
            f"{attribute.name}={value!r}: give the date the site's host was held, as "
            "YYYY, YYYY-MM or YYYY-MM-DD (RFC 4151), e.g. '2026'"
        ) from None


@attrs.frozen(kw_only=True)
class FeedSpec:
    """What a feed needs besides its timeline: where it lives and whose it is.

    Make one per feed file: ``feed_path`` is the path of the file being rendered (its
    ``rel="self"`` link), so an Atom and an RSS feed of one timeline have two specs.

    Args:
        base_url: the site's absolute URL, ending with ``/`` (``https://example.org/solidline/``).
        site_title: the site's title, shown after the timeline's in the feed title.
        feed_path: this feed's path below ``base_url`` (``feeds/cpusa~cpv.atom``).
        page_path: the HTML timeline page the entries link to (``relationships/cpusa~cpv.html``).
        tag_date: a date the site's host belonged to its publisher, ``YYYY[-MM[-DD]]``; with the
            host it makes the ``tag:`` authority of every id (``tag:example.org,2026:``). Never
            change it: every id would change and readers would show every entry again.
        limit: how many entries the feed holds: the most recently updated ones.
        author: the feed's author; the site title when left out.
        language: the feed's language, an IETF tag.
        entry_page: the page an entry links to, where it is not ``page_path`` (a timeline
            published in sections has a page for each).
    """

    base_url: str = attrs.field(validator=_check_base_url)
    site_title: str = attrs.field(validator=attrs.validators.min_len(1))
    feed_path: str = attrs.field(validator=_check_path)
    page_path: str = attrs.field(validator=_check_path)
    tag_date: str = attrs.field(validator=_check_tag_date)
    limit: int = attrs.field(default=50, validator=attrs.validators.ge(1))
    author: str | None = None
    language: str = "en"
    entry_page: Callable[[Entry], str] | None = attrs.field(default=None, eq=False)

    @property
    def tag_authority(self) -> str:
        """``tag:example.org,2026:``: the prefix of every id in the feed."""
        host = urlsplit(self.base_url).hostname or ""
        return f"tag:{host.encode('idna').decode('ascii')},{self.tag_date}:"

    @property
    def feed_url(self) -> str:
        """The absolute URL of this feed file."""
        return self.base_url + self.feed_path

    @property
    def page_url(self) -> str:
        """The absolute URL of the HTML timeline page."""
        return self.base_url + self.page_path


# -- rendering -------------------------------------------------------------------------------------


class FeedCache:
    """What the feeds of many timelines share, made once: a timeline's newest entries (the
    same in each of its formats) and each entry's HTML content (an entry is in the feeds of
    the whole record, of its entities and of their relationships).

    An entry's HTML depends on the entry and on the entity names, which the timelines of one
    projection head share: give one cache to the feeds of timelines of one head (a publish run
    does), never of two. It holds the last timeline's newest entries and at most
    :attr:`SIZE` entries' HTML (forgotten all at once when full: a full publish renders
    feeds for every timeline, and memory must not grow with the record).
    """

    SIZE = 10_000

    def __init__(self) -> None:
        self._newest: tuple[Timeline, int, list[Entry]] | None = None
        self._content: dict[int, tuple[Entry, str]] = {}

    def newest(self, timeline: Timeline, limit: int) -> list[Entry]:
        """The timeline's ``limit`` most recently updated entries, newest first."""
        last = self._newest
        if last is None or last[0] is not timeline or last[1] != limit:
            last = self._newest = (timeline, limit, _newest_entries(timeline.entries, limit))
        return last[2]

    def content(self, timeline: Timeline, entry: Entry) -> str:
        """The entry's HTML content, fit for XML."""
        found = self._content.get(id(entry))  # the entry is held: its id is not reused
        if found is None:
            if len(self._content) >= self.SIZE:
                self._content.clear()
            found = self._content[id(entry)] = (entry, _xml_text(_entry_html(timeline, entry)))
        return found[1]


def render_feed(
    timeline: Timeline, spec: FeedSpec, format: Format = "atom", *, cache: FeedCache | None = None
) -> bytes:
    """Render a timeline's feed: its ``spec.limit`` most recently updated entries, newest first.

    Args:
        timeline: the timeline (of the whole record, an entity or a relationship).
        spec: where the feed and its page live, and whose it is.
        format: ``"atom"`` (Atom 1.0) or ``"rss"`` (RSS 2.0).
        cache: what the feeds of timelines of the same projection head can share (see
            :class:`FeedCache`); the bytes are the same with it or without.

    Returns:
        The feed as UTF-8 XML: the same bytes for the same record and spec, always.

    Raises:
        ValueError: ``format`` is neither ``"atom"`` nor ``"rss"``.
    """
    if format not in _MEDIA_TYPES:
        raise ValueError(f"format={format!r}: choose 'atom' or 'rss'")
    if cache is None:
        cache = FeedCache()
    entries = cache.newest(timeline, spec.limit)
    generator = _generator(timeline, spec, format, _feed_updated(timeline, entries))
    for entry in entries:
        _add_entry(generator, timeline, spec, entry, format, cache)
    if format == "rss":
        xml: bytes = generator.rss_str(pretty=True, encoding="UTF-8", xml_declaration=True)
    else:
        xml = generator.atom_str(pretty=True, encoding="UTF-8", xml_declaration=True)
    return xml


def _newest_entries(entries: Iterable[Entry], limit: int) -> list[Entry]:
    """The ``limit`` most recently updated entries, newest first, in a total order.

    ``heapq.nlargest`` gives what ``sorted(..., reverse=True)[:limit]`` gives (ties keep their
    order in both) in one pass, without sorting a long timeline.
    """
    return heapq.nlargest(limit, entries, key=_recency)


def _recency(entry: Entry) -> tuple[dt.datetime, dt.datetime, int, str]:
    return entry.updated, entry.published, entry.seq, entry.id


def _feed_updated(timeline: Timeline, entries: list[Entry]) -> dt.datetime:
    if entries:
        return entries[0].updated
    return parse_timestamp(timeline.head.recorded_at) if timeline.head.recorded_at else _EPOCH


def _generator(
    timeline: Timeline, spec: FeedSpec, format: Format, updated: dt.datetime
) -> FeedGenerator:
    generator = FeedGenerator()
    generator.id(f"{spec.tag_authority}feed/{timeline.key}")
    text = _text_for(format)
    generator.title(text(_one_line(f"{timeline.title} — {spec.site_title}")))
    generator.subtitle(
        text(_xml_text(f"{timeline.title}: events as recorded by {spec.site_title}"))
    )
    generator.author(name=_xml_text(spec.author or spec.site_title))
    generator.language(spec.language)
    # A fixed generator: feedgen's default carries its version, which would change the bytes
    # of every feed on an upgrade of feedgen.
    generator.generator("solidline")
    # feedgen fault 2: the RSS channel <link> is whichever link was added last. Add the self
    # link first and the page last, so that RSS readers link the channel to the page.
    generator.link(href=spec.feed_url, rel="self", type=_MEDIA_TYPES[format])
    generator.link(href=spec.page_url, rel="alternate", type="text/html")
    _set_updated(generator, format, updated)
    return generator


def _set_updated(generator: Any, format: Format, updated: dt.datetime) -> None:
    if format == "atom":
        generator.updated(_utc(updated))  # isoformat(): no locale involved
        return
    # feedgen fault 3: every RSS date goes through feedgen.util.formatRFC2822, which calls
    # locale.setlocale: process-wide and not thread-safe, so a setlocale in another thread
    # makes it write day and month names in another language, or restore the wrong locale.
    # No date is given to feedgen for RSS: _RssFeedDates and _RssEntryDates write them.
    # feedgen also defaults lastBuildDate to now(), with no public way to unset it: hence the
    # private attribute (feedgen is pinned to 1.0.0).
    generator._FeedGenerator__rss_lastBuildDate = None
    generator.register_extension("solidline_dates", _RssFeedDates, _RssEntryDates, atom=False)
    generator.solidline_dates.moment = updated


def _add_entry(
    generator: Any,
    timeline: Timeline,
    spec: FeedSpec,
    entry: Entry,
    format: Format,
    cache: FeedCache,
) -> None:
    item: Any = generator.add_entry(order="append")
    item.id(f"{spec.tag_authority}event/{entry.id}")
    text = _text_for(format)
    item.title(text(_one_line(_entry_title(entry))))
    # feedgen fault 1: an entry's links lose rel, type, hreflang and title (its loop writes the
    # attributes of the element it just made, not of the link given). One link, the page, is
    # right without them: a link with no rel is rel="alternate".
    page = spec.base_url + spec.entry_page(entry) if spec.entry_page else spec.page_url
    item.link(href=f"{page}#{entry.id}")
    item.content(cache.content(timeline, entry), type="html")
    item.summary(text(_xml_text(entry.event.summary).strip() or _one_line(_entry_title(entry))))
    item.category(term=entry.event.type)
    if format == "rss":
        item.solidline_dates.moment = entry.published
    else:
        item.published(_utc(entry.published))
        item.updated(_utc(entry.updated))


# -- text ------------------------------------------------------------------------------------------


def _entry_title(entry: Entry) -> str:
    """``[scheduled] 22 September 2026 — CPUSA delegation visits Hanoi`` (the mark when not
    ``occurred``, first so that a reader cutting long titles keeps it)."""
    mark = _STATUS_MARK.get(entry.status)
    title = f"{entry.when.display()} — {entry.title}"
    return f"{mark} {title}" if mark else title


def _entry_html(timeline: Timeline, entry: Entry) -> str:
    """The entry as an HTML fragment: date and status, summary, place, who, and sources.

    Every text goes through :func:`markupsafe.escape` (what ``Markup.format`` does to its
    arguments, without its formatter: this runs for every entry of every feed written).
    """
    event = entry.event
    mark = _STATUS_MARK.get(entry.status)
    marked = _escape(f" {mark}") if mark else ""
    parts = [f"<p><strong>{_escape(entry.when.display())}</strong>{marked}</p>"]
    if _xml_text(event.summary).strip():
        parts.append(f"<p>{_escape(event.summary)}</p>")
    if event.place:
        parts.append(f"<p>Place: {_escape(event.place)}</p>")
    names = ", ".join(timeline.name(e) for e in entry.entities)
    if names:
        parts.append(f"<p>Involving: {_escape(names)}</p>")
    if event.note:
        parts.append(f"<p>Note: {_escape(event.note)}</p>")
    parts.append(f"<p>Sources:</p><ul>{''.join(_source_html(s) for s in entry.sources)}</ul>")
    return "\n".join(parts)


def _source_html(source: Source) -> str:
    title = f"<cite>{_escape(source.title)}</cite>"
    if source.url is not None:
        title = f'<a href="{_escape(_href(source.url))}">{title}</a>'
    published = source.published.display()
    cited = f"<li>{title}, {_escape(source.publisher)}, {_escape(published)}"
    if source.quote:
        cited += f"<blockquote>{_escape(source.quote)}</blockquote>"
    return cited + "</li>"


def _escape(text: str) -> str:
    return str(escape(text))


def _text_for(format: Format) -> Callable[[str], str]:
    """How plain text goes into a feed's titles and summaries.

    Atom says what its text is (feedgen writes ``type="text"`` by leaving the type out). RSS
    does not, and readers take its titles and descriptions for HTML when they look like it
    (feedparser does, and WordPress writes them escaped), so RSS gets the text HTML-escaped:
    ``AT&T <x>`` reads back as itself rather than as a tag to strip.
    """
    if format == "rss":
        return lambda text: html.escape(text, quote=False)
    return lambda text: text


def _href(url: str) -> str:
    """``url`` with what a URL may not hold literally (quotes, ``<``, spaces, non-ASCII)
    percent-encoded: some readers' sanitizers cut an href at an escaped quote."""
    return quote(_xml_text(url), safe="!#$%&'()*+,-./:;=?@[]~_")


def _xml_text(text: str) -> str:
    """``text`` with U+FFFD where it holds what XML 1.0 cannot (feedgen fault 4: lxml raises)."""
    return _NOT_XML.sub("\ufffd", str(text))


def _one_line(text: str) -> str:
    """``text`` fit for a title: XML-safe, its whitespace runs (newlines too) made one space."""
    return " ".join(_xml_text(text).split())


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC)


def _rfc822(moment: dt.datetime) -> str:
    """``Sun, 22 Sep 2024 14:00:00 GMT``, in English whatever the locale."""
    return email.utils.format_datetime(_utc(moment).replace(microsecond=0), usegmt=True)


# -- RSS dates, written without feedgen (fault 3) --------------------------------------------------


class _RssFeedDates(BaseExtension):  # type: ignore[misc]
    """Writes the channel's <lastBuildDate>."""

    moment: dt.datetime = _EPOCH

    def extend_rss(self, feed: Any) -> Any:
        channel = feed.find("channel")
        xml_elem("lastBuildDate", channel).text = _rfc822(self.moment)
        return feed


class _RssEntryDates(BaseEntryExtension):  # type: ignore[misc]
    """Writes an item's <pubDate>."""

    moment: dt.datetime = _EPOCH

    def extend_rss(self, item: Any) -> Any:
        xml_elem("pubDate", item).text = _rfc822(self.moment)
        return item
