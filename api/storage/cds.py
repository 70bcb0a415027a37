"""CDS Hooks storage (issue 13): registered EHRs, used JWT ids, cards and feedback.

Reads of cards and feedback take the caller's tenant: a card uuid of another
tenant is "unknown", exactly like one that never existed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Row, delete, insert, select, tuple_, update
from sqlalchemy import exc as sa_exc

from api.storage.clients import ensure_tenant
from api.storage.models import CdsCard, CdsEhr, CdsFeedback, CdsUsedJti
from api.storage.repository import Store, assessment_locked


@dataclass(frozen=True, slots=True)
class EhrRecord:
    """A registered EHR: its id, tenant, issuer, keys (inline JWKS or a ``jku`` URL) and
    the FHIR base URLs it may name as ``fhirServer`` (normalised; empty: none)."""

    id: str
    tenant: str
    iss: str
    jwks_json: bytes | None
    jku: str | None
    created_us: int
    fhir_servers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CardRecord:
    """A card as stored: which assessment it showed, to whom."""

    uuid: str
    tenant: str
    ehr_id: str
    assessment_id: str
    hook_instance: str
    indicator: str
    issued_us: int


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """One feedback entry as stored."""

    id: str
    tenant: str
    card_uuid: str
    assessment_id: str
    outcome: str
    outcome_us: int
    received_us: int
    body_json: bytes


class RegistrationConflictError(ValueError):
    """The issuer is registered for another tenant (one issuer, one tenant)."""


_EHR_COLUMNS = (
    CdsEhr.id,
    CdsEhr.tenant,
    CdsEhr.iss,
    CdsEhr.jwks_json,
    CdsEhr.jku,
    CdsEhr.created_us,
    CdsEhr.fhir_servers,
)
_CARD_COLUMNS = (
    CdsCard.uuid,
    CdsCard.tenant,
    CdsCard.ehr_id,
    CdsCard.assessment_id,
    CdsCard.hook_instance,
    CdsCard.indicator,
    CdsCard.issued_us,
)
_FEEDBACK_COLUMNS = (
    CdsFeedback.id,
    CdsFeedback.tenant,
    CdsFeedback.card_uuid,
    CdsFeedback.assessment_id,
    CdsFeedback.outcome,
    CdsFeedback.outcome_us,
    CdsFeedback.received_us,
    CdsFeedback.body_json,
)


def _ehr(row: Row[Any]) -> EhrRecord:
    """An EHR row as a record (``fhir_servers`` NULL, as rows before 0006: none)."""
    *head, servers = row
    return EhrRecord(*head, fhir_servers=tuple(orjson.loads(servers)) if servers else ())


def _servers_json(servers: Sequence[str]) -> str | None:
    return orjson.dumps(list(servers)).decode() if servers else None


class CdsStore:
    """Reads and writes of the CDS tables, over the assessment store's engine."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- registered EHRs -------------------------------------------------------------

    def register(self, record: EhrRecord) -> EhrRecord:
        """Register an issuer for a tenant (created on first use); the same issuer and
        tenant again replaces its keys and FHIR servers and keeps its id.
        RegistrationConflictError when the issuer belongs to another tenant."""
        with self.store.unit_of_work() as work:
            connection = work._connection
            known = connection.execute(
                select(*_EHR_COLUMNS).where(CdsEhr.iss == record.iss)
            ).first()
            if known is not None:
                existing = _ehr(known)
                if existing.tenant != record.tenant:
                    raise RegistrationConflictError(
                        f"issuer {record.iss!r} is registered for another tenant"
                    )
                connection.execute(
                    update(CdsEhr)
                    .where(CdsEhr.id == existing.id)
                    .values(
                        jwks_json=record.jwks_json,
                        jku=record.jku,
                        fhir_servers=_servers_json(record.fhir_servers),
                    )
                )
                return EhrRecord(
                    existing.id,
                    existing.tenant,
                    existing.iss,
                    record.jwks_json,
                    record.jku,
                    existing.created_us,
                    record.fhir_servers,
                )
            ensure_tenant(connection, record.tenant, record.created_us)  # the one tenant rule
            values = {column.key: getattr(record, column.key) for column in _EHR_COLUMNS}
            values["fhir_servers"] = _servers_json(record.fhir_servers)
            connection.execute(insert(CdsEhr), [values])
        return record

    def by_iss(self, iss: str) -> EhrRecord | None:
        with self.store._reading() as connection:
            row = connection.execute(select(*_EHR_COLUMNS).where(CdsEhr.iss == iss)).first()
        return None if row is None else _ehr(row)

    def by_id(self, ehr_id: str) -> EhrRecord | None:
        """The EHR with this id (None once it was removed)."""
        with self.store._reading() as connection:
            row = connection.execute(select(*_EHR_COLUMNS).where(CdsEhr.id == ehr_id)).first()
        return None if row is None else _ehr(row)

    def all(self) -> list[EhrRecord]:
        with self.store._reading() as connection:
            rows = connection.execute(select(*_EHR_COLUMNS).order_by(CdsEhr.created_us))
            return [_ehr(row) for row in rows]

    def remove(self, iss: str) -> EhrRecord | None:
        """Unregister an issuer: its tokens stop working at once; its cards stay."""
        with self.store.unit_of_work() as work:
            connection = work._connection
            row = connection.execute(select(*_EHR_COLUMNS).where(CdsEhr.iss == iss)).first()
            if row is None:
                return None
            record = _ehr(row)
            connection.execute(delete(CdsUsedJti).where(CdsUsedJti.ehr_id == record.id))
            connection.execute(delete(CdsEhr).where(CdsEhr.id == record.id))
        return record

    # --- replay protection -----------------------------------------------------------

    def use_jti(self, ehr_id: str, jti: str, expires_us: int, now_us: int) -> bool:
        """Record a token's ``jti`` until ``expires_us``; False when it was used before."""
        try:
            with self.store.unit_of_work() as work:
                connection = work._connection
                connection.execute(delete(CdsUsedJti).where(CdsUsedJti.expires_us < now_us))
                connection.execute(
                    insert(CdsUsedJti), [{"ehr_id": ehr_id, "jti": jti, "expires_us": expires_us}]
                )
        except sa_exc.IntegrityError:
            return False
        return True

    # --- cards and feedback ----------------------------------------------------------

    def add_card(self, record: CardRecord, *, stored: bool = True) -> bool:
        """Keep a card for its feedback; False (nothing kept) when its assessment is gone.

        ``stored``: the card's assessment was stored (not so when the deployment stores
        nothing), so the card is kept only while that assessment exists: an erasure
        between the triage and this write must not leave a card of the erased
        assessment behind (feedback on it is then refused as on any unknown card).
        """
        values = {column.key: getattr(record, column.key) for column in _CARD_COLUMNS}
        with self.store.unit_of_work() as work:
            if stored and not assessment_locked(work.connection, record.assessment_id):
                return False
            work.connection.execute(insert(CdsCard), [values])
        return True

    def cards(self, uuids: Sequence[str], *, tenant: str) -> dict[str, CardRecord]:
        """The tenant's cards among ``uuids``, by uuid (another tenant's are absent)."""
        if not uuids:
            return {}
        stmt = select(*_CARD_COLUMNS).where(
            CdsCard.uuid.in_(sorted(set(uuids))), CdsCard.tenant == tenant
        )
        with self.store._reading() as connection:
            return {row[0]: CardRecord(*row) for row in connection.execute(stmt)}

    def add_feedback(self, records: Sequence[FeedbackRecord]) -> set[str]:
        """Store feedback entries together (all or none); the card uuids found missing.

        The cards are read again in the writing transaction and held (``FOR SHARE``)
        until it commits: a card erased since the caller looked it up stores nothing
        and is returned, and an erasure waits for this commit and then takes the
        feedback with the card (:func:`api.storage.repository.remove_assessments`).
        """
        rows = [
            {column.key: getattr(record, column.key) for column in _FEEDBACK_COLUMNS}
            for record in records
        ]
        wanted = {(record.card_uuid, record.tenant) for record in records}
        with self.store.unit_of_work() as work:
            held = work.connection.execute(
                select(CdsCard.uuid, CdsCard.tenant)
                .where(tuple_(CdsCard.uuid, CdsCard.tenant).in_(sorted(wanted)))
                .with_for_update(read=True)
            )
            missing = {uuid for uuid, tenant in wanted - {tuple(row) for row in held}}
            if not missing:
                work.connection.execute(insert(CdsFeedback), rows)
        return missing

    def feedback(self, card_uuid: str, *, tenant: str) -> list[FeedbackRecord]:
        """The tenant's feedback about one card, in the order the user acted."""
        stmt = (
            select(*_FEEDBACK_COLUMNS)
            .where(CdsFeedback.card_uuid == card_uuid, CdsFeedback.tenant == tenant)
            .order_by(CdsFeedback.outcome_us, CdsFeedback.received_us, CdsFeedback.id)
        )
        with self.store._reading() as connection:
            return [FeedbackRecord(*row) for row in connection.execute(stmt)]


__all__ = [
    "CardRecord",
    "CdsStore",
    "EhrRecord",
    "FeedbackRecord",
    "RegistrationConflictError",
]
