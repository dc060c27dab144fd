"""The log in a PostgreSQL table, for several hosts writing one record.

Layout: one table (``solidline_events`` unless named otherwise)::

    seq          bigint primary key      1, 2, 3 … gap-free
    id           text unique not null    the event id
    line         bytea not null          the line's exact bytes, as in a JSON Lines segment
    recorded_at  timestamptz             the line's ``recorded_at``, for SQL queries

The lines are byte for byte those a :class:`~solidline.log.JsonlLog` writes, so the hash chain is
the same and a table exports to JSON Lines by concatenating ``line`` in seq order.

Writers serialize on a transaction-scoped advisory lock derived from the table's schema and name
(``pg_advisory_xact_lock``); a batch is inserted and committed in that transaction, so it is
visible entirely or not at all, and the lock is released by the commit. Readers use their own
autocommit connection and take no lock. Each commit notifies the channel (``<table>_appended``
unless named otherwise) with the new head seq; :meth:`PostgresLog.wait_for_new` waits for that.

Durability is the server's: a commit returns once PostgreSQL has flushed its WAL (with the default
``synchronous_commit = on``).

Needs psycopg 3: ``pip install solidline[postgres]``.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import orjson

from .._errors import DurabilityError, LogError
from ._base import EventLog, RawLine

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

__all__ = ["SCHEMA_VERSION", "PostgresLog"]

SCHEMA_VERSION = 1
_MARKER = "solidline event log, schema "
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_FIRST_CHUNK = 16  # lines fetched by a read's first query (most lookups need one line)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise LogError(
            "a PostgreSQL log needs psycopg 3, which is not installed: "
            "install solidline[postgres] (pip install 'solidline[postgres]')"
        ) from None
    return psycopg


class PostgresLog(EventLog):
    """A log in a PostgreSQL table that several hosts may append to at once.

    Args:
        dsn: a ``postgresql://`` URL or a libpq connection string.
        table: the table holding the lines, ``name`` or ``schema.name`` (created if missing).
        channel: the LISTEN/NOTIFY channel told of each commit; ``<table>_appended`` by default.
        create: create the table if it does not exist.
        readonly: open for reading only (no table created, no append).
        chunk_size: the most lines a read fetches per query (memory does not grow with the log).
        clock, require_entities: as for :class:`EventLog`.

    Raises:
        LogError: psycopg is not installed, the server cannot be reached, the table is missing
            (and ``create`` is false) or is not a solidline log of a schema version this
            solidline knows.
    """

    def __init__(
        self,
        dsn: str,
        *,
        table: str = "solidline_events",
        channel: str | None = None,
        create: bool = True,
        readonly: bool = False,
        chunk_size: int = 1000,
        **options: object,
    ) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self._pg = _psycopg()
        self._sql: Any = self._pg.sql
        parts = table.split(".")
        channel = channel or f"{parts[-1]}_appended"
        for part in [*parts, channel]:
            if not _NAME.fullmatch(part):
                raise LogError(
                    f"{part!r} is not a plain PostgreSQL name (letters, digits, _; at most 63, "
                    "not beginning with a digit); choose another table or channel name"
                )
        if len(parts) > 2:
            raise LogError(f"{table!r}: a table is named 'name' or 'schema.name'")
        if chunk_size < 1:
            raise LogError(f"chunk_size must be at least 1, not {chunk_size}")
        self.dsn = dsn
        self.table = table
        self.name = table
        self.channel = channel
        self.readonly = readonly
        self.chunk_size = chunk_size
        self._parts = parts
        self._ident: sql.Identifier = self._sql.Identifier(*parts)
        self._lock_key = _lock_key(*parts)  # pinned to schema.table once the table is found
        self._thread_lock = threading.Lock()
        self._closed = False
        self._reader: psycopg.Connection[tuple[Any, ...]] | None = None
        self._writer: psycopg.Connection[tuple[Any, ...]] | None = None
        self._listener: psycopg.Connection[tuple[Any, ...]] | None = None
        try:
            self._check_table(create and not readonly)
        except BaseException:
            self.close()
            raise

    # -- connections -------------------------------------------------------------------------------

    def _connect(self, *, autocommit: bool) -> psycopg.Connection[tuple[Any, ...]]:
        if self._closed:
            raise LogError(f"the log {self.table} was closed")
        try:
            conn: psycopg.Connection[tuple[Any, ...]] = self._pg.connect(
                self.dsn, autocommit=autocommit
            )
        except self._pg.OperationalError as exc:
            raise LogError(
                f"cannot connect to PostgreSQL for the log {self.table}: {_first_line(exc)}; "
                "check the URL, that the server runs and accepts this user"
            ) from None
        return conn

    def _read_conn(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._reader is None or self._reader.closed:
            self._reader = self._connect(autocommit=True)
        return self._reader

    def _write_conn(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._writer is None or self._writer.closed:
            self._writer = self._connect(autocommit=False)
        return self._writer

    def close(self) -> None:
        """Close the connections (an open transaction is rolled back). Idempotent."""
        self._closed = True
        for conn in (self._listener, self._writer, self._reader):
            if conn is not None:
                conn.close()
        self._reader = self._writer = self._listener = None

    # -- the table ---------------------------------------------------------------------------------

    def _check_table(self, create: bool) -> None:
        """Check that the table is a solidline log of this schema version; create it if asked."""
        try:
            comment = self._table_comment(self._read_conn())
            if comment is None and create:
                comment = self._create_table()
            if comment is not None:
                self._pin()
        except self._pg.Error as exc:
            raise LogError(f"cannot open the log table {self.table}: {_first_line(exc)}") from None
        if comment is None:
            raise LogError(
                f"there is no log table {self.table}; open the log for writing (not readonly, "
                "create=True) to create it"
            )
        if not comment.startswith(_MARKER):
            raise LogError(
                f"the table {self.table} exists but is not a solidline log (its comment does not "
                f"say {_MARKER!r}); name another table"
            )
        version = comment[len(_MARKER) :]
        if version != str(SCHEMA_VERSION):
            raise LogError(
                f"the log table {self.table} has schema version {version}, this solidline knows "
                f"version {SCHEMA_VERSION}: use a solidline that knows it"
            )

    def _table_comment(self, conn: psycopg.Connection[tuple[Any, ...]]) -> str | None:
        """The table's comment ("" when it has none), or None when there is no such table."""
        row = conn.execute(
            "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c "
            "WHERE c.oid = to_regclass(%s)",
            (self._ident.as_string(conn),),
        ).fetchone()
        return None if row is None else (row[0] or "")

    def _pin(self) -> None:
        """Name the table by schema and name from now on, and derive the lock from both.

        Hosts that name it ``events`` and ``public.events`` then take the same lock, and a
        connection with another ``search_path`` still finds the same table.
        """
        conn = self._read_conn()
        row = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
            (self._ident.as_string(conn),),
        ).fetchone()
        if row is not None:
            self._ident = self._sql.Identifier(row[0], row[1])
            self._lock_key = _lock_key(row[0], row[1])

    def _create_table(self) -> str | None:
        """Create the table under the writers' lock (hosts opening a new log at once do not race).

        Returns the comment of the table as it is then (another host may have created it first).
        """
        sql = self._sql
        conn = self._read_conn()  # a reader may never append: open no writer connection for it
        with conn.transaction():
            parts = self._parts
            if len(parts) == 1:  # it is created in the current schema: lock as _pin will
                row = conn.execute("SELECT current_schema()").fetchone()
                parts = [row[0], *parts] if row and row[0] else parts
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(*parts),))
            comment = self._table_comment(conn)
            if comment is not None:
                return comment
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} ("
                    " seq bigint PRIMARY KEY CHECK (seq > 0),"
                    " id text UNIQUE NOT NULL,"
                    " line bytea NOT NULL,"
                    " recorded_at timestamptz)"
                ).format(self._ident)
            )
            comment = _MARKER + str(SCHEMA_VERSION)
            conn.execute(
                sql.SQL("COMMENT ON TABLE {} IS {}").format(self._ident, sql.Literal(comment))
            )
        return comment

    # -- reading -----------------------------------------------------------------------------------

    def _raw_lines(self, start: int) -> Iterator[RawLine]:
        """Lines from ``start`` on, fetched in chunks by seq (each chunk its own statement).

        Batches are committed whole and in seq order (the next writer waits for the commit), so
        every chunk holds whole batches of what was committed, and no gap can appear.
        """
        query = self._sql.SQL(
            "SELECT seq, line FROM {} WHERE seq >= %s ORDER BY seq LIMIT %s"
        ).format(self._ident)
        seq, size = max(start, 1), _FIRST_CHUNK
        while True:
            size = min(size, self.chunk_size)
            rows = self._fetch(query, (seq, size))
            for row_seq, line in rows:
                yield RawLine(row_seq, bytes(line), self.table, row_seq)
            if len(rows) < size:
                return
            seq, size = rows[-1][0] + 1, size * 4

    def _fetch(self, query: Any, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        for attempt in (1, 2):
            conn = self._read_conn()
            try:
                with conn.cursor(binary=True) as cur:
                    return cur.execute(query, params).fetchall()
            except self._pg.OperationalError as exc:
                if conn.closed and attempt == 1:
                    continue  # the server dropped the connection (restart, idle timeout): again
                raise LogError(
                    f"reading the log table {self.table} failed: {_first_line(exc)}"
                ) from None
        raise AssertionError("unreachable")

    # -- writing -----------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """A transaction holding the table's advisory lock; rolled back unless ``_write`` committed.

        ``_write`` commits (so that it returns only once the batch is durable, as the base class
        expects); whatever else ends the block, an exception included, rolls back.
        """
        if self.readonly:
            raise LogError(f"the log {self.table} was opened read-only")
        with self._thread_lock:
            conn = self._begin()
            try:
                yield
            finally:
                self._rollback(conn)  # a no-op after _write's commit

    def _begin(self) -> psycopg.Connection[tuple[Any, ...]]:
        """Begin a transaction on the writer connection and take the table's lock in it."""
        for attempt in (1, 2):
            conn = self._write_conn()
            try:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
                return conn
            except self._pg.Error as exc:
                self._rollback(conn)
                if conn.closed and attempt == 1:
                    continue  # the server dropped the connection: nothing was done, so again
                raise LogError(
                    f"cannot lock the log table {self.table}: {_first_line(exc)}"
                ) from None
        raise AssertionError("unreachable")

    def _rollback(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        try:
            conn.rollback()
        except self._pg.Error:
            conn.close()  # a broken connection: the server ends its transaction; reconnect next
        if conn.broken:
            conn.close()

    def _write(self, lines: list[bytes], first_seq: int) -> None:
        conn = self._write_conn()
        rows = []
        for seq, line in enumerate(lines, first_seq):
            envelope = orjson.loads(line)
            rows.append((seq, envelope["id"], line, envelope["recorded_at"]))
        copy = self._sql.SQL("COPY {} (seq, id, line, recorded_at) FROM STDIN").format(self._ident)
        try:
            with conn.cursor() as cur, cur.copy(copy) as out:
                for row in rows:
                    out.write_row(row)
            conn.execute("SELECT pg_notify(%s, %s)", (self.channel, str(rows[-1][0])))
        except self._pg.Error as exc:
            raise LogError(
                f"writing seq {first_seq}… to the log table {self.table} failed, nothing was "
                f"recorded: {_first_line(exc)}"
            ) from None
        try:
            conn.commit()
        except self._pg.Error as exc:
            raise DurabilityError(
                f"the commit of seq {first_seq}… to the log table {self.table} failed "
                f"({_first_line(exc)}); the batch may or may not be recorded: read the log's "
                "head, then append again (ids make a repeated append harmless)"
            ) from None

    # -- waiting for appends -----------------------------------------------------------------------

    def wait_for_new(self, timeout: float, *, after: int | None = None) -> int | None:
        """Wait until the log holds lines past ``after``; return the new head seq, or None.

        Uses LISTEN/NOTIFY on a connection of its own, so a reader wakes up when a writer on any
        host commits, instead of polling. Call it from one thread at a time.

        Args:
            timeout: the most seconds to wait.
            after: the seq the caller has read up to; by default the head this object last saw
                (see :attr:`head`, which reads up to the log's current head).

        Returns:
            The head seq of the log (greater than ``after``), or None when ``timeout`` passed.
        """
        if after is None:
            after = self._head.seq
        deadline = time.monotonic() + timeout
        conn = self._listen()
        try:
            while True:
                # after LISTEN, so an append committed since is notified, not lost; checked
                # after each notification, as other tables may share the channel
                newest = self._max_seq(conn)
                if newest > after:
                    return newest
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                list(conn.notifies(timeout=remaining, stop_after=1))
        except self._pg.OperationalError as exc:
            conn.close()
            self._listener = None
            raise LogError(
                f"waiting for appends to {self.table} failed: {_first_line(exc)}"
            ) from None

    def _listen(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._listener is None or self._listener.closed:
            conn = self._connect(autocommit=True)
            conn.execute(self._sql.SQL("LISTEN {}").format(self._sql.Identifier(self.channel)))
            self._listener = conn
        return self._listener

    def _max_seq(self, conn: psycopg.Connection[tuple[Any, ...]]) -> int:
        query = self._sql.SQL("SELECT coalesce(max(seq), 0) FROM {}").format(self._ident)
        row = conn.execute(query).fetchone()
        return int(row[0]) if row else 0


def _lock_key(*names: str) -> int:
    """The advisory lock's key for a table: 64 bits of a hash of its (schema-qualified) name."""
    digest = hashlib.sha256(b"solidline:" + ".".join(names).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
