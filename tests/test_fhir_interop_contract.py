"""openapi.yaml describes the FHIR interface exactly: what its $triage schema accepts is triaged.

The ``$triage`` request schema is generated from the vocabulary (tools/fhir_contract.py)
and contract fuzzing (tests/test_fuzz_contract.py) holds the server to it. Here
the equivalence is checked directly on QuestionnaireResponses close to valid
ones: schema-valid ⇔ 200, schema-invalid ⇔ 422, with the two documented
exceptions (a Patient subject with an equal ``patient.reference`` answer, which
the schema excludes and the server accepts; lone surrogates, which the
generator does not produce).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import orjson
import pytest
import yaml
from examples import EXAMPLE_IDS, EXAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS31Validator
from strategies import requests

from api import create_app
from api.fhir import FhirSettings, render_triage_bundle
from api.fhir import codesystems as cs
from api.fhir.catalog import catalog
from api.routes.fhir import READABLE
from tools.openapi import OPENAPI_PATH, build_spec
from tools.store_contract import STORED_READS
from triage import evaluate
from triage.vocabulary import ITEMS

FHIR = "application/fhir+json"
OP = "/fhir/QuestionnaireResponse/$triage"
DOCUMENT = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
APP = create_app({"TESTING": True})


def _validator(name: str) -> OAS31Validator:
    return OAS31Validator(
        {"$ref": f"#/components/schemas/{name}", "components": DOCUMENT["components"]}
    )


QR_SCHEMA = _validator("TriageQuestionnaireResponse")
PARAMETERS_SCHEMA = _validator("TriageParameters")


def _render(request: dict[str, Any]) -> dict[str, Any]:
    bundle = render_triage_bundle(request, evaluate(request), settings=FhirSettings())
    return orjson.loads(orjson.dumps(bundle["entry"][0]["resource"]))  # a private copy


def _both_patient_sources(qr: Any) -> bool:
    """The documented exception: a Patient subject and an answered patient.reference."""
    if not isinstance(qr, dict) or not isinstance(qr.get("subject"), dict):
        return False
    reference = qr["subject"].get("reference")
    items = qr.get("item")
    return (
        isinstance(reference, str)
        and reference.startswith("Patient/")
        and isinstance(items, list)
        and any(
            isinstance(i, dict) and i.get("linkId") == "patient.reference" and i.get("answer")
            for i in items
        )
    )


def _post(body: Any) -> int:
    response = APP.test_client().post(OP, data=json.dumps(body), content_type=FHIR)
    assert response.status_code in (200, 422), response.data[:500]
    return response.status_code


# --- mutations of valid QuestionnaireResponses ------------------------------------------

_SYSTEM = cs.codesystem_url(cs.DEFAULT_CANONICAL_BASE, "twitching-body-sites")
_WRONG_VALUES = (
    None,
    True,
    False,
    0,
    1,
    -1,
    3.0,
    1.5,
    10**7,
    "",
    "x",
    "Patient/x",
    "Patient/",
    "completed",
    "entered-in-error",
    [],
    {},
    [{}],
    {"valueBoolean": True},
    {"valueInteger": 5},
    {"valueDecimal": 5.5},
    {"valueString": "x"},
    {"valueCoding": {"system": _SYSTEM, "code": "calf"}},
    {"linkId": "symptoms.confusion"},
    {"linkId": "history.medications"},
    {"linkId": "history.medications", "item": []},
    {"linkId": "history.medications.class"},
    {"reference": "Patient/other"},
    {"reference": "Group/1"},
)
#: A fresh copy on every draw: mutations must never reach the table itself.
_WRONG = st.sampled_from(range(len(_WRONG_VALUES))).map(lambda i: copy.deepcopy(_WRONG_VALUES[i]))
_KEYS = st.sampled_from(
    [
        "answer",
        "item",
        "linkId",
        "text",
        "valueBoolean",
        "valueInteger",
        "valueCoding",
        "code",
        "system",
        "display",
        "id",
        "extension",
        "modifierExtension",
        "subject",
        "status",
        "questionnaire",
        "reference",
        "zzz",
    ]
)


def _containers(node: Any) -> list[Any]:
    out = []
    if isinstance(node, dict | list):
        out.append(node)
        for child in node.values() if isinstance(node, dict) else node:
            out += _containers(child)
    return out


@st.composite
def near_valid_questionnaire_responses(draw: st.DrawFn) -> Any:
    qr: Any = _render(draw(requests()))
    for _ in range(draw(st.integers(0, 3))):
        node = draw(st.sampled_from(_containers(qr)))
        action = draw(st.sampled_from(["set", "delete", "add", "copy"]))
        if isinstance(node, dict) and node and action in ("set", "delete"):
            key = draw(st.sampled_from(sorted(node)))
            if action == "delete":
                del node[key]
            else:
                node[key] = draw(_WRONG)
        elif isinstance(node, dict):
            node[draw(_KEYS)] = draw(_WRONG)
        elif node and action == "copy":
            node.append(json.loads(json.dumps(draw(st.sampled_from(node)))))
        elif node and action == "delete":
            del node[draw(st.integers(0, len(node) - 1))]
        elif node:
            node[draw(st.integers(0, len(node) - 1))] = draw(_WRONG)
        else:
            node.append(draw(_WRONG))
    if draw(st.booleans()):
        qr = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": qr}]}
    return qr


def _schema_valid(body: Any) -> bool:
    is_parameters = isinstance(body, dict) and body.get("resourceType") == "Parameters"
    return (PARAMETERS_SCHEMA if is_parameters else QR_SCHEMA).is_valid(body)


def _qr_in(body: Any) -> Any:
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        parameters = body.get("parameter")
        if isinstance(parameters, list) and parameters and isinstance(parameters[0], dict):
            return parameters[0].get("resource")
    return body


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=near_valid_questionnaire_responses())
def test_schema_validity_is_acceptance(body):
    accepted = _post(body) == 200
    if _schema_valid(body):
        assert accepted
    elif accepted:
        assert _both_patient_sources(_qr_in(body)), "accepted though the schema refuses it"


@pytest.mark.parametrize(("name", "case"), EXAMPLES, ids=EXAMPLE_IDS)
def test_every_example_qr_fits_the_schema_in_its_one_source_form(name, case):
    qr = _render(case["request"])
    if _both_patient_sources(qr):
        assert not QR_SCHEMA.is_valid(qr)  # the documented exception, and nothing else
        qr["item"] = [i for i in qr["item"] if i["linkId"] != "patient.reference"]
    assert QR_SCHEMA.is_valid(qr), name
    assert _post(qr) == 200


def test_the_documented_example_is_valid_and_triaged():
    operation = DOCUMENT["paths"][OP]["post"]
    for media, content in operation["requestBody"]["content"].items():
        assert media in (FHIR, "application/json")
        assert QR_SCHEMA.is_valid(content["example"])
        assert _post(content["example"]) == 200


# --- the rest of the FHIR interface in openapi.yaml -------------------------------------


def test_read_ids_are_exactly_the_published_ones():
    spec = build_spec()
    published = catalog(cs.DEFAULT_CANONICAL_BASE).resources["4.0"]
    for resource_type in ("Questionnaire", "CodeSystem", "ValueSet", "OperationDefinition"):
        parameters = spec["paths"][f"/fhir/{resource_type}/{{id}}"]["get"]["parameters"]
        (parameter,) = [p for p in parameters if p.get("in") == "path"]
        assert parameter["schema"]["enum"] == [i for t, i in published if t == resource_type]


def test_every_fhir_route_is_documented():
    spec = build_spec()
    readable = re.fullmatch(r"any\((.*)\)", READABLE).group(1).split(", ")
    routes = {
        rule.rule
        for rule in APP.url_map.iter_rules()
        if rule.rule.startswith("/fhir") and rule.endpoint.split(".")[0] == "fhir"
    }
    assert routes == {
        "/fhir/metadata",
        "/fhir/QuestionnaireResponse/$triage",
        f"/fhir/<{READABLE}:resource_type>/<resource_id>",
    }
    documented = {p for p in spec["paths"] if p.startswith("/fhir")}
    # The stored-resource routes (blueprint "store") are checked in tests/test_storage_api.py.
    stored = {p for p in documented if p.split("/")[2] in STORED_READS and "$" not in p}
    assert documented - stored == {
        "/fhir/metadata",
        "/fhir/QuestionnaireResponse/$triage",
        *(f"/fhir/{resource_type}/{{id}}" for resource_type in readable),
    }


def test_query_parameters_are_documented_and_unknown_ones_said_to_be_ignored():
    spec = build_spec()
    for path, method in (("/v1/triage", "post"), (OP, "post")):
        operation = spec["paths"][path][method]
        # Query parameters (the X-Request-Id header parameter is a shared $ref).
        names = {p["name"] for p in operation["parameters"] if p.get("in") == "query"}
        assert names == {"_bundle", "_format"}
        assert "ignored" in operation["description"]
    bundle = next(p for p in spec["paths"][OP]["post"]["parameters"] if p["name"] == "_bundle")
    assert bundle["schema"]["enum"] == ["collection", "transaction"]


def test_reference_item_pattern_is_the_vocabulary_one():
    schema = DOCUMENT["components"]["schemas"]["TriageQuestionnaireResponse"]
    subject = schema["properties"]["subject"]["properties"]["reference"]
    assert subject["pattern"] == ITEMS["patient.reference"].pattern
