"""``solidline.toml`` into frozen attrs classes.

Every setting has a type and, where one makes sense, a default; unknown keys are refused (a typo
should not silently do nothing). Paths are relative to the file's folder. Secrets are never in
the file: it names the environment variable that holds them (``password_env``)::

    [log]
    path = "events"                      # a directory, or postgresql://… for PostgreSQL

    [site]
    output = "public"
    base_url = "https://example.org/record/"
    title = "The record"
    entries_per_feed = 50
    entries_per_page = 250              # a longer timeline is published in sections

    [newsletter]
    subscribers = "examples/subscribers.csv"
    sender = "The record <digest@example.org>"

    [smtp]
    host = "smtp.example.org"
    security = "starttls"
    username = "digest@example.org"
    password_env = "SOLIDLINE_SMTP_PASSWORD"
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs

from ._errors import ConfigError, InvalidEvent
from .codec import _first_fault

__all__ = ["Config", "LogConfig", "NewsletterConfig", "SiteConfig", "SmtpConfig", "load_config"]

_ABSOLUTE_URL = re.compile(r"https?://[^\s/?#]+/(?:[^\s?#]*/)?")
Period = Literal["daily", "weekly", "monthly"]
FeedFormat = Literal["atom", "rss"]


def _base_url(_: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not _ABSOLUTE_URL.fullmatch(value):
        raise _invalid(
            attribute,
            f"{value!r} must be an absolute http(s) URL ending in '/', e.g. "
            "'https://example.org/record/' (feeds need absolute links)",
        )


def _optional_http_url(_: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", value):
        raise _invalid(attribute, f"{value!r} must be an absolute http(s) URL")


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise _invalid(attribute, f"must be greater than 0, not {value}")


def _invalid(attribute: attrs.Attribute[Any], message: str) -> InvalidEvent:
    # the codec's error walker reads the field name from it, as for events
    return InvalidEvent(message, field=attribute.name)


@attrs.frozen(kw_only=True)
class LogConfig:
    """Where the record is: a JSON Lines directory or a ``postgresql://`` URL."""

    path: str = "events"


@attrs.frozen(kw_only=True)
class SiteConfig:
    """What ``publish`` writes: feeds and pages in ``output``, linked from ``base_url``."""

    output: str = "public"
    base_url: str = attrs.field(validator=_base_url)
    title: str = "solidline"
    description: str = "An immutable record of events between organisations and states."
    language: str = "en"
    entries_per_feed: int = attrs.field(default=50, validator=_positive)
    entries_per_page: int = attrs.field(default=250, validator=_positive)
    formats: tuple[FeedFormat, ...] = ("atom", "rss")
    templates: str | None = None
    author: str = "solidline"


@attrs.frozen(kw_only=True)
class NewsletterConfig:
    """Who gets the digest, from whom, and where messages and the delivery ledger go.

    ``title`` names the newsletter (default: the site's title); ``list_id`` is the ``List-Id``
    (default: from the sender's address); ``archive_url`` is where "N more" links to (default: the
    site's base URL); ``upcoming_days`` is how far ahead "coming up" looks; ``transport`` is what
    ``digest --send`` delivers through: ``smtp``, or ``outbox`` (files, for a pickup directory).
    """

    subscribers: str
    sender: str
    reply_to: str | None = None
    period: Period = "weekly"
    outbox: str = "outbox"
    ledger: str = "deliveries"
    subject: str = "{title}: {period} digest, {start} to {end}"
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None
    unsubscribe_key_env: str = "SOLIDLINE_UNSUBSCRIBE_KEY"
    max_html_bytes: int = attrs.field(default=102_000, validator=_positive)
    templates: str | None = None
    title: str | None = None
    list_id: str | None = None
    archive_url: str | None = attrs.field(default=None, validator=_optional_http_url)
    upcoming_days: int = attrs.field(default=60, validator=_positive)
    transport: Literal["smtp", "outbox"] = "smtp"


@attrs.frozen(kw_only=True)
class SmtpConfig:
    """How to reach the SMTP server; the password is read from ``password_env`` when sending.

    ``retry_delay`` is the wait before the first retry of a temporary (4xx) failure, doubled for
    each further one; ``ca_file`` is a PEM file of the certificates to trust instead of the
    system's (a private relay with its own CA).
    """

    host: str = "127.0.0.1"
    port: int | None = None
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password_env: str = "SOLIDLINE_SMTP_PASSWORD"
    timeout: float = attrs.field(default=30.0, validator=_positive)
    rate_per_second: float = attrs.field(default=5.0, validator=_positive)
    retries: int = 3
    retry_delay: float = attrs.field(default=2.0, validator=_positive)
    ca_file: str | None = None

    def password(self) -> str | None:
        """The password from the environment variable the file names, or None if unset."""
        return os.environ.get(self.password_env) or None


@attrs.frozen(kw_only=True)
class Config:
    """All of ``solidline.toml``. ``root`` is the folder relative paths are taken from."""

    root: Path
    log: LogConfig = LogConfig()
    site: SiteConfig | None = None
    newsletter: NewsletterConfig | None = None
    smtp: SmtpConfig = SmtpConfig()
    source: Path | None = None

    def path(self, value: str) -> Path:
        """A path from the file, resolved against the file's folder."""
        return self.root / value

    @property
    def log_location(self) -> str:
        """The log's path (resolved) or its PostgreSQL URL."""
        location = self.log.path
        return location if "://" in location else str(self.path(location))

    def require_site(self) -> SiteConfig:
        if self.site is None:
            raise ConfigError(f"{self._name()}: needs a [site] table with base_url to publish")
        return self.site

    def require_newsletter(self) -> NewsletterConfig:
        if self.newsletter is None:
            raise ConfigError(
                f"{self._name()}: needs a [newsletter] table (subscribers, sender) for digests"
            )
        return self.newsletter

    def _name(self) -> str:
        return str(self.source) if self.source else "the configuration"


_converter = cattrs.Converter(forbid_extra_keys=True)
_converter.register_structure_hook(Path, lambda value, _: Path(value))


def load_config(path: str | os.PathLike[str] = "solidline.toml") -> Config:
    """Read ``solidline.toml``.

    Raises:
        ConfigError: the file is missing or unreadable, is not TOML, or has a missing, unknown
            or invalid setting; the message names the file, the setting and what is expected.
    """
    source = Path(path)
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{source}: not found; create it (see the README) or pass --config"
        ) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{source}: cannot be read as TOML: {exc}") from None
    return config_from_dict(data, root=source.resolve().parent, source=source)


def config_from_dict(data: dict[str, Any], *, root: Path, source: Path | None = None) -> Config:
    """A :class:`Config` from parsed TOML, with errors naming the setting at fault."""
    try:
        return _converter.structure(
            {**data, "root": str(root), "source": source and str(source)}, Config
        )
    except Exception as exc:
        field, message = _first_fault(exc)
        where = str(source) if source else "configuration"
        setting = f"setting {field!r}: " if field else ""
        raise ConfigError(f"{where}: {setting}{message}") from None
