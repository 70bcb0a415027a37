"""CDS Hooks 2.0: discovery, the ``twitch-triage`` service on ``patient-view``, feedback.

Thin: the EHR's JWT is checked by the identity gate (``api.auth.ehr``, which sets
the principal: the EHR and its tenant); the views call one use case of
:mod:`api.services.cds` and answer JSON (``application/json``, as CDS Hooks
asks). Errors are OperationOutcomes like everywhere else.
"""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, g, request

from api.http import (
    Call,
    app_state,
    audited,
    audits_failures,
    exchange,
    fhir_endpoint,
    recording,
)
from api.negotiation import require_json_content_type
from api.services.cds import (
    SERVICE_ID,
    CdsContext,
    CdsTrail,
    audit_service_call,
    call_service,
    discovery_document,
    record_feedback,
)

blueprint = Blueprint("cds", __name__)


def _json(body: object) -> Response:
    return Response(orjson.dumps(body), content_type="application/json")


def _base_url(call: Call) -> str:
    return call.state.settings.public_base_url or request.host_url.rstrip("/")


@blueprint.get("/cds-services")
@fhir_endpoint()
def discovery(call: Call) -> Response:
    """The services this CDS Service offers (public: it holds no patient data)."""
    return _json(discovery_document(call.state.fhir.canonical_base))


@blueprint.post(f"/cds-services/{SERVICE_ID}")
@fhir_endpoint(body=require_json_content_type)
def service(call: Call) -> Response:
    """Triage the patient's newest intake; one card, or none without an intake (audited)."""
    state = call.state
    g.cds_trail = trail = CdsTrail()  # what the call touched, for its failure's audit
    answer = call_service(
        call.payload,
        CdsContext(
            fhir=state.fhir,
            recording=recording(state),
            cds=state.cds,
            signer=state.links,
            base_url=_base_url(call),
            report_link_seconds=state.settings.report_link_seconds,
            intake_app_url=state.settings.cds_intake_app_url,
            ehr_id=g.principal.client_id,
            trail=trail,
        ),
    )
    if answer.outcome is not None:
        g.triage_outcome = answer.outcome  # counted in the metrics by level
    audited()  # call_service wrote the call's operation AuditEvent (and the assessment's)
    return _json(answer.body)


@audits_failures("cds.service")
def _audit_failed_call(status: int) -> None:
    """A refused or failed call, audited with what it touched before it ended."""
    trail = g.get("cds_trail") or CdsTrail()
    audit_service_call(app_state().store, exchange(), trail, status)


@blueprint.post(f"/cds-services/{SERVICE_ID}/feedback")
@fhir_endpoint(body=require_json_content_type)
def feedback(call: Call) -> Response:
    """Store what the clinician did with cards (accepted, overridden, why); audited."""
    stored = record_feedback(
        call.payload, cds=call.state.cds, exchange=exchange(), store=call.state.store
    )
    audited()
    return _json({"stored": stored})
