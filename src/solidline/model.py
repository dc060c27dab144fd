"""The event model: entities, sources, participants and the built-in event types.

Every event is a frozen attrs class with keyword-only fields. A *fact* (a meeting, a visit, a
donation …) has a date (``when``, EDTF), a title, a summary and at least one source. An
*amendment* (a status change, correction, retraction or same-as link) names the event it
amends by ``target``; timelines apply it to that event, the log never rewrites a line.

Each class carries its type name and schema version as class variables (``Meeting.type ==
"meeting"``); :func:`solidline.event_type` registers an application's own classes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Literal

import attrs

from ._errors import InvalidDate, InvalidEvent, InvalidEventDate
from .dates import EDTFDate, parse_date

__all__ = [
    "AgreementSigned",
    "Amendment",
    "Congress",
    "Corrected",
    "Donation",
    "EntityDefined",
    "Event",
    "Fact",
    "Meeting",
    "Participant",
    "Period",
    "Person",
    "RelationsEstablished",
    "Retracted",
    "SameAs",
    "Source",
    "Statement",
    "StatusChanged",
    "Visit",
]

EVENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
ENTITY_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
_URL = re.compile(r"https?://[^\s/?#]+[^\s]*")
_CURRENCY = re.compile(r"[A-Z]{3}")

EntityKind = Literal["party", "state", "organisation", "person", "media"]
Status = Literal["scheduled", "occurred", "postponed", "cancelled"]
VisitLevel = Literal["state", "official", "working", "party", "private"]
STATUSES: tuple[Status, ...] = ("scheduled", "occurred", "postponed", "cancelled")


# -- validators: each raises InvalidEvent naming the field, so errors point at the place ----------


def _fail(attribute: attrs.Attribute[Any], message: str) -> InvalidEvent:
    return InvalidEvent(message, field=attribute.name)


@attrs.frozen
class ValueCheck:
    """A field validator that tests the value alone, its test written once, as an expression.

    ``test`` is a Python expression in ``value`` using builtins and this module's names (the id
    and URL patterns). It is compiled here for the classes' own ``__init__``, and the codec
    pastes the same text into the constructors its fast path generates, where a call per field
    would cost more than the test: one rule, whichever way an event is built.

    Attributes:
        test: the expression; true for an acceptable value.
        message: what to say of a value that is not acceptable.
    """

    test: str
    message: Callable[[Any], str]
    passes: Callable[[Any], Any] = attrs.field(init=False, repr=False, eq=False)

    @passes.default
    def _compile(self) -> Callable[[Any], Any]:
        passes: Callable[[Any], Any] = eval(f"lambda value: {self.test}", globals())
        return passes

    @property
    def names(self) -> dict[str, Any]:
        """The module names the test uses, for code that pastes it elsewhere."""
        used = compile(self.test, "<test>", "eval").co_names
        return {name: globals()[name] for name in used if name in globals()}

    def each(self) -> ValueCheck:
        """This check of every item of a collection, with the message of the first that fails."""
        return ValueCheck(
            # the comprehension's own ``value`` is each item of the outer one
            f"all(({self.test}) for value in value)",
            lambda value: self.message(next(item for item in value if not self.passes(item))),
        )

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not self.passes(value):
            raise _fail(attribute, self.message(value))


_event_id = ValueCheck(
    "value is None or (isinstance(value, str) and EVENT_ID.fullmatch(value))",
    lambda value: f"{value!r} is not a valid event id: use 1-128 characters from A-Z a-z 0-9 "
    ". _ : - starting with a letter or digit (no '/', no spaces)",
)
_entity_id = ValueCheck(
    "isinstance(value, str) and ENTITY_ID.fullmatch(value)",
    lambda value: f"{value!r} is not a valid entity id: use lower-case letters, digits and "
    "inner hyphens, e.g. 'cpusa' or 'lao-news-agency'",
)


_entity_ids = _entity_id.each()


# Control characters are kept as given (the record is what the source said); feeds and mail
# clean them on the way out, where XML and MIME cannot carry them.
_free_text = ValueCheck(
    "isinstance(value, str)", lambda value: f"must be a string, not {type(value).__name__}"
)
_text = ValueCheck(
    "isinstance(value, str) and value.strip()", lambda value: "must be a non-empty string"
)
_optional_text = ValueCheck(
    "value is None or (isinstance(value, str) and value.strip())",
    lambda value: "must be a non-empty string or left out",
)
_url = ValueCheck(
    "value is None or (isinstance(value, str) and _URL.fullmatch(value))",
    lambda value: f"{value!r} is not an absolute http(s) URL",
)
_non_empty = ValueCheck("value", lambda value: "needs at least one item")


def _to_date(value: EDTFDate | str) -> EDTFDate:
    return value if isinstance(value, EDTFDate) else parse_date(value)


def _date_of(value: EDTFDate | str, field: attrs.Attribute[Any]) -> EDTFDate:
    """A date field's converter: a bad date names the field, as every other bad value does."""
    if isinstance(value, EDTFDate):
        return value
    if not isinstance(value, str):
        message = f"expected an EDTF date string, got {type(value).__name__}"
        raise InvalidEventDate(message, field=field.name)
    try:
        return parse_date(value)
    except InvalidDate as exc:
        raise InvalidEventDate(str(exc), field=field.name) from None


_DATE = attrs.Converter(_date_of, takes_field=True)


def _to_optional_date(value: EDTFDate | str | None) -> EDTFDate | None:
    return None if value is None else _to_date(value)


def _in(choices: tuple[str, ...]) -> ValueCheck:
    return ValueCheck(
        f"value is None or value in {choices!r}",
        lambda value: f"{value!r} is not one of {', '.join(choices)}",
    )


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    """Keep the first of each repeated value, in order."""
    return tuple(dict.fromkeys(values))


# -- value classes ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Source:
    """Where a fact comes from: an article, a statement, a communiqué.

    Args:
        title: its title.
        publisher: who published it (``"CPUSA International Department"``).
        published: its publication date, EDTF (``"2024-10-08"``).
        url: absolute http(s) address of the source, when it has one (a printed article or a
            clipping may not).
        quote: a short passage that supports the fact.
    """

    title: str = attrs.field(validator=_text)
    publisher: str = attrs.field(validator=_text)
    published: EDTFDate = attrs.field(converter=_DATE)  # type: ignore[misc]
    url: str | None = attrs.field(default=None, validator=_url)
    quote: str | None = attrs.field(default=None, validator=_optional_text)


@attrs.frozen(kw_only=True)
class Participant:
    """An entity taking part in an event, with an optional role (``"host"``, ``"guest"``)."""

    entity: str = attrs.field(validator=_entity_id)
    role: str | None = attrs.field(default=None, validator=_optional_text)


@attrs.frozen(kw_only=True)
class Person:
    """A person present at an event, with the office they held then and whom they represented."""

    name: str = attrs.field(validator=_text)
    role: str | None = attrs.field(default=None, validator=_optional_text)
    entity: str | None = attrs.field(default=None, validator=attrs.validators.optional(_entity_id))


# -- events ----------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Event:
    """Base of every event. ``id`` is the caller's (or generated from the content when left out)."""

    type: ClassVar[str] = ""
    version: ClassVar[int] = 1

    id: str | None = attrs.field(default=None, validator=_event_id)

    def entities(self) -> tuple[str, ...]:
        """The entity ids this event involves, each once, in the order given."""
        return ()


@attrs.frozen(kw_only=True)
class EntityDefined(Event):
    """Defines an entity: a party, a state, an organisation, a person or a news medium."""

    type: ClassVar[str] = "entity.defined"

    entity: str = attrs.field(validator=_entity_id)
    kind: EntityKind = attrs.field(
        validator=_in(("party", "state", "organisation", "person", "media"))
    )
    name: str = attrs.field(validator=_text)
    short_name: str | None = attrs.field(default=None, validator=_optional_text)
    aliases: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    country: str | None = attrs.field(default=None, validator=_optional_text)
    sources: tuple[Source, ...] = attrs.field(default=(), converter=tuple)

    def entities(self) -> tuple[str, ...]:
        return (self.entity,)


@attrs.frozen(kw_only=True)
class Fact(Event):
    """Something that happened (or is scheduled to): the base of the factual event types.

    ``note`` says how the record read the source where it had to interpret it, for example a
    year implied by the article's own date.
    """

    when: EDTFDate = attrs.field(converter=_DATE)  # type: ignore[misc]
    title: str = attrs.field(validator=_text)
    summary: str = attrs.field(default="", validator=_free_text)
    sources: tuple[Source, ...] = attrs.field(converter=tuple, validator=_non_empty)
    place: str | None = attrs.field(default=None, validator=_optional_text)
    people: tuple[Person, ...] = attrs.field(default=(), converter=tuple)
    status: Status = attrs.field(default="occurred", validator=_in(STATUSES))
    note: str | None = attrs.field(default=None, validator=_optional_text)


@attrs.frozen(kw_only=True)
class Meeting(Fact):
    """A meeting between delegations, with the roles they came in."""

    type: ClassVar[str] = "meeting"

    participants: tuple[Participant, ...] = attrs.field(converter=tuple, validator=_non_empty)

    def entities(self) -> tuple[str, ...]:
        return _unique(p.entity for p in self.participants)


@attrs.frozen(kw_only=True)
class Visit(Fact):
    """A visit by one entity to another, at a diplomatic level."""

    type: ClassVar[str] = "visit"

    visitor: str = attrs.field(validator=_entity_id)
    host: str = attrs.field(validator=_entity_id)
    level: VisitLevel | None = attrs.field(
        default=None, validator=_in(("state", "official", "working", "party", "private"))
    )

    def entities(self) -> tuple[str, ...]:
        return _unique((self.visitor, self.host))


@attrs.frozen(kw_only=True)
class Congress(Fact):
    """A party's (or organisation's) congress, with the foreign delegations that attended."""

    type: ClassVar[str] = "congress"

    organisation: str = attrs.field(validator=_entity_id)
    ordinal: int | None = attrs.field(default=None)
    delegations: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_entity_ids)

    @ordinal.validator
    def _check_ordinal(self, attribute: attrs.Attribute[Any], value: int | None) -> None:
        if value is not None and (type(value) is not int or value < 1):
            raise _fail(attribute, "must be a whole number from 1 (the 14th congress is 14)")

    def entities(self) -> tuple[str, ...]:
        return _unique((self.organisation, *self.delegations))


@attrs.frozen(kw_only=True)
class Donation(Fact):
    """A donation in kind (``items``) and/or money (``amount``, a decimal string, ``currency``)."""

    type: ClassVar[str] = "donation"

    donor: str = attrs.field(validator=_entity_id)
    recipient: str = attrs.field(validator=_entity_id)
    items: str | None = attrs.field(default=None, validator=_optional_text)
    amount: str | None = attrs.field(default=None)
    currency: str | None = attrs.field(default=None)

    @amount.validator
    def _check_amount(self, attribute: attrs.Attribute[Any], value: str | None) -> None:
        if value is None:
            if self.items is None:
                raise _fail(attribute, "a donation needs items (in kind) or an amount, or both")
            return
        try:
            ok = isinstance(value, str) and Decimal(value).is_finite() and Decimal(value) > 0
        except InvalidOperation:
            ok = False
        if not ok:
            raise _fail(attribute, f"{value!r} is not a positive decimal amount such as '2500.00'")

    @currency.validator
    def _check_currency(self, attribute: attrs.Attribute[Any], value: str | None) -> None:
        if (value is None) != (self.amount is None):
            raise _fail(attribute, "an amount needs a currency and a currency needs an amount")
        if value is not None and not _CURRENCY.fullmatch(value):
            raise _fail(attribute, f"{value!r} is not an ISO 4217 code such as 'USD'")

    def entities(self) -> tuple[str, ...]:
        return _unique((self.donor, self.recipient))


@attrs.frozen(kw_only=True)
class Statement(Fact):
    """A statement by one entity to others (``addressees``) or about others (``about``).

    ``stance`` says what kind: solidarity, congratulation, condolence, greeting, condemnation …
    """

    type: ClassVar[str] = "statement"

    speaker: str = attrs.field(validator=_entity_id)
    addressees: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_entity_ids)
    about: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_entity_ids)
    stance: str = attrs.field(default="solidarity", validator=_text)
    quote: str | None = attrs.field(default=None, validator=_optional_text)

    def entities(self) -> tuple[str, ...]:
        return _unique((self.speaker, *self.addressees, *self.about))


def _two_or_more(instance: object, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    _entity_ids(instance, attribute, value)
    if len(set(value)) < 2:
        raise _fail(attribute, "needs at least two different entities")


@attrs.frozen(kw_only=True)
class RelationsEstablished(Fact):
    """Two entities establish relations (diplomatic, party-to-party …)."""

    type: ClassVar[str] = "relations.established"

    parties: tuple[str, ...] = attrs.field(converter=tuple, validator=_two_or_more)
    relation: str = attrs.field(default="diplomatic", validator=_text)

    @parties.validator
    def _check_pair(self, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
        if len(value) != 2:
            raise _fail(attribute, "relations are established between exactly two entities")

    def entities(self) -> tuple[str, ...]:
        return self.parties


@attrs.frozen(kw_only=True)
class AgreementSigned(Fact):
    """An agreement, treaty or memorandum signed by two or more entities."""

    type: ClassVar[str] = "agreement.signed"

    parties: tuple[str, ...] = attrs.field(converter=tuple, validator=_two_or_more)
    name: str = attrs.field(validator=_text)

    def entities(self) -> tuple[str, ...]:
        return _unique(self.parties)


@attrs.frozen(kw_only=True)
class Period(Fact):
    """Something that lasted: a joint struggle, an alliance, a term of office.

    ``when`` is usually an interval (``1945/1975``); a single year (``2020``) is a period too.
    """

    type: ClassVar[str] = "period"

    participants: tuple[str, ...] = attrs.field(
        converter=tuple, validator=[_non_empty, _entity_ids]
    )

    def entities(self) -> tuple[str, ...]:
        return _unique(self.participants)


@attrs.frozen(kw_only=True)
class Amendment(Event):
    """Base of the events that amend another event, named by ``target``."""

    target: str = attrs.field(validator=_event_id)
    reason: str = attrs.field(default="", validator=_free_text)
    sources: tuple[Source, ...] = attrs.field(default=(), converter=tuple)


@attrs.frozen(kw_only=True)
class StatusChanged(Amendment):
    """The target's status changed: held, postponed, cancelled; ``when`` gives its date if known."""

    type: ClassVar[str] = "event.status_changed"

    status: Status = attrs.field(validator=_in(STATUSES))
    when: EDTFDate | None = attrs.field(default=None, converter=_to_optional_date)


@attrs.frozen(kw_only=True)
class Corrected(Amendment):
    """The target's named fields had other values: ``changes`` maps field name to new value.

    Values are in the event's JSON form (a date as its EDTF string, sources as objects).
    """

    type: ClassVar[str] = "event.corrected"

    changes: dict[str, Any] = attrs.field(hash=False)
    reason: str = attrs.field(validator=_text)

    @changes.validator
    def _check_changes(self, attribute: attrs.Attribute[Any], value: dict[str, Any]) -> None:
        if not isinstance(value, dict) or not value:
            raise _fail(attribute, "name at least one field to change, e.g. {'title': '…'}")
        if "id" in value or "type" in value:
            raise _fail(attribute, "an event's id and type cannot be corrected; retract it instead")


@attrs.frozen(kw_only=True)
class Retracted(Amendment):
    """The target should not have been recorded (or a link or correction no longer holds)."""

    type: ClassVar[str] = "event.retracted"

    reason: str = attrs.field(validator=_text)


@attrs.frozen(kw_only=True)
class SameAs(Amendment):
    """``target`` and ``other`` report one real event; timelines show them as one entry."""

    type: ClassVar[str] = "event.same_as"

    other: str = attrs.field(validator=_event_id)

    def __attrs_post_init__(self) -> None:
        if self.other == self.target:
            raise InvalidEvent("an event cannot be the same as itself", field="other")


BUILTIN_EVENT_TYPES: tuple[type[Event], ...] = (
    EntityDefined,
    Meeting,
    Visit,
    Congress,
    Donation,
    Statement,
    RelationsEstablished,
    AgreementSigned,
    Period,
    StatusChanged,
    Corrected,
    Retracted,
    SameAs,
)
