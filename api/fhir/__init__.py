"""FHIR rendering of a triage result (PROTOCOL.md §9) and the QuestionnaireResponse mapping.

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
from api.fhir.questionnaire_response import (
    MappedRequest,
    QuestionnaireResponseError,
    map_questionnaire_response,
    questionnaire_response_to_request,
)
from api.fhir.settings import SUPPORTED_FHIR_VERSIONS, FhirSettings

__all__ = [
    "LAYOUT_DESCRIPTION",
    "SUPPORTED_FHIR_VERSIONS",
    "TRANSACTION_DESCRIPTION",
    "FhirSettings",
    "MappedRequest",
    "QuestionnaireResponseError",
    "as_transaction",
    "map_questionnaire_response",
    "questionnaire_response_to_request",
    "render_triage_bundle",
]
