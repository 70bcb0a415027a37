"""The body of ``POST /fhir/QuestionnaireResponse/$triage`` → the request dict.

Only what is specific to the operation lives here: unwrapping an optional
Parameters body, the resource-level checks (the ``questionnaire`` it answers,
its ``status``, elements we must not ignore) and, for the items and the
subject, the inverse mapping :func:`read_questionnaire_response`. Every
structural problem is collected, not just the first, so a client sees them all
in one OperationOutcome. Ranges, codes, required fields and everything else
about the answers are the request schema's job, exactly as for
``POST /v1/triage``; :meth:`MappedRequest.locate` turns its JSON paths back
into FHIRPaths.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from api.fhir import codesystems as cs
from api.fhir.elements import VALUE_KEY, Fault, element_problems
from api.fhir.questionnaire_response import (
    QR,
    MappedRequest,
    Problem,
    QuestionnaireResponseError,
    read_questionnaire_response,
)
from api.fhir.search import DAY_TEXT, ID_TEXT, YEAR_TEXT, ZONE_TEXT

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
#: The JSON shape of the elements the triage does not read (FHIR JSON: a complex
#: element is an object, a repeating one an array of them). Not reading them is no
#: reason to take a malformed one: a strict FHIR server refuses it, and so do we,
#: rather than drop it silently. ``identifier`` repeats in R5, not in R4: both taken.
OBJECT_ELEMENTS = ("meta", "text", "encounter", "author", "source")
ARRAY_ELEMENTS = ("contained", "extension", "basedOn", "partOf")
#: FHIR ``id``; a language tag (BCP 47: ``en``, ``en-GB``, ``zh-Hant-TW``); FHIR R4
#: ``dateTime`` (a time needs seconds and a zone, offsets up to ±14:00) of a day that
#: exists. The request contract publishes the same patterns.
ID_PATTERN = ID_TEXT
LANGUAGE_PATTERN = r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*"
DATE_TIME_PATTERN = (
    f"(?:{DAY_TEXT}(?:T(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\\.[0-9]+)?"
    f"{ZONE_TEXT})?|{YEAR_TEXT}-(?:0[1-9]|1[0-2])|{YEAR_TEXT})"
)
_ID = re.compile(ID_PATTERN)
_LANGUAGE = re.compile(LANGUAGE_PATTERN)
_DATE_TIME = re.compile(DATE_TIME_PATTERN)


@dataclass(frozen=True, slots=True)
class TriageInput:
    """What a ``$triage`` body says: the mapped request and every structural problem.

    With problems, ``mapped`` holds only the items that could be read (the
    request schema may still report their values, see :meth:`explained`), and
    the body is refused; ``problems`` are already rooted in the body.
    """

    mapped: MappedRequest
    root: str = QR
    problems: tuple[Problem, ...] = ()

    def locate(self, json_path: str) -> tuple[str, str]:
        """(FHIRPath in the body, linkId) for a request-schema error at ``json_path``."""
        expression, link_id = self.mapped.locate(json_path)
        return _rebase(expression, self.root), link_id

    def explained(self, json_path: str) -> bool:
        """Whether a request-schema error at ``json_path`` only echoes a structural problem.

        An item that could not be read is missing from the request, so a required
        item or a medication's class is reported missing too: that error names the
        same linkId at the resource or group enclosing the unreadable item, and
        would only repeat the problem. (The reader keeps the section of an
        unreadable item, so a missing section never hides a missing item.)
        """
        expression, link_id = self.locate(json_path)
        return any(
            problem.link_id == link_id and _encloses(expression, problem.expression)
            for problem in self.problems
        )


def _encloses(outer: str, inner: str) -> bool:
    return inner == outer or inner.startswith((outer + ".", outer + "["))


def _rebase(expression: str, root: str) -> str:
    return root + expression[len(QR) :] if expression.startswith(QR) else expression


#: Elements of an R4 Parameters (a Resource: no text, no extensions) and what each is
#: checked against, as for the QuestionnaireResponse; ``parameter`` is read here.
PARAMETERS_ELEMENTS = frozenset(
    {"resourceType", "id", "meta", "implicitRules", "language", "parameter"}
)
#: Of a parameter, besides the table's row: a value[x], a resource or parts (inv-1).
_PARAMETER_READ = frozenset({"resource", "part", "modifierExtension"})
_PARAMETER = "Parameters.parameter[0]"


def _unwrap(body: Mapping[str, Any]) -> tuple[Any, str, list[Problem]]:
    """(the QuestionnaireResponse, its FHIRPath root, the Parameters' problems) of a body.

    The Parameters wrapper is held to the R4 Parameters definition as strictly as the
    QuestionnaireResponse: a modifier (``implicitRules``, a parameter's
    ``modifierExtension``) is not supported, an unknown or malformed element is
    refused, and the one parameter carries the resource and nothing else (inv-1).
    """
    if body.get("resourceType") != "Parameters":
        return body, QR, []
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
            expression=f"{_PARAMETER}.name",
        )
    problems = _resource_element_problems(body, "Parameters", PARAMETERS_ELEMENTS)
    if "modifierExtension" in parameter:
        problems.append(_not_supported(f"{_PARAMETER}.modifierExtension", "the Parameters"))
    for key in parameter:
        if key != "resource" and (key == "part" or VALUE_KEY.fullmatch(str(key))):
            problems.append(
                Problem(
                    f"{key} in parameter resource: a parameter has a value, a resource or "
                    "parts, never more than one (inv-1), and this one takes the resource",
                    f"{_PARAMETER}.{key}",
                )
            )
    read = _PARAMETER_READ | {key for key in parameter if VALUE_KEY.fullmatch(str(key))}
    problems += _problems(
        element_problems(
            parameter, "Parameters.parameter", _PARAMETER, read=read, what="the parameter"
        )
    )
    return parameter.get("resource"), f"{_PARAMETER}.resource", problems


def _problems(faults: Iterable[Fault]) -> list[Problem]:
    """Problems of the element table's faults (no linkId: they are not in an item)."""
    return [Problem(f.message, f.expression, code=f.code) for f in faults]


def _not_supported(expression: str, what: str) -> Problem:
    key = expression.rsplit(".", 1)[1]
    return Problem(
        f"{key} is not supported, so {what} cannot be triaged", expression, code="not-supported"
    )


def _resource_element_problems(
    resource: Mapping[str, Any], name: str, elements: frozenset[str]
) -> list[Problem]:
    """Modifiers (not supported) and unknown elements of a resource, in document order."""
    problems: list[Problem] = []
    for key in resource:
        if key in _MODIFIERS:
            problems.append(_not_supported(f"{name}.{key}", f"the {name}"))
        elif key not in elements:
            problems.append(
                Problem(
                    f"unknown element {str(key)[:40]!r} in the {name}",
                    f"{name}.{key}" if str(key).isidentifier() else name,
                )
            )
    problems.extend(_element_problems(resource, name, elements))
    return problems


def _check_resource(qr: Any, canonical_base: str, version: str) -> list[Problem]:
    """Every resource-level problem; raises only when the body is no QuestionnaireResponse."""
    if not isinstance(qr, Mapping) or qr.get("resourceType") != QR:
        found = qr.get("resourceType") if isinstance(qr, Mapping) else None
        shown = f"a {found[:40]}" if isinstance(found, str) else "no FHIR resource"
        raise QuestionnaireResponseError(
            f"expected a QuestionnaireResponse, got {shown}", expression=QR
        )
    problems = _resource_element_problems(qr, QR, QR_ELEMENTS)
    url = cs.questionnaire_url(canonical_base)
    expected = cs.questionnaire_canonical(canonical_base, version)
    questionnaire = qr.get("questionnaire")
    if questionnaire is None:
        problems.append(
            Problem(
                f"questionnaire is required: the intake Questionnaire {expected}",
                f"{QR}.questionnaire",
                code="required",
            )
        )
    elif not isinstance(questionnaire, str) or questionnaire not in (url, expected):
        shown = str(questionnaire)[:200]
        problems.append(
            Problem(
                f"questionnaire must be {expected} (or {url}), got {shown!r}",
                f"{QR}.questionnaire",
                code="value",
            )
        )
    status = qr.get("status")
    if status is None:
        problems.append(Problem("status is required", f"{QR}.status", code="required"))
    elif not isinstance(status, str) or status not in ALL_STATUSES:
        problems.append(
            Problem(
                f"status {str(status)[:40]!r} is not a QuestionnaireResponse status",
                f"{QR}.status",
                code="code-invalid",
            )
        )
    elif status not in TRIAGE_STATUSES:
        problems.append(
            Problem(
                f"a QuestionnaireResponse with status {status} is not triaged",
                f"{QR}.status",
                code="value",
            )
        )
    return problems


def _element_problems(
    resource: Mapping[str, Any], name: str, elements: frozenset[str]
) -> list[Problem]:
    """Malformed values of the elements the triage does not read (see ``OBJECT_ELEMENTS``).

    The same rules for a QuestionnaireResponse and for a Parameters wrapper; ``name``
    is the resource type, the root of every expression; only its ``elements`` are
    checked (an element it does not have is reported unknown, once).
    """
    problems: list[Problem] = []
    resource = {key: value for key, value in resource.items() if key in elements}

    def add(key: str, message: str) -> None:
        problems.append(Problem(message, f"{name}.{key}", code="value"))

    for key in OBJECT_ELEMENTS:
        if key in resource and not isinstance(resource[key], Mapping):
            add(key, f"{key} must be a JSON object")
    for key in ARRAY_ELEMENTS:
        if key in resource and not _objects(resource[key]):
            add(key, f"{key} must be a non-empty array of JSON objects")
    if _objects(resource.get("extension")):
        for i, extension in enumerate(resource["extension"]):
            problems += _problems(
                element_problems(extension, "Extension", f"{name}.extension[{i}]")
            )
    identifier = resource.get("identifier")
    if "identifier" in resource and not (isinstance(identifier, Mapping) or _objects(identifier)):
        add("identifier", "identifier must be an Identifier object (R5: an array of them)")
    for key, pattern, kind in (
        ("id", _ID, "a FHIR id"),
        ("language", _LANGUAGE, "a language tag"),
    ):
        value = resource.get(key)
        if key in resource and not (isinstance(value, str) and pattern.fullmatch(value)):
            add(key, f"{key} must be {kind}, got {str(value)[:40]!r}")
    if "authored" in resource and (message := _date_time_problem(resource["authored"])) is not None:
        add("authored", message)
    return problems


def _objects(value: object) -> bool:
    """Whether ``value`` is a repeating complex element: a non-empty array of objects."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _date_time_problem(value: object) -> str | None:
    """Why ``value`` is not a FHIR dateTime (``2026-11-28``, ``2026-11-28T09:30:00+01:00``)."""
    if isinstance(value, str) and _DATE_TIME.fullmatch(value):
        return None
    return (
        "authored must be a FHIR dateTime (a date that exists, or one with a time with "
        f"seconds and a zone), got {str(value)[:40]!r}"
    )


def read_triage_input(body: Mapping[str, Any], *, canonical_base: str, version: str) -> TriageInput:
    """What a ``$triage`` body says, with every structural problem in ``problems``.

    Raises QuestionnaireResponseError only when nothing can be read: a Parameters
    body without the one ``resource`` parameter, a resource that is not a
    QuestionnaireResponse, an ``item`` that is not a list. ``version`` is the
    Questionnaire version our QuestionnaireResponses cite (the knowledge-base
    version). Codings must use our item CodeSystems.
    """
    qr, root, wrapper = _unwrap(body)
    try:
        problems = _check_resource(qr, canonical_base, version)
        mapped, item_problems = read_questionnaire_response(qr, canonical_base=canonical_base)
    except QuestionnaireResponseError as exc:
        rebased = [p.rebased(root) for p in exc.problems]
        raise QuestionnaireResponseError.of([*wrapper, *rebased]) from None
    problems.extend(item_problems)
    return TriageInput(mapped, root, (*wrapper, *(p.rebased(root) for p in problems)))
