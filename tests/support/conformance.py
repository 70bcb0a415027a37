"""Checks of the result Bundle that schema validators miss.

fhir.resources (and most validators) accept any string as a narrative ``div`` and
know nothing of PROTOCOL.md §9. These functions return a list of problems (empty
= conformant) so tests and the CI conformance step (issue 4) share one
definition: XHTML narrative rules of the FHIR spec, and the §9 layout invariants.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from typing import Any

from api.fhir import codesystems as cs

_XHTML = "{http://www.w3.org/1999/xhtml}"

#: Elements the FHIR narrative may use (FHIR R4 narrative.html, "basic html").
ALLOWED_ELEMENTS = frozenset(
    [
        "a",
        "abbr",
        "acronym",
        "b",
        "big",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "col",
        "colgroup",
        "dd",
        "dfn",
        "div",
        "dl",
        "dt",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "li",
        "ol",
        "p",
        "pre",
        "q",
        "samp",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "tt",
        "ul",
        "var",
    ]
)
#: Attributes allowed on them (no event handlers, no scripting).
ALLOWED_ATTRIBUTES = frozenset(
    [
        "title",
        "style",
        "class",
        "id",
        "lang",
        "{http://www.w3.org/XML/1998/namespace}lang",
        "dir",
        "accesskey",
        "tabindex",
        "colspan",
        "rowspan",
        "href",
        "name",
        "src",
        "alt",
        "border",
        "cellpadding",
        "cellspacing",
        "width",
        "height",
        "align",
        "valign",
        "span",
        "summary",
        "abbr",
        "axis",
        "headers",
        "scope",
        "char",
        "charoff",
        "rules",
        "frame",
        "start",
        "type",
        "value",
        "xmlns",
    ]
)
_SCRIPT_URL = re.compile(r"^\s*(javascript|vbscript|data)\s*:", re.IGNORECASE)
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_PATIENT_REFERENCE = re.compile(r"^Patient/[A-Za-z0-9\-.]{1,64}$")
_VALUE_KEYS = (
    "valueBoolean",
    "valueInteger",
    "valueQuantity",
    "valueCodeableConcept",
    "valueString",
)


def narrative_problems(div: str) -> list[str]:
    """Problems of one ``Narrative.div``: well-formedness, elements, attributes, scripts."""
    try:
        root = ET.fromstring(div)  # noqa: S314 - our own output, parsed to check it
    except ET.ParseError as exc:
        return [f"narrative is not well-formed XHTML: {exc}"]
    problems = []
    if root.tag != f"{_XHTML}div":
        problems.append(f"narrative root must be an XHTML div, got {root.tag}")
    for element in root.iter():
        tag = element.tag
        if not isinstance(tag, str) or not tag.startswith(_XHTML):
            problems.append(f"element outside the XHTML namespace: {tag!r}")
            continue
        name = tag[len(_XHTML) :]
        if name not in ALLOWED_ELEMENTS:
            problems.append(f"element <{name}> is not allowed in a narrative")
        for attribute, value in element.attrib.items():
            if attribute not in ALLOWED_ATTRIBUTES or attribute.lower().startswith("on"):
                problems.append(f"attribute {attribute!r} on <{name}> is not allowed")
            if attribute in ("href", "src") and _SCRIPT_URL.match(value):
                problems.append(f"script URL in {attribute} of <{name}>")
    if not "".join(root.itertext()).strip():
        problems.append("narrative has no text (txt-2)")
    return problems


def iter_nodes(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) below ``node`` in a JSON tree."""
    yield path, node
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from iter_nodes(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from iter_nodes(value, f"{path}[{index}]")


def _is_uuid_urn(full_url: Any) -> bool:
    if not isinstance(full_url, str) or not full_url.startswith("urn:uuid:"):
        return False
    try:
        return str(uuid.UUID(full_url[9:])) == full_url[9:]
    except ValueError:
        return False


def _codings(tree: Any) -> Iterator[tuple[str, Any]]:
    for path, node in iter_nodes(tree):
        if path.endswith(".coding") and isinstance(node, list):
            yield from ((f"{path}[{i}]", c) for i, c in enumerate(node))
        elif path.endswith("valueCoding"):
            yield path, node


def _has_coding(concept: Any, system: str, code: str | None = None) -> bool:
    codings = concept.get("coding", []) if isinstance(concept, Mapping) else []
    return any(
        c.get("system") == system and (code is None or c.get("code") == code) for c in codings
    )


def _observation_problems(
    resource: Mapping[str, Any], where: str, base: str, kb_version: str | None
) -> list[str]:
    problems = []
    method = resource.get("method", {})
    if not _has_coding(method, cs.codesystem_url(base, cs.KNOWLEDGE_BASE)):
        problems.append(f"{where}: no knowledge-base coding in method")
    elif kb_version is not None and method["coding"][0].get("version") != kb_version:
        problems.append(f"{where}: knowledge-base version differs from the level Observation")
    for key in ("effectiveDateTime", "issued"):
        if not _INSTANT.match(str(resource.get(key, ""))):
            problems.append(f"{where}.{key}: missing or without time zone")
    intake = cs.codesystem_url(base, cs.INTAKE_ITEM)
    for index, component in enumerate(resource.get("component", [])):
        values = [k for k in component if k.startswith("value")]
        absent = "dataAbsentReason" in component
        if len(values) + absent != 1:
            problems.append(
                f"{where}.component[{index}]: needs exactly one value[x] or dataAbsentReason"
            )
        if values and values[0] not in _VALUE_KEYS:
            problems.append(f"{where}.component[{index}]: unexpected {values[0]}")
        if _has_coding(component.get("code"), intake) and not component["code"].get("text"):
            problems.append(f"{where}.component[{index}]: evidence without its JSON path as text")
    return problems


def _reference_problems(bundle: Mapping[str, Any], urls: list[Any]) -> list[str]:
    problems = []
    for path, node in iter_nodes(bundle):
        if not (path.endswith("reference") and isinstance(node, str)):
            continue
        if node.startswith("urn:"):
            if node not in urls:
                problems.append(f"{path}: reference {node} does not resolve inside the Bundle")
        elif not _PATIENT_REFERENCE.match(node):
            problems.append(f"{path}: unexpected reference {node}")
    problems += [
        f"{path}: coding without system and code"
        for path, coding in _codings(bundle)
        if not (isinstance(coding, Mapping) and coding.get("system") and coding.get("code"))
    ]
    return problems


def _level_problems(level: Mapping[str, Any], findings: list[Any], base: str) -> list[str]:
    problems = []
    members = [m.get("reference") for m in level.get("hasMember", [])]
    if sorted(members) != sorted(findings):
        problems.append("hasMember of the level Observation must list every finding once")
    if not _has_coding(level.get("valueCodeableConcept"), cs.codesystem_url(base, cs.TRIAGE_LEVEL)):
        problems.append("level Observation value is not a triage-level coding")
    if _kb_version(level, base) is None:
        problems.append("level Observation has no knowledge-base-version component")
    return problems


def _kb_version(level: Mapping[str, Any], base: str) -> str | None:
    system = cs.codesystem_url(base, cs.TRIAGE_OBSERVATION)
    for component in level.get("component", []):
        if _has_coding(component.get("code"), system, "knowledge-base-version"):
            return component.get("valueString")
    return None


def _resource_problems(
    resource: Mapping[str, Any], where: str, *, subject: Any, qr_url: Any, base: str, kb: str | None
) -> list[str]:
    problems = []
    if resource.get("subject") != subject:
        problems.append(f"{where}: subject differs from the QuestionnaireResponse")
    text = resource.get("text", {})
    if text.get("status") != "generated" or not isinstance(text.get("div"), str):
        problems.append(f"{where}: no generated narrative")
    else:
        problems += [f"{where}.text: {p}" for p in narrative_problems(text["div"])]
    if resource.get("resourceType") == "Observation":
        problems += _observation_problems(resource, where, base, kb)
        if [d.get("reference") for d in resource.get("derivedFrom", [])] != [qr_url]:
            problems.append(f"{where}: derivedFrom must be the QuestionnaireResponse")
    return problems


def bundle_problems(bundle: Mapping[str, Any], *, canonical_base: str) -> list[str]:
    """Every way ``bundle`` departs from PROTOCOL.md §9 and LAYOUT_DESCRIPTION."""
    base = cs.normalize_base(canonical_base)
    problems: list[str] = []
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "collection":
        problems.append("not a collection Bundle")
    if not _INSTANT.match(str(bundle.get("timestamp", ""))):
        problems.append("Bundle.timestamp missing or without time zone")
    entries = bundle.get("entry", [])
    urls = [entry.get("fullUrl") for entry in entries]
    problems += [
        f"entry[{i}]: fullUrl {u!r} is not urn:uuid"
        for i, u in enumerate(urls)
        if not _is_uuid_urn(u)
    ]
    if len(set(urls)) != len(urls):
        problems.append("fullUrls are not unique")
    resources = [entry.get("resource", {}) for entry in entries]
    kinds = [r.get("resourceType") for r in resources]
    if kinds.count("QuestionnaireResponse") != 1 or kinds[:1] != ["QuestionnaireResponse"]:
        problems.append("exactly one QuestionnaireResponse, first, is required")
    levels = [
        i
        for i, r in enumerate(resources)
        if r.get("resourceType") == "Observation"
        and _has_coding(r.get("code"), cs.LOINC, cs.LOINC_ACUITY[0])
    ]
    if levels != [1]:
        problems.append(
            f"exactly one triage-level Observation (LOINC 11283-9), second; found {levels}"
        )
        return problems
    problems += _level_problems(resources[1], urls[2:], base)
    kb = _kb_version(resources[1], base)
    subject = resources[0].get("subject")
    for i, resource in enumerate(resources):
        problems += _resource_problems(
            resource, f"entry[{i}].resource", subject=subject, qr_url=urls[0], base=base, kb=kb
        )
    return problems + _reference_problems(bundle, urls)
