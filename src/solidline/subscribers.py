"""Subscribers: who gets the digest, in what language, about which relationships and entities.

A :class:`Subscriber` has a checked address, a name, interests (entity ids such as ``cpv`` and
relationships such as ``cpusa~cpv``) and the language of the salutation. They come from a CSV or
JSON Lines file (:func:`load_subscribers`); every bad line is reported at once, with its number,
and nothing is sent until the file is fixed.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import orjson

from ._errors import SubscriberError
from .mail import clean_text, normalize_address
from .model import ENTITY_ID
from .timeline import pair_key

__all__ = ["LANGUAGES", "Subscriber", "load_subscribers"]

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
    subscribers, errors = _collect(_rows(source), entities)
    if errors:
        shown = "\n  ".join(errors[:20]) + ("\n  …" if len(errors) > 20 else "")
        raise SubscriberError(
            f"{source}: {len(errors)} bad line(s); nothing is sent to anyone until they are "
            f"fixed:\n  {shown}"
        )
    return subscribers


_Row = Mapping[str, Any] | str  # a line's fields, or what is wrong with it


def _rows(source: Path) -> Iterator[tuple[int, _Row]]:
    try:
        text = source.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SubscriberError(f"{source}: cannot read the subscriber file: {exc}") from None
    json_lines = source.suffix.lower() in (".jsonl", ".ndjson")
    return _json_rows(text) if json_lines else _csv_rows(text)


def _collect(
    rows: Iterable[tuple[int, _Row]], entities: Collection[str] | None
) -> tuple[tuple[Subscriber, ...], list[str]]:
    """The subscribers of the good lines, and ``line N: what is wrong`` for each bad one."""
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
    return tuple(subscribers), errors


def _subscriber(row: _Row, entities: Collection[str] | None) -> Subscriber:
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


def _csv_rows(text: str) -> Iterator[tuple[int, _Row]]:
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


def _json_rows(text: str) -> Iterator[tuple[int, _Row]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield number, f"not valid JSON: {exc}"
            continue
        yield number, value if isinstance(value, dict) else "each line must be a JSON object"
