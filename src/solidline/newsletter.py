"""The newsletter: one subscriber's digest rendered and composed into a message.

:class:`DigestRenderer` turns a :class:`~solidline.digest.Digest`, already cut to a subscriber's
interests, into a subject, an HTML body (autoescaped, CSS inlined, cut to a size limit with
"N more" linking to the archive) and a plain text body, from jinja2 templates. :class:`Mailing`
is what every message of a run shares (from ``solidline.toml``), and :func:`compose` makes one
message per subscriber: rendered, with signed unsubscribe links, as bytes ready to send.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import css_inline
import jinja2

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
                period=_period_name(window),
                dates=window.dates(),
                start=long_date(window.start.date()),
                end=long_date(window.last_moment.date()),
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
        return {
            "title": self.renderer.title,
            "subject": self.subject,
            "period": _period_name(digest.window),
            "dates": digest.window.dates(),
            "language": subscriber.language,
            "salutation": subscriber.salutation(),
            "intro": _intro(digest, len(groups)),
            "groups": _first_entries(groups, shown),
            "omitted": len(digest.entries) - min(shown, len(digest.entries)),
            "changes": [_change_item(c) for c in digest.changes],
            "upcoming": [_item(e) for e in digest.upcoming],
            "anniversaries": [_anniversary_item(a) for a in digest.anniversaries],
            "archive_url": self.renderer.archive_url,
            "unsubscribe_url": self.unsubscribe.url,
            "interests": [digest.name(i) for i in subscriber.interests],
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
        message = _message(mailing, subscriber, rendered, links, mid, digest.window)
        composed.append(Composed(subscriber, rendered, message))
    return composed


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
