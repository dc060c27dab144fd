"""The benchmarks run (at a tiny size: no timing is asserted), and the fast paths they measure
give exactly what the plain paths give.

Speed work must not change results: the compiled structure functions must build what cattrs
builds (or fail with the same field path), ``verify --chain-only`` by blocks must find what the
line-by-line check finds, and the first catch-up by blocks must build the same index.
"""

from __future__ import annotations

import copy
import random
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

# benchmarks/ sits beside tests/, outside the installed package: the one place that imports it
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import Context, generate
from benchmarks.__main__ import main

import strategies
from conftest import source
from solidline import (
    EDTFDate,
    Event,
    InvalidEvent,
    JsonlLog,
    MemoryLog,
    Participant,
    Source,
    codec,
    event_type,
)
from solidline.codec import (
    _first_fault,
    converter,
    registered_types,
    structure_event,
)
from solidline.dates import parse_date
from solidline.log._base import _connected, _Index, _index_event
from solidline.model import Retracted, SameAs
from tampering import tamper, verified

SIZE = 600


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    root = tmp_path_factory.mktemp("bench")
    made = Context(events=SIZE, small=200, repeats=1, cache=root / "cache",
                   scratch=root / "scratch")
    made.scratch.mkdir()
    yield made
    made.cleanup()


@pytest.fixture(scope="module")
def log(context: Context) -> Path:
    return context.log(SIZE)


# -- the benchmarks run -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["replay", "verify", "append", "publish"])
def test_a_benchmark_runs_and_reports_figures(context: Context, name: str) -> None:
    module = __import__(f"benchmarks.{name}", fromlist=["run"])
    figures = module.run(context)
    assert figures
    for figure in figures:
        assert figure.value > 0
        assert figure.command.startswith("python -m")


def test_the_command_prints_a_table(context: Context, capsys: pytest.CaptureFixture[str],
                                    tmp_path: Path) -> None:
    markdown = tmp_path / "results.md"
    assert main(["--events", str(SIZE), "--small", "200", "--repeats", "1", "--only", "verify",
                 "--cache", str(context.cache), "--markdown", str(markdown)]) == 0
    printed = capsys.readouterr().out
    assert "verify --chain-only" in printed
    assert "lines/s" in printed
    assert "| figure |" in markdown.read_text()


# -- the generator ----------------------------------------------------------------------------


def test_the_generator_writes_what_the_log_itself_would(tmp_path: Path) -> None:
    direct = tmp_path / "direct"
    generate.write_log(direct, generate.events(SIZE, seed=3))
    batches = list(generate.events(SIZE, seed=3))
    times = iter([moment for _, moment in batches])
    with JsonlLog(tmp_path / "appended", durable=False, clock=lambda: next(times)) as log:
        for batch, _ in batches:
            log.append(batch)
    assert _bytes(direct) == _bytes(tmp_path / "appended")
    report = JsonlLog(direct, readonly=True).verify()
    assert report.lines == SIZE


def test_the_generator_is_deterministic(tmp_path: Path) -> None:
    generate.generate(tmp_path / "a", 300, seed=5)
    generate.generate(tmp_path / "b", 300, seed=5)
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")


def test_more_events_can_be_appended_to_a_generated_log(tmp_path: Path, log: Path) -> None:
    copy_ = tmp_path / "log"
    shutil.copytree(log, copy_)
    with JsonlLog(copy_) as writer:
        assert len(writer.append(generate.more_events(copy_, 50))) == 50
        assert writer.verify().lines == SIZE + 50


def _bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.glob("*.jsonl")))


# -- fast paths give what the plain paths give -------------------------------------------------


_ODD_VALUES: list[Any] = [
    None, 0, 1, True, 1.5, "", " ", "x", "cpv", "2024-13-01", "2024", "https://a.example/b",
    [], ["x"], [1], {}, {"a": 1}, [{"entity": "cpv"}], [{"entity": 1}],
    [{"entity": "cpv", "x": 1}], "occurred", "USD", "100.00", -1,
    # values of the right type that a validator refuses
    "CPV", "a b", "-cpv", "x" * 200, "http://", "ftp://a.example", "2024-02-30", "2023-02-29",
    ["cpv", "Bad Id"], ["cpv", "cpv"], [{"entity": "Bad"}], [{"name": " "}],
]


def _mutations(data: dict[str, Any], rng: random.Random) -> Iterator[dict[str, Any]]:
    """The data itself, then copies with one value replaced, removed or added somewhere."""
    yield data
    for _ in range(8):
        changed = copy.deepcopy(data)
        places = [changed]
        todo: list[Any] = [changed]
        while todo:
            value = todo.pop()
            children = value.values() if isinstance(value, dict) else value
            for child in children if isinstance(value, dict | list) else ():
                if isinstance(child, dict):
                    places.append(child)
                todo.append(child)
        place = rng.choice(places)
        keys = sorted(place)
        roll = rng.random()
        if roll < 0.4 and keys:
            place[rng.choice(keys)] = rng.choice(_ODD_VALUES)
        elif roll < 0.6 and keys:
            del place[rng.choice(keys)]
        else:
            place[rng.choice(["extra", "role", "url", "quote", "people", "note"])] = rng.choice(
                _ODD_VALUES
            )
        yield changed


def _by_cattrs(cls: type, data: dict[str, Any]) -> tuple[Any, ...]:
    try:
        return ("built", converter.structure(data, cls))
    except InvalidEvent as exc:
        return ("refused", exc.reason, exc.field or "")
    except Exception as exc:
        path, message = _first_fault(exc)
        return ("refused", message, path)


def _by_structure_event(cls: type, data: dict[str, Any]) -> tuple[Any, ...]:
    try:
        return ("built", structure_event(cls, data, where=None))
    except InvalidEvent as exc:
        return ("refused", exc.reason, exc.field or "")


def test_the_fast_structure_path_builds_what_cattrs_builds(log: Path) -> None:
    rng = random.Random(11)
    types = registered_types()
    lines = _bytes(log).splitlines()
    for line in rng.sample(lines, 150):
        envelope = orjson.loads(line)
        cls = types[envelope["type"]]
        for data in _mutations(envelope["data"] | {"id": envelope["id"]}, rng):
            expected = _by_cattrs(cls, copy.deepcopy(data))
            assert _by_structure_event(cls, copy.deepcopy(data)) == expected, data


def test_verifying_by_blocks_finds_what_the_line_by_line_check_finds(
    tmp_path: Path, log: Path
) -> None:
    rng = random.Random(7)
    original = _bytes(log).splitlines(keepends=True)
    for round_ in range(60):
        folder = tmp_path / f"log{round_}"
        folder.mkdir()
        (folder / "00000000000000000001.jsonl").write_bytes(b"".join(tamper(original, rng)))
        assert verified(folder) == verified(folder, line_by_line=True)


def test_verifying_by_blocks_works_over_segments_and_other_backends(tmp_path: Path) -> None:
    folder = tmp_path / "segments"
    generate.generate(folder, 1500, seed=4, segment_bytes=100_000)
    assert len(list(folder.glob("*.jsonl"))) > 3
    segmented = JsonlLog(folder, readonly=True)
    assert verified(segmented) == verified(folder, line_by_line=True)
    memory = MemoryLog()
    memory._lines = _bytes(folder).splitlines(keepends=True)
    assert verified(memory) == (1500, segmented.head)


def test_the_first_catch_up_by_blocks_builds_the_same_index(log: Path) -> None:
    by_blocks = JsonlLog(log, readonly=True)
    by_lines = JsonlLog(log, readonly=True)
    by_lines._index_blocks = lambda: None  # type: ignore[method-assign]
    assert by_blocks.head == by_lines.head
    assert by_blocks._index == by_lines._index


# Application classes with what the model's own classes do not have: a converter that takes the
# instance and the field, a factory default, a plain validator, __attrs_post_init__, no slots.


def _trimmed(value: Any, instance: Any, field: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _no_zero(instance: Any, attribute: Any, value: Any) -> None:
    if value == 0:
        raise InvalidEvent("may not be zero", field=attribute.name)


@event_type("testbench.rally")
@attrs.frozen(kw_only=True)
class _Rally(Event):
    where: str = attrs.field(converter=attrs.Converter(_trimmed, takes_self=True,
                                                        takes_field=True))
    when: EDTFDate | None = attrs.field(default=None)
    tags: tuple[str, ...] = attrs.field(factory=tuple)
    size: int = attrs.field(default=1, validator=_no_zero)
    sources: tuple[Source, ...] = attrs.field(default=(), converter=tuple)

    def __attrs_post_init__(self) -> None:
        if self.where == "nowhere":
            raise InvalidEvent("a rally is somewhere", field="where")


@event_type("testbench.unslotted")
@attrs.frozen(kw_only=True, slots=False)
class _Unslotted(Event):
    name: str = attrs.field(validator=attrs.validators.min_len(2))
    count: int = 0


_APPLICATION_DATA: list[tuple[type, dict[str, Any]]] = [
    (_Rally, {"id": "r-1", "where": " Hanoi ", "when": "2024-06-12", "tags": ["a", "b"],
              "size": 3, "sources": [{"title": "T", "publisher": "P", "published": "2024"}]}),
    (_Rally, {"id": "r-2", "where": "nowhere"}),
    (_Rally, {"id": "r-3", "where": "Vientiane", "size": 0}),
    (_Unslotted, {"id": "u-1", "name": "ab", "count": 2}),
    (_Unslotted, {"id": "u-2", "name": "a"}),
]


def test_application_classes_are_built_as_cattrs_builds_them() -> None:
    assert codec._fast_structure_fn(_Rally) is not None
    assert codec._slot_setters(_Rally) is not None  # built directly, not by calling the class
    assert codec._slot_setters(_Unslotted) is None
    rng = random.Random(5)
    for cls, original in _APPLICATION_DATA:
        for data in _mutations(original, rng):
            expected = _by_cattrs(cls, copy.deepcopy(data))
            assert _by_structure_event(cls, copy.deepcopy(data)) == expected, data


def test_with_validators_disabled_the_fast_path_does_not_validate_either() -> None:
    data = {"id": "r-4", "where": "x", "size": 0}
    assert _by_structure_event(_Rally, copy.deepcopy(data)) == ("refused", "may not be zero",
                                                                "size")
    attrs.validators.set_disabled(True)
    try:
        built = structure_event(_Rally, copy.deepcopy(data), where=None)
    finally:
        attrs.validators.set_disabled(False)
    assert built.size == 0


# The fast data path (``codec._proven_data``): the bytes cattrs' hooks give, and taken only for
# events a reader decodes; anything else goes the plain way (cattrs, then decoding back).


@event_type("testbench.march")
@attrs.frozen(kw_only=True)
class _March(Event):
    route: tuple[str, ...] = attrs.field(converter=tuple, validator=attrs.validators.min_len(1))
    when: EDTFDate | None = attrs.field(default=None)
    size: int = attrs.field(default=1, validator=_no_zero)
    sources: tuple[Source, ...] = attrs.field(factory=tuple)
    extra: dict[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if "nowhere" in self.route:
            raise InvalidEvent("a march goes somewhere", field="route")


def _hand_made_date(text: Any) -> EDTFDate:
    return attrs.evolve(parse_date("2024"), text=text)


_ODD_OBJECTS: list[Any] = [
    *_ODD_VALUES, (), ("x",), ("cpv", 5), ("cpv", "Bad Id"), ["cpv", "cpv"], 2**70, -(2**70),
    "Hà Nội \ud800", {"a": ("b",)}, {5: "x"}, {"a": parse_date("2024")}, parse_date("2024"),
    _hand_made_date("not a date"), _hand_made_date(2024), source(), (source(),),
    (source(), "a source"), [source()], Participant(entity="cpv"), (Participant(entity="cpv"),),
]


def _broken(event: Event, rng: random.Random) -> Event:
    """A copy of ``event`` with one field of it or of a value in it (a source, a participant)
    set to an odd value, past attrs' converters and validators."""
    broken = _copied(event)
    places: list[Any] = [broken]
    for place in places:
        for field in attrs.fields(type(place)):
            value = getattr(place, field.name)
            for item in value if isinstance(value, tuple) else (value,):
                if attrs.has(type(item)) and not isinstance(item, EDTFDate):
                    places.append(item)
    place = rng.choice(places)
    name = rng.choice([f.name for f in attrs.fields(type(place))])
    object.__setattr__(place, name, rng.choice(_ODD_OBJECTS))
    return broken


def _copied(value: Any) -> Any:
    """A deep copy made field by field (``copy.deepcopy`` loses the fields of an attrs class
    without slots whose base has them)."""
    if isinstance(value, tuple):
        return tuple(map(_copied, value))
    if not attrs.has(type(value)) or isinstance(value, EDTFDate):
        return copy.deepcopy(value)
    made = object.__new__(type(value))
    for field in attrs.fields(type(value)):
        object.__setattr__(made, field.name, _copied(getattr(value, field.name)))
    return made


def _encoded(event: Event, *, fast: bool) -> tuple[Any, ...]:
    """What an append makes of the event: its id and data, or the error that refuses it."""
    with pytest.MonkeyPatch.context() as patch:
        if not fast:
            patch.setattr(codec, "_proven_data", lambda event: None)
        try:
            return ("written", *codec.encode_event(event, where="batch item 0"))
        except InvalidEvent as exc:
            return ("refused", type(exc), exc.reason, exc.field, exc.where)
        except Exception as exc:  # (an id whose str() fails: both paths fail alike)
            return ("failed", type(exc), str(exc))


@given(strategies.events())
def test_the_fast_data_path_gives_the_bytes_cattrs_gives(event: Event) -> None:
    made = codec._proven_data(event)
    assert made is not None  # every sound event of the model takes the fast path
    assert made == orjson.dumps(codec.event_data(event))
    assert _encoded(event, fast=True) == _encoded(event, fast=False)


@given(strategies.events(), st.randoms(use_true_random=False))
def test_an_event_broken_past_its_checks_is_refused_as_the_plain_path_refuses_it(
    event: Event, rng: random.Random
) -> None:
    for _ in range(4):
        broken = _broken(event, rng)
        assert _encoded(broken, fast=True) == _encoded(broken, fast=False)


def test_application_classes_are_written_as_cattrs_writes_them() -> None:
    assert codec._fast_data_fn(_Rally) is None  # a converter taking the instance: plain path
    assert codec._fast_data_fn(_March) is not None
    assert codec._fast_data_fn(_Unslotted) is not None
    rng = random.Random(6)
    examples: list[Event] = [
        _March(route=("a", "b"), when="2024-06", size=3, sources=[source()],
               extra={"a": [1, {"b": None}]}),
        _March(id="m-1", route=("a",)),
        _Unslotted(name="ab", count=2),
        _Rally(where=" Hanoi ", tags=("x",)),
    ]
    for event in examples:
        assert _encoded(event, fast=True) == _encoded(event, fast=False)
        assert _encoded(event, fast=True)[0] == "written"
        for _ in range(40):
            broken = _broken(event, rng)
            assert _encoded(broken, fast=True) == _encoded(broken, fast=False), broken


def _connected_plainly(index: _Index, a: str, b: str) -> bool:
    """The same-as check as it was: a graph of every standing link, searched from ``a``."""
    links: dict[str, set[str]] = {}
    for link_id, (x, y) in index.same_as.items():
        if link_id not in index.retracted:
            links.setdefault(x, set()).add(y)
            links.setdefault(y, set()).add(x)
    seen, todo = {a}, [a]
    while todo:
        for nxt in links.get(todo.pop(), ()):
            if nxt == b:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


_NODES = st.sampled_from(["a", "b", "c", "d", "e", "f"])


@given(st.lists(st.one_of(
    st.tuples(st.just("link"), st.sampled_from(["l1", "l2", "l3", "l4", "l5"]), _NODES, _NODES),
    st.tuples(st.just("retract"), st.sampled_from(["l1", "l2", "l3", "l4", "l5"])),
    st.tuples(st.just("refused"), st.sampled_from(["l1", "l2", "l3", "l4", "l5"]), _NODES, _NODES),
    st.just(("asked",)),
), max_size=25))
def test_same_as_links_are_followed_as_the_whole_graph_would_follow_them(
    steps: list[tuple[str, ...]],
) -> None:
    index = _Index()
    for n, step in enumerate(steps):
        if step[0] == "asked":  # the links are made now, and kept up to date from here on
            index.links()
        elif step[0] == "retract":
            _index_event(index, f"r{n}", Retracted(target=step[1], reason="x"), n)
        elif step[2] != step[3] and step[1] not in index.same_as:
            undo: list[tuple[Any, str]] = []
            _index_event(index, step[1], SameAs(target=step[2], other=step[3]), n, undo)
            if step[0] == "refused":  # a batch refused after the link was indexed
                for container, key in reversed(undo):
                    container.discard(key) if isinstance(container, set) else container.pop(key)
        for a in "abcdef":
            for b in "abcdef":
                if a != b:
                    assert _connected(index, a, b) == _connected_plainly(index, a, b)
