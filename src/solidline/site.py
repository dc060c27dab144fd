"""``publish``: the record as a static site of feeds, timeline pages and TimelineJS exports.

Everything is written into the ``[site] output`` folder::

    public/
      index.html                     every timeline, with its feeds (and feed discovery links)
      all.html                       the whole record
      relationships/cpusa~cpv.html   one page per relationship …
      entities/cpusa.html            … and per entity
      feeds/all.atom, all.rss        Atom and RSS ([site] formats) of the whole record,
      feeds/cpusa~cpv.atom, …        of every relationship
      feeds/cpusa.atom, …            and of every entity
      timelines/<key>.json           each timeline in TimelineJS's JSON format
      .solidline/state.json          the checkpoint: log head, segment stats, what was written
      .solidline/publish.lock        flock'ed while a run is under way

Safe under cron:

- **Nothing new, nothing done.** The checkpoint holds the log's head (seq and digest) and, for a
  JSON Lines log, each segment's size and mtime. A run whose segments, head line, settings,
  templates and output files all match it stops there: it reads one line of the log and stats a
  few files. Otherwise the whole log is read again, which also verifies it (every line decoded,
  the seq and hash chain checked, no id twice): a log that fails stops the run with
  :class:`~solidline.CorruptLog` before anything is written.
- **Only what changed is rendered, only what differs is written.** Each timeline has a
  fingerprint (its entries' ids and the seqs of every line that shaped them, the entity names,
  settings and templates); timelines whose fingerprint and files are as the checkpoint says are
  not rendered. A rendered file is written only when its bytes differ, so an unchanged file
  keeps its mtime, and the same record always gives the same bytes (nothing reads the clock).
- **All or nothing, each file whole.** Changed files are first written beside their targets as
  temporary files (fsync'ed); only when every one of them is ready are they renamed into place.
  A failure before that (a template error, a full disk, a folder that cannot be written) leaves
  the previous output exactly as it was; temporary files left by a killed run are removed by
  the next run that writes.
- **One run at a time.** A second run while one holds the lock fails at once with
  :class:`~solidline.LogLocked` (exit code 4).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import importlib.resources
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs
import orjson

from . import __version__
from ._errors import ConfigError, CorruptLog, LogLocked, PublishError
from .codec import Recorded, format_timestamp
from .config import Config, SiteConfig
from .dates import parse_date
from .log import EventLog, Head, JsonlLog, open_log
from .model import (
    AgreementSigned,
    Amendment,
    Congress,
    Corrected,
    Donation,
    EntityDefined,
    Fact,
    Meeting,
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
from .timeline import Entry, Projection, Timeline, parse_pair

if TYPE_CHECKING:  # imported when something is rendered: a run with nothing new needs neither
    import jinja2

__all__ = ["PublishReport", "default_templates", "page_environment", "publish"]

# Bumped when what publish writes changes for the same record and templates: the checkpoint of
# an older version is then ignored and every page rendered again.
_OUTPUT_VERSION = 1
_STATE_DIR = ".solidline"
_FOLDERS = (_STATE_DIR, "feeds", "relationships", "entities", "timelines")
_TEMPORARY_SUFFIX = ".publish-tmp"
_TEMPORARY = re.compile(r"\..+\.[0-9a-f]{12}" + re.escape(_TEMPORARY_SUFFIX))
Kind = Literal["all", "entity", "relationship"]


@attrs.frozen
class PublishReport:
    """What a :func:`publish` run did.

    Attributes:
        output: the output folder.
        head: the last log line the output reflects.
        written: the files written (paths relative to ``output``, sorted).
        removed: files of timelines that no longer exist, removed.
        unchanged: how many files were left as they were.
        rendered: how many timelines were rendered (0 when nothing was new).
        nothing_new: whether the run stopped at the checkpoint without reading the log.
    """

    output: Path
    head: Head
    written: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: int = 0
    rendered: int = 0
    nothing_new: bool = False

    def summary(self) -> str:
        """One line for a log: what was written, or ``nothing new: N files unchanged``."""
        if not self.written and not self.removed:
            return (
                f"nothing new: {self.unchanged} files unchanged "
                f"(log head seq {self.head.seq}) in {self.output}"
            )
        removed = f", {len(self.removed)} removed" if self.removed else ""
        return (
            f"published log head seq {self.head.seq} to {self.output}: "
            f"{len(self.written)} files written{removed}, {self.unchanged} unchanged"
        )


def publish(config: Config) -> PublishReport:
    """Write the record's feeds, pages and exports into ``[site] output``; see the module doc.

    Raises:
        ConfigError: ``config`` has no ``[site]`` table or names a templates folder that is not.
        LogLocked: another run is publishing into the same folder.
        CorruptLog: the log fails verification; nothing was written.
        LogError: there is no log where the configuration says.
        PublishError: the output folder could not be written; the previous output is intact.
    """
    site = config.require_site()
    output = config.path(site.output)
    state_dir = _make_folder(output / _STATE_DIR)
    with (
        _exclusive(state_dir / "publish.lock", output),
        open_log(config.log_location, readonly=True) as log,
    ):
        return _Run(config, site, output, log).run()


# -- templates -------------------------------------------------------------------------------------


def default_templates() -> Path:
    """The folder of the default templates: inside the installed package, or the source tree's."""
    packaged = importlib.resources.files("solidline") / "templates"
    if packaged.is_dir():
        return Path(str(packaged))
    source_tree = Path(__file__).resolve().parents[2] / "templates"
    if source_tree.is_dir():
        return source_tree
    raise PublishError(
        f"the default templates are missing (looked in {packaged} and "
        f"{source_tree}); reinstall solidline"
    )


def page_environment(config: Config) -> jinja2.Environment:
    """The jinja2 environment of the pages: ``[site] templates`` first, then the defaults."""
    import jinja2

    site = config.require_site()
    loaders: list[jinja2.BaseLoader] = []
    for folder in _template_folders(config, site):
        loaders.append(jinja2.FileSystemLoader(folder))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )


def _template_folders(config: Config, site: SiteConfig) -> list[Path]:
    folders = []
    if site.templates is not None:
        folder = config.path(site.templates)
        if not folder.is_dir():
            raise ConfigError(
                f"{config.source or 'configuration'}: setting 'templates': {folder} is not a folder"
            )
        folders.append(folder)
    folders.append(default_templates())
    return folders


def _templates_digest(folders: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(f"{path.relative_to(folder)}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


# -- the lock and the output folder ----------------------------------------------------------------


def _make_folder(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PublishError(
            f"cannot create the output folder {path}: {exc.strerror}; check "
            "[site] output and its permissions"
        ) from None
    return path


@contextlib.contextmanager
def _exclusive(lock: Path, output: Path) -> Iterator[None]:
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise PublishError(f"cannot open the lock file {lock}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LogLocked(
                f"another `solidline publish` is writing {output} (it holds "
                f"{lock}); this run stops, the next one will catch up"
            ) from None
        yield
    finally:
        os.close(fd)  # closing releases the flock


# -- the checkpoint --------------------------------------------------------------------------------


def _log_fingerprint(log: EventLog) -> dict[str, Any]:
    """What identifies the log's content cheaply: the head line, and segment stats if any."""
    if not isinstance(log, JsonlLog):
        head = log.head
        return {"seq": head.seq, "digest": head.digest}
    segments = []
    for name in sorted(p.name for p in log.path.glob("*.jsonl")):
        info = (log.path / name).stat()
        segments.append([name, info.st_size, info.st_mtime_ns])
    return {"segments": segments}


def _tail_matches(log: EventLog, checkpoint: dict[str, Any]) -> bool:
    """Whether the log's last line still hashes to the checkpoint's head digest."""
    if not isinstance(log, JsonlLog):
        return True  # the fingerprint already holds the head
    tail = checkpoint.get("tail")
    if not tail:
        return checkpoint.get("seq") == 0
    name, offset, length = tail
    try:
        with (log.path / name).open("rb") as f:
            f.seek(offset)
            line = f.read(length)
    except OSError:
        return False
    return hashlib.sha256(line).hexdigest() == checkpoint.get("digest")


def _tail_of(log: EventLog, head: Head) -> list[Any] | None:
    """Where the head line is stored (segment, offset, length), for the next run's check."""
    if not isinstance(log, JsonlLog) or head.seq == 0:
        return None
    segments = sorted(log.path.glob("*.jsonl"))
    last = segments[-1]
    size = last.stat().st_size
    with last.open("rb") as f:
        block = 1 << 16
        while True:
            start = max(size - block, 0)
            f.seek(start)
            data = f.read(size - start)
            cut = data.rfind(b"\n", 0, len(data) - 1)
            if cut >= 0 or start == 0:
                line = data[cut + 1 :]
                break
            block *= 4
    if hashlib.sha256(line).hexdigest() != head.digest:
        return None  # a writer appended while we read; the next run reads the log again
    return [last.name, size - len(line), len(line)]


def _load_state(path: Path) -> dict[str, Any]:
    try:
        state = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    if not isinstance(state, dict) or state.get("version") != _OUTPUT_VERSION:
        return {}
    return state


def _damaged(output: Path, files: dict[str, list[Any]]) -> set[str]:
    """The timeline keys whose files are missing or not as the checkpoint left them."""
    damaged = set()
    for name, (key, size, mtime_ns) in files.items():
        try:
            info = (output / name).stat()
        except OSError:
            damaged.add(key)
            continue
        if info.st_size != size or info.st_mtime_ns != mtime_ns:
            damaged.add(key)
    return damaged


# -- one run ---------------------------------------------------------------------------------------


@attrs.frozen
class _Target:
    """One timeline to publish, the timelines its page links to, and where its files go."""

    kind: Kind
    timeline: Timeline
    related: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.timeline.key

    @property
    def page(self) -> str:
        if self.kind == "all":
            return "all.html"
        folder = "entities" if self.kind == "entity" else "relationships"
        return f"{folder}/{self.key}.html"

    def feed(self, format: str) -> str:
        return f"feeds/{self.key}.{format}"

    @property
    def export(self) -> str:
        return f"timelines/{self.key}.json"


class _Run:
    """One publish run under the lock: check the checkpoint, read, render, write."""

    def __init__(
        self,
        config: Config,
        site: SiteConfig,
        output: Path,
        log: EventLog,
    ) -> None:
        self.config, self.site, self.output, self.log = config, site, output, log
        self.environment: jinja2.Environment | None = None
        self.state_path = output / _STATE_DIR / "state.json"
        self.state = _load_state(self.state_path)
        templates = _templates_digest(_template_folders(config, site))
        self.settings = hashlib.sha256(
            f"{__version__}\0{_OUTPUT_VERSION}\0{site!r}\0{templates}".encode()
        ).hexdigest()
        same = self.state.get("settings") == self.settings
        self.old_files: dict[str, list[Any]] = self.state.get("files", {})
        self.old_owners: dict[str, dict[str, str]] = {}
        for name, (key, *_) in self.old_files.items():
            self.old_owners.setdefault(key, {})[name] = key
        self.old_prints: dict[str, str] = self.state.get("timelines", {}) if same else {}

    def run(self) -> PublishReport:
        fingerprint = _log_fingerprint(self.log)
        if self._nothing_new(fingerprint):
            checkpoint = self.state["log"]
            head = Head(checkpoint["seq"], checkpoint["digest"], checkpoint["recorded_at"])
            return PublishReport(self.output, head, unchanged=len(self.old_files), nothing_new=True)
        projection = Projection()
        first: list[Recorded] = []
        projection.apply(_verified(self.log.read(), first))
        start = _head_of(first[0]) if first else Head()
        tag_date = str(first[0].recorded_at.year) if first else "1970"
        targets = _targets(projection, start)
        return self._publish(targets, projection.head, tag_date, fingerprint)

    def _nothing_new(self, fingerprint: dict[str, Any]) -> bool:
        if not self.old_prints or self.state["log"].get("fingerprint") != fingerprint:
            return False
        return _tail_matches(self.log, self.state["log"]) and not _damaged(
            self.output, self.old_files
        )

    def _publish(
        self, targets: list[_Target], head: Head, tag_date: str, fingerprint: dict[str, Any]
    ) -> PublishReport:
        _sweep_leftovers(self.output)
        damaged = _damaged(self.output, self.old_files)
        staging = _Staging(self.output)
        owners: dict[str, str] = {"index.html": "index"}
        prints: dict[str, str] = {}
        rendered = 0
        try:
            for target in targets:
                prints[target.key] = _fingerprint(target)
                if (
                    self.old_prints.get(target.key) == prints[target.key]
                    and target.key not in damaged
                ):
                    owners.update(self.old_owners.get(target.key, {}))
                    continue
                rendered += 1
                for name, data in self._render(target, tag_date):
                    staging.put(name, data)
                    owners[name] = target.key
            staging.put("index.html", self._render_index(targets))
            staging.commit()
        finally:
            staging.discard()
        removed = _remove_stale(self.output, set(self.old_files) - set(owners))
        self._save_state(head, fingerprint, owners, prints)
        return PublishReport(
            self.output,
            head,
            written=tuple(sorted(staging.written)),
            removed=removed,
            unchanged=len(owners) - len(staging.written),
            rendered=rendered,
        )

    def _render(self, target: _Target, tag_date: str) -> Iterator[tuple[str, bytes]]:
        from .exports import timelinejs
        from .feeds import FeedSpec, render_feed

        site = self.site
        yield target.page, self._render_page(target)
        for format in site.formats:
            spec = FeedSpec(
                base_url=site.base_url,
                site_title=site.title,
                feed_path=target.feed(format),
                page_path=target.page,
                tag_date=tag_date,
                limit=site.entries_per_feed,
                author=site.author,
                language=site.language,
            )
            yield target.feed(format), render_feed(target.timeline, spec, format)
        yield (
            target.export,
            orjson.dumps(timelinejs(target.timeline), option=orjson.OPT_INDENT_2) + b"\n",
        )

    def _page(self, target: _Target, path: str, title: str) -> _Page:
        feeds = tuple((format, target.feed(format)) for format in self.site.formats)
        return _Page(self.site, path, title, feeds)

    def _render_page(self, target: _Target) -> bytes:
        page = self._page(target, target.page, target.timeline.title)
        context = _timeline_context(page, target)
        return self._template("timeline.html.j2", context)

    def _render_index(self, targets: list[_Target]) -> bytes:
        page = self._page(targets[0], "index.html", self.site.title)
        return self._template("index.html.j2", _index_context(page, targets))

    def _template(self, name: str, context: dict[str, Any]) -> bytes:
        if self.environment is None:
            self.environment = page_environment(self.config)
        return self.environment.get_template(name).render(context).encode("utf-8")

    def _save_state(
        self,
        head: Head,
        fingerprint: dict[str, Any],
        owners: dict[str, str],
        prints: dict[str, str],
    ) -> None:
        files = {}
        for name, key in sorted(owners.items()):
            info = (self.output / name).stat()
            files[name] = [key, info.st_size, info.st_mtime_ns]
        if _log_fingerprint(self.log) != fingerprint:
            fingerprint = {}  # a writer appended meanwhile: the next run reads the log again
        checkpoint = {
            "seq": head.seq,
            "digest": head.digest,
            "recorded_at": head.recorded_at,
            "fingerprint": fingerprint,
            "tail": _tail_of(self.log, head),
        }
        state = {
            "version": _OUTPUT_VERSION,
            "settings": self.settings,
            "log": checkpoint,
            "timelines": prints,
            "files": files,
        }
        staging = _Staging(self.output)
        try:
            staging.put(f"{_STATE_DIR}/state.json", orjson.dumps(state, option=orjson.OPT_INDENT_2))
            staging.commit()
        finally:
            staging.discard()


def _verified(records: Iterable[Recorded], first: list[Recorded]) -> Iterator[Recorded]:
    """The records, refusing an id recorded twice (what ``verify`` adds to the chain check)."""
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            raise CorruptLog(
                f"id {record.id!r} is recorded twice; run `solidline verify`",
                segment="the log",
                line=record.seq,
                field="id",
            )
        seen.add(record.id)
        if not first:
            first.append(record)
        yield record


def _fingerprint(target: _Target) -> str:
    """What a timeline's files are made of: entries and the lines that shaped them, names."""
    timeline = target.timeline
    entries = [(e.id, [r.seq for r in e.history]) for e in timeline.entries]
    names = sorted((k, repr(v)) for k, v in timeline.entities.items())
    material = repr(
        (
            target.kind,
            timeline.key,
            timeline.title,
            target.related,
            entries,
            names,
            timeline.head if not timeline.entries else None,
        )
    )
    return hashlib.sha256(material.encode()).hexdigest()


def _head_of(record: Recorded) -> Head:
    return Head(record.seq, record.digest, format_timestamp(record.recorded_at))


def _targets(projection: Projection, start: Head) -> list[_Target]:
    """The whole record, every relationship and every entity, each as a timeline.

    A timeline without entries gets the log's first line as its head (feeds take their
    ``updated`` from it), so that its files do not change whenever the log grows.
    """
    entries = projection.entries()
    entities = projection.entities()
    head = projection.head
    by_entity: dict[str, list[Entry]] = {key: [] for key in entities}
    by_pair: dict[str, list[Entry]] = {}
    for entry in entries:
        for entity in entry.entities:
            by_entity.setdefault(entity, []).append(entry)
        for pair in entry.relationships():
            by_pair.setdefault(pair, []).append(entry)
    if "all" in by_entity:
        raise PublishError(
            "an entity has the id 'all', which names the whole record's files "
            "(all.html, feeds/all.atom); correct the entity's id"
        )

    def name(entity: str) -> str:
        definition: EntityDefined | None = entities.get(entity)
        return entity if definition is None else definition.short_name or definition.name

    def timeline(key: str, title: str, chosen: list[Entry]) -> Timeline:
        return Timeline(key, title, tuple(chosen), entities, head if chosen else start)

    targets = [_Target("all", timeline("all", "All events", entries))]
    for pair in sorted(by_pair):
        a, b = parse_pair(pair)
        targets.append(
            _Target("relationship", timeline(pair, f"{name(a)} – {name(b)}", by_pair[pair]), (a, b))
        )
    for entity in sorted(by_entity):
        related = tuple(p for p in sorted(by_pair) if entity in parse_pair(p))
        targets.append(
            _Target("entity", timeline(entity, name(entity), by_entity[entity]), related)
        )
    return targets


def _sweep_leftovers(output: Path) -> None:
    """Remove the temporary files a killed run left (under the lock, none is in use)."""
    for folder in (output, *(output / name for name in _FOLDERS)):
        with contextlib.suppress(FileNotFoundError), os.scandir(folder) as found:
            for entry in found:
                if _TEMPORARY.fullmatch(entry.name):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)


def _remove_stale(output: Path, names: set[str]) -> tuple[str, ...]:
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            (output / name).unlink()
    return tuple(sorted(names))


# -- pages: what the templates are given ----------------------------------------------------------


@attrs.frozen
class _Page:
    """The page being rendered: the site, its path (for relative links) and its feeds."""

    site: SiteConfig
    path: str
    title: str
    feeds: tuple[tuple[str, str], ...]

    @property
    def root(self) -> str:
        """The relative way back to the output folder: ``""`` or ``"../"``."""
        return "../" * self.path.count("/")

    @property
    def url(self) -> str:
        return self.site.base_url + self.path

    def href(self, path: str) -> str:
        return self.root + path


@attrs.frozen
class _Link:
    """A piece of text, linked when ``href`` is set."""

    text: str
    href: str | None = None


@attrs.frozen
class _EntryView:
    """One entry as the page shows it; every field is plain text (the template escapes it)."""

    id: str
    date: str
    datetime: str | None
    span: bool
    title: str
    type: str
    status: str
    summary: str
    place: str | None
    people: tuple[str, ...]
    details: tuple[tuple[str, tuple[_Link, ...]], ...]
    quote: str | None
    note: str | None
    sources: tuple[_SourceView, ...]
    changes: tuple[str, ...]


@attrs.frozen
class _SourceView:
    title: str
    url: str | None
    publisher: str
    published: str
    quote: str | None


_PLAIN_DATE = re.compile(r"[0-9]{4}-(?:0[1-9]|1[0-2])(?:-[0-9]{2})?")


def _timeline_context(page: _Page, target: _Target) -> dict[str, Any]:
    timeline = target.timeline
    entries = [_entry_view(page, timeline, entry) for entry in timeline.entries]
    years: dict[str, list[_EntryView]] = {}
    for entry, view in zip(timeline.entries, entries, strict=True):
        years.setdefault(_year_heading(entry), []).append(view)
    definition = timeline.entities.get(timeline.key) if target.kind == "entity" else None
    updated = max((e.updated for e in timeline.entries), default=None)
    return {
        "page": page,
        "kind": target.kind,
        "timeline": timeline,
        "entity": definition,
        "related": [_timeline_link(page, timeline, key) for key in target.related],
        "years": list(years.items()),
        "count": len(entries),
        "updated": _day(updated.date()) if updated else None,
        "export": page.href(target.export),
    }


def _index_context(page: _Page, targets: list[_Target]) -> dict[str, Any]:
    def row(target: _Target) -> dict[str, Any]:
        entries = target.timeline.entries
        return {
            "title": target.timeline.title,
            "key": target.key,
            "page": page.href(target.page),
            "feeds": [(format, page.href(target.feed(format))) for format in page.site.formats],
            "export": page.href(target.export),
            "count": len(entries),
            "span": _span_of(entries),
        }

    return {
        "page": page,
        "whole": row(targets[0]),
        "relationships": [row(t) for t in targets if t.kind == "relationship"],
        "entities": [row(t) for t in targets if t.kind == "entity"],
    }


def _span_of(entries: tuple[Entry, ...]) -> str:
    years = [y for e in entries for y in (e.when.lower.year, e.when.upper.year) if 1 < y < 9999]
    if not years:
        return ""
    first, last = min(years), max(years)
    return str(first) if first == last else f"{first}–{last}"


def _timeline_link(page: _Page, timeline: Timeline, key: str) -> _Link:
    if "~" in key:
        a, b = parse_pair(key)
        return _Link(
            f"{timeline.name(a)} – {timeline.name(b)}", page.href(f"relationships/{key}.html")
        )
    return _Link(timeline.name(key), page.href(f"entities/{key}.html"))


def _year_heading(entry: Entry) -> str:
    when = entry.when
    if when.lower == dt.date.min:
        return f"Until {when.upper.year}"
    return str(when.lower.year)


def _entry_view(page: _Page, timeline: Timeline, entry: Entry) -> _EntryView:
    event = entry.event
    when = entry.when
    return _EntryView(
        id=entry.id,
        date=when.display(),
        datetime=when.text if _PLAIN_DATE.fullmatch(when.text) else None,
        span=when.is_interval,
        title=event.title,
        type=event.type.replace(".", " ").replace("_", " "),
        status=entry.status,
        summary=event.summary,
        place=event.place,
        people=tuple(_person(timeline, p) for p in event.people),
        details=tuple(_details(page, timeline, event)),
        quote=getattr(event, "quote", None),
        note=event.note,
        sources=tuple(_source_view(s) for s in entry.sources),
        changes=tuple(_changes(entry)),
    )


def _person(timeline: Timeline, person: Person) -> str:
    about = [part for part in (person.role, person.entity and timeline.name(person.entity)) if part]
    return f"{person.name} ({', '.join(about)})" if about else person.name


def _details(
    page: _Page, timeline: Timeline, event: Fact
) -> Iterator[tuple[str, tuple[_Link, ...]]]:
    """Who took part and how, by event type: (label, linked names or text)."""

    def who(*entities: str) -> tuple[_Link, ...]:
        return tuple(_Link(timeline.name(e), page.href(f"entities/{e}.html")) for e in entities)

    def text(value: str) -> tuple[_Link, ...]:
        return (_Link(value),)

    if isinstance(event, Meeting):
        yield (
            "Participants",
            tuple(
                _Link(
                    timeline.name(p.entity) + (f" ({p.role})" if p.role else ""),
                    page.href(f"entities/{p.entity}.html"),
                )
                for p in event.participants
            ),
        )
    elif isinstance(event, Visit):
        yield "Visitor", who(event.visitor)
        yield "Host", who(event.host)
        if event.level:
            yield "Level", text(f"{event.level} visit")
    elif isinstance(event, Congress):
        yield "Congress of", who(event.organisation)
        if event.ordinal:
            yield "Congress", text(_ordinal(event.ordinal))
        if event.delegations:
            yield "Foreign delegations", who(*event.delegations)
    elif isinstance(event, Donation):
        yield "Donor", who(event.donor)
        yield "Recipient", who(event.recipient)
        if event.items:
            yield "Donated", text(event.items)
        if event.amount:
            yield "Amount", text(f"{event.amount} {event.currency}")
    elif isinstance(event, Statement):
        yield "Speaker", who(event.speaker)
        if event.addressees:
            yield "Addressed to", who(*event.addressees)
        if event.about:
            yield "About", who(*event.about)
        yield "Stance", text(event.stance)
    elif isinstance(event, RelationsEstablished):
        yield "Between", who(*event.parties)
        yield "Relations", text(event.relation)
    elif isinstance(event, AgreementSigned):
        yield "Agreement", text(event.name)
        yield "Signed by", who(*event.parties)
    elif isinstance(event, Period):
        yield "Participants", who(*event.participants)
    else:
        yield "Involving", who(*event.entities())


def _ordinal(number: int) -> str:
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"


def _source_view(source: Source) -> _SourceView:
    return _SourceView(
        source.title, source.url, source.publisher, source.published.display(), source.quote
    )


def _changes(entry: Entry) -> Iterator[str]:
    """What the record did to the entry after first recording it, oldest first."""
    for record in entry.history:
        event, on = record.event, _day(record.recorded_at.date())
        reason = f": {event.reason}" if isinstance(event, Amendment) and event.reason else ""
        if isinstance(event, Corrected):
            fields = ", ".join(sorted(event.changes))
            yield f"Corrected on {on} ({fields}){reason}"
        elif isinstance(event, StatusChanged):
            yield f"Marked {event.status} on {on}{reason}"
        elif isinstance(event, Retracted):
            yield f"A correction was withdrawn on {on}{reason}"
        elif isinstance(event, SameAs):
            yield f"Merged with another report of the same event on {on}{reason}"


def _day(day: dt.date) -> str:
    return parse_date(day.isoformat()).display()


# -- writing ---------------------------------------------------------------------------------------


class _Staging:
    """Files written beside their targets first, renamed into place only all together.

    A file whose bytes are already there is not staged (its mtime stays).
    """

    def __init__(self, output: Path) -> None:
        self.output = output
        self.staged: list[tuple[Path, Path]] = []
        self.written: list[str] = []

    def put(self, name: str, data: bytes) -> None:
        target = self.output / name
        try:
            if target.read_bytes() == data:
                return
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _cannot_write(target, exc) from None
        try:
            self.staged.append((_write_temporary(target, data), target))
        except OSError as exc:
            raise _cannot_write(target, exc) from None
        self.written.append(name)

    def commit(self) -> None:
        folders = set()
        try:
            for temporary, target in self.staged:
                os.replace(temporary, target)
                folders.add(target.parent)
            for folder in sorted(folders):
                _fsync_folder(folder)
        except OSError as exc:
            raise _cannot_write(self.output, exc) from None
        self.staged = []

    def discard(self) -> None:
        for temporary, _ in self.staged:
            with contextlib.suppress(OSError):
                temporary.unlink()
        self.staged = []


def _write_temporary(target: Path, data: bytes) -> Path:
    folder = target.parent
    if not folder.is_dir():
        folder.mkdir(parents=True)
        _fsync_folder(folder.parent)
    temporary = folder / f".{target.name}.{secrets.token_hex(6)}{_TEMPORARY_SUFFIX}"
    # 0o666 less the umask, as for any file the user writes: the web server must read it
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temporary.unlink()
        raise
    os.close(fd)
    return temporary


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _cannot_write(path: Path, exc: OSError) -> PublishError:
    return PublishError(
        f"cannot write {path}: {exc.strerror or exc}; the previous output is "
        "left as it was: check the folder's permissions and free space"
    )
