"""Triage use cases: a request in the PROTOCOL.md §3 vocabulary or a QuestionnaireResponse.

Both run the same pipeline (schema load → engine → Bundle), so the same answers
give the same Bundle whichever way they arrive. Storage will plug in here, after
the Bundle is rendered, with everything it needs in the :class:`Outcome`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from api.fhir import (
    FhirContext,
    Issue,
    QuestionnaireResponseError,
    as_transaction,
    render_triage_bundle,
)
from api.fhir.triage_input import TriageInput, read_triage_input
from api.fhir.versions import DEFAULT_FHIR_VERSION
from api.services.errors import InvalidInputError
from api.services.outcome import Outcome, Source
from schemas import InvalidRequestError, validate_request
from triage import KNOWLEDGE_BASE_VERSION, evaluate


def _triage(
    loaded: Mapping[str, Any],
    *,
    context: FhirContext,
    source: Source,
    received: datetime,
    fhir_version: str,
    bundle_type: str,
) -> Outcome:
    """Evaluate a validated request and render its Bundle."""
    result = evaluate(loaded)
    issued = datetime.now(UTC)
    bundle = render_triage_bundle(
        loaded,
        result,
        settings=context.settings,
        tables=context.tables,
        fhir_version=fhir_version,
        now=issued,
    )
    if bundle_type == "transaction":
        bundle = as_transaction(bundle)
    return Outcome(
        source=source,
        request=loaded,
        result=result,
        bundle=bundle,
        fhir_version=fhir_version,
        knowledge_base_version=result.knowledge_base_version,
        received=received,
        issued=issued,
    )


def triage_intake(
    payload: Mapping[str, Any],
    *,
    context: FhirContext,
    source: Source = "v1",
    fhir_version: str = DEFAULT_FHIR_VERSION,
    bundle_type: str = "collection",
) -> Outcome:
    """Triage one decoded request body; InvalidInputError names every bad field.

    Each issue's expression is the field's JSON path (``history.medications[0].class``).
    """
    received = datetime.now(UTC)
    try:
        loaded = validate_request(payload)
    except InvalidRequestError as exc:
        raise InvalidInputError(
            [Issue(issue.code, issue.diagnostics, (issue.path,)) for issue in exc.issues],
            str(exc),
        ) from None
    return _triage(
        loaded,
        context=context,
        source=source,
        received=received,
        fhir_version=fhir_version,
        bundle_type=bundle_type,
    )


def _item_issues(source: TriageInput, exc: InvalidRequestError) -> list[Issue]:
    """Schema errors of a mapped QuestionnaireResponse, located at its items."""
    issues = []
    for issue in exc.issues:
        expression, link_id = source.locate(issue.path)
        issues.append(Issue(issue.code, f"linkId {link_id}: {issue.message}", (expression,)))
    return issues


def triage_questionnaire_response(
    body: Mapping[str, Any],
    *,
    context: FhirContext,
    fhir_version: str = DEFAULT_FHIR_VERSION,
    bundle_type: str = "collection",
) -> Outcome:
    """Triage a QuestionnaireResponse (or Parameters) answering the intake Questionnaire.

    InvalidInputError has one issue per offending item, ``expression`` = its FHIRPath
    and the diagnostics starting with its linkId.
    """
    received = datetime.now(UTC)
    try:
        source = read_triage_input(
            body, canonical_base=context.canonical_base, version=KNOWLEDGE_BASE_VERSION
        )
    except QuestionnaireResponseError as exc:
        shown = f"linkId {exc.link_id}: {exc}" if exc.link_id is not None else str(exc)
        issue = Issue(exc.code, shown, (exc.expression,))
        raise InvalidInputError([issue], "the QuestionnaireResponse cannot be triaged") from None
    try:
        loaded = validate_request(source.mapped.request)
    except InvalidRequestError as exc:
        issues = _item_issues(source, exc)
        summary = f"{len(issues)} item(s) of the QuestionnaireResponse are not valid"
        raise InvalidInputError(issues, summary) from None
    return _triage(
        loaded,
        context=context,
        source="fhir",
        received=received,
        fhir_version=fhir_version,
        bundle_type=bundle_type,
    )
