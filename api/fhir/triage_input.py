"""The body of ``POST /fhir/QuestionnaireResponse/$triage`` → the request dict.

Only what is specific to the operation lives here: unwrapping an optional
Parameters body, the resource-level checks (the ``questionnaire`` it answers,
its ``status``, elements we must not ignore) and, for the items, the existing
inverse mapping :func:`map_questionnaire_response`. Ranges, codes, required
fields and everything else about the answers are the request schema's job,
exactly as for ``POST /v1/triage``; :meth:`MappedRequest.locate` turns its
JSON paths back into FHIRPaths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.fhir import codesystems as cs
from api.fhir.questionnaire_response import (
    MappedRequest,
    QuestionnaireResponseError,
    map_questionnaire_response,
)

QR = "QuestionnaireResponse"
#: QuestionnaireResponse.status codes (FHIR R4, required binding) we triage.
#: ``entered-in-error`` is refused: the answers are known to be wrong.
TRIAGE_STATUSES = frozenset({"in-progress", "completed", "amended", "stopped"})
ALL_STATUSES = TRIAGE_STATUSES | {"entered-in-error"}
#: Elements of an R4 QuestionnaireResponse. Others are errors, as in FHIR JSON.
QR_ELEMENTS = frozenset(
    {
        "resourceType",
        "id",
        "meta",
        "language",
        "text",
        "contained",
        "extension",
        "identifier",
        "basedOn",
        "partOf",
        "questionnaire",
        "status",
        "subject",
        "encounter",
        "authored",
        "author",
        "source",
        "item",
    }
)
#: Modifier elements: when present they change the meaning, and we do not support them.
_MODIFIERS = ("modifierExtension", "implicitRules")


@dataclass(frozen=True, slots=True)
class TriageInput:
    """The mapped request and the FHIRPath root of the QuestionnaireResponse in the body."""

    mapped: MappedRequest
    root: str = QR

    def locate(self, json_path: str) -> tuple[str, str]:
        """(FHIRPath in the body, linkId) for a request-schema error at ``json_path``."""
        expression, link_id = self.mapped.locate(json_path)
        return _rebase(expression, self.root), link_id


def _rebase(expression: str, root: str) -> str:
    return root + expression[len(QR) :] if expression.startswith(QR) else expression


def _unwrap(body: Mapping[str, Any]) -> tuple[Any, str]:
    """(the QuestionnaireResponse, its FHIRPath root) of a body, Parameters or not."""
    if body.get("resourceType") != "Parameters":
        return body, QR
    parameters = body.get("parameter")
    if not isinstance(parameters, list) or len(parameters) != 1:
        raise QuestionnaireResponseError(
            "a Parameters body must have exactly one parameter, named resource",
            expression="Parameters.parameter",
            code="required" if not parameters else "invalid",
        )
    parameter = parameters[0]
    if not isinstance(parameter, Mapping) or parameter.get("name") != "resource":
        raise QuestionnaireResponseError(
            "the only parameter of $triage is named resource",
            expression="Parameters.parameter[0].name",
        )
    return parameter.get("resource"), "Parameters.parameter[0].resource"


def _check_resource(qr: Any, canonical_base: str, version: str) -> None:
    if not isinstance(qr, Mapping) or qr.get("resourceType") != QR:
        found = qr.get("resourceType") if isinstance(qr, Mapping) else None
        shown = f"a {found[:40]}" if isinstance(found, str) else "no FHIR resource"
        raise QuestionnaireResponseError(
            f"expected a QuestionnaireResponse, got {shown}", expression=QR
        )
    for key in qr:
        if key in _MODIFIERS:
            raise QuestionnaireResponseError(
                f"{key} is not supported, so the QuestionnaireResponse cannot be triaged",
                expression=f"{QR}.{key}",
                code="not-supported",
            )
        if key not in QR_ELEMENTS:
            raise QuestionnaireResponseError(
                f"unknown element {str(key)[:40]!r} in the QuestionnaireResponse",
                expression=f"{QR}.{key}" if str(key).isidentifier() else QR,
            )
    url = cs.questionnaire_url(canonical_base)
    expected = cs.questionnaire_canonical(canonical_base, version)
    questionnaire = qr.get("questionnaire")
    if questionnaire is None:
        raise QuestionnaireResponseError(
            f"questionnaire is required: the intake Questionnaire {expected}",
            expression=f"{QR}.questionnaire",
            code="required",
        )
    if not isinstance(questionnaire, str) or questionnaire not in (url, expected):
        shown = str(questionnaire)[:200]
        raise QuestionnaireResponseError(
            f"questionnaire must be {expected} (or {url}), got {shown!r}",
            expression=f"{QR}.questionnaire",
            code="value",
        )
    status = qr.get("status")
    if status is None:
        raise QuestionnaireResponseError(
            "status is required", expression=f"{QR}.status", code="required"
        )
    if not isinstance(status, str) or status not in ALL_STATUSES:
        raise QuestionnaireResponseError(
            f"status {str(status)[:40]!r} is not a QuestionnaireResponse status",
            expression=f"{QR}.status",
            code="code-invalid",
        )
    if status not in TRIAGE_STATUSES:
        raise QuestionnaireResponseError(
            f"a QuestionnaireResponse with status {status} is not triaged",
            expression=f"{QR}.status",
            code="value",
        )


def read_triage_input(body: Mapping[str, Any], *, canonical_base: str, version: str) -> TriageInput:
    """The request a ``$triage`` body stands for; QuestionnaireResponseError names the item.

    ``version`` is the Questionnaire version our QuestionnaireResponses cite (the
    knowledge-base version). Codings must use our item CodeSystems.
    """
    qr, root = _unwrap(body)
    try:
        _check_resource(qr, canonical_base, version)
        mapped = map_questionnaire_response(qr, canonical_base=canonical_base)
    except QuestionnaireResponseError as exc:
        exc.expression = _rebase(exc.expression, root)
        raise
    return TriageInput(mapped, root)
