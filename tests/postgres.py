"""A real PostgreSQL server for the tests: started once per test session from Debian's
`postgresql` package (initdb and pg_ctl in a temporary data directory, as the unprivileged
`postgres` user when the tests run as root), listening on a unix socket of its own only, so
it needs no free port and takes no connection from anything else; a fresh database per test.

A test that asks for it fails, never skips, when PostgreSQL is not installed: CI installs
it (`make sandbox`), and a backend that is not tested is not known to work.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import pytest

SUPERUSER = "postgres"  # the role initdb creates; trust authentication on the socket
_databases = count(1)


def _binaries() -> Path:
    """The directory of initdb and pg_ctl: on PATH, or where Debian puts them (newest)."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not versions:
        pytest.fail(
            "PostgreSQL is not installed, and the storage conformance suite runs against it:"
            " install it (apt-get install postgresql, or make sandbox as root)",
            pytrace=False,
        )
    return versions[-1].parent


def _as_server_user(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the `postgres` user then."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _run(argv: list[str]) -> None:
    done = subprocess.run(_as_server_user(argv), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"{argv[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


@dataclass(frozen=True)
class Server:
    socket_dir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"test_{os.getpid()}_{next(_databases)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            # (FILE_COPY: for a database this small, faster than logging every page)
            admin.execute(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1].split("?")[0]
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    """One server for the test session, in a temporary directory removed afterwards."""
    bin_dir = _binaries()
    # Not under pytest's tmp_path: its directories are root's alone, and the server's user
    # must reach its own.
    root = Path(tempfile.mkdtemp(prefix="conductor-pg-"))
    data = root / "data"
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        _run(
            [
                str(bin_dir / "initdb"),
                "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                "--no-sync",
            ]
        )  # fmt: skip
        options = (
            f"-k {root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=200"
        )
        _run(
            [
                str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"),
                "-o", options, "-w", "start",
            ]
        )  # fmt: skip
        try:
            yield Server(root)
        finally:
            _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: Server) -> Iterator[str]:
    """The URL of a fresh database on the test session's server, dropped after the test."""
    url = postgres_server.create_database()
    yield url
    with contextlib.suppress(Exception):  # a test's leftover connection: dropped with FORCE
        postgres_server.drop_database(url)
