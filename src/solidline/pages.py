"""The site's HTML pages: which timelines it shows, what their templates are given, and the CSS.

:func:`~solidline.site.publish` decides what must be written and writes it; this module says
what the site is made of and renders it:

- :class:`Target`: one timeline of the site (the whole record, a relationship or an entity) and
  the paths of its files; :func:`site_targets` lists them all.
- :func:`render_timeline_page` and :func:`render_index`: a page's bytes, from the templates
  ``timeline.html.j2`` and ``index.html.j2`` (both extend ``_base.html.j2``).
- :func:`stylesheet`: ``style.css``, the one stylesheet every page links to, relatively
  (``style.css`` or ``../style.css``): the pages load nothing from elsewhere.

Templates and the stylesheet are looked up in ``[site] templates`` first, then in the default
templates (:func:`default_templates`), so a file there replaces the default one of that name.
Pages are given plain text and escaped by jinja2 (autoescaping is on).
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.resources
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ._errors import ConfigError, PublishError
from .config import Config, SiteConfig
from .dates import parse_date
from .log import Head
from .model import (
    AgreementSigned,
    Amendment,
    Congress,
    Corrected,
    Donation,
    Fact,
    Meeting,
    Period,
    Person,
    RelationsEstablished,
    Retracted,
    SameAs,
    Source,
    Statement,
    StatusChanged,
    Visit,
)
from .timeline import Entry, Projection, Timeline, parse_pair

if TYPE_CHECKING:  # imported when something is rendered: a run with nothing new needs neither
    import jinja2

__all__ = [
    "STYLESHEET",
    "Kind",
    "Section",
    "Target",
    "default_templates",
    "page_environment",
    "render_index",
    "render_timeline_page",
    "site_targets",
    "span_of",
    "stylesheet",
    "template_folders",
]

STYLESHEET = "style.css"
"""The stylesheet's name, in the template folders and at the root of the output."""

Kind = Literal["all", "entity", "relationship"]


# -- the site's timelines and their files ----------------------------------------------------------


@attrs.frozen
class Target:
    """One timeline to publish, the timelines its page links to, and where its files go.

    A timeline of more than ``per_page`` entries is published in :attr:`sections` (decades,
    split into years, months and days where one holds more than ``per_page``): its page lists
    them, and each section has a page and a TimelineJS file of its own. Sections are periods of
    the calendar, not runs of entries, so a new entry changes its own section's files only.
    """

    kind: Kind
    timeline: Timeline
    related: tuple[str, ...] = ()
    per_page: int | None = None

    @property
    def key(self) -> str:
        return self.timeline.key

    @property
    def page(self) -> str:
        return f"{self._stem}.html"

    @property
    def _stem(self) -> str:
        return "all" if self.kind == "all" else _page_path(self.key).removesuffix(".html")

    def feed(self, format: str) -> str:
        return f"feeds/{self.key}.{format}"

    @property
    def export(self) -> str | None:
        """The TimelineJS file of the whole timeline; None when it is published in sections."""
        return None if self.in_sections else f"timelines/{self.key}.json"

    @property
    def in_sections(self) -> bool:
        """Whether the timeline is too long for one page (see :attr:`sections`)."""
        return self.per_page is not None and len(self.timeline.entries) > self.per_page

    @functools.cached_property
    def sections(self) -> tuple[Section, ...]:
        """The timeline's sections in date order; none when it fits on one page."""
        if not self.in_sections:
            return ()
        assert self.per_page is not None
        return tuple(sorted(_split(self.timeline.entries, self.per_page), key=_section_order))

    def section_page(self, section: Section) -> str:
        return f"{self._stem}.{section.slug}.html"

    def section_export(self, section: Section) -> str:
        return f"timelines/{self.key}.{section.slug}.json"

    def around(self, section: Section) -> tuple[Section | None, Section | None]:
        """The sections before and after ``section`` (its page links to both)."""
        at = self._section_at[id(section)]
        sections = self.sections
        return (
            sections[at - 1] if at else None,
            sections[at + 1] if at + 1 < len(sections) else None,
        )

    @functools.cached_property
    def _section_at(self) -> dict[int, int]:
        return {id(section): at for at, section in enumerate(self.sections)}

    def page_of(self, entry: Entry) -> str:
        """The page that shows ``entry``: the timeline's, or its section's."""
        if not self.in_sections:
            return self.page
        return self.section_page(self._section_of[entry.id])

    @functools.cached_property
    def _section_of(self) -> dict[str, Section]:
        return {entry.id: section for section in self.sections for entry in section.entries}


@attrs.frozen(eq=False)  # compared by identity: two sections are two pages
class Section:
    """One page of a long timeline: the entries of a period.

    Attributes:
        slug: the period in the file name: ``1970s``, ``1975``, ``1975-03``, ``1975-03-14``, or
            ``open`` for dates with no known start.
        heading: the period as the page names it (``March 1975``).
        entries: the entries, in timeline order. An entry is in the shortest period that holds
            all its dates, so a split period keeps the entries wider than its parts (a decade
            its intervals, a year its seasons and undated months), headed ``2021, not dated to a
            month``.
        first: the period's first day (``date.min`` for ``open``), and ``depth``, 0 for a
            decade to 3 for a day: together they order the sections.
    """

    slug: str
    heading: str
    entries: tuple[Entry, ...]
    first: dt.date
    depth: int


def _page_path(key: str) -> str:
    """The page of an entity or a relationship (``"cpusa~cpv"``)."""
    folder = "relationships" if "~" in key else "entities"
    return f"{folder}/{key}.html"


def _section_order(section: Section) -> tuple[dt.date, int]:
    return section.first, section.depth


def _periods(entry: Entry) -> tuple[Any, Any, Any, Any]:
    """The entry's period at each depth (0 decade, 1 year, 2 month, 3 day): the decade of its
    earliest day, or the (year[, month[, day]]) all its dates fall in; None for an open start,
    or dates wider than one period of that depth. All four at once: a long timeline is cut
    down to days, and its entries are many."""
    when = entry.event.when
    lower, upper = when.lower, when.upper
    if lower == dt.date.min:
        return None, None, None, None
    year = lower.year
    decade = year // 10
    if year != upper.year:
        return decade, None, None, None
    month = lower.month
    if month != upper.month:
        return decade, (year,), None, None
    if lower.day != upper.day:
        return decade, (year,), (year, month), None
    return decade, (year,), (year, month), (year, month, lower.day)


def _period_name(depth: int, key: Any) -> tuple[str, str, dt.date]:
    """The slug, heading and first day of a period :func:`_periods` gave."""
    if key is None:
        return "open", "Dates with an open start", dt.date.min
    if depth == 0:
        return f"{key * 10}s", f"The {key * 10}s", dt.date(max(key * 10, 1), 1, 1)
    text = "-".join(f"{part:04d}" if n == 0 else f"{part:02d}" for n, part in enumerate(key))
    first = dt.date(*key, *(1,) * (3 - len(key)))
    return text, parse_date(text).display(), first


def _split(entries: Sequence[Entry], limit: int) -> list[Section]:
    """The sections of ``entries``: one per decade, each split again while it holds more than
    ``limit`` entries and a narrower period exists."""
    return _split_periods([(_periods(entry), entry) for entry in entries], 0, limit)


def _split_periods(
    entries: list[tuple[tuple[Any, ...], Entry]], depth: int, limit: int, key: Any = None
) -> list[Section]:
    """:func:`_split` at ``depth`` within the period ``key``, of entries with their periods."""
    groups: dict[Any, list[tuple[tuple[Any, ...], Entry]]] = {}
    wider: list[Entry] = []
    for item in entries:
        period = item[0][depth]
        if depth and period is None:
            wider.append(item[1])  # wider than this depth's periods: stays with its parent
        else:
            groups.setdefault(period, []).append(item)
    sections = []
    if wider:
        slug, heading, first = _period_name(depth - 1, key)
        within = ("a year", "a month", "a day")[depth - 1]
        heading = f"{heading}, not dated to {within}"
        sections.append(Section(slug, heading, tuple(wider), first, depth - 1))
    for period, members in groups.items():
        if len(members) > limit and period is not None and depth < 3:
            sections.extend(_split_periods(members, depth + 1, limit, period))
        else:
            slug, heading, first = _period_name(depth, period)
            sections.append(Section(slug, heading, tuple(e for _, e in members), first, depth))
    return sections


def site_targets(
    projection: Projection, start: Head, per_page: int | None = None
) -> list[Target]:
    """The whole record, every relationship and every entity, each as a timeline; those of
    more than ``per_page`` entries in sections (see :class:`Target`).

    A timeline without entries gets the log's first line ``start`` as its head (feeds take
    their ``updated`` from it), so that its files do not change whenever the log grows.

    Raises:
        PublishError: an entity has the id ``all``, the whole record's.
    """
    pairs = projection.relationships()
    entities = projection.entity_keys()
    if "all" in entities:
        raise PublishError(
            "an entity has the id 'all', which names the whole record's files "
            "(all.html, feeds/all.atom); correct the entity's id"
        )
    related: dict[str, list[str]] = {}
    for pair in pairs:
        for entity in parse_pair(pair):
            related.setdefault(entity, []).append(pair)

    def target(kind: Kind, timeline: Timeline, links: Sequence[str] = ()) -> Target:
        if not timeline.entries:
            timeline = attrs.evolve(timeline, head=start)
        return Target(kind, timeline, tuple(links), per_page)

    return [
        target("all", projection.timeline()),
        *(
            target("relationship", projection.timeline(relationship=p), parse_pair(p))
            for p in pairs
        ),
        *(target("entity", projection.timeline(entity=e), related.get(e, ())) for e in entities),
    ]


# -- templates and the stylesheet ------------------------------------------------------------------


def default_templates() -> Path:
    """The folder of the default templates: inside the installed package, or the source tree's."""
    packaged = importlib.resources.files("solidline") / "templates"
    if packaged.is_dir():
        return Path(str(packaged))
    source_tree = Path(__file__).resolve().parents[2] / "templates"
    if source_tree.is_dir():
        return source_tree
    raise PublishError(
        f"the default templates are missing (looked in {packaged} and "
        f"{source_tree}); reinstall solidline"
    )


def template_folders(config: Config) -> list[Path]:
    """Where templates are looked up, in order: ``[site] templates``, then the defaults.

    Raises:
        ConfigError: ``[site] templates`` names something that is not a folder.
    """
    site = config.require_site()
    folders = []
    if site.templates is not None:
        folder = config.path(site.templates)
        if not folder.is_dir():
            raise ConfigError(
                f"{config.source or 'configuration'}: setting 'templates': {folder} is not a folder"
            )
        folders.append(folder)
    folders.append(default_templates())
    return folders


def page_environment(config: Config) -> jinja2.Environment:
    """The jinja2 environment of the pages: ``[site] templates`` first, then the defaults."""
    import jinja2

    loaders: list[jinja2.BaseLoader] = [
        jinja2.FileSystemLoader(folder) for folder in template_folders(config)
    ]
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )


def stylesheet(config: Config) -> bytes:
    """The bytes of ``style.css``, found like a template: ``[site] templates`` first.

    Raises:
        PublishError: no template folder holds a ``style.css``.
    """
    folders = template_folders(config)
    for folder in folders:
        if (folder / STYLESHEET).is_file():
            return (folder / STYLESHEET).read_bytes()
    raise PublishError(
        f"{STYLESHEET} is missing from the template folders ({', '.join(map(str, folders))}); "
        "reinstall solidline"
    )


# -- rendering -------------------------------------------------------------------------------------


def render_timeline_page(
    environment: jinja2.Environment,
    site: SiteConfig,
    target: Target,
    section: Section | None = None,
) -> bytes:
    """The page of one timeline (``timeline.html.j2``), or of one of its sections; each
    announces the timeline's feeds."""
    if section is None:
        page = _page(site, target, target.page, target.timeline.title)
    else:
        title = f"{target.timeline.title}, {section.heading}"
        page = _page(site, target, target.section_page(section), title)
    return _render(environment, "timeline.html.j2", _timeline_context(page, target, section))


def render_index(
    environment: jinja2.Environment,
    site: SiteConfig,
    targets: list[Target],
    spans: Mapping[str, str] | None = None,
) -> bytes:
    """The front page (``index.html.j2``), announcing the whole record's (``targets[0]``) feeds.

    ``spans``: the years each timeline covers (:func:`span_of` its entries), by key, where the
    caller knows them already; the others are computed.
    """
    page = _page(site, targets[0], "index.html", site.title)
    return _render(environment, "index.html.j2", _index_context(page, targets, spans or {}))


def _page(site: SiteConfig, target: Target, path: str, title: str) -> _Page:
    feeds = tuple((format, target.feed(format)) for format in site.formats)
    return _Page(site, path, title, feeds)


def _render(environment: jinja2.Environment, name: str, context: dict[str, Any]) -> bytes:
    return environment.get_template(name).render(context).encode("utf-8")


# -- what the templates are given ------------------------------------------------------------------


@attrs.frozen
class _Page:
    """The page being rendered: the site, its path (for relative links) and its feeds."""

    site: SiteConfig
    path: str
    title: str
    feeds: tuple[tuple[str, str], ...]

    @property
    def root(self) -> str:
        """The relative way back to the output folder: ``""`` or ``"../"``."""
        return "../" * self.path.count("/")

    @property
    def url(self) -> str:
        return self.site.base_url + self.path

    @property
    def stylesheet(self) -> str:
        return self.href(STYLESHEET)

    def href(self, path: str) -> str:
        return self.root + path


@attrs.frozen
class _Link:
    """A piece of text, linked when ``href`` is set."""

    text: str
    href: str | None = None


_Detail = tuple[str, tuple[_Link, ...]]


@attrs.frozen
class _EntryView:
    """One entry as the page shows it; every field is plain text (the template escapes it)."""

    id: str
    date: str
    datetime: str | None
    span: bool
    title: str
    type: str
    status: str
    summary: str
    place: str | None
    people: tuple[str, ...]
    details: tuple[_Detail, ...]
    quote: str | None
    note: str | None
    sources: tuple[_SourceView, ...]
    changes: tuple[str, ...]


@attrs.frozen
class _SourceView:
    title: str
    url: str | None
    publisher: str
    published: str
    quote: str | None


_PLAIN_DATE = re.compile(r"[0-9]{4}-(?:0[1-9]|1[0-2])(?:-[0-9]{2})?")


def _timeline_context(page: _Page, target: Target, section: Section | None) -> dict[str, Any]:
    timeline = target.timeline
    shown = section.entries if section else () if target.in_sections else timeline.entries
    years: dict[str, list[_EntryView]] = {}
    for entry in shown:
        years.setdefault(_year_heading(entry), []).append(_entry_view(page, timeline, entry))
    definition = timeline.entities.get(timeline.key) if target.kind == "entity" else None
    counted = section.entries if section else timeline.entries
    updated = max((e.updated for e in counted), default=None)
    export = target.section_export(section) if section else target.export
    return {
        "page": page,
        "kind": target.kind,
        "timeline": timeline,
        "entity": definition,
        # on the timeline's own page only: a section would change with every new relationship
        "related": [] if section else [_timeline_link(page, timeline, k) for k in target.related],
        "years": list(years.items()),
        "count": len(counted),
        "updated": _day(updated.date()) if updated else None,
        "export": page.href(export) if export else None,
        "sections": [
            (_Link(s.heading, page.href(target.section_page(s))), len(s.entries))
            for s in (() if section else target.sections)
        ],
        "section": section.heading if section else None,
        "nav": _section_nav(page, target, section) if section else None,
    }


def _section_nav(page: _Page, target: Target, section: Section) -> dict[str, _Link | None]:
    previous, following = target.around(section)

    def link(other: Section | None) -> _Link | None:
        return _Link(other.heading, page.href(target.section_page(other))) if other else None

    return {
        "up": _Link(target.timeline.title, page.href(target.page)),
        "previous": link(previous),
        "next": link(following),
    }


def _index_context(page: _Page, targets: list[Target], spans: Mapping[str, str]) -> dict[str, Any]:
    def row(target: Target) -> dict[str, Any]:
        return _index_row(page, target, spans)

    return {
        "page": page,
        "whole": row(targets[0]),
        "relationships": [row(t) for t in targets if t.kind == "relationship"],
        "entities": [row(t) for t in targets if t.kind == "entity"],
    }


def _index_row(page: _Page, target: Target, spans: Mapping[str, str]) -> dict[str, Any]:
    entries = target.timeline.entries
    span = spans.get(target.key)
    return {
        "title": target.timeline.title,
        "key": target.key,
        "page": page.href(target.page),
        "feeds": [(format, page.href(target.feed(format))) for format in page.site.formats],
        "export": page.href(target.export) if target.export else None,
        "count": len(entries),
        "span": span_of(entries) if span is None else span,
    }


def span_of(entries: Sequence[Entry]) -> str:
    """The years the entries' dates cover (``1962–2024``, ``1975``; ``""`` for none known)."""
    years = [y for e in entries for y in (e.when.lower.year, e.when.upper.year) if 1 < y < 9999]
    if not years:
        return ""
    first, last = min(years), max(years)
    return str(first) if first == last else f"{first}–{last}"


def _timeline_link(page: _Page, timeline: Timeline, key: str) -> _Link:
    if "~" in key:
        a, b = parse_pair(key)
        return _Link(f"{timeline.name(a)} – {timeline.name(b)}", page.href(_page_path(key)))
    return _Link(timeline.name(key), page.href(_page_path(key)))


def _year_heading(entry: Entry) -> str:
    when = entry.when
    if when.lower == dt.date.min:
        return f"Until {when.upper.year}"
    return str(when.lower.year)


def _entry_view(page: _Page, timeline: Timeline, entry: Entry) -> _EntryView:
    event = entry.event
    when = entry.when
    return _EntryView(
        id=entry.id,
        date=when.display(),
        datetime=when.text if _PLAIN_DATE.fullmatch(when.text) else None,
        span=when.is_interval,
        title=event.title,
        type=event.type.replace(".", " ").replace("_", " "),
        status=entry.status,
        summary=event.summary,
        place=event.place,
        people=tuple(_person(timeline, p) for p in event.people),
        details=tuple(_details(event, _Names(page, timeline))),
        quote=getattr(event, "quote", None),
        note=event.note,
        sources=tuple(_source_view(s) for s in entry.sources),
        changes=tuple(_changes(entry)),
    )


def _person(timeline: Timeline, person: Person) -> str:
    about = [part for part in (person.role, person.entity and timeline.name(person.entity)) if part]
    return f"{person.name} ({', '.join(about)})" if about else person.name


def _source_view(source: Source) -> _SourceView:
    return _SourceView(
        source.title, source.url, source.publisher, source.published.display(), source.quote
    )


def _changes(entry: Entry) -> Iterator[str]:
    """What the record did to the entry after first recording it, oldest first."""
    for record in entry.history:
        event, on = record.event, _day(record.recorded_at.date())
        reason = f": {event.reason}" if isinstance(event, Amendment) and event.reason else ""
        if isinstance(event, Corrected):
            fields = ", ".join(sorted(event.changes))
            yield f"Corrected on {on} ({fields}){reason}"
        elif isinstance(event, StatusChanged):
            yield f"Marked {event.status} on {on}{reason}"
        elif isinstance(event, Retracted):
            yield f"A correction was withdrawn on {on}{reason}"
        elif isinstance(event, SameAs):
            yield f"Merged with another report of the same event on {on}{reason}"


def _day(day: dt.date) -> str:
    return parse_date(day.isoformat()).display()


def _ordinal(number: int) -> str:
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"


# -- who took part and how, by event type ----------------------------------------------------------


@attrs.frozen
class _Names:
    """Entities as the page names them: their short names, linked to their pages."""

    page: _Page
    timeline: Timeline

    def who(self, *entities: str) -> tuple[_Link, ...]:
        return tuple(self.entity(e) for e in entities)

    def entity(self, entity: str, role: str | None = None) -> _Link:
        name = self.timeline.name(entity) + (f" ({role})" if role else "")
        return _Link(name, self.page.href(_page_path(entity)))


def _text(value: str) -> tuple[_Link, ...]:
    return (_Link(value),)


@functools.singledispatch
def _details(event: Fact, names: _Names) -> Iterator[_Detail]:
    """Who took part and how, by event type: (label, linked names or text)."""
    yield "Involving", names.who(*event.entities())


@_details.register
def _meeting(event: Meeting, names: _Names) -> Iterator[_Detail]:
    yield "Participants", tuple(names.entity(p.entity, p.role) for p in event.participants)


@_details.register
def _visit(event: Visit, names: _Names) -> Iterator[_Detail]:
    yield "Visitor", names.who(event.visitor)
    yield "Host", names.who(event.host)
    if event.level:
        yield "Level", _text(f"{event.level} visit")


@_details.register
def _congress(event: Congress, names: _Names) -> Iterator[_Detail]:
    yield "Congress of", names.who(event.organisation)
    if event.ordinal:
        yield "Congress", _text(_ordinal(event.ordinal))
    if event.delegations:
        yield "Foreign delegations", names.who(*event.delegations)


@_details.register
def _donation(event: Donation, names: _Names) -> Iterator[_Detail]:
    yield "Donor", names.who(event.donor)
    yield "Recipient", names.who(event.recipient)
    if event.items:
        yield "Donated", _text(event.items)
    if event.amount:
        yield "Amount", _text(f"{event.amount} {event.currency}")


@_details.register
def _statement(event: Statement, names: _Names) -> Iterator[_Detail]:
    yield "Speaker", names.who(event.speaker)
    if event.addressees:
        yield "Addressed to", names.who(*event.addressees)
    if event.about:
        yield "About", names.who(*event.about)
    yield "Stance", _text(event.stance)


@_details.register
def _relations(event: RelationsEstablished, names: _Names) -> Iterator[_Detail]:
    yield "Between", names.who(*event.parties)
    yield "Relations", _text(event.relation)


@_details.register
def _agreement(event: AgreementSigned, names: _Names) -> Iterator[_Detail]:
    yield "Agreement", _text(event.name)
    yield "Signed by", names.who(*event.parties)


@_details.register
def _period(event: Period, names: _Names) -> Iterator[_Detail]:
    yield "Participants", names.who(*event.participants)
