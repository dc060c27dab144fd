"""``publish``: every file, byte-identical reruns, only affected files rewritten, safe failures."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solidline import (
    CorruptLog,
    InvalidEvent,
    JsonlLog,
    LogLocked,
    Meeting,
    MemoryLog,
    Participant,
    Period,
    Person,
    PublishError,
    Source,
    Visit,
    site,
)
from solidline.config import Config, load_config
from solidline.model import Corrected, Retracted, StatusChanged
from solidline.pages import default_templates, span_of
from solidline.site import PublishReport, publish
from solidline.timeline import Projection, pair_key
from strategies import TIMELINE_EPOCH, timed_histories

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"

SITE = """
[log]
path = "events"

[site]
output = "public"
base_url = "https://example.org/solidline/"
title = "The record"
"""


PAGES_OF_TWO = "entries_per_page = 2\n"


def write_config(folder: Path, extra: str = "") -> Config:
    (folder / "solidline.toml").write_text(SITE + extra, encoding="utf-8")
    return load_config(folder / "solidline.toml")


@pytest.fixture
def record(tmp_path: Path) -> Config:
    """A copy of the real record in ``events/`` and a configuration publishing it."""
    shutil.copytree(EVENTS, tmp_path / "events")
    return write_config(tmp_path)


@pytest.fixture
def small(tmp_path: Path, make_entities: Callable[..., Any]) -> Callable[..., Config]:
    """``small(*events)``: a new log holding two parties and the events, and its configuration."""

    def make(*events: Any) -> Config:
        with JsonlLog(tmp_path / "events") as log:
            log.append([*make_entities("cpusa", "cpv"), *events])
        return write_config(tmp_path)

    return make


def snapshot(output: Path) -> dict[str, tuple[bytes, int]]:
    """Every published file (not the checkpoint): its bytes and mtime."""
    return {
        str(p.relative_to(output)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(output.rglob("*"))
        if p.is_file() and ".solidline" not in p.parts
    }


def page(config: Config, name: str) -> str:
    return (config.path("public") / name).read_text(encoding="utf-8")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []
        self.anchors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "link":
            self.links.append(dict(attrs))
        elif tag == "a":
            self.anchors.append(dict(attrs).get("href") or "")


def links_of(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


# -- what is written -------------------------------------------------------------------------------


def test_publish_writes_every_timeline_as_page_feeds_and_export(record: Config) -> None:
    report = publish(record)

    projection = Projection.from_log(JsonlLog(EVENTS, readonly=True, create=False))
    keys = ["all", *projection.relationships(), *projection.entities()]
    expected = {"index.html", "style.css", "all.html"}
    for key in keys:
        expected |= {f"feeds/{key}.atom", f"feeds/{key}.rss", f"timelines/{key}.json"}
        if key != "all":
            folder = "relationships" if "~" in key else "entities"
            expected.add(f"{folder}/{key}.html")
    assert set(snapshot(record.path("public"))) == expected
    assert set(report.written) == expected
    assert "relationships/cpusa~cpv.html" in expected
    assert "entities/la.html" in expected
    assert report.head.seq == 39
    assert not report.nothing_new


def test_index_links_to_files_that_exist_and_announces_the_whole_record_feeds(
    record: Config,
) -> None:
    publish(record)
    output = record.path("public")
    found = links_of(page(record, "index.html"))

    alternates = {
        (link["type"], link["href"]) for link in found.links if link["rel"] == "alternate"
    }
    assert alternates == {
        ("application/atom+xml", "feeds/all.atom"),
        ("application/rss+xml", "feeds/all.rss"),
    }
    local = [href for href in found.anchors if not href.startswith(("http", "#"))]
    assert "feeds/cpusa~cpv.atom" in local
    assert "entities/cpusa.html" in local
    for href in local:
        assert (output / href).is_file(), href


def test_every_page_announces_its_own_feeds_and_links_resolve(record: Config) -> None:
    publish(record)
    output = record.path("public")
    for html in output.glob("*/*.html"):
        found = links_of(html.read_text(encoding="utf-8"))
        key = html.stem
        feeds = {link["href"] for link in found.links if link["rel"] == "alternate"}
        assert feeds == {f"../feeds/{key}.atom", f"../feeds/{key}.rss"}
        for href in found.anchors:
            if not href.startswith(("http", "#")):
                assert (html.parent / href).resolve().is_file(), (html, href)


def test_feed_entries_link_to_the_anchor_on_the_page(record: Config) -> None:
    publish(record)
    atom = page(record, "feeds/cpusa~cpv.atom")
    html = page(record, "relationships/cpusa~cpv.html")
    targets = re.findall(
        r'href="https://example.org/solidline/relationships/cpusa~cpv.html#([^"]+)"', atom
    )
    assert len(targets) == 7
    for anchor in targets:
        assert f'id="{anchor}"' in html


# -- long timelines, in sections -------------------------------------------------------------


@pytest.fixture
def sectioned(tmp_path: Path) -> Config:
    """The real record, published with pages of at most three entries."""
    shutil.copytree(EVENTS, tmp_path / "events")
    return write_config(tmp_path, "entries_per_page = 3\n")


def _anchors(html: str) -> list[str]:
    return re.findall(r'<li class="entry[^"]*" id="([^"]+)"', html)


def test_a_long_timeline_is_published_in_sections_holding_each_entry_once(
    sectioned: Config,
) -> None:
    publish(sectioned)
    output = sectioned.path("public")
    projection = Projection.from_log(JsonlLog(EVENTS, readonly=True, create=False))
    whole = [entry.id for entry in projection.entries()]
    assert len(whole) > 3

    main = page(sectioned, "all.html")
    assert _anchors(main) == []  # the page lists the sections, not the entries
    listed = re.findall(
        r'<li><a href="(all\.[^"]+\.html)">[^<]+</a> <span class="count">(\d+)', main
    )
    assert sum(int(count) for _, count in listed) == len(whole)
    shown = []
    for href, count in listed:
        anchors = _anchors(page(sectioned, href))
        assert len(anchors) == int(count)
        shown += anchors
        export = f"timelines/{href.removesuffix('.html')}.json"
        assert len(orjson.loads(page(sectioned, export))["events"]) == int(count)
    assert shown == whole  # every entry once, sections in timeline order
    assert not (output / "timelines" / "all.json").exists()
    # a timeline that fits on one page is published as before
    short = min(projection.relationships(), key=lambda k: len(projection.timeline(relationship=k)))
    assert 0 < len(_anchors(page(sectioned, f"relationships/{short}.html"))) <= 3
    assert (output / "timelines" / f"{short}.json").is_file()


def test_pages_of_sections_link_only_to_files_that_exist(sectioned: Config) -> None:
    publish(sectioned)
    output = sectioned.path("public")
    pages = [*output.glob("*.html"), *output.glob("*/*.html")]
    assert any(p.name.startswith("cpv.") for p in pages)
    for html in pages:
        for href in links_of(html.read_text(encoding="utf-8")).anchors:
            if not href.startswith(("http", "#")):
                assert (html.parent / href).resolve().is_file(), (html, href)


def test_feed_entries_link_to_the_section_that_shows_them(sectioned: Config) -> None:
    publish(sectioned)
    atom = page(sectioned, "feeds/all.atom")
    links = re.findall(r'href="https://example.org/solidline/(all\.[^"#]+)#([^"]+)"', atom)
    assert len(links) == len(Projection.from_log(JsonlLog(EVENTS, readonly=True)).entries())
    for path, anchor in links:
        assert anchor in _anchors(page(sectioned, path))


def test_an_entry_appended_rewrites_its_section_and_no_other(
    sectioned: Config, make_meeting: Callable[..., Meeting]
) -> None:
    publish(sectioned)
    before = {p.name for p in sectioned.path("public").glob("all.*.html")}
    with JsonlLog(sectioned.path("events")) as log:
        log.append(make_meeting("m-1999", "cpusa", "cpv", when="1999-05-01", title="In 1999"))

    report = publish(sectioned)

    new = {p.name for p in sectioned.path("public").glob("all.*.html")} - before
    assert new == {"all.1990s.html"}
    order = re.findall(r'<li><a href="(all\.[^"]+\.html)">', page(sectioned, "all.html"))
    at = order.index("all.1990s.html")
    # the new section, and its neighbours, whose pages now link to it
    written = {n for n in report.written if n.startswith("all.") and n != "all.html"}
    assert written == set(order[max(at - 1, 0) : at + 2])
    assert len(written) == 3
    assert "timelines/all.1990s.json" in report.written
    assert "In 1999" in page(sectioned, "all.1990s.html")


def test_a_new_relationship_rewrites_an_entitys_page_but_not_its_other_sections(
    sectioned: Config, make_meeting: Callable[..., Meeting]
) -> None:
    publish(sectioned)
    projection = Projection.from_log(JsonlLog(EVENTS, readonly=True))
    first = projection.timeline(entity="cpv").entries[0]
    stranger = next(
        e
        for e in projection.entity_keys()
        if e != "cpv" and pair_key("cpv", e) not in projection.relationships()
    )
    with JsonlLog(sectioned.path("events")) as log:
        log.append(make_meeting("m-new", "cpv", stranger, when=str(first.when)))

    report = publish(sectioned)

    written = [n for n in report.written if n.startswith("entities/cpv.")]
    assert "entities/cpv.html" in written  # it lists the new relationship
    assert len(written) == 2  # and the one section that shows the new entry
    assert "m-new" in page(
        sectioned, written[0] if written[1] == "entities/cpv.html" else written[1]
    )


def test_the_same_record_gives_the_same_bytes_in_another_folder(
    record: Config, tmp_path: Path
) -> None:
    publish(record)
    other = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "events", other / "events")
    publish(write_config(other))
    first = {k: v[0] for k, v in snapshot(record.path("public")).items()}
    second = {k: v[0] for k, v in snapshot(other / "public").items()}
    assert first == second


# -- nothing new, and only what changed ------------------------------------------------------------


def test_a_second_run_changes_nothing_and_says_so(record: Config) -> None:
    publish(record)
    before = snapshot(record.path("public"))
    state = (record.path("public") / ".solidline" / "state.json").read_bytes()

    report = publish(record)

    assert report.nothing_new
    assert report.written == ()
    assert report.rendered == 0
    assert report.summary().startswith(f"nothing new: {len(before)} files unchanged")
    assert snapshot(record.path("public")) == before
    assert (record.path("public") / ".solidline" / "state.json").read_bytes() == state


def test_appending_an_event_rewrites_only_the_files_it_touches(
    record: Config, make_source: Callable[..., Source]
) -> None:
    publish(record)
    before = snapshot(record.path("public"))
    with JsonlLog(record.path("events")) as log:
        log.append(
            [
                Meeting(
                    id="2026-01-cpusa-cpv",
                    when="2026-01",
                    title="A new meeting",
                    sources=[make_source()],
                    participants=[Participant(entity="cpusa"), Participant(entity="cpv")],
                )
            ]
        )

    report = publish(record)

    after = snapshot(record.path("public"))
    changed = {name for name in after if after[name] != before.get(name)}
    touched = {
        "index.html",
        "all.html",
        "relationships/cpusa~cpv.html",
        "entities/cpusa.html",
        "entities/cpv.html",
    }
    for key in ("all", "cpusa~cpv", "cpusa", "cpv"):
        touched |= {f"feeds/{key}.atom", f"feeds/{key}.rss", f"timelines/{key}.json"}
    assert changed == touched
    assert set(report.written) == touched
    assert report.rendered == 4  # the whole record, the relationship and its two entities
    assert "A new meeting" in page(record, "relationships/cpusa~cpv.html")


def test_a_file_deleted_from_the_output_is_written_again(record: Config) -> None:
    publish(record)
    (record.path("public") / "feeds" / "la~vn.atom").unlink()

    report = publish(record)

    assert report.written == ("feeds/la~vn.atom",)
    assert (record.path("public") / "feeds" / "la~vn.atom").is_file()


def test_a_file_changed_while_a_run_writes_is_caught_by_the_next_run_that_writes(
    record: Config, make_meeting: Callable[..., Meeting], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog keeps the stat the damage check took of a file the run did not write: a
    change behind the run's back after that check is caught as damage next time."""
    publish(record)
    bystander = record.path("public") / "feeds" / "la~vn.atom"
    good = bystander.read_bytes()
    stage = site._Run._stage

    def stage_then_edit(run: site._Run, *args: Any) -> Any:
        staged = stage(run, *args)  # the damage check has run, the files are staged
        bystander.write_bytes(good + b"<!-- edited -->")
        return staged

    with monkeypatch.context() as patched:
        patched.setattr(site._Run, "_stage", stage_then_edit)
        with JsonlLog(record.path("events")) as log:
            log.append(make_meeting("m-1", "cpusa", "cpv"))
        assert "feeds/la~vn.atom" not in publish(record).written
    assert bystander.read_bytes() != good
    with JsonlLog(record.path("events")) as log:
        log.append(make_meeting("m-2", "cpusa", "cpv"))

    report = publish(record)

    assert "feeds/la~vn.atom" in report.written
    assert bystander.read_bytes() == good


def _age_output(output: Path, seconds: int = 60) -> None:
    """Set the output folders' mtimes back, as if the last run had written long ago."""
    for folder in (output, *(p for p in output.iterdir() if p.is_dir())):
        info = folder.stat()
        os.utime(folder, ns=(info.st_atime_ns, info.st_mtime_ns - seconds * 10**9))


def test_a_quiet_run_stamps_the_folders_and_the_next_needs_no_catalog(record: Config) -> None:
    publish(record)
    state_dir = record.path("public") / ".solidline"
    _age_output(record.path("public"))

    # the folders moved since the stamp: their files are checked one by one, then stamped
    assert publish(record).nothing_new
    state = (state_dir / "state.json").read_bytes()
    (state_dir / "files.json").unlink()

    # proven folders: nothing to read but the state, which stays as it was
    assert publish(record).nothing_new
    assert (state_dir / "state.json").read_bytes() == state


def test_a_file_deleted_after_the_folders_were_stamped_is_written_again(record: Config) -> None:
    publish(record)
    _age_output(record.path("public"))
    assert publish(record).nothing_new  # stamped
    (record.path("public") / "entities" / "cpv.html").unlink()

    report = publish(record)

    assert report.written == ("entities/cpv.html",)


def test_a_catalog_that_is_not_the_one_the_state_names_renders_everything(
    record: Config,
) -> None:
    first = publish(record)
    catalog = record.path("public") / ".solidline" / "files.json"
    catalog.write_bytes(catalog.read_bytes().replace(b'"timelines"', b'"timelines" ', 1))
    (record.path("public") / "feeds" / "all.atom").unlink()

    report = publish(record)

    assert report.rendered == first.rendered  # nothing trusted from a catalog that changed
    assert report.written == ("feeds/all.atom",)  # only what differs is written


class _Clock:
    def __init__(self) -> None:
        self.now = TIMELINE_EPOCH

    def __call__(self) -> dt.datetime:
        return self.now


# each example publishes several times: a fifth of the profile's examples
@settings(deadline=None, max_examples=max(settings.default.max_examples // 5, 5))
@given(timed_histories(), st.data())
def test_publishing_after_each_append_gives_what_one_publish_gives(
    history: list[tuple[dt.datetime, list[Any]]], data: st.DataObject
) -> None:
    """Runs that bring the last run's projection up to date write what a first run writes."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        clock = _Clock()
        config = write_config(root, PAGES_OF_TWO)  # timelines of three entries or more: sections
        rest = list(history)
        while rest:
            size = data.draw(st.integers(1, len(rest)), label="chunk")
            chunk, rest = rest[:size], rest[size:]
            # small segments: the log grows by new segments as well as at its end
            with JsonlLog(root / "events", segment_bytes=4096, clock=clock) as log:
                for moment, batch in chunk:
                    clock.now = moment
                    with contextlib.suppress(InvalidEvent):
                        log.append(batch)
            publish(config)
        (root / "fresh").mkdir()
        (root / "fresh" / "solidline.toml").write_text(
            SITE.replace('path = "events"', 'path = "../events"') + PAGES_OF_TWO, encoding="utf-8"
        )
        publish(load_config(root / "fresh" / "solidline.toml"))
        updated = snapshot(root / "public")
        once = snapshot(root / "fresh" / "public")
        assert sorted(updated) == sorted(once)
        differ = [n for n in once if updated[n][0] != once[n][0]]
        assert differ == []


def test_an_event_that_came_and_went_since_the_saved_projection_leaves_its_pages(
    record: Config, make_meeting: Callable[..., Meeting]
) -> None:
    publish(record)  # saves the projection; the next runs, a few lines on, only load it
    with JsonlLog(record.path("events")) as log:
        log.append(make_meeting("m-new", "cpusa", "cpv"))
    publish(record)
    assert "m-new" in page(record, "relationships/cpusa~cpv.html")
    with JsonlLog(record.path("events")) as log:
        log.append(Retracted(target="m-new", reason="a duplicate"))

    report = publish(record)

    # gone since the last run, though absent from the saved projection as well
    assert "relationships/cpusa~cpv.html" in report.written
    assert "m-new" not in page(record, "relationships/cpusa~cpv.html")


def test_files_of_a_timeline_that_is_gone_are_removed(
    small: Callable[..., Config], make_meeting: Callable[..., Meeting]
) -> None:
    config = small(make_meeting("m1", "cpusa", "cpv"))
    publish(config)
    assert (config.path("public") / "relationships" / "cpusa~cpv.html").is_file()
    with JsonlLog(config.path("events")) as log:
        log.append(
            [
                Corrected(
                    target="m1",
                    changes={"participants": [{"entity": "cpusa"}]},
                    reason="only the CPUSA was there",
                )
            ]
        )

    report = publish(config)

    assert "relationships/cpusa~cpv.html" in report.removed
    assert not (config.path("public") / "relationships" / "cpusa~cpv.html").exists()
    assert not (config.path("public") / "feeds" / "cpusa~cpv.atom").exists()


def test_a_changed_template_renders_the_pages_again(record: Config, tmp_path: Path) -> None:
    publish(record)
    custom = tmp_path / "mine"
    custom.mkdir()
    base = (default_templates() / "_base.html.j2").read_text(encoding="utf-8")
    (custom / "_base.html.j2").write_text(
        base.replace("<footer", "<!-- mine --><footer"), encoding="utf-8"
    )
    config = write_config(tmp_path, 'templates = "mine"\n')

    report = publish(config)

    assert "<!-- mine -->" in page(config, "all.html")
    assert "feeds/all.atom" not in report.written  # feeds do not use the templates


# -- failures leave the output as it was -----------------------------------------------------------


def test_a_tampered_log_stops_the_run_and_keeps_the_output(record: Config) -> None:
    publish(record)
    before = snapshot(record.path("public"))
    segment = next(record.path("events").glob("*.jsonl"))
    segment.write_bytes(
        segment.read_bytes().replace(b"thousands of masks", b"millions of masks", 1)
    )

    with pytest.raises(CorruptLog, match="line"):
        publish(record)
    assert snapshot(record.path("public")) == before


def test_an_output_that_cannot_be_created_is_a_publish_error(record: Config) -> None:
    (record.root / "file").write_text("not a folder")
    config = write_config(record.root, "")
    toml = (record.root / "solidline.toml").read_text().replace('"public"', '"file/public"')
    (record.root / "solidline.toml").write_text(toml)
    with pytest.raises(PublishError, match="file/public"):
        publish(load_config(record.root / "solidline.toml"))
    assert config.site is not None


def test_a_second_run_while_one_holds_the_lock_stops(record: Config) -> None:
    publish(record)
    lock = record.path("public") / ".solidline" / "publish.lock"
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(LogLocked, match="another `solidline publish`"):
            publish(record)
    assert publish(record).nothing_new


# -- the page --------------------------------------------------------------------------------------


def test_event_text_is_escaped(
    small: Callable[..., Config],
    make_meeting: Callable[..., Meeting],
    make_source: Callable[..., Source],
) -> None:
    attack = "<script>alert('x')</script>"
    config = small(
        make_meeting(
            "m1",
            "cpusa",
            "cpv",
            title=f"Title {attack}",
            summary=f"Summary {attack}",
            place="<img src=x onerror=alert(1)>",
            note=f"Note {attack}",
            sources=[make_source(title=f"Source {attack}", quote=f"Quote {attack}")],
        )
    )
    publish(config)
    for name in ("relationships/cpusa~cpv.html", "all.html", "entities/cpusa.html"):
        html = page(config, name)
        assert "<script>" not in html
        assert "<img" not in html
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "<script>" not in page(config, "index.html")


def test_dates_show_their_precision_and_spans(
    small: Callable[..., Config], make_source: Callable[..., Source]
) -> None:
    config = small(
        Visit(
            id="v1",
            when="2021-06",
            title="A visit",
            sources=[make_source()],
            visitor="cpusa",
            host="cpv",
            level="official",
        ),
        Period(
            id="p1",
            when="1945/1975",
            title="Joint struggle",
            sources=[make_source()],
            participants=["cpusa", "cpv"],
        ),
    )
    publish(config)
    html = page(config, "relationships/cpusa~cpv.html")
    assert '<time class="date" datetime="2021-06">June 2021</time>' in html
    assert '<span class="date span">1945–1975</span>' in html
    assert html.index("1945–1975") < html.index("June 2021")  # oldest first
    assert "official visit" in html


def test_status_corrections_people_place_and_sources_are_visible(
    small: Callable[..., Config],
    make_meeting: Callable[..., Meeting],
    make_source: Callable[..., Source],
) -> None:
    people = [Person(name="Rossana Cambron", role="co-Chair", entity="cpusa")]
    config = small(
        make_meeting(
            "s1",
            "cpusa",
            "cpv",
            status="scheduled",
            place="Hanoi",
            people=people,
            note="The year is the article's.",
        ),
        make_meeting("p1", "cpusa", "cpv", when="2024-10-01"),
        make_meeting(
            "c1",
            "cpusa",
            "cpv",
            when="2024-11-01",
            sources=[make_source(url=None, title="A printed leaflet")],
        ),
        StatusChanged(target="p1", status="postponed", reason="the delegation was delayed"),
        StatusChanged(target="c1", status="cancelled"),
        Corrected(target="s1", changes={"title": "Meeting in Hanoi"}, reason="typo"),
    )
    publish(config)
    html = page(config, "relationships/cpusa~cpv.html")
    for status in ("scheduled", "postponed", "cancelled"):
        assert f'<span class="badge {status}">{status}</span>' in html
    assert 'id="s1"' in html
    assert 'id="p1"' in html
    assert 'id="c1"' in html
    assert "Meeting in Hanoi" in html
    assert re.search(r"Corrected on \d+ \w+ \d{4} \(title\): typo", html)
    assert "Marked postponed on" in html
    assert "the delegation was delayed" in html
    assert "Hanoi" in html
    assert "Rossana Cambron (co-Chair, Party CPUSA)" in html
    assert "How the record reads the source:</strong> The year is the article&#39;s." in html
    assert '<a href="https://cpusa.org/article/to-our-comrades-in-vietnam-solidarity/"' in html
    assert "<cite>A printed leaflet</cite>" in html


def test_the_page_has_no_external_resources_and_adapts_to_dark_mode(record: Config) -> None:
    publish(record)
    html = page(record, "relationships/cpusa~cpv.html")
    css = page(record, "style.css")
    assert "prefers-color-scheme: dark" in css
    assert 'name="viewport"' in html
    assert not re.search(r"<(?:script|img|style)", html)
    stylesheets = [link["href"] for link in links_of(html).links if link["rel"] == "stylesheet"]
    assert stylesheets == ["../style.css"]
    for text in (html, css):
        assert not re.search(r'(?:src|@import|url\()\s*["\']?(?:https?:)?//', text)


def test_every_page_links_the_one_stylesheet_relatively(record: Config) -> None:
    publish(record)
    output = record.path("public")
    for html in output.rglob("*.html"):
        found = links_of(html.read_text(encoding="utf-8"))
        stylesheets = [link["href"] or "" for link in found.links if link["rel"] == "stylesheet"]
        assert len(stylesheets) == 1, html
        assert (html.parent / stylesheets[0]).resolve() == output / "style.css", html
    assert (output / "style.css").read_bytes() == (default_templates() / "style.css").read_bytes()


def test_a_stylesheet_in_the_templates_folder_replaces_the_default(
    record: Config, tmp_path: Path
) -> None:
    publish(record)
    custom = tmp_path / "mine"
    custom.mkdir()
    (custom / "style.css").write_text("body { color: teal; }\n", encoding="utf-8")
    config = write_config(tmp_path, 'templates = "mine"\n')

    report = publish(config)

    assert page(config, "style.css") == "body { color: teal; }\n"
    assert "style.css" in report.written
    assert "feeds/all.atom" not in report.written


def test_a_deleted_stylesheet_is_written_again(record: Config) -> None:
    publish(record)
    (record.path("public") / "style.css").unlink()

    report = publish(record)

    assert report.written == ("style.css",)
    assert "prefers-color-scheme" in page(record, "style.css")


def test_default_templates_are_found(record: Config) -> None:
    folder = default_templates()
    assert {"_base.html.j2", "index.html.j2", "timeline.html.j2", "style.css"} <= {
        p.name for p in folder.iterdir()
    }


def test_report_summary_names_what_was_written(record: Config) -> None:
    report = publish(record)
    assert isinstance(report, PublishReport)
    assert report.summary().startswith("published log head seq 39")
    assert f"{len(report.written)} files written" in report.summary()


# -- golden pages ----------------------------------------------------------------------------------
#
# Pages of the real record, byte for byte. When a change to them is meant (a template, the
# record), regenerate and review the diff:  SOLIDLINE_REGENERATE_GOLDEN=1 pytest -k golden

GOLDEN = Path(__file__).resolve().parent / "golden" / "site"
GOLDEN_PAGES = (
    "index.html",
    "style.css",
    "relationships/cpusa~cpv.html",
    "relationships/la~vn.html",
    "entities/cpv.html",
)


@pytest.fixture(scope="module")
def golden_site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("golden")
    shutil.copytree(EVENTS, folder / "events")
    config = write_config(folder)
    publish(config)
    return {name: (config.path("public") / name).read_bytes() for name in GOLDEN_PAGES}


@pytest.mark.parametrize("name", GOLDEN_PAGES)
def test_golden(golden_site: dict[str, bytes], name: str) -> None:
    path = GOLDEN / name.replace("/", "__")
    if os.environ.get("SOLIDLINE_REGENERATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(golden_site[name])
    assert path.exists(), f"{path} is missing: run with SOLIDLINE_REGENERATE_GOLDEN=1"
    assert golden_site[name] == path.read_bytes(), (
        f"{name} differs from {path}; if the change is meant, regenerate with "
        "SOLIDLINE_REGENERATE_GOLDEN=1 and review the diff"
    )


def test_temporary_files_of_a_killed_run_are_swept(
    record: Config, make_source: Callable[..., Source]
) -> None:
    publish(record)
    leftover = record.path("public") / "feeds" / ".cpusa.atom.0123456789ab.solidline-tmp"
    leftover.write_bytes(b"half a feed")
    mine = record.path("public") / "feeds" / "notes.txt"
    mine.write_text("someone else's file")
    with JsonlLog(record.path("events")) as log:
        log.append(
            [
                Meeting(
                    id="m-new",
                    when="2026-02",
                    title="Another meeting",
                    sources=[make_source()],
                    participants=[Participant(entity="la"), Participant(entity="vn")],
                )
            ]
        )

    publish(record)

    assert not leftover.exists()
    assert mine.read_text() == "someone else's file"


def test_an_entity_named_all_is_refused(
    tmp_path: Path, make_entities: Callable[..., Any], make_meeting: Callable[..., Meeting]
) -> None:
    with JsonlLog(tmp_path / "events") as log:
        log.append([*make_entities("all", "cpv"), make_meeting("m1", "all", "cpv")])
    with pytest.raises(PublishError, match="'all'"):
        publish(write_config(tmp_path))
    assert not (tmp_path / "public" / "index.html").exists()


# -- fingerprints ----------------------------------------------------------------------------------


def plain_shaped_by(entries: Any) -> list[tuple[str, list[int]]]:
    """What a fingerprint holds of entries, as a list: each one's id and its lines' seqs."""
    return [(e.id, [r.seq for r in e.history]) for e in entries]


def _timelines_of(projection: Projection) -> list[Any]:
    return [
        projection.timeline(),
        *(projection.timeline(relationship=p) for p in projection.relationships()),
        *(projection.timeline(entity=e) for e in projection.entity_keys()),
    ]


def test_the_fingerprints_text_of_the_records_entries_is_the_lists_repr() -> None:
    for timeline in _timelines_of(Projection.from_log(JsonlLog(EVENTS, readonly=True))):
        shaped = site._shaped_by(timeline.entries)
        assert repr(shaped) == repr(plain_shaped_by(timeline.entries))
        material = ("all", timeline.key, shaped, "names")
        plain = ("all", timeline.key, plain_shaped_by(timeline.entries), "names")
        assert site._digest(*material) == site._digest(*plain)


@settings(deadline=None)
@given(timed_histories())
def test_the_fingerprints_text_of_any_entries_is_the_lists_repr(
    history: list[tuple[dt.datetime, list[Any]]],
) -> None:
    clock = _Clock()
    log = MemoryLog(clock=clock)
    for moment, batch in history:
        clock.now = moment
        with contextlib.suppress(InvalidEvent):
            log.append(batch)
    for timeline in _timelines_of(Projection.from_log(log)):
        assert repr(site._shaped_by(timeline.entries)) == repr(plain_shaped_by(timeline.entries))


def test_the_index_takes_the_years_of_unchanged_timelines_from_the_catalog(
    record: Config, make_meeting: Callable[..., Meeting], monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(record)
    with JsonlLog(record.path("events")) as log:
        log.append(make_meeting("m-2031", "cpusa", "cpv", when="2031-05-01"))
    spanned: list[int] = []

    def counted(entries: Any) -> str:
        spanned.append(len(entries))
        return span_of(entries)

    monkeypatch.setattr(site, "span_of", counted)

    publish(record)

    assert len(spanned) == 4  # the whole record, the relationship and its two entities
    fresh = record.root / "fresh"
    shutil.copytree(record.path("events"), fresh / "events")
    monkeypatch.undo()
    publish(write_config(fresh))
    assert page(record, "index.html") == (fresh / "public" / "index.html").read_text()
    assert "–2031" in page(record, "index.html")


def test_a_section_the_new_lines_left_alone_keeps_its_digest_from_the_catalog(
    sectioned: Config, make_meeting: Callable[..., Meeting], monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(sectioned)
    with JsonlLog(sectioned.path("events")) as log:
        log.append(make_meeting("m-1999", "cpusa", "cpv", when="1999-05-01", title="In 1999"))
    looked_at: list[int] = []

    def counted(entries: Any) -> Any:
        entries = tuple(entries)
        looked_at.append(len(entries))
        return plain_shaped(entries)

    plain_shaped = site._shaped_by
    monkeypatch.setattr(site, "_shaped_by", counted)

    report = publish(sectioned)

    # the sections holding the new entry (one per changed timeline) and short timelines only
    assert len(looked_at) <= 4
    assert "all.1990s.html" in report.written
    fresh = sectioned.root / "fresh"
    shutil.copytree(sectioned.path("events"), fresh / "events")
    monkeypatch.undo()
    publish(write_config(fresh, "entries_per_page = 3\n"))
    once = snapshot(fresh / "public")
    assert {k: v[0] for k, v in snapshot(sectioned.path("public")).items()} == {
        k: v[0] for k, v in once.items()
    }
