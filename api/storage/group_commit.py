"""Group commit of the hot writes on SQLite: many requests' rows, one transaction.

Every triage stores an assessment and an AuditEvent, every read stores an
AuditEvent. As one SQLAlchemy transaction each, that write was half of a
stored triage's CPU time, and its ``fsync`` ran on the request's greenlet,
stalling every other request of the gevent worker while the disk flushed.

:class:`GroupCommitter` gathers the appends of one process's concurrent
requests and writes them with one ``BEGIN IMMEDIATE`` … ``COMMIT`` on a plain
``sqlite3`` connection of its own. Under gevent the transaction runs on a
native thread (gevent's thread pool) while the event loop keeps serving; the
requests whose rows it holds wait for it and are answered only once it has
committed (``synchronous=FULL``): nothing acknowledged is lost.

The SQLite file has one writer at a time, across processes, so what the
writer does while it holds the file bounds the throughput of every worker:
- the batch is taken once the writer holds the file, so requests that arrived
  while the other worker committed share this commit (and its ``fsync``);
- documents are compressed on the request, before it queues;
- each table's rows go in one multi-row INSERT, not one statement step per
  row: every step hands the GIL back, and taking it again from a busy event
  loop can cost the writer milliseconds.
A conflict (one request's duplicate idempotency key) undoes the batch, which is
then written again request by request, each in its own SAVEPOINT, so that
request alone fails.

Why not SQLAlchemy here: its connection pool and caches use ``threading``
locks, which gevent patches into event-loop locks, not meant to be taken from
a native thread. The native thread touches only the ``sqlite3`` module,
``fcntl`` and locks created unpatched. The SQL is derived
from the declared tables, so the columns cannot drift from the models.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import os
import sqlite3
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.dialects import sqlite as sqlite_dialect

from api.storage.database import (
    SQLITE_BUSY_TIMEOUT_MS,
    SQLITE_SYNCHRONOUS,
    SQLITE_WAL_BACKSTOP_PAGES,
    DuplicateKeyError,
    StorageUnavailableError,
    WriterQueue,
    native_lock,
)
from api.storage.documents import CompressedDocument, pack
from api.storage.models import Assessment, AuditRecord, ResourceCode, StoredResource

if TYPE_CHECKING:
    from api.storage.repository import AssessmentRecord, AuditRow

#: sqlite3 errors that mean "the database cannot be used now" (locked past the busy
#: timeout, disk full or read-only, I/O error): the request answers 503, retry later.
_UNAVAILABLE = (sqlite3.OperationalError, sqlite3.InterfaceError)
_POSITIONAL_SQLITE = sqlite_dialect.dialect(paramstyle="qmark")


def _insert(table: Any) -> tuple[str, tuple[str, ...]]:
    """``INSERT INTO t (a, b) VALUES (?, ?)`` for a declared table, and its columns.

    Compiled by SQLAlchemy's SQLite dialect. Positional parameters, in the order of
    the returned columns: sqlite3 binds a tuple by position, where a dict costs a
    name lookup per column (about a quarter of the binding time of a stored triage).
    """
    declared: Table = table.__table__
    names = tuple(column.name for column in declared.columns)
    statement = insert(declared).values({name: bindparam(name) for name in names})
    compiled = statement.compile(dialect=_POSITIONAL_SQLITE)
    if tuple(compiled.positiontup or ()) != names:  # pragma: no cover (SQLAlchemy's order)
        raise RuntimeError(f"{declared.name}: parameters not in column order")
    return str(compiled), names


#: Rows per multi-row INSERT: few statement shapes for the connection's statement cache.
ROWS_PER_STATEMENT = 64
#: Host parameters per statement: SQLite builds before 3.32 allow 999 (now 32,766);
#: staying under the old limit keeps the writer working on any SQLite Python links.
MAX_PARAMETERS = 999


@functools.cache
def _rows_sql(sql: str, width: int, count: int) -> str:
    """``sql`` (one row's INSERT) for ``count`` rows: ``VALUES (?, ?), (?, ?)``."""
    head, separator, _ = sql.partition(" VALUES ")
    if not separator:  # pragma: no cover (SQLAlchemy's INSERT text)
        raise RuntimeError(f"no VALUES clause in {sql!r}")
    one = "(" + ", ".join("?" * width) + ")"
    return f"{head} VALUES {', '.join([one] * count)}"


def _insert_rows(connection: sqlite3.Connection, sql: str, rows: Sequence[Row]) -> None:
    """All ``rows`` with one statement per :data:`ROWS_PER_STATEMENT` (fewer if wide).

    One ``execute`` of many rows instead of ``executemany``: the sqlite3 module hands
    the GIL back around every statement step, and on a busy gevent worker the writer
    thread can wait milliseconds to take it again, while it holds the database.
    """
    if not rows:
        return
    width = len(rows[0])
    step = min(ROWS_PER_STATEMENT, MAX_PARAMETERS // width)
    for start in range(0, len(rows), step):
        chunk = rows[start : start + step]
        values = [value for row in chunk for value in row]
        connection.execute(_rows_sql(sql, width, len(chunk)), values)


_ASSESSMENT_SQL, _ASSESSMENT_COLUMNS = _insert(Assessment)
_RESOURCE_SQL, _RESOURCE_COLUMNS = _insert(StoredResource)
_CODE_SQL, _CODE_COLUMNS = _insert(ResourceCode)
_AUDIT_SQL, _AUDIT_COLUMNS = _insert(AuditRecord)
#: One row's values, in the column order of its INSERT.
Row = tuple[Any, ...]
#: The values of an AssessmentRecord / AuditRow in column order (a new column of the
#: model is a field of the record, picked up here).
_assessment_values = operator.attrgetter(*_ASSESSMENT_COLUMNS)
_audit_values = operator.attrgetter(*_AUDIT_COLUMNS)


def _compressed(table: Any, columns: tuple[str, ...]) -> frozenset[int]:
    """Positions of the columns the model declares compressed (SQLAlchemy packs them
    itself; these plain ``sqlite3`` inserts must do the same)."""
    declared: Table = table.__table__
    return frozenset(
        index
        for index, name in enumerate(columns)
        if isinstance(declared.c[name].type, CompressedDocument)
    )


_ASSESSMENT_PACKED = _compressed(Assessment, _ASSESSMENT_COLUMNS)
_AUDIT_PACKED = _compressed(AuditRecord, _AUDIT_COLUMNS)


def _packed(values: Row, positions: frozenset[int]) -> Row:
    return tuple(pack(value) if i in positions else value for i, value in enumerate(values))


#: Append.of builds the rows of these two tables field by field, in this order; a
#: changed model stops the import here instead of binding values to wrong columns.
_RESOURCE_ROW = (
    "id",
    "resource_type",
    "assessment_id",
    "position",
    "subject",
    "date_us",
    "last_updated_us",
)
_CODE_ROW = ("resource_id", "system", "code")
if _RESOURCE_COLUMNS != _RESOURCE_ROW or _CODE_COLUMNS != _CODE_ROW:  # pragma: no cover
    raise RuntimeError("stored_resource/resource_code columns changed: update Append.of")


@dataclass(slots=True, eq=False)  # compared by identity (see _withdraw)
class Append:
    """One request's rows (an assessment or none, and its audit events) and their fate."""

    assessment: Row | None
    resources: list[Row]
    codes: list[Row]
    audits: list[Row]
    idempotency_key: str | None
    done: bool = False
    error: BaseException | None = None
    compressed: bool = False

    @classmethod
    def of(cls, record: AssessmentRecord | None, audits: Sequence[AuditRow]) -> Append:
        """The rows, built on the request (the writer thread only executes them)."""
        audit_rows = [_audit_values(row) for row in audits]
        if record is None:
            return cls(None, [], [], audit_rows, None)
        bundle_id = record.id
        last_updated_us = record.issued_us
        resources = [
            (r.id, r.resource_type, bundle_id, r.position, r.subject, r.date_us, last_updated_us)
            for r in record.resources
        ]
        codes = [
            (r.id, system, code)
            for r in record.resources
            for system, code in dict.fromkeys(r.codes)
        ]
        return cls(_assessment_values(record), resources, codes, audit_rows, record.idempotency_key)

    def compress(self) -> None:
        """Compress the document columns, as the model's column type would (see
        :mod:`api.storage.documents`). Called on the request, before it queues: the
        writer thread then holds the database only for the inserts and the commit."""
        if self.compressed:  # once only: a frame compressed again would be stored
            return
        if self.assessment is not None:
            self.assessment = _packed(self.assessment, _ASSESSMENT_PACKED)
        self.audits = [_packed(row, _AUDIT_PACKED) for row in self.audits]
        self.compressed = True


def _gevent_patched() -> bool:
    try:
        from gevent import monkey  # noqa: PLC0415 (only where gevent is installed)
    except ImportError:  # pragma: no cover (gevent is a dependency)
        return False
    return bool(monkey.is_module_patched("threading"))


def _offload() -> Callable[..., Any]:
    """How the leader runs a transaction: on gevent's thread pool, or right here."""
    if _gevent_patched():
        import gevent  # noqa: PLC0415

        return gevent.get_hub().threadpool.apply
    return lambda function, args: function(*args)


class _ProcessState:
    """What one process (gunicorn worker) of the committer owns; rebuilt after a fork.

    Created in the process that uses it, after gevent patched ``threading``, so the
    condition the requests wait on is the event loop's and the lock the writer
    thread takes is the operating system's.
    """

    def __init__(self) -> None:
        self.condition = threading.Condition(threading.Lock())
        #: Appended by request greenlets, drained by the writer thread once it holds the
        #: database (``deque`` appends and pops are atomic, so the thread needs no lock).
        self.pending: deque[Append] = deque()
        self.flushing = False
        self.offload = _offload()
        self.writer_lock = native_lock()
        self.connection: sqlite3.Connection | None = None


def _insert_batch(connection: sqlite3.Connection, batch: list[Append]) -> None:
    """Every job's rows, a few multi-row statements per table (parents first)."""
    _insert_rows(connection, _ASSESSMENT_SQL, [job.assessment for job in batch if job.assessment])
    _insert_rows(connection, _RESOURCE_SQL, [row for job in batch for row in job.resources])
    _insert_rows(connection, _CODE_SQL, [row for job in batch for row in job.codes])
    _insert_rows(connection, _AUDIT_SQL, [row for job in batch for row in job.audits])


def _drain(pending: deque[Append]) -> list[Append]:
    """Take every job queued so far (greenlets may append meanwhile; they wait their turn)."""
    batch = []
    with contextlib.suppress(IndexError):
        while True:
            batch.append(pending.popleft())
    return batch


def _withdraw(pending: deque[Append], job: Append) -> bool:
    """Take ``job`` out of the queue if no writer took it yet (atomic: identity compare)."""
    try:
        pending.remove(job)
    except ValueError:
        return False
    return True


def _after_failed_lead(state: _ProcessState, job: Append, failure: BaseException) -> None:
    """What a leader does when its writer call failed before its own job was done.

    A job no writer took is withdrawn, so it is never stored after its request has
    failed: a stopped greenlet (timeout, shutdown) re-raises what stopped it, any other
    failure (the writers' lock file unusable, no thread to run on) is the store being
    unavailable (503). A job a writer took is still being written: wait for it.
    """
    withdrawn = _withdraw(state.pending, job)
    if not isinstance(failure, Exception):
        raise failure
    if withdrawn:
        raise StorageUnavailableError(type(failure).__name__) from failure
    state.condition.wait(0.01)  # the writer marks it done; then the loop ends


class GroupCommitter:
    """Appends of concurrent requests to one SQLite file, committed together."""

    def __init__(self, database: str, queue: WriterQueue) -> None:
        self._database = database
        self._queue = queue
        self._pid = -1
        self._state: _ProcessState | None = None
        self._init_lock = threading.Lock()
        #: Connections opened before a fork: never closed in the child (closing could
        #: release the parent's file locks), never used again.
        self._abandoned: list[sqlite3.Connection] = []
        # No connection of ours is open when this process forks (see _close_before_fork);
        # weak, so that a committer nobody uses any more is not kept alive by the hook.
        close = weakref.WeakMethod(self._close_before_fork)
        os.register_at_fork(before=lambda: (method := close()) is not None and method())

    def _close_before_fork(self) -> None:
        """Close this process's connection (it reopens on the next write) before a fork.

        A child forked while a SQLite connection is open inherits SQLite's record of the
        parent's file locks without the locks, and its writers can overwrite what others
        committed (the checkpointer's fork guard in :mod:`api.storage.database` says how
        this was found). A gunicorn master does not write through here; this keeps it so
        if one ever does. Waits for a transaction in progress.
        """
        state = self._state
        if state is None or self._pid != os.getpid():
            return
        with state.writer_lock:
            self._drop_connection(state)

    def _process_state(self) -> _ProcessState:
        state = self._state
        if state is not None and self._pid == os.getpid():
            return state
        with self._init_lock:
            if self._state is None or self._pid != os.getpid():
                if self._state is not None and self._state.connection is not None:
                    self._abandoned.append(self._state.connection)
                self._state = _ProcessState()
                self._pid = os.getpid()
            return self._state

    def append(self, record: AssessmentRecord | None, audits: Sequence[AuditRow]) -> None:
        """Store ``record`` (if any) and ``audits`` atomically; return once committed.

        Raises :class:`DuplicateKeyError` when another assessment holds the record's
        idempotency key, :class:`StorageUnavailableError` when the database cannot be
        written now (nothing of this request is then stored).
        """
        job = Append.of(record, audits)
        job.compress()
        state = self._process_state()
        with state.condition:
            state.pending.append(job)
            while not job.done:
                if state.flushing:
                    state.condition.wait()
                    continue
                # This request leads: its writer-thread call commits whatever is pending
                # once it holds the database, its own rows and those of every request
                # that arrived while another process was committing. If the leader is
                # interrupted, the thread still finishes and marks its jobs done; a
                # waiter whose job is not done yet then leads the next round.
                state.flushing = True
                state.condition.release()
                failure: BaseException | None
                try:
                    failure = state.offload(self._commit, (state,))
                except BaseException as exc:  # no thread to run on, or this greenlet was stopped
                    failure = exc
                finally:
                    state.condition.acquire()
                    state.flushing = False
                    state.condition.notify_all()
                if failure is not None and not job.done:
                    _after_failed_lead(state, job, failure)
        if job.error is not None:
            raise job.error

    # --- the writer thread: sqlite3, fcntl and the native lock only -------------------

    def _connect(self, state: _ProcessState) -> sqlite3.Connection:
        if state.connection is None:
            connection = sqlite3.connect(
                self._database,
                timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=4 * ROWS_PER_STATEMENT + 16,  # every shape of _insert_rows
            )
            connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            connection.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
            connection.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_BACKSTOP_PAGES}")
            connection.execute("PRAGMA foreign_keys=ON")
            state.connection = connection
        return state.connection

    def _commit(self, state: _ProcessState) -> Exception | None:
        """One transaction for everything pending once this process holds the database.

        The batch is taken after the cross-process turn is granted, not before: the
        requests that arrived while the other worker committed join this transaction
        instead of waiting for one more commit (and ``fsync``) of their own. Every job
        taken ends done, with its error if any. A failure before any job was taken (the
        writers' lock file unusable) is returned, not raised: gevent's thread pool
        would also print a raised one to stderr, a raw traceback outside the JSON log.
        """
        with state.writer_lock:
            try:
                with self._queue.turn():
                    self._write_pending(state)
            except Exception as exc:  # the turn could not be taken (or given back)
                return exc
        return None

    def _write_pending(self, state: _ProcessState) -> None:
        batch = _drain(state.pending)
        if not batch:
            return
        try:
            self._transaction(state, batch)
        except _UNAVAILABLE as exc:
            self._drop_connection(state)
            for job in batch:
                job.error = StorageUnavailableError(type(exc).__name__)
        except BaseException as exc:  # an unexpected failure fails the whole batch
            self._drop_connection(state)
            for job in batch:
                job.error = exc
        finally:
            for job in batch:
                job.done = True

    def _transaction(self, state: _ProcessState, batch: list[Append]) -> None:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` of the batch (the caller holds the turn)."""
        connection = self._connect(state)
        connection.execute("BEGIN IMMEDIATE")
        try:
            try:
                _insert_batch(connection, batch)
            except sqlite3.IntegrityError:
                # A conflict (an idempotency key another assessment holds): undo the
                # batch and write it again job by job, so that job alone fails.
                connection.execute("ROLLBACK")
                connection.execute("BEGIN IMMEDIATE")
                for job in batch:
                    self._insert_job(connection, job)
            connection.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            raise

    @staticmethod
    def _insert_job(connection: sqlite3.Connection, job: Append) -> None:
        connection.execute("SAVEPOINT job")
        try:
            if job.assessment is not None:
                connection.execute(_ASSESSMENT_SQL, job.assessment)
                connection.executemany(_RESOURCE_SQL, job.resources)
                if job.codes:
                    connection.executemany(_CODE_SQL, job.codes)
            connection.executemany(_AUDIT_SQL, job.audits)
        except sqlite3.IntegrityError as exc:
            connection.execute("ROLLBACK TO job")
            connection.execute("RELEASE job")
            job.error = DuplicateKeyError(job.idempotency_key) if job.idempotency_key else exc
            return
        connection.execute("RELEASE job")

    @staticmethod
    def _drop_connection(state: _ProcessState) -> None:
        """Forget a connection a failure may have left mid-transaction (reopened next)."""
        connection, state.connection = state.connection, None
        if connection is not None:
            with contextlib.suppress(sqlite3.Error):
                connection.close()
