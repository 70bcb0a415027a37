"""The repository and unit of work: every read and write of the store goes here.

Writes go through :meth:`Store.unit_of_work` (one transaction, ``BEGIN
IMMEDIATE`` on SQLite, committed on leaving the block, rolled back on an
error); reads open a short read transaction. A database that cannot be
reached, is locked past its timeout or drops the connection raises
:class:`StorageUnavailableError` (the API answers 503 with ``Retry-After``),
so a failure is never mistaken for "not found" and nothing is answered as
stored before it is committed.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    and_,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    true,
)
from sqlalchemy import exc as sa_exc

from api.fhir.search import AUDIT_TOKEN_SYSTEMS, Cursor, DateCondition, SearchQuery, Token
from api.storage.database import (
    WRITE,
    DuplicateKeyError,
    WriterQueue,
    guarded,
    start_checkpointer,
)
from api.storage.group_commit import GroupCommitter
from api.storage.models import (
    Assessment,
    AuditRecord,
    CdsCard,
    CdsFeedback,
    IntakeLink,
    ResourceCode,
    StoredResource,
)


@dataclass(frozen=True, slots=True)
class ResourceIndex:
    """How one Bundle entry is found: its id, type, position and search values."""

    id: str
    resource_type: str
    position: int
    subject: str | None
    date_us: int
    codes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class AssessmentRecord:
    """Everything one stored triage keeps (see :class:`~api.storage.models.Assessment`)."""

    id: str
    received_us: int
    issued_us: int
    source: str
    request_id: str
    knowledge_base_version: str
    software_version: str
    fhir_version: str
    subject: str | None
    request_json: bytes
    result_json: bytes
    bundle_json: bytes
    provenance_json: bytes
    resources: tuple[ResourceIndex, ...]
    idempotency_key: str | None = None
    request_digest: str | None = None
    client: str | None = None
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One AuditEvent with the columns it is searched by."""

    id: str
    recorded_us: int
    subtype: str
    action: str
    outcome: str
    entity_type: str | None
    entity_id: str | None
    request_id: str
    body: bytes
    #: The caller's tenant (None: no credential identified the caller).
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class StoredAssessment:
    """An assessment as read back (what an idempotent retry or a Bundle read needs)."""

    id: str
    issued_us: int
    fhir_version: str
    bundle_json: bytes
    request_digest: str | None


@dataclass(frozen=True, slots=True)
class FoundResource:
    """A resource read by id: its JSON (references resolvable on this server)."""

    body: bytes
    last_updated_us: int


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of matches plus what the links need."""

    resources: tuple[bytes, ...]
    ids: tuple[str, ...]
    #: Exact up to :data:`COUNT_LIMIT` matches; None above (FHIR's total is optional).
    total: int | None
    next_cursor: Cursor | None
    previous_cursor: Cursor | None


def standalone_resource(bundle: dict[str, Any], position: int) -> bytes:
    """Entry ``position`` of a stored Bundle, its ``urn:uuid`` references made ``Type/id``."""
    entries = bundle["entry"]
    body = orjson.dumps(entries[position]["resource"])
    for entry in entries:
        full_url = entry["fullUrl"]
        if full_url.startswith("urn:uuid:"):
            target = f"{entry['resource']['resourceType']}/{full_url[9:]}"
            body = body.replace(f'"{full_url}"'.encode(), f'"{target}"'.encode())
    return body


class UnitOfWork:
    """The writes of one transaction (see :meth:`Store.unit_of_work`)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    @property
    def connection(self) -> Connection:
        """The transaction's connection, for the queries of other modules' tables."""
        return self._connection

    def add_assessment(self, record: AssessmentRecord) -> None:
        """Insert an assessment and its resource index rows (all or nothing)."""
        values = {
            name: getattr(record, name)
            for name in AssessmentRecord.__slots__  # type: ignore[attr-defined]
            if name != "resources"
        }
        try:
            self._connection.execute(insert(Assessment), [values])
        except sa_exc.IntegrityError as exc:
            if record.idempotency_key is not None:
                raise DuplicateKeyError(record.idempotency_key) from exc
            raise
        self._connection.execute(
            insert(StoredResource),
            [
                {
                    "id": r.id,
                    "resource_type": r.resource_type,
                    "assessment_id": record.id,
                    "position": r.position,
                    "subject": r.subject,
                    "date_us": r.date_us,
                    "last_updated_us": record.issued_us,
                }
                for r in record.resources
            ],
        )
        codes = [
            {"resource_id": r.id, "system": system, "code": code}
            for r in record.resources
            for system, code in dict.fromkeys(r.codes)
        ]
        if codes:
            self._connection.execute(insert(ResourceCode), codes)

    def add_audit(self, row: AuditRow) -> None:
        values = {name: getattr(row, name) for name in AuditRow.__slots__}  # type: ignore[attr-defined]
        self._connection.execute(insert(AuditRecord), [values])

    def delete_assessment(self, assessment_id: str, *, tenant: str) -> bool:
        """Erase a tenant's assessment and everything tied to it; False if absent.

        What goes is what a retention purge takes with an assessment
        (:func:`remove_assessments`). Another tenant's assessment is "absent": nothing
        is deleted and the caller answers exactly as for an id that never existed.
        """
        owned = select(Assessment.id).where(
            Assessment.id == assessment_id, Assessment.tenant == tenant
        )
        return bool(remove_assessments(self._connection, owned).assessments)

    def purge(self, *, assessments_before_us: int, audit_before_us: int | None) -> Purged:
        """Delete what is older than the retention; how many rows of each kind went.

        With the assessments goes everything tied to them (:func:`remove_assessments`).
        So do, each by its own time, the rows that name a patient or may hold patient
        data and belong to no stored assessment: intake links that expired before the
        cut-off (a patient reference; unused, or used while nothing was stored), and
        CDS cards and feedback (a clinician's free-text comment) from before it.
        """
        old = select(Assessment.id).where(Assessment.issued_us < assessments_before_us)
        removed = remove_assessments(self._connection, old)
        audits = 0
        if audit_before_us is not None:
            audits = self._connection.execute(
                delete(AuditRecord).where(AuditRecord.recorded_us < audit_before_us)
            ).rowcount
        # Each by its own time: a link once it has expired, a card or feedback once issued.
        links, cards, feedback = (
            self._connection.execute(delete(table).where(moment < assessments_before_us)).rowcount
            for table, moment in (
                (IntakeLink, IntakeLink.expires_us),
                (CdsCard, CdsCard.issued_us),
                (CdsFeedback, CdsFeedback.received_us),
            )
        )
        return Purged(
            removed.assessments,
            audits,
            removed.intake_links + links,
            removed.cds_cards + cards,
            removed.cds_feedback + feedback,
        )


class Removed(NamedTuple):
    """Rows :func:`remove_assessments` deleted, by kind."""

    assessments: int
    intake_links: int
    cds_cards: int
    cds_feedback: int


def remove_assessments(connection: Connection, ids: Select[Any]) -> Removed:
    """Delete the assessments ``ids`` selects and every row tied to them, in one transaction.

    The one place that knows what belongs to an assessment, for erasure and retention
    alike: its resources and their codes (its Bundle and Provenance are its own row),
    the CDS cards that showed it and the feedback on them (a clinician's free-text
    comment), and the intake link whose submission produced it (a patient reference;
    a used link opens nothing, so it is deleted, not kept stripped). Its AuditEvents
    stay: they hold no patient data and record the deletion itself.

    The assessments are locked first (``FOR UPDATE`` on PostgreSQL; SQLite serialises
    writers anyway): a card, feedback or link attached concurrently either commits
    before this reads its rows (READ COMMITTED: each statement below sees it) or waits
    for this commit and then finds its assessment or card gone
    (:meth:`api.storage.cds.CdsStore.add_card`, ``add_feedback``,
    :func:`api.storage.intake_links.attach_assessment`).
    """
    found = connection.execute(ids.with_for_update()).scalars().all()
    if not found:
        return Removed(0, 0, 0, 0)
    chosen = ids.scalar_subquery()
    # Cards before feedback: a feedback write holds its card FOR SHARE until it commits.
    cards = connection.execute(delete(CdsCard).where(CdsCard.assessment_id.in_(chosen))).rowcount
    feedback = connection.execute(
        delete(CdsFeedback).where(CdsFeedback.assessment_id.in_(chosen))
    ).rowcount
    links = connection.execute(
        delete(IntakeLink).where(IntakeLink.assessment_id.in_(chosen))
    ).rowcount
    resource_ids = select(StoredResource.id).where(StoredResource.assessment_id.in_(chosen))
    # Explicit, not only ON DELETE CASCADE: SQLite enforces it only with the pragma.
    connection.execute(delete(ResourceCode).where(ResourceCode.resource_id.in_(resource_ids)))
    connection.execute(delete(StoredResource).where(StoredResource.assessment_id.in_(chosen)))
    assessments = connection.execute(delete(Assessment).where(Assessment.id.in_(chosen))).rowcount
    return Removed(assessments, links, cards, feedback)


def assessment_locked(connection: Connection, assessment_id: str) -> bool:
    """Whether the assessment exists, holding it (``FOR SHARE``) until the transaction ends.

    A row tied to an assessment is written only under this check, so that it never
    outlives an erasure running at the same moment (:func:`remove_assessments`).
    """
    stmt = select(Assessment.id).where(Assessment.id == assessment_id).with_for_update(read=True)
    return connection.execute(stmt).first() is not None


class Purged(NamedTuple):
    """Rows one retention purge deleted, by kind."""

    assessments: int
    audit_events: int
    intake_links: int
    cds_cards: int
    cds_feedback: int


def scoped_idempotency_key(tenant: str | None, client: str | None, key: str) -> str:
    """What the ``idempotency_key`` column holds for a client's key.

    The column is unique across the store, but a key means something only to the
    API client that sent it (as with Stripe's and the IETF draft's keys): two clients
    sending the same key, of two tenants or of one, each get their own assessment,
    and neither learns of the other's key from a replay, a 409 or a 422, nor reads
    the other's stored Bundle through it. The SHA-256 of tenant, client and key keeps
    the constraint (a concurrent duplicate of one client still loses the race) with
    the key scoped to its client.
    """
    return _key_digest(tenant or "", client or "", key)


def _tenant_scoped_idempotency_key(tenant: str | None, key: str) -> str:
    """The column's value for rows stored while keys were scoped to the tenant only."""
    return _key_digest(tenant or "", key)


def _key_digest(*parts: str) -> str:
    return "sha256:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()


#: Matches counted at most; above this a search reports no total (counting 100,000
#: matches for every page would cost more than the page itself).
COUNT_LIMIT = 1000


def _bounded_count(connection: Connection, ids: Select[Any]) -> int | None:
    """How many rows ``ids`` selects, or None when more than COUNT_LIMIT."""
    counted = connection.execute(
        select(func.count()).select_from(ids.limit(COUNT_LIMIT + 1).subquery())
    ).scalar_one()
    return None if counted > COUNT_LIMIT else counted


#: A code carried by at most this many resources (of all tenants) drives its search: the
#: resources carrying it are looked up by id. A commoner one is tested row by row along
#: the date order, where matches are dense enough that a page fills quickly.
RARE_CODE_LIMIT = 5000
#: How many ``code`` parameters of one search are probed (each a bounded index read): a
#: URL repeating ``code`` hundreds of times must not cost hundreds of reads.
RARE_CODE_PROBES = 4


def _rare_code_carriers(
    connection: Connection, codes: Sequence[ColumnElement[bool]]
) -> list[str] | None:
    """Ids of the resources carrying the rarest searched code, if at most RARE_CODE_LIMIT.

    Walking resources newest first and testing each for the code (the plan of a
    code search otherwise) finds a page of a common code at once, but reads every
    Observation for a rare or unknown one: 4.3 s at 100,000 assessments on SQLite.
    Each code's carriers are read from the code index, RARE_CODE_LIMIT + 1 at most;
    as ids given to ``IN`` they lead the plan (a subquery there only filtered rows).
    """
    rarest: list[str] | None = None
    for condition in codes[:RARE_CODE_PROBES]:
        found = connection.execute(
            select(ResourceCode.resource_id).where(condition).limit(RARE_CODE_LIMIT + 1)
        )
        carriers = list(found.scalars())
        if len(carriers) <= RARE_CODE_LIMIT and (rarest is None or len(carriers) < len(rarest)):
            rarest = carriers
    return rarest


def _date_clause(column: Any, condition: DateCondition) -> ColumnElement[bool]:
    start, end = condition.start_us, condition.end_us
    match condition.prefix:
        case "eq":
            return and_(column >= start, column < end)
        case "ne":
            return or_(column < start, column >= end)
        case "gt" | "sa":
            return column >= end
        case "lt" | "eb":
            return column < start
        case "ge":
            return column >= start
        case _:  # "le"
            return column < end


def _token_clause(system_column: Any, code_column: Any, token: Token) -> ColumnElement[bool]:
    if token.system is None:
        return code_column == token.code
    if token.code is None:  # system|: any code of the system
        return system_column == token.system
    return and_(code_column == token.code, system_column == token.system)


def _audit_token_clause(name: str, column: Any, token: Token) -> ColumnElement[bool]:
    """An AuditEvent token: its column holds codes of one system (AUDIT_TOKEN_SYSTEMS).

    ``system|code`` in another system, or ``|code`` (no system), matches nothing;
    ``system|`` of the column's own system matches every event.
    """
    if token.system is not None and token.system != AUDIT_TOKEN_SYSTEMS[name]:
        return false()
    if token.code is None:
        return true()
    return column == token.code


def _keyset(
    stmt: Select[Any], sort: Any, key: Any, cursor: Cursor | None, limit: int
) -> Select[Any]:
    if cursor is None or cursor.direction == "after":
        if cursor is not None:
            stmt = stmt.where(
                or_(sort < cursor.sort_us, and_(sort == cursor.sort_us, key < cursor.id))
            )
        return stmt.order_by(sort.desc(), key.desc()).limit(limit)
    stmt = stmt.where(or_(sort > cursor.sort_us, and_(sort == cursor.sort_us, key > cursor.id)))
    return stmt.order_by(sort.asc(), key.asc()).limit(limit)


T = TypeVar("T")


class Store:
    """The store over one SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(**WRITE)
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self._queue = WriterQueue(database) if database else None
        # Its own queue object: flock excludes per open file, so the committer's thread
        # and this process's other writers each need a descriptor of their own.
        self._committer = GroupCommitter(database, WriterQueue(database)) if database else None

    def append(self, record: AssessmentRecord | None, audits: Sequence[AuditRow]) -> None:
        """Store an assessment (if any) and AuditEvents atomically; return once committed.

        The write of every triage and every audited read. On SQLite it joins the
        concurrent requests' group commit (:mod:`api.storage.group_commit`); on
        PostgreSQL it is one transaction of its own. Raises
        :class:`DuplicateKeyError` for a taken idempotency key and
        :class:`StorageUnavailableError` when nothing could be written.
        """
        if self._committer is not None:
            start_checkpointer(self.engine)
            self._committer.append(record, audits)
            return

        def write(work: UnitOfWork) -> None:
            if record is not None:
                work.add_assessment(record)
            for row in audits:
                work.add_audit(row)

        self.write(write)

    def write(self, job: Callable[[UnitOfWork], T]) -> T:
        """Run ``job`` in one committed write transaction; its result once committed.

        Every write is its own transaction on the calling request; the hot writes (a
        triage's assessment, AuditEvents) go through :meth:`append` instead.
        """
        with self.unit_of_work() as work:
            return job(work)

    @contextlib.contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        """One write transaction: committed when the block ends, rolled back on error."""
        start_checkpointer(self.engine)
        queue = self._queue.turn() if self._queue is not None else contextlib.nullcontext()
        with queue, guarded(), self._writer.begin() as connection:
            yield UnitOfWork(connection)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Connection]:
        with guarded(), self.engine.connect() as connection:
            yield connection

    def ping(self) -> None:
        """Raise StorageUnavailableError unless the database answers."""
        with self._reading() as connection:
            connection.execute(select(1))

    def assessment(self, assessment_id: str, *, tenant: str) -> StoredAssessment | None:
        """A tenant's assessment by id (another tenant's is None, as if it never existed)."""
        return self._assessment(and_(Assessment.id == assessment_id, Assessment.tenant == tenant))

    def assessment_by_key(
        self, key: str, *, tenant: str, client: str | None
    ) -> StoredAssessment | None:
        """The client's assessment stored under the Idempotency-Key ``key``, if any.

        Rows stored before keys were scoped to the client hold the tenant-scoped
        digest, and older ones the key itself; they are found too, among the rows
        this client stored only.
        """
        stored = (
            scoped_idempotency_key(tenant, client, key),
            _tenant_scoped_idempotency_key(tenant, key),
            key,
        )
        return self._assessment(
            and_(
                Assessment.idempotency_key.in_(stored),
                Assessment.tenant == tenant,
                Assessment.client.is_(None) if client is None else Assessment.client == client,
            )
        )

    def _assessment(self, where: ColumnElement[bool]) -> StoredAssessment | None:
        stmt = select(
            Assessment.id,
            Assessment.issued_us,
            Assessment.fhir_version,
            Assessment.bundle_json,
            Assessment.request_digest,
        ).where(where)
        with self._reading() as connection:
            row = connection.execute(stmt).first()
        return None if row is None else StoredAssessment(*row)

    def assessment_columns(self, assessment_id: str) -> dict[str, Any] | None:
        """Every stored column of an assessment (for audits of the record and tests)."""
        with self._reading() as connection:
            row = connection.execute(
                select(Assessment.__table__).where(Assessment.id == assessment_id)
            ).first()
        return None if row is None else dict(row._mapping)

    def provenance(self, assessment_id: str, *, tenant: str) -> FoundResource | None:
        stmt = select(Assessment.provenance_json, Assessment.issued_us).where(
            Assessment.id == assessment_id, Assessment.tenant == tenant
        )
        with self._reading() as connection:
            row = connection.execute(stmt).first()
        return None if row is None else FoundResource(row[0], row[1])

    def resource(
        self, resource_type: str, resource_id: str, *, tenant: str
    ) -> FoundResource | None:
        """A QuestionnaireResponse or Observation by id, cut out of its Bundle."""
        stmt = (
            select(Assessment.bundle_json, StoredResource.position, StoredResource.last_updated_us)
            .join(Assessment, Assessment.id == StoredResource.assessment_id)
            .where(
                StoredResource.id == resource_id,
                StoredResource.resource_type == resource_type,
                Assessment.tenant == tenant,
            )
        )
        with self._reading() as connection:
            row = connection.execute(stmt).first()
        if row is None:
            return None
        return FoundResource(standalone_resource(orjson.loads(row[0]), row[1]), row[2])

    def audit_event(self, event_id: str, *, tenant: str) -> FoundResource | None:
        stmt = select(AuditRecord.body, AuditRecord.recorded_us).where(
            AuditRecord.id == event_id, AuditRecord.tenant == tenant
        )
        with self._reading() as connection:
            row = connection.execute(stmt).first()
        return None if row is None else FoundResource(row[0], row[1])

    def counts(self) -> dict[str, int]:
        """Rows per table (tests and the purge report)."""
        with self._reading() as connection:
            return {
                model.__tablename__: connection.execute(
                    select(func.count()).select_from(model)
                ).scalar_one()
                for model in (Assessment, StoredResource, ResourceCode, AuditRecord)
            }

    # --- search -------------------------------------------------------------------------

    def search(self, query: SearchQuery, *, tenant: str) -> SearchPage:
        """One page of a tenant's search, newest first, with its total."""
        if query.resource_type == "AuditEvent":
            return self._search_audit(query, tenant)
        r = StoredResource
        conditions: list[ColumnElement[bool]] = [
            # Correlated, so the tenant is checked per candidate row by primary key; as
            # ``IN (SELECT id … WHERE tenant = ?)`` SQLite first listed every assessment of
            # the tenant (200 ms per search at 100,000 assessments).
            exists().where(Assessment.id == r.assessment_id, Assessment.tenant == tenant),
        ]
        for values in query.references.get("subject", ()):
            conditions.append(r.subject.in_(values))
        codes = [
            or_(*[_token_clause(ResourceCode.system, ResourceCode.code, t) for t in tokens])
            for tokens in query.tokens.get("code", ())
        ]
        conditions.extend(exists().where(ResourceCode.resource_id == r.id, c) for c in codes)
        for name in ("date", "authored"):
            conditions.extend(_date_clause(r.date_us, c) for c in query.dates.get(name, ()))
        conditions.extend(
            _date_clause(r.last_updated_us, c) for c in query.dates.get("_lastUpdated", ())
        )
        with self._reading() as connection:
            carriers = _rare_code_carriers(connection, codes)
            if carriers is None:
                conditions.append(r.resource_type == query.resource_type)
            elif not carriers:
                return self._page(query, [], False, (), 0)
            else:  # few resources carry the code: look those up by id
                conditions.append(r.id.in_(carriers))
                # The type as an expression, so that no type index competes with the ids
                # (SQLite chose one for its order and tested the ids row by row).
                conditions.append(r.resource_type.concat("") == query.resource_type)
            stmt = select(r.id, r.date_us, r.assessment_id, r.position).where(*conditions)
            total = _bounded_count(connection, select(r.id).where(*conditions))
            rows, more = self._page_rows(connection, stmt, r.date_us, r.id, query)
            bundles: dict[str, dict[str, Any]] = {}
            wanted = {row[2] for row in rows}
            if wanted:
                found = connection.execute(
                    select(Assessment.id, Assessment.bundle_json).where(Assessment.id.in_(wanted))
                )
                bundles = {aid: orjson.loads(body) for aid, body in found}
        bodies = tuple(standalone_resource(bundles[row[2]], row[3]) for row in rows)
        return self._page(query, rows, more, bodies, total)

    def _search_audit(self, query: SearchQuery, tenant: str) -> SearchPage:
        a = AuditRecord
        conditions: list[ColumnElement[bool]] = [a.tenant == tenant]
        conditions.extend(_date_clause(a.recorded_us, c) for c in query.dates.get("date", ()))
        for name, column in (("subtype", a.subtype), ("action", a.action), ("outcome", a.outcome)):
            for tokens in query.tokens.get(name, ()):
                conditions.append(or_(*[_audit_token_clause(name, column, t) for t in tokens]))
        for values in query.references.get("entity", ()):
            conditions.append(
                or_(
                    *[
                        and_(a.entity_type == v.split("/")[0], a.entity_id == v.split("/")[1])
                        for v in values
                    ]
                )
            )
        stmt = select(a.id, a.recorded_us, a.body).where(*conditions)
        with self._reading() as connection:
            total = _bounded_count(connection, select(a.id).where(*conditions))
            rows, more = self._page_rows(connection, stmt, a.recorded_us, a.id, query)
        return self._page(query, rows, more, tuple(row[2] for row in rows), total)

    @staticmethod
    def _page_rows(
        connection: Connection, stmt: Select[Any], sort: Any, key: Any, query: SearchQuery
    ) -> tuple[list[Any], bool]:
        """The page's rows newest first, and whether more lie beyond it in its direction."""
        if query.count == 0:
            return [], False
        rows = list(connection.execute(_keyset(stmt, sort, key, query.cursor, query.count + 1)))
        more = len(rows) > query.count
        rows = rows[: query.count]
        if query.cursor is not None and query.cursor.direction == "before":
            rows.reverse()  # fetched oldest first, walking back towards newer rows
        return rows, more

    @staticmethod
    def _page(
        query: SearchQuery,
        rows: list[Any],
        more: bool,
        bodies: tuple[bytes, ...],
        total: int | None,
    ) -> SearchPage:
        """Links: ``next`` when older rows remain, ``previous`` when newer ones do."""
        backwards = query.cursor is not None and query.cursor.direction == "before"
        next_cursor = previous_cursor = None
        if rows:
            first, last = rows[0], rows[-1]
            if (more and not backwards) or backwards:
                next_cursor = Cursor("after", last[1], last[0])
            if (query.cursor is not None and not backwards) or (backwards and more):
                previous_cursor = Cursor("before", first[1], first[0])
        return SearchPage(
            resources=bodies,
            ids=tuple(row[0] for row in rows),
            total=total,
            next_cursor=next_cursor,
            previous_cursor=previous_cursor,
        )
