"""The FHIR interface under ``/fhir``: metadata, conformance resources and ``$triage``.

Reads serve prebuilt bytes from :func:`api.fhir.catalog.catalog` (built once per
canonical base). ``$triage`` is ``POST /v1/triage`` with a QuestionnaireResponse
for a body: read → map to the request dict → the same schema load → evaluate →
render. Order of checks: Accept or ``_format`` (406), ``_bundle`` (400),
Content-Type (415), size (413), JSON (400), QuestionnaireResponse and answers
(422). Other query parameters are ignored, as FHIR servers do.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from api.config import app_state
from api.errors import (
    Issue,
    QuestionnaireResponseInvalidError,
    RequestValidationError,
    ResourceNotFoundError,
)
from api.fhir import QuestionnaireResponseError
from api.fhir.catalog import CAPABILITY_ID, catalog
from api.fhir.questionnaire_response import Problem
from api.fhir.triage_input import TriageInput, read_triage_input
from api.jsonbody import parse_json_object, read_body
from api.media import negotiate_request, require_fhir_json_content_type
from api.responses import fhir_content_type
from api.routes.triage import load_request, triage_response
from schemas import FieldIssue
from triage import KNOWLEDGE_BASE_VERSION

blueprint = Blueprint("fhir", __name__, url_prefix="/fhir")

#: Resource types readable by id; any other type in the path is a 404 from routing.
READABLE = "any(Questionnaire, CodeSystem, ValueSet, OperationDefinition)"


def _published(resource_type: str, resource_id: str) -> Response:
    fhir_version, _ = negotiate_request(request)
    body = catalog(app_state().fhir_settings.canonical_base).body(
        resource_type, resource_id, fhir_version
    )
    if body is None:
        raise ResourceNotFoundError(f"no {resource_type} with id {resource_id[:64]!r}")
    return Response(body, content_type=fhir_content_type(fhir_version))


@blueprint.get("/metadata")
def metadata() -> Response:
    """The CapabilityStatement (FHIR ``capabilities`` interaction)."""
    return _published("CapabilityStatement", CAPABILITY_ID)


@blueprint.get(f"/<{READABLE}:resource_type>/<resource_id>")
def read(resource_type: str, resource_id: str) -> Response:
    """FHIR ``read`` of a published Questionnaire, CodeSystem, ValueSet or OperationDefinition."""
    return _published(resource_type, resource_id)


def _item_issue(source: TriageInput, issue: FieldIssue) -> Issue:
    expression, link_id = source.locate(issue.path)
    return Issue(str(issue.code), f"linkId {link_id}: {issue.message}", (expression,))


def _problem_issue(problem: Problem) -> Issue:
    shown = f"linkId {problem.link_id}: {problem.message}" if problem.link_id else problem.message
    return Issue(problem.code, shown, (problem.expression,))


@blueprint.post("/QuestionnaireResponse/$triage")
def triage_operation() -> Response:
    """Triage a QuestionnaireResponse answering the intake Questionnaire (same Bundle)."""
    fhir_version, bundle_type = negotiate_request(request, bundle=True)
    require_fhir_json_content_type(request.headers.get("Content-Type"))
    state = app_state()
    raw = read_body(request, state.settings.max_body_bytes)
    body = parse_json_object(raw)
    try:
        source = read_triage_input(
            body,
            canonical_base=state.fhir_settings.canonical_base,
            version=KNOWLEDGE_BASE_VERSION,
        )
    except QuestionnaireResponseError as exc:  # nothing could be read
        raise QuestionnaireResponseInvalidError(list(map(_problem_issue, exc.problems))) from None
    # Structural problems first, in document order; then the answers' values, which
    # the schema still checks on the items that could be read (not those that
    # only repeat a structural problem). Any problem at all: nothing is triaged.
    issues = [_problem_issue(problem) for problem in source.problems]
    try:
        loaded = load_request(source.mapped.request)
    except RequestValidationError as exc:
        values = [i for i in exc.field_issues if not source.explained(i.path)]
        raise QuestionnaireResponseInvalidError(
            issues + [_item_issue(source, issue) for issue in values]
        ) from None
    if issues:
        raise QuestionnaireResponseInvalidError(issues)
    return triage_response(
        loaded,
        state=state,
        fhir_version=fhir_version,
        bundle_type=bundle_type,
        source="fhir/$triage",
        body=raw,
    )
