"""POST /v1/triage: a request in the PROTOCOL.md §3 vocabulary → a FHIR Bundle.

Thin (flask-smorest style): :func:`api.http.fhir_endpoint` negotiates and reads
the body, :func:`api.services.triage_intake` does the work (wrapped by
:func:`api.services.assessments.stored_triage`, which stores it), errors are typed and
:mod:`api.errors` turns them into OperationOutcomes.
"""

from __future__ import annotations

from flask import Blueprint, Response

from api.http import Call, counted, fhir_endpoint, recording, stored_response
from api.negotiation import require_json_content_type
from api.services import triage_intake
from api.services.assessments import stored_triage

blueprint = Blueprint("triage", __name__)


@blueprint.post("/v1/triage")
@fhir_endpoint(body=require_json_content_type, bundle=True)
def triage(call: Call) -> Response:
    """Triage one person; answers a collection Bundle (PROTOCOL.md §9)."""
    stored = stored_triage(
        counted(
            lambda: triage_intake(
                call.payload,
                context=call.state.fhir,
                source="v1",
                fhir_version=call.fhir_version,
                bundle_type=call.bundle_type,
            )
        ),
        recording=recording(call.state),
        source="v1",
        fhir_version=call.fhir_version,
        bundle_type=call.bundle_type,
        payload=call.payload,
    )
    return stored_response(stored, call.fhir_version)
