"""Feed test helpers: a real feed reader (newsboat, run headless against feeds served on
127.0.0.1), and the fixed specs the record's feeds are rendered with.

newsboat (Debian package ``newsboat``) fetches over HTTP only, so the feeds are served from a
folder by :mod:`http.server` on a free port. ``newsboat -x reload`` fetches every URL in its urls
file and stores the items in its cache, an SQLite file whose ``rss_item`` table is read back.

newsboat keys its cache by guid across all feeds, so one reader (one cache) should subscribe to
feeds that do not share entries, or an item moves from feed to feed.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import pytest

__all__ = [
    "Newsboat",
    "Site",
    "StoredItem",
    "page_path",
    "render_record",
    "require_newsboat",
    "serve",
    "spec_for",
    "timeline_keys",
    "timeline_of",
]


class StoredItem(NamedTuple):
    """One row of newsboat's ``rss_item`` table."""

    guid: str
    title: str
    url: str
    feedurl: str
    pub_date: int
    unread: int
    deleted: int


def require_newsboat() -> str:
    """The path of newsboat; skip the test without it, or fail it when ``CI`` is set."""
    path = shutil.which("newsboat")
    if path is None:
        message = "newsboat is not installed (apt-get install -y newsboat)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the real feed reader")
        pytest.skip(message)
    return path


class Site(NamedTuple):
    """A folder being served: its base URL (ending with '/') and the paths fetched so far."""

    url: str
    fetched: list[str]


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves whole files every time, without Last-Modified: a file rewritten within the second
    of the last fetch would otherwise be "not modified" (to the server, or to libcurl's own
    time condition in newsboat), and a reload would not read it."""

    fetched: list[str]

    def do_GET(self) -> None:
        del self.headers["If-Modified-Since"]
        self.fetched.append(self.path)
        super().do_GET()

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() != "last-modified":
            super().send_header(keyword, value)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(directory: Path) -> Iterator[Site]:
    """Serve ``directory`` on 127.0.0.1 at a free port, in a thread."""
    site = Site("", [])
    handler = type("Handler", (_Handler,), {"fetched": site.fetched})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(directory))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site._replace(url=f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Newsboat:
    """One newsboat reader with its own home, config, urls file and cache under ``home``."""

    def __init__(self, home: Path, urls: list[str]) -> None:
        self.executable = require_newsboat()
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        (home / "urls").write_text("".join(f"{url}\n" for url in urls), encoding="utf-8")
        (home / "config").write_text("reload-threads 1\n", encoding="utf-8")
        self.cache = home / "cache.db"

    def reload(self) -> None:
        """Fetch every feed once, headless, and store what is new; raise on failure."""
        command = [self.executable, "-x", "reload", "-u", "urls", "-c", "cache.db", "-C", "config"]
        env = {
            "HOME": str(self.home),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
        }
        result = subprocess.run(
            command, cwd=self.home, env=env, capture_output=True, timeout=120, check=False
        )
        assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)

    def mark_all_read(self) -> None:
        """What a reader does after reading everything: newsboat's own "mark all read"."""
        with closing(sqlite3.connect(self.cache)) as db, db:
            db.execute("UPDATE rss_item SET unread = 0")

    def items(self) -> list[StoredItem]:
        """Every item in the cache, in the order newsboat stored them."""
        with closing(sqlite3.connect(self.cache)) as db:
            rows = db.execute(
                "SELECT guid, title, url, feedurl, pubDate, unread, deleted"
                " FROM rss_item ORDER BY id"
            ).fetchall()
        return [StoredItem(*row) for row in rows]


# -- the feeds under test, named and placed as the golden files and subprocess checks expect ------

BASE_URL = "https://example.org/solidline/"
SITE_TITLE = "solidline"
TAG_DATE = "2026"


def page_path(key: str) -> str:
    """Where the HTML page of a timeline lives, by its key."""
    if key == "all":
        return "index.html"
    return f"relationships/{key}.html" if "~" in key else f"entities/{key}.html"


def spec_for(key: str, format: str, **changes: Any) -> Any:
    """The fixed :class:`solidline.feeds.FeedSpec` of the feed of timeline ``key``."""
    from solidline.feeds import FeedSpec

    fields: dict[str, Any] = {
        "base_url": BASE_URL,
        "site_title": SITE_TITLE,
        "feed_path": f"feeds/{key}.{format}",
        "page_path": page_path(key),
        "tag_date": TAG_DATE,
    }
    return FeedSpec(**(fields | changes))


def timeline_keys(projection: Any) -> list[str]:
    """``all``, every relationship and every entity of a projection."""
    return ["all", *projection.relationships(), *sorted(projection.entities())]


def timeline_of(projection: Any, key: str) -> Any:
    """The timeline a key names: ``all``, a relationship (``a~b``) or an entity."""
    if key == "all":
        return projection.timeline()
    if "~" in key:
        return projection.timeline(relationship=key)
    return projection.timeline(entity=key)


def render_record(
    events: str | os.PathLike[str], keys: list[str] | None = None
) -> dict[str, bytes]:
    """Every feed of the record at ``events`` (or those of ``keys``): file name -> bytes."""
    from solidline import JsonlLog
    from solidline.feeds import render_feed
    from solidline.timeline import Projection

    projection = Projection.from_log(JsonlLog(os.fspath(events), readonly=True))
    rendered = {}
    for key in keys or timeline_keys(projection):
        for format in ("atom", "rss"):
            feed = render_feed(timeline_of(projection, key), spec_for(key, format), format)
            rendered[f"{key}.{format}"] = feed
    return rendered
