"""$triage holds meta, text, identifier, contained and extensions to their R4 types.

A black-box battery found these checked only as objects: ``meta.lastUpdated:
"yesterday"``, ``text.div: 5``, ``identifier.system: 12``, a contained object with
no ``resourceType`` all passed silently. A strict FHIR R4 server refuses them, and so
does ``$triage`` now: one issue per offending element, ``expression`` its FHIRPath,
the issue code of the product's table (``value`` wrong type or pattern, ``required``
missing, ``invalid`` unknown or against an invariant, ``code-invalid`` outside a
required binding, ``not-supported`` a modifier), always 422 like every other
``$triage`` problem. Valid R4 content (full meta, a generated narrative, identifiers,
contained resources, extensions of any type, primitive extensions) is still
triaged, exactly as the bare resource, and the independent validator (medplum)
agrees that what is accepted is valid R4.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fhir_triage_strict_elements import _PRIMITIVE_RULES, _R, APP, FHIR, OP, emitted
from test_fhir_validator import medplum  # noqa: F401 (the validator fixture)

from api.fhir.elements import (
    COMPLEX,
    NARRATIVE_ATTRIBUTES,
    NARRATIVE_ELEMENTS,
    RESOURCE_TYPES,
    xhtml_problems,
)
from tests.support.conformance import narrative_problems

XHTML = "http://www.w3.org/1999/xhtml"
EMITTED = emitted()


def _qr(**elements: Any) -> dict[str, Any]:
    return copy.deepcopy(EMITTED) | elements


def _div(body: str) -> str:
    return f'<div xmlns="{XHTML}">{body}</div>'


def _post(body: Any) -> Any:
    return APP.test_client().post(OP, data=json.dumps(body), content_type=FHIR)


def _issues(body: Any) -> list[tuple[str, str]]:
    response = _post(body)
    assert response.status_code == 422, response.data[:500]
    assert response.json["resourceType"] == "OperationOutcome"
    return [(i["code"], i["expression"][0]) for i in response.json["issue"]]


def _findings(body: Any) -> list[Any]:
    """The Observations of a 200: what the triage concluded."""
    response = _post(body)
    assert response.status_code == 200, response.data[:800]
    return [
        (e["resource"]["code"], e["resource"].get("valueCodeableConcept"))
        for e in response.json["entry"]
        if e["resource"]["resourceType"] == "Observation"
    ]


BASELINE = _findings(_qr())
_EXT = "http://example.org/fhir/StructureDefinition/"
_PRACTITIONER = {"resourceType": "Practitioner", "id": "pract", "name": [{"family": "Osei"}]}

# --- every bad case names its element ----------------------------------------------------

_BAD: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    # Meta
    ("lastUpdated", {"meta": {"lastUpdated": "yesterday"}}, [("value", f"{_R}.meta.lastUpdated")]),
    (
        "lastUpdated no zone",
        {"meta": {"lastUpdated": "2026-11-28T10:00:00"}},
        [("value", f"{_R}.meta.lastUpdated")],
    ),
    ("versionId", {"meta": {"versionId": "v 1"}}, [("value", f"{_R}.meta.versionId")]),
    ("source", {"meta": {"source": "has space"}}, [("value", f"{_R}.meta.source")]),
    ("profile not array", {"meta": {"profile": _EXT + "x"}}, [("value", f"{_R}.meta.profile")]),
    (
        "profile member",
        {"meta": {"profile": [_EXT + "x", 7]}},
        [("value", f"{_R}.meta.profile[1]")],
    ),
    (
        "tag system",
        {"meta": {"tag": [{"system": 12, "code": "x"}]}},
        [("value", f"{_R}.meta.tag[0].system")],
    ),
    ("empty security", {"meta": {"security": [{}]}}, [("value", f"{_R}.meta.security[0]")]),
    ("empty meta", {"meta": {}}, [("value", f"{_R}.meta")]),
    ("meta unknown", {"meta": {"updated": "x"}}, [("invalid", f"{_R}.meta.updated")]),
    # Narrative
    (
        "text status and div",
        {"text": {"status": "bogus", "div": 5}},
        [("code-invalid", f"{_R}.text.status"), ("value", f"{_R}.text.div")],
    ),
    ("text without status", {"text": {"div": _div("x")}}, [("required", f"{_R}.text.status")]),
    ("text without div", {"text": {"status": "generated"}}, [("required", f"{_R}.text.div")]),
    (
        "div unclosed",
        {"text": {"status": "generated", "div": f'<div xmlns="{XHTML}">x'}},
        [("value", f"{_R}.text.div")],
    ),
    (
        "div no namespace",
        {"text": {"status": "generated", "div": "<div>x</div>"}},
        [("value", f"{_R}.text.div")],
    ),
    (
        "div root p",
        {"text": {"status": "generated", "div": f'<p xmlns="{XHTML}">x</p>'}},
        [("value", f"{_R}.text.div")],
    ),
    (
        "div script",
        {"text": {"status": "generated", "div": _div("x<script>alert(1)</script>")}},
        [("value", f"{_R}.text.div")],
    ),
    (
        "div event attribute",
        {"text": {"status": "generated", "div": _div('<p onclick="x()">x</p>')}},
        [("value", f"{_R}.text.div")],
    ),
    (
        "div script url",
        {"text": {"status": "generated", "div": _div('<a href=" JavaScript:x()">x</a>')}},
        [("value", f"{_R}.text.div")],
    ),
    (
        "div iframe",
        {"text": {"status": "generated", "div": _div('x<iframe src="https://e.example"/>')}},
        [("value", f"{_R}.text.div")],
    ),
    (
        "div form",
        {"text": {"status": "generated", "div": _div("<form>x</form>")}},
        [("value", f"{_R}.text.div")],
    ),
    (
        "div blank",
        {"text": {"status": "empty", "div": _div(" <p> </p> ")}},
        [("value", f"{_R}.text.div")],
    ),
    (
        "div doctype",
        {"text": {"status": "generated", "div": '<!DOCTYPE d [<!ENTITY e "x">]>' + _div("&e;")}},
        [("value", f"{_R}.text.div")],
    ),
    (
        "div entity",
        {"text": {"status": "generated", "div": _div("&nbsp;")}},
        [("value", f"{_R}.text.div")],
    ),
    (
        "text unknown",
        {"text": {"status": "generated", "div": _div("x"), "html": "x"}},
        [("invalid", f"{_R}.text.html")],
    ),
    # Identifier (R4: one; R5: an array)
    ("identifier system", {"identifier": {"system": 12}}, [("value", f"{_R}.identifier.system")]),
    (
        "identifier use",
        {"identifier": {"use": "primary", "value": "1"}},
        [("code-invalid", f"{_R}.identifier.use")],
    ),
    (
        "identifier R5 value",
        {"identifier": [{"value": "1"}, {"value": 5}]},
        [("value", f"{_R}.identifier[1].value")],
    ),
    (
        "identifier period",
        {"identifier": {"value": "1", "period": {"start": "yesterday"}}},
        [("value", f"{_R}.identifier.period.start")],
    ),
    (
        "identifier type code",
        {"identifier": {"value": "1", "type": {"coding": [{"code": "a  b"}]}}},
        [("value", f"{_R}.identifier.type.coding[0].code")],
    ),
    (
        "identifier assigner",
        {"identifier": {"value": "1", "assigner": {"reference": 5}}},
        [("value", f"{_R}.identifier.assigner.reference")],
    ),
    ("empty identifier", {"identifier": {}}, [("value", f"{_R}.identifier")]),
    (
        "identifier unknown",
        {"identifier": {"value": "1", "label": "x"}},
        [("invalid", f"{_R}.identifier.label")],
    ),
    # contained
    (
        "contained no type",
        {"contained": [{"no": "resourceType"}]},
        [("required", f"{_R}.contained[0].resourceType"), ("required", f"{_R}.contained[0].id")],
    ),
    (
        "contained bad type",
        {"contained": [{"resourceType": "Patinet", "id": "p"}]},
        [("value", f"{_R}.contained[0].resourceType")],
    ),
    (
        "contained bad id",
        {"contained": [_PRACTITIONER | {"id": "a b"}], "author": {"reference": "#a b"}},
        [("value", f"{_R}.contained[0].id")],
    ),
    (
        "dom-2",
        {
            "contained": [
                _PRACTITIONER | {"contained": [{"resourceType": "Organization", "id": "o"}]}
            ],
            "author": {"reference": "#pract"},
        },
        [("invalid", f"{_R}.contained[0].contained")],
    ),
    ("dom-3", {"contained": [_PRACTITIONER]}, [("invalid", f"{_R}.contained[0].id")]),
    (
        "dom-4 versionId",
        {
            "contained": [_PRACTITIONER | {"meta": {"versionId": "1"}}],
            "author": {"reference": "#pract"},
        },
        [("invalid", f"{_R}.contained[0].meta.versionId")],
    ),
    (
        "dom-4 lastUpdated",
        {
            "contained": [_PRACTITIONER | {"meta": {"lastUpdated": "2026-11-28T10:00:00Z"}}],
            "author": {"reference": "#pract"},
        },
        [("invalid", f"{_R}.contained[0].meta.lastUpdated")],
    ),
    (
        "dom-5",
        {
            "contained": [_PRACTITIONER | {"meta": {"security": [{"code": "R"}]}}],
            "author": {"reference": "#pract"},
        },
        [("invalid", f"{_R}.contained[0].meta.security")],
    ),
    (
        "contained implicitRules",
        {
            "contained": [_PRACTITIONER | {"implicitRules": "http://e.example/r"}],
            "author": {"reference": "#pract"},
        },
        [("not-supported", f"{_R}.contained[0].implicitRules")],
    ),
    (
        "contained modifierExtension",
        {
            "contained": [
                _PRACTITIONER | {"modifierExtension": [{"url": _EXT + "m", "valueBoolean": True}]}
            ],
            "author": {"reference": "#pract"},
        },
        [("not-supported", f"{_R}.contained[0].modifierExtension")],
    ),
    (
        "contained narrative",
        {
            "contained": [_PRACTITIONER | {"text": {"status": "generated", "div": "x"}}],
            "author": {"reference": "#pract"},
        },
        [("value", f"{_R}.contained[0].text.div")],
    ),
    (
        "contained language",
        {"contained": [_PRACTITIONER | {"language": "en US"}], "author": {"reference": "#pract"}},
        [("value", f"{_R}.contained[0].language")],
    ),
    (
        "contained extension",
        {
            "contained": [_PRACTITIONER | {"extension": [{"valueString": "x"}]}],
            "author": {"reference": "#pract"},
        },
        [("required", f"{_R}.contained[0].extension[0].url")],
    ),
    (
        "contained not object",
        {"contained": [_PRACTITIONER, 5], "author": {"reference": "#pract"}},
        [("value", f"{_R}.contained")],
    ),
    # Extension: url, ext-1, value[x] of its R4 type
    (
        "extension url",
        {"extension": [{"url": 12, "valueString": "x"}]},
        [("value", f"{_R}.extension[0].url")],
    ),
    (
        "ext-1 neither",
        {"extension": [{"url": _EXT + "a"}]},
        [("required", f"{_R}.extension[0].value[x]")],
    ),
    (
        "ext-1 both",
        {
            "extension": [
                {
                    "url": _EXT + "a",
                    "valueString": "x",
                    "extension": [{"url": "b", "valueString": "y"}],
                }
            ]
        },
        [("invalid", f"{_R}.extension[0]")],
    ),
    (
        "two values",
        {"extension": [{"url": _EXT + "a", "valueString": "x", "valueBoolean": True}]},
        [("invalid", f"{_R}.extension[0].value[x]")],
    ),
    (
        "unknown value type",
        {"extension": [{"url": _EXT + "a", "valueText": "x"}]},
        [("invalid", f"{_R}.extension[0].valueText"), ("required", f"{_R}.extension[0].value[x]")],
    ),
    (
        "valueInteger",
        {"extension": [{"url": _EXT + "a", "valueInteger": "3"}]},
        [("value", f"{_R}.extension[0].valueInteger")],
    ),
    (
        "valuePositiveInt",
        {"extension": [{"url": _EXT + "a", "valuePositiveInt": 0}]},
        [("value", f"{_R}.extension[0].valuePositiveInt")],
    ),
    (
        "valueDateTime",
        {"extension": [{"url": _EXT + "a", "valueDateTime": "2026-02-30"}]},
        [("value", f"{_R}.extension[0].valueDateTime")],
    ),
    (
        "valueCoding",
        {"extension": [{"url": _EXT + "a", "valueCoding": {"code": 5}}]},
        [("value", f"{_R}.extension[0].valueCoding.code")],
    ),
    (
        "valueReference",
        {"extension": [{"url": _EXT + "a", "valueReference": {"reference": 5}}]},
        [("value", f"{_R}.extension[0].valueReference.reference")],
    ),
    (
        "valueQuantity shape",
        {"extension": [{"url": _EXT + "a", "valueQuantity": 5}]},
        [("value", f"{_R}.extension[0].valueQuantity")],
    ),
    (
        "nested url",
        {"extension": [{"url": _EXT + "a", "extension": [{"valueString": "x"}]}]},
        [("required", f"{_R}.extension[0].extension[0].url")],
    ),
    # primitive extensions (_name)
    ("_authored not object", {"_authored": 5}, [("value", f"{_R}._authored")]),
    ("_status empty", {"_status": {}}, [("value", f"{_R}._status")]),
    (
        "_status extension",
        {"_status": {"extension": [{"url": _EXT + "a"}]}},
        [("required", f"{_R}._status.extension[0].value[x]")],
    ),
    ("_id empty", {"_id": {"id": "x"}}, [("value", f"{_R}._id")]),
    (
        "_bogus",
        {"_bogus": {"extension": [{"url": _EXT + "a", "valueString": "x"}]}},
        [("invalid", f"{_R}._bogus")],
    ),
    (
        "_profile length",
        {"meta": {"profile": [_EXT + "p"], "_profile": [{}]}},
        [("value", f"{_R}.meta._profile[0]")],
    ),
    (
        "_div",
        {"text": {"status": "generated", "div": _div("x"), "_div": {"id": "d"}}},
        [("invalid", f"{_R}.text._div")],
    ),
    # the References the triage does not read
    ("basedOn", {"basedOn": [{"reference": 5}]}, [("value", f"{_R}.basedOn[0].reference")]),
    (
        "author identifier",
        {"author": {"identifier": {"system": 1}}},
        [("value", f"{_R}.author.identifier.system")],
    ),
    ("empty encounter", {"encounter": {}}, [("value", f"{_R}.encounter")]),
    ("source unknown", {"source": {"ref": "Patient/1"}}, [("invalid", f"{_R}.source.ref")]),
    (
        "partOf type",
        {"partOf": [{"reference": "Procedure/1", "type": "a b"}]},
        [("value", f"{_R}.partOf[0].type")],
    ),
    # modifiers: never ignored
    (
        "implicitRules",
        {"implicitRules": "http://e.example/rules"},
        [("not-supported", f"{_R}.implicitRules")],
    ),
]


@pytest.mark.parametrize(("elements", "expected"), [c[1:] for c in _BAD], ids=[c[0] for c in _BAD])
def test_a_malformed_r4_element_is_refused_by_name(elements, expected):
    assert _issues(_qr(**elements)) == expected


@pytest.mark.parametrize(("elements", "expected"), [c[1:] for c in _BAD], ids=[c[0] for c in _BAD])
def test_the_same_in_a_parameters_body_names_it_under_the_parameter(elements, expected):
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": _qr(**elements)}],
    }
    prefix = "Parameters.parameter[0].resource"
    assert _issues(body) == [(code, prefix + path[len(_R) :]) for code, path in expected]


def test_every_problem_is_reported_one_issue_per_element():
    qr = _qr(
        meta={"lastUpdated": "yesterday", "versionId": "v 1"},
        text={"status": "bogus", "div": 5},
        identifier={"system": 12},
        contained=[{"no": "resourceType"}],
    )
    assert sorted(_issues(qr)) == sorted(
        [
            ("value", f"{_R}.meta.lastUpdated"),
            ("value", f"{_R}.meta.versionId"),
            ("code-invalid", f"{_R}.text.status"),
            ("value", f"{_R}.text.div"),
            ("value", f"{_R}.identifier.system"),
            ("required", f"{_R}.contained[0].resourceType"),
            ("required", f"{_R}.contained[0].id"),
        ]
    )


def test_the_wrapper_meta_is_an_r4_meta_too():
    body = {
        "resourceType": "Parameters",
        "meta": {"lastUpdated": "x", "tag": [{"code": 5}]},
        "_language": {"extension": [{"url": _EXT + "a", "valueCode": "x"}]},
        "_id": {"id": "x"},  # an id alone: empty (ele-1)
        "parameter": [
            {
                "name": "resource",
                "resource": _qr(),
                "_name": {"extension": [{"url": _EXT + "a", "valueString": "x"}]},
            }
        ],
    }
    assert _issues(body) == [
        ("value", "Parameters._id"),
        ("value", "Parameters.meta.lastUpdated"),
        ("value", "Parameters.meta.tag[0].code"),
    ]


def test_a_diagnostic_says_what_is_wrong_without_echoing_markup():
    response = _post(_qr(text={"status": "generated", "div": _div("<script>alert(1)</script>x")}))
    (issue,) = response.json["issue"]
    assert "txt-1" in issue["diagnostics"]
    assert "alert" not in issue["diagnostics"]


# --- valid R4 content is triaged as the bare resource ----------------------------------

_NARRATIVE = _div(
    '<p class="x" style="color: black" lang="en" xml:lang="en" dir="ltr">Intake of '
    '<b>Ann</b> <a href="https://ehr.example/fhir/Patient/1">record</a> '
    '<a name="top">top</a></p>'
    '<table border="1"><caption>Answers</caption><thead><tr><th scope="col">Q</th></tr>'
    '</thead><tbody><tr><td colspan="1">A &amp; B &lt;3 &#233;</td></tr></tbody></table>'
    '<img src="#photo" alt="photo"/><img src="data:image/png;base64,iVBORw0KGgo=" alt="x"/>'
    "<ul><li><i>one</i></li></ul><!-- a comment --><br/>"
)
_EXTENSIONS = [
    {"url": _EXT + "string", "valueString": "text"},
    {"url": _EXT + "bool", "valueBoolean": False},
    {"url": _EXT + "int", "valueInteger": -3},
    {"url": _EXT + "pos", "valuePositiveInt": 1},
    {"url": _EXT + "dec", "valueDecimal": 1.5},
    {"url": _EXT + "code", "valueCode": "a-code"},
    {"url": _EXT + "date", "valueDate": "2024-02-29"},
    {"url": _EXT + "dt", "valueDateTime": "2026-11-28T10:00:00+01:00"},
    {"url": _EXT + "instant", "valueInstant": "2026-11-28T10:00:00.123Z"},
    {"url": _EXT + "uri", "valueUri": "urn:uuid:0b9e7e3a-5a53-4b35-9a7e-9c1e6f2f4d10"},
    {"url": _EXT + "coding", "valueCoding": {"system": "http://loinc.org", "code": "1-8"}},
    {"url": _EXT + "cc", "valueCodeableConcept": {"text": "free"}},
    {"url": _EXT + "ref", "valueReference": {"reference": "#pract"}},
    {"url": _EXT + "qty", "valueQuantity": {"value": 3, "unit": "mg"}},
    {"url": _EXT + "id", "valueIdentifier": {"system": "urn:ietf:rfc:3986", "value": "x"}},
    {"url": _EXT + "period", "valuePeriod": {"start": "2026-11-01"}},
    {
        "url": _EXT + "complex",
        "extension": [
            {"url": "part", "valueString": "a"},
            {
                "url": "other",
                "_valueString": {"extension": [{"url": _EXT + "x", "valueCode": "y"}]},
            },
        ],
    },
]
_META = {
    "versionId": "7",
    "lastUpdated": "2026-11-28T10:00:00.5+14:00",
    "source": "urn:uuid:0b9e7e3a-5a53-4b35-9a7e-9c1e6f2f4d10",
    "profile": ["http://hl7.org/fhir/StructureDefinition/QuestionnaireResponse"],
    "security": [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
    ],
    "tag": [{"system": _EXT + "tags", "code": "intake", "display": "Intake"}],
}


def _rich() -> dict[str, Any]:
    """A QuestionnaireResponse using every R4 element ``$triage`` does not read."""
    qr = _qr()
    qr.update(
        id="qr-7",
        meta=_META,
        language="en-GB",
        _language={"extension": [{"url": _EXT + "lang", "valueCode": "en"}]},
        _id={"extension": [{"url": _EXT + "origin", "valueString": "intake app"}]},
        text={"status": "generated", "div": _NARRATIVE},
        contained=[
            _PRACTITIONER | {"meta": {"profile": [_EXT + "p"]}, "language": "en"},
            {
                "resourceType": "RelatedPerson",
                "id": "mum",
                "text": {"status": "generated", "div": _div("Mother")},
                "extension": [{"url": _EXT + "x", "valueBoolean": True}],
                "patient": {"reference": "Patient/p1"},
            },
        ],
        extension=_EXTENSIONS,
        identifier={
            "use": "official",
            "type": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "FILL"}
                ]
            },
            "system": "urn:ietf:rfc:3986",
            "value": "urn:uuid:5e1a4b3c-7f2d-4c8e-9a6b-2d3f4e5a6b7c",
            "period": {"start": "2026-11-28", "end": "2026-12-28T00:00:00Z"},
            "assigner": {"display": "Clinic"},
        },
        basedOn=[{"reference": "ServiceRequest/1", "type": "ServiceRequest"}],
        partOf=[{"identifier": {"value": "proc-1"}}],
        encounter={"reference": "Encounter/e1", "display": "Visit"},
        author={"reference": "#pract"},
        source={"reference": "#mum"},
        _authored={"extension": [{"url": _EXT + "tz", "valueString": "Europe/Berlin"}]},
        _status={"extension": [{"url": _EXT + "why", "valueString": "submitted"}]},
    )
    qr["item"][0]["_text"] = {"extension": [{"url": _EXT + "tr", "valueString": "Patient"}]}
    return qr


RICH = _rich()


def test_a_qr_with_every_r4_element_is_triaged_as_the_bare_one():
    assert _findings(RICH) == BASELINE


def test_so_is_a_parameters_body_with_an_r4_meta():
    body = {
        "resourceType": "Parameters",
        "id": "params",
        "meta": {"lastUpdated": "2026-11-28T10:00:00Z", "tag": [{"code": "x"}]},
        "_language": {"extension": [{"url": _EXT + "a", "valueCode": "x"}]},
        "language": "en",
        "parameter": [{"name": "resource", "resource": RICH}],
    }
    assert _findings(body) == BASELINE


@pytest.mark.parametrize("status", ["generated", "extensions", "additional", "empty"])
def test_every_narrative_status_is_taken(status):
    assert _findings(_qr(text={"status": status, "div": _div("<p>ok</p>")})) == BASELINE


def test_the_products_own_output_round_trips_with_id_meta_and_narrative():
    """What ``/v1/triage`` answers (id, meta.versionId/lastUpdated, the generated
    narrative) goes back into ``$triage`` as it is."""
    assert EMITTED["text"]["status"] == "generated"
    assert "lastUpdated" in EMITTED["meta"]
    assert _findings(EMITTED) == BASELINE


def test_medplum_agrees_that_what_is_accepted_is_valid_r4(medplum):  # noqa: F811
    """The independent validator finds no error in what ``$triage`` accepts."""
    accepted = {
        "rich": RICH,
        "emitted": EMITTED,
        **{
            f"status-{s}": _qr(text={"status": s, "div": _div("ok")})
            for s in ("empty", "additional")
        },
    }
    for body in accepted.values():
        assert _post(body).status_code == 200
    results = medplum(list(accepted.items()))
    assert {label: r["errors"] for label, r in results.items()} == {label: [] for label in accepted}


#: The bad cases medplum does not see, by the rule it does not check: XHTML (it does
#: not parse a div), required bindings, ele-1 empties, dom-3, whether a day exists,
#: ext-1's one value[x], the id regex inside contained, the shape of an open-typed
#: value, an element's ``_name`` where there is none. Modifiers are valid R4 that
#: ``$triage`` does not support.
_MEDPLUM_MISSES = {
    "div unclosed", "div no namespace", "div root p", "div script", "div event attribute",
    "div script url", "div iframe", "div form", "div blank", "div doctype", "div entity",
    "identifier use", "empty meta", "empty identifier", "empty encounter", "_status empty",
    "_id empty", "_profile length", "dom-3", "valueDateTime", "two values", "contained bad id",
    "contained narrative", "contained language", "contained not object", "valueQuantity shape",
    "_div", "implicitRules", "contained implicitRules", "contained modifierExtension",
}  # fmt: skip


def test_medplum_refuses_the_bad_cases_it_can_see(medplum):  # noqa: F811
    """Where medplum checks a rule, it refuses exactly what ``$triage`` refuses (an
    independent second reading of R4); the rest are the rules it does not check."""
    cases = {name: _qr(**elements) for name, elements, _ in _BAD}
    assert set(cases) >= _MEDPLUM_MISSES
    results = medplum(list(cases.items()))
    assert {label for label, r in results.items() if not r["errors"]} == _MEDPLUM_MISSES


# --- rules that hold for all inputs ------------------------------------------------------

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # R4 id (datatypes.html), restated


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ident=st.one_of(st.text(max_size=70), st.from_regex(_ID, fullmatch=True)))
def test_a_contained_id_is_taken_exactly_when_it_is_an_r4_id(ident):
    qr = _qr(contained=[_PRACTITIONER | {"id": ident}])
    if _ID.fullmatch(ident):
        assert _findings(qr | {"author": {"reference": f"#{ident}"}}) == BASELINE
    else:  # refused by its id alone (a malformed id is not also reported unreferenced)
        assert _issues(qr) == [("value", f"{_R}.contained[0].id")]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ident=st.one_of(st.text(max_size=70), st.from_regex(_ID, fullmatch=True)))
def test_a_meta_version_id_is_taken_exactly_when_it_is_an_r4_id(ident):
    qr = _qr(meta={"versionId": ident})
    if _ID.fullmatch(ident):
        assert _findings(qr) == BASELINE
    else:
        assert _issues(qr) == [("value", f"{_R}.meta.versionId")]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.text(min_size=1, max_size=20))
def test_a_contained_resource_type_is_taken_exactly_when_r4_has_it(name):
    qr = _qr(contained=[{"resourceType": name, "id": "c1"}], author={"reference": "#c1"})
    if name in RESOURCE_TYPES:
        assert _findings(qr) == BASELINE
    else:
        assert _issues(qr) == [("value", f"{_R}.contained[0].resourceType")]


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(RESOURCE_TYPES)))
def test_any_r4_resource_type_may_be_contained(name):
    qr = _qr(contained=[{"resourceType": name, "id": "c1"}], author={"reference": "#c1"})
    assert _findings(qr) == BASELINE


#: Narrative divs built from the allowed elements and attributes and from others.
_TAGS = st.sampled_from(
    sorted(NARRATIVE_ELEMENTS | {"script", "form", "iframe", "object", "body", "input"})
)
_ATTRIBUTES = st.sampled_from(
    sorted(
        NARRATIVE_ATTRIBUTES - {"{http://www.w3.org/XML/1998/namespace}lang"}
        | {"onclick", "onload", "xmlns:x", "formaction"}
    )
)
_TEXT = st.text(alphabet="ab <&>\"'", max_size=6)


@st.composite
def _divs(draw: st.DrawFn) -> str:
    def node(depth: int) -> str:
        tag = draw(_TAGS)
        attributes = "".join(
            f' {a}="{draw(st.sampled_from(["x", "javascript:x", "#a", "data:text/html,x"]))}"'
            for a in sorted(set(draw(st.lists(_ATTRIBUTES, max_size=2))))
        )
        children = draw(st.lists(st.sampled_from(["text", "node"]), max_size=2 if depth else 0))
        inner = "".join(node(depth - 1) if c == "node" else _escape(draw(_TEXT)) for c in children)
        return f"<{tag}{attributes}>{inner}</{tag}>"

    return _div("".join(node(2) for _ in range(draw(st.integers(0, 2)))) + _escape(draw(_TEXT)))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _valid(div: str) -> bool:
    """The suite's own checker, which takes text only as content: an image is content
    too (txt-2 asks for non-whitespace content, and an image is not whitespace)."""
    problems = narrative_problems(div)
    return not problems or (problems == ["narrative has no text (txt-2)"] and "<img" in div)


@settings(max_examples=300, deadline=None)
@given(div=_divs())
def test_the_narrative_check_agrees_with_the_suites_own_checker(div):
    """Two readings of txt-1/txt-2 (``tests/support/conformance.py`` checks the
    product's output with its own parser walk) accept the same divs."""
    assert (xhtml_problems(div) == []) == _valid(div)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(div=_divs())
def test_a_narrative_is_triaged_exactly_when_it_is_valid(div):
    qr = _qr(text={"status": "generated", "div": div})
    if _valid(div):
        assert _findings(qr) == BASELINE
    else:
        assert _issues(qr) == [("value", f"{_R}.text.div")]


#: Where each new row of the element table sits in a QuestionnaireResponse that is
#: otherwise valid: (the elements holding it, its row, its FHIRPath).
_ROWS = [
    ({"meta": {"versionId": "1"}}, ("meta",), "Meta", f"{_R}.meta"),
    ({"text": {"status": "generated", "div": _div("x")}}, ("text",), "Narrative", f"{_R}.text"),
    ({"identifier": {"value": "1"}}, ("identifier",), "Identifier", f"{_R}.identifier"),
    (
        {"identifier": {"value": "1", "period": {"start": "2026"}}},
        ("identifier", "period"),
        "Period",
        f"{_R}.identifier.period",
    ),
    (
        {"identifier": {"type": {"text": "x"}}},
        ("identifier", "type"),
        "CodeableConcept",
        f"{_R}.identifier.type",
    ),
    ({"encounter": {"display": "x"}}, ("encounter",), "Reference", f"{_R}.encounter"),
    (
        {"_status": {"extension": [{"url": _EXT + "a", "valueString": "x"}]}},
        ("_status",),
        "Element",
        f"{_R}._status",
    ),
]
_JSON_VALUES = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.just([]),
    st.lists(st.integers(), min_size=1, max_size=2),
    st.just({}),
    st.text(max_size=5),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(place=st.sampled_from(_ROWS), data=st.data())
def test_a_value_of_the_wrong_json_type_is_refused_at_its_path_in_every_new_row(place, data):
    """For all rows and elements: a value of the wrong JSON type or form is refused, at
    the element's own path (the R4 oracle of ``test_fhir_triage_strict_elements``)."""
    elements, path, row, where = place
    name = data.draw(st.sampled_from(sorted(COMPLEX[row])))
    element = COMPLEX[row][name]
    value = data.draw(_JSON_VALUES)
    qr = _qr(**copy.deepcopy(elements))
    node = qr
    for step in path:
        node = node[step]
    node[name] = [value] if element.repeats else value
    typed = _PRIMITIVE_RULES.get(element.type, lambda _value: False)
    if typed(value) and (element.codes is None or value in element.codes):
        return  # a well-typed value: the acceptance tests cover those
    issues = _issues(qr)  # one, or for an empty extension its url and value[x]
    assert 1 <= len(issues) <= 2, issues
    assert all(path.startswith(f"{where}.{name}") for _, path in issues), issues
