"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

import calendar
import datetime
import functools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
from hypothesis import strategies as st

from solidline.model import (
    ENTITY_ID,
    EVENT_ID,
    STATUSES,
    AgreementSigned,
    Congress,
    Corrected,
    Donation,
    EntityDefined,
    Event,
    Fact,
    Meeting,
    Participant,
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

# --- Dates ------------------------------------------------------------------------------------
# EDTF strings of the subset solidline.dates supports. Each generator also yields the bounds the
# text should have, worked out here independently of the parser, so tests can check one against
# the other.

Bounded = tuple[str, datetime.date, datetime.date]

_FIRST_DAY = datetime.date(1, 1, 1)
_LAST_DAY = datetime.date(9999, 12, 31)
_SEASON_MONTHS = {"21": (3, 5), "22": (6, 8), "23": (9, 11), "24": (12, 2)}


def _last_day(year: int, month: int) -> datetime.date:
    return datetime.date(year, month, calendar.monthrange(year, month)[1])


def _whole_years(text: str, first: int, last: int) -> Bounded:
    return text, datetime.date(first, 1, 1), datetime.date(last, 12, 31)


def _days() -> st.SearchStrategy[Bounded]:
    return st.dates(_FIRST_DAY, _LAST_DAY).map(lambda d: (d.isoformat(), d, d))


def _months() -> st.SearchStrategy[Bounded]:
    return st.dates(_FIRST_DAY, _LAST_DAY).map(
        lambda d: (d.isoformat()[:7], d.replace(day=1), _last_day(d.year, d.month))
    )


def _unknown_days() -> st.SearchStrategy[Bounded]:
    return _months().map(lambda b: (b[0] + "-XX", b[1], b[2]))


def _years() -> st.SearchStrategy[Bounded]:
    return st.integers(1, 9999).map(lambda y: _whole_years(f"{y:04d}", y, y))


def _unknown_months() -> st.SearchStrategy[Bounded]:
    suffixes = st.sampled_from(["-XX", "-XX-XX"])
    return st.tuples(_years(), suffixes).map(lambda t: (t[0][0] + t[1], t[0][1], t[0][2]))


def _decades() -> st.SearchStrategy[Bounded]:
    return st.integers(1, 999).map(lambda d: _whole_years(f"{d:03d}X", d * 10, d * 10 + 9))


def _centuries() -> st.SearchStrategy[Bounded]:
    return st.integers(1, 99).map(lambda c: _whole_years(f"{c:02d}XX", c * 100, c * 100 + 99))


def _season(year: int, code: str) -> Bounded:
    first, last = _SEASON_MONTHS[code]
    last_year = year + 1 if last < first else year
    return f"{year:04d}-{code}", datetime.date(year, first, 1), _last_day(last_year, last)


def _seasons() -> st.SearchStrategy[Bounded]:
    # Winter 9999 would end in the year 10000, which the parser rightly rejects.
    codes = st.sampled_from(sorted(_SEASON_MONTHS))
    return st.builds(_season, st.integers(1, 9998), codes)


def single_edtf_dates_with_bounds() -> st.SearchStrategy[Bounded]:
    """One EDTF date (no interval) of any supported form, qualified or not, with its bounds."""
    forms = st.one_of(
        _days(),
        _months(),
        _years(),
        _seasons(),
        _decades(),
        _centuries(),
        _unknown_months(),
        _unknown_days(),
    )
    qualifiers = st.sampled_from(["", "?", "~", "%"])
    return st.tuples(forms, qualifiers).map(lambda t: (t[0][0] + t[1], t[0][1], t[0][2]))


def _interval(start: Bounded | str, end: Bounded | str) -> Bounded:
    """Join two ends (a string is ``..`` or empty), swapping them if the start is after the end."""
    if not isinstance(start, str) and not isinstance(end, str) and start[1] > end[2]:
        start, end = end, start
    lower = _FIRST_DAY if isinstance(start, str) else start[1]
    upper = _LAST_DAY if isinstance(end, str) else end[2]
    start_text = start if isinstance(start, str) else start[0]
    end_text = end if isinstance(end, str) else end[0]
    return f"{start_text}/{end_text}", lower, upper


def edtf_intervals_with_bounds() -> st.SearchStrategy[Bounded]:
    """An EDTF interval, with open (``..``) or unknown (empty) ends now and then."""
    ends = st.one_of(single_edtf_dates_with_bounds(), st.sampled_from(["..", ""]))
    pairs = st.tuples(ends, ends).filter(
        lambda p: not (isinstance(p[0], str) and isinstance(p[1], str))
    )
    return pairs.map(lambda p: _interval(*p))


def edtf_dates_with_bounds() -> st.SearchStrategy[Bounded]:
    """Any supported EDTF string with the first and last day it can mean."""
    return st.one_of(single_edtf_dates_with_bounds(), edtf_intervals_with_bounds())


def edtf_dates() -> st.SearchStrategy[str]:
    """Any EDTF string solidline supports: every form, qualifier and kind of interval."""
    return edtf_dates_with_bounds().map(lambda b: b[0])


# --- Events -----------------------------------------------------------------------------------
# One strategy per built-in event class (EVENT_STRATEGIES, checked complete by test_codec.py),
# with realistic text: Vietnamese and Lao names, quotes, markup that must stay text. No lone
# surrogates and no control characters: those are not text anyone records (surrogates are refused
# at append, which test_log_* checks with examples of their own).

_SNIPPETS = (
    "Đảng Cộng sản Việt Nam",
    "Tổng Bí thư Tô Lâm tiếp đoàn đại biểu",
    "ພັກປະຊາຊົນປະຕິວັດລາວ",
    "ສາທາລະນະລັດ ປະຊາທິປະໄຕ ປະຊາຊົນລາວ",
    "中国共产党中央委员会",
    "Коммунистическая партия",
    "Communist Party USA",
    "He said \"solidarity forever\" and 'peace'",
    "<script>alert('x')</script>",
    "Tom & Jerry's <b>bold</b> &amp; co.",
    "Hà Nội – Vientiane, 22/9",
    "🚩 solidarity ✊",
)
_WORD_CHARACTERS = st.characters(exclude_categories=("Cs", "Cc"))
_HOSTS = ("cpusa.org", "www.nhandan.vn", "kpl.gov.la", "en.vietnamplus.vn", "example.org")


@functools.cache
def _dates() -> st.SearchStrategy[str]:
    return edtf_dates()


@functools.cache
def _intervals() -> st.SearchStrategy[str]:
    return edtf_intervals_with_bounds().map(lambda b: b[0])


@functools.cache
def texts(max_size: int = 40) -> st.SearchStrategy[str]:
    """Non-blank text as people write it: real names in several scripts, quotes, markup."""
    words = st.one_of(
        st.sampled_from(_SNIPPETS), st.text(_WORD_CHARACTERS, min_size=1, max_size=max_size)
    )
    return st.lists(words, min_size=1, max_size=3).map(" ".join).filter(str.strip)


@functools.cache
def optional_texts() -> st.SearchStrategy[str | None]:
    return st.none() | texts()


@functools.cache
def urls() -> st.SearchStrategy[str]:
    paths = st.text(
        st.characters(categories=("Ll", "Nd"), include_characters="-_/.%?=&#"), max_size=30
    )
    return st.builds(
        "{}://{}/{}".format, st.sampled_from(["http", "https"]), st.sampled_from(_HOSTS), paths
    )


@functools.cache
def event_ids() -> st.SearchStrategy[str]:
    """Ids as a caller gives them: ``[A-Za-z0-9][A-Za-z0-9._:-]{0,127}``."""
    return st.from_regex(EVENT_ID, fullmatch=True)


@functools.cache
def entity_ids() -> st.SearchStrategy[str]:
    return st.from_regex(ENTITY_ID, fullmatch=True)


@functools.cache
def sources() -> st.SearchStrategy[Source]:
    return st.builds(
        Source,
        title=texts(),
        publisher=texts(),
        published=_dates(),
        url=st.none() | urls(),
        quote=optional_texts(),
    )


def people(entities: st.SearchStrategy[str]) -> st.SearchStrategy[Person]:
    return st.builds(Person, name=texts(), role=optional_texts(), entity=st.none() | entities)


def _fact_fields(
    entities: st.SearchStrategy[str], ids: st.SearchStrategy[str | None]
) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "id": ids,
        "when": _dates(),
        "title": texts(),
        "summary": st.just("") | texts(200),
        "sources": st.lists(sources(), min_size=1, max_size=3),
        "place": optional_texts(),
        "people": st.lists(people(entities), max_size=3),
        "status": st.sampled_from(STATUSES),
        "note": optional_texts(),
    }


@functools.cache
def _ids() -> st.SearchStrategy[str | None]:
    return st.none() | event_ids()


def entities_defined(ids: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[EntityDefined]:
    """An ``entity.defined`` event; ``ids`` draws the entity id."""
    return st.builds(
        EntityDefined,
        id=_ids(),
        entity=entity_ids() if ids is None else ids,
        kind=st.sampled_from(["party", "state", "organisation", "person", "media"]),
        name=texts(),
        short_name=optional_texts(),
        aliases=st.lists(texts(), max_size=3),
        country=st.none() | st.sampled_from(["VN", "LA", "US", "CN", "CU"]),
        sources=st.lists(sources(), max_size=2),
    )


def meetings(
    entities: st.SearchStrategy[str] | None = None, ids: st.SearchStrategy[str | None] | None = None
) -> st.SearchStrategy[Meeting]:
    entities = entity_ids() if entities is None else entities
    participants = st.builds(Participant, entity=entities, role=optional_texts())
    return st.builds(
        Meeting,
        **_fact_fields(entities, _ids() if ids is None else ids),
        participants=st.lists(participants, min_size=1, max_size=4),
    )


def visits(
    entities: st.SearchStrategy[str] | None = None, ids: st.SearchStrategy[str | None] | None = None
) -> st.SearchStrategy[Visit]:
    entities = entity_ids() if entities is None else entities
    levels = st.none() | st.sampled_from(["state", "official", "working", "party", "private"])
    return st.builds(
        Visit,
        **_fact_fields(entities, _ids() if ids is None else ids),
        visitor=entities,
        host=entities,
        level=levels,
    )


def congresses(
    entities: st.SearchStrategy[str] | None = None, ids: st.SearchStrategy[str | None] | None = None
) -> st.SearchStrategy[Congress]:
    entities = entity_ids() if entities is None else entities
    return st.builds(
        Congress,
        **_fact_fields(entities, _ids() if ids is None else ids),
        organisation=entities,
        ordinal=st.none() | st.integers(1, 40),
        delegations=st.lists(entities, max_size=4),
    )


@functools.cache
def _amounts() -> st.SearchStrategy[str]:
    return st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1e9"), places=2).map(str)


def donations(
    entities: st.SearchStrategy[str] | None = None, ids: st.SearchStrategy[str | None] | None = None
) -> st.SearchStrategy[Donation]:
    """A donation in kind, in money (amount and currency) or both."""
    entities = entity_ids() if entities is None else entities
    money = st.one_of(
        st.tuples(st.none(), st.none()),
        st.tuples(_amounts(), st.sampled_from(["USD", "VND", "LAK", "EUR"])),
    )
    return (
        st.tuples(money, optional_texts())
        .filter(lambda t: t[0][0] or t[1])
        .flatmap(
            lambda t: st.builds(
                Donation,
                **_fact_fields(entities, _ids() if ids is None else ids),
                donor=entities,
                recipient=entities,
                items=st.just(t[1]),
                amount=st.just(t[0][0]),
                currency=st.just(t[0][1]),
            )
        )
    )


def statements(
    entities: st.SearchStrategy[str] | None = None, ids: st.SearchStrategy[str | None] | None = None
) -> st.SearchStrategy[Statement]:
    entities = entity_ids() if entities is None else entities
    stances = st.sampled_from(["solidarity", "congratulation", "condolence"]) | texts()
    return st.builds(
        Statement,
        **_fact_fields(entities, _ids() if ids is None else ids),
        speaker=entities,
        addressees=st.lists(entities, max_size=3),
        about=st.lists(entities, max_size=2),
        stance=stances,
        quote=optional_texts(),
    )


def _distinct(
    entities: st.SearchStrategy[str], low: int, high: int
) -> st.SearchStrategy[list[str]]:
    return st.lists(entities, min_size=low, max_size=high, unique=True)


def relations_established(
    entities: st.SearchStrategy[str] | None = None,
    ids: st.SearchStrategy[str | None] | None = None,
) -> st.SearchStrategy[RelationsEstablished]:
    entities = entity_ids() if entities is None else entities
    return st.builds(
        RelationsEstablished,
        **_fact_fields(entities, _ids() if ids is None else ids),
        parties=_distinct(entities, 2, 2),
        relation=st.sampled_from(["diplomatic", "party-to-party"]) | texts(),
    )


def agreements_signed(
    entities: st.SearchStrategy[str] | None = None,
    ids: st.SearchStrategy[str | None] | None = None,
) -> st.SearchStrategy[AgreementSigned]:
    entities = entity_ids() if entities is None else entities
    return st.builds(
        AgreementSigned,
        **_fact_fields(entities, _ids() if ids is None else ids),
        parties=_distinct(entities, 2, 4),
        name=texts(),
    )


def periods(
    entities: st.SearchStrategy[str] | None = None, ids: st.SearchStrategy[str | None] | None = None
) -> st.SearchStrategy[Period]:
    """A period: mostly an interval (``1945/1975``), sometimes a single date."""
    entities = entity_ids() if entities is None else entities
    fields = _fact_fields(entities, _ids() if ids is None else ids)
    fields["when"] = _intervals() | _dates()
    return st.builds(Period, **fields, participants=st.lists(entities, min_size=1, max_size=4))


FACT_STRATEGIES: dict[type[Fact], Callable[..., st.SearchStrategy[Any]]] = {
    Meeting: meetings,
    Visit: visits,
    Congress: congresses,
    Donation: donations,
    Statement: statements,
    RelationsEstablished: relations_established,
    AgreementSigned: agreements_signed,
    Period: periods,
}


def facts(
    entities: st.SearchStrategy[str] | None = None, ids: st.SearchStrategy[str | None] | None = None
) -> st.SearchStrategy[Fact]:
    """A factual event of any built-in type, naming entities drawn from ``entities``."""
    return st.one_of([make(entities, ids) for make in FACT_STRATEGIES.values()])


@functools.cache
def json_values() -> st.SearchStrategy[Any]:
    """JSON values as orjson writes and reads them back unchanged."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**53), 2**53)
        | texts()
        | st.floats(allow_nan=False, allow_infinity=False)
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts(10), inner, max_size=3),
        max_leaves=8,
    )


def status_changes(
    targets: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[StatusChanged]:
    return st.builds(
        StatusChanged,
        id=_ids(),
        target=event_ids() if targets is None else targets,
        reason=st.just("") | texts(),
        sources=st.lists(sources(), max_size=2),
        status=st.sampled_from(STATUSES),
        when=st.none() | _dates(),
    )


def corrections(
    targets: st.SearchStrategy[str] | None = None,
    changes: st.SearchStrategy[dict[str, Any]] | None = None,
) -> st.SearchStrategy[Corrected]:
    """A correction; by default its ``changes`` are any JSON (not checked against a target)."""
    keys = texts(12).filter(lambda k: k not in ("id", "type"))
    if changes is None:
        changes = st.dictionaries(keys, json_values(), min_size=1, max_size=4)
    return st.builds(
        Corrected,
        id=_ids(),
        target=event_ids() if targets is None else targets,
        changes=changes,
        reason=texts(),
        sources=st.lists(sources(), max_size=2),
    )


def retractions(targets: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Retracted]:
    return st.builds(
        Retracted,
        id=_ids(),
        target=event_ids() if targets is None else targets,
        reason=texts(),
        sources=st.lists(sources(), max_size=2),
    )


def same_as_links(targets: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[SameAs]:
    targets = event_ids() if targets is None else targets
    pairs = st.lists(targets, min_size=2, max_size=2, unique=True)
    return pairs.flatmap(
        lambda p: st.builds(
            SameAs,
            id=_ids(),
            target=st.just(p[0]),
            other=st.just(p[1]),
            reason=st.just("") | texts(),
        )
    )


EVENT_STRATEGIES: dict[type[Event], Callable[[], st.SearchStrategy[Any]]] = {
    EntityDefined: entities_defined,
    **FACT_STRATEGIES,
    StatusChanged: status_changes,
    Corrected: corrections,
    Retracted: retractions,
    SameAs: same_as_links,
}


def events() -> st.SearchStrategy[Event]:
    """Any built-in event, on its own (references to other events are not meant to resolve)."""
    return st.one_of([make() for make in EVENT_STRATEGIES.values()])


# amendments drawn with a stand-in target, set afterwards: cheaper than a strategy per target
_AMENDMENT_KINDS = ("status", "correct", "retract", "same")


@functools.cache
def _amendments() -> dict[str, st.SearchStrategy[Any]]:
    target = st.just("stand-in")
    title_changes = st.fixed_dictionaries({"title": texts()}, optional={"summary": texts()})
    return {
        "status": status_changes(target),
        "correct": corrections(target, title_changes),
        "retract": retractions(target),
    }


@st.composite
def histories(draw: st.DrawFn, max_batches: int = 5, max_batch_size: int = 6) -> list[list[Event]]:
    """Batches that an empty log accepts in order: each with unique ids, naming earlier events.

    The first batch defines two to four entities; later events are facts about them and
    amendments (status changes, corrections, retractions, same-as links) of earlier facts, in
    an earlier batch or earlier in the same one. Same-as links never close a cycle.
    """
    names = draw(st.lists(entity_ids(), min_size=2, max_size=4, unique=True))
    defined = [draw(entities_defined(st.just(name))) for name in names]
    batches: list[list[Event]] = [[attrs.evolve(e, id=f"entity:{e.entity}") for e in defined]]
    any_fact = facts(st.sampled_from(names), st.none())
    kinds = st.sampled_from(("fact",) * 4 + _AMENDMENT_KINDS)
    facts_so_far: list[str] = []
    group: dict[str, str] = {}  # union-find over same-as links, to never close a cycle
    for _ in range(draw(st.integers(1, max_batches))):
        batch: list[Event] = []
        for _ in range(draw(st.integers(1, max_batch_size))):
            event_id = f"e{sum(map(len, batches)) + len(batch)}-{draw(_ID_SUFFIXES)}"
            event = _amendment(draw, draw(kinds), event_id, facts_so_far, group)
            if event is None:
                event = attrs.evolve(draw(any_fact), id=event_id)
                facts_so_far.append(event_id)
                group[event_id] = event_id
            batch.append(event)
        batches.append(batch)
    return batches


_ID_SUFFIXES = st.from_regex(r"[A-Za-z0-9._:-]{0,12}", fullmatch=True)


def _amendment(
    draw: st.DrawFn, kind: str, event_id: str, facts_so_far: list[str], group: dict[str, str]
) -> Event | None:
    if not facts_so_far or kind == "fact":
        return None
    target = draw(st.sampled_from(facts_so_far))
    if kind != "same":
        return attrs.evolve(draw(_amendments()[kind]), id=event_id, target=target)
    others = [f for f in facts_so_far if _root(group, f) != _root(group, target)]
    if not others:
        return None
    other = draw(st.sampled_from(others))
    group[_root(group, other)] = _root(group, target)
    return SameAs(id=event_id, target=target, other=other, reason="one event, two reports")


def _root(group: dict[str, str], event_id: str) -> str:
    while group[event_id] != event_id:
        event_id = group[event_id]
    return event_id


# --- Timelines --------------------------------------------------------------------------------
# Histories for the timeline properties, richer than ``histories``: amendments also name
# amendments (a retraction of a retraction, of a correction, of a same-as link; a correction of
# a status change), a correction may change any of several fields, and same-as links may close a
# cycle. Not every batch is one a log accepts: the tests append the batches in order and keep the
# ones the log takes (``tests/test_timeline.py``: ``record``), exactly as a caller would see it.

TIMELINE_ENTITIES = ("cpusa", "cpv", "lprp", "la", "vn")
TIMELINE_EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

_TIMELINE_KINDS = ("fact",) * 4 + ("status", "correct", "correct", "retract", "retract", "same")


@functools.cache
def _fact_changes() -> st.SearchStrategy[dict[str, Any]]:
    """What a correction of a fact may change; some fit only some types (``items``)."""
    return st.one_of(
        st.fixed_dictionaries({"title": texts()}),
        st.fixed_dictionaries({"summary": texts(200)}),
        st.fixed_dictionaries({"when": _dates()}),
        st.fixed_dictionaries({"status": st.sampled_from(STATUSES)}),
        st.fixed_dictionaries({"place": st.none() | texts()}),
        st.fixed_dictionaries({"title": texts(), "when": _dates()}),
        st.fixed_dictionaries({"items": st.none() | texts()}),
        st.fixed_dictionaries({"amount": st.none(), "currency": st.none()}),
    )


@functools.cache
def _amendment_changes() -> st.SearchStrategy[dict[str, Any]]:
    """What a correction of an amendment may change (a status change's status or date)."""
    return st.one_of(
        st.fixed_dictionaries({"reason": texts()}),
        st.fixed_dictionaries({"status": st.sampled_from(STATUSES)}),
        st.fixed_dictionaries({"when": st.none() | _dates()}),
    )


@st.composite
def timeline_histories(
    draw: st.DrawFn, max_batches: int = 6, max_batch_size: int = 3
) -> list[list[Event]]:
    """Batches of facts about :data:`TIMELINE_ENTITIES` and amendments naming earlier events.

    The first batch defines the entities. Ids are ``e0``, ``e1`` … in the order drawn.
    """
    entities = [
        attrs.evolve(draw(entities_defined(st.just(name))), id=f"entity:{name}")
        for name in TIMELINE_ENTITIES
    ]
    batches: list[list[Event]] = [list(entities)]
    any_fact = facts(st.sampled_from(TIMELINE_ENTITIES), st.none())
    kinds: dict[str, list[str]] = {"fact": [], "status": [], "other": []}
    count = 0
    for _ in range(draw(st.integers(1, max_batches))):
        batch: list[Event] = []
        for _ in range(draw(st.integers(1, max_batch_size))):
            event_id = f"e{count}"
            count += 1
            event = _timeline_amendment(draw, draw(st.sampled_from(_TIMELINE_KINDS)), kinds)
            if event is None:
                event, kind = draw(any_fact), "fact"
            else:
                kind = "status" if isinstance(event, StatusChanged) else "other"
            batch.append(attrs.evolve(event, id=event_id))
            kinds[kind].append(event_id)
        batches.append(batch)
    return batches


def _timeline_amendment(draw: st.DrawFn, kind: str, kinds: dict[str, list[str]]) -> Event | None:
    known = kinds["fact"]
    if not known or kind == "fact":
        return None
    stand_in = st.just("stand-in")
    if kind == "status":
        return attrs.evolve(draw(status_changes(stand_in)), target=draw(st.sampled_from(known)))
    if kind == "same":
        if len(known) < 2:
            return None
        pair = draw(st.lists(st.sampled_from(known), min_size=2, max_size=2, unique=True))
        return SameAs(target=pair[0], other=pair[1], reason="one event, two reports")
    everything = known + kinds["status"] + kinds["other"]
    target = draw(st.sampled_from(everything))
    if kind == "retract":
        return attrs.evolve(draw(retractions(stand_in)), target=target)
    changes = _fact_changes() if target in known else _amendment_changes()
    return attrs.evolve(draw(corrections(stand_in, changes)), target=target)


@st.composite
def timed_histories(
    draw: st.DrawFn, max_batches: int = 6, max_batch_size: int = 3
) -> list[tuple[datetime.datetime, list[Event]]]:
    """:func:`timeline_histories` with the time the clock shows at each append.

    Times never go back and sometimes stand still (several batches recorded at one moment).
    """
    batches = draw(timeline_histories(max_batches, max_batch_size))
    steps = draw(st.lists(st.integers(0, 3), min_size=len(batches), max_size=len(batches)))
    moments, now = [], TIMELINE_EPOCH
    for step in steps:
        now += datetime.timedelta(seconds=step)
        moments.append(now)
    return list(zip(moments, batches, strict=True))


@st.composite
def merge_histories(draw: st.DrawFn, max_size: int = 40) -> list[Event]:
    """Small facts, same-as links and retractions (of facts, links and retractions), one event
    each, ids ``m0``, ``m1`` …: what changes how reports are merged, drawn often enough to find
    the rare orders. Some links close a cycle; a log refuses those."""
    events: list[Event] = []
    facts_so_far: list[str] = []
    kinds = st.sampled_from(("fact", "fact", "same", "same", "retract"))
    for n in range(draw(st.integers(1, max_size))):
        kind, event_id = draw(kinds), f"m{n}"
        if kind == "same" and len(facts_so_far) >= 2:
            pair = st.lists(st.sampled_from(facts_so_far), min_size=2, max_size=2, unique=True)
            a, b = draw(pair)
            events.append(SameAs(id=event_id, target=a, other=b))
        elif kind == "retract" and events:
            target = draw(st.sampled_from([e.id for e in events if e.id is not None]))
            events.append(Retracted(id=event_id, target=target, reason="r"))
        else:
            when = draw(st.sampled_from(["2020", "2021-06", "2021-06-01", "2020/2022"]))
            participants = [Participant(entity=e) for e in TIMELINE_ENTITIES[: 2 + n % 3]]
            sources = [Source(title=f"Report {n}", publisher="P", published="2024")]
            events.append(
                Meeting(id=event_id, when=when, title=event_id, sources=sources,
                        participants=participants)
            )  # fmt: skip
            facts_so_far.append(event_id)
    return events
