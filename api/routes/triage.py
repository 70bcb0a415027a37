"""POST /v1/triage: a request in the PROTOCOL.md §3 vocabulary → a FHIR Bundle.

Thin (flask-smorest style): :func:`api.http.fhir_endpoint` negotiates and reads
the body, :func:`api.services.triage_intake` does the work (run by
:func:`api.http.stored_triage_response`, which stores it), errors are typed and
:mod:`api.errors` turns them into OperationOutcomes.
"""

from __future__ import annotations

from flask import Blueprint, Response

from api.http import Call, fhir_endpoint, stored_triage_response
from api.negotiation import require_json_content_type
from api.services import triage_intake

blueprint = Blueprint("triage", __name__)


@blueprint.post("/v1/triage")
@fhir_endpoint(body=require_json_content_type, bundle=True)
def triage(call: Call) -> Response:
    """Triage one person; answers a collection Bundle (PROTOCOL.md §9)."""
    return stored_triage_response(
        call,
        source="v1",
        run=lambda: triage_intake(
            call.payload,
            context=call.state.fhir,
            source="v1",
            fhir_version=call.fhir_version,
            bundle_type=call.bundle_type,
        ),
    )
