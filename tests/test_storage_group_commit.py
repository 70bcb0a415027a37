"""The SQLite group commit: concurrent appends share transactions, each all or nothing.

Real SQLite files and real threads (and, in a subprocess, real gevent greenlets
with the commit on gevent's native thread pool, as in a ``serve`` worker). What
must hold whatever the interleaving: every append that returned is stored whole
(its assessment, every index row, its AuditEvents); an append that raised left
nothing; a taken idempotency key fails only the request that reused it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from api.storage import (
    DuplicateKeyError,
    StorageUnavailableError,
    Store,
    group_commit,
    make_engine,
    migrate,
)
from api.storage.database import WriterQueue
from api.storage.repository import AssessmentRecord, AuditRow, ResourceIndex

ROOT = Path(__file__).resolve().parents[1]


def record(index: int, key: str | None = None) -> AssessmentRecord:
    """An assessment with two indexed resources (one with two codes)."""
    bundle_id = str(uuid.uuid4())
    return AssessmentRecord(
        id=bundle_id,
        received_us=1_000 + index,
        issued_us=2_000 + index,
        source="v1/triage",
        request_id=f"req-{index}",
        knowledge_base_version="1.1.0",
        software_version="test",
        fhir_version="4.0.1",
        subject=f"Patient/p{index}",
        request_json=b"{}",
        result_json=b"{}",
        bundle_json=json.dumps({"id": bundle_id, "n": index}).encode(),
        provenance_json=b"{}",
        resources=(
            ResourceIndex(str(uuid.uuid4()), "QuestionnaireResponse", 0, f"Patient/p{index}", 5),
            ResourceIndex(
                str(uuid.uuid4()),
                "Observation",
                1,
                f"Patient/p{index}",
                5,
                codes=(("urn:a", "x"), ("urn:b", "y"), ("urn:a", "x")),
            ),
        ),
        idempotency_key=key,
        tenant="t",
        client="c",
    )


def audit(index: int) -> AuditRow:
    return AuditRow(
        id=str(uuid.uuid4()), recorded_us=3_000 + index, subtype="create", action="C",
        outcome="0", entity_type="Bundle", entity_id=None, request_id=f"req-{index}",
        body=b"{}", tenant="t",
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Store:
    engine = make_engine(f"sqlite+pysqlite:///{tmp_path / 'store.sqlite3'}")
    migrate(engine)
    return Store(engine)


def rows(store: Store, sql: str) -> list[tuple]:
    connection = sqlite3.connect(store.engine.url.database)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def assert_whole(store: Store, records: list[AssessmentRecord]) -> None:
    """Exactly these assessments, each with its index rows, codes once each."""
    stored = {row[0] for row in rows(store, "SELECT id FROM assessment")}
    assert stored == {r.id for r in records}
    per = dict(rows(store, "SELECT assessment_id, count(*) FROM resource GROUP BY assessment_id"))
    assert per == {r.id: 2 for r in records}
    codes = rows(store, "SELECT count(*) FROM resource_code")[0][0]
    assert codes == 2 * len(records)


def test_concurrent_threads_are_all_stored_whole_in_fewer_transactions(store, monkeypatch):
    transactions = count_transactions(monkeypatch)
    records = [record(i) for i in range(64)]
    barrier = threading.Barrier(16)

    def client(chunk: list[AssessmentRecord]) -> None:
        barrier.wait()
        for one in chunk:
            store.append(one, (audit(0),))

    threads = [threading.Thread(target=client, args=(records[i::16],)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert_whole(store, records)
    assert rows(store, "SELECT count(*) FROM audit_event")[0][0] == 64
    assert sum(transactions) == 64
    assert len(transactions) < 64, "concurrent appends never shared a transaction"


def test_a_reused_idempotency_key_fails_only_that_request(store):
    first = record(1, key="same")
    store.append(first, (audit(1),))
    again, other = record(2, key="same"), record(3, key="other")
    outcomes: dict[str, BaseException | None] = {}
    barrier = threading.Barrier(2)

    def send(one: AssessmentRecord) -> None:
        barrier.wait()
        try:
            store.append(one, (audit(0),))
            outcomes[one.id] = None
        except BaseException as exc:  # recorded for the assertions
            outcomes[one.id] = exc

    threads = [threading.Thread(target=send, args=(one,)) for one in (again, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert isinstance(outcomes[again.id], DuplicateKeyError)
    assert outcomes[other.id] is None
    assert_whole(store, [first, other])
    # The refused request's AuditEvent went with it (its savepoint rolled back).
    assert rows(store, "SELECT count(*) FROM audit_event")[0][0] == 2


@contextlib.contextmanager
def another_writer(store: Store) -> Iterator[None]:
    """Hold the writers' cross-process lock, as a worker committing in another process."""
    with open(f"{store.engine.url.database}.writer.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def queued(store: Store) -> int:
    """How many appends wait in this process's queue for the writer."""
    state = store._committer._state
    return len(state.pending) if state is not None else 0


def count_transactions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    transactions: list[int] = []
    real = group_commit.GroupCommitter._transaction

    def counted(self, state, batch):  # count the transactions, then do the real one
        transactions.append(len(batch))
        return real(self, state, batch)

    monkeypatch.setattr(group_commit.GroupCommitter, "_transaction", counted)
    return transactions


def appending(store: Store, jobs: list[tuple[AssessmentRecord, AuditRow]]):
    """Threads appending each job; their outcomes (None or the exception) by record id."""
    outcomes: dict[str, BaseException | None] = {}

    def send(one: AssessmentRecord, event: AuditRow) -> None:
        try:
            store.append(one, (event,))
            outcomes[one.id] = None
        except BaseException as exc:  # recorded for the assertions
            outcomes[one.id] = exc

    threads = [threading.Thread(target=send, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    return threads, outcomes


def test_appends_queued_while_another_process_writes_share_the_next_commit(store, monkeypatch):
    """The batch is taken once the writer holds the file, not when the leader started
    waiting for it: 40 requests that queued meanwhile commit together (their 80
    resource rows span two multi-row INSERTs)."""
    transactions = count_transactions(monkeypatch)
    store.append(None, (audit(0),))
    records = [record(i) for i in range(40)]
    with another_writer(store):
        threads, outcomes = appending(store, [(r, audit(i)) for i, r in enumerate(records)])
        wait_until(lambda: queued(store) == len(records))
        assert transactions == [1]  # nobody wrote while the other process held the file
    for thread in threads:
        thread.join(60)
    assert outcomes == {r.id: None for r in records}
    assert transactions == [1, 40]
    assert_whole(store, records)
    assert rows(store, "SELECT count(*) FROM audit_event")[0][0] == 41


def test_a_large_batch_stays_within_old_sqlite_parameter_limits(store, monkeypatch):
    """SQLite builds before 3.32 allow 999 host parameters per statement: a batch of 70
    assessments (17 columns each) is split so that no INSERT needs more."""
    real_connect = group_commit.GroupCommitter._connect

    def limited(self, state):
        connection = real_connect(self, state)
        connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
        return connection

    monkeypatch.setattr(group_commit.GroupCommitter, "_connect", limited)
    transactions = count_transactions(monkeypatch)
    store.append(None, (audit(0),))
    records = [record(i) for i in range(70)]
    with another_writer(store):
        threads, outcomes = appending(store, [(r, audit(i)) for i, r in enumerate(records)])
        wait_until(lambda: queued(store) == len(records))
    for thread in threads:
        thread.join(60)
    assert outcomes == {r.id: None for r in records}
    assert transactions == [1, 70]
    assert_whole(store, records)


def test_a_reused_key_in_a_shared_commit_fails_that_request_alone(store, monkeypatch):
    first = record(1, key="same")
    store.append(first, (audit(1),))
    transactions = count_transactions(monkeypatch)
    again = record(2, key="same")
    others = [record(i, key=f"k{i}") for i in range(3, 11)]
    jobs = [(one, audit(0)) for one in (*others[:4], again, *others[4:])]
    with another_writer(store):
        threads, outcomes = appending(store, jobs)
        wait_until(lambda: queued(store) == len(jobs))
    for thread in threads:
        thread.join(60)
    assert transactions == [len(jobs)]  # one batch, written again job by job
    assert isinstance(outcomes[again.id], DuplicateKeyError)
    assert {r.id: outcomes[r.id] for r in others} == {r.id: None for r in others}
    assert_whole(store, [first, *others])
    # The refused request's AuditEvent went with it (its savepoint rolled back).
    assert rows(store, "SELECT count(*) FROM audit_event")[0][0] == 1 + len(others)


def test_a_writer_that_cannot_take_its_turn_is_unavailable_and_never_stores_later(
    store, monkeypatch
):
    """The writers' lock file unusable (a read-only or full disk): the request fails as
    503, and its rows are withdrawn, not left queued for a later commit to store after
    the caller was told it failed."""
    store.append(None, (audit(0),))

    def unusable(_queue: WriterQueue):
        raise OSError("read-only file system")

    with monkeypatch.context() as patch:
        patch.setattr(WriterQueue, "turn", unusable)
        refused = record(1)
        with pytest.raises(StorageUnavailableError):
            store.append(refused, (audit(1),))
        assert queued(store) == 0
    later = record(2)
    store.append(later, (audit(2),))
    assert_whole(store, [later])
    assert rows(store, "SELECT count(*) FROM audit_event")[0][0] == 2


def test_a_locked_database_is_unavailable_and_stores_nothing_then_recovers(store, monkeypatch):
    monkeypatch.setattr(group_commit, "SQLITE_BUSY_TIMEOUT_MS", 200)
    blocker = sqlite3.connect(store.engine.url.database, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageUnavailableError):
            store.append(record(1), (audit(1),))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert rows(store, "SELECT count(*) FROM assessment")[0][0] == 0
    assert rows(store, "SELECT count(*) FROM audit_event")[0][0] == 0
    later = record(2)
    store.append(later, (audit(2),))
    assert_whole(store, [later])


def test_an_audit_without_assessment_is_stored(store):
    store.append(None, (audit(1), audit(2)))
    assert rows(store, "SELECT count(*) FROM audit_event")[0][0] == 2
    assert rows(store, "SELECT count(*) FROM assessment")[0][0] == 0


#: What every gevent script starts with: patched as a serve worker is first, a migrated
#: store on the file ``argv[1]``, and this module's record builders.
GEVENT_PREAMBLE = """
from gevent import monkey
monkey.patch_all()  # what gunicorn's gevent worker does first
import fcntl, json, sys
import gevent
from api.storage import Store, StorageUnavailableError, group_commit, make_engine, migrate
from api.storage.database import WriterQueue
sys.path.insert(0, sys.argv[2])
from test_storage_group_commit import audit, record
engine = make_engine(f"sqlite+pysqlite:///{sys.argv[1]}")
migrate(engine)
store = Store(engine)
"""


def in_gevent_worker(script: str, database: Path) -> tuple[Any, str]:
    """Run ``script`` after :data:`GEVENT_PREAMBLE` in a new process, as in a ``serve``
    worker (the commit on gevent's native thread pool): its last line of output, read
    as JSON, and its stderr."""
    done = subprocess.run(
        [sys.executable, "-c", GEVENT_PREAMBLE + script, str(database), str(ROOT / "tests")],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def stored_ids(database: Path) -> set[str]:
    connection = sqlite3.connect(database)
    try:
        return {row[0] for row in connection.execute("SELECT id FROM assessment")}
    finally:
        connection.close()


GEVENT_WORKER = """
transactions = []
real = group_commit.GroupCommitter._transaction
def counted(self, state, batch):
    transactions.append(len(batch))
    return real(self, state, batch)
group_commit.GroupCommitter._transaction = counted
records = [record(i) for i in range(40)]
gevent.joinall([gevent.spawn(store.append, r, (audit(0),)) for r in records], raise_error=True)
print(json.dumps({"ids": [r.id for r in records], "transactions": transactions}))
"""


def test_greenlets_share_transactions_on_the_native_thread_pool(tmp_path):
    database = tmp_path / "store.sqlite3"
    outcome, _ = in_gevent_worker(GEVENT_WORKER, database)
    connection = sqlite3.connect(database)
    try:
        audits = connection.execute("SELECT count(*) FROM audit_event").fetchone()[0]
    finally:
        connection.close()
    assert stored_ids(database) == set(outcome["ids"])
    assert audits == 40
    assert sum(outcome["transactions"]) == 40
    # 40 greenlets arrive while the first transaction is on the thread pool.
    assert len(outcome["transactions"]) < 10, outcome["transactions"]


INTERRUPTED_LEADER = """
records = [record(i) for i in range(12)]
with open(f"{sys.argv[1]}.writer.lock", "a") as other_process:
    fcntl.flock(other_process, fcntl.LOCK_EX)  # another worker is committing
    leader = gevent.spawn(store.append, records[0], (audit(0),))
    gevent.sleep(0.2)  # the leader's writer thread now waits for the lock
    followers = [gevent.spawn(store.append, r, (audit(0),)) for r in records[1:]]
    gevent.sleep(0.2)
    leader.kill()  # a timeout or shutdown stops the leader mid-wait
    fcntl.flock(other_process, fcntl.LOCK_UN)
gevent.joinall(followers, timeout=60)
print(json.dumps({
    "followers": [r.id for r in records[1:]],
    "succeeded": [g.successful() for g in followers],
}))
"""


def test_a_stopped_leader_leaves_no_follower_waiting_and_none_unstored(tmp_path):
    """A leader greenlet killed while its writer thread waits for the file: the thread
    still writes the batch, and every follower is answered, its rows stored."""
    database = tmp_path / "store.sqlite3"
    outcome, _ = in_gevent_worker(INTERRUPTED_LEADER, database)
    assert all(outcome["succeeded"]), outcome
    assert set(outcome["followers"]) <= stored_ids(database)


UNUSABLE_LOCK_UNDER_GEVENT = """
def unusable(_queue):
    raise PermissionError("writer lock file not writable")
WriterQueue.turn = unusable
outcomes = []
def send(one):
    try:
        store.append(one, (audit(0),))
        outcomes.append("stored")
    except StorageUnavailableError:
        outcomes.append("unavailable")
gevent.joinall([gevent.spawn(send, record(i)) for i in range(5)], timeout=60)
print(json.dumps(outcomes))
"""


def test_an_unusable_lock_under_gevent_is_unavailable_without_a_raw_traceback(tmp_path):
    """In a serve worker the writer runs on gevent's thread pool, which prints any
    exception raised there to stderr: a request whose writer cannot take its turn
    answers 503 and the log gets no traceback outside its JSON lines."""
    outcome, stderr = in_gevent_worker(UNUSABLE_LOCK_UNDER_GEVENT, tmp_path / "s.sqlite3")
    assert outcome == ["unavailable"] * 5
    assert "Traceback" not in stderr, stderr
