"""FHIR R4 JSON shapes of the elements ``$triage`` takes but does not read, as one table.

The triage reads a few elements (``linkId``, ``answer``, ``valueCoding.code`` …);
the others (``item.text``, ``valueCoding.display``, ``meta``, ``text``,
``identifier``, ``contained``, an ``extension``, the Parameters wrapper) carry no
meaning for it, but a malformed or unknown one is still refused, never silently
dropped: a strict FHIR server refuses it, and a misspelt element may be an answer
that got lost. So each complex type or backbone element is a row of
:data:`COMPLEX` (element name → :class:`Element`), each primitive a row of
:data:`PRIMITIVES` (FHIR R4 JSON: its JSON type, and the regex the spec gives
it), and one walker, :func:`element_problems`, checks any object against its row,
with the R4 invariants that hold for every element: ``ele-1`` (no empty element),
``ext-1`` (an extension has a value or sub-extensions, not both), a primitive's
``_name`` extension object, and the narrative rules ``txt-1``/``txt-2``
(:func:`xhtml_problems`). :func:`contained_problems` holds a contained resource to
the elements every Resource/DomainResource has (dom-2, dom-4, dom-5); the rest of
its content is not ours to check. The ``$triage`` request schema
(``tools/fhir_contract.py``) is generated from the same table, so the contract
stays exact.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from xml.parsers import expat

from api.fhir.search import DAY_TEXT, ID_TEXT, YEAR_TEXT, ZONE_TEXT


@dataclass(frozen=True, slots=True)
class Primitive:
    """A FHIR primitive in JSON: a JSON type and, for strings, the spec's regex.

    ``json_type`` is ``string``, ``boolean``, ``integer`` or ``number``; ``minimum``
    bounds an integer (positiveInt, unsignedInt).
    """

    json_type: str
    pattern: str | None = None
    minimum: int | None = None


#: Whitespace spelt out: ``\s`` differs between regex engines (Python's includes
#: U+001C–U+001F and U+0085, ECMA's and Rust's do not), and the published schema must
#: refuse exactly what this reader refuses. These are the characters Python's
#: ``str.isspace`` knows.
WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_TOKEN = f"[^{WHITESPACE}]+"
#: R4 strings hold no control character but tab, LF and CR (datatypes.html); the
#: product refuses C1 controls too, as ``schemas.fields`` does for free text (lone
#: surrogates never get this far: the JSON reader refuses them).
CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?"
#: FHIR R4 ``date``, ``dateTime`` (a time needs seconds and a zone) and ``instant``, of
#: days that exist.
DATE_TEXT = f"(?:{DAY_TEXT}|{YEAR_TEXT}-(?:0[1-9]|1[0-2])|{YEAR_TEXT})"
DATE_TIME_TEXT = f"(?:{DAY_TEXT}(?:T{_TIME}{ZONE_TEXT})?|{YEAR_TEXT}-(?:0[1-9]|1[0-2])|{YEAR_TEXT})"
INSTANT_TEXT = f"{DAY_TEXT}T{_TIME}{ZONE_TEXT}"
_STRING = Primitive("string", f"[^{CONTROL}]+")
_URI = Primitive("string", _TOKEN)
#: FHIR R4 primitives (datatypes.html). JSON has no empty strings (json.html), so a
#: string is at least one character; ``uri`` is ``\S*`` made non-empty, ``code``
#: ``[^\s]+(\s[^\s]+)*``, with the whitespace above. ``xhtml`` is a string checked by
#: :func:`xhtml_problems`.
PRIMITIVES: dict[str, Primitive] = {
    "string": _STRING,
    "markdown": _STRING,
    "uri": _URI,
    "url": _URI,
    "canonical": _URI,
    "oid": Primitive("string", r"urn:oid:[0-2](?:\.(?:0|[1-9][0-9]*))+"),
    "uuid": Primitive(
        "string", r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    ),
    "code": Primitive("string", f"{_TOKEN}(?:[{WHITESPACE}]{_TOKEN})*"),
    "id": Primitive("string", ID_TEXT),
    "base64Binary": Primitive(
        "string",
        f"(?:[{WHITESPACE}]*[0-9a-zA-Z+/=]){{4}}(?:(?:[{WHITESPACE}]*[0-9a-zA-Z+/=]){{4}})*[{WHITESPACE}]*",
    ),
    "date": Primitive("string", DATE_TEXT),
    "dateTime": Primitive("string", DATE_TIME_TEXT),
    "instant": Primitive("string", INSTANT_TEXT),
    "time": Primitive("string", _TIME),
    "xhtml": Primitive("string"),
    "boolean": Primitive("boolean"),
    "integer": Primitive("integer"),
    "positiveInt": Primitive("integer", minimum=1),
    "unsignedInt": Primitive("integer", minimum=0),
    "decimal": Primitive("number"),
}
#: An object whose content is not ours to check (a datatype the table does not
#: describe, a contained resource's own elements): only its JSON shape is.
OBJECT = "object"


@dataclass(frozen=True, slots=True)
class Element:
    """One element of a complex type: its type (a primitive, a row of COMPLEX, OBJECT).

    ``codes``: the codes of a required binding (a code outside it is ``code-invalid``).
    ``system``: an XML attribute in FHIR XML (an element's ``id``, ``Extension.url``):
    a plain JSON value that takes no ``_name`` extension object.
    """

    type: str
    repeats: bool = False
    required: bool = False
    codes: frozenset[str] | None = None
    system: bool = False

    @property
    def extensible(self) -> bool:
        """Whether a ``_name`` object (id, extensions) may go with it (FHIR JSON)."""
        return self.type in PRIMITIVES and self.type != "xhtml" and not self.system


_ID = Element("string", system=True)  # Element.id is a string in R4, not an id
_EXTENSIONS = Element("Extension", repeats=True)
#: Narrative.status and Identifier.use (required bindings, R4).
NARRATIVE_STATUSES = frozenset({"generated", "extensions", "additional", "empty"})
IDENTIFIER_USES = frozenset({"usual", "official", "temp", "secondary", "old"})
#: The language tag of a resource (BCP 47: ``en``, ``en-GB``, ``zh-Hant-TW``).
LANGUAGE_TEXT = r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*"
PRIMITIVES["language"] = Primitive("string", LANGUAGE_TEXT)  # a code of BCP 47's shape
_RESOURCE = {
    # A contained resource is referred to by its id (an ``id``, with extensions in XML
    # and so ``_id`` in JSON, unlike an element's id).
    "id": Element("id", required=True),
    "meta": Element("Meta"),
    "language": Element("language"),
}

#: Complex types and backbone elements, element name → Element. ``value[x]`` of an
#: Extension is ``value`` + an R4 type name (:data:`EXTENSION_VALUES`);
#: modifierExtension and implicitRules are in no row: the callers that may meet one
#: refuse it as not understood.
COMPLEX: dict[str, dict[str, Element]] = {
    # What a primitive's ``_name`` object may hold.
    "Element": {"id": _ID, "extension": _EXTENSIONS},
    "Extension": {
        "id": _ID,
        "extension": _EXTENSIONS,
        "url": Element("uri", required=True, system=True),
    },
    "Coding": {
        "id": _ID,
        "extension": _EXTENSIONS,
        "system": Element("uri"),
        "version": Element("string"),
        "code": Element("code"),
        "display": Element("string"),
        "userSelected": Element("boolean"),
    },
    "CodeableConcept": {
        "id": _ID,
        "extension": _EXTENSIONS,
        "coding": Element("Coding", repeats=True),
        "text": Element("string"),
    },
    "Period": {
        "id": _ID,
        "extension": _EXTENSIONS,
        "start": Element("dateTime"),
        "end": Element("dateTime"),
    },
    "Identifier": {
        "id": _ID,
        "extension": _EXTENSIONS,
        "use": Element("code", codes=IDENTIFIER_USES),
        "type": Element("CodeableConcept"),
        "system": Element("uri"),
        "value": Element("string"),
        "period": Element("Period"),
        "assigner": Element("Reference"),
    },
    "Reference": {
        "id": _ID,
        "extension": _EXTENSIONS,
        "reference": Element("string"),
        "type": Element("uri"),
        "identifier": Element("Identifier"),
        "display": Element("string"),
    },
    "Meta": {
        "id": _ID,
        "extension": _EXTENSIONS,
        "versionId": Element("id"),
        "lastUpdated": Element("instant"),
        "source": Element("uri"),
        "profile": Element("canonical", repeats=True),
        "security": Element("Coding", repeats=True),
        "tag": Element("Coding", repeats=True),
    },
    "Narrative": {
        "id": _ID,
        "extension": _EXTENSIONS,
        "status": Element("code", required=True, codes=NARRATIVE_STATUSES),
        "div": Element("xhtml", required=True),
    },
    # The elements every contained resource has (Resource; DomainResource adds text and
    # extension). Its other elements are its type's, not checked here.
    "Resource": _RESOURCE,
    "DomainResource": {
        **_RESOURCE,
        "text": Element("Narrative"),
        "extension": _EXTENSIONS,
    },
    # QuestionnaireResponse.item and .item.answer: ``answer``, ``item`` and value[x]
    # are read (and checked) by the reader itself.
    "QuestionnaireResponse.item": {
        "id": _ID,
        "extension": _EXTENSIONS,
        "linkId": Element("string", required=True),
        "definition": Element("uri"),
        "text": Element("string"),
    },
    "QuestionnaireResponse.item.answer": {"id": _ID, "extension": _EXTENSIONS},
    # Parameters.parameter: value[x], resource and part are the caller's (inv-1).
    "Parameters.parameter": {
        "id": _ID,
        "extension": _EXTENSIONS,
        "name": Element("string", required=True),
    },
}
#: The R4 data types an Extension's value[x] may have (extensibility.html, "open
#: type"): ``value`` + the name, its type in the table (OBJECT: only its shape).
_OPEN_TYPES = [
    "base64Binary",
    "boolean",
    "canonical",
    "code",
    "date",
    "dateTime",
    "decimal",
    "id",
    "instant",
    "integer",
    "markdown",
    "oid",
    "positiveInt",
    "string",
    "time",
    "unsignedInt",
    "uri",
    "url",
    "uuid",
    "Address",
    "Age",
    "Annotation",
    "Attachment",
    "CodeableConcept",
    "Coding",
    "ContactPoint",
    "Count",
    "Distance",
    "Duration",
    "HumanName",
    "Identifier",
    "Money",
    "Period",
    "Quantity",
    "Range",
    "Ratio",
    "Reference",
    "SampledData",
    "Signature",
    "Timing",
    "ContactDetail",
    "Contributor",
    "DataRequirement",
    "Expression",
    "ParameterDefinition",
    "RelatedArtifact",
    "TriggerDefinition",
    "UsageContext",
    "Dosage",
    "Meta",
]
EXTENSION_VALUES: dict[str, str] = {
    f"value{name[0].upper()}{name[1:]}": name if name in PRIMITIVES or name in COMPLEX else OBJECT
    for name in _OPEN_TYPES
}
#: Types whose object may carry one ``value[x]``.
OPEN_VALUES = frozenset({"Extension"})
VALUE_KEY = re.compile(r"value[A-Z][A-Za-z0-9]*")
#: R4 resource types (every non-abstract resource of R4 4.0.1).
RESOURCE_TYPES = frozenset(
    [
        "Account",
        "ActivityDefinition",
        "AdverseEvent",
        "AllergyIntolerance",
        "Appointment",
        "AppointmentResponse",
        "AuditEvent",
        "Basic",
        "Binary",
        "BiologicallyDerivedProduct",
        "BodyStructure",
        "Bundle",
        "CapabilityStatement",
        "CarePlan",
        "CareTeam",
        "CatalogEntry",
        "ChargeItem",
        "ChargeItemDefinition",
        "Claim",
        "ClaimResponse",
        "ClinicalImpression",
        "CodeSystem",
        "Communication",
        "CommunicationRequest",
        "CompartmentDefinition",
        "Composition",
        "ConceptMap",
        "Condition",
        "Consent",
        "Contract",
        "Coverage",
        "CoverageEligibilityRequest",
        "CoverageEligibilityResponse",
        "DetectedIssue",
        "Device",
        "DeviceDefinition",
        "DeviceMetric",
        "DeviceRequest",
        "DeviceUseStatement",
        "DiagnosticReport",
        "DocumentManifest",
        "DocumentReference",
        "EffectEvidenceSynthesis",
        "Encounter",
        "Endpoint",
        "EnrollmentRequest",
        "EnrollmentResponse",
        "EpisodeOfCare",
        "EventDefinition",
        "Evidence",
        "EvidenceVariable",
        "ExampleScenario",
        "ExplanationOfBenefit",
        "FamilyMemberHistory",
        "Flag",
        "Goal",
        "GraphDefinition",
        "Group",
        "GuidanceResponse",
        "HealthcareService",
        "ImagingStudy",
        "Immunization",
        "ImmunizationEvaluation",
        "ImmunizationRecommendation",
        "ImplementationGuide",
        "InsurancePlan",
        "Invoice",
        "Library",
        "Linkage",
        "List",
        "Location",
        "Measure",
        "MeasureReport",
        "Media",
        "Medication",
        "MedicationAdministration",
        "MedicationDispense",
        "MedicationKnowledge",
        "MedicationRequest",
        "MedicationStatement",
        "MedicinalProduct",
        "MedicinalProductAuthorization",
        "MedicinalProductContraindication",
        "MedicinalProductIndication",
        "MedicinalProductIngredient",
        "MedicinalProductInteraction",
        "MedicinalProductManufactured",
        "MedicinalProductPackaged",
        "MedicinalProductPharmaceutical",
        "MedicinalProductUndesirableEffect",
        "MessageDefinition",
        "MessageHeader",
        "MolecularSequence",
        "NamingSystem",
        "NutritionOrder",
        "Observation",
        "ObservationDefinition",
        "OperationDefinition",
        "OperationOutcome",
        "Organization",
        "OrganizationAffiliation",
        "Parameters",
        "Patient",
        "PaymentNotice",
        "PaymentReconciliation",
        "Person",
        "PlanDefinition",
        "Practitioner",
        "PractitionerRole",
        "Procedure",
        "Provenance",
        "Questionnaire",
        "QuestionnaireResponse",
        "RelatedPerson",
        "RequestGroup",
        "ResearchDefinition",
        "ResearchElementDefinition",
        "ResearchStudy",
        "ResearchSubject",
        "RiskAssessment",
        "RiskEvidenceSynthesis",
        "Schedule",
        "SearchParameter",
        "ServiceRequest",
        "Slot",
        "Specimen",
        "SpecimenDefinition",
        "StructureDefinition",
        "StructureMap",
        "Subscription",
        "Substance",
        "SubstanceNucleicAcid",
        "SubstancePolymer",
        "SubstanceProtein",
        "SubstanceReferenceInformation",
        "SubstanceSourceMaterial",
        "SubstanceSpecification",
        "SupplyDelivery",
        "SupplyRequest",
        "Task",
        "TerminologyCapabilities",
        "TestReport",
        "TestScript",
        "ValueSet",
        "VerificationResult",
        "VisionPrescription",
    ]
)
#: Modifier elements: when present they change the meaning, and we do not support them.
MODIFIERS = ("modifierExtension", "implicitRules")
_COMPILED = {name: re.compile(p.pattern) for name, p in PRIMITIVES.items() if p.pattern is not None}

#: The XHTML a narrative may use (R4 narrative.html, txt-1): the basic formatting
#: elements of HTML 4.0 chapters 7–11 and 15, ``<a>``, images, and these attributes;
#: no script, form, frame, object, head/body, link or event attribute.
XHTML_NS = "http://www.w3.org/1999/xhtml"
NARRATIVE_ELEMENTS = frozenset(
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
NARRATIVE_ATTRIBUTES = frozenset(
    [
        "title",
        "style",
        "class",
        "id",
        "lang",
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
        "xml:lang",
    ]
)
#: A link or image that would run code when followed or shown.
_SCRIPT_URL = re.compile(r"[\x00-\x20]*(?:javascript|vbscript|data)[\x00-\x20]*:", re.IGNORECASE)
_IMAGE_DATA = re.compile(r"data:image/(?:png|gif|jpeg|webp|bmp);", re.IGNORECASE)
#: What an XML parser must never be asked to expand: a narrative has no DOCTYPE (so no
#: entity declarations, no external entities) and no processing instruction.
_DECLARATION = re.compile(r"<!DOCTYPE|<!ENTITY|<\?", re.IGNORECASE)


def xhtml_problems(div: str) -> list[str]:
    """Why ``div`` is not an R4 narrative ``div`` (empty: it is one).

    Parsed by a real XML parser (expat, the parser under ``xml.etree``, without
    building a tree; no DOCTYPE or entity declaration reaches it, so no entity is
    expanded): well-formed, the root a ``<div>`` in the XHTML namespace, txt-1 (only
    the allowed elements and attributes, no script URL) and txt-2 (some
    non-whitespace content: text, or an image). Namespaces are read from the
    attributes: the root declares XHTML as the default, nothing redeclares it, and a
    prefixed name is no allowed element or attribute (``xml:lang`` aside), so every
    element is XHTML (a narrative writing XHTML with a prefix, ``<h:p>``, is refused:
    stricter than XML, never looser). The handlers only collect; the checks run
    afterwards, once per distinct name, so a narrative costs little more than its parse.
    """
    if _DECLARATION.search(div):
        return ["a narrative holds no DOCTYPE, entity declaration or processing instruction"]
    elements: list[tuple[str, dict[str, str]]] = []
    text: list[str] = []
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.StartElementHandler = lambda tag, attributes: elements.append((tag, attributes))
    parser.CharacterDataHandler = text.append
    try:
        parser.Parse(div.encode("utf-8", "surrogatepass"), True)
    except expat.ExpatError as exc:
        return [f"is not well-formed XHTML ({str(exc)[:80]})"]
    root, root_attributes = elements[0]
    if root != "div" or root_attributes.get("xmlns") != XHTML_NS:
        return [f'the root must be <div xmlns="{XHTML_NS}">']
    names = {tag for tag, _ in elements}
    problems = [
        f"<{tag[:40]}> is not allowed in a narrative (txt-1)"
        for tag in sorted(names - NARRATIVE_ELEMENTS)
    ]
    for tag, attributes in elements:
        for attribute, value in attributes.items():
            if attribute == "xmlns":
                if value != XHTML_NS:
                    problems.append(f"<{tag[:40]}> is not in the XHTML namespace (txt-1)")
            elif attribute.startswith("xmlns:"):
                continue  # a prefix declared: any name using it is refused as unknown
            elif attribute not in NARRATIVE_ATTRIBUTES:
                problems.append(f"attribute {attribute[:40]!r} is not allowed (txt-1)")
            elif _script_url(tag, attribute, value):
                problems.append(f"{attribute} of <{tag[:40]}> is a script or data URL (txt-1)")
    if "img" not in names and all(chunk.isspace() for chunk in text):
        problems.append("a narrative needs some non-whitespace content (txt-2)")
    return problems


def _script_url(element: str, attribute: str, value: str) -> bool:
    """A link or image source that runs code (an image may be inline ``data:image``)."""
    if attribute not in ("href", "src") or not _SCRIPT_URL.match(value):
        return False
    return not (element == "img" and attribute == "src" and _IMAGE_DATA.match(value))


class Fault(NamedTuple):
    """One problem: a message, the FHIRPath of the offending element, a FHIR IssueType."""

    message: str
    expression: str
    code: str


def _shown(value: object) -> str:
    return repr(value)[:40] if not isinstance(value, str) else repr(value[:40])


def _primitive_ok(value: Any, type_name: str, primitive: Primitive) -> bool:
    if primitive.json_type == "boolean":
        return isinstance(value, bool)
    if primitive.json_type in ("integer", "number"):
        kinds = int if primitive.json_type == "integer" else (int, float)
        return (
            isinstance(value, kinds)
            and not isinstance(value, bool)
            and (primitive.minimum is None or value >= primitive.minimum)
        )
    pattern = _COMPILED.get(type_name)
    return (
        isinstance(value, str)
        and value != ""
        and (pattern is None or pattern.fullmatch(value) is not None)
    )


def _validator(type_name: str, primitive: Primitive) -> Callable[[Any], bool]:
    """``_primitive_ok`` for one type, as one call (the walker's fast path)."""
    pattern = _COMPILED.get(type_name)
    if primitive.json_type == "string" and pattern is not None:
        match = pattern.fullmatch
        return lambda value: isinstance(value, str) and match(value) is not None
    return lambda value: _primitive_ok(value, type_name, primitive)


#: Per primitive type but xhtml (parsed, never on the fast path): is a value valid?
_VALID = {name: _validator(name, p) for name, p in PRIMITIVES.items() if name != "xhtml"}
#: Per row: its required elements.
_REQUIRED = {
    name: tuple(key for key, element in row.items() if element.required)
    for name, row in COMPLEX.items()
}


def _value_faults(value: Any, element: Element, expr: str, name: str) -> Iterator[Fault]:
    type_name = element.type
    primitive = PRIMITIVES.get(type_name)
    if primitive is not None:
        if not _primitive_ok(value, type_name, primitive):
            yield Fault(f"{name} must be a FHIR {type_name}, got {_shown(value)}", expr, "value")
        elif element.codes is not None and value not in element.codes:
            codes = "|".join(sorted(element.codes))
            yield Fault(f"{name} must be one of {codes}, got {_shown(value)}", expr, "code-invalid")
        elif type_name == "xhtml" and (problems := xhtml_problems(value)):
            yield Fault(f"{name} {'; '.join(problems)[:300]}", expr, "value")
        return
    if not isinstance(value, Mapping):
        what = "a JSON object" if type_name == OBJECT else f"a {type_name} object"
        yield Fault(f"{name} must be {what}", expr, "value")
        return
    if type_name in COMPLEX:
        yield from element_problems(value, type_name, expr)


def _primitive_extension_faults(value: Any, element: Element, where: str) -> Iterator[Fault]:
    """A primitive's ``_name``: an Element object (id, extensions), or for a repeating
    primitive an array of them and nulls (json.html)."""
    name = where.rsplit(".", 1)[-1]
    if not element.repeats:
        yield from _value_faults(value, Element("Element"), where, name)
        return
    if not (isinstance(value, list) and value):
        yield Fault(f"{name} must be a non-empty array", where, "value")
        return
    for i, member in enumerate(value):
        if member is not None:
            yield from _value_faults(member, Element("Element"), f"{where}[{i}]", name)


def element_problems(
    node: Mapping[str, Any],
    type_name: str,
    expr: str,
    *,
    read: frozenset[str] = frozenset(),
    what: str | None = None,
) -> Iterator[Fault]:
    """Every problem of ``node`` as a ``type_name`` (a row of COMPLEX), in key order.

    Keys in ``read`` are the caller's: it reads and checks them itself. Unknown
    elements are ``invalid``; a wrong JSON type or pattern, a missing required
    element ``value``/``required``; a code outside its required binding
    ``code-invalid``. ``what`` names the object in messages (its type by default).
    """
    what = what or type_name
    elements = COMPLEX[type_name]
    for key, value in node.items():
        if key in read:
            continue
        # Fast path (the happy path's many item elements): a single primitive that is
        # valid needs no generator.
        element = elements.get(key)
        if element is not None and element.codes is None and not element.repeats:
            valid = _VALID.get(element.type)
            if valid is not None and valid(value):
                continue
        yield from _member_faults(elements, type_name, str(key), value, expr=expr, what=what)
    required = _REQUIRED[type_name]
    for key in required:
        if key not in node and key not in read:
            yield Fault(f"{key} is required in {what}", f"{expr}.{key}", "required")
    if type_name in OPEN_VALUES:
        yield from _extension_faults(node, expr, what)
    elif not required and not read and all(key == "id" for key in node):
        yield Fault(f"{what} is empty: an element has a value or children (ele-1)", expr, "value")


def _member_faults(
    elements: Mapping[str, Element], type_name: str, key: str, value: Any, *, expr: str, what: str
) -> Iterator[Fault]:
    """The problems of one element ``key`` of an object of ``type_name``."""
    where = f"{expr}.{key}" if key.isidentifier() else expr
    element = elements.get(key)
    if element is None and type_name in OPEN_VALUES:
        element = _open_value(key)
    if element is None:
        primitive = _primitive_of(elements, key)
        if primitive is not None:
            yield from _primitive_extension_faults(value, primitive, where)
        else:
            yield Fault(f"unknown element {key[:40]!r} in {what}", where, "invalid")
    elif element.repeats:
        if not (isinstance(value, list) and value):
            yield Fault(f"{key} must be a non-empty array", where, "value")
            return
        for i, member in enumerate(value):
            yield from _value_faults(member, element, f"{where}[{i}]", key)
    else:
        yield from _value_faults(value, element, where, key)


def _open_value(key: str) -> Element | None:
    type_name = EXTENSION_VALUES.get(key)
    return None if type_name is None else Element(type_name)


def _primitive_of(elements: Mapping[str, Element], key: str) -> Element | None:
    """The primitive element ``key`` extends when it is ``_name`` (or ``_value[x]``)."""
    if not key.startswith("_"):
        return None
    element = elements.get(key[1:]) or _open_value(key[1:])
    return element if element is not None and element.extensible else None


def _extension_faults(node: Mapping[str, Any], expr: str, what: str) -> Iterator[Fault]:
    """ext-1: an extension has a value[x] or sub-extensions, not both (nor neither)."""
    values = {str(k).lstrip("_") for k in node if str(k).lstrip("_") in EXTENSION_VALUES}
    nested = "extension" in node
    if len(values) > 1:
        yield Fault(f"{what} has more than one value[x]", f"{expr}.value[x]", "invalid")
    if values and nested:
        yield Fault(f"{what} has both a value[x] and extensions (ext-1)", expr, "invalid")
    elif not values and not nested:
        yield Fault(
            f"{what} needs a value[x] or extensions (ext-1)", f"{expr}.value[x]", "required"
        )


def contained_problems(resource: Any, expr: str) -> Iterator[Fault]:
    """Problems of one contained resource, as far as the element table reaches.

    Checked: it is an object with an R4 ``resourceType``, its Resource elements (``id``
    required and an id, ``meta``, ``language``; ``implicitRules`` and
    ``modifierExtension`` not supported) and those of a DomainResource, ``text`` and
    ``extension``; no nested ``contained`` (dom-2), no ``meta.versionId`` or
    ``meta.lastUpdated`` (dom-4), no ``meta.security`` (dom-5). Not checked: the
    elements of its own type (``Patient.name`` …), which the triage never reads.
    """
    if not isinstance(resource, Mapping):
        yield Fault("a contained resource must be a JSON object", expr, "value")
        return
    resource_type = resource.get("resourceType")
    if "resourceType" not in resource:
        yield Fault(
            "a contained resource needs its resourceType", f"{expr}.resourceType", "required"
        )
    elif resource_type not in RESOURCE_TYPES:
        yield Fault(
            f"resourceType {_shown(resource_type)} is not an R4 resource type",
            f"{expr}.resourceType",
            "value",
        )
    # Every contained resource is read as a DomainResource: the three that are not
    # (Binary, Bundle, Parameters) have no text, contained or extension, so one of those
    # on them is an error either way.
    row = "DomainResource"
    elements = COMPLEX[row]
    for key in resource:
        if key in MODIFIERS:
            yield Fault(
                f"{key} is not supported, so the contained resource cannot be read",
                f"{expr}.{key}",
                "not-supported",
            )
        elif key == "contained":
            yield Fault(
                "a contained resource contains no other resource (dom-2)",
                f"{expr}.contained",
                "invalid",
            )
    own = frozenset(
        key for key in resource if key not in elements and _primitive_of(elements, key) is None
    )
    yield from element_problems(resource, row, expr, read=own, what="the contained resource")
    meta = resource.get("meta")
    if isinstance(meta, Mapping):
        for key, rule in (("versionId", "dom-4"), ("lastUpdated", "dom-4"), ("security", "dom-5")):
            if key in meta:
                yield Fault(
                    f"a contained resource has no meta.{key} ({rule})",
                    f"{expr}.meta.{key}",
                    "invalid",
                )
