"""Stored assessments over FHIR: read, search and delete, plus the audit hooks.

Reads: ``GET /fhir/Bundle/{id}`` (the Bundle as sent), ``GET
/fhir/{QuestionnaireResponse|Observation}/{id}`` (an entry on its own, its
``urn:uuid`` references rewritten to ``Type/id``), ``GET
/fhir/Provenance/{id}``, ``GET /fhir/AuditEvent/{id}``. Searches: ``GET
/fhir/{Observation|QuestionnaireResponse|AuditEvent}?…`` (strict parameters,
keyset paging, ETag). ``DELETE /fhir/Bundle/{id}`` erases one assessment.

Every read, search, delete and every failed attempt on these and on the triage
endpoints leaves an AuditEvent (:func:`install`'s after-request hook writes the
failures; the views write their successes). Stored resources never change, so
a read's ETag is its version (``W/"1"``) and a search's ETag hashes its page.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid

import orjson
from flask import Blueprint, Flask, Response, g, request
from werkzeug.http import http_date
from werkzeug.routing import BaseConverter

from api.config import app_state
from api.errors import (
    InvalidParameterError,
    NotAcceptableError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    error_response,
)
from api.fhir.search import SearchError, build_searchset, format_us, parse_search
from api.media import negotiate_request
from api.responses import DEFAULT_FHIR_VERSION, fhir_content_type
from api.storage import StorageUnavailableError
from api.storage.assessments import Exchange, audit, now_us, software_version

logger = logging.getLogger("api.storage")

blueprint = Blueprint("store", __name__, url_prefix="/fhir")


class FhirIdConverter(BaseConverter):
    """A FHIR id (``[A-Za-z0-9-.]{1,64}``): ``$triage`` and other operations never match."""

    regex = r"[A-Za-z0-9\-.]{1,64}"


ENTRY_TYPES = "any(QuestionnaireResponse, Observation)"
SEARCHABLE = "any(Observation, QuestionnaireResponse, AuditEvent)"
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
#: Stored resources are immutable: version 1 for ever.
VERSION_ETAG = 'W/"1"'

#: Endpoints whose failed attempts are audited → the interaction attempted.
AUDITED_FAILURES = {
    "triage.triage": "create",
    "fhir.triage_operation": "create",
    "store.read_bundle": "read",
    "store.read_entry": "read",
    "store.read_provenance": "read",
    "store.read_audit_event": "read",
    "store.search": "search-type",
    "store.delete_bundle": "delete",
}


def exchange() -> Exchange:
    """The audit facts of the current request."""
    return Exchange(
        request_id=g.get("request_id") or str(uuid.uuid4()),
        client_address=request.remote_addr,
        software_version=software_version(),
    )


def _valid_id(resource_id: str) -> bool:
    return _ID.fullmatch(resource_id) is not None


def _etag_matches(etag: str) -> bool:
    wanted = request.headers.get("If-None-Match")
    if not wanted:
        return False
    tags = {tag.strip() for tag in wanted.split(",")}
    return "*" in tags or etag in tags or etag.removeprefix("W/") in tags


def _respond(body: bytes, fhir_version: str, etag: str, last_updated_us: int | None) -> Response:
    headers = {"ETag": etag}
    if last_updated_us is not None:
        headers["Last-Modified"] = http_date(last_updated_us / 1_000_000)
    if _etag_matches(etag):
        return Response(status=304, headers=headers)
    return Response(body, headers=headers, content_type=fhir_content_type(fhir_version))


def _read(resource_type: str, resource_id: str) -> tuple[bytes, int]:
    """The stored bytes and lastUpdated of one resource, audited; 404 if absent."""
    g.audit_entity = (resource_type, resource_id) if _valid_id(resource_id) else None
    store = app_state().store
    found: tuple[bytes, int] | None = None
    if _valid_id(resource_id):
        if resource_type == "Bundle":
            stored = store.assessment(resource_id)
            found = None if stored is None else (stored.bundle_json, stored.issued_us)
        else:
            lookup = {
                "Provenance": store.provenance,
                "AuditEvent": store.audit_event,
            }.get(resource_type)
            resource = (
                lookup(resource_id)
                if lookup is not None
                else store.resource(resource_type, resource_id)
            )
            found = None if resource is None else (resource.body, resource.last_updated_us)
    if found is None:
        raise ResourceNotFoundError(f"no {resource_type} with id {resource_id[:64]!r}")
    audit(store, exchange(), "read", 200, entity=(resource_type, resource_id))
    g.audited = True
    return found


def _negotiate(resource_type: str) -> str:
    """The FHIR version to answer in; AuditEvent is R4 only (R5 restructured it)."""
    fhir_version, _ = negotiate_request(request)
    if resource_type == "AuditEvent" and fhir_version != DEFAULT_FHIR_VERSION:
        raise NotAcceptableError("AuditEvent is served in FHIR R4 (fhirVersion=4.0) only")
    return fhir_version


def _read_response(resource_type: str, resource_id: str) -> Response:
    fhir_version = _negotiate(resource_type)
    body, last_updated = _read(resource_type, resource_id)
    return _respond(body, fhir_version, VERSION_ETAG, last_updated)


@blueprint.get("/Bundle/<fhir_id:resource_id>")
def read_bundle(resource_id: str) -> Response:
    """The Bundle of an assessment exactly as it was sent."""
    return _read_response("Bundle", resource_id)


@blueprint.get(f"/<{ENTRY_TYPES}:resource_type>/<fhir_id:resource_id>")
def read_entry(resource_type: str, resource_id: str) -> Response:
    """One entry of a stored Bundle on its own."""
    return _read_response(resource_type, resource_id)


@blueprint.get("/Provenance/<fhir_id:resource_id>")
def read_provenance(resource_id: str) -> Response:
    """The Provenance of an assessment (same id as its Bundle)."""
    return _read_response("Provenance", resource_id)


@blueprint.get("/AuditEvent/<fhir_id:resource_id>")
def read_audit_event(resource_id: str) -> Response:
    """One AuditEvent."""
    return _read_response("AuditEvent", resource_id)


@blueprint.get(f"/<{SEARCHABLE}:resource_type>")
def search(resource_type: str) -> Response:
    """Search stored resources: a ``searchset`` Bundle, newest first, paged."""
    fhir_version = _negotiate(resource_type)
    try:
        query = parse_search(resource_type, list(request.args.items(multi=True)))
    except SearchError as exc:
        raise InvalidParameterError(exc.parameter, str(exc)) from None
    store = app_state().store
    page = store.search(query)
    audit(
        store,
        exchange(),
        "search-type",
        200,
        query=request.query_string,
        resource_type=resource_type,
    )
    g.audited = True
    digest = hashlib.sha256(
        orjson.dumps(
            [
                page.total,
                page.ids,
                request.query_string.decode("latin-1"),
                page.next_cursor and page.next_cursor.encode(),
                page.previous_cursor and page.previous_cursor.encode(),
            ]
        )
    ).hexdigest()[:32]
    etag = f'W/"{digest}"'
    if _etag_matches(etag):
        return Response(status=304, headers={"ETag": etag})
    base = request.host_url.rstrip("/") + "/fhir"
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
    return Response(
        orjson.dumps(bundle), headers={"ETag": etag}, content_type=fhir_content_type(fhir_version)
    )


@blueprint.delete("/Bundle/<fhir_id:resource_id>")
def delete_bundle(resource_id: str) -> Response:
    """Erase an assessment: its Bundle, entries and Provenance; its AuditEvents stay."""
    negotiate_request(request)
    g.audit_entity = ("Bundle", resource_id) if _valid_id(resource_id) else None
    store = app_state().store
    deleted = False
    if _valid_id(resource_id):
        with store.unit_of_work() as work:
            deleted = work.delete_assessment(resource_id)
    if not deleted:
        raise ResourceNotFoundError(f"no Bundle with id {resource_id[:64]!r}")
    audit(store, exchange(), "delete", 204, entity=("Bundle", resource_id))
    g.audited = True
    return Response(status=204)


def _request_id() -> None:
    """Accept the caller's ``X-Request-ID`` when it is a UUID; otherwise make one."""
    g.received_us = now_us()
    given = request.headers.get("X-Request-ID", "")
    try:
        g.request_id = str(uuid.UUID(given)) if 32 <= len(given) <= 36 else str(uuid.uuid4())
    except ValueError:
        g.request_id = str(uuid.uuid4())


def _finish(response: Response) -> Response:
    """Name the request id, and audit a failed attempt on patient data."""
    request_id = g.get("request_id")
    if request_id:
        response.headers["X-Request-ID"] = request_id
    interaction = AUDITED_FAILURES.get(request.endpoint or "")
    if response.status_code < 400 or interaction is None or g.get("audited"):
        return response
    if response.status_code == 503:
        # The store is what failed: log the attempt (no PHI) instead of auditing it.
        logger.warning("unaudited %s attempt %s: store unavailable", interaction, request_id)
        return response
    try:
        audit(
            app_state().store,
            exchange(),
            interaction,
            response.status_code,
            entity=g.get("audit_entity"),
            query=request.query_string if interaction == "search-type" else None,
            resource_type=(request.view_args or {}).get("resource_type"),
        )
    except StorageUnavailableError:
        logger.warning("unaudited failed %s attempt %s: store unavailable", interaction, request_id)
    return response


def _unavailable(exc: StorageUnavailableError) -> Response:
    logger.warning("store unavailable (%s) on %s %s", exc, request.method, request.path)
    error = ServiceUnavailableError(
        "the assessment store is unavailable; nothing was stored, retry after a pause"
    )
    return error_response(503, error.issues(), error.headers())


def install(app: Flask) -> None:
    """Register the store routes, the request-id and audit hooks, and the 503 handler."""
    app.url_map.converters["fhir_id"] = FhirIdConverter
    app.before_request(_request_id)
    app.after_request(_finish)
    app.register_error_handler(StorageUnavailableError, _unavailable)
    app.register_blueprint(blueprint)


__all__ = ["blueprint", "exchange", "install"]
