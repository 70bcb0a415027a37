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
from api.fhir.questionnaire_response import NO_GATES, Problem
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
    gates: Mapping[str, bool] = NO_GATES,
) -> Outcome:
    """Evaluate a validated request and render its Bundle.

    ``gates`` are a QuestionnaireResponse's yes/no answers opening the lists: not part
    of the request the engine reads, but answers given, so the Bundle shows them.
    """
    result = evaluate(loaded)
    issued = datetime.now(UTC)
    bundle = render_triage_bundle(
        loaded,
        result,
        settings=context.settings,
        tables=context.tables,
        fhir_version=fhir_version,
        now=issued,
        identified=True,  # every triage is answered (and kept) with ids and meta
        gates=gates,
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
        gates=gates,
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


def _problem_issue(problem: Problem) -> Issue:
    """A structural problem of a QuestionnaireResponse, named by FHIRPath and linkId."""
    shown = f"linkId {problem.link_id}: {problem.message}" if problem.link_id else problem.message
    return Issue(problem.code, shown, (problem.expression,))


def _item_issues(source: TriageInput, exc: InvalidRequestError) -> list[Issue]:
    """Schema errors of a mapped QuestionnaireResponse, located at its items.

    An error on an item whose structural problem is already reported is left out.
    """
    issues = []
    for issue in exc.issues:
        if source.explained(issue.path):
            continue
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
    except QuestionnaireResponseError as exc:  # nothing could be read item by item
        issues = [_problem_issue(problem) for problem in exc.problems]
        raise InvalidInputError(issues, "the QuestionnaireResponse cannot be triaged") from None
    # Structural problems first, in document order; then the answers' values, which
    # the schema still checks on the items that could be read (not those that only
    # repeat a structural problem). Any problem at all: nothing is triaged.
    issues = [_problem_issue(problem) for problem in source.problems]
    try:
        loaded = validate_request(source.mapped.request)
    except InvalidRequestError as exc:
        issues += _item_issues(source, exc)
    if issues:
        summary = f"{len(issues)} problem(s) in the QuestionnaireResponse"
        raise InvalidInputError(issues, summary)
    return _triage(
        loaded,
        context=context,
        source="fhir",
        received=received,
        fhir_version=fhir_version,
        bundle_type=bundle_type,
        gates=source.mapped.gates,
    )
