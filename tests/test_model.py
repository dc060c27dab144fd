"""The event model: ids, validators, what each type requires, and the entities an event names."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given

from conftest import meeting, source
from solidline import (
    AgreementSigned,
    Congress,
    Corrected,
    Donation,
    EDTFDate,
    EntityDefined,
    InvalidDate,
    InvalidEvent,
    Meeting,
    Participant,
    Period,
    Person,
    RelationsEstablished,
    Retracted,
    SameAs,
    Statement,
    StatusChanged,
    Visit,
)
from solidline.model import BUILTIN_EVENT_TYPES, Event, Fact
from strategies import events

FACT: dict[str, Any] = {"when": "2024-09-22", "title": "A title", "sources": [source()]}


def test_the_built_in_types_are_those_of_the_design() -> None:
    assert {cls.type: cls.version for cls in BUILTIN_EVENT_TYPES} == {
        "entity.defined": 1, "meeting": 1, "visit": 1, "congress": 1, "donation": 1,
        "statement": 1, "relations.established": 1, "agreement.signed": 1, "period": 1,
        "event.status_changed": 1, "event.corrected": 1, "event.retracted": 1,
        "event.same_as": 1,
    }  # fmt: skip


def test_events_are_frozen_keyword_only_values() -> None:
    first, second = meeting("m1", "cpusa"), meeting("m1", "cpusa")
    assert first == second
    assert hash(first) == hash(second)
    assert first != meeting("m1", "cpv")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        first.title = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Meeting("m1")  # type: ignore[misc]


def test_lists_become_tuples_and_dates_are_parsed() -> None:
    event = meeting("m1", "cpusa", "cpv")
    assert event.participants == (Participant(entity="cpusa"), Participant(entity="cpv"))
    assert isinstance(event.sources, tuple)
    assert isinstance(event.when, EDTFDate)
    assert str(event.when) == "2024-09-22"
    assert isinstance(event.sources[0].published, EDTFDate)


# -- ids -----------------------------------------------------------------------------------------

GOOD_IDS = ["m1", "2024-09-22-cpusa-to-lam", "entity:cpusa", "A.b_c:d-e", "a..b", "x" * 128]
BAD_IDS = ["", "-m1", ".", "..", "../etc", "a/b", "a b", "a\nb", "tô-lâm", "x" * 129, 5]


@pytest.mark.parametrize("event_id", GOOD_IDS)
def test_a_good_event_id(event_id: str) -> None:
    assert meeting(event_id).id == event_id


@pytest.mark.parametrize("event_id", BAD_IDS, ids=repr)
def test_a_bad_event_id_is_refused_naming_the_field(event_id: Any) -> None:
    with pytest.raises(InvalidEvent) as caught:
        meeting(event_id)
    assert caught.value.field == "id"
    assert "no '/', no spaces" in str(caught.value)


@pytest.mark.parametrize("target", ["a/b", "..", "a b"])
def test_amendments_check_the_ids_they_name(target: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        Retracted(target=target, reason="r")
    assert caught.value.field == "target"
    with pytest.raises(InvalidEvent) as caught:
        SameAs(target="m1", other=target)
    assert caught.value.field == "other"


@pytest.mark.parametrize("entity", ["cpusa", "lao-news-agency", "a", "vn2", "x" * 64])
def test_a_good_entity_id(entity: str) -> None:
    assert EntityDefined(entity=entity, kind="party", name="N").entities() == (entity,)


@pytest.mark.parametrize("entity", ["CPUSA", "-a", "a-", "a_b", "", "a b", "x" * 65, "đảng"])
def test_a_bad_entity_id_is_refused_wherever_it_is(entity: str) -> None:
    for build, field in [
        (lambda: EntityDefined(entity=entity, kind="party", name="N"), "entity"),
        (lambda: Participant(entity=entity), "entity"),
        (lambda: Person(name="Tô Lâm", entity=entity), "entity"),
        (lambda: Visit(**FACT, visitor="cpv", host=entity), "host"),
        (lambda: Statement(**FACT, speaker="cpv", about=[entity]), "about"),
        (lambda: Period(**FACT, participants=["cpv", entity]), "participants"),
    ]:
        with pytest.raises(InvalidEvent) as caught:
            build()
        assert caught.value.field == field


# -- text, sources, facts ------------------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_required_text_may_not_be_blank(blank: str) -> None:
    for build, field in [
        (lambda: meeting("m1", title=blank), "title"),
        (lambda: source(publisher=blank), "publisher"),
        (lambda: Person(name=blank), "name"),
        (lambda: EntityDefined(entity="a", kind="party", name=blank), "name"),
        (lambda: Retracted(target="m1", reason=blank), "reason"),
        (lambda: meeting("m1", place=blank), "place"),  # optional, but not blank when given
        (lambda: source(quote=blank), "quote"),
    ]:
        with pytest.raises(InvalidEvent) as caught:
            build()
        assert caught.value.field == field


def test_a_fact_needs_a_source() -> None:
    with pytest.raises(InvalidEvent) as caught:
        meeting("m1", sources=[])
    assert caught.value.field == "sources"
    assert EntityDefined(entity="a", kind="party", name="N").sources == ()  # entities need none


@pytest.mark.parametrize(
    "url", ["cpusa.org/article", "ftp://cpusa.org/", "https://", "https://cpusa.org/a b", "//x"]
)
def test_a_source_url_is_absolute_http(url: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        source(url=url)
    assert caught.value.field == "url"
    assert source(url="http://kpl.gov.la/En/Detail.aspx?id=1").url is not None
    assert source(url=None).url is None


def test_a_bad_date_is_an_invalid_date_naming_its_field() -> None:
    with pytest.raises(InvalidDate) as caught:
        meeting("m1", when="2024-13-01")
    assert isinstance(caught.value, InvalidEvent)
    assert caught.value.field == "when"
    with pytest.raises(InvalidDate) as caught:
        source(published="22 September 2024")
    assert isinstance(caught.value, InvalidEvent)
    assert caught.value.field == "published"


def test_summary_and_reason_must_be_strings() -> None:
    with pytest.raises(InvalidEvent) as caught:
        meeting("m1", summary=5)
    assert caught.value.field == "summary"


def test_tabs_and_line_breaks_are_text() -> None:
    assert meeting("m1", summary="one\ttwo\nthree\r\n").summary == "one\ttwo\nthree\r\n"


def test_status_and_kind_are_one_of_their_choices() -> None:
    assert meeting("m1", status="scheduled").status == "scheduled"
    with pytest.raises(InvalidEvent) as caught:
        meeting("m1", status="held")
    assert caught.value.field == "status"
    with pytest.raises(InvalidEvent) as caught:
        EntityDefined(entity="a", kind="union", name="N")  # type: ignore[arg-type]
    assert caught.value.field == "kind"
    with pytest.raises(InvalidEvent) as caught:
        Visit(**FACT, visitor="a", host="b", level="royal")  # type: ignore[arg-type]
    assert caught.value.field == "level"


# -- each type's own rules -------------------------------------------------------------------------


def test_a_meeting_needs_participants() -> None:
    with pytest.raises(InvalidEvent) as caught:
        Meeting(**FACT, participants=[])
    assert caught.value.field == "participants"


@pytest.mark.parametrize("ordinal", [0, -1, True, "14", 14.0])
def test_a_congress_ordinal_is_a_whole_number_from_1(ordinal: Any) -> None:
    with pytest.raises(InvalidEvent) as caught:
        Congress(**FACT, organisation="cpv", ordinal=ordinal)
    assert caught.value.field == "ordinal"
    assert Congress(**FACT, organisation="cpv", ordinal=14).ordinal == 14


@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        ({"items": "medical supplies"}, True),
        ({"amount": "2500.00", "currency": "USD"}, True),
        ({"items": "rice", "amount": "1e3", "currency": "VND"}, True),
        ({}, False),
        ({"amount": "2500.00"}, False),
        ({"items": "rice", "currency": "USD"}, False),
        ({"amount": "0", "currency": "USD"}, False),
        ({"amount": "-5", "currency": "USD"}, False),
        ({"amount": "NaN", "currency": "USD"}, False),
        ({"amount": "Infinity", "currency": "USD"}, False),
        ({"amount": "lots", "currency": "USD"}, False),
        ({"amount": 2500, "currency": "USD"}, False),
        ({"amount": "5", "currency": "usd"}, False),
        ({"amount": "5", "currency": "DOLLAR"}, False),
    ],
)
def test_a_donation_is_in_kind_or_money_with_a_currency(fields: dict[str, Any], ok: bool) -> None:
    def build() -> Donation:
        return Donation(**FACT, donor="cpusa", recipient="cpv", **fields)

    if ok:
        assert build().entities() == ("cpusa", "cpv")
    else:
        with pytest.raises(InvalidEvent) as caught:
            build()
        assert caught.value.field in ("amount", "currency")


def test_relations_are_between_exactly_two_different_entities() -> None:
    for parties in (["vn"], ["vn", "vn"], ["vn", "la", "kh"]):
        with pytest.raises(InvalidEvent) as caught:
            RelationsEstablished(**FACT, parties=parties)
        assert caught.value.field == "parties"
    assert RelationsEstablished(**FACT, parties=["vn", "la"]).entities() == ("vn", "la")


def test_an_agreement_has_two_or_more_different_parties() -> None:
    with pytest.raises(InvalidEvent):
        AgreementSigned(**FACT, parties=["vn", "vn"], name="Treaty")
    signed = AgreementSigned(**FACT, parties=["vn", "la", "kh", "la"], name="Treaty")
    assert signed.entities() == ("vn", "la", "kh")


def test_a_period_may_be_an_interval_or_a_single_date() -> None:
    fields = FACT | {"when": "1945/1975"}
    assert Period(**fields, participants=["vn", "la"]).when.is_interval
    assert not Period(**FACT, participants=["vn"]).when.is_interval
    with pytest.raises(InvalidEvent) as caught:
        Period(**fields, participants=[])
    assert caught.value.field == "participants"


def test_amendments() -> None:
    changed = StatusChanged(target="m1", status="postponed", when="2024-10")
    assert str(changed.when) == "2024-10"
    assert StatusChanged(target="m1", status="cancelled").when is None
    with pytest.raises(InvalidEvent):
        StatusChanged(target="m1", status="maybe")  # type: ignore[arg-type]
    for changes in ({}, {"id": "m2"}, {"type": "visit"}, ["title"]):
        with pytest.raises(InvalidEvent) as caught:
            Corrected(target="m1", changes=changes, reason="typo")  # type: ignore[arg-type]
        assert caught.value.field == "changes"
    with pytest.raises(InvalidEvent) as caught:
        Corrected(target="m1", changes={"title": "x"}, reason="")
    assert caught.value.field == "reason"
    with pytest.raises(InvalidEvent) as caught:
        SameAs(target="m1", other="m1")
    assert caught.value.field == "other"


# -- the entities an event names -------------------------------------------------------------------


def test_the_entities_of_each_type_in_order_each_once() -> None:
    assert meeting("m", "cpv", "cpusa", "cpv").entities() == ("cpv", "cpusa")
    assert Visit(**FACT, visitor="la", host="vn").entities() == ("la", "vn")
    assert Congress(**FACT, organisation="cpv", delegations=["lprp", "cpv", "pcc"]).entities() == (
        "cpv", "lprp", "pcc",
    )  # fmt: skip
    statement = Statement(**FACT, speaker="cpusa", addressees=["cpv"], about=["vn", "cpv"])
    assert statement.entities() == ("cpusa", "cpv", "vn")
    assert Period(**FACT, participants=["vn", "la", "vn"]).entities() == ("vn", "la")
    assert Retracted(target="m1", reason="wrong").entities() == ()


@given(events())
def test_an_event_names_valid_entities_each_once(event: Event) -> None:
    named = event.entities()
    assert len(named) == len(set(named))
    for entity in named:
        assert Participant(entity=entity).entity == entity  # a valid entity id
    if isinstance(event, Fact):
        assert event.sources
    assert attrs.evolve(event) == event  # validators accept what they built
