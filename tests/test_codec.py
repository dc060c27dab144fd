"""The codec: events to lines and drafts and back, the registry of types, upcasting, bad input."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import meeting
from solidline import (
    Event,
    InvalidEvent,
    JsonlLog,
    Meeting,
    UnknownEventType,
    event_from_draft,
    event_to_draft,
    event_type,
    registered_types,
)
from solidline.codec import (
    check_envelope,
    data_bytes,
    decode_event,
    encode_line,
    format_timestamp,
    generated_id,
    parse_timestamp,
)
from solidline.log import GENESIS
from solidline.model import BUILTIN_EVENT_TYPES
from strategies import EVENT_STRATEGIES

# -- round trips ---------------------------------------------------------------------------------


def test_every_built_in_type_is_registered_and_has_a_strategy() -> None:
    assert set(EVENT_STRATEGIES) == set(BUILTIN_EVENT_TYPES)
    assert {cls.type: cls for cls in BUILTIN_EVENT_TYPES}.items() <= registered_types().items()


# each of the 13 types gets a quarter of the profile's examples: 12 each in CI, 500 thorough
_per_type = settings(max_examples=max(10, settings().max_examples // 4))


@pytest.mark.parametrize("cls", BUILTIN_EVENT_TYPES, ids=lambda cls: cls.type)
@_per_type
@given(data=st.data())
def test_an_event_round_trips_through_its_line_and_its_draft(
    cls: type[Event], data: st.DataObject
) -> None:
    event = data.draw(EVENT_STRATEGIES[cls]())
    assert type(event) is cls
    event_id = event.id or generated_id(event, data_bytes(event))
    line = encode_line(
        seq=7, event_id=event_id, type_name=cls.type, version=cls.version,
        recorded_at="2026-11-23T14:00:00.000000Z", prev=GENESIS, more=0, data=data_bytes(event),
    )  # fmt: skip
    assert line.endswith(b"}\n")
    assert line.count(b"\n") == 1
    envelope = orjson.loads(line)
    assert check_envelope(envelope) is None
    back = decode_event(envelope["type"], envelope["v"], envelope["id"], envelope["data"],
                        where=None)  # fmt: skip
    assert back == attrs.evolve(event, id=event_id)
    assert data_bytes(back) == data_bytes(event)  # the same content, the same bytes

    draft = event_to_draft(event)
    assert draft["type"] == cls.type
    assert ("id" in draft) == (event.id is not None)
    text = orjson.dumps(draft)  # what a drafts file holds
    assert event_from_draft(orjson.loads(text), where="drafts.jsonl, line 1") == event


def test_data_leaves_out_defaults_so_new_optional_fields_change_no_line() -> None:
    data = orjson.loads(data_bytes(meeting("m1", "cpusa")))
    assert list(data) == ["when", "title", "sources", "participants"]
    assert data["participants"] == [{"entity": "cpusa"}]
    assert "id" not in data


def test_text_is_written_as_utf8_with_only_what_json_needs_escaped() -> None:
    event = meeting("m1", title='Gặp "<script>" ພັກ \\ 🚩', summary="a\nb")
    written = data_bytes(event)
    assert 'Gặp \\"<script>\\" ພັກ \\\\ 🚩'.encode() in written
    assert b"a\\nb" in written


def test_a_lone_surrogate_cannot_be_written() -> None:
    with pytest.raises(InvalidEvent, match="surrogates"):
        data_bytes(meeting("m1", title="Lao \ud800"))


def test_generated_ids_follow_the_content() -> None:
    first = meeting(None, "cpusa")
    first_id = generated_id(first, data_bytes(first))
    assert first_id == generated_id(meeting(None, "cpusa"), data_bytes(meeting(None, "cpusa")))
    other = meeting(None, "cpv")
    assert generated_id(other, data_bytes(other)) != first_id
    assert first_id.startswith("meeting-")
    assert len(first_id) == len("meeting-") + 20
    assert meeting(first_id).id == first_id  # a valid id


# -- drafts: bad input, with where and which field -------------------------------------------------

GOOD = event_to_draft(meeting("m1", "cpusa"))
SOURCE = GOOD["sources"][0]
CONGRESS = {"type": "congress", "when": "2021-01", "title": "13th National Congress",
            "sources": [SOURCE], "organisation": "cpv", "ordinal": 13}  # fmt: skip

BAD_DRAFTS: list[tuple[str, Any, type[InvalidEvent], str | None]] = [
    ("not an object", ["meeting"], InvalidEvent, None),
    ("no type", {k: v for k, v in GOOD.items() if k != "type"}, InvalidEvent, "type"),
    ("type not a string", GOOD | {"type": 5}, InvalidEvent, "type"),
    ("unknown type", GOOD | {"type": "rally"}, UnknownEventType, "type"),
    ("no source", GOOD | {"sources": []}, InvalidEvent, "sources"),
    ("sources missing", {k: v for k, v in GOOD.items() if k != "sources"}, InvalidEvent,
     "sources"),
    ("bad EDTF", GOOD | {"when": "2024-13-01"}, InvalidEvent, "when"),
    ("EDTF not a string", GOOD | {"when": 2024}, InvalidEvent, "when"),
    ("bad EDTF in a source", GOOD | {"sources": [SOURCE | {"published": "yesterday"}]},
     InvalidEvent, "sources[0].published"),
    ("int where str", GOOD | {"title": 5}, InvalidEvent, "title"),
    ("null where str", GOOD | {"title": None}, InvalidEvent, "title"),
    ("list where str", GOOD | {"place": ["Hà Nội"]}, InvalidEvent, "place"),
    ("str where int", CONGRESS | {"ordinal": "14"}, InvalidEvent, "ordinal"),
    ("bool where int", CONGRESS | {"ordinal": True}, InvalidEvent, "ordinal"),
    ("float where int", CONGRESS | {"ordinal": 13.0}, InvalidEvent, "ordinal"),
    ("ordinal below 1", CONGRESS | {"ordinal": 0}, InvalidEvent, "ordinal"),
    ("unknown extra field", GOOD | {"colour": "red"}, InvalidEvent, "colour"),
    ("unknown field in a source", GOOD | {"sources": [SOURCE | {"page": 4}]}, InvalidEvent,
     "sources[0].page"),
    ("bad URL in a source", GOOD | {"sources": [SOURCE | {"url": "cpusa.org"}]}, InvalidEvent,
     "sources[0].url"),
    ("bad entity", GOOD | {"participants": [{"entity": "cpusa"}, {"entity": "CPV"}]},
     InvalidEvent, "participants[1].entity"),
    ("participant not an object", GOOD | {"participants": ["cpusa"]}, InvalidEvent,
     "participants[0]"),
    ("id with a slash", GOOD | {"id": "2024/09/22"}, InvalidEvent, "id"),
    ("id with ..", GOOD | {"id": ".."}, InvalidEvent, "id"),
    ("id going up", GOOD | {"id": "../../etc/passwd"}, InvalidEvent, "id"),
    ("id with a space", GOOD | {"id": "cpusa meets cpv"}, InvalidEvent, "id"),
    ("id not a string", GOOD | {"id": 42}, InvalidEvent, "id"),
    ("blank title", GOOD | {"title": "  "}, InvalidEvent, "title"),
    ("status unknown", GOOD | {"status": "held"}, InvalidEvent, "status"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("line", "draft", "error", "field"),
    [(n, *case[1:]) for n, case in enumerate(BAD_DRAFTS, start=1)],
    ids=[case[0] for case in BAD_DRAFTS],
)
def test_a_bad_draft_names_its_place_and_field(
    line: int, draft: Any, error: type[InvalidEvent], field: str | None
) -> None:
    where = f"drafts.jsonl, line {line}"
    with pytest.raises(error) as caught:
        event_from_draft(draft, where=where)
    assert type(caught.value) is error
    assert caught.value.where == where
    assert caught.value.field == field
    assert str(caught.value).startswith(where)
    if field is not None:
        assert f"field {field!r}" in str(caught.value)


def test_a_good_draft_is_built() -> None:
    assert event_from_draft(GOOD, where="drafts.jsonl, line 1") == meeting("m1", "cpusa")


# -- the envelope and timestamps -------------------------------------------------------------------


def test_more_is_left_out_when_zero() -> None:
    common: dict[str, Any] = {
        "seq": 1, "event_id": "m1", "type_name": "meeting", "version": 1, "prev": GENESIS,
        "recorded_at": "2026-11-23T14:00:00.000000Z", "data": b"{}",
    }  # fmt: skip
    assert b'"more"' not in encode_line(**common, more=0)
    assert orjson.loads(encode_line(**common, more=2))["more"] == 2


@pytest.mark.parametrize(
    ("envelope", "bad"),
    [
        ([], "line"),
        ({"id": "m1"}, "seq"),
        ({"seq": True, "id": "m1"}, "seq"),
        ({"seq": 1, "id": 5}, "id"),
    ],
)
def test_check_envelope_names_the_first_bad_key(envelope: Any, bad: str) -> None:
    assert check_envelope(envelope) == bad


@given(st.datetimes(min_value=datetime(1000, 1, 1), timezones=st.just(UTC)))
def test_timestamps_are_fixed_width_and_round_trip(moment: datetime) -> None:
    text = format_timestamp(moment)
    assert len(text) == 27
    assert text.endswith("Z")
    assert parse_timestamp(text) == moment


@pytest.mark.parametrize("text", ["2026-11-23T14:00:00Z", "2026-11-23T14:00:00.000000+00:00", ""])
def test_a_timestamp_of_another_form_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a timestamp"):
        parse_timestamp(text)


# -- an application's own type, and upcasting ------------------------------------------------------


def _rally_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 had ``crowd`` as a string of digits; version 2 has ``attendance``, a number."""
    data = dict(data)
    data["attendance"] = int(data.pop("crowd"))
    return data


@event_type("testapp.rally", version=2, upcasters={1: _rally_v1_to_v2})
@attrs.frozen(kw_only=True)
class Rally(Event):
    city: str
    attendance: int


def _v1_line(seq: int, prev: str, event_id: str, data: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {"seq": seq, "id": event_id, "type": "testapp.rally", "v": 1,
         "recorded_at": "2020-05-01T09:00:00.000000Z", "prev": prev, "data": data}
    ) + b"\n"  # fmt: skip


def test_an_application_type_is_registered() -> None:
    assert registered_types()["testapp.rally"] is Rally
    assert (Rally.type, Rally.version) == ("testapp.rally", 2)
    rally = Rally(id="r1", city="Vientiane", attendance=5000)
    assert event_from_draft(event_to_draft(rally)) == rally


def test_an_old_line_is_upcast_on_read_and_the_file_is_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "events"
    path.mkdir()
    first = _v1_line(1, GENESIS, "r1", {"city": "Hà Nội", "crowd": "12000"})
    second = _v1_line(
        2, hashlib.sha256(first).hexdigest(), "r2", {"city": "Vientiane", "crowd": "800"}
    )
    segment = path / "00000000000000000001.jsonl"
    segment.write_bytes(first + second)

    reader = JsonlLog(path, readonly=True)
    assert [r.event for r in reader.read()] == [
        Rally(id="r1", city="Hà Nội", attendance=12000),
        Rally(id="r2", city="Vientiane", attendance=800),
    ]
    assert reader.verify().lines == 2
    assert reader.get("r2").event.attendance == 800  # type: ignore[union-attr, attr-defined]
    assert segment.read_bytes() == first + second

    with JsonlLog(path) as log:  # a writer: new lines are v2, old ones stay as they were
        [record] = log.append(Rally(id="r3", city="Luang Prabang", attendance=300))
        assert record.seq == 3
        # the same content again is a no-op, and a v1 line is not rewritten as v2
        assert log.append(Rally(id="r3", city="Luang Prabang", attendance=300)) == [record]
    stored = segment.read_bytes()
    assert stored.startswith(first + second)
    assert orjson.loads(stored.splitlines()[2])["v"] == 2


def test_a_version_newer_than_the_program_knows_is_refused() -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_event("testapp.rally", 3, "r1", {"city": "x", "attendance": 1}, where="line 9")
    assert caught.value.field == "v"
    assert "upgrade" in str(caught.value)


def test_registering_a_taken_name_or_without_upcasters_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @event_type("meeting")
        @attrs.frozen(kw_only=True)
        class Meeting2(Event):
            pass

    with pytest.raises(ValueError, match="needs upcasters"):

        @event_type("testapp.march", version=3, upcasters={1: _rally_v1_to_v2})
        @attrs.frozen(kw_only=True)
        class March(Event):
            pass

    with pytest.raises(ValueError, match="not a type name"):

        @event_type("Test App/Rally")
        @attrs.frozen(kw_only=True)
        class Bad(Event):
            pass

    with pytest.raises(TypeError, match="attrs class"):

        @event_type("testapp.plain")
        @attrs.frozen(kw_only=True)
        class Plain:  # not an Event
            pass

    assert registered_types()["meeting"] is Meeting
    assert "testapp.march" not in registered_types()


# -- a drafts file: bytes that are not JSON at all ------------------------------------------------

GOOD_LINE = orjson.dumps(GOOD) + b"\n"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type": "meeting", "title": \n',
        b"\xff\xfe" + GOOD_LINE,
        GOOD_LINE.replace(b"Meeting m1", b"Meeting\x00m1"),
        b"\x00" * 8 + b"\n",
    ],
    ids=["malformed JSON", "invalid UTF-8", "a NUL byte in a string", "NUL bytes"],
)
def test_a_drafts_line_that_is_not_json_names_its_place(raw: bytes, tmp_path: Path) -> None:
    from io import BytesIO

    from solidline.cli import read_drafts

    log = JsonlLog(tmp_path / "events")
    with pytest.raises(InvalidEvent) as caught:
        log.append(list(read_drafts(BytesIO(GOOD_LINE + b"\n" + raw), "drafts.jsonl")))
    assert caught.value.where == "drafts.jsonl, line 3"
    assert str(caught.value).startswith("drafts.jsonl, line 3: ")
    assert list((tmp_path / "events").glob("*.jsonl")) == []
    log.close()
