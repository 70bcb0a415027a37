"""Stored assessments over FHIR: read, search and delete (issue 10). Thin views.

Reads: ``GET /fhir/Bundle/{id}`` (the Bundle as sent), ``GET
/fhir/{QuestionnaireResponse|Observation}/{id}`` (an entry on its own, its
``urn:uuid`` references rewritten to ``Type/id``), ``GET /fhir/Provenance/{id}``,
``GET /fhir/AuditEvent/{id}``. Searches: ``GET
/fhir/{Observation|QuestionnaireResponse|AuditEvent}?…`` (strict parameters,
keyset paging, ETag), and ``POST …/_search`` with them in a form body.
``DELETE /fhir/Bundle/{id}`` erases one assessment. The work is in
:mod:`api.services.assessments`; every success and failure is audited.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from api.http import (
    VERSION_ETAG,
    Call,
    audited,
    bytes_response,
    conditional_response,
    exchange,
    fhir_endpoint,
    form_body,
    report_link_header,
)
from api.negotiation import query_pairs
from api.services.assessments import (
    SearchResult,
    erase_assessment,
    form_search_pairs,
    read_stored,
    search_stored,
    served_in,
)

blueprint = Blueprint("store", __name__, url_prefix="/fhir")

ENTRY_TYPES = "any(QuestionnaireResponse, Observation)"
SEARCHABLE = "any(Observation, QuestionnaireResponse, AuditEvent)"


def _read(call: Call, resource_type: str, resource_id: str) -> Response:
    served_in(resource_type, call.fhir_version)
    audited(entity=(resource_type, resource_id))
    found = read_stored(call.state.store, exchange(), resource_type, resource_id)
    audited()
    return conditional_response(found.body, call.fhir_version, VERSION_ETAG, found.last_updated_us)


@blueprint.get("/Bundle/<fhir_id:resource_id>")
@fhir_endpoint()
def read_bundle(call: Call, resource_id: str) -> Response:
    """The Bundle of an assessment exactly as it was sent, and a fresh report link.

    The stored Bundle is immutable: its ``Bundle.link`` (relation ``alternate``) is
    the report link issued with it, which expires; the ``Link`` header carries a
    newly signed one on every read.
    """
    response = _read(call, "Bundle", resource_id)
    response.headers.update(report_link_header(resource_id))
    return response


@blueprint.get(f"/<{ENTRY_TYPES}:resource_type>/<fhir_id:resource_id>")
@fhir_endpoint()
def read_entry(call: Call, resource_type: str, resource_id: str) -> Response:
    """One entry of a stored Bundle on its own."""
    return _read(call, resource_type, resource_id)


@blueprint.get("/Provenance/<fhir_id:resource_id>")
@fhir_endpoint()
def read_provenance(call: Call, resource_id: str) -> Response:
    """The Provenance of an assessment (same id as its Bundle)."""
    return _read(call, "Provenance", resource_id)


@blueprint.get("/AuditEvent/<fhir_id:resource_id>")
@fhir_endpoint()
def read_audit_event(call: Call, resource_id: str) -> Response:
    """One AuditEvent."""
    return _read(call, "AuditEvent", resource_id)


@blueprint.get(f"/<{SEARCHABLE}:resource_type>")
@fhir_endpoint()
def search(call: Call, resource_type: str) -> Response:
    """Search stored resources: a ``searchset`` Bundle, newest first, paged."""
    served_in(resource_type, call.fhir_version)
    query = request.query_string
    response = _search(call, resource_type, query_pairs(query), query)
    return conditional_response(response.body, call.fhir_version, response.etag)


@blueprint.post(f"/<{SEARCHABLE}:resource_type>/_search")
@fhir_endpoint()
def search_form(call: Call, resource_type: str) -> Response:
    """The same search by POST, its parameters in a form body (FHIR http.html).

    The URL's parameters and the body's are one search (FHIR: both count), so a
    filter is never dropped for being on the other side; the links are GET URLs.
    """
    served_in(resource_type, call.fhir_version)
    body = form_body(call)
    pairs = form_search_pairs(query_pairs(request.query_string), query_pairs(body))
    query = b"&".join(part for part in (request.query_string, body) if part)
    result = _search(call, resource_type, pairs, query)
    # No 304 here: If-None-Match on a POST is not a cache revalidation (RFC 9110 §13.1.2).
    response = bytes_response(result.body, call)
    response.headers["ETag"] = result.etag
    return response


def _search(
    call: Call, resource_type: str, pairs: list[tuple[str, str]], query: bytes
) -> SearchResult:
    result = search_stored(
        call.state.store,
        exchange(),
        resource_type,
        pairs,
        query_string=query,
        base=request.host_url.rstrip("/") + "/fhir",
        cursor_secret=call.state.links.secret,
    )
    audited()
    return result


@blueprint.delete("/Bundle/<fhir_id:resource_id>")
@fhir_endpoint()
def delete_bundle(call: Call, resource_id: str) -> Response:
    """Erase an assessment: its Bundle, entries and Provenance; its AuditEvents stay."""
    audited(entity=("Bundle", resource_id))
    erase_assessment(call.state.store, exchange(), resource_id)
    audited()
    return Response(status=204)
