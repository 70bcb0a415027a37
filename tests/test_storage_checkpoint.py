"""SQLite checkpoints run in the background, not on the request that happens to cross
the WAL threshold (a checkpoint writes back and fsyncs ~1,000 pages: tens of ms)."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from api.storage.database import (
    SQLITE_CHECKPOINT_INTERVAL_S,
    SQLITE_WAL_BACKSTOP_PAGES,
    make_engine,
)
from api.storage.repository import Store


def test_requests_do_not_checkpoint_below_the_backstop(tmp_path: Path):
    engine = make_engine(f"sqlite+pysqlite:///{tmp_path / 'store.sqlite3'}")
    with engine.connect() as connection:
        pages = connection.execute(text("PRAGMA wal_autocheckpoint")).scalar()
    assert pages == SQLITE_WAL_BACKSTOP_PAGES


def test_the_background_thread_moves_the_wal_into_the_database(tmp_path: Path):
    engine = make_engine(f"sqlite+pysqlite:///{tmp_path / 'store.sqlite3'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (b BLOB)"))
    store = Store(engine)
    with store.unit_of_work() as work:  # the first write starts this process's thread
        work._connection.execute(text("INSERT INTO t VALUES (randomblob(200000))"))
    # The row is in the WAL; only a checkpoint writes it into the database file
    # (which no pooled connection closes here, so nothing else checkpoints).
    database = tmp_path / "store.sqlite3"
    deadline = time.monotonic() + 10 * SQLITE_CHECKPOINT_INTERVAL_S
    while database.stat().st_size < 200_000:
        assert time.monotonic() < deadline, "the WAL was not checkpointed in the background"
        time.sleep(0.1)


GEVENT_WORKER = """
from gevent import monkey
monkey.patch_all()  # what gunicorn's gevent worker does first
import sys, time
from pathlib import Path
from sqlalchemy import text
from api.storage.database import make_engine
from api.storage.repository import Store
path = Path(sys.argv[1])
engine = make_engine(f"sqlite+pysqlite:///{path}")
with engine.begin() as connection:
    connection.execute(text("CREATE TABLE t (b BLOB)"))
store = Store(engine)
with store.unit_of_work() as work:
    work._connection.execute(text("INSERT INTO t VALUES (randomblob(200000))"))
# Busy on the event loop without ever yielding, as a worker is while it serves
# requests: a checkpointer that is a greenlet cannot run now; an OS thread can.
deadline = time.perf_counter() + float(sys.argv[2])
while path.stat().st_size < 200_000 and time.perf_counter() < deadline:
    pass
print(path.stat().st_size)
"""


def test_in_a_gevent_worker_the_checkpointer_is_a_real_thread(tmp_path: Path):
    """gevent patches threading: a greenlet checkpointer ran on the request loop."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    done = subprocess.run(
        [sys.executable, "-c", GEVENT_WORKER, str(tmp_path / "store.sqlite3"),
         str(10 * SQLITE_CHECKPOINT_INTERVAL_S)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert int(done.stdout.strip()) >= 200_000, "no checkpoint while the event loop was busy"


FORKING_MASTER = """
import os, sys, time
from sqlalchemy import text
from api.storage import database
from api.storage.database import make_engine
from api.storage.repository import Store
database.SQLITE_CHECKPOINT_INTERVAL_S = 0.0005  # a connection open nearly all the time
path = sys.argv[1]
engine = make_engine(f"sqlite+pysqlite:///{path}")
with engine.begin() as connection:
    connection.execute(text("CREATE TABLE t (b BLOB)"))
store = Store(engine)
with store.unit_of_work() as work:  # as serve's bootstrap does: starts the checkpointer
    work.connection.execute(text("INSERT INTO t VALUES (randomblob(1000))"))
engine.dispose()  # as serve does before gunicorn forks: no pooled connection crosses
time.sleep(0.05)
inherited = 0
for _ in range(200):
    pid = os.fork()
    if pid == 0:  # the child: does it hold the parent's SQLite files open?
        names = {os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")}
        sqlite_files = {os.path.realpath(path) + suffix for suffix in ("", "-wal", "-shm")}
        os._exit(1 if names & sqlite_files else 0)
    inherited += os.waitpid(pid, 0)[1] != 0
print(inherited)
"""


def test_no_checkpointer_connection_is_open_when_the_process_forks(tmp_path: Path):
    """A child forked while the connection was open inherits SQLite's lock records
    without the locks: the kill -9 test lost acknowledged assessments that way, in
    workers forked from the gunicorn master whose bootstrap write started the thread."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    done = subprocess.run(
        [sys.executable, "-c", FORKING_MASTER, str(tmp_path / "store.sqlite3")],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert int(done.stdout.strip()) == 0, "children inherited an open SQLite connection"


FORKING_WRITER = """
import os, sys, time
from api.storage import database
from api.storage.database import make_engine, migrate
from api.storage.repository import AuditRow, Store
database.SQLITE_CHECKPOINT_INTERVAL_S = 0.0005
path = sys.argv[1]
engine = make_engine(f"sqlite+pysqlite:///{path}")
migrate(engine)
store = Store(engine)
row = AuditRow(id="a1", recorded_us=1, subtype="create", action="C", outcome="0",
               entity_type=None, entity_id=None, request_id="r", body=b"{}", tenant="t")
store.append(None, (row,))  # the group commit's own connection stays open after this
engine.dispose()
inherited = 0
for _ in range(50):
    pid = os.fork()
    if pid == 0:
        names = {os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")}
        sqlite_files = {os.path.realpath(path) + suffix for suffix in ("", "-wal", "-shm")}
        os._exit(1 if names & sqlite_files else 0)
    inherited += os.waitpid(pid, 0)[1] != 0
row2 = AuditRow(id="a2", recorded_us=2, subtype="create", action="C", outcome="0",
                entity_type=None, entity_id=None, request_id="r", body=b"{}", tenant="t")
store.append(None, (row2,))  # and the parent writes on after its forks
print(inherited)
"""


def test_no_group_commit_connection_is_open_when_the_process_forks(tmp_path: Path):
    """The group commit keeps its connection between writes; a fork closes it first."""
    import sqlite3  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    database = tmp_path / "store.sqlite3"
    done = subprocess.run(
        [sys.executable, "-c", FORKING_WRITER, str(database)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert int(done.stdout.strip()) == 0, "children inherited an open SQLite connection"
    connection = sqlite3.connect(database)
    try:
        ids = {row[0] for row in connection.execute("SELECT id FROM audit_event")}
    finally:
        connection.close()
    assert ids == {"a1", "a2"}
