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
from api.fhir.elements import (
    DATE_TIME_TEXT,
    LANGUAGE_TEXT,
    MODIFIERS,
    VALUE_KEY,
    Fault,
    contained_problems,
    element_problems,
)
from api.fhir.questionnaire_response import (
    QR,
    MappedRequest,
    Problem,
    QuestionnaireResponseError,
    read_questionnaire_response,
)
from api.fhir.search import ID_TEXT

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
#: The JSON shape of the elements the triage does not read (FHIR JSON: a complex
#: element is an object, a repeating one an array of them). Not reading them is no
#: reason to take a malformed one: a strict FHIR server refuses it, and so do we,
#: rather than drop it silently. ``identifier`` repeats in R5, not in R4: both taken.
OBJECT_ELEMENTS = ("meta", "text", "encounter", "author", "source")
ARRAY_ELEMENTS = ("contained", "extension", "basedOn", "partOf")
#: Once of the right shape, each is held to its R4 type, a row of the element table
#: (``api/fhir/elements.py``); ``contained`` to :func:`contained_problems`.
ELEMENT_TYPES = {
    "meta": "Meta",
    "text": "Narrative",
    "identifier": "Identifier",
    "encounter": "Reference",
    "author": "Reference",
    "source": "Reference",
    "extension": "Extension",
    "basedOn": "Reference",
    "partOf": "Reference",
}
#: The primitive elements of each resource that may carry a ``_name`` object (an id and
#: extensions: FHIR JSON's primitive extensions); implicitRules is a modifier.
PRIMITIVE_ELEMENTS = {
    "QuestionnaireResponse": frozenset({"id", "language", "questionnaire", "status", "authored"}),
    "Parameters": frozenset({"id", "language"}),
}
#: FHIR ``id``; a language tag (BCP 47: ``en``, ``en-GB``, ``zh-Hant-TW``); FHIR R4
#: ``dateTime`` (a time needs seconds and a zone, offsets up to ±14:00) of a day that
#: exists. The request contract publishes the same patterns.
ID_PATTERN = ID_TEXT
LANGUAGE_PATTERN = LANGUAGE_TEXT
DATE_TIME_PATTERN = DATE_TIME_TEXT
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
    primitives = PRIMITIVE_ELEMENTS[name]
    for key in resource:
        if key in MODIFIERS:
            problems.append(_not_supported(f"{name}.{key}", f"the {name}"))
        elif str(key).startswith("_") and key[1:] in primitives:
            problems += _problems(_primitive_extension(resource[key], f"{name}.{key}"))
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
    malformed = {p.expression for p in problems}
    return problems + _typed_problems(resource, name, malformed)


def _typed_problems(resource: Mapping[str, Any], name: str, malformed: set[str]) -> list[Problem]:
    """The problems inside each element of the right JSON shape, against its R4 type."""
    problems: list[Problem] = []
    for key, type_name in ELEMENT_TYPES.items():
        if key not in resource or f"{name}.{key}" in malformed:
            continue
        value = resource[key]
        members = (
            [(f"{name}.{key}", value)]
            if isinstance(value, Mapping)
            else [(f"{name}.{key}[{i}]", member) for i, member in enumerate(value)]
        )
        for where, member in members:
            problems += _problems(element_problems(member, type_name, where))
    if "contained" in resource and f"{name}.contained" not in malformed:
        problems += _contained_problems(resource, name)
    return problems


def _primitive_extension(value: Any, where: str) -> Iterable[Fault]:
    """A ``_name`` of a resource's primitive: an object with an id and extensions."""
    return (
        element_problems(value, "Element", where)
        if isinstance(value, Mapping)
        else [Fault(f"{where.rsplit('.', 1)[1]} must be an Element object", where, "value")]
    )


def _contained_problems(resource: Mapping[str, Any], name: str) -> list[Problem]:
    """Each contained resource's problems, and dom-3: each is referred to (``#id``) from
    elsewhere in the resource, or refers to it (``#``)."""
    problems: list[Problem] = []
    found = set(_strings(resource))
    for i, contained in enumerate(resource["contained"]):
        where = f"{name}.contained[{i}]"
        faults = list(contained_problems(contained, where))
        problems += _problems(faults)
        ident = contained.get("id")
        if faults or not isinstance(ident, str):
            continue
        if f"#{ident}" not in found and "#" not in set(_strings(contained)):
            problems.append(
                Problem(
                    f"contained resource {ident!r} is referred to by nothing in the {name} "
                    "and refers to nothing in it (dom-3)",
                    f"{where}.id",
                    code="invalid",
                )
            )
    return problems


def _strings(node: Any) -> Iterable[str]:
    """Every string value in a JSON tree (where a ``#id`` reference may be)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


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
