"""The newsletter: one subscriber's digest rendered and composed into a message.

:class:`DigestRenderer` turns a :class:`~solidline.digest.Digest`, already cut to a subscriber's
interests, into a subject, an HTML body (autoescaped, CSS inlined, cut to a size limit with
"N more" linking to the archive) and a plain text body, from jinja2 templates. :class:`Mailing`
is what every message of a run shares (from ``solidline.toml``), and :func:`compose` makes one
message per subscriber: rendered, with signed unsubscribe links, as bytes ready to send.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import attrs
import css_inline
import jinja2
from markupsafe import escape

from ._errors import ConfigError, SubscriberError
from .config import Config, NewsletterConfig, SiteConfig
from .digest import Change, Digest
from .exports import describe_source
from .mail import Outgoing, build_message, clean_text, message_id, normalize_address, parse_sender
from .model import Source
from .subscribers import Subscriber
from .timeline import Anniversary, Entry
from .unsubscribe import Unsubscribe, unsubscribe_links
from .windows import Window, long_date

__all__ = [
    "Composed",
    "DigestRenderer",
    "Mailing",
    "Rendered",
    "compose",
    "compose_each",
]

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
        edition = self._edition(digest, subscriber.interests, subscriber.language, preview=preview)
        return edition.render(subscriber, unsubscribe)

    def _edition(
        self, digest: Digest, interests: tuple[str, ...], language: str, *, preview: bool = False
    ) -> _Edition:
        """What every subscriber with these interests and this language gets of ``digest``."""
        return _Edition(
            self,
            _Context(self, digest, interests, language, self._subject(digest), preview),
            shared=self._packaged_templates,
        )

    @functools.cached_property
    def _packaged_templates(self) -> bool:
        """Whether both templates are solidline's own rather than overrides."""
        names = ("digest.html.j2", "digest.txt.j2")
        files = [self._env.get_template(name).filename for name in names]
        return all(f is not None and Path(f).parent in template_folders() for f in files)

    def _subject(self, digest: Digest) -> str:
        window = digest.window
        return clean_text(
            self.subject.format(
                title=self.title,
                period=_period_name(window),
                dates=window.dates(),
                start=long_date(window.start.date()),
                end=long_date(window.last_moment.date()),
            )
        )

    def _html(self, context: Mapping[str, Any]) -> str:
        raw = self._env.get_template("digest.html.j2").render(context)
        return self._inliner.inline(raw)

    def _text(self, context: Mapping[str, Any]) -> str:
        return self._env.get_template("digest.txt.j2").render(context)

    def _in_html(self, personal: _Personal) -> _Personal:
        """The personal values as the HTML body holds them: escaped, then as the inliner
        writes a text node (the salutation) and an attribute (the unsubscribe link)."""
        raw = f'<p>{escape(personal.salutation)}</p><a href="{escape(personal.unsubscribe_url)}">'
        inlined = self._inliner.inline(raw)
        salutation = inlined.partition("<p>")[2].partition("</p>")[0]
        url = inlined.partition('<a href="')[2].partition('">')[0]
        return _Personal(salutation, url)


class _Personal(NamedTuple):
    """What differs between two subscribers of one edition: salutation and unsubscribe link."""

    salutation: str
    unsubscribe_url: str


# Where a shared render puts each subscriber's own values: private-use characters (which
# clean_text takes out of names) around a token no record's text can hold by chance or design.
_TOKEN = secrets.token_hex(8)
_MARKS = _Personal(f"\ue000{_TOKEN}:salutation\ue000", f"\ue000{_TOKEN}:unsubscribe\ue000")


_MARK = re.compile("|".join(re.escape(mark) for mark in _MARKS))


def _personalised(text: str, values: _Personal) -> str:
    """``text`` with the marks replaced by one subscriber's ``values``.

    The same as replacing each mark in turn (no value holds a mark: they hold no private-use
    characters), but a shared render is cut at its marks once, not searched whole for each of
    hundreds of subscribers.
    """
    pieces, marks = _cut_at_marks(text)
    value_of = dict(zip(_MARKS, values, strict=True))
    filled = [pieces[0]]
    for mark, piece in zip(marks, pieces[1:], strict=True):
        filled += (value_of[mark], piece)
    return "".join(filled)


@functools.lru_cache(maxsize=64)
def _cut_at_marks(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The text between the marks, and the marks, in order (a render is cut once)."""
    return tuple(_MARK.split(text)), tuple(_MARK.findall(text))


@attrs.frozen
class _Page:
    """An HTML body rendered with the marks: its size in UTF-8 bytes, and how often each mark
    occurs in it, make its size for any subscriber a sum."""

    html: str
    size: int
    counts: tuple[int, ...]

    @classmethod
    def of(cls, html: str) -> _Page:
        return cls(html, len(html.encode()), tuple(html.count(mark) for mark in _MARKS))

    def size_for(self, forms: _Personal) -> int:
        """The size with the marks replaced by ``forms`` (the values as the HTML holds them)."""
        return self.size + sum(
            count * (len(form.encode()) - len(mark.encode()))
            for count, form, mark in zip(self.counts, forms, _MARKS, strict=True)
        )


class _Edition:
    """One digest part as rendered for every subscriber with the same interests and language.

    With solidline's own templates, whose only personal values are the salutation (a text
    node) and the unsubscribe link (an ``href``), the bodies are rendered and CSS-inlined once
    per number of entries shown, with marks where those values go: a subscriber's bodies are
    these with the marks replaced, and fitting the size limit is arithmetic on them. The bytes
    are those a render of the subscriber's own values gives. Templates that override them may
    use the values in any way, so they are rendered for each subscriber.
    """

    def __init__(self, renderer: DigestRenderer, context: _Context, *, shared: bool) -> None:
        self._renderer = renderer
        self._context = context
        self._shared = shared
        self._pages: dict[int, _Page] = {}
        self._texts: dict[int, str] = {}

    def render(self, subscriber: Subscriber, unsubscribe: Unsubscribe) -> Rendered:
        """The bodies for one subscriber of this edition."""
        personal = _Personal(subscriber.salutation(), unsubscribe.url)
        if self._shared:
            return self._fitted(personal, self._renderer._in_html(personal))
        own = _Edition(self._renderer, self._context.with_values(personal), shared=False)
        return own._fitted(personal, personal)  # no marks in its pages: nothing is replaced

    def _fitted(self, personal: _Personal, forms: _Personal) -> Rendered:
        """All new entries if their HTML fits the limit, else the most that fit."""
        limit = self._renderer.max_html_bytes
        total = len(self._context.digest.entries)
        shown = total
        if self._page(total).size_for(forms) > limit:
            shown = _most_that_fit(lambda n: self._page(n).size_for(forms) <= limit, total)
        html = _personalised(self._page(shown).html, forms)
        text = _personalised(self._text(shown), personal)
        return Rendered(self._context.subject, html, text, shown, total - shown)

    def _page(self, shown: int) -> _Page:
        if shown not in self._pages:
            self._pages[shown] = _Page.of(self._renderer._html(self._context.build(shown)))
        return self._pages[shown]

    def _text(self, shown: int) -> str:
        if shown not in self._texts:
            self._texts[shown] = self._renderer._text(self._context.build(shown))
        return self._texts[shown]


def _most_that_fit(fits: Callable[[int], bool], total: int) -> int:
    """The most new entries (below ``total``) whose HTML fits: a binary search, 0 if none do."""
    low, high = 0, total - 1
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


@attrs.define
class _Context:
    """Builds the templates' variables; ``build(n)`` shows the first ``n`` new entries.

    What does not depend on ``n`` is built once.
    """

    renderer: DigestRenderer
    digest: Digest
    interests: tuple[str, ...]
    language: str
    subject: str
    preview: bool
    values: _Personal = _MARKS
    _groups: list[tuple[str, list[Entry]]] | None = None
    _fixed: dict[str, Any] | None = None

    def with_values(self, values: _Personal) -> _Context:
        """The same context with these personal values instead of the marks."""
        return attrs.evolve(self, values=values, groups=self._groups, fixed=self._fixed)

    def build(self, shown: int) -> dict[str, Any]:
        if self._groups is None or self._fixed is None:
            self._groups = self.digest.groups(self.interests)
            self._fixed = self._shared_variables(len(self._groups))
        return {
            **self._fixed,
            "salutation": self.values.salutation,
            "unsubscribe_url": self.values.unsubscribe_url,
            "groups": _first_entries(self._groups, shown),
            "omitted": len(self.digest.entries) - min(shown, len(self.digest.entries)),
        }

    def _shared_variables(self, groups: int) -> dict[str, Any]:
        digest = self.digest
        return {
            "title": self.renderer.title,
            "subject": self.subject,
            "period": _period_name(digest.window),
            "dates": digest.window.dates(),
            "language": self.language,
            "intro": _intro(digest, groups),
            "changes": [_change_item(c) for c in digest.changes],
            "upcoming": [_item(e) for e in digest.upcoming],
            "anniversaries": [_anniversary_item(a) for a in digest.anniversaries],
            "archive_url": self.renderer.archive_url,
            "interests": [digest.name(i) for i in self.interests],
            "preview": self.preview,
        }


def _period_name(window: Window) -> str:
    return window.period.replace("-", " ")


def _first_entries(groups: list[tuple[str, list[Entry]]], shown: int) -> list[dict[str, Any]]:
    """The groups holding the first ``shown`` new entries, with those entries."""
    kept, left = [], shown
    for title, entries in groups:
        if left <= 0:
            break
        kept.append({"title": title, "entries": [_item(e) for e in entries[:left]]})
        left -= len(entries)
    return kept


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
        "date": long_date(anniversary.date),
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
        sender, mailto = _addresses(settings)
        return cls(
            title=settings.title or (site.title if site else "solidline"),
            sender=sender,
            list_id=settings.list_id or _list_id(sender[1]),
            unsubscribe_url=_unsubscribe_url(settings, site),
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


def _addresses(settings: NewsletterConfig) -> tuple[tuple[str | None, str], str]:
    """The sender, and the address that takes unsubscribe mails."""
    try:
        sender = parse_sender(settings.sender)
        mailto = normalize_address(
            (settings.unsubscribe_mailto or sender[1]).removeprefix("mailto:")
        )
    except SubscriberError as exc:
        raise ConfigError(f"[newsletter]: {exc}") from None
    return sender, mailto


def _unsubscribe_url(settings: NewsletterConfig, site: SiteConfig | None) -> str:
    url = settings.unsubscribe_url or (site and site.base_url + "unsubscribe")
    if not url or not url.startswith("https://") or not url.isascii():
        raise ConfigError(
            "[newsletter] unsubscribe_url must be an https URL (ASCII) that takes one-click "
            f"unsubscribe POSTs (RFC 8058); got {url!r}"
        )
    return url


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

    See :func:`compose_each`, which makes them one at a time.
    """
    return list(
        compose_each(
            digest, subscribers, mailing, key=key, preview=preview, send_empty=send_empty,
            skip=skip,
        )
    )


def compose_each(
    digest: Digest,
    subscribers: Iterable[Subscriber],
    mailing: Mailing,
    *,
    key: str | bytes,
    preview: bool = False,
    send_empty: bool = False,
    skip: Callable[[str], bool] | None = None,
) -> Iterator[Composed]:
    """The messages of a digest, one at a time, in the subscribers' order.

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
    # subscribers who ask for the same get the same part and, in one language, one edition
    parts: dict[tuple[str, ...], Digest] = {}
    editions: dict[tuple[tuple[str, ...], str], _Edition] = {}
    for subscriber in subscribers:
        mid = message_id(digest.window.label, subscriber.address, mailing.domain, mailing.list_id)
        interests = subscriber.interests
        if interests not in parts:
            parts[interests] = digest.for_interests(interests)
        part = parts[interests]
        if (skip is not None and skip(mid)) or (part.is_empty and not send_empty):
            continue
        links = unsubscribe_links(
            subscriber.address,
            key=key,
            list_id=mailing.list_id,
            url=mailing.unsubscribe_url,
            mailto=mailing.unsubscribe_mailto,
        )
        same = (interests, subscriber.language)
        if same not in editions:
            editions[same] = renderer._edition(part, *same, preview=preview)
        rendered = editions[same].render(subscriber, links)
        message = _message(mailing, subscriber, rendered, links, mid, digest.window)
        yield Composed(subscriber, rendered, message)


def _message(
    mailing: Mailing,
    subscriber: Subscriber,
    rendered: Rendered,
    links: Unsubscribe,
    mid: str,
    window: Window,
) -> Outgoing:
    return build_message(
        sender=mailing.sender,
        recipient=(subscriber.name, subscriber.address),
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        date=window.end,
        message_id=mid,
        list_id=mailing.list_id,
        unsubscribe_url=links.url,
        unsubscribe_mailto=links.mailto,
        reply_to=mailing.reply_to,
    )
