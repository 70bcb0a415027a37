"""The FHIR interface in OpenAPI terms: schemas, parameters and paths for ``tools.openapi``.

The ``$triage`` request schema is generated from the vocabulary like the
``/v1/triage`` one, and is meant to be *exact*: a QuestionnaireResponse valid
against it is triaged (200), one that is not is refused (4xx), so contract
fuzzing can hold the server to it (tests check the equivalence). JSON Schema
expresses the item rules with ``contains``/``maxContains`` (each linkId once,
each code once, required items). The one rule it cannot express is that a
Patient ``subject`` and a ``patient.reference`` answer, when both are given,
must be equal (the server refuses a QuestionnaireResponse naming two patients).
So the schema describes the one-source form, the subject *or* the answer, and
says in words that both, when equal, are accepted too (the form ``/v1/triage``
emits).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api.fhir import codesystems as cs
from api.fhir.capability import TRIAGE_OPERATION_ID
from api.fhir.catalog import catalog
from api.fhir.elements import (
    COMPLEX,
    EXTENSION_VALUES,
    OBJECT,
    OPEN_VALUES,
    PRIMITIVES,
    RESOURCE_TYPES,
    WHITESPACE,
    XHTML_NS,
    Element,
)
from api.fhir.questionnaire_response import GATES, MEDICATIONS
from api.fhir.triage_input import (
    ARRAY_ELEMENTS,
    DATE_TIME_PATTERN,
    ELEMENT_TYPES,
    ID_PATTERN,
    LANGUAGE_PATTERN,
    OBJECT_ELEMENTS,
    PRIMITIVE_ELEMENTS,
    QR_ELEMENTS,
    TRIAGE_STATUSES,
)
from api.fhir.versions import FHIR_JSON
from schemas.fields import TEXT_PATTERN
from triage import KNOWLEDGE_BASE_VERSION
from triage.vocabulary import SECTIONS, TOP_LEVEL_ITEMS, Item, Kind

Schema = dict[str, Any]
ANY: Schema = {}  # elements we accept whatever their content (id, extension, text ...)

# --- the $triage request body ----------------------------------------------------------


def _type_schema(type_name: str) -> Schema:
    """JSON schema of one value of a FHIR type of the element table (api/fhir/elements.py)."""
    primitive = PRIMITIVES.get(type_name)
    if primitive is not None:
        if primitive.json_type != "string":
            schema: Schema = {"type": primitive.json_type}
            if primitive.minimum is not None:
                schema["minimum"] = primitive.minimum
            return schema
        schema = {"type": "string", "minLength": 1}
        if type_name == "xhtml":
            return schema | XHTML_SCHEMA
        if primitive.pattern is not None:
            schema["pattern"] = f"^(?:{primitive.pattern})$"
        return schema
    if type_name == OBJECT:
        return {"type": "object"}
    if type_name in SHARED_TYPES:
        return {"$ref": f"#/components/schemas/{SHARED_TYPES[type_name]}"}
    return {"type": "object", **_row_schema(type_name)}


_SPACE = f"[{WHITESPACE}]*"
#: A narrative div: what JSON Schema can say of it. The server also parses it as XML
#: (well-formed, the root ``<div>`` in the XHTML namespace) and holds it to txt-1/txt-2.
XHTML_SCHEMA: Schema = {
    "pattern": f"^{_SPACE}<div[{WHITESPACE}>/][\\s\\S]*>{_SPACE}$",
    "description": f'XHTML: one `<div xmlns="{XHTML_NS}">`, well-formed, with some text, '
    "only the elements and attributes FHIR R4 narratives allow (txt-1, txt-2): no script, "
    "no event attribute, no script or data URL; checked by the server beyond this pattern.",
}

#: Data types written once as components and referenced (an Extension may sit on any
#: item, answer and coding; Reference and Identifier refer to each other), by their
#: component name.
SHARED_TYPES = {
    name: f"Fhir{name}"
    for name in (
        "Extension",
        "Element",
        "Coding",
        "CodeableConcept",
        "Period",
        "Identifier",
        "Reference",
        "Meta",
        "Narrative",
    )
}


def _element_schema(element: Element) -> Schema:
    one = _type_schema(element.type)
    if element.codes is not None:
        one = {"enum": sorted(element.codes)}
    return {"type": "array", "minItems": 1, "items": one} if element.repeats else one


def _primitive_extension_schema(element: Element) -> Schema:
    """A primitive's ``_name``: an Element (id, extensions); for a repeating one an array
    of them and nulls."""
    one = _type_schema("Element")
    if not element.repeats:
        return one
    return {"type": "array", "minItems": 1, "items": {"anyOf": [{"type": "null"}, one]}}


def _extension_values(schema: Schema) -> None:
    """An Extension's value[x] (any R4 type) and ext-1: one value[x] or sub-extensions."""
    one_of: list[Schema] = [{"required": ["extension"]}]
    for key, type_name in EXTENSION_VALUES.items():
        schema["properties"][key] = _type_schema(type_name)
        if type_name in PRIMITIVES:
            schema["properties"][f"_{key}"] = _type_schema("Element")
            one_of.append({"anyOf": [{"required": [key]}, {"required": [f"_{key}"]}]})
        else:
            one_of.append({"required": [key]})
    schema["oneOf"] = one_of


def _row_schema(type_name: str, *, skip: frozenset[str] = frozenset()) -> Schema:
    """``properties`` (and ``required``, closed) of a row of the element table.

    ``skip``: elements whose schema the caller writes itself.
    """
    row = COMPLEX[type_name]
    properties = {name: _element_schema(e) for name, e in row.items() if name not in skip}
    properties |= {
        f"_{name}": _primitive_extension_schema(e) for name, e in row.items() if e.extensible
    }
    schema: Schema = {"additionalProperties": False, "properties": properties}
    required = [name for name, e in row.items() if e.required and name not in skip]
    if required:
        schema["required"] = required
    if type_name in OPEN_VALUES:
        _extension_values(schema)
    elif not required and not skip:
        # ele-1: an element has a value or children, not only an id.
        schema["anyOf"] = [{"required": [name]} for name in properties if name != "id"]
    return schema


_QR = "QuestionnaireResponse"
_P = "Parameters"


def contained_schema() -> Schema:
    """A contained resource, as far as the reader checks it (``contained_problems``).

    An R4 resource type and an id; the elements of every Resource/DomainResource against
    their types; no nested contained (dom-2), no meta.versionId/lastUpdated (dom-4) or
    meta.security (dom-5), no modifier. Its type's own elements are open. That each is
    referred to (dom-3) the server checks too.
    """
    row = _row_schema("DomainResource")
    meta = {
        "allOf": [
            _type_schema("Meta"),
            {
                "not": {
                    "anyOf": [
                        {"required": [key]} for key in ("versionId", "lastUpdated", "security")
                    ]
                }
            },
        ]
    }
    properties = row["properties"] | {
        "resourceType": {"enum": sorted(RESOURCE_TYPES)},
        "meta": meta,
        "contained": {"not": {}},
        "implicitRules": {"not": {}},
        "modifierExtension": {"not": {}},
    }
    return {
        "type": "object",
        "description": "A contained resource: an R4 resource type and an id; its "
        "Resource/DomainResource elements are checked (no nested contained, dom-2; no "
        "meta.versionId/lastUpdated, dom-4; no meta.security, dom-5; no modifier), the "
        "elements of its own type are not. The server also refuses one that nothing in "
        "the QuestionnaireResponse refers to as `#<id>` (dom-3).",
        "required": ["resourceType", *row["required"]],
        "properties": properties,
    }


def _properties(type_name: str, *, skip: frozenset[str] = frozenset()) -> Schema:
    return _row_schema(type_name, skip=skip)["properties"]


_ITEM_ROW = "QuestionnaireResponse.item"
_ANSWER_ROW = "QuestionnaireResponse.item.answer"
_READ_ITEM = frozenset({"linkId"})


def _value_schema(item: Item, base: str) -> dict[str, Schema]:
    """value[x] element name → JSON schema, for the answers an item takes."""
    ranged: Schema = {}
    if item.minimum is not None:
        ranged["minimum"] = item.minimum
    if item.maximum is not None:
        ranged["maximum"] = item.maximum
    if item.kind is Kind.BOOLEAN:
        return {"valueBoolean": {"type": "boolean"}}
    if item.kind is Kind.INTEGER:
        return {"valueInteger": {"type": "integer", **ranged}}
    if item.kind is Kind.DECIMAL:
        return {
            "valueDecimal": {"type": "number", **ranged},
            "valueInteger": {"type": "integer", **ranged},
        }
    if item.kind in (Kind.CODE, Kind.CODES):
        system = cs.codesystem_url(base, cs.item_codesystem_id(item.link_id))
        coding = {
            "type": "object",
            "required": ["system", "code"],
            "additionalProperties": False,
            "properties": {
                **_properties("Coding"),
                "system": {"const": system},
                "code": {"enum": [c.code for c in item.codes]},
            },
        }
        return {"valueCoding": coding}
    text: Schema = {"type": "string", "minLength": 1, "pattern": item.pattern or TEXT_PATTERN}
    if item.max_length is not None:
        text["maxLength"] = item.max_length
    return {"valueString": text}


def _answer_schema(item: Item, base: str) -> Schema:
    variants = [
        {
            "type": "object",
            "required": [key],
            "additionalProperties": False,
            "properties": {**_properties(_ANSWER_ROW), key: schema},
        }
        for key, schema in _value_schema(item, base).items()
    ]
    return variants[0] if len(variants) == 1 else {"oneOf": variants}


def _has(link_id: str, *, answered: bool = False) -> Schema:
    """Matches an item with this linkId (with at least one answer if ``answered``)."""
    schema: Schema = {
        "type": "object",
        "required": ["linkId", "answer"] if answered else ["linkId"],
        "properties": {"linkId": {"const": link_id}},
    }
    if answered:
        schema["properties"]["answer"] = {"type": "array", "minItems": 1}
    return schema


def _once(matcher: Schema, most: int = 1) -> Schema:
    return {"contains": matcher, "minContains": 0, "maxContains": most}


def _question_schema(item: Item, base: str, link_id: Schema | None = None) -> Schema:
    answers: Schema = {"type": "array", "items": _answer_schema(item, base)}
    if item.kind is Kind.CODES:
        # Each code at most once; a given list may be empty ("none") unless min_items says not.
        answers["allOf"] = [
            _once(
                {
                    "type": "object",
                    "required": ["valueCoding"],
                    "properties": {"valueCoding": {"properties": {"code": {"const": c.code}}}},
                }
            )
            for c in item.codes
        ]
        if item.min_items:
            answers["minItems"] = item.min_items
    else:
        answers["maxItems"] = 1
    required = ["linkId"]
    if item.kind is Kind.CODES and item.min_items:
        required.append("answer")  # no answer = given empty, which the list does not allow
    return {
        "type": "object",
        "description": item.text,
        "required": required,
        "additionalProperties": False,
        "properties": {
            "linkId": link_id or {"const": item.link_id},
            **_properties(_ITEM_ROW, skip=_READ_ITEM),
            "answer": answers,
        },
    }


def _medications_schema(item: Item, base: str) -> Schema:
    children = [_question_schema(child, base) for child in item.children]
    klass = next(child for child in item.children if child.required)
    return {
        "type": "object",
        "description": f"{item.text}: one group per medication; a group without child items "
        "means none (and must be the only one).",
        "required": ["linkId"],
        "additionalProperties": False,
        "properties": {
            "linkId": {"const": item.link_id},
            **_properties(_ITEM_ROW, skip=_READ_ITEM),
            "answer": {"type": "array", "maxItems": 0},
            "item": {
                "type": "array",
                "items": {"anyOf": children},
                "allOf": [_once(_has(child.link_id)) for child in item.children],
                # Listed children make a medication, and a medication needs its class.
                "anyOf": [{"maxItems": 0}, {"contains": _has(klass.link_id, answered=True)}],
            },
        },
    }


def questionnaire_response_schema(canonical_base: str = cs.DEFAULT_CANONICAL_BASE) -> Schema:
    """JSON schema of the QuestionnaireResponse ``$triage`` accepts (exact but for subject).

    Exceptions, both documented: a Patient subject together with an equal
    ``patient.reference`` answer is accepted though the schema excludes it; and
    text with a lone surrogate is refused though JSON Schema cannot say so.
    """
    vocabulary = [item for section in SECTIONS for item in section.items]
    vocabulary.extend(TOP_LEVEL_ITEMS)
    # Yes/no questions differ only in linkId: one schema for all of them keeps this short.
    yes_no = [item for item in vocabulary if item.kind is Kind.BOOLEAN]
    item_schemas = [
        {
            **_question_schema(
                yes_no[0], canonical_base, {"enum": [i.link_id for i in yes_no] + [*GATES]}
            ),
            "description": "A yes/no question (answer valueBoolean); the questions that open "
            f"a list ({', '.join(GATES)}) too: no = the list is given and empty, yes without "
            "a listed member = unknown.",
        }
    ]
    item_schemas += [
        _medications_schema(item, canonical_base)
        if item.kind is Kind.GROUP
        else _question_schema(item, canonical_base)
        for item in vocabulary
        if item.kind is not Kind.BOOLEAN
    ]
    required_items = [item for item in vocabulary if item.required]
    group = next(item for item in vocabulary if item.kind is Kind.GROUP)
    empty_group: Schema = {
        **_has(MEDICATIONS),
        "anyOf": [{"not": {"required": ["item"]}}, {"properties": {"item": {"maxItems": 0}}}],
    }
    listed_group: Schema = {
        "type": "object",
        "required": ["linkId", "item"],
        "properties": {"linkId": {"const": MEDICATIONS}, "item": {"minItems": 1}},
    }
    rules = [_once(_has(item.link_id)) for item in vocabulary if item.kind is not Kind.GROUP]
    rules += [_once(_has(gate)) for gate in GATES]
    rules += [{"contains": _has(item.link_id, answered=True)} for item in required_items]
    rules += [
        _once(listed_group, group.max_items or 0),
        # An empty group ("none") only alone. Written with maxContains, not "not": the
        # fuzzer's generator models the former only.
        {"anyOf": [_once(empty_group, 0), _once(_has(MEDICATIONS))]},
    ]
    questionnaire = cs.questionnaire_url(canonical_base)
    reference = next(item for item in vocabulary if item.kind is Kind.REFERENCE)
    properties: Schema = {
        "resourceType": {"const": "QuestionnaireResponse"},
        "questionnaire": {
            "enum": [
                cs.questionnaire_canonical(canonical_base, KNOWLEDGE_BASE_VERSION),
                questionnaire,
            ],
            "description": "The intake Questionnaire (with the configured canonical base).",
        },
        "status": {"enum": sorted(TRIAGE_STATUSES)},
        "subject": {
            "type": "object",
            "description": "The patient, as a relative `Patient/<id>` reference: it stands "
            "for the `patient.reference` answer. Give one or the other: this schema excludes "
            "both, and the server accepts both only when they are equal (as in the "
            "QuestionnaireResponses `POST /v1/triage` returns) and refuses two different "
            "patients (422). Every other form of subject is refused (422), never ignored: "
            "an absolute URL (the result names the patient relative to the server it is "
            "filed on), `urn:`, contained, an `identifier`, a `display` alone, another "
            "resource type.",
            "required": ["reference"],
            "additionalProperties": False,
            "properties": {
                "reference": {
                    "type": "string",
                    "pattern": reference.pattern,
                    "maxLength": reference.max_length,
                },
                **_properties("Reference", skip=frozenset({"reference", "type", "identifier"})),
                "type": {"const": "Patient"},
            },
        },
        "item": {"type": "array", "items": {"anyOf": item_schemas}, "allOf": rules},
    }
    # The elements the triage does not read, each against its R4 type, as the reader
    # checks it.
    for name in OBJECT_ELEMENTS:
        properties[name] = _type_schema(ELEMENT_TYPES[name])
    for name in ARRAY_ELEMENTS:
        one = contained_schema() if name == "contained" else _type_schema(ELEMENT_TYPES[name])
        properties[name] = {"type": "array", "minItems": 1, "items": one}
    identifier = _type_schema("Identifier")
    properties["identifier"] = {
        "anyOf": [identifier, {"type": "array", "minItems": 1, "items": identifier}],
        "description": "An Identifier (R4); an array of them (R5) is accepted too.",
    }
    for name in sorted(PRIMITIVE_ELEMENTS[_QR]):
        properties[f"_{name}"] = _type_schema("Element")
    properties["id"] = {"type": "string", "pattern": f"^{ID_PATTERN}$"}
    properties["language"] = {"type": "string", "pattern": f"^{LANGUAGE_PATTERN}$"}
    properties["authored"] = {
        "type": "string",
        "pattern": f"^{DATE_TIME_PATTERN}$",
        "description": "A FHIR dateTime of a day that exists (a time needs seconds and a "
        "zone). Not used by the triage, which stamps its own time; a malformed one is "
        "refused (422), never ignored.",
    }
    # Any element left is accepted as is (the reader checks the names).
    properties.update(dict.fromkeys(sorted(QR_ELEMENTS - properties.keys()), ANY))
    return {
        "type": "object",
        "description": "A FHIR R4 QuestionnaireResponse answering the intake Questionnaire "
        f"`{questionnaire}` (GET /fhir/Questionnaire/{cs.QUESTIONNAIRE_ID}). Items are flat, "
        "linkId = vocabulary path, each at most once; `history.medications` is one group per "
        "medication. An item without answers is unknown, except for the lists "
        "(`twitching.body_sites`, `history.conditions`; a medications group without child "
        "items), where it means given and empty. modifierExtension and implicitRules are "
        "not supported.",
        "required": ["resourceType", "questionnaire", "status", "item"],
        "additionalProperties": False,
        "properties": properties,
        # One source for the patient (see the subject description).
        "anyOf": [
            {"not": {"required": ["subject"]}},
            {"properties": {"item": _once(_has(reference.link_id, answered=True), 0)}},
        ],
    }


def parameters_schema() -> Schema:
    """The same input wrapped in a Parameters resource (parameter ``resource``).

    Closed like the QuestionnaireResponse: R4 Parameters elements only, no modifier
    (``implicitRules``, a parameter's ``modifierExtension``), and the one parameter
    carries the resource and nothing else (inv-1).
    """
    return {
        "type": "object",
        "description": "The QuestionnaireResponse as the one parameter `resource` of a FHIR "
        "Parameters resource (the general form of operation input).",
        "required": ["resourceType", "parameter"],
        "additionalProperties": False,
        "properties": {
            "resourceType": {"const": "Parameters"},
            "id": {"type": "string", "pattern": f"^{ID_PATTERN}$"},
            "meta": _type_schema("Meta"),
            "language": {"type": "string", "pattern": f"^{LANGUAGE_PATTERN}$"},
            **{f"_{name}": _type_schema("Element") for name in sorted(PRIMITIVE_ELEMENTS[_P])},
            "parameter": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "resource"],
                    "additionalProperties": False,
                    "properties": {
                        **_properties("Parameters.parameter"),
                        "name": {"const": "resource"},
                        "resource": {"$ref": "#/components/schemas/TriageQuestionnaireResponse"},
                    },
                },
            },
        },
    }


# --- response schemas of the reads -----------------------------------------------------


def resource_schema(resource_type: str, description: str) -> Schema:
    """A published conformance resource (its full content is FHIR's, not restated here)."""
    return {
        "type": "object",
        "description": description,
        "required": ["resourceType", "id", "url", "status"],
        "properties": {
            "resourceType": {"const": resource_type},
            "id": {"type": "string"},
            "url": {"type": "string", "format": "uri"},
            "version": {"type": "string"},
            "status": {"const": "active"},
        },
    }


READ_DESCRIPTIONS: dict[str, str] = {
    "CapabilityStatement": "What this server supports (FHIR R4 4.0.1, or 5.0.0 when R5 is "
    "negotiated): read of Questionnaire, CodeSystem, ValueSet and OperationDefinition, and "
    "the QuestionnaireResponse $triage operation.",
    "Questionnaire": "The intake Questionnaire generated from the request vocabulary: item "
    "types, coded answer options (product CodeSystems), UCUM units (questionnaire-unit), "
    "ranges (minValue, maxValue), maxLength, required flags on the red-flag screen, "
    "enableWhen only for true follow-ups, help text. `url|version` is the `questionnaire` "
    "every QuestionnaireResponse of this API cites. In R5, choice items become `coding` "
    "with `answerConstraint` `optionsOnly`.",
    "OperationDefinition": "The definition of $triage (type level on QuestionnaireResponse; "
    "in: `resource` QuestionnaireResponse 1..1, out: `return` Bundle 1..1).",
    "CodeSystem": "A product CodeSystem (complete content): every code a result Bundle or "
    "the Questionnaire cites resolves here.",
    "ValueSet": "All codes of the product CodeSystem with the same id.",
}


# --- parameters ------------------------------------------------------------------------


def format_parameter(formats: list[str]) -> Schema:
    return {
        "name": "_format",
        "in": "query",
        "required": False,
        "description": "FHIR `_format`: overrides Accept. `json`, `application/json` and "
        "`application/fhir+json` answer R4; `application/fhir+json; fhirVersion=4.0` or "
        "`=5.0` pick the version (URL-encode `+` as `%2B`). Any other value is 406.",
        "schema": {"type": "string", "enum": formats},
    }


BUNDLE_PARAMETER: Schema = {
    "name": "_bundle",
    "in": "query",
    "required": False,
    "description": "`transaction` returns the result as a transaction Bundle: every entry "
    "gets `request` (POST to its resource type) and keeps its `urn:uuid` fullUrl, which "
    "all references between entries use, so an EHR can POST it to its FHIR server as is. "
    "Default `collection`. Any other value is 400 (issue code `value`, expression "
    "`http._bundle`).",
    "schema": {"type": "string", "enum": ["collection", "transaction"]},
}

UNKNOWN_PARAMETERS = (
    "Query parameters other than the documented ones are ignored, as FHIR servers do "
    "(`_pretty`, `_summary` and `_elements` are not supported and have no effect)."
)


# --- paths -------------------------------------------------------------------------------


def fhir_paths(
    error_response: Callable[[int], Schema],
    *,
    negotiation: str,
    triage_422: Schema,
    formats: list[str],
    example_qr: Schema,
    canonical_base: str = cs.DEFAULT_CANONICAL_BASE,
) -> dict[str, dict[str, Any]]:
    """OpenAPI path items of the FHIR interface (``/fhir/...``)."""
    published = catalog(canonical_base)
    fmt = format_parameter(formats)

    def read(resource_type: str, summary: str) -> dict[str, Any]:
        ids = published.ids(resource_type)
        return {
            "get": {
                "operationId": f"read{resource_type}",
                "summary": summary,
                "description": f"{READ_DESCRIPTIONS[resource_type]}\n\n{negotiation}",
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "description": f"The {resource_type} id: {', '.join(ids)}.",
                        "schema": {"type": "string", "enum": ids},
                    },
                    fmt,
                ],
                "responses": {
                    "200": _resource_response(resource_type),
                    **{str(s): error_response(s) for s in (404, 405, 406, 500)},
                },
            }
        }

    return {
        "/fhir/metadata": {
            "get": {
                "operationId": "capabilities",
                "summary": "CapabilityStatement",
                "description": f"{READ_DESCRIPTIONS['CapabilityStatement']}\n\n{negotiation}",
                "parameters": [fmt],
                "responses": {
                    "200": _resource_response("CapabilityStatement"),
                    **{str(s): error_response(s) for s in (405, 406, 500)},
                },
            }
        },
        "/fhir/Questionnaire/{id}": read("Questionnaire", "The intake Questionnaire"),
        "/fhir/OperationDefinition/{id}": read(
            "OperationDefinition", "The $triage OperationDefinition"
        ),
        "/fhir/CodeSystem/{id}": read("CodeSystem", "A product CodeSystem"),
        "/fhir/ValueSet/{id}": read("ValueSet", "The ValueSet of a product CodeSystem"),
        "/fhir/QuestionnaireResponse/$triage": {
            "post": {
                "operationId": "triageQuestionnaireResponse",
                "summary": "Triage a completed intake QuestionnaireResponse",
                "description": (
                    "FHIR operation `$triage` (OperationDefinition "
                    f"`{TRIAGE_OPERATION_ID}`): the body is a QuestionnaireResponse (FHIR R4) "
                    "answering the intake Questionnaire, or a Parameters resource holding it "
                    "as parameter `resource`. It is mapped to the request vocabulary and "
                    "then validated, evaluated and rendered exactly as `POST /v1/triage`: "
                    "the same answers give the same Bundle.\n\n"
                    f"{negotiation} The input is always R4: a Content-Type naming another "
                    "fhirVersion is 415.\n\n"
                    "Checks run in this order: Accept or `_format` (406), `_bundle` (400), "
                    "Content-Type (415), size (413), JSON (400), the QuestionnaireResponse "
                    "and its answers (422)."
                ),
                "parameters": [BUNDLE_PARAMETER, fmt],
                "requestBody": {
                    "required": True,
                    "content": {
                        media: {
                            "schema": {
                                "oneOf": [
                                    {"$ref": "#/components/schemas/TriageQuestionnaireResponse"},
                                    {"$ref": "#/components/schemas/TriageParameters"},
                                ]
                            },
                            "example": example_qr,
                        }
                        for media in (FHIR_JSON, "application/json")
                    },
                },
                "responses": {
                    "200": {
                        "description": "The triage result: the Bundle `POST /v1/triage` "
                        "returns for the same answers.",
                        "content": {FHIR_JSON: {"schema": {"$ref": "#/components/schemas/Bundle"}}},
                    },
                    **{str(s): error_response(s) for s in (400, 405, 406, 413, 415, 500)},
                    "422": triage_422,
                },
            }
        },
    }


def _resource_response(resource_type: str) -> Schema:
    return {
        "description": f"The {resource_type}.",
        "content": {
            FHIR_JSON: {"schema": {"$ref": f"#/components/schemas/{resource_type}"}},
        },
    }


def fhir_components() -> dict[str, Schema]:
    """Component schemas of the FHIR interface, by name."""
    out = {name: resource_schema(name, text) for name, text in READ_DESCRIPTIONS.items()}
    out["TriageQuestionnaireResponse"] = questionnaire_response_schema()
    out["TriageParameters"] = parameters_schema()
    for type_name, component in SHARED_TYPES.items():
        out[component] = {
            "type": "object",
            "description": f"A FHIR R4 {type_name}, as the $triage input may carry one.",
            **_row_schema(type_name),
        }
    return out
