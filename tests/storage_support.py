"""Test support for the store: a private PostgreSQL server and the backends to test on.

PostgreSQL is the real server of the Debian ``postgresql`` package: a cluster
is created with ``initdb`` in a temporary directory and started with
``pg_ctl`` on a free loopback port (as the ``postgres`` user when the tests
run as root, since PostgreSQL refuses to run as root), and removed afterwards.
``.ci/run`` starts one for the whole run and exports its URL in
``TWITCH_TRIAGE_TEST_POSTGRESQL_URL``; without it the tests start their own.
Where PostgreSQL is not installed the PostgreSQL tests skip locally and fail
in CI (``CI`` set): the build must never pass untested on it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from flask import Flask

import api

PG_URL_VARIABLE = "TWITCH_TRIAGE_TEST_POSTGRESQL_URL"


def unavailable(reason: str) -> None:
    """Fail in CI, skip (with the reason) on a developer machine."""
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL unavailable in CI: {reason}")
    pytest.skip(f"PostgreSQL unavailable (set CI=1 to make this a failure): {reason}")


def pg_bin() -> Path | None:
    """The directory of initdb/pg_ctl (Debian keeps them out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One private PostgreSQL cluster on 127.0.0.1, trust auth, user ``postgres``."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *argv: str) -> None:
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        log = str(self.root / "server.log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "-t", "60", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"


@contextlib.contextmanager
def private_postgres() -> Iterator[PostgresServer]:
    """A started private cluster, stopped and removed afterwards."""
    bin_dir = pg_bin()
    if bin_dir is None:
        unavailable("initdb not found (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="twitch-triage-pg-"))
    server = PostgresServer(bin_dir, root)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def create_database(server_url: str) -> str:
    """A new empty database on the server of ``server_url``; its SQLAlchemy URL."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a running PostgreSQL server (the CI one, else a private one for the session)."""
    given = os.environ.get(PG_URL_VARIABLE)
    if given:
        yield given
        return
    with private_postgres() as server:
        yield server.url()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.sqlite3"
    return create_database(request.getfixturevalue("postgres_url"))


@pytest.fixture(name="app")
def app_on_each_backend(database_url: str) -> Flask:
    """``app`` on a fresh database of each backend, for a module that imports this.

    conftest's ``client`` is built from whichever ``app`` the module has, so the
    module's requests then run on SQLite and PostgreSQL alike. ``api.create_app`` is
    looked up at call time: conftest replaces it with its keyed variant.
    """
    return api.create_app({"TESTING": True, "DATABASE_URL": database_url})
