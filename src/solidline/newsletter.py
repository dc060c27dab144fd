"""Digests: what the record gained over a window of recorded time, for each subscriber.

A :class:`Window` is a span of *recorded* time (when lines entered the log, not when events
happened): a day, an ISO week (Monday to Monday) or a calendar month, in UTC, or the span since
the last send. :func:`select_digest` folds the log as it stood at the window's end and picks

- the entries first recorded in the window (a backfilled 1962 event is news too),
- the corrections, retractions and status changes recorded in it, of entries recorded earlier,
- what is coming up: scheduled entries that may fall within ``upcoming_days`` of the window's end,
- anniversaries in the days after the window (as many days as it spans), so that they arrive
  before the day rather than after it.

:meth:`Digest.for_interests` keeps what one subscriber asked for, and :class:`DigestRenderer`
turns that into a subject, an HTML body (autoescaped, CSS inlined, cut to a size limit with
"N more" linking to the archive) and a plain text body, from jinja2 templates.

Subscribers come from a CSV or JSON Lines file (:func:`load_subscribers`); every bad line is
reported at once, with its number, and nothing is sent until the file is fixed.
"""

from __future__ import annotations

import base64
import calendar
import csv
import datetime as dt
import hashlib
import hmac
import io
import re
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final, Literal

import attrs
import css_inline
import jinja2
import orjson

from ._errors import ConfigError, SubscriberError
from .codec import Recorded
from .config import Config
from .exports import describe_source
from .log import EventLog
from .mail import Outgoing, build_message, clean_text, message_id, normalize_address, parse_sender
from .model import ENTITY_ID, Amendment, Corrected, Event, Fact, Retracted, Source, StatusChanged
from .timeline import Anniversary, Entry, Projection, Timeline, pair_key

__all__ = [
    "LANGUAGES",
    "PERIODS",
    "PREVIEW_KEY",
    "Change",
    "Composed",
    "Digest",
    "DigestRenderer",
    "Mailing",
    "Rendered",
    "Subscriber",
    "Unsubscribe",
    "Window",
    "compose",
    "last_window",
    "load_subscribers",
    "select_digest",
    "unsubscribe_links",
    "unsubscribe_token",
    "verify_unsubscribe_token",
    "window_ending",
    "window_since",
]

Period = Literal["daily", "weekly", "monthly"]
PERIODS: Final[tuple[Period, ...]] = ("daily", "weekly", "monthly")
PREVIEW_KEY: Final = b"solidline PREVIEW key: links signed with it do not unsubscribe anyone"

# language -> (salutation with a name, without one). Only the salutation is translated.
LANGUAGES: Final[Mapping[str, tuple[str, str]]] = {
    "de": ("Hallo {name},", "Hallo,"),
    "en": ("Dear {name},", "Hello,"),
    "es": ("Hola, {name}:", "Hola:"),
    "fr": ("Bonjour {name},", "Bonjour,"),
    "lo": ("ຮຽນ {name},", "ສະບາຍດີ,"),
    "pt": ("Olá, {name},", "Olá,"),
    "vi": ("Kính gửi {name},", "Xin chào,"),
}

_UTC = dt.UTC
_MONTHS = tuple(calendar.month_name)


# -- windows ---------------------------------------------------------------------------------------


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
        return _day(first)
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}–{last.day} {_MONTHS[last.month]} {last.year}"
    if first.year == last.year:
        return f"{first.day} {_MONTHS[first.month]} – {_day(last)}"
    return f"{_day(first)} – {_day(last)}"


def _day(day: dt.date) -> str:
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


# -- subscribers -----------------------------------------------------------------------------------


def _name(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SubscriberError(f"a name must be text, got {type(value).__name__}")
    return clean_text(value) or None


def _interests(value: Iterable[str] | str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = re.split(r"[\s,;]+", value) if isinstance(value, str) else list(value)
    found: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise SubscriberError(f"an interest must be text, got {type(item).__name__}")
        if item:
            found.append(_interest(item))
    return tuple(dict.fromkeys(found))


def _interest(item: str) -> str:
    parts = item.split("~")
    if len(parts) > 2 or not all(ENTITY_ID.fullmatch(p) for p in parts):
        raise SubscriberError(
            f"{item!r} is not an interest: give an entity id ('cpv') or a relationship "
            "('cpusa~cpv')"
        )
    if len(parts) == 2:
        if parts[0] == parts[1]:
            raise SubscriberError(f"{item!r} names one entity twice; a relationship needs two")
        return pair_key(parts[0], parts[1])
    return item


def _language(_: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in LANGUAGES:
        raise SubscriberError(
            f"language {value!r} has no salutation; use one of {', '.join(LANGUAGES)}"
        )


@attrs.frozen(kw_only=True)
class Subscriber:
    """Someone who gets the digest.

    Args:
        address: where to send it; checked and made canonical (:func:`normalize_address`).
        name: how to greet them (control characters and line breaks become spaces).
        interests: relationships (``"cpusa~cpv"``) and entities (``"cpv"``); none means all.
        language: the language of the salutation (a key of :data:`LANGUAGES`).

    Raises:
        SubscriberError: a bad address, interest or language.
    """

    address: str = attrs.field(converter=normalize_address)
    name: str | None = attrs.field(default=None, converter=_name)
    interests: tuple[str, ...] = attrs.field(default=(), converter=_interests)
    language: str = attrs.field(default="en", validator=_language)

    def salutation(self) -> str:
        """``Dear Subscriber One,`` in the subscriber's language."""
        with_name, without = LANGUAGES[self.language]
        return with_name.format(name=self.name) if self.name else without

    def unknown_interests(self, entities: Collection[str]) -> list[str]:
        """The interests naming an entity the record does not define."""
        return [i for i in self.interests if any(e not in entities for e in i.split("~"))]


_COLUMNS = ("address", "name", "interests", "language")


def load_subscribers(
    path: str | Path, *, entities: Collection[str] | None = None
) -> tuple[Subscriber, ...]:
    """Read subscribers from a CSV file (a header row naming the columns) or JSON Lines.

    Columns (keys): ``address`` (required), ``name``, ``interests`` (entity ids and relationships,
    separated by spaces, commas or semicolons; a list in JSON) and ``language``.

    Args:
        path: the file; ``.jsonl``/``.ndjson`` is JSON Lines, anything else CSV.
        entities: the entity ids the record defines, to check interests against.

    Raises:
        SubscriberError: the file cannot be read, or some lines are bad; the message lists every
            bad line by number, and nothing should be sent until it is fixed.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SubscriberError(f"{source}: cannot read the subscriber file: {exc}") from None
    json_lines = source.suffix.lower() in (".jsonl", ".ndjson")
    rows = _json_rows(text) if json_lines else _csv_rows(text)
    subscribers: list[Subscriber] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        try:
            subscriber = _subscriber(row, entities)
        except SubscriberError as exc:
            errors.append(f"line {line}: {exc}")
            continue
        if subscriber.address in seen:
            errors.append(
                f"line {line}: {subscriber.address} is already on line {seen[subscriber.address]}"
            )
            continue
        seen[subscriber.address] = line
        subscribers.append(subscriber)
    if errors:
        shown = "\n  ".join(errors[:20]) + ("\n  …" if len(errors) > 20 else "")
        raise SubscriberError(
            f"{source}: {len(errors)} bad line(s); nothing is sent to anyone until they are "
            f"fixed:\n  {shown}"
        )
    return tuple(subscribers)


def _subscriber(row: Mapping[str, Any] | str, entities: Collection[str] | None) -> Subscriber:
    if isinstance(row, str):
        raise SubscriberError(row)
    unknown = sorted(str(k) for k in row if k not in _COLUMNS)
    if unknown:
        raise SubscriberError(f"unknown field(s) {', '.join(unknown)}; use {', '.join(_COLUMNS)}")
    if not row.get("address"):
        raise SubscriberError("no address")
    subscriber = Subscriber(
        address=row["address"].strip() if isinstance(row["address"], str) else row["address"],
        name=row.get("name") or None,
        interests=row.get("interests"),
        language=row.get("language") or "en",
    )
    if entities is not None and (bad := subscriber.unknown_interests(entities)):
        raise SubscriberError(
            f"unknown interest(s) {', '.join(bad)}: the record defines no such entity "
            f"(it defines {', '.join(sorted(entities)[:12])}{' …' if len(entities) > 12 else ''})"
        )
    return subscriber


def _csv_rows(text: str) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="\0extra")
    try:
        header = reader.fieldnames or []
        if "address" not in header:
            yield 1, f"the header row must name the columns, at least 'address' (found {header})"
            return
        for row in reader:
            if not any((v or "").strip() for k, v in row.items() if isinstance(v, str)):
                continue
            if "\0extra" in row:
                yield reader.line_num, "more fields than the header row names"
            else:
                yield reader.line_num, {k: v for k, v in row.items() if v is not None}
    except csv.Error as exc:
        yield reader.line_num, f"not valid CSV: {exc}"


def _json_rows(text: str) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield number, f"not valid JSON: {exc}"
            continue
        yield number, value if isinstance(value, dict) else "each line must be a JSON object"


# -- unsubscribe links -----------------------------------------------------------------------------


def _key_bytes(key: str | bytes) -> bytes:
    data = key.encode() if isinstance(key, str) else key
    if not data:
        raise ValueError("the unsubscribe key is empty")
    return data


def unsubscribe_token(address: str, key: str | bytes, *, list_id: str = "") -> str:
    """The token that proves an unsubscribe request for ``address`` came from our link.

    HMAC-SHA256 over the list id and the canonical address, base64url without padding.
    """
    message = b"solidline-unsubscribe\0" + list_id.encode() + b"\0" + address.encode()
    digest = hmac.new(_key_bytes(key), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify_unsubscribe_token(
    address: str, token: str, key: str | bytes, *, list_id: str = ""
) -> bool:
    """Whether ``token`` is the unsubscribe token of ``address`` (a constant-time comparison).

    Args:
        address: the address to unsubscribe, as the link gives it.
        token: the token from the link.
        key: the key the digests were signed with (the ``unsubscribe_key_env`` variable).
        list_id: the list id the digests were sent with.
    """
    try:
        expected = unsubscribe_token(normalize_address(address), key, list_id=list_id)
    except (SubscriberError, ValueError):
        return False
    return hmac.compare_digest(expected.encode(), str(token).encode("utf-8", "replace"))


@attrs.frozen
class Unsubscribe:
    """A subscriber's one-click (https) and mailto unsubscribe links."""

    url: str
    mailto: str


def unsubscribe_links(
    address: str, *, key: str | bytes, list_id: str, url: str, mailto: str
) -> Unsubscribe:
    """The links for ``List-Unsubscribe`` and the footer, carrying a signed token.

    Args:
        address: the subscriber's canonical address.
        key: the HMAC key.
        list_id: the list id (part of what is signed).
        url: the https endpoint that takes ``POST List-Unsubscribe=One-Click``.
        mailto: the address that takes unsubscribe mails.
    """
    token = unsubscribe_token(address, key, list_id=list_id)
    query = urllib.parse.urlencode({"address": address, "token": token})
    https = f"{url}{'&' if '?' in url else '?'}{query}"
    subject = urllib.parse.quote(f"unsubscribe {token}")
    return Unsubscribe(https, f"mailto:{mailto}?subject={subject}")


# -- selection -------------------------------------------------------------------------------------

ChangeKind = Literal["corrected", "retracted", "status", "withdrawn"]


@attrs.frozen
class Change:
    """A correction, retraction or status change recorded in the window, of an older entry.

    Attributes:
        kind: ``corrected``, ``retracted``, ``status`` (a status change) or ``withdrawn`` (a
            correction or status change that was itself retracted).
        event: the amended event as the record states it at the window's end.
        detail: what changed, for people (``"Changed: title, when"``, ``"Now postponed"``;
            empty for a retraction).
        reason: the reason the amendment gives, if any.
        sources: the amendment's sources.
        recorded_at: when the amendment was recorded.
    """

    kind: ChangeKind
    event: Fact
    detail: str
    reason: str
    sources: tuple[Source, ...]
    recorded_at: dt.datetime

    @property
    def entities(self) -> tuple[str, ...]:
        return self.event.entities()


def _matches(entities: Collection[str], interests: Collection[str]) -> bool:
    if not interests:
        return True
    for interest in interests:
        parts = interest.split("~")
        if all(p in entities for p in parts):
            return True
    return False


@attrs.frozen
class Digest:
    """What a window brought, before it is cut to a subscriber's interests.

    Attributes:
        window: the window of recorded time.
        entries: the entries first recorded in the window, in timeline order.
        changes: corrections, retractions and status changes of older entries.
        upcoming: scheduled entries ahead of the window's end.
        anniversaries: anniversaries in the days after the window.
        names: every entity's short name, by id.
    """

    window: Window
    entries: tuple[Entry, ...]
    changes: tuple[Change, ...]
    upcoming: tuple[Entry, ...]
    anniversaries: tuple[Anniversary, ...]
    names: Mapping[str, str] = attrs.field(eq=False)

    @property
    def is_empty(self) -> bool:
        """Nothing new: no entries and no changes (coming up and anniversaries alone are not)."""
        return not self.entries and not self.changes

    def for_interests(self, interests: Collection[str]) -> Digest:
        """The part of the digest that concerns these interests (all of it for none)."""
        if not interests:
            return self
        return attrs.evolve(
            self,
            entries=tuple(e for e in self.entries if _matches(e.entities, interests)),
            changes=tuple(c for c in self.changes if _matches(c.entities, interests)),
            upcoming=tuple(e for e in self.upcoming if _matches(e.entities, interests)),
            anniversaries=tuple(
                a for a in self.anniversaries if _matches(a.entry.entities, interests)
            ),
        )

    def name(self, key: str) -> str:
        """The readable name of an entity or a relationship (``"CPUSA – CPV"``)."""
        return " – ".join(self.names.get(part, part) for part in key.split("~"))

    def groups(self, interests: Collection[str] = ()) -> list[tuple[str, list[Entry]]]:
        """The new entries grouped by relationship: ``[(title, entries)]``, by title.

        An entry appears once, under the first of its relationships the subscriber asked for
        (or its first relationship; an entry of one entity goes under that entity).
        """
        groups: dict[str, list[Entry]] = {}
        for entry in self.entries:
            groups.setdefault(self._group_of(entry, interests), []).append(entry)
        named = [(self.name(key), entries) for key, entries in groups.items()]
        return sorted(named, key=lambda group: group[0].casefold())

    def _group_of(self, entry: Entry, interests: Collection[str]) -> str:
        pairs = list(entry.relationships())
        wanted = [p for p in pairs if p in interests]
        wanted = wanted or [p for p in pairs if set(p.split("~")) & set(interests)]
        if wanted or pairs:
            return (wanted or pairs)[0]
        return next((e for e in entry.entities if e in interests), entry.entities[0])


def select_digest(log: EventLog, window: Window, *, upcoming_days: int = 60) -> Digest:
    """What the record gained in ``window``, as the record stood at the window's end.

    Args:
        log: the event log.
        window: the window of recorded time.
        upcoming_days: how far past the window's end "coming up" looks.
    """
    projection = Projection(as_of=window.last_moment)
    in_window: list[Recorded] = []
    recorded: dict[str, dt.datetime] = {}
    records = log.read()
    try:
        projection.apply(_noting(records, window, in_window, recorded))
    finally:
        close: Callable[[], None] | None = getattr(records, "close", None)
        if close is not None:
            close()
    entries = projection.entries()
    definitions = projection.entities()
    end = window.end.date()
    horizon = end + dt.timedelta(days=upcoming_days)
    first_day, span = window.days_after()
    everything = Timeline("all", "All events", tuple(entries), definitions, projection.head)
    changes = (_change(projection, r, recorded, window) for r in in_window)
    return Digest(
        window=window,
        entries=tuple(e for e in entries if window.contains(e.published)),
        changes=tuple(c for c in changes if c is not None),
        upcoming=tuple(e for e in everything.upcoming(end) if e.when.lower <= horizon),
        anniversaries=everything.anniversaries(first_day, before=0, after=span - 1),
        names={k: d.short_name or d.name for k, d in definitions.items()},
    )


def _noting(
    records: Iterable[Recorded],
    window: Window,
    in_window: list[Recorded],
    recorded: dict[str, dt.datetime],
) -> Iterator[Recorded]:
    for record in records:
        recorded[record.id] = record.recorded_at
        if window.contains(record.recorded_at):
            in_window.append(record)
        yield record


def _change(
    projection: Projection, record: Recorded, recorded: Mapping[str, dt.datetime], window: Window
) -> Change | None:
    amendment = record.event
    if not isinstance(amendment, (Corrected, Retracted, StatusChanged)):
        return None
    kind, target = _kind_and_target(projection, amendment)
    if kind is None or target is None or window.contains(recorded[target]):
        return None  # an entry new in the window is shown as it now stands
    event = projection.current(target)
    if not isinstance(event, Fact):
        return None
    return Change(
        kind,
        event,
        _detail(kind, amendment, projection),
        amendment.reason,
        amendment.sources,
        record.recorded_at,
    )


def _kind_and_target(
    projection: Projection, amendment: Amendment
) -> tuple[ChangeKind | None, str | None]:
    try:
        target = projection.current(amendment.target)
    except KeyError:
        return None, None
    if isinstance(target, Fact):
        if isinstance(amendment, Retracted):
            return "retracted", amendment.target
        return ("corrected" if isinstance(amendment, Corrected) else "status"), amendment.target
    if isinstance(amendment, Retracted) and isinstance(target, (Corrected, StatusChanged)):
        return "withdrawn", target.target
    return None, None


def _detail(kind: ChangeKind, amendment: Event, projection: Projection) -> str:
    if isinstance(amendment, Corrected):
        return f"Changed: {', '.join(sorted(amendment.changes))}"
    if isinstance(amendment, StatusChanged):
        when = f", {amendment.when.display()}" if amendment.when else ""
        return f"Now {amendment.status}{when}"
    if kind == "withdrawn":
        assert isinstance(amendment, Retracted)
        withdrawn = projection.current(amendment.target)
        what = "correction" if isinstance(withdrawn, Corrected) else "status change"
        return f"An earlier {what} was withdrawn"
    return ""


# -- rendering -------------------------------------------------------------------------------------


@attrs.frozen
class Rendered:
    """One subscriber's digest, rendered.

    Attributes:
        subject: the subject line (one line, already cleaned).
        html: the HTML body, CSS inlined.
        text: the plain text body.
        shown: how many new entries the bodies show.
        omitted: how many were left out to keep the HTML under the size limit.
    """

    subject: str
    html: str
    text: str
    shown: int
    omitted: int


def template_folders(override: Path | None = None) -> list[Path]:
    """Where templates are looked up: the override first, then the package's own."""
    packaged = Path(__file__).resolve().parent / "templates"  # inside the wheel
    checkout = Path(__file__).resolve().parents[2] / "templates"  # a source checkout
    defaults = [p for p in (packaged, checkout) if p.is_dir()]
    return ([override] if override else []) + defaults


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith((".html", ".html.j2", ".htm"))


_TYPE_LABEL = {"relations.established": "relations established", "agreement.signed": "agreement"}


class DigestRenderer:
    """Renders digests with ``digest.html.j2`` and ``digest.txt.j2``.

    Args:
        title: the newsletter's name.
        archive_url: where the full record is (linked from the footer and from "N more").
        templates: a folder whose templates override the default ones.
        max_html_bytes: the largest HTML body (UTF-8 bytes) to send; entries past it are cut.
        subject: the subject's pattern: ``{title}``, ``{period}``, ``{start}``, ``{end}`` and
            ``{dates}`` are filled in.
    """

    def __init__(
        self,
        *,
        title: str,
        archive_url: str | None = None,
        templates: Path | None = None,
        max_html_bytes: int = 102_000,
        subject: str = "{title}: {period} digest, {dates}",
    ) -> None:
        self.title = title
        self.archive_url = archive_url
        self.max_html_bytes = max_html_bytes
        self.subject = subject
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(p) for p in template_folders(templates)]),
            autoescape=_autoescape,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)

    def render(
        self,
        digest: Digest,
        subscriber: Subscriber,
        *,
        unsubscribe: Unsubscribe,
        preview: bool = False,
    ) -> Rendered:
        """Render ``digest`` (already cut to the subscriber's interests) for ``subscriber``.

        Args:
            digest: the digest.
            subscriber: who it is for (salutation, interests, language).
            unsubscribe: the subscriber's unsubscribe links.
            preview: mark the message as a preview (its links are signed with the preview key).
        """
        subject = self._subject(digest)
        context = _Context(self, digest, subscriber, unsubscribe, subject, preview)
        total = len(digest.entries)
        html = self._html(context.build(total))
        shown = total
        if len(html.encode()) > self.max_html_bytes:
            shown, html = self._fit(context, total)
        text = self._env.get_template("digest.txt.j2").render(context.build(shown))
        return Rendered(subject, html, text, shown, total - shown)

    def _subject(self, digest: Digest) -> str:
        window = digest.window
        return clean_text(
            self.subject.format(
                title=self.title,
                period=window.period.replace("-", " "),
                dates=window.dates(),
                start=_day(window.start.date()),
                end=_day(window.last_moment.date()),
            )
        )

    def _html(self, context: Mapping[str, Any]) -> str:
        raw = self._env.get_template("digest.html.j2").render(context)
        return self._inliner.inline(raw)

    def _fit(self, context: _Context, total: int) -> tuple[int, str]:
        """The most new entries whose HTML fits the limit (a binary search), and that HTML."""
        low, high = 0, total - 1
        best = self._html(context.build(0))
        while low < high:
            middle = (low + high + 1) // 2
            html = self._html(context.build(middle))
            if len(html.encode()) <= self.max_html_bytes:
                low, best = middle, html
            else:
                high = middle - 1
        return low, best


@attrs.define
class _Context:
    """Builds the templates' variables; ``build(n)`` shows the first ``n`` new entries."""

    renderer: DigestRenderer
    digest: Digest
    subscriber: Subscriber
    unsubscribe: Unsubscribe
    subject: str
    preview: bool

    def build(self, shown: int) -> dict[str, Any]:
        digest, subscriber = self.digest, self.subscriber
        groups = digest.groups(subscriber.interests)
        kept, left = [], shown
        for title, entries in groups:
            if left <= 0:
                break
            kept.append({"title": title, "entries": [_item(e) for e in entries[:left]]})
            left -= len(entries)
        return {
            "title": self.renderer.title,
            "subject": self.subject,
            "period": digest.window.period.replace("-", " "),
            "dates": digest.window.dates(),
            "language": subscriber.language,
            "salutation": subscriber.salutation(),
            "intro": _intro(digest, len(groups)),
            "groups": kept,
            "omitted": len(digest.entries) - min(shown, len(digest.entries)),
            "changes": [_change_item(c) for c in digest.changes],
            "upcoming": [_item(e) for e in digest.upcoming],
            "anniversaries": [_anniversary_item(a) for a in digest.anniversaries],
            "archive_url": self.renderer.archive_url,
            "unsubscribe_url": self.unsubscribe.url,
            "interests": [digest.name(i) for i in subscriber.interests],
            "preview": self.preview,
        }


def _item(entry: Entry) -> dict[str, Any]:
    event = entry.event
    return {
        "id": entry.id,
        "when": entry.when.display(),
        "title": entry.title,
        "summary": event.summary,
        "kind": _TYPE_LABEL.get(event.type, event.type.replace("_", " ")),
        "status": None if entry.status == "occurred" else entry.status,
        "place": event.place,
        "sources": [_source_item(s) for s in entry.sources],
    }


def _source_item(source: Source) -> dict[str, Any]:
    return {"text": describe_source(source), "url": source.url, "quote": source.quote}


_CHANGE_LABEL = {
    "corrected": "Corrected",
    "retracted": "Retracted",
    "status": "Status changed",
    "withdrawn": "Amendment withdrawn",
}


def _change_item(change: Change) -> dict[str, Any]:
    return {
        "kind": change.kind,
        "label": _CHANGE_LABEL[change.kind],
        "title": change.event.title,
        "when": change.event.when.display(),
        "detail": change.detail,
        "reason": change.reason,
        "sources": [_source_item(s) for s in change.sources],
    }


def _anniversary_item(anniversary: Anniversary) -> dict[str, Any]:
    return {
        "years": anniversary.years,
        "date": _day(anniversary.date),
        "title": anniversary.entry.title,
        "when": anniversary.entry.when.display(),
    }


def _intro(digest: Digest, groups: int) -> str:
    parts = []
    if digest.entries:
        rels = f" in {_count(groups, 'timeline')}" if groups > 1 else ""
        parts.append(f"{_count(len(digest.entries), 'new entry', 'new entries')}{rels}")
    if digest.changes:
        parts.append(
            _count(len(digest.changes), "correction or retraction", "corrections and retractions")
        )
    if not parts:
        return f"Nothing new for you was recorded {digest.window.dates()}."
    return f"Recorded {digest.window.dates()}: {' and '.join(parts)}."


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


# -- composing the messages ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Mailing:
    """What every message of a run shares, from ``solidline.toml`` (:meth:`from_config`).

    Attributes:
        title: the newsletter's name.
        sender: ``(name, address)`` of ``From``.
        list_id: the ``List-Id`` (``digest.example.org``); also part of what tokens sign.
        unsubscribe_url: the https one-click unsubscribe endpoint.
        unsubscribe_mailto: the address that takes unsubscribe mails.
        reply_to: an address for ``Reply-To``, if any.
        archive_url: where the whole record is, if anywhere.
        subject: the subject's pattern.
        max_html_bytes: the HTML size limit.
        templates: a folder of templates overriding the default ones.
        upcoming_days: how far ahead "coming up" looks.
    """

    title: str
    sender: tuple[str | None, str]
    list_id: str
    unsubscribe_url: str
    unsubscribe_mailto: str
    reply_to: str | None = None
    archive_url: str | None = None
    subject: str = "{title}: {period} digest, {dates}"
    max_html_bytes: int = 102_000
    templates: Path | None = None
    upcoming_days: int = 60

    @property
    def domain(self) -> str:
        """The sender's domain: the right-hand side of every Message-ID."""
        return self.sender[1].rpartition("@")[2]

    @classmethod
    def from_config(cls, config: Config) -> Mailing:
        """The mailing ``[newsletter]`` (and ``[site]`` for defaults) describes.

        Raises:
            ConfigError: no ``[newsletter]``, a bad sender, or no https unsubscribe URL.
        """
        settings = config.require_newsletter()
        site = config.site
        try:
            sender = parse_sender(settings.sender)
            mailto = normalize_address(
                (settings.unsubscribe_mailto or sender[1]).removeprefix("mailto:")
            )
        except SubscriberError as exc:
            raise ConfigError(f"[newsletter]: {exc}") from None
        url = settings.unsubscribe_url or (site and site.base_url + "unsubscribe")
        if not url or not url.startswith("https://") or not url.isascii():
            raise ConfigError(
                "[newsletter] unsubscribe_url must be an https URL (ASCII) that takes one-click "
                f"unsubscribe POSTs (RFC 8058); got {url!r}"
            )
        return cls(
            title=settings.title or (site.title if site else "solidline"),
            sender=sender,
            list_id=settings.list_id or _list_id(sender[1]),
            unsubscribe_url=url,
            unsubscribe_mailto=mailto,
            reply_to=settings.reply_to,
            archive_url=settings.archive_url or (site.base_url if site else None),
            subject=settings.subject,
            max_html_bytes=settings.max_html_bytes,
            templates=config.path(settings.templates) if settings.templates else None,
            upcoming_days=settings.upcoming_days,
        )

    def renderer(self) -> DigestRenderer:
        """A renderer for this mailing's templates, title, archive and limits."""
        return DigestRenderer(
            title=self.title,
            archive_url=self.archive_url,
            templates=self.templates,
            max_html_bytes=self.max_html_bytes,
            subject=self.subject,
        )


def _list_id(address: str) -> str:
    local, _, domain = address.rpartition("@")
    label = re.sub(r"[^a-z0-9-]+", "-", local.lower()).strip("-") or "digest"
    return f"{label}.{domain}"


@attrs.frozen
class Composed:
    """One subscriber's message: who, what was rendered, and the bytes to send."""

    subscriber: Subscriber
    rendered: Rendered
    message: Outgoing


def compose(
    digest: Digest,
    subscribers: Iterable[Subscriber],
    mailing: Mailing,
    *,
    key: str | bytes,
    preview: bool = False,
    send_empty: bool = False,
    skip: Callable[[str], bool] | None = None,
) -> list[Composed]:
    """The messages of a digest: one per subscriber with something new (or all, ``send_empty``).

    Args:
        digest: the window's digest (all of it; each subscriber gets their part).
        subscribers: who gets it.
        mailing: sender, list id, links, templates.
        key: the unsubscribe HMAC key.
        preview: mark the messages as previews (signed with the preview key).
        send_empty: also compose for subscribers whose part of the digest is empty.
        skip: Message-IDs for which nothing need be rendered (already planned).
    """
    renderer = mailing.renderer()
    composed = []
    for subscriber in subscribers:
        mid = message_id(digest.window.label, subscriber.address, mailing.domain, mailing.list_id)
        part = digest.for_interests(subscriber.interests)
        if (skip is not None and skip(mid)) or (part.is_empty and not send_empty):
            continue
        links = unsubscribe_links(
            subscriber.address,
            key=key,
            list_id=mailing.list_id,
            url=mailing.unsubscribe_url,
            mailto=mailing.unsubscribe_mailto,
        )
        rendered = renderer.render(part, subscriber, unsubscribe=links, preview=preview)
        message = build_message(
            sender=mailing.sender,
            recipient=(subscriber.name, subscriber.address),
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            date=digest.window.end,
            message_id=mid,
            list_id=mailing.list_id,
            unsubscribe_url=links.url,
            unsubscribe_mailto=links.mailto,
            reply_to=mailing.reply_to,
        )
        composed.append(Composed(subscriber, rendered, message))
    return composed
