"""FHIR rendering and reading, pure: no Flask (a test enforces it).

Renders a triage result (PROTOCOL.md §9), the published conformance resources and
OperationOutcomes; reads a QuestionnaireResponse back into a request.

Public interface::

    from api.fhir import FhirSettings, render_triage_bundle, LAYOUT_DESCRIPTION
    from api.fhir import questionnaire_response_to_request, map_questionnaire_response

System URLs and the product CodeSystems live in :mod:`api.fhir.codesystems`.
"""

from __future__ import annotations

from api.fhir.bundle import (
    LAYOUT_DESCRIPTION,
    TRANSACTION_DESCRIPTION,
    as_transaction,
    render_triage_bundle,
)
from api.fhir.context import FhirContext
from api.fhir.outcome import Issue, operation_outcome
from api.fhir.questionnaire_response import (
    MappedRequest,
    QuestionnaireResponseError,
    map_questionnaire_response,
    questionnaire_response_to_request,
)
from api.fhir.settings import FhirSettings
from api.fhir.versions import SUPPORTED_FHIR_VERSIONS

__all__ = [
    "LAYOUT_DESCRIPTION",
    "SUPPORTED_FHIR_VERSIONS",
    "TRANSACTION_DESCRIPTION",
    "FhirContext",
    "FhirSettings",
    "Issue",
    "MappedRequest",
    "QuestionnaireResponseError",
    "as_transaction",
    "map_questionnaire_response",
    "operation_outcome",
    "questionnaire_response_to_request",
    "render_triage_bundle",
]
