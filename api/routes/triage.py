"""POST /v1/triage: a request in the PROTOCOL.md §3 vocabulary → a FHIR Bundle.

The view stays thin (flask-smorest style: load → evaluate → render); every
check raises a typed error that :mod:`api.errors` turns into an
OperationOutcome. Order of checks: Accept or ``_format`` (406), ``_bundle``
(400), Content-Type (415), size (413), JSON (400), vocabulary (422). Other
query parameters are ignored, as FHIR servers do.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from marshmallow import ValidationError

from api.config import AppState, app_state
from api.errors import RequestValidationError
from api.fhir import as_transaction, render_triage_bundle
from api.jsonbody import parse_json_object, read_body
from api.media import negotiate_request, require_json_content_type
from api.responses import fhir_response
from schemas import field_issues, load_triage_request
from triage import evaluate

blueprint = Blueprint("triage", __name__)


def load_request(data: dict[str, Any]) -> dict[str, Any]:
    """The validated request, or RequestValidationError with one issue per field."""
    try:
        return load_triage_request(data)
    except ValidationError as exc:
        raise RequestValidationError(field_issues(exc.messages)) from None


def triage_response(
    loaded: dict[str, Any], *, state: AppState, fhir_version: str, bundle_type: str
) -> Response:
    """Evaluate a validated request and answer its Bundle (shared with ``$triage``)."""
    result = evaluate(loaded)
    bundle = render_triage_bundle(
        loaded, result, settings=state.fhir_settings, fhir_version=fhir_version
    )
    if bundle_type == "transaction":
        bundle = as_transaction(bundle)
    return fhir_response(bundle, fhir_version=fhir_version)


@blueprint.post("/v1/triage")
def triage() -> Response:
    """Triage one person; answers a collection Bundle (PROTOCOL.md §9)."""
    fhir_version, bundle_type = negotiate_request(request, bundle=True)
    require_json_content_type(request.headers.get("Content-Type"))
    state = app_state()
    data = parse_json_object(read_body(request, state.settings.max_body_bytes))
    return triage_response(
        load_request(data), state=state, fhir_version=fhir_version, bundle_type=bundle_type
    )
