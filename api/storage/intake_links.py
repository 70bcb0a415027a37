"""Queries of the intake links (``intake_link``): create, find, claim once, release, attach.

The link's signed URL is its credential, so a link is found by id alone and its
row names the tenant; every other query of the store still takes the caller's
tenant. Claiming is one conditional ``UPDATE … WHERE used_us IS NULL``: of two
concurrent submissions exactly one sees a row changed (SQLite serialises writers,
PostgreSQL re-checks the condition after the first commit).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update

from api.storage.database import guarded
from api.storage.models import IntakeLink
from api.storage.repository import Store, assessment_locked


@dataclass(frozen=True, slots=True)
class IntakeLinkRow:
    """One intake link as stored."""

    id: str
    tenant: str
    client: str
    subject: str | None
    show: str
    created_us: int
    expires_us: int
    used_us: int | None = None
    assessment_id: str | None = None


_COLUMNS = tuple(IntakeLinkRow.__slots__)  # type: ignore[attr-defined]


def add_link(store: Store, row: IntakeLinkRow) -> None:
    """Store a new link (one transaction)."""
    with store.unit_of_work() as work:
        work.connection.execute(
            insert(IntakeLink), [{name: getattr(row, name) for name in _COLUMNS}]
        )


def find_link(store: Store, link_id: str) -> IntakeLinkRow | None:
    """The link with this id, used or not; None when there is none."""
    stmt = select(*(getattr(IntakeLink, name) for name in _COLUMNS)).where(IntakeLink.id == link_id)
    with guarded(), store.engine.connect() as connection:
        found = connection.execute(stmt).first()
    return None if found is None else IntakeLinkRow(*found)


def claim_link(store: Store, link_id: str, *, now_us: int) -> bool:
    """Mark an unused, unexpired link used; False when another submission was first."""
    stmt = (
        update(IntakeLink)
        .where(
            IntakeLink.id == link_id,
            IntakeLink.used_us.is_(None),
            IntakeLink.expires_us > now_us,
        )
        .values(used_us=now_us)
    )
    with store.unit_of_work() as work:
        return work.connection.execute(stmt).rowcount == 1


def release_link(store: Store, link_id: str, *, claimed_us: int) -> None:
    """Undo a claim whose assessment could not be stored (the link may be used again)."""
    stmt = (
        update(IntakeLink)
        .where(
            IntakeLink.id == link_id,
            IntakeLink.used_us == claimed_us,
            IntakeLink.assessment_id.is_(None),
        )
        .values(used_us=None)
    )
    with store.unit_of_work() as work:
        work.connection.execute(stmt)


def attach_assessment(store: Store, link_id: str, assessment_id: str) -> bool:
    """Name the assessment a used link produced; False when it was erased meanwhile.

    Checked and written in one transaction holding the assessment (``FOR SHARE``): an
    erasure either waits and then takes the link with its assessment, or came first,
    and then the used link (which names the patient) is deleted here as erasure would.
    """
    with store.unit_of_work() as work:
        if not assessment_locked(work.connection, assessment_id):
            work.connection.execute(delete(IntakeLink).where(IntakeLink.id == link_id))
            return False
        stmt = (
            update(IntakeLink).where(IntakeLink.id == link_id).values(assessment_id=assessment_id)
        )
        work.connection.execute(stmt)
    return True


__all__ = [
    "IntakeLinkRow",
    "add_link",
    "attach_assessment",
    "claim_link",
    "find_link",
    "release_link",
]
