"""Shared test settings and fixtures.

Hypothesis profiles: ``ci`` (fast, 50 examples), ``dev`` (the default 100) and ``thorough``
(2000). ``HYPOTHESIS_PROFILE`` picks one; without it, ``ci`` when ``CI`` is set, else ``dev``.
``thorough`` also raises the rounds of the crash tests (see ``SOLIDLINE_CRASH_ROUNDS`` in
``test_log_jsonl.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from solidline.model import EntityDefined, Meeting, Participant, Source

# the contract's asserts live outside test modules: let pytest explain them as well
pytest.register_assert_rewrite("log_contract")

settings.register_profile(
    "ci", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


class FakeClock:
    """A clock the test sets by hand; it may go backwards, as real clocks sometimes do."""

    def __init__(self, start: datetime = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)) -> None:
        self.start = self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def source(**overrides: Any) -> Source:
    fields: dict[str, Any] = {
        "title": "To our comrades in Vietnam: Solidarity!",
        "publisher": "CPUSA International Department",
        "published": "2021-01-29",
        "url": "https://cpusa.org/article/to-our-comrades-in-vietnam-solidarity/",
    }
    return Source(**(fields | overrides))


def entities(*ids: str) -> list[EntityDefined]:
    return [EntityDefined(entity=e, kind="party", name=f"Party {e.upper()}") for e in ids]


def meeting(event_id: str | None, *entity_ids: str, **overrides: Any) -> Meeting:
    fields: dict[str, Any] = {
        "id": event_id,
        "when": "2024-09-22",
        "title": f"Meeting {event_id}",
        "sources": [source()],
        "participants": [Participant(entity=e) for e in entity_ids or ("cpusa",)],
    }
    return Meeting(**(fields | overrides))


@pytest.fixture
def make_source() -> Callable[..., Source]:
    """``make_source(**fields)``: a valid source, with the given fields replaced."""
    return source


@pytest.fixture
def make_entities() -> Callable[..., list[EntityDefined]]:
    """``make_entities("cpusa", "cpv")``: an ``entity.defined`` event (a party) for each id."""
    return entities


@pytest.fixture
def make_meeting() -> Callable[..., Meeting]:
    """``make_meeting("m1", "cpusa", "cpv", **fields)``: a valid meeting of those entities."""
    return meeting
