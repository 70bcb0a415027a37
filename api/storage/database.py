"""Engine creation and migrations, the same for SQLite and PostgreSQL.

SQLite (the embedded default, a file in the Flask instance folder) runs in WAL
mode with a busy timeout so several gunicorn workers share the file; write
transactions start with ``BEGIN IMMEDIATE`` so two writers queue on the lock
instead of failing when one upgrades a read snapshot. PostgreSQL is reached
with psycopg 3 (``postgresql+psycopg://``). Migrations are the Alembic scripts
in ``migrations/``, run programmatically under a lock (a PostgreSQL advisory
lock, a file lock beside a SQLite file) so that several processes starting
together migrate once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import stat
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: File name of the embedded database inside the instance folder.
SQLITE_FILE = "twitch-triage.sqlite3"
#: How long a SQLite writer waits for the lock before giving up (ms).
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: Page size of a new database file (an existing file keeps its own). Each commit writes
#: every page it touched whole to the WAL: a stored triage touches about twenty B-trees
#: (tables and indexes) by a few dozen bytes each, so small pages write far less. 1 KB
#: pages cut the writer's disk writes per stored triage from 363 to 115 KB and its CPU by
#: a third against 4 KB (measured with compressed documents, one triage per commit).
SQLITE_PAGE_SIZE = 1024
#: WAL pages after which a committing request checkpoints itself: a backstop only, the
#: background checkpointer normally keeps the WAL far below it (about 40 MB).
SQLITE_WAL_BACKSTOP_PAGES = 40_000
#: SQLite's ``synchronous`` pragma: FULL, so an acknowledged write survives power loss.
SQLITE_SYNCHRONOUS = "FULL"
#: How often each process's background thread moves the WAL into the database (s).
SQLITE_CHECKPOINT_INTERVAL_S = 1.0
#: PostgreSQL connect timeout (s): a down server must fail fast, as a 503.
PG_CONNECT_TIMEOUT_S = 3
#: Advisory lock key for migrations (any constant shared by all instances).
_MIGRATION_LOCK = 727_274_001

#: Errors that mean "the database is not available now", not "the request is wrong".
_UNAVAILABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
)


class StorageUnavailableError(RuntimeError):
    """The database cannot be used right now (down, unreachable, locked): retry later."""


class DuplicateKeyError(RuntimeError):
    """Another request holding the same idempotency key was stored first."""


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Turn "the database is not there" into :class:`StorageUnavailableError`."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StorageUnavailableError(type(getattr(exc, "orig", None) or exc).__name__) from exc


#: Execution option asking for ``BEGIN IMMEDIATE`` on SQLite (a write transaction).
WRITE = {"sqlite_immediate": True}


def default_database_url(instance_path: str) -> str:
    """The embedded SQLite file in the instance folder (created if missing)."""
    folder = Path(instance_path)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return f"sqlite+pysqlite:///{folder / SQLITE_FILE}"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own is DEFERRED).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Takes effect only on a file that has no page yet; must precede journal_mode.
        cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # FULL: every commit fsyncs the WAL before it returns, so nothing acknowledged is
        # lost even to power loss or an OS crash. NORMAL in WAL mode would skip that
        # fsync (it survives kill -9, but power loss can undo the last acknowledged
        # triages, whose 200 the caller already holds); measured, FULL costs one fsync
        # (~0.2 ms here) per write and is kept (see SQLITE_SYNCHRONOUS).
        cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
        # A checkpoint writes back and fsyncs about a thousand pages: done on a request it
        # cost the unlucky request tens of milliseconds (most of a stored triage's mean
        # time). The background checkpointer does it instead; this is only a backstop.
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_BACKSTOP_PAGES}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _start_os_thread(target: Any) -> None:
    """Run ``target`` on a real operating-system thread, even in a gevent worker.

    gevent's ``patch_all`` turns ``threading.Thread`` into a greenlet on the worker's
    one event loop: a checkpoint there (seconds of disk writes and an fsync, during
    which sqlite3 never yields) would stall every request of the worker; that was the
    API's p99 of ~100 ms under load. The original ``_thread.start_new_thread`` gives a
    thread of its own, which sqlite3 runs without holding the GIL.
    """
    try:
        from gevent import monkey  # noqa: PLC0415 (only where gevent is installed)
    except ImportError:  # pragma: no cover (gevent is a dependency)
        monkey = None
    if monkey is not None and monkey.is_module_patched("threading"):
        monkey.get_original("_thread", "start_new_thread")(target, ())
        return
    threading.Thread(target=target, name="sqlite-checkpoint", daemon=True).start()


def _real_sleep() -> Any:
    """``time.sleep`` as the operating system provides it (not gevent's)."""
    try:
        from gevent import monkey  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        return time.sleep
    return monkey.get_original("time", "sleep")


class WriterQueue:
    """Writers of one SQLite file wait in the kernel (``flock``), not in SQLite's busy loop.

    SQLite's busy handler polls with sleeps of 1, 2, 5 … 100 ms, so two gunicorn
    workers that collide lose milliseconds per write; an exclusive ``flock`` on a
    file beside the database wakes the next writer the moment the lock is free.
    The file is opened per process (a descriptor inherited across ``fork`` would
    share one lock between master and workers).
    """

    def __init__(self, database: str) -> None:
        self.path = f"{database}.writer.lock"
        self._pid = -1
        self._file: Any = None

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        if self._pid != os.getpid():
            self._file = open(self.path, "a")  # noqa: SIM115 (held for the process)
            self._pid = os.getpid()
        fcntl.flock(self._file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._file, fcntl.LOCK_UN)


def _fork_guard() -> Any:
    """A native lock that ``os.fork`` takes in the parent and releases on both sides.

    Whatever holds it cannot be in progress when a process forks. Native even in a
    gevent worker: the checkpointer thread that takes it is a native thread.
    """
    lock = native_lock()
    os.register_at_fork(
        before=lock.acquire, after_in_parent=lock.release, after_in_child=_release(lock)
    )
    return lock


def _release(lock: Any) -> Any:
    def release() -> None:
        with contextlib.suppress(RuntimeError):
            lock.release()

    return release


def native_lock() -> Any:
    try:
        from gevent import monkey  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        return threading.Lock()
    return monkey.get_original("_thread", "allocate_lock")()


class _Checkpointer:
    """One daemon thread per process that checkpoints the WAL (PASSIVE) every interval.

    Started lazily by the first write in each process, so a gunicorn master that forks
    its workers after building the app gives each worker its own thread; a real OS
    thread, also in gevent workers (:func:`_start_os_thread`). PASSIVE never blocks
    writers; durability is unchanged (a commit is in the WAL before it returns).
    """

    def __init__(self, engine: Engine) -> None:
        # Weak, so that an engine nobody uses any more (a test's app) ends its thread.
        self._engine = weakref.ref(engine)
        self._pid = -1
        self._lock = threading.Lock()
        # Held while the tick's connection is open; a fork waits for it (see _run).
        self._connection_open = _fork_guard()

    def ensure_running(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            _start_os_thread(self._run)

    def _run(self) -> None:
        sleep = _real_sleep()
        while True:
            sleep(SQLITE_CHECKPOINT_INTERVAL_S)
            engine = self._engine()
            if engine is None:
                return
            path = engine.url.database
            del engine
            # A connection of its own, opened and closed each tick: the engine's pool must
            # hold no connection that a gunicorn fork could hand to a child. A failed
            # checkpoint (busy, file gone) is retried at the next tick.
            # No fork while it is open: a child forked then would inherit SQLite's
            # in-process record of this connection's file locks without the locks (POSIX
            # locks are not inherited), and its writers would skip locks they believe they
            # hold; the kill -9 test lost acknowledged assessments that way, forked from a
            # gunicorn master whose bootstrap write had started this thread.
            with self._connection_open, contextlib.suppress(sqlite3.Error):
                connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                finally:
                    connection.close()


#: The checkpointer of each SQLite engine (PostgreSQL engines have none).
_CHECKPOINTERS: weakref.WeakKeyDictionary[Engine, _Checkpointer] = weakref.WeakKeyDictionary()


def start_checkpointer(engine: Engine) -> None:
    """Make sure this process checkpoints ``engine``'s SQLite WAL in the background."""
    checkpointer = _CHECKPOINTERS.get(engine)
    if checkpointer is not None:
        checkpointer.ensure_running()


#: SQLAlchemy puts a failed statement's parameters (subject ids, answers, search values)
#: into the error's text, and so into a logged traceback; never with patient data.
HIDE_PARAMETERS = True


def _private_sqlite_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only; take the world's access away
    from an existing one and its ``-wal``/``-shm`` files (they hold patient data and
    the audit trail). SQLite gives the ``-wal`` and ``-shm`` files it creates the
    database file's permissions. Group access of an existing file is left as the
    operator set it (a backup group, say).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            mode = stat.S_IMODE(file.stat().st_mode)
            if mode & 0o007:
                file.chmod(mode & ~0o007)


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (``sqlite+pysqlite:///…`` or ``postgresql+psycopg://…``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValueError("an in-memory SQLite database cannot be shared by workers")
        _private_sqlite_file(Path(parsed.database))
        engine = create_engine(
            parsed,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            hide_parameters=HIDE_PARAMETERS,
        )
        _sqlite_events(engine)
        _CHECKPOINTERS[engine] = _Checkpointer(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(
            parsed,
            # A connection broken by a server restart is replaced, not handed out.
            pool_pre_ping=True,
            pool_size=4,
            max_overflow=4,
            pool_timeout=5,
            connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S},
            hide_parameters=HIDE_PARAMETERS,
        )
    raise ValueError(f"unsupported database {parsed.get_backend_name()!r}")


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration's revision id."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:  # pragma: no cover (the package ships its migrations)
        raise RuntimeError("no migrations found")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None before the first migration)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    if is_sqlite(engine):
        database = engine.url.database or ""
        with open(f"{database}.migrate.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with engine.connect() as connection:
                yield connection
        return
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
        connection.commit()
        try:
            yield connection
        finally:
            connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
            connection.commit()


def migrate(engine: Engine) -> None:
    """Bring the database to the newest migration (a no-op when it is there).

    Everything happens under the lock, the first connection included: on a new
    SQLite file that connection switches the journal to WAL, which must not race
    another process doing the same.
    """
    head = head_revision()
    with guarded(), _migration_lock(engine) as connection:
        if MigrationContext.configure(connection).get_current_revision() == head:
            connection.rollback()
            return
        command.upgrade(_alembic_config(connection), "head")
        connection.commit()
