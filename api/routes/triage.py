"""POST /v1/triage: a request in the PROTOCOL.md §3 vocabulary → a FHIR Bundle.

The view stays thin (flask-smorest style: load → evaluate → render); every
check raises a typed error that :mod:`api.errors` turns into an
OperationOutcome. Order of checks: Accept or ``_format`` (406), ``_bundle``
(400), Content-Type (415), size (413), JSON (400), vocabulary (422). Other
query parameters are ignored, as FHIR servers do.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, request
from marshmallow import ValidationError

from api.config import AppState, app_state
from api.errors import (
    IdempotencyConflictError,
    IdempotencyKeyReusedError,
    InvalidParameterError,
    RequestValidationError,
)
from api.fhir import as_transaction, render_triage_bundle
from api.jsonbody import parse_json_object, read_body
from api.media import negotiate_request, require_json_content_type
from api.responses import fhir_content_type
from api.routes.store import exchange
from api.storage import DuplicateKeyError
from api.storage.assessments import (
    IDEMPOTENCY_KEY,
    TriageFacts,
    audit,
    now_us,
    replay,
    request_digest,
    save_triage,
    software_version,
)
from schemas import field_issues, load_triage_request
from triage import evaluate

blueprint = Blueprint("triage", __name__)


def load_request(data: dict[str, Any]) -> dict[str, Any]:
    """The validated request, or RequestValidationError with one issue per field."""
    try:
        return load_triage_request(data)
    except ValidationError as exc:
        raise RequestValidationError(field_issues(exc.messages)) from None


def _stored_headers(bundle_id: str) -> dict[str, str]:
    """Where the stored Bundle can be read again."""
    url = f"{request.host_url.rstrip('/')}/fhir/Bundle/{bundle_id}"
    return {"Location": url, "Content-Location": url, "ETag": 'W/"1"'}


def triage_response(
    loaded: dict[str, Any],
    *,
    state: AppState,
    fhir_version: str,
    bundle_type: str,
    source: str,
    body: bytes,
) -> Response:
    """Evaluate a validated request, store it and answer its Bundle (shared with ``$triage``).

    With an ``Idempotency-Key`` a retry of the same request answers the stored
    Bundle (same ids); the key with another request is a 422, and a duplicate
    arriving while the first is being stored a 409.
    """
    received_us = g.get("received_us") or now_us()
    keep = state.settings.store_assessments
    key = request.headers.get("Idempotency-Key")
    digest = None
    if key is not None and keep:
        if not IDEMPOTENCY_KEY.fullmatch(key):
            raise InvalidParameterError(
                "Idempotency-Key", "Idempotency-Key must be 1 to 255 visible ASCII characters"
            )
        digest = request_digest(request.path, bundle_type, fhir_version, body)
        stored = replay(state.store, key)
        if stored is not None:
            if stored.request_digest != digest:
                raise IdempotencyKeyReusedError(
                    "this Idempotency-Key was used for a different request"
                )
            audit(state.store, exchange(), "create", 200, entity=("Bundle", stored.id))
            g.audited = True
            return Response(
                stored.bundle_json,
                headers=_stored_headers(stored.id),
                content_type=fhir_content_type(fhir_version),
            )
    result = evaluate(loaded)
    bundle = render_triage_bundle(
        loaded, result, settings=state.fhir_settings, fhir_version=fhir_version
    )
    if bundle_type == "transaction":
        bundle = as_transaction(bundle)
    facts = TriageFacts(
        request=loaded,
        result=result,
        source=source,
        request_id=g.get("request_id") or "",
        received_us=received_us,
        fhir_version=fhir_version,
        software_version=software_version(),
        canonical_base=state.fhir_settings.canonical_base,
        idempotency_key=key if keep else None,
        request_digest=digest,
    )
    try:
        saved = save_triage(state.store, facts, bundle, exchange(), keep=keep)
    except DuplicateKeyError:
        raise IdempotencyConflictError(
            "a request with this Idempotency-Key is being processed; retry it later"
        ) from None
    g.audited = True
    headers = _stored_headers(saved.bundle_id) if saved.stored else {}
    return Response(saved.body, headers=headers, content_type=fhir_content_type(fhir_version))


@blueprint.post("/v1/triage")
def triage() -> Response:
    """Triage one person; answers a collection Bundle (PROTOCOL.md §9)."""
    fhir_version, bundle_type = negotiate_request(request, bundle=True)
    require_json_content_type(request.headers.get("Content-Type"))
    state = app_state()
    body = read_body(request, state.settings.max_body_bytes)
    data = parse_json_object(body)
    return triage_response(
        load_request(data),
        state=state,
        fhir_version=fhir_version,
        bundle_type=bundle_type,
        source="v1/triage",
        body=body,
    )
