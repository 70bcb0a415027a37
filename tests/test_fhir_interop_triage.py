"""$triage, transaction Bundles and FHIR version negotiation over HTTP (issue 4)."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from examples import EXAMPLE_IDS, EXAMPLES
from fhir.resources import get_fhir_model_class as r5_model
from fhir.resources.R4B import get_fhir_model_class as r4b_model
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from strategies import requests
from werkzeug.test import TestResponse

from api import create_app
from api.fhir import codesystems as cs
from api.fhir.catalog import catalog
from tests.support.conformance import bundle_problems
from triage import KNOWLEDGE_BASE_VERSION

FHIR = "application/fhir+json"
OP = "/fhir/QuestionnaireResponse/$triage"
BASE = cs.DEFAULT_CANONICAL_BASE
QUESTIONNAIRE = cs.questionnaire_canonical(BASE, KNOWLEDGE_BASE_VERSION)
LEVEL_SYSTEM = cs.codesystem_url(BASE, cs.TRIAGE_LEVEL)
RULE_SYSTEM = cs.codesystem_url(BASE, cs.RED_FLAG_RULE)
_SIGNED = re.compile(r"expires=[0-9]+&signature=[A-Za-z0-9_-]+")
# Ids of stored resources are UUID version 7 (api.fhir.ids), request ids version 4.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[47][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def post_op(
    client: FlaskClient,
    body: Any,
    *,
    query: str = "",
    content_type: str = FHIR,
    headers: dict[str, str] | None = None,
) -> TestResponse:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(OP + query, data=data, content_type=content_type, headers=headers or {})


def triage_v1(client: FlaskClient, request: dict[str, Any], query: str = "") -> dict[str, Any]:
    response = client.post("/v1/triage" + query, json=request)
    assert response.status_code == 200, response.data[:500]
    return response.json


def normalized(bundle: dict[str, Any]) -> str:
    """The Bundle with ids and times replaced by placeholders in order of appearance.

    The signed report link of ``Bundle.link`` (issue 14) is per Bundle and per second,
    like its ids and time: its expiry and signature become placeholders too.
    """
    text = json.dumps(bundle, sort_keys=True)
    text = text.replace(bundle["timestamp"], "<now>")
    text = _SIGNED.sub("expires=<expires>&signature=<signature>", text)
    seen: dict[str, str] = {}
    return _UUID.sub(lambda m: seen.setdefault(m.group(0), f"<id{len(seen)}>"), text)


def level_and_rules(bundle: dict[str, Any]) -> tuple[str, list[str]]:
    resources = [entry["resource"] for entry in bundle["entry"]]
    level = next(
        c["code"]
        for c in resources[1]["valueCodeableConcept"]["coding"]
        if c["system"] == LEVEL_SYSTEM
    )
    rules = [
        c["code"] for r in resources[2:] for c in r["code"]["coding"] if c["system"] == RULE_SYSTEM
    ]
    return level, rules


def qr_of(client: FlaskClient, request: dict[str, Any]) -> dict[str, Any]:
    return triage_v1(client, request)["entry"][0]["resource"]


def outcome(response: TestResponse, status: int) -> list[dict[str, Any]]:
    assert response.status_code == status, response.data[:800]
    assert response.content_type.startswith(FHIR)
    body = response.json
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"]


VALID = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}


# --- round trip: the same answers give the same Bundle -----------------------------------


@pytest.mark.parametrize(("name", "case"), EXAMPLES, ids=EXAMPLE_IDS)
def test_example_round_trip_gives_the_same_bundle(client, name, case):
    direct = triage_v1(client, case["request"])
    response = post_op(client, direct["entry"][0]["resource"])
    assert response.status_code == 200, response.data[:800]
    assert response.content_type == f"{FHIR}; fhirVersion=4.0"
    via_op = response.json
    level, rules = level_and_rules(via_op)
    assert level == case["expected"]["level"], name
    assert sorted(rules) == sorted(case["expected"]["rules"])
    assert (level, rules) == level_and_rules(direct)
    assert normalized(via_op) == normalized(direct)


APP = create_app({"TESTING": True})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests())
def test_any_request_round_trips_through_triage(request):
    client = APP.test_client()
    direct = triage_v1(client, request)
    response = post_op(client, direct["entry"][0]["resource"])
    assert response.status_code == 200, response.data[:800]
    assert normalized(response.json) == normalized(direct)


def test_parameters_body_is_the_same_operation(client):
    qr = qr_of(client, VALID)
    wrapped = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": qr}]}
    direct, via = post_op(client, qr), post_op(client, wrapped)
    assert via.status_code == 200
    assert normalized(via.json) == normalized(direct.json)


@pytest.mark.parametrize(
    "content_type", ["application/json", f"{FHIR}; fhirVersion=4.0", f"{FHIR}; charset=utf-8"]
)
def test_json_media_types_are_accepted(client, content_type):
    assert post_op(client, qr_of(client, VALID), content_type=content_type).status_code == 200


def test_unversioned_questionnaire_url_is_accepted(client):
    qr = qr_of(client, VALID)
    qr["questionnaire"] = cs.questionnaire_url(BASE)
    assert post_op(client, qr).status_code == 200


def test_a_form_filled_qr_without_display_or_text_is_triaged(client):
    """What an SDC renderer posts: items as the Questionnaire defines, no narrative."""
    qr = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": QUESTIONNAIRE,
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "item": [
            {"linkId": "patient.age_years", "answer": [{"valueInteger": 40}]},
            {
                "linkId": "twitching.body_sites",
                "answer": [
                    {
                        "valueCoding": {
                            "system": f"{BASE}/CodeSystem/twitching-body-sites",
                            "code": "calf",
                        }
                    }
                ],
            },
            {"linkId": "symptoms.chest_pain", "answer": [{"valueBoolean": True}]},
        ],
    }
    bundle = post_op(client, qr).json
    assert level_and_rules(bundle) == (
        "emergency_ambulance",
        ["RF-CHEST-PAIN", "RF-SCREEN-INCOMPLETE"],  # the rest of the screen is unknown
    )
    assert bundle["entry"][1]["resource"]["subject"] == {"reference": "Patient/p1"}


# --- 422: the item named by FHIRPath, the linkId in diagnostics ----------------------------


def _index(qr: dict[str, Any], link_id: str) -> int:
    return next(i for i, item in enumerate(qr["item"]) if item["linkId"] == link_id)


FULL = {
    "patient": {"reference": "Patient/p1", "age_years": 30},
    "twitching": {"body_sites": ["calf", "thigh"]},
    "symptoms": {"headache": False},
    "history": {"medications": [{"class": "statin", "days_since_start": 3}]},
}


def _case(client: FlaskClient, edit) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    qr = qr_of(client, FULL)
    edit(qr)
    return outcome(post_op(client, qr), 422), qr


def test_out_of_range_answer_names_the_answer(client):
    def edit(qr):
        qr["item"][_index(qr, "patient.age_years")]["answer"][0]["valueInteger"] = 500

    (issue,), qr = _case(client, edit)
    assert issue["code"] == "value"
    assert issue["expression"] == [
        f"QuestionnaireResponse.item[{_index(qr, 'patient.age_years')}].answer[0]"
    ]
    assert issue["diagnostics"].startswith("linkId patient.age_years: ")


def test_code_not_of_the_item_names_the_answer(client):
    def edit(qr):
        qr["item"][_index(qr, "twitching.body_sites")]["answer"][1]["valueCoding"]["code"] = "tail"

    (issue,), qr = _case(client, edit)
    assert issue["code"] == "code-invalid"
    index = _index(qr, "twitching.body_sites")
    assert issue["expression"] == [f"QuestionnaireResponse.item[{index}].answer[1]"]
    assert "twitching.body_sites" in issue["diagnostics"]


def test_duplicate_list_member_names_it(client):
    def edit(qr):
        answers = qr["item"][_index(qr, "twitching.body_sites")]["answer"]
        answers.append(copy.deepcopy(answers[0]))

    (issue,), qr = _case(client, edit)
    assert issue["expression"][0].startswith(
        f"QuestionnaireResponse.item[{_index(qr, 'twitching.body_sites')}]"
    )


def test_medication_child_error_names_the_child_item(client):
    def edit(qr):
        group = qr["item"][_index(qr, "history.medications")]
        group["item"][1]["answer"][0]["valueInteger"] = -1

    (issue,), qr = _case(client, edit)
    index = _index(qr, "history.medications")
    assert issue["expression"] == [f"QuestionnaireResponse.item[{index}].item[1].answer[0]"]
    assert issue["diagnostics"].startswith("linkId history.medications.days_since_start: ")


def test_medication_without_class_names_its_group(client):
    def edit(qr):
        group = qr["item"][_index(qr, "history.medications")]
        group["item"] = group["item"][1:]

    (issue,), qr = _case(client, edit)
    assert issue["code"] == "required"
    assert issue["expression"] == [
        f"QuestionnaireResponse.item[{_index(qr, 'history.medications')}]"
    ]
    assert "history.medications.class" in issue["diagnostics"]


def test_missing_required_item_names_the_resource_and_the_linkid(client):
    def edit(qr):
        del qr["item"][_index(qr, "patient.age_years")]

    (issue,), _ = _case(client, edit)
    assert issue == {
        "severity": "error",
        "code": "required",
        "diagnostics": issue["diagnostics"],
        "expression": ["QuestionnaireResponse"],
    }
    assert issue["diagnostics"].startswith("linkId patient.age_years: ")


def _set(key: str, value: Any):
    return lambda qr: qr.update({key: value})


def _answer(index: int, **value: Any):
    return lambda qr: qr["item"][index]["answer"][0].update(value)


_R = "QuestionnaireResponse"
_AGE = f"{_R}.item[1].answer[0]"  # FULL renders item[0] patient.reference, [1] age, [2] sites

ERRORS = [
    pytest.param(_set("resourceType", "Patient"), "invalid", _R, "Patient", id="not-a-qr"),
    pytest.param(
        _set("questionnaire", "http://x.org/Q|1"),
        "value",
        f"{_R}.questionnaire",
        "must be",
        id="other-questionnaire",
    ),
    pytest.param(
        lambda qr: qr.pop("questionnaire"),
        "required",
        f"{_R}.questionnaire",
        "required",
        id="no-questionnaire",
    ),
    pytest.param(
        _set("status", "entered-in-error"),
        "value",
        f"{_R}.status",
        "not triaged",
        id="entered-in-error",
    ),
    pytest.param(_set("status", "done"), "code-invalid", f"{_R}.status", "status", id="bad-status"),
    pytest.param(
        lambda qr: qr.pop("status"), "required", f"{_R}.status", "required", id="no-status"
    ),
    pytest.param(
        _set("modifierExtension", []),
        "not-supported",
        f"{_R}.modifierExtension",
        "modifierExtension",
        id="modifier-extension",
    ),
    pytest.param(
        _set("answers", []), "invalid", f"{_R}.answers", "unknown element", id="unknown-element"
    ),
    pytest.param(
        _set("subject", {"reference": "Patient/other"}),
        "value",
        f"{_R}.subject.reference",
        "different patients",
        id="subject-disagrees",
    ),
    pytest.param(
        _set("subject", "Patient/p1"), "value", f"{_R}.subject", "Reference", id="subject-string"
    ),
    pytest.param(_set("item", {}), "value", f"{_R}.item", "list", id="item-not-a-list"),
    pytest.param(
        lambda qr: qr["item"].append({"linkId": "symptoms.headach"}),
        "invalid",
        f"{_R}.item[{{last}}]",
        "symptoms.headach",
        id="unknown-linkid",
    ),
    pytest.param(
        lambda qr: qr["item"].append(dict(qr["item"][0])),
        "invalid",
        f"{_R}.item[{{last}}]",
        "twice",
        id="item-twice",
    ),
    pytest.param(
        lambda qr: qr["item"][0].update(answr=[]),
        "invalid",
        f"{_R}.item[0].answr",
        "unknown element",
        id="misspelt-answer",
    ),
    pytest.param(
        _answer(1, valueInteger="30"),
        "value",
        f"{_AGE}.valueInteger",
        "wrong type",
        id="integer-as-string",
    ),
    pytest.param(
        _answer(1, valueInteger=30.5),
        "value",
        f"{_AGE}.valueInteger",
        "wrong type",
        id="fraction-as-integer",
    ),
    pytest.param(
        _answer(1, valueDecimal=30), "value", _AGE, "exactly one", id="decimal-and-integer"
    ),
    pytest.param(
        lambda qr: qr["item"][1]["answer"].append({"valueInteger": 3}),
        "value",
        f"{_R}.item[1].answer[1]",
        "one answer",
        id="two-answers",
    ),
    pytest.param(
        lambda qr: qr["item"][2]["answer"][0]["valueCoding"].update(
            system="http://snomed.info/sct"
        ),
        "code-invalid",
        f"{_R}.item[2].answer[0].valueCoding",
        "system",
        id="wrong-codesystem",
    ),
    pytest.param(_answer(1, item=[]), "invalid", f"{_AGE}.item", "nested", id="answer-with-items"),
]


@pytest.mark.parametrize(("edit", "code", "expression", "needle"), ERRORS)
def test_questionnaire_response_errors(client, edit, code, expression, needle):
    qr = qr_of(client, FULL)  # item[0] patient.reference, [1] age, [2] body sites
    edit(qr)
    issues = outcome(post_op(client, qr), 422)
    assert len(issues) == 1
    (issue,) = issues
    items = qr.get("item")
    last = len(items) - 1 if isinstance(items, list) else 0
    assert issue["code"] == code
    assert issue["expression"] == [expression.format(last=last)]
    assert needle in issue["diagnostics"]


def test_several_answer_errors_are_all_reported(client):
    qr = qr_of(client, {**VALID, "activity": {"session_minutes": 60, "sessions_per_week": 3}})
    for item in qr["item"]:
        if item["linkId"].startswith("activity."):
            item["answer"][0]["valueInteger"] = 99999
    issues = outcome(post_op(client, qr), 422)
    assert sorted(i["diagnostics"].split(":")[0] for i in issues) == [
        "linkId activity.session_minutes",
        "linkId activity.sessions_per_week",
    ]


def test_parameters_body_errors_are_rooted_in_the_parameter(client):
    qr = qr_of(client, FULL)
    qr["item"][1]["answer"][0]["valueInteger"] = 500
    wrapped = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": qr}]}
    (issue,) = outcome(post_op(client, wrapped), 422)
    assert issue["expression"] == ["Parameters.parameter[0].resource.item[1].answer[0]"]
    wrapped["parameter"][0]["name"] = "questionnaireResponse"
    (issue,) = outcome(post_op(client, wrapped), 422)
    assert issue["expression"] == ["Parameters.parameter[0].name"]


# --- the same transport errors as /v1/triage ---------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"body": b"{"}, 400, "structure"),
        ({"body": b"[]"}, 400, "structure"),
        ({"body": b'{"a": 1, "a": 2}'}, 400, "structure"),
        ({"body": b" " * 70000}, 413, "too-costly"),
        ({"body": b"{}", "content_type": "text/plain"}, 415, "not-supported"),
        ({"body": b"{}", "content_type": f"{FHIR}; fhirVersion=5.0"}, 415, "not-supported"),
        ({"body": b"{}", "headers": {"Accept": "text/html"}}, 406, "not-supported"),
        ({"body": b"{}", "query": "?_bundle=batch"}, 400, "value"),
    ],
    ids=[
        "malformed",
        "array",
        "duplicate-key",
        "too-large",
        "media-type",
        "r5-input",
        "accept",
        "bundle",
    ],
)
def test_transport_errors_match_v1(client, kwargs, status, code):
    (issue,) = outcome(post_op(client, kwargs.pop("body"), **kwargs), status)
    assert issue["code"] == code


def test_get_on_the_operation_is_405(client):
    response = client.get(OP)
    outcome(response, 405)
    assert "POST" in response.headers["Allow"]


# --- transaction Bundles -----------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["v1", "op"])
@pytest.mark.parametrize(("name", "case"), EXAMPLES, ids=EXAMPLE_IDS)
def test_transaction_bundle_is_ready_to_post(client, endpoint, name, case):
    if endpoint == "v1":
        collection = triage_v1(client, case["request"])
        bundle = triage_v1(client, case["request"], "?_bundle=transaction")
    else:
        qr = qr_of(client, case["request"])
        collection = post_op(client, qr).json
        bundle = post_op(client, qr, query="?_bundle=transaction").json
    assert bundle["type"] == "transaction"
    urls = {entry["fullUrl"] for entry in bundle["entry"]}
    for entry in bundle["entry"]:
        assert entry["fullUrl"].startswith("urn:uuid:")
        assert entry["request"] == {"method": "POST", "url": entry["resource"]["resourceType"]}
    references = {
        ref["reference"]
        for entry in bundle["entry"]
        for key in ("derivedFrom", "hasMember")
        for ref in entry["resource"].get(key, [])
    }
    assert references
    assert references <= urls  # every internal reference resolves inside the transaction
    # The same content as the collection: only the type and the request elements differ.
    as_collection = {
        **bundle,
        "type": "collection",
        "entry": [{k: v for k, v in e.items() if k != "request"} for e in bundle["entry"]],
    }
    assert normalized(as_collection) == normalized(collection), name
    r4b_model("Bundle").model_validate(bundle)
    r5_model("Bundle").model_validate(bundle)


def test_collection_is_the_default_and_explicit(client):
    assert triage_v1(client, VALID)["type"] == "collection"
    assert triage_v1(client, VALID, "?_bundle=collection")["type"] == "collection"
    assert bundle_problems(triage_v1(client, VALID), canonical_base=BASE) == []


@pytest.mark.parametrize(
    "query", ["?_bundle=", "?_bundle=Transaction", "?_bundle=transaction&_bundle=collection"]
)
def test_bad_bundle_parameter_is_400_naming_it(client, query):
    response = client.post("/v1/triage" + query, json=VALID)
    (issue,) = outcome(response, 400)
    assert issue["code"] == "value"
    assert issue["expression"] == ["http._bundle"]
    assert "_bundle" in issue["diagnostics"]


def test_unknown_query_parameters_are_ignored(client):
    direct = triage_v1(client, VALID)
    other = triage_v1(client, VALID, "?_pretty=true&foo=bar&_summary=true")
    assert normalized(other) == normalized(direct)


# --- FHIR version negotiation on every FHIR endpoint -------------------------------------


def _calls(client: FlaskClient) -> dict[str, Any]:
    qr = qr_of(client, VALID)
    calls = {
        "v1": lambda h, q="": client.post("/v1/triage" + q, json=VALID, headers=h),
        "op": lambda h, q="": post_op(client, qr, headers=h, query=q),
        "metadata": lambda h, q="": client.get("/fhir/metadata" + q, headers=h),
    }
    for resource_type, resource_id in catalog(BASE).resources["4.0"]:
        if resource_type != "CapabilityStatement":
            path = f"/fhir/{resource_type}/{resource_id}"
            calls[path] = lambda h, q="", p=path: client.get(p + q, headers=h)
    return calls


@pytest.mark.parametrize(
    ("accept", "version"),
    [
        (None, "4.0"),
        (FHIR, "4.0"),
        (f"{FHIR}; fhirVersion=4.0", "4.0"),
        ("application/json", "4.0"),
        (f"{FHIR}; fhirVersion=5.0", "5.0"),
    ],
)
def test_every_fhir_endpoint_negotiates_the_version(client, accept, version):
    headers = {"Accept": accept} if accept else {}
    model = r5_model if version == "5.0" else r4b_model
    for name, call in _calls(client).items():
        response = call(headers)
        assert response.status_code == 200, (name, response.data[:300])
        assert response.content_type == f"{FHIR}; fhirVersion={version}", name
        body = response.json
        model(body["resourceType"]).model_validate(body)
        if body["resourceType"] == "Bundle":
            for entry in body["entry"]:
                model(entry["resource"]["resourceType"]).model_validate(entry["resource"])


@pytest.mark.parametrize(
    "accept", [f"{FHIR}; fhirVersion=3.0", f"{FHIR}; fhirVersion=6.0", "text/html"]
)
def test_unsupported_version_is_406_everywhere(client, accept):
    for name, call in _calls(client).items():
        (issue,) = outcome(call({"Accept": accept}), 406)
        assert issue["code"] == "not-supported", name


@pytest.mark.parametrize(
    ("fmt", "version"),
    [
        ("json", "4.0"),
        ("application/fhir%2Bjson", "4.0"),
        ("application/fhir%2Bjson;%20fhirVersion=5.0", "5.0"),
    ],
)
def test_format_parameter_overrides_accept(client, fmt, version):
    for name, call in _calls(client).items():
        response = call({"Accept": "text/html"}, f"?_format={fmt}")
        assert response.status_code == 200, name
        assert response.content_type == f"{FHIR}; fhirVersion={version}"


@pytest.mark.parametrize("fmt", ["xml", "application/fhir+json", "JSON", "json&_format=json"])
def test_other_format_values_are_406(client, fmt):
    # An unencoded "+" arrives as a space: refused rather than guessed.
    (issue,) = outcome(client.get(f"/fhir/metadata?_format={fmt}"), 406)
    assert "_format" in issue["diagnostics"]


def test_errors_carry_the_negotiated_version(client):
    r5 = {"Accept": f"{FHIR}; fhirVersion=5.0"}
    response = client.post("/v1/triage", json={}, headers=r5)
    outcome(response, 422)
    assert response.content_type == f"{FHIR}; fhirVersion=5.0"
    response = client.get("/fhir/CodeSystem/nowhere", headers=r5)
    outcome(response, 404)
    assert response.content_type == f"{FHIR}; fhirVersion=5.0"
    r5_model("OperationOutcome").model_validate(response.json)
    response = client.get("/fhir/metadata", headers={"Accept": f"{FHIR}; fhirVersion=3.0"})
    outcome(response, 406)
    assert response.content_type == f"{FHIR}; fhirVersion=4.0"


def test_r5_differences_are_applied(client):
    r5 = {"Accept": f"{FHIR}; fhirVersion=5.0"}
    assert client.get("/fhir/metadata").json["fhirVersion"] == "4.0.1"
    assert client.get("/fhir/metadata", headers=r5).json["fhirVersion"] == "5.0.0"
    path = f"/fhir/Questionnaire/{cs.QUESTIONNAIRE_ID}"
    r4_items = {i["linkId"]: i for i in client.get(path).json["item"]}
    r5_items = {i["linkId"]: i for i in client.get(path, headers=r5).json["item"]}
    assert r4_items["patient.sex"]["type"] == "choice"
    assert "answerConstraint" not in r4_items["patient.sex"]
    assert (r5_items["patient.sex"]["type"], r5_items["patient.sex"]["answerConstraint"]) == (
        "coding",
        "optionsOnly",
    )
    assert r5_items["twitching.body_sites"]["repeats"] is True
    assert r5_items["patient.age_years"] == r4_items["patient.age_years"]
