"""The real record in ``events/``: it verifies, it is the drafts in ``records/``, every fact quotes
its seed article word for word, and three relationships read as the articles tell them.

The five seed articles are copied into ``tests/data/seeds/`` (they are the public sources the
record cites), so that these tests run on a clone of the repository alone.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from solidline import EntityDefined, Fact, JsonlLog, Source, Statement, event_from_draft
from solidline.codec import event_data
from solidline.timeline import Projection, timeline

ROOT = Path(__file__).parent.parent
SEEDS = Path(__file__).parent / "data" / "seeds"
BYLINE = re.compile(r"^BY:(?P<publisher>[^|]+)\| (?P<date>\w+ \d{1,2}, \d{4})$", re.MULTILINE)


@pytest.fixture(scope="module")
def log() -> Iterator[JsonlLog]:
    with JsonlLog(ROOT / "events", readonly=True) as opened:
        yield opened


@pytest.fixture(scope="module")
def articles() -> dict[str, str]:
    found = {path.name: path.read_text(encoding="utf-8") for path in sorted(SEEDS.glob("*.txt"))}
    assert len(found) == 5
    return found


@pytest.fixture(scope="module")
def projection(log: JsonlLog) -> Projection:
    return Projection.from_log(log)


def test_the_record_verifies(log: JsonlLog) -> None:
    report = log.verify()
    assert report.decoded
    assert report.lines == report.head.seq == 39


def test_the_record_is_the_drafts_in_records(log: JsonlLog) -> None:
    lines = (ROOT / "records" / "seeds.jsonl").read_bytes().splitlines()
    drafts = [event_from_draft(orjson.loads(line)) for line in lines]
    recorded = [r.event for r in log.read()]
    assert [e.id for e in recorded] == [d.id for d in drafts]
    for draft, event in zip(drafts, recorded, strict=True):
        assert (event.type, event_data(event)) == (draft.type, event_data(draft))


def test_the_record_holds_at_least_25_facts(log: JsonlLog) -> None:
    facts = [r.event for r in log.read() if isinstance(r.event, Fact)]
    assert len(facts) >= 25


def _article_of(source: Source, articles: dict[str, str]) -> str | None:
    """The name of the seed article that holds the source's quote and title, if any."""
    for name, text in articles.items():
        if source.quote and source.quote in text and source.title in text:
            return name
    return None


def test_every_fact_quotes_a_seed_article_verbatim(log: JsonlLog, articles: dict[str, str]) -> None:
    for record in log.read():
        event = record.event
        if isinstance(event, Fact):
            quoted = [s for s in event.sources if _article_of(s, articles)]
            assert quoted, f"{event.id}: no source quotes a seed article word for word"


def test_every_quote_in_the_record_is_verbatim_from_the_article_it_names(
    log: JsonlLog, articles: dict[str, str]
) -> None:
    for record in log.read():
        event = record.event
        for source in getattr(event, "sources", ()):
            if source.quote is not None:
                assert _article_of(source, articles), (event.id, source.quote)
        if isinstance(event, Statement) and event.quote is not None:
            assert any(event.quote in text for text in articles.values()), event.id


def test_sources_name_the_publisher_and_date_of_their_article(
    log: JsonlLog, articles: dict[str, str]
) -> None:
    for record in log.read():
        for source in getattr(record.event, "sources", ()):
            text = articles[_article_of(source, articles) or ""]
            assert source.publisher in text
            byline = BYLINE.search(text)
            if byline is None:  # the BTA compilation carries no date: the record infers one
                assert source.published.uncertain, record.id
                continue
            date = dt.datetime.strptime(byline["date"], "%B %d, %Y").date()
            assert (str(source.published), source.publisher) == (
                date.isoformat(),
                byline["publisher"].strip(),
            )


def test_every_entity_a_fact_names_is_defined(log: JsonlLog, projection: Projection) -> None:
    defined = projection.entities()
    assert all(isinstance(d, EntityDefined) for d in defined.values())
    for record in log.read():
        assert set(record.event.entities()) <= set(defined), record.id


def _read(tl: object) -> list[tuple[str, str, str]]:
    return [(e.when.display(), e.title, e.status) for e in tl]  # type: ignore[attr-defined]


def test_the_cpusa_cpv_timeline(projection: Projection) -> None:
    tl = projection.timeline(relationship="cpv~cpusa")
    assert tl.title == "CPUSA – CPV"
    assert _read(tl) == [
        # 001 (29 January 2021) tells of the masks in its review of 2020; 002 reports them too
        ("2020 (uncertain)", "CPV donates thousands of masks to CPUSA", "occurred"),
        ("29 January 2021", "CPUSA message of solidarity to the Communist Party of Vietnam",
         "occurred"),
        # 002 (8 October 2024): "On September 22nd …"
        ("22 September 2024", "CPUSA delegation meets CPV General Secretary To Lam", "occurred"),
        ("22 September 2024",
         "CPUSA congratulates CPV on the anniversary of Vietnam's unification", "occurred"),
        ("22 September 2024", "CPUSA thanks CPV for hosting the Hello Comrade Project",
         "occurred"),
        ("22 September 2024", "To Lam thanks CPUSA for decades of support", "occurred"),
        # "Following the meeting with To Lam": the same day is assumed
        ("22 September 2024 (uncertain)",
         "CPUSA and CPV leaders gather at the Henry Winston Unity Hall", "occurred"),
    ]  # fmt: skip


def test_the_two_reports_of_the_masks_are_one_entry(projection: Projection) -> None:
    (masks,) = [e for e in projection.timeline(relationship="cpusa~cpv") if "masks" in e.title]
    assert masks.ids == (
        "2020-cpv-masks-to-cpusa-report-2021-01-29",
        "2020-cpv-masks-to-cpusa-report-2024-10-08",
    )
    assert [str(s.published) for s in masks.sources] == ["2021-01-29", "2024-10-08"]
    assert [r.id for r in masks.history][-1] == "same-as-2020-cpv-masks-to-cpusa"


def test_the_cpusa_lprp_timeline(projection: Projection) -> None:
    tl = projection.timeline(relationship=("lprp", "cpusa"))
    assert tl.title == "CPUSA – LPRP"
    assert _read(tl) == [
        ("20 January 2021", "CPUSA message of solidarity to the Lao People's Revolutionary Party",
         "occurred"),
    ]  # fmt: skip


def test_the_laos_vietnam_timeline(projection: Projection) -> None:
    tl = projection.timeline(relationship="vn~la")
    assert tl.title == "Laos – Vietnam"
    assert _read(tl) == [
        ("1945–1975", "Laos and Vietnam fight together in two resistance wars", "occurred"),
        ("5 September 1962", "Laos and Vietnam establish diplomatic relations", "occurred"),
        # 004 is undated: 59 years since 5 September 1962 puts it in 2021
        ("2021 (uncertain)", "Pathet Lao article on the Laos–Vietnam alliance in struggle",
         "occurred"),
        ("2021 (uncertain)",
         'Pasaxon front page: "Laos - Vietnam walk together on the path of development"',
         "occurred"),
        ("2021 (uncertain)",
         "Vietnam sends experts and medical supplies to Laos against COVID-19", "occurred"),
        ("June 2021 (uncertain)",
         "Lao Party General Secretary and State President Thongloun Sisoulith visits Vietnam",
         "occurred"),
    ]  # fmt: skip


def test_laos_and_vietnam_mark_64_years_of_relations_on_5_september_2026(
    projection: Projection,
) -> None:
    tl = projection.timeline(relationship="la~vn")
    (anniversary,) = tl.anniversaries(dt.date(2026, 9, 5), after=0)
    assert anniversary.entry.id == "1962-09-05-laos-vietnam-diplomatic-relations"
    assert (anniversary.date, anniversary.years) == (dt.date(2026, 9, 5), 64)
    (week,) = tl.anniversaries(dt.date(2026, 8, 31))
    assert week == anniversary
    assert tl.anniversaries(dt.date(2026, 9, 6)) == ()


def test_the_cpv_14th_congress_is_upcoming(projection: Projection) -> None:
    upcoming = projection.timeline(entity="cpv").upcoming(dt.date(2026, 11, 23))
    assert [(e.title, e.status) for e in upcoming] == [
        ("CPV 14th National Party Congress", "scheduled")
    ]


def test_before_it_was_recorded_the_record_was_empty(log: JsonlLog) -> None:
    first = next(log.read()).recorded_at
    assert timeline(log, as_of=first - dt.timedelta(microseconds=1)).entries == ()
    assert len(timeline(log, as_of=first).entries) == len(timeline(log).entries) == 24
