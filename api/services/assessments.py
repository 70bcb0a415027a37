"""Storage use cases: keep every triage, replay an idempotent retry, read, search, erase.

:func:`stored_triage` wraps a triage use case (``triage_intake``,
``triage_questionnaire_response``): it answers an idempotent retry from the
store, runs the triage otherwise, and stores the Outcome (Bundle with its
identity, Provenance, create AuditEvent) in one transaction before anything is
answered. No Flask: the HTTP facts come in :class:`~api.storage.assessments.Exchange`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from api.fhir import Issue
from api.fhir.search import CursorSeal, SearchError, build_searchset, format_us, parse_search
from api.fhir.versions import DEFAULT_FHIR_VERSION
from api.services.errors import (
    IdempotencyConflictError,
    IdempotencyKeyReusedError,
    InvalidSearchError,
    NotFoundError,
    VersionNotServedError,
)
from api.services.outcome import Outcome
from api.storage import DuplicateKeyError, Store
from api.storage.assessments import (
    Exchange,
    audit,
    now_us,
    replay,
    request_digest,
    save_triage,
    software_version,
)
from api.storage.records import TriageFacts
from api.storage.repository import FoundResource
from schemas import IssueType


@dataclass(frozen=True, slots=True)
class Recording:
    """How to keep one triage: where, whether, for whom, under which key."""

    store: Store
    keep: bool
    exchange: Exchange
    canonical_base: str
    idempotency_key: str | None = None
    #: Bundle id → the signed URL of its clinician report (None: hand out no link).
    report_link: Callable[[str], str] | None = None


@dataclass(frozen=True, slots=True)
class StoredTriage:
    """What a triage endpoint answers: the body as sent and its stored identity."""

    body: bytes
    bundle_id: str
    stored: bool
    #: The signed clinician-report URL to announce (stored assessments only).
    report_url: str | None = None


def _us(moment: Any) -> int:
    return int(moment.timestamp() * 1_000_000)


def _canonical(payload: Mapping[str, Any]) -> bytes:
    """The request as the bytes its idempotency digest is taken of (keys sorted).

    Taken before the request is validated, so it must take any decoded body: orjson
    refuses a lone surrogate and an integer beyond 64 bits (the triage then refuses
    the request as invalid, 422); the stdlib encoder writes those, ASCII-escaped.
    """
    try:
        return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("ascii")


def stored_triage(
    run: Callable[[], Outcome],
    *,
    recording: Recording,
    source: str,
    fhir_version: str,
    bundle_type: str,
    payload: Mapping[str, Any],
) -> StoredTriage:
    """Run ``run`` (a triage use case) unless the key replays; store what it produced.

    With an idempotency key (and storage on) the same request answers the stored
    Bundle again; the key with another request is IdempotencyKeyReusedError (422),
    and a duplicate that loses the race to store is IdempotencyConflictError (409).
    """
    key = recording.idempotency_key if recording.keep else None
    digest = None
    if key is not None:
        digest = request_digest(source, bundle_type, fhir_version, _canonical(payload))
        exchange = recording.exchange
        stored = replay(recording.store, key, exchange.tenant, exchange.filing_client)
        if stored is not None:
            if stored.request_digest != digest:
                raise IdempotencyKeyReusedError(
                    [
                        Issue(
                            IssueType.BUSINESS_RULE,
                            "this Idempotency-Key was used for a different request",
                            ("http.Idempotency-Key",),
                        )
                    ],
                    "Idempotency-Key reused",
                )
            audit(recording.store, recording.exchange, "create", 200, entity=("Bundle", stored.id))
            fresh = recording.report_link(stored.id) if recording.report_link else None
            return StoredTriage(
                body=bytes(stored.bundle_json), bundle_id=stored.id, stored=True, report_url=fresh
            )
    outcome = run()
    facts = TriageFacts(
        request=outcome.request,
        result=outcome.result,
        source=source,
        request_id=recording.exchange.request_id,
        received_us=_us(outcome.received),
        fhir_version=outcome.fhir_version,
        software_version=software_version(),
        canonical_base=recording.canonical_base,
        idempotency_key=key,
        request_digest=digest,
    )
    report_url = None
    if recording.keep and recording.report_link is not None:
        report_url = recording.report_link(outcome.bundle["id"])
    try:
        saved = save_triage(
            recording.store,
            facts,
            outcome.bundle,
            recording.exchange,
            keep=recording.keep,
            report_url=report_url,
        )
    except DuplicateKeyError:
        raise IdempotencyConflictError(
            [
                Issue(
                    IssueType.CONFLICT,
                    "a request with this Idempotency-Key is being processed; retry it later",
                    ("http.Idempotency-Key",),
                )
            ],
            "Idempotency-Key in use",
        ) from None
    return StoredTriage(
        body=saved.body,
        bundle_id=saved.bundle_id,
        stored=saved.stored,
        report_url=report_url if saved.stored else None,
    )


# --- reads, searches and erasure of stored assessments -----------------------------------


def _tenant(exchange: Exchange) -> str:
    """The caller's tenant; reads without one are a programming error, never "all tenants"."""
    if exchange.tenant is None:
        raise RuntimeError("a read of stored data without an authenticated tenant")
    return exchange.tenant


def _not_found(resource_type: str, resource_id: str) -> NotFoundError:
    message = f"no {resource_type} with id {resource_id[:64]!r}"
    return NotFoundError([Issue(IssueType.NOT_FOUND, message)], message)


def read_stored(
    store: Store, exchange: Exchange, resource_type: str, resource_id: str
) -> FoundResource:
    """The caller's stored resource by type and id (audited); NotFoundError otherwise.

    Another tenant's id is NotFoundError exactly like an id that never existed.
    """
    tenant = _tenant(exchange)
    found: FoundResource | None
    if resource_type == "Bundle":
        stored = store.assessment(resource_id, tenant=tenant)
        found = None if stored is None else FoundResource(stored.bundle_json, stored.issued_us)
    elif resource_type == "Provenance":
        found = store.provenance(resource_id, tenant=tenant)
    elif resource_type == "AuditEvent":
        found = store.audit_event(resource_id, tenant=tenant)
    else:
        found = store.resource(resource_type, resource_id, tenant=tenant)
    if found is None:
        raise _not_found(resource_type, resource_id)
    audit(store, exchange, "read", 200, entity=(resource_type, resource_id))
    return found


def served_in(resource_type: str, fhir_version: str) -> None:
    """AuditEvent is served in R4 only (R5 restructured it); VersionNotServedError else."""
    if resource_type == "AuditEvent" and fhir_version != DEFAULT_FHIR_VERSION:
        message = "AuditEvent is served in FHIR R4 (fhirVersion=4.0) only"
        raise VersionNotServedError([Issue(IssueType.NOT_SUPPORTED, message)], message)


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One page of a search, rendered, with the ETag that names its content."""

    body: bytes
    etag: str


def form_search_pairs(
    url_pairs: Sequence[tuple[str, str]], body_pairs: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The parameters of a search by POST: the URL's and the form body's, as one search.

    ``_format`` negotiates the answer before the body is read, from the URL: in the
    body it would be ignored (an R5 request answered in R4), so it is refused there.
    """
    if any(name == "_format" for name, _ in body_pairs):
        message = "_format goes in the URL of a search by POST, not in its body"
        raise InvalidSearchError([Issue(IssueType.VALUE, message, ("http._format",))], message)
    return [*url_pairs, *body_pairs]


def search_stored(
    store: Store,
    exchange: Exchange,
    resource_type: str,
    pairs: Sequence[tuple[str, str]],
    *,
    query_string: bytes,
    base: str,
    cursor_secret: bytes,
) -> SearchResult:
    """One page of a search as a searchset Bundle (audited, the query base64 in it).

    A parameter the parser refuses is InvalidSearchError (400), a ``_cursor`` this
    server did not issue for this tenant's search included (signed with
    ``cursor_secret``, the deployment's link secret). The ETag hashes what the page
    shows (total, ids, links), not the Bundle's own id and time.
    """
    tenant = _tenant(exchange)
    try:
        query = parse_search(resource_type, pairs, seal=CursorSeal(cursor_secret, tenant))
    except SearchError as exc:
        raise InvalidSearchError(
            [Issue(IssueType.VALUE, str(exc), (f"http.{exc.parameter}",))], str(exc)
        ) from None
    page = store.search(query, tenant=tenant)
    audit(store, exchange, "search-type", 200, query=query_string, resource_type=resource_type)
    digest = hashlib.sha256(
        orjson.dumps(
            [
                page.total,
                page.ids,
                query_string.decode("latin-1"),
                page.next_cursor and page.next_cursor.encode(),
                page.previous_cursor and page.previous_cursor.encode(),
            ]
        )
    ).hexdigest()[:32]
    bundle = build_searchset(
        bundle_id=str(uuid.uuid4()),
        base=base,
        query=query,
        entries=[
            (resource_type, resource_id, orjson.Fragment(body))
            for resource_id, body in zip(page.ids, page.resources, strict=True)
        ],
        total=page.total,
        next_cursor=page.next_cursor,
        previous_cursor=page.previous_cursor,
        now=format_us(now_us()),
    )
    return SearchResult(body=orjson.dumps(bundle), etag=f'W/"{digest}"')


def erase_assessment(store: Store, exchange: Exchange, bundle_id: str) -> None:
    """Delete an assessment with its resources and Provenance; its AuditEvents stay."""
    with store.unit_of_work() as work:
        deleted = work.delete_assessment(bundle_id, tenant=_tenant(exchange))
    if not deleted:
        raise _not_found("Bundle", bundle_id)
    audit(store, exchange, "delete", 204, entity=("Bundle", bundle_id))


__all__ = [
    "Recording",
    "SearchResult",
    "StoredTriage",
    "erase_assessment",
    "form_search_pairs",
    "read_stored",
    "search_stored",
    "served_in",
    "stored_triage",
]
