"""The FHIR interface under ``/fhir``: metadata, conformance resources and ``$triage``.

Reads serve the prebuilt bytes of the app's catalog; ``$triage`` is the use case
:func:`api.services.triage_questionnaire_response` (same pipeline and Bundle as
``POST /v1/triage``). Negotiation and body reading: :func:`api.http.fhir_endpoint`.
"""

from __future__ import annotations

from flask import Blueprint, Response

from api.http import Call, bytes_response, fhir_endpoint, stored_triage_response
from api.negotiation import require_fhir_json_content_type
from api.services import (
    READABLE_TYPES,
    capability_statement,
    published_resource,
    triage_questionnaire_response,
)

blueprint = Blueprint("fhir", __name__, url_prefix="/fhir")

#: Resource types readable by id; any other type in the path is a 404 from routing.
READABLE = f"any({', '.join(READABLE_TYPES)})"


@blueprint.get("/metadata")
@fhir_endpoint()
def metadata(call: Call) -> Response:
    """The CapabilityStatement (FHIR ``capabilities`` interaction)."""
    return bytes_response(capability_statement(call.state.fhir, call.fhir_version), call)


@blueprint.get(f"/<{READABLE}:resource_type>/<resource_id>")
@fhir_endpoint()
def read(call: Call, resource_type: str, resource_id: str) -> Response:
    """FHIR ``read`` of a published Questionnaire, CodeSystem, ValueSet or OperationDefinition."""
    return bytes_response(
        published_resource(call.state.fhir, resource_type, resource_id, call.fhir_version), call
    )


@blueprint.post("/QuestionnaireResponse/$triage")
@fhir_endpoint(body=require_fhir_json_content_type, bundle=True)
def triage_operation(call: Call) -> Response:
    """Triage a QuestionnaireResponse answering the intake Questionnaire (same Bundle)."""
    return stored_triage_response(
        call,
        source="fhir",
        run=lambda: triage_questionnaire_response(
            call.payload,
            context=call.state.fhir,
            fhir_version=call.fhir_version,
            bundle_type=call.bundle_type,
        ),
    )
