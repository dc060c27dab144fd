"""A synthetic record: realistic events, deterministic from a seed, written fast.

The events are built through solidline's own classes (so every validator runs) and encoded by
its codec; the lines are then chained and written straight into segment files, exactly as
:meth:`JsonlLog.append` would write them for the same batches and clock (``tests/test_benchmarks``
checks that byte for byte). Going through the log for a million events would spend most of the
time in the append checks this generator already satisfies by construction.

What a record looks like (proportions of the events after the entity definitions)::

    meeting 25 %, statement 21 %, visit 11 %, donation 7 %, congress 4 %, agreement 4 %,
    relations established 2 %, period 3 %, duplicate reports (with a same-as link) 2.5 %,
    status changes 5 %, corrections 5 %, retractions 1.5 %

Dates mix precisions (days, months, years, seasons, decades, unknown days, qualifiers ~ ? %,
intervals); a few hundred entities form a few thousand relationships with a long tail; a line is
about 300-500 bytes.

Command line: ``python -m benchmarks.generate DIR --events 1000000 --seed 1``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import itertools
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from solidline import (
    AgreementSigned,
    Congress,
    Corrected,
    Donation,
    EntityDefined,
    Event,
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
from solidline.codec import data_bytes, encode_line, format_timestamp

__all__ = ["Record", "cached_log", "events", "generate", "more_events", "write_log"]

GENESIS = "0" * 64
SEGMENT_BYTES = 64 << 20

_SYLLABLES = ("ka", "lo", "ve", "ma", "ri", "sun", "tor", "bel", "an", "do", "mir", "za", "nu",
              "pel", "os", "gra", "ti", "var", "en", "lu", "sca", "hor", "bi", "qua")
_FIRST = ("Anna", "Bao", "Carlos", "Dmitri", "Elena", "Fidel", "Gao", "Hana", "Ivan", "Jorge",
          "Kim", "Lena", "Mai", "Nguyen", "Olga", "Pablo", "Quang", "Rosa", "Sara", "Thong",
          "Usha", "Vera", "Wei", "Xuan", "Yusuf", "Zora")
_LAST = ("Alvarez", "Bui", "Chen", "Diaz", "Evans", "Fonseca", "Garcia", "Ho", "Ivanova", "Jang",
         "Khan", "Le", "Morales", "Nakamura", "Ortega", "Pham", "Quispe", "Ramos", "Silva",
         "Tran", "Ueda", "Vo", "Wong", "Yilmaz", "Zhou")
_ROLES = ("General Secretary", "Chair", "Vice Chair", "International Secretary", "Ambassador",
          "Member of the Central Committee", "Foreign Minister", "President", "Head of delegation",
          "Editor-in-chief", "Secretary")
_PLACES = ("Hanoi", "Havana", "Vientiane", "New York", "Chicago", "Beijing", "Caracas", "Paris",
           "Athens", "Lisbon", "Pyongyang", "Managua", "Johannesburg", "Kolkata", "Berlin",
           "Moscow", "Mexico City", "São Paulo", "Istanbul", "Brussels", "Geneva", "Tokyo")
_TOPICS = ("peace", "solidarity", "the blockade", "workers' rights", "reconstruction",
           "trade union cooperation", "youth exchange", "the anniversary", "climate", "debt relief",
           "agent orange", "health care", "education", "the elections", "nuclear disarmament")
_VERBS = ("discussed", "exchanged views on", "reaffirmed their support for", "agreed to deepen",
          "reviewed", "called for", "signed a plan on", "reported on")
_STANCES = ("solidarity", "congratulation", "condolence", "greeting", "condemnation", "support")
_ITEMS = ("medical supplies", "masks", "rice", "books", "school supplies", "computers",
          "a printing press", "vaccines")
_RELATIONS = ("diplomatic", "party-to-party", "friendship")
_AGREEMENTS = ("Memorandum of Understanding on {}", "Cooperation plan on {}",
               "Joint declaration on {}", "Agreement on {}")
_KINDS = ("party", "state", "organisation", "media", "person")
_CURRENCIES = ("USD", "EUR", "VND", "CNY", "CUP")


def _word(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(parts))


def _sentence(rng: random.Random, a: str, b: str, words: int) -> str:
    text = f"{a} and {b} {rng.choice(_VERBS)} {rng.choice(_TOPICS)}"
    while len(text) < words * 7:
        text += f", {rng.choice(_VERBS)} {rng.choice(_TOPICS)}"
    return text + "."


class Record:
    """Draws the events of one synthetic record; ``next_batch`` gives them batch by batch.

    Args:
        seed: the same seed gives the same record.
        entities: how many entities (states, parties, organisations, media, people).
        relationships: how many pairs of entities events happen between.
    """

    def __init__(self, seed: int = 1, *, entities: int = 500, relationships: int = 4000,
                 definitions: list[EntityDefined] | None = None) -> None:
        self.rng = random.Random(seed)
        self.count = 0
        self.definitions = definitions if definitions is not None else self._entities(entities)
        self.ids = [d.entity for d in self.definitions]
        self.names = {d.entity: d.short_name or d.name for d in self.definitions}
        self.media = [d for d in self.definitions if d.kind == "media"] or self.definitions[:1]
        self.pairs = self._pairs(relationships)
        self.partners: dict[str, list[str]] = {}
        for a, b in self.pairs:
            self.partners.setdefault(a, []).append(b)
            self.partners.setdefault(b, []).append(a)
        self.pair_weights = list(itertools.accumulate(
            1.0 / (rank + 1) ** 0.8 for rank in range(len(self.pairs))))
        self.facts: list[Event] = []  # recent facts, amended by later events
        self.scheduled: list[Event] = []
        self.corrections: list[str] = []
        self.fact_count = 0

    # -- entities ----------------------------------------------------------------------------------

    def _entities(self, count: int) -> list[EntityDefined]:
        rng, found, seen = self.rng, [], set()
        while len(found) < count:
            root = _word(rng, rng.choice((2, 2, 3)))
            kind = _KINDS[min(int(rng.random() ** 1.6 * 5), 4)]
            prefix = {"party": "cp-", "state": "", "organisation": "union-", "media": "news-",
                      "person": "p-"}[kind]
            entity = prefix + root
            if entity in seen:
                continue
            seen.add(entity)
            country = root.capitalize()
            name = {"party": f"Communist Party of {country}", "state": f"Republic of {country}",
                    "organisation": f"{country} Federation of Trade Unions",
                    "media": f"{country} News Agency",
                    "person": f"{rng.choice(_FIRST)} {country}"}[kind]
            initials = "".join(w[0] for w in name.split() if w[0].isupper())
            short = initials if kind != "person" else None
            aliases = (f"{name} ({short})",) if rng.random() < 0.3 else ()
            found.append(EntityDefined(
                id=f"entity:{entity}", entity=entity, kind=kind, name=name, short_name=short,
                aliases=aliases, country=root[:2].upper() if kind != "organisation" else None,
            ))
        return found

    def _pairs(self, count: int) -> list[tuple[str, str]]:
        rng, ids = self.rng, [d.entity for d in self.definitions]
        count = min(count, len(ids) * (len(ids) - 1) // 2)
        pairs: dict[tuple[str, str], None] = {}
        hubs = ids[: max(2, len(ids) // 10)]  # a few entities take part in most relationships
        while len(pairs) < count:
            a = rng.choice(hubs) if rng.random() < 0.5 else rng.choice(ids)
            b = rng.choice(ids)
            if a != b:
                pairs[(a, b) if a < b else (b, a)] = None
        return list(pairs)

    # -- the parts of an event ---------------------------------------------------------------------

    def _date(self, *, interval: bool = False) -> str:
        rng = self.rng
        year = 2026 - int(rng.random() ** 2.5 * 80)
        month, day = rng.randint(1, 12), rng.randint(1, 28)
        if interval:
            end = min(year + rng.randint(1, 30), 2030)
            return rng.choice((f"{year}/{end}", f"{year}-{month:02d}/{end}",
                               f"{year}-{month:02d}-{day:02d}/..", f"{year}~/{end}"))
        roll = rng.random()
        if roll < 0.70:
            text = f"{year}-{month:02d}-{day:02d}"
        elif roll < 0.82:
            text = f"{year}-{month:02d}"
        elif roll < 0.90:
            text = f"{year}"
        elif roll < 0.93:
            text = f"{year}-{rng.randint(21, 24)}"
        elif roll < 0.95:
            text = f"{year}-{month:02d}-XX"
        elif roll < 0.96:
            text = f"{str(year)[:3]}X"
        elif roll < 0.98:
            text = f"{year}-{month:02d}/{year}-{min(month + 2, 12):02d}"
        else:
            text = f"{year}-XX"
        if rng.random() < 0.05 and "/" not in text and "X" not in text:
            text += rng.choice("~?%")
        return text

    def _sources(self, when: str) -> tuple[Source, ...]:
        rng, out = self.rng, []
        year = when[:4] if when[:4].isdigit() else "2020"
        for _ in range(1 if rng.random() < 0.9 else 2):
            publisher = rng.choice(self.media)
            out.append(Source(
                title=f"{rng.choice(_TOPICS).capitalize()} {rng.randint(1, 99)}",
                publisher=publisher.name,
                published=f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                url=f"https://{publisher.entity}.example/{rng.randint(1, 99999)}"
                if rng.random() < 0.7 else None,
                quote=(f"we {rng.choice(_VERBS)} {rng.choice(_TOPICS)}"
                       if rng.random() < 0.15 else None),
            ))
        return tuple(out)

    def _people(self, entities: tuple[str, ...]) -> tuple[Person, ...]:
        rng = self.rng
        if rng.random() < 0.85:
            return ()
        return tuple(
            Person(name=f"{rng.choice(_FIRST)} {rng.choice(_LAST)}", role=rng.choice(_ROLES),
                   entity=rng.choice(entities) if rng.random() < 0.8 else None)
            for _ in range(rng.randint(1, 2))
        )

    def _partner(self, entity: str) -> str:
        """An entity ``entity`` already has a relationship with (so that relationships stay few)."""
        return self.rng.choice(self.partners[entity])

    def _pair(self) -> tuple[str, str]:
        return self.rng.choices(self.pairs, cum_weights=self.pair_weights)[0]

    def _common(self, a: str, b: str, *, interval: bool = False) -> dict[str, Any]:
        rng = self.rng
        when = self._date(interval=interval)
        self.count += 1
        return {
            "id": f"{when[:4]}-{a}-{b}-{self.count:x}",
            "when": when,
            "title": f"{self.names[a]} and {self.names[b]}: {rng.choice(_TOPICS)}",
            "summary": _sentence(rng, self.names[a], self.names[b], rng.randint(0, 4))
            if rng.random() < 0.7 else "",
            "sources": self._sources(when),
            "place": rng.choice(_PLACES) if rng.random() < 0.5 else None,
            "people": self._people((a, b)),
            "status": "scheduled" if rng.random() < 0.05 else "occurred",
        }

    # -- events ------------------------------------------------------------------------------------

    def fact(self) -> Event:
        rng = self.rng
        a, b = self._pair()
        roll = rng.random()
        if roll < 0.33:
            event: Event = Meeting(**self._common(a, b), participants=(
                Participant(entity=a, role="host" if rng.random() < 0.5 else None),
                Participant(entity=b, role="guest" if rng.random() < 0.5 else None)))
        elif roll < 0.60:
            addressees = (b, self._partner(a)) if rng.random() < 0.15 else (b,)
            event = Statement(**self._common(a, b), speaker=a,
                              addressees=tuple(x for x in dict.fromkeys(addressees) if x != a),
                              stance=rng.choice(_STANCES))
        elif roll < 0.74:
            event = Visit(**self._common(a, b), visitor=a, host=b,
                          level=rng.choice(("state", "official", "working", "party", None)))
        elif roll < 0.82:
            money = rng.random() < 0.5
            event = Donation(**self._common(a, b), donor=a, recipient=b,
                             items=None if money and rng.random() < 0.5 else rng.choice(_ITEMS),
                             amount=f"{rng.randint(1, 500) * 100}.00" if money else None,
                             currency=rng.choice(_CURRENCIES) if money else None)
        elif roll < 0.87:
            others = (self._partner(a) for _ in range(rng.randint(0, 2)))
            delegations = tuple(dict.fromkeys(x for x in (b, *others) if x != a))
            event = Congress(**self._common(a, b), organisation=a, ordinal=rng.randint(1, 20),
                             delegations=delegations)
        elif roll < 0.93:
            event = AgreementSigned(**self._common(a, b), parties=(a, b),
                                    name=rng.choice(_AGREEMENTS).format(rng.choice(_TOPICS)))
        elif roll < 0.95:
            event = RelationsEstablished(**self._common(a, b), parties=(a, b),
                                         relation=rng.choice(_RELATIONS))
        else:
            event = Period(**self._common(a, b, interval=True), participants=(a, b))
        self._remember(event)
        return event

    def _remember(self, event: Event) -> None:
        self.fact_count += 1
        self.facts.append(event)
        if len(self.facts) > 4000:
            del self.facts[:1000]
        if getattr(event, "status", None) == "scheduled":
            self.scheduled.append(event)

    def _recent_fact(self) -> Event:
        return self.facts[-1 - min(int(self.rng.expovariate(1 / 200)), len(self.facts) - 1)]

    def amendment(self) -> list[Event]:
        """One amendment, or a duplicate report and the same-as link to it (two events)."""
        rng = self.rng
        self.count += 1
        roll, sources = rng.random(), ()
        if rng.random() < 0.5:
            sources = self._sources("2025")
        if roll < 0.18:
            original = self._recent_fact()
            duplicate = self._duplicate(original)
            link = SameAs(id=f"same-as-{self.count:x}", target=original.id, other=duplicate.id,
                          reason="Both reports describe one event.", sources=sources)
            return [duplicate, link]
        if roll < 0.52 and self.scheduled:
            target = self.scheduled.pop(rng.randrange(len(self.scheduled)))
            status = rng.choice(("occurred", "occurred", "postponed", "cancelled"))
            return [StatusChanged(id=f"status-{self.count:x}", target=target.id, status=status,
                                  when=self._date() if status == "postponed" else None,
                                  reason=f"Reported {status}.", sources=sources)]
        if roll < 0.89 or not self.corrections:
            target = self._recent_fact()
            field = rng.choice(("title", "summary", "place", "when"))
            value = (self._date() if field == "when"
                     else f"{rng.choice(_TOPICS).capitalize()} ({field})")
            correction = Corrected(id=f"correction-{self.count:x}", target=target.id,
                                   changes={field: value}, reason=f"The {field} was misreported.",
                                   sources=sources)
            self.corrections.append(correction.id or "")
            return [correction]
        target_id = (rng.choice(self.corrections) if rng.random() < 0.2
                     else self._recent_fact().id)
        return [Retracted(id=f"retraction-{self.count:x}", target=target_id or "",
                          reason="The source withdrew the report.", sources=sources)]

    def _duplicate(self, original: Event) -> Event:
        """Another report of the same event, from other sources (linked to it by same-as)."""
        return attrs.evolve(original, id=f"{original.id}-dup{self.count:x}"[-128:].lstrip("-"),
                            sources=self._sources(str(getattr(original, "when", "2020"))),
                            status="occurred")

    def next_batch(self) -> list[Event]:
        """The events of one append: mostly one, sometimes a few, now and then a hundred."""
        rng = self.rng
        roll = rng.random()
        size = 1 if roll < 0.6 else rng.randint(2, 10) if roll < 0.95 else rng.randint(11, 100)
        batch: list[Event] = []
        while len(batch) < size:
            if rng.random() < 0.145 and self.facts:
                batch.extend(self.amendment())
            else:
                batch.append(self.fact())
        return batch


def events(count: int, seed: int = 1, *, entities: int | None = None
           ) -> Iterator[tuple[list[Event], dt.datetime]]:
    """Batches of events with the time each is recorded at: ``count`` events in all.

    The entity definitions come first (in batches of 50); the last batch is cut to fit.
    """
    if entities is None:
        entities = max(12, min(500, count // 20))
    record = Record(seed, entities=entities, relationships=entities * 8)
    clock = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    left = count
    definitions = record.definitions[:count]
    for start in range(0, len(definitions), 50):
        clock += dt.timedelta(seconds=1, microseconds=record.rng.randrange(1_000_000))
        yield definitions[start : start + 50], clock
        left -= len(definitions[start : start + 50])
    while left > 0:
        batch = record.next_batch()[:left]
        clock += dt.timedelta(seconds=record.rng.randint(1, 3600),
                              microseconds=record.rng.randrange(1_000_000))
        yield batch, clock
        left -= len(batch)


def more_events(log: str | os.PathLike[str], count: int, seed: int = 99) -> list[Event]:
    """``count`` new events for an existing log: facts between the entities it defines, with
    ids of their own, and a few amendments of those facts."""
    from solidline import JsonlLog

    definitions: list[EntityDefined] = []
    with JsonlLog(log, readonly=True) as reader:
        for record in reader.read():
            if not isinstance(record.event, EntityDefined):
                break
            definitions.append(record.event)
    record = Record(seed, entities=len(definitions), relationships=len(definitions) * 8,
                    definitions=definitions)
    record.count = 10**9 + seed * 10**6  # ids no synthetic log of this size has used
    made: list[Event] = []
    while len(made) < count:
        made.extend(record.next_batch())
    return made[:count]


def write_log(path: str | os.PathLike[str], batches: Iterator[tuple[list[Event], dt.datetime]],
              *, segment_bytes: int = SEGMENT_BYTES) -> tuple[int, str]:
    """Write batches as a JSON Lines log in a new directory, as ``JsonlLog.append`` would.

    Returns:
        The seq and digest of the last line.
    """
    directory = Path(path)
    directory.mkdir(parents=True)
    (directory / ".lock").touch()
    seq, prev, size, out = 0, GENESIS, 0, None
    try:
        for batch, moment in batches:
            stamp = format_timestamp(moment)
            lines = []
            for n, event in enumerate(batch):
                line = encode_line(seq=seq + n + 1, event_id=event.id or "", type_name=event.type,
                                   version=event.version, recorded_at=stamp, prev=prev,
                                   more=len(batch) - n - 1, data=data_bytes(event))
                prev = hashlib.sha256(line).hexdigest()
                lines.append(line)
            data = b"".join(lines)
            if out is None or (size and size + len(data) > segment_bytes):
                if out is not None:
                    out.close()
                out = (directory / f"{seq + 1:020d}.jsonl").open("wb")
                size = 0
            out.write(data)
            size += len(data)
            seq += len(batch)
    finally:
        if out is not None:
            out.close()
    return seq, prev


def generate(path: str | os.PathLike[str], count: int, seed: int = 1, *,
             segment_bytes: int = SEGMENT_BYTES) -> tuple[int, str]:
    """A synthetic log of ``count`` events at ``path`` (a new directory)."""
    return write_log(path, events(count, seed), segment_bytes=segment_bytes)


def cached_log(count: int, seed: int = 1, root: str | os.PathLike[str] | None = None) -> Path:
    """The synthetic log of ``count`` events, generated once into the folder ``root``
    (default ``$TMPDIR/solidline-bench``) and kept there.

    A log is only reused when a marker says it was written completely.
    """
    base = Path(root) if root else Path(os.environ.get("TMPDIR", "/tmp")) / "solidline-bench"
    path = base / f"log-{count}-seed{seed}"
    marker = path / ".complete"
    if not marker.exists():
        if path.exists():
            for child in path.iterdir():
                child.unlink()
            path.rmdir()
        base.mkdir(parents=True, exist_ok=True)
        generate(path, count, seed)
        marker.touch()
    if not (path / ".index").exists():
        # a log written by appends has the id index its writers save beside the segments
        from solidline import JsonlLog

        with JsonlLog(path) as log:
            log.head  # noqa: B018 (a writer catching up saves the index)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.generate", description=__doc__)
    parser.add_argument("path", help="a new directory for the log")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    seq, _ = generate(args.path, args.events, args.seed)
    took = time.perf_counter() - began
    size = sum(p.stat().st_size for p in Path(args.path).glob("*.jsonl"))
    print(f"{seq} events, {size / seq:.0f} bytes a line, {size / 1e6:.1f} MB, "
          f"{took:.1f} s ({seq / took:,.0f} events/s)", file=sys.stderr)


if __name__ == "__main__":
    main()
