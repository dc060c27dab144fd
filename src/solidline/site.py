"""``publish``: the record as a static site of feeds, timeline pages and TimelineJS exports.

This module is the run: the lock, the checkpoint, which timelines changed, and writing their
files safely. What the pages show and how they are rendered is :mod:`solidline.pages`.

Everything is written into the ``[site] output`` folder::

    public/
      index.html                     every timeline, with its feeds (and feed discovery links)
      style.css                      the one stylesheet of every page
      all.html                       the whole record
      relationships/cpusa~cpv.html   one page per relationship …
      entities/cpusa.html            … and per entity
      feeds/all.atom, all.rss        Atom and RSS ([site] formats) of the whole record,
      feeds/cpusa~cpv.atom, …        of every relationship
      feeds/cpusa.atom, …            and of every entity
      timelines/<key>.json           each timeline in TimelineJS's JSON format
      .solidline/state.json          the checkpoint: log head, segment and folder stats
      .solidline/files.json          what was written: each timeline's fingerprint and years,
                                     each file
      .solidline/projection.checkpoint  the record folded, for the next run to update
      .solidline/publish.lock        flock'ed while a run is under way

Safe under cron:

- **Nothing new, nothing done.** The checkpoint (``.solidline/state.json``, small whatever the
  size of the record) holds the log's head (seq and digest) and, for a JSON Lines log, each
  segment's size and mtime, and the mtime of every output folder. A run whose segments, head
  line, settings, templates and output folders all match it stops there: it reads one line of
  the log and stats a few files, so its cost does not grow with the record. A file added,
  removed or renamed changes its folder's mtime; the files of such a folder are then checked
  one by one against the catalog (``.solidline/files.json``), and a missing or replaced file is
  written again. (A file edited in place, without a rename, is noticed by the next run that
  writes, which checks every file.)
- **Only what was appended is read.** A run that writes keeps the record folded
  (``.solidline/projection.checkpoint``, see :meth:`Projection.save`) and the SHA-256 of every
  segment. The next run hashes the segments: if the log only grew (every byte the last run
  covered is as it was), it brings that projection up to date with the new lines, verifying
  them (decoded, chained on from the last run's head, no id twice), and fingerprints only the
  timelines those lines changed. Otherwise (a log rewritten, tampered with, or a checkpoint
  missing) the whole log is read again, which verifies it all. A log that fails stops the run
  with :class:`~solidline.CorruptLog` before anything is written.
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

import collections
import contextlib
import functools
import gc
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import orjson

from . import __version__
from ._errors import CorruptLog, LogLocked, PublishError
from ._files import TEMPORARY_SUFFIX, exclusive_lock, fsync_folder, write_temporary
from .codec import Recorded, format_timestamp
from .config import Config, SiteConfig
from .log import EventLog, Head, JsonlLog, open_log
from .pages import (
    STYLESHEET,
    Section,
    Target,
    page_environment,
    render_index,
    render_timeline_page,
    site_targets,
    span_of,
    stylesheet,
    template_folders,
)
from .timeline import Entry, Projection, Timeline

if TYPE_CHECKING:  # imported when something is rendered: a run with nothing new needs neither
    import jinja2

    from .feeds import FeedCache, FeedSpec

__all__ = ["PublishReport", "publish"]

# Bumped when what publish writes changes for the same record and templates: the checkpoint of
# an older version is then ignored and every page rendered again.
_OUTPUT_VERSION = 2
_STATE_DIR = ".solidline"
_STATE = "state.json"  # the checkpoint a run with nothing new reads, small at any size
_CATALOG = "files.json"  # what was written: read only by a run that writes
_PROJECTION = "projection.checkpoint"  # the record folded, for the next run to bring up to date
_RESAVE_LINES = 1000
_OUTPUT_FOLDERS = (".", "feeds", "relationships", "entities", "timelines")
_FOLDERS = (_STATE_DIR, *_OUTPUT_FOLDERS[1:])
# A folder's mtime proves its entries unchanged only if taken this long after it last moved:
# file systems keep times in clock ticks (milliseconds on Linux, 2 s on FAT).
_COARSE_NS = 2_000_000_000
_TEMPORARY_SUFFIX = TEMPORARY_SUFFIX
_TEMPORARY = re.compile(r"\..+\.[0-9a-f]{12}" + re.escape(_TEMPORARY_SUFFIX))


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
    busy = (
        f"another `solidline publish` is writing {output} (it holds {lock}); this run stops, "
        "the next one will catch up"
    )
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive_lock(lock, busy))
        except LogLocked:
            raise
        except OSError as exc:
            raise PublishError(f"cannot open the lock file {lock}: {exc.strerror}") from None
        yield


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


def _templates_digest(folders: Iterable[Path]) -> str:
    """What the pages are made of besides the record: every template folder's files."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(f"{path.relative_to(folder)}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


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
    return {files[name][0] for name in _differing(output, files)}


def _differing(output: Path, files: dict[str, list[Any]]) -> set[str]:
    """The files of the catalog that are missing or not as it says (size and mtime)."""
    differing = set()
    folder = os.fspath(output)
    for name, (_, size, mtime_ns) in files.items():
        try:
            info = os.stat(f"{folder}/{name}")
        except OSError:
            differing.add(name)
            continue
        if info.st_size != size or info.st_mtime_ns != mtime_ns:
            differing.add(name)
    return differing


# -- one run ---------------------------------------------------------------------------------------


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
        self.feeds: FeedCache | None = None
        self.state_dir = output / _STATE_DIR
        self.state = _load_state(self.state_dir / _STATE)
        templates = _templates_digest(template_folders(config))
        # what the files are made of besides the record; not where they are (a folder moved
        # or copied elsewhere is not rendered again)
        made_of = attrs.evolve(site, output="")
        self.settings = hashlib.sha256(
            f"{__version__}\0{_OUTPUT_VERSION}\0{made_of!r}\0{templates}".encode()
        ).hexdigest()
        self.same_settings = self.state.get("settings") == self.settings
        self._catalog: _Catalog | None = None
        self.segments: list[list[Any]] = []  # the log's segment hashes, for the next run
        self.saved: Head | None = None  # the head of the saved projection this run loaded
        self.differing: set[str] = set()  # the catalog's files the damage check found changed
        self.spans: dict[str, str] = {}  # the years each timeline covers, for the next run
        self.shown: list[Entry] | None = None  # the entries the output showed, if known
        self.fresh: set[int] | None = None  # ids of the entries not among them (None: unknown)
        self.sections: dict[str, list[Any]] = {}  # each section's heading, size, entries' digest

    def run(self) -> PublishReport:
        fingerprint = _log_fingerprint(self.log)
        if self._nothing_new(fingerprint):
            checkpoint = self.state["log"]
            head = Head(checkpoint["seq"], checkpoint["digest"], checkpoint["recorded_at"])
            return PublishReport(
                self.output, head, unchanged=self.state["output"]["files"], nothing_new=True
            )
        with _collector_spared() as folded:
            projection = self._fold()
            folded()
            first = projection.first
            start = _head_of(first) if first else Head()
            targets = site_targets(projection, start, self.site.entries_per_page)
            changed = projection.take_changes()
            names = _names_print(projection)
            if names != self.catalog().names or not self.same_settings:
                changed = None  # every page shows entity names: all are fingerprinted again
            kept = self._keep(projection)
            return self._publish(
                targets, projection.head, _tag_date(first), fingerprint, changed, names, kept
            )

    def _fold(self) -> Projection:
        """The record folded: a saved projection brought up to date, or a new fold.

        A saved projection is used only if it is the one the catalog names (saved by a run
        that went on to write its output: the output reflects at least its head) and the log
        is as it was then (see :func:`_segment_hashes`); the lines after its head are read
        and checked like any, and the timelines they change are fingerprinted again. Otherwise
        the whole log is read, and so verified, again.
        """
        catalog = self.catalog()
        grew, self.segments = _segment_hashes(self.log, catalog.segments)
        projection = None
        if catalog.projection and grew:
            projection = Projection.load(self.state_dir / _PROJECTION)
        if (
            projection is None
            or [projection.head.seq, projection.head.digest] != catalog.projection
            or not projection.follows(self.log)
        ):
            projection = Projection()
        self.saved = projection.head if projection.head.seq else None
        rendered = self.state["log"]["seq"] if self.saved else 0
        if rendered > projection.head.seq:
            # up to what the output shows first, so that take_changes() then names exactly
            # the timelines that differ from it (a timeline may have changed since the saved
            # projection and changed back, or an event come and gone)
            lines = self.log.read(projection.head.seq + 1, rendered + 1)
            projection.apply(_verified(lines, projection))
            if projection.head.digest != self.state["log"]["digest"]:
                raise CorruptLog(
                    f"line {rendered} is not the line the last publish read; "
                    "run `solidline verify`",
                    segment="the log",
                    line=rendered,
                )
            projection.take_changes()
        if self.saved:
            # the entries as the output shows them: those the new lines leave alone stay the
            # same objects, so that the sections holding none of the others are known unchanged
            self.shown = projection.entries()
        projection.apply(_verified(self.log.read(projection.head.seq + 1), projection))
        return projection

    def _keep(self, projection: Projection) -> Head | None:
        """Save the projection for the next run if the saved one is far behind; the head of
        the saved projection, which the catalog then names (None: there is none).

        Saving a large projection costs about as much as loading it (tens of seconds at a
        million events), so it is saved again only once the lines since its head would cost
        something to apply: a twentieth of the log, and at least a thousand lines. A run that
        stops between saving it and writing the catalog leaves a file the catalog does not
        name: the next run folds the log again.
        """
        behind = projection.head.seq - (self.saved.seq if self.saved else 0)
        if self.saved is not None and behind < max(_RESAVE_LINES, projection.head.seq // 20):
            return self.saved
        try:
            projection.save(self.state_dir / _PROJECTION)
        except OSError:
            return None
        return projection.head

    def catalog(self) -> _Catalog:
        """What the last run wrote (read from its file only when a run needs it)."""
        if self._catalog is None:
            self._catalog = _Catalog.load(self.state_dir / _CATALOG, self.state)
        return self._catalog

    def _nothing_new(self, fingerprint: dict[str, Any]) -> bool:
        """Whether the log, the settings and the output are as the last run left them.

        The output is checked by its folders: a file added, removed or renamed changes its
        folder's mtime, so only the files of a folder that changed are stat'ed one by one. A
        folder whose stamp was taken too soon after it last changed proves nothing (timestamps
        are coarse), and its files are stat'ed; once they check out and the stamp would prove
        something, the state is stamped again so that the next run needs only the folders.
        """
        output = self.state.get("output")
        if (
            not self.same_settings
            or not output
            or self.state["log"].get("fingerprint") != fingerprint
            or not _tail_matches(self.log, self.state["log"])
        ):
            return False
        stamps = _folder_stamps(self.output)
        unproven = _unproven(stamps, output["folders"], output["stamped"])
        if not unproven:
            return True
        catalog = self.catalog()
        if not catalog.prints:
            return False
        files = {n: v for n, v in catalog.files.items() if _folder_of(n) in unproven}
        if _damaged(self.output, files):
            return False
        stamped = time.time_ns()
        if not _unproven(stamps, stamps, stamped):
            self.state["output"] = {**output, "folders": stamps, "stamped": stamped}
            _write_state(self.output, {_STATE: _dumps(self.state)})
        return True

    def _publish(
        self,
        targets: list[Target],
        head: Head,
        tag_date: str,
        fingerprint: dict[str, Any],
        changed: set[str] | None,
        names: str,
        kept: Head | None,
    ) -> PublishReport:
        _sweep_leftovers(self.output)
        staging = _Staging(self.output)
        try:
            owners, prints, rendered = self._stage(targets, tag_date, staging, changed, names)
            staging.commit()
        finally:
            staging.discard()
        removed = _remove_stale(self.output, set(self.catalog().files) - set(owners))
        self._save_state(head, fingerprint, owners, staging.written, prints, names, kept)
        return PublishReport(
            self.output,
            head,
            written=tuple(sorted(staging.written)),
            removed=removed,
            unchanged=len(owners) - len(staging.written),
            rendered=rendered,
        )

    def _stage(
        self,
        targets: list[Target],
        tag_date: str,
        staging: _Staging,
        changed: set[str] | None,
        names: str,
    ) -> tuple[dict[str, str], dict[str, dict[str, str]], int]:
        """Stage the files of the timelines that changed, the index and the stylesheet.

        ``changed`` names the timelines whose entries may differ from the last run's (None:
        any may): the others keep their fingerprint without computing it again.

        Returns:
            Which unit (a timeline, or a section of one) each output file belongs to, every
            unit's fingerprint by timeline, and how many units were rendered.
        """
        catalog = self.catalog()
        if changed is not None and self.shown is not None:
            shown = set(map(id, self.shown))
            self.fresh = {id(e) for e in targets[0].timeline.entries if id(e) not in shown}
        self.differing = _differing(self.output, catalog.files)
        damaged = {catalog.files[name][0] for name in self.differing}
        old_prints = catalog.prints if self.same_settings else {}
        # the index and the stylesheet are the whole site's: staged on every run, written
        # only when their bytes change
        owners: dict[str, str] = {"index.html": "index", STYLESHEET: "index"}
        prints: dict[str, dict[str, str]] = {}
        rendered = 0
        for target in targets:
            key, old = target.key, old_prints.get(target.key, {})
            if changed is not None and key not in changed and old and damaged.isdisjoint(old):
                prints[key] = old
                for unit in old:
                    owners.update(catalog.owned_by(unit))
                    if unit in catalog.sections:
                        self.sections[unit] = catalog.sections[unit]
                continue
            prints[key] = {}
            for unit, fingerprint, render in self._units(target, tag_date, names):
                prints[key][unit] = fingerprint
                if old.get(unit) == fingerprint and unit not in damaged:
                    owners.update(catalog.owned_by(unit))
                    continue
                rendered += 1
                for name, data in render():
                    staging.put(name, data)
                    owners[name] = unit
        self.spans = self._spans(targets, changed)
        index = render_index(self._environment(), self.site, targets, self.spans)
        staging.put("index.html", index)
        staging.put(STYLESHEET, stylesheet(self.config))
        return owners, prints, rendered

    def _spans(self, targets: list[Target], changed: set[str] | None) -> dict[str, str]:
        """The years each timeline covers, for the index: from the catalog for the timelines
        whose entries did not change (``changed``: as in :meth:`_stage`), else computed (a
        span looks at every entry, and the record's timelines hold millions together)."""
        known = self.catalog().spans
        spans = {}
        for target in targets:
            key = target.key
            span = None if changed is None or key in changed else known.get(key)
            spans[key] = span_of(target.timeline.entries) if span is None else span
        return spans

    def _units(
        self, target: Target, tag_date: str, names: str
    ) -> Iterator[tuple[str, str, Callable[[], Iterator[tuple[str, bytes]]]]]:
        """What a timeline is published as, in units rendered together: (key, fingerprint,
        render). The timeline's page and feeds are one, keyed by the timeline's key; a timeline
        in sections has one more for each section's page and TimelineJS file."""
        held = [self._section_entries(target, section) for section in target.sections]
        print_ = _fingerprint(target, names, held)
        yield target.key, print_, lambda: self._render(target, tag_date)
        for section, entries in zip(target.sections, held, strict=True):
            print_ = _section_fingerprint(target, section, names, entries)
            render = functools.partial(self._render_section, target, section)
            yield f"{target.key}@{section.slug}", print_, render

    def _section_entries(self, target: Target, section: Section) -> str:
        """The digest of what a section holds (each entry's id and lines), kept in the catalog.

        Taken from the catalog when the section is as the last run left it, without looking at
        its entries' lines: a section of the same period, heading and size holding none of the
        entries the new lines made (``self.fresh``). A section is every entry of its period
        (or those wider than its subperiods: the heading says which), so one that gained none
        and kept its size lost none either. A million entries at the whole record.
        """
        unit = f"{target.key}@{section.slug}"
        old = self.catalog().sections.get(unit)
        fresh = self.fresh
        if (
            fresh is not None
            and old is not None
            and old[:2] == [section.heading, len(section.entries)]
            and not any(id(entry) in fresh for entry in section.entries)
        ):
            digest: str = old[2]
        else:
            digest = _digest(_shaped_by(section.entries))
        self.sections[unit] = [section.heading, len(section.entries), digest]
        return digest

    def _render(self, target: Target, tag_date: str) -> Iterator[tuple[str, bytes]]:
        from .feeds import FeedCache, render_feed

        yield target.page, render_timeline_page(self._environment(), self.site, target)
        if self.feeds is None:
            self.feeds = FeedCache()  # the run's timelines are of one head
        for format in self.site.formats:
            spec = _feed_spec(self.site, target, format, tag_date)
            feed = render_feed(target.timeline, spec, format, cache=self.feeds)
            yield target.feed(format), feed
        if target.export:
            yield target.export, _timelinejs(target.timeline)

    def _render_section(self, target: Target, section: Section) -> Iterator[tuple[str, bytes]]:
        page = render_timeline_page(self._environment(), self.site, target, section)
        yield target.section_page(section), page
        part = attrs.evolve(target.timeline, entries=section.entries)
        yield target.section_export(section), _timelinejs(part)

    def _environment(self) -> jinja2.Environment:
        if self.environment is None:
            self.environment = page_environment(self.config)
        return self.environment

    def _save_state(
        self,
        head: Head,
        fingerprint: dict[str, Any],
        owners: dict[str, str],
        written: list[str],
        prints: dict[str, dict[str, str]],
        names: str,
        kept: Head | None,
    ) -> None:
        """Write the catalog of files, then the small state that names it (by its digest).

        A run with nothing new reads only the state; the catalog is read by runs that write.
        """
        files = {}
        known, changed = self.catalog().files, self.differing.union(written)
        folder = os.fspath(self.output)
        for name, key in sorted(owners.items()):
            if name in known and name not in changed:
                # as the damage check found it before this run wrote anything (a file changed
                # behind the run's back since then differs from it, and is caught next time)
                files[name] = [key, *known[name][1:]]
                continue
            info = os.stat(f"{folder}/{name}")
            files[name] = [key, info.st_size, info.st_mtime_ns]
        if _log_fingerprint(self.log) != fingerprint:
            fingerprint = {}  # a writer appended meanwhile: the next run reads the log again
        catalog = _dumps(
            {
                "projection": [kept.seq, kept.digest] if kept else None,
                "segments": self.segments,
                "names": names,
                "timelines": prints,
                "spans": self.spans,
                "sections": self.sections,
                "files": files,
            }
        )
        stamps, stamped = _folder_stamps(self.output), time.time_ns()
        state = {
            "version": _OUTPUT_VERSION,
            "settings": self.settings,
            "log": _checkpoint(self.log, head, fingerprint),
            "output": {
                "files": len(files),
                "folders": stamps,
                "stamped": stamped,
                "catalog": hashlib.sha256(catalog).hexdigest(),
            },
        }
        _write_state(self.output, {_CATALOG: catalog, _STATE: _dumps(state)})


class _Catalog:
    """What the last run wrote: every timeline's fingerprint and years (as the index shows
    them), and every file's owner and stat; the head of the projection the files were rendered
    from, and the entity names' print."""

    def __init__(
        self,
        prints: dict[str, dict[str, str]] | None = None,
        files: dict[str, list[Any]] | None = None,
        projection: list[Any] | None = None,
        names: str = "",
        segments: list[list[Any]] | None = None,
        spans: dict[str, str] | None = None,
        sections: dict[str, list[Any]] | None = None,
    ) -> None:
        self.segments = segments
        self.spans = spans or {}
        self.sections = sections or {}
        self.prints = prints or {}
        self.files = files or {}
        self.projection = projection
        self.names = names
        self._owners: dict[str, dict[str, str]] | None = None

    @classmethod
    def load(cls, path: Path, state: dict[str, Any]) -> _Catalog:
        """The catalog the state names; empty if it is missing or not the one named."""
        try:
            data = path.read_bytes()
        except OSError:
            return cls()
        if hashlib.sha256(data).hexdigest() != state.get("output", {}).get("catalog"):
            return cls()  # a run stopped between the two files: render everything again
        found = orjson.loads(data)
        return cls(
            found["timelines"],
            found["files"],
            found["projection"],
            found["names"],
            found["segments"],
            found.get("spans"),
            found.get("sections"),
        )

    def owned_by(self, key: str) -> dict[str, str]:
        """The files of one timeline, by name."""
        if self._owners is None:
            self._owners = {}
            for name, (owner, *_) in self.files.items():
                self._owners.setdefault(owner, {})[name] = owner
        return self._owners.get(key, {})


@contextlib.contextmanager
def _collector_spared() -> Iterator[Callable[[], None]]:
    """Keep the cyclic collector off the folded record; give ``folded()`` once it is made.

    The record folded is millions of objects without cycles. Made with the collector running,
    or made with it paused and then left to it, they would be walked by collection after
    collection while the run makes its own objects (the site's 27,000 timelines at a million
    events took 27 s, most of it the collector walking the record). So the collector is paused
    while the record is folded, then what exists is frozen (:func:`gc.freeze`: moved out of
    the collector's reach) and the collector runs again for what the run makes next; at the
    end the frozen objects are handed back. A process that froze objects of its own keeps
    them frozen: the run then leaves the freeze alone and only pauses during the fold.
    """
    was_enabled = gc.isenabled()
    frozen = False

    def folded() -> None:
        nonlocal frozen
        if not gc.get_freeze_count():  # unfreezing would also thaw what the caller froze
            gc.freeze()
            frozen = True
        if was_enabled:
            gc.enable()

    gc.disable()
    try:
        yield folded
    finally:
        if frozen:
            gc.unfreeze()
        if was_enabled:
            gc.enable()


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2)


def _write_state(output: Path, files: dict[str, bytes]) -> None:
    """Write files of the state folder, each atomically, in the order given."""
    for name, data in files.items():
        staging = _Staging(output)
        try:
            staging.put(f"{_STATE_DIR}/{name}", data)
            staging.commit()
        finally:
            staging.discard()


def _folder_stamps(output: Path) -> dict[str, int]:
    """The mtime of every folder publish writes files into (-1 for one that is missing)."""
    stamps = {}
    for name in _OUTPUT_FOLDERS:
        try:
            stamps[name] = (output / name).stat().st_mtime_ns
        except OSError:
            stamps[name] = -1
    return stamps


def _unproven(now: dict[str, int], then: dict[str, int], stamped: int) -> set[str]:
    """The folders whose entries may have changed since they were stamped at ``stamped``.

    A folder proves nothing if its mtime moved, or if it was stamped within
    :data:`_COARSE_NS` of its mtime: a change in the same clock tick would not show.
    """
    return {
        name
        for name, mtime in now.items()
        if then.get(name) != mtime or mtime >= stamped - _COARSE_NS
    }


def _folder_of(name: str) -> str:
    return name.rpartition("/")[0] or "."


def _checkpoint(log: EventLog, head: Head, fingerprint: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": head.seq,
        "digest": head.digest,
        "recorded_at": head.recorded_at,
        "fingerprint": fingerprint,
        "tail": _tail_of(log, head),
    }


def _tag_date(first: Recorded | None) -> str:
    """The date in the ``tag:`` authority of every feed id: the year of the log's first line.

    Ids must never change (readers would show every entry as new again) and a run must give
    the same bytes whenever it runs, so the date cannot come from the clock. The first line's
    year is fixed once the log has a line, whatever is appended later, and it is close to when
    the publisher began to publish, as RFC 4151 wants (a date the publisher held the host).
    An empty log has no entries to identify: its feeds take 1970 until the first line.
    """
    return str(first.recorded_at.year) if first else "1970"


def _feed_spec(site: SiteConfig, target: Target, format: str, tag_date: str) -> FeedSpec:
    from .feeds import FeedSpec

    return FeedSpec(
        base_url=site.base_url,
        site_title=site.title,
        feed_path=target.feed(format),
        page_path=target.page,
        tag_date=tag_date,
        limit=site.entries_per_feed,
        author=site.author,
        language=site.language,
        entry_page=target.page_of if target.in_sections else None,
    )


def _verified(records: Iterable[Recorded], projection: Projection) -> Iterator[Recorded]:
    """The records, refusing an id the projection already holds (what ``verify`` adds to the
    chain check): an id recorded twice."""
    for record in records:
        if record.id in projection:
            raise CorruptLog(
                f"id {record.id!r} is recorded twice; run `solidline verify`",
                segment="the log",
                line=record.seq,
                field="id",
            )
        yield record


def _timelinejs(timeline: Timeline) -> bytes:
    from .exports import timelinejs

    return orjson.dumps(timelinejs(timeline), option=orjson.OPT_INDENT_2) + b"\n"


def _section_fingerprint(target: Target, section: Section, names: str, entries: str) -> str:
    """What a section's files are made of: its entries (the digest of their ids and lines), its
    neighbours, the timeline's title and names (the whole timeline's count and related
    timelines are on its own page only)."""
    around = [(s.slug, s.heading) if s else None for s in target.around(section)]
    return _digest(
        target.kind,
        target.key,
        target.timeline.title,
        section.slug,
        section.heading,
        around,
        entries,
        names,
    )


def _fingerprint(target: Target, names: str, sections: list[str]) -> str:
    """What a timeline's files are made of: entries and the lines that shaped them, names.

    A timeline in sections is taken by its sections and the digests of what they hold
    (``sections``): every entry is in one of them.
    """
    timeline = target.timeline
    if target.in_sections:
        held: Any = [(s.slug, s.heading, d) for s, d in zip(target.sections, sections, strict=True)]
    else:
        held = _shaped_by(timeline.entries)
    return _digest(
        target.kind,
        timeline.key,
        timeline.title,
        target.related,
        held,
        names,
        timeline.head if not timeline.entries else None,
    )


def _shaped_by(entries: Iterable[Entry]) -> _Verbatim:
    """Each entry's id and the seqs of the lines that shaped it: the text ``repr`` gives of
    ``[(id, [seq, ...]), ...]``, written without making the tuples and lists first (this runs
    over every entry of every timeline fingerprinted, a million for the whole record)."""
    return _Verbatim("[" + ", ".join(map(_shaped_text, entries)) + "]")


def _shaped_text(entry: Entry) -> str:
    history = entry.history
    if len(history) == 1:  # most entries: a fact recorded once and never amended
        return f"({entry.id!r}, [{history[0].seq}])"
    return repr((entry.id, [r.seq for r in history]))


class _Verbatim:
    """A text that enters a digest's material as it is: its ``repr`` is the text itself."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _digest(*material: Any) -> str:
    return hashlib.sha256(repr(material).encode()).hexdigest()


def _names_print(projection: Projection) -> str:
    """What every page takes from the entity definitions, as one digest (pages name entities
    wherever they appear, so a changed definition means every timeline is fingerprinted)."""
    return _digest(sorted((k, repr(v)) for k, v in projection.entities().items()))


def _segment_hashes(log: EventLog, then: list[list[Any]] | None) -> tuple[bool, list[list[Any]]]:
    """The SHA-256 of every segment of a JSON Lines log, and whether the log only grew since the
    hashes ``then``: each segment hashed then still starts with the bytes it had.

    This is what lets a run trust the projection it saved: a line changed anywhere before the
    head it folded is noticed, at the cost of hashing the log once (about a second for half a
    gigabyte here). A log of another kind has no segments: its head line decides.
    """
    if not isinstance(log, JsonlLog):
        return then is not None, []
    covered = {name: (size, digest) for name, size, digest in then or ()}
    grew = then is not None
    hashes = []
    for path in sorted(log.path.glob("*.jsonl")):
        digest, size = hashlib.sha256(), 0
        with path.open("rb") as file:
            old = covered.pop(path.name, None)
            if old is not None:
                prefix = file.read(old[0])
                digest.update(prefix)
                size = len(prefix)
                grew = grew and size == old[0] and digest.hexdigest() == old[1]
            while chunk := file.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        hashes.append([path.name, size, digest.hexdigest()])
    return grew and not covered, hashes


def _head_of(record: Recorded) -> Head:
    return Head(record.seq, record.digest, format_timestamp(record.recorded_at))


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


# -- writing ---------------------------------------------------------------------------------------


class _Staging:
    """Files written beside their targets first, renamed into place only all together.

    A file whose bytes are already there is not staged (its mtime stays). Comparing a file
    with what is there and writing its temporary are I/O (a read, and an fsync of a few
    milliseconds on a real disk for each of hundreds of files), so a few threads do them while
    the run renders the next files; fsyncs that wait at the same time also share the file
    system's journal commits. Errors are raised by :meth:`put` or :meth:`commit`, whichever
    finds them first; nothing is renamed until every temporary file is written and synced.
    """

    _THREADS = 4
    _PENDING = 256  # files handed to the threads and not yet done: bounds the bytes held

    def __init__(self, output: Path) -> None:
        self.output = output
        self.staged: list[tuple[Path, Path]] = []
        self.written: list[str] = []
        self._pending: collections.deque[tuple[str, Future[Path | None]]] = collections.deque()
        self._pool: ThreadPoolExecutor | None = None

    def put(self, name: str, data: bytes) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._THREADS, thread_name_prefix="solidline-publish")
        self._pending.append((name, self._pool.submit(_stage_one, self.output / name, data)))
        self._settle(self._PENDING)

    def _settle(self, pending: int) -> None:
        """Wait until at most ``pending`` files are still with the threads."""
        while len(self._pending) > pending:
            name, future = self._pending[0]
            temporary = future.result()
            self._pending.popleft()
            if temporary is not None:
                self.staged.append((temporary, self.output / name))
                self.written.append(name)

    def commit(self) -> None:
        self._settle(0)
        self._stop()
        folders = set()
        try:
            for temporary, target in self.staged:
                os.replace(temporary, target)
                folders.add(target.parent)
            for folder in sorted(folders):
                fsync_folder(folder)
        except OSError as exc:
            raise _cannot_write(self.output, exc) from None
        self.staged = []

    def discard(self) -> None:
        for _, future in self._pending:
            with contextlib.suppress(Exception):
                temporary = future.result()  # waits: no thread writes a file after this
                if temporary is not None:
                    self.staged.append((temporary, temporary))
        self._pending.clear()
        self._stop()
        for temporary, _ in self.staged:
            with contextlib.suppress(OSError):
                temporary.unlink()
        self.staged = []

    def _stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _stage_one(target: Path, data: bytes) -> Path | None:
    """The synced temporary file of ``target`` holding ``data``; None if it holds them already."""
    try:
        if target.read_bytes() == data:
            return None
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _cannot_write(target, exc) from None
    try:
        return _write_temporary(target, data)
    except OSError as exc:
        raise _cannot_write(target, exc) from None


def _write_temporary(target: Path, data: bytes) -> Path:
    folder = target.parent
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)  # another thread may make it meanwhile
        fsync_folder(folder.parent)
    return write_temporary(target, data)


def _cannot_write(path: Path, exc: OSError) -> PublishError:
    return PublishError(
        f"cannot write {path}: {exc.strerror or exc}; the previous output is "
        "left as it was: check the folder's permissions and free space"
    )
