"""The published conformance resources: Questionnaire, terminology, CapabilityStatement (issue 4).

The Questionnaire must be the vocabulary (one item per request field, same
types, codes, units, ranges and help), its ``url|version`` must be what our
QuestionnaireResponses cite, and every QuestionnaireResponse we emit must
answer it: an independent, Questionnaire-driven checker below verifies that for
the shared examples and for generated requests.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from examples import EXAMPLE_IDS, EXAMPLES
from fhir.resources.R4B import get_fhir_model_class as r4b_model
from hypothesis import HealthCheck, given, settings
from strategies import requests

from api import create_app
from api.config import EXTENSION
from api.fhir import FhirSettings, render_triage_bundle
from api.fhir import codesystems as cs
from api.fhir.catalog import CAPABILITY_ID, catalog
from api.fhir.questionnaire import (
    EXT_MAX_VALUE,
    EXT_MIN_VALUE,
    EXT_REGEX,
    EXT_UNIT,
    help_link_id,
)
from api.fhir.questionnaire_response import GATES
from tests.support.conformance import iter_nodes
from triage import KNOWLEDGE_BASE_VERSION, evaluate
from triage.knowledge_base import RULES, SCREEN
from triage.vocabulary import ITEMS, SECTIONS, TOP_LEVEL_ITEMS, Item, Kind
from triage.wording import help_text, question

BASE = cs.DEFAULT_CANONICAL_BASE
FHIR = "application/fhir+json"
PUBLISHED = catalog(BASE).resources["4.0"]
QUESTIONNAIRE = PUBLISHED[("Questionnaire", cs.QUESTIONNAIRE_ID)]
TYPES = {
    Kind.BOOLEAN: "boolean",
    Kind.INTEGER: "integer",
    Kind.DECIMAL: "decimal",
    Kind.CODE: "choice",
    Kind.CODES: "choice",
    Kind.REFERENCE: "string",
    Kind.GROUP: "group",
}


def _questions(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """linkId → item, every non-display item at any depth."""
    out = {}
    for item in items:
        if item["type"] != "display":
            out[item["linkId"]] = item
        out.update(_questions(item.get("item", [])))
    return out


QUESTIONS = _questions(QUESTIONNAIRE["item"])


def _extension(item: dict[str, Any], url: str) -> dict[str, Any] | None:
    return next((e for e in item.get("extension", []) if e["url"] == url), None)


def _help(item: dict[str, Any]) -> str | None:
    for child in item.get("item", []):
        if child["type"] == "display" and child["linkId"] == help_link_id(item["linkId"]):
            return child["text"]
    return None


# --- the Questionnaire is the vocabulary -------------------------------------------------


def test_questionnaire_identity_is_what_our_responses_cite(client):
    assert QUESTIONNAIRE["url"] == cs.questionnaire_url(BASE)
    assert QUESTIONNAIRE["version"] == KNOWLEDGE_BASE_VERSION
    cited = client.post("/v1/triage", json=EXAMPLES[0][1]["request"]).json["entry"][0]
    assert (
        cited["resource"]["questionnaire"] == f"{QUESTIONNAIRE['url']}|{QUESTIONNAIRE['version']}"
    )
    assert QUESTIONNAIRE["status"] == "active"
    r4b_model("Questionnaire").model_validate(QUESTIONNAIRE)


def test_items_are_flat_in_vocabulary_order_with_medications_as_a_group():
    top = [i["linkId"] for i in QUESTIONNAIRE["item"]]
    vocabulary = [item.link_id for s in SECTIONS for item in s.items] + [
        item.link_id for item in TOP_LEVEL_ITEMS
    ]
    # Each list that can be "none" is opened by its yes/no question, just before it.
    gate_of = {list_id: gate for gate, list_id in GATES.items()}
    expected = []
    for link_id in vocabulary:
        if link_id in gate_of:
            expected.append(gate_of[link_id])
        expected.append(link_id)
    assert top == expected
    group = QUESTIONS["history.medications"]
    assert [c["linkId"] for c in group["item"] if c["type"] != "display"] == [
        "history.medications.class",
        "history.medications.days_since_start",
        "history.medications.doses_per_day",
    ]
    assert set(QUESTIONS) == set(ITEMS) | set(GATES)


@pytest.mark.parametrize("link_id", sorted(ITEMS))
def test_item_matches_its_vocabulary_definition(link_id):
    vocab: Item = ITEMS[link_id]
    item = QUESTIONS[link_id]
    assert item["text"] == question(link_id)
    assert item["text"].endswith("?")
    expected_type = TYPES.get(vocab.kind) or ("text" if (vocab.max_length or 0) > 255 else "string")
    assert item["type"] == expected_type
    assert item.get("repeats", False) is (vocab.kind in (Kind.CODES, Kind.GROUP))
    assert item.get("maxLength") == vocab.max_length
    assert item["code"] == [
        {"system": f"{BASE}/CodeSystem/intake-item", "code": link_id, "display": vocab.text}
    ]
    unit = _extension(item, EXT_UNIT)
    if vocab.unit is None:
        assert unit is None
    else:
        assert unit["valueCoding"] == {
            "system": "http://unitsofmeasure.org",
            "code": vocab.unit.code,
            "display": vocab.unit.display,
        }
    for url, bound in ((EXT_MIN_VALUE, vocab.minimum), (EXT_MAX_VALUE, vocab.maximum)):
        found = _extension(item, url)
        if bound is None:
            assert found is None
        else:
            key = "valueInteger" if vocab.kind is Kind.INTEGER else "valueDecimal"
            assert found == {"url": url, key: bound}
    if vocab.codes:
        system = f"{BASE}/CodeSystem/{cs.item_codesystem_id(link_id)}"
        assert [o["valueCoding"] for o in item["answerOption"]] == [
            {"system": system, "code": c.code, "display": c.display} for c in vocab.codes
        ]
        selected = [
            o["valueCoding"]["code"] for o in item["answerOption"] if o.get("initialSelected")
        ]
        assert selected == ([vocab.default] if vocab.default else [])
    else:
        assert "answerOption" not in item
    # No minOccurs/maxOccurs: the HL7 validator counts them off by one.
    assert not any("Occurs" in e["url"] for e in item.get("extension", []))
    if vocab.pattern is not None:
        assert re.fullmatch(_extension(item, EXT_REGEX)["valueString"], "Patient/a-1.b")
    if help_text(link_id) is not None:
        assert help_text(link_id) in _help(item)


def test_required_is_only_what_the_request_needs_and_the_screen_says_so_in_help():
    """A required screen question would push a person who does not know into a no, and
    a completed QuestionnaireResponse with unknown screen answers would not conform."""
    schema_required = {link_id for link_id, item in ITEMS.items() if item.required}
    required = {link_id for link_id, item in QUESTIONS.items() if item.get("required")}
    assert required == schema_required
    assert required == {"patient.age_years", "twitching.body_sites", "history.medications.class"}
    gate_of = {listed: gate for gate, listed in GATES.items()}
    for screen in SCREEN:
        asked = QUESTIONS[gate_of.get(screen.link_id, screen.link_id)]
        assert "matters for safety" in _help(asked) or "Important for safety" in _help(asked)
        assert "unknown, not no" in _help(asked), screen.link_id
    always = [s.link_id for s in SCREEN if s.required_when is None]
    assert "Important for safety" in _help(QUESTIONS[always[0]])
    assert "After some answers" in _help(QUESTIONS["symptoms.fainting_during_exercise"])
    for listed in GATES.values():  # the yes/no question carries the help, not the list
        assert "for safety" not in (_help(QUESTIONS[listed]) or "")


def _rule_inputs() -> set[str]:
    """Every linkId a red-flag rule's trigger mentions (from its description)."""
    text = " ".join(rule.fires_when() for rule in RULES if not rule.from_screen)
    return {link_id for link_id in ITEMS if link_id.rsplit(".", 1)[-1] in text}


def test_enable_when_only_on_true_follow_ups():
    conditional = {
        link_id: item["enableWhen"] for link_id, item in QUESTIONS.items() if "enableWhen" in item
    }
    assert conditional == {
        "history.medications.days_since_start": [
            {"question": "history.medications.class", "operator": "exists", "answerBoolean": True}
        ],
        "history.medications.doses_per_day": [
            {"question": "history.medications.class", "operator": "exists", "answerBoolean": True}
        ],
        "history.medications": [
            {"question": "history.medications.any", "operator": "=", "answerBoolean": True}
        ],
        "history.conditions": [
            {"question": "history.conditions.any", "operator": "=", "answerBoolean": True}
        ],
    }
    # Never a symptom (rules read them, and a caller may give any without another).
    assert not any(link_id.startswith("symptoms.") for link_id in conditional)
    for link_id, (condition,) in conditional.items():
        assert condition["question"] in QUESTIONS, link_id


@pytest.mark.parametrize("gate", sorted(GATES))
def test_lists_open_with_a_yes_no_question_so_a_form_can_say_none(gate):
    item = QUESTIONS[gate]
    assert item["type"] == "boolean"
    assert item["text"] == question(gate)
    assert item["text"].endswith("?")
    assert "required" not in item  # never blocks a form
    assert gate not in ITEMS  # not a vocabulary path: the request has no such field
    listed = QUESTIONS[GATES[gate]]
    assert listed["enableWhen"] == [{"question": gate, "operator": "=", "answerBoolean": True}]
    assert listed["repeats"] is True
    # Nothing required inside the group can block a form whose answer is no: the whole
    # group is disabled then, and SDC renderers skip disabled items in validation.
    assert "none" in QUESTIONNAIRE["description"].lower()
    # Where the list is part of the screen, the question that opens it says so.
    if any(s.link_id == GATES[gate] and s.required_when is not None for s in SCREEN):
        assert "matters for safety" in _help(item)


def test_description_documents_the_conventions():
    description = QUESTIONNAIRE["description"]
    for needle in ("Empty list", "present with no answer", "Unknown", "enableWhen", "required"):
        assert needle in description
    assert help_link_id("x") not in ITEMS


def test_patient_reference_is_hidden_for_renderers():
    item = QUESTIONS["patient.reference"]
    assert {
        "url": "http://hl7.org/fhir/StructureDefinition/questionnaire-hidden",
        "valueBoolean": True,
    } in item["extension"]


# --- every QuestionnaireResponse we emit answers the Questionnaire -----------------------


def _answer_problems(item: dict[str, Any], answer: dict[str, Any], where: str) -> list[str]:
    """An independent reading of the Questionnaire item: type, options, range, length."""
    kind = item["type"]
    value_keys = [k for k in answer if k.startswith("value")]
    expected = {
        "boolean": "valueBoolean",
        "integer": "valueInteger",
        "decimal": "valueDecimal",
        "choice": "valueCoding",
        "string": "valueString",
        "text": "valueString",
    }[kind]
    if value_keys != [expected]:
        return [f"{where}: {value_keys} for a {kind} item"]
    value = answer[expected]
    problems = []
    if kind == "choice" and value not in [o["valueCoding"] for o in item["answerOption"]]:
        problems.append(f"{where}: {value} is not an answerOption")
    low, high = _extension(item, EXT_MIN_VALUE), _extension(item, EXT_MAX_VALUE)
    if low and value < next(v for k, v in low.items() if k != "url"):
        problems.append(f"{where}: below minValue")
    if high and value > next(v for k, v in high.items() if k != "url"):
        problems.append(f"{where}: above maxValue")
    if "maxLength" in item and len(value) > item["maxLength"]:
        problems.append(f"{where}: longer than maxLength")
    regex = _extension(item, EXT_REGEX)
    if regex and not re.fullmatch(regex["valueString"], value):
        problems.append(f"{where}: does not match the regex")
    return problems


def answers_problems(
    qr_items: list[dict[str, Any]], q_items: list[dict[str, Any]], where: str
) -> list[str]:
    """Problems of QuestionnaireResponse items against the Questionnaire items at one level.

    As the HL7 validator reads a ``completed`` response: items in Questionnaire order, no
    answers to an item its ``enableWhen`` disables, every enabled ``required`` item there.
    """
    by_link = {i["linkId"]: i for i in q_items if i["type"] != "display"}
    order = {link_id: n for n, link_id in enumerate(by_link)}
    given = {node["linkId"]: node.get("answer", []) for node in qr_items}
    problems = []
    seen: dict[str, int] = {}
    last = -1
    for index, node in enumerate(qr_items):
        here = f"{where}.item[{index}]"
        item = by_link.get(node["linkId"])
        if item is None:
            problems.append(f"{here}: linkId {node['linkId']} is not in the Questionnaire")
            continue
        if order[node["linkId"]] < last:
            problems.append(f"{here}: {node['linkId']} out of Questionnaire order")
        last = order[node["linkId"]]
        if (node.get("answer") or node.get("item")) and not _enabled(item, given):
            problems.append(f"{here}: {node['linkId']} answered while not enabled")
        seen[node["linkId"]] = seen.get(node["linkId"], 0) + 1
        if seen[node["linkId"]] > 1 and not item.get("repeats"):
            problems.append(f"{here}: {node['linkId']} does not repeat")
        if node.get("text", item["text"]) != item["text"]:
            problems.append(f"{here}: text differs from the Questionnaire")
        answers = node.get("answer", [])
        if item["type"] == "group":
            if answers:
                problems.append(f"{here}: a group has no answers")
            problems += answers_problems(node.get("item", []), item["item"], here)
            continue
        if len(answers) > 1 and not item.get("repeats"):
            problems.append(f"{here}: several answers to a non-repeating item")
        for j, answer in enumerate(answers):
            problems += _answer_problems(item, answer, f"{here}.answer[{j}]")
    answered = {node["linkId"] for node in qr_items if node.get("answer") or node.get("item")}
    problems += [
        f"{where}: required {link_id} not answered"
        for link_id, item in by_link.items()
        if item.get("required") and link_id not in answered and _enabled(item, given)
    ]
    return problems


def _enabled(item: dict[str, Any], given: dict[str, list[dict[str, Any]]]) -> bool:
    """Whether ``item``'s enableWhen (one condition, as ours all are) holds on ``given``."""
    conditions = item.get("enableWhen", [])
    assert len(conditions) <= 1, item["linkId"]  # enableBehavior would be needed
    for condition in conditions:
        answers = given.get(condition["question"], [])
        if condition["operator"] == "exists":
            return bool(answers) == condition["answerBoolean"]
        assert condition["operator"] == "=", condition
        return any(a.get("valueBoolean") == condition["answerBoolean"] for a in answers)
    return True


def _emitted_qr(request: dict[str, Any]) -> dict[str, Any]:
    bundle = render_triage_bundle(request, evaluate(request), settings=FhirSettings())
    return json.loads(json.dumps(bundle["entry"][0]["resource"]))


@pytest.mark.parametrize("case", [case for _, case in EXAMPLES], ids=EXAMPLE_IDS)
def test_example_questionnaire_responses_answer_the_questionnaire(case):
    qr = _emitted_qr(case["request"])
    assert qr["questionnaire"] == f"{QUESTIONNAIRE['url']}|{QUESTIONNAIRE['version']}"
    assert (
        answers_problems(qr.get("item", []), QUESTIONNAIRE["item"], "QuestionnaireResponse") == []
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests())
def test_every_emitted_questionnaire_response_answers_the_questionnaire(request):
    qr = _emitted_qr(request)
    assert (
        answers_problems(qr.get("item", []), QUESTIONNAIRE["item"], "QuestionnaireResponse") == []
    )


def test_the_checker_catches_a_mismatch():
    qr = _emitted_qr({"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}})
    qr["item"][0]["answer"][0]["valueInteger"] = 121
    qr["item"].append({"linkId": "symptoms.nope", "answer": [{"valueBoolean": True}]})
    found = answers_problems(qr["item"], QUESTIONNAIRE["item"], "QR")
    assert found == [
        "QR.item[0].answer[0]: above maxValue",
        "QR.item[2]: linkId symptoms.nope is not in the Questionnaire",
    ]
    # What the HL7 validator also reports: order, disabled answers, required items.
    listed = _emitted_qr(
        {
            "patient": {"age_years": 30},
            "twitching": {"body_sites": ["calf"]},
            "history": {"conditions": ["asthma"]},
        }
    )
    items = [i for i in listed["item"] if i["linkId"] != "history.conditions.any"]
    items.reverse()
    assert answers_problems(items[:-1], QUESTIONNAIRE["item"], "QR") == [
        "QR.item[0]: history.conditions answered while not enabled",
        "QR.item[1]: twitching.body_sites out of Questionnaire order",
        "QR: required patient.age_years not answered",
    ]


# --- terminology: every code we cite resolves ----------------------------------------------


def _concepts(client, system: str) -> dict[str, str]:
    assert system.startswith(f"{BASE}/CodeSystem/"), system
    response = client.get(f"/fhir/CodeSystem/{system.rsplit('/', 1)[1]}")
    assert response.status_code == 200, system
    return {c["code"]: c["display"] for c in response.json["concept"]}


def test_every_product_coding_resolves_through_the_api(client):
    resources = [QUESTIONNAIRE]
    for _, case in EXAMPLES:
        resources.append(client.post("/v1/triage", json=case["request"]).json)
    cache: dict[str, dict[str, str]] = {}
    checked = 0
    for resource in resources:
        for path, node in iter_nodes(resource):
            if isinstance(node, dict) and str(node.get("system", "")).startswith(BASE):
                concepts = cache.setdefault(node["system"], _concepts(client, node["system"]))
                assert node["code"] in concepts, path
                assert node.get("display", concepts[node["code"]]) == concepts[node["code"]], path
                checked += 1
    assert checked > 200


def test_each_codesystem_has_its_valueset(client):
    ids = catalog(BASE).ids("CodeSystem")
    assert ids == catalog(BASE).ids("ValueSet")
    assert len(ids) == len(cs.product_codesystems())
    for resource_id in ids:
        code_system = client.get(f"/fhir/CodeSystem/{resource_id}").json
        value_set = client.get(f"/fhir/ValueSet/{resource_id}").json
        assert code_system["url"] == f"{BASE}/CodeSystem/{resource_id}"
        assert code_system["content"] == "complete"
        assert code_system["count"] == len(code_system["concept"])
        assert code_system["valueSet"] == value_set["url"] == f"{BASE}/ValueSet/{resource_id}"
        assert value_set["compose"]["include"] == [
            {"system": code_system["url"], "version": code_system["version"]}
        ]
        assert re.fullmatch(r"[A-Z][A-Za-z0-9_]{0,254}", code_system["name"])
        r4b_model("CodeSystem").model_validate(code_system)
        r4b_model("ValueSet").model_validate(value_set)


def test_knowledge_base_codesystem_version_is_the_cited_one(client):
    code_system = client.get(f"/fhir/CodeSystem/{cs.KNOWLEDGE_BASE}").json
    bundle = client.post("/v1/triage", json=EXAMPLES[0][1]["request"]).json
    (method,) = bundle["entry"][1]["resource"]["method"]["coding"]
    assert method["version"] == code_system["version"] == KNOWLEDGE_BASE_VERSION


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/CodeSystem/nowhere",
        "/fhir/ValueSet/nowhere",
        "/fhir/Questionnaire/other",
        "/fhir/OperationDefinition/other",
        "/fhir/Patient/1",
        "/fhir/CapabilityStatement/twitch-triage",
    ],
)
def test_unknown_resources_are_404_not_found(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.content_type.startswith(FHIR)
    (issue,) = response.json["issue"]
    assert issue["code"] == "not-found"


# --- CapabilityStatement and OperationDefinition -----------------------------------------


def test_capability_statement_lists_what_is_served(client):
    statement = client.get("/fhir/metadata").json
    assert (statement["status"], statement["kind"], statement["fhirVersion"]) == (
        "active",
        "instance",
        "4.0.1",
    )
    assert statement["format"] == ["application/fhir+json", "json"]
    (rest,) = statement["rest"]
    assert rest["mode"] == "server"
    by_type = {r["type"]: r for r in rest["resource"]}
    for resource_type in ("Questionnaire", "CodeSystem", "ValueSet", "OperationDefinition"):
        assert by_type[resource_type]["interaction"] == [{"code": "read"}]
        for resource_id in catalog(BASE).ids(resource_type):
            assert client.get(f"/fhir/{resource_type}/{resource_id}").status_code == 200
    (operation,) = by_type["QuestionnaireResponse"]["operation"]
    assert operation["name"] == "triage"
    definition = client.get(
        "/fhir/OperationDefinition/" + operation["definition"].rsplit("/", 1)[1]
    ).json
    assert definition["url"] == operation["definition"]
    r4b_model("CapabilityStatement").model_validate(statement)


def test_triage_operation_definition(client):
    definition = client.get("/fhir/OperationDefinition/QuestionnaireResponse-triage").json
    assert {
        k: definition[k] for k in ("kind", "code", "resource", "system", "type", "instance")
    } == {
        "kind": "operation",
        "code": "triage",
        "resource": ["QuestionnaireResponse"],
        "system": False,
        "type": True,
        "instance": False,
    }
    assert [
        (p["name"], p["use"], p["min"], p["max"], p["type"]) for p in definition["parameter"]
    ] == [
        ("resource", "in", 1, "1", "QuestionnaireResponse"),
        ("return", "out", 1, "1", "Bundle"),
    ]
    r4b_model("OperationDefinition").model_validate(definition)


def test_canonical_base_is_configuration(monkeypatch):
    monkeypatch.delenv("TWITCH_TRIAGE_CANONICAL_BASE", raising=False)
    base = "https://fhir.example.org/triage"
    client = create_app({"TESTING": True, "CANONICAL_BASE": base}).test_client()
    statement = client.get("/fhir/metadata").json
    operation = statement["rest"][0]["resource"][-1]["operation"][0]["definition"]
    assert operation == f"{base}/OperationDefinition/QuestionnaireResponse-triage"
    questionnaire = client.get(f"/fhir/Questionnaire/{cs.QUESTIONNAIRE_ID}").json
    assert questionnaire["url"] == f"{base}/Questionnaire/{cs.QUESTIONNAIRE_ID}"
    published = json.dumps(questionnaire)
    assert cs.DEFAULT_CANONICAL_BASE not in published
    # The QuestionnaireResponse it emits cites it, and $triage takes it back.
    request = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}
    qr = client.post("/v1/triage", json=request).json["entry"][0]["resource"]
    assert qr["questionnaire"] == f"{questionnaire['url']}|{questionnaire['version']}"
    response = client.post(
        "/fhir/QuestionnaireResponse/$triage", data=json.dumps(qr), content_type=FHIR
    )
    assert response.status_code == 200


def test_published_resources_are_built_once_per_app():
    # Built at create_app and kept on the app (not in a module cache keyed by base).
    app = create_app({"TESTING": True})
    built = app.extensions[EXTENSION].fhir.catalog
    one = app.test_client().get("/fhir/metadata").data
    assert app.extensions[EXTENSION].fhir.catalog is built
    assert one == built.body("CapabilityStatement", CAPABILITY_ID)  # served from it
    two = create_app({"TESTING": True}).test_client().get("/fhir/metadata").data
    assert one == two  # deterministic: no time or host in the content
