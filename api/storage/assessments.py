"""The storage use cases the service layer calls: save a triage, replay a retry, audit.

Flask-free: the caller passes what it knows about the HTTP exchange
(:class:`Exchange`), so the same functions serve ``POST /v1/triage``,
``$triage`` and the read routes, and tests can call them directly.
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from api.fhir import capability
from api.fhir.audit import AuditFacts
from api.fhir.search import format_us
from api.storage.records import TriageFacts, assessment_record, audit_row, identify, new_id
from api.storage.repository import AuditRow, Store, StoredAssessment

#: ``Bundle.link.relation`` of the clinician report: an HTML rendering of the same
#: assessment (IANA "alternate"; FHIR R5 binds the relation to IANA link relations).
REPORT_RELATION = "alternate"

#: An Idempotency-Key: 1 to 255 visible ASCII characters (IETF draft httpapi-idempotency-key).
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


@dataclass(frozen=True, slots=True)
class Exchange:
    """The HTTP facts an audit record needs (no PHI: ids, address, status)."""

    request_id: str
    client_address: str | None
    software_version: str
    #: The authenticated caller: its tenant (whose rows it sees) and its client id.
    tenant: str | None = None
    client_id: str | None = None
    #: A requesting agent that is not an API client (a signed report or intake link).
    agent: str | None = None
    #: The API client that issued the signed link the requestor holds (a second agent).
    issued_by: str | None = None
    #: The credential the requestor acted through, as a resource (``("Task", link id)``):
    #: named as an entity of every event of the exchange.
    via: tuple[str, str] | None = None

    @property
    def filing_client(self) -> str | None:
        """The API client stored rows are filed under: the caller, or the client that
        issued the link the caller holds (revoking it ends what it issued)."""
        return self.client_id if self.client_id is not None else self.issued_by


@functools.cache
def software_version() -> str:
    """The installed package version, read once (importlib.metadata costs milliseconds)."""
    return capability.software_version()


def now_us() -> int:
    return time.time_ns() // 1000


def request_digest(*parts: bytes | str) -> str:
    """SHA-256 over what makes two requests "the same" for an idempotency key."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def audit(
    store: Store,
    exchange: Exchange,
    interaction: str,
    status: int,
    *,
    entity: tuple[str, str] | None = None,
    query: bytes | None = None,
    resource_type: str | None = None,
    related: tuple[str, ...] = (),
    query_description: str | None = None,
) -> None:
    """Write one AuditEvent (committed before this returns)."""
    row = exchange_audit_row(
        exchange,
        interaction,
        status,
        entity=entity,
        query=query,
        resource_type=resource_type,
        related=related,
        query_description=query_description,
    )
    store.append(None, (row,))


def exchange_audit_row(
    exchange: Exchange,
    interaction: str,
    status: int,
    *,
    entity: tuple[str, str] | None = None,
    query: bytes | None = None,
    resource_type: str | None = None,
    at_us: int | None = None,
    recorded: str | None = None,
    related: tuple[str, ...] = (),
    query_description: str | None = None,
) -> AuditRow:
    """The AuditEvent row of one interaction of ``exchange`` (now, at ``at_us`` or at the
    instant ``recorded``); the link it acted through (``via``) is named as an entity."""
    if exchange.via is not None and exchange.via != entity:
        related = (*related, f"{exchange.via[0]}/{exchange.via[1]}")
    return audit_row(
        AuditFacts(
            id=new_id(),
            recorded=recorded or format_us(now_us() if at_us is None else at_us),
            interaction=interaction,
            status=status,
            request_id=exchange.request_id,
            client_address=exchange.client_address,
            software_version=exchange.software_version,
            entity=entity,
            query=query,
            resource_type=resource_type,
            client_id=exchange.client_id,
            tenant=exchange.tenant,
            agent=exchange.agent,
            issued_by=exchange.issued_by,
            related=related,
            query_description=query_description,
        )
    )


@dataclass(frozen=True, slots=True)
class SavedTriage:
    """The response body of a triage and whether (and as what) it was stored."""

    body: bytes
    bundle_id: str
    stored: bool


def save_triage(
    store: Store,
    facts: TriageFacts,
    bundle: Mapping[str, Any],
    exchange: Exchange,
    *,
    keep: bool,
    report_url: str | None = None,
) -> SavedTriage:
    """Give the Bundle its identity, then store it with its Provenance and AuditEvent.

    The assessment, its index rows, its Provenance and the create AuditEvent
    commit together, before the caller answers: a 200 always names a record
    that exists. With ``keep`` False ("store nothing") only the AuditEvent is
    written (it holds no PHI) and the Bundle still gets ids. ``report_url`` (stored
    assessments only) goes into ``Bundle.link`` as the report issued with the Bundle.
    """
    # One time for everything: the Bundle's timestamp is its issue and lastUpdated time.
    issued = bundle["timestamp"]
    # A triage renders its Bundle with ids and meta in place (``identified``); only a
    # Bundle rendered without them is copied here.
    identified = bundle if "meta" in bundle else identify(bundle, issued)
    if keep and report_url is not None:
        identified = _with_link(identified, {"relation": REPORT_RELATION, "url": report_url})
    body = orjson.dumps(identified)
    event = exchange_audit_row(
        exchange,
        "create",
        200,
        entity=("Bundle", identified["id"]) if keep else None,
        recorded=issued,
    )
    record = None
    if keep:
        record = assessment_record(
            facts, identified, body, tenant=exchange.tenant, client=exchange.filing_client
        )
    store.append(record, (event,))
    return SavedTriage(body=body, bundle_id=identified["id"], stored=keep)


def _with_link(bundle: Mapping[str, Any], link: dict[str, str]) -> dict[str, Any]:
    """A new top-level Bundle with ``link`` before ``entry`` (where FHIR JSON puts it).

    Only the top level is new: the entries are shared with ``bundle``, which stays as
    the triage rendered it.
    """
    linked = {key: value for key, value in bundle.items() if key != "entry"}
    linked["link"] = [link]
    linked["entry"] = bundle["entry"]
    return linked


def replay(
    store: Store, key: str, tenant: str | None, client: str | None
) -> StoredAssessment | None:
    """The calling client's assessment stored under an idempotency key, if any."""
    if tenant is None:
        return None
    return store.assessment_by_key(key, tenant=tenant, client=client)


__all__ = [
    "IDEMPOTENCY_KEY",
    "REPORT_RELATION",
    "Exchange",
    "SavedTriage",
    "TriageFacts",
    "audit",
    "now_us",
    "replay",
    "request_digest",
    "save_triage",
    "software_version",
]
