"""A throwaway PostgreSQL server for the tests: ``initdb`` into a temporary directory, start it on
127.0.0.1 on a free port (its unix socket in the same directory), create a database, and stop it
and remove everything at the end.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the
``postgres`` user if there is one, else as ``nobody``, in a directory that user owns.

The server runs with ``fsync`` off (``-F``): the tests check what solidline does, not that
PostgreSQL survives a power cut, and a throwaway cluster need not wait for the disk.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import attrs

DATABASE = "solidline_test"
_PLACES = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/opt/homebrew/opt/postgresql*/bin")


class NoPostgres(RuntimeError):
    """No PostgreSQL binaries (``initdb``, ``pg_ctl``) on this machine."""


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: from PATH, else the usual places."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    candidates = [Path(p) for place in _PLACES for p in glob.glob(place)]
    candidates = [p for p in candidates if (p / "initdb").exists() and (p / "pg_ctl").exists()]
    return max(candidates, key=_version_key) if candidates else None


def _version_key(path: Path) -> tuple[int, ...]:
    parts = [int(part) for part in path.parent.name.split(".") if part.isdigit()]
    return tuple(parts) or (0,)


@attrs.frozen
class PgServer:
    """A running server: ``dsn`` names its test database; :meth:`stop` ends it."""

    dsn: str
    port: int
    directory: Path
    bin_dir: Path
    run_as: dict[str, Any]

    def stop(self) -> None:
        subprocess.run(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.directory / "data"),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            capture_output=True,
            check=False,
            **self.run_as,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


def start_server() -> PgServer:
    """Start a server (see the module docstring).

    Raises:
        NoPostgres: there are no PostgreSQL binaries.
        RuntimeError: they are there but the server did not start (the message holds its log).
    """
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise NoPostgres("no initdb/pg_ctl on PATH or in " + ", ".join(_PLACES))
    run_as = _unprivileged()
    directory = Path(tempfile.mkdtemp(prefix="solidline-pg-"))
    try:
        if run_as:
            os.chown(directory, run_as["user"], run_as["group"])
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(directory / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-locale",
            ],
            run_as,
        )
        for _attempt in range(3):  # another process may take the free port first
            port = _free_port()
            options = f"-h 127.0.0.1 -p {port} -k {shlex.quote(str(directory))} -F"
            started = subprocess.run(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(directory / "data"),
                    "-l",
                    str(directory / "server.log"),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    options,
                    "start",
                ],
                capture_output=True,
                text=True,
                check=False,
                **run_as,
            )
            if started.returncode == 0:
                break
        else:
            log = directory / "server.log"
            raise RuntimeError(
                f"the test PostgreSQL server did not start: {started.stderr}\n"
                + (log.read_text(errors="replace")[-3000:] if log.exists() else "")
            )
        server = PgServer(
            f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}", port, directory, bin_dir, run_as
        )
        try:
            _create_database(port)
        except BaseException:
            server.stop()
            raise
        return server
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def _unprivileged() -> dict[str, Any]:
    """subprocess arguments that drop root for PostgreSQL (none when not root)."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    raise RuntimeError("running as root and there is neither a postgres nor a nobody user")


def _run(command: list[str], run_as: dict[str, Any]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, **run_as)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{done.stdout}\n{done.stderr}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _create_database(port: int) -> None:
    import psycopg

    with psycopg.connect(
        f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True
    ) as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
