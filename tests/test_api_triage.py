"""POST /v1/triage end to end: the shared worked examples through HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api import create_app
from triage import KNOWLEDGE_BASE_VERSION

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "shared" / "protocol" / "examples-1.1"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.json"))
BASE = "https://twitch-triage.org/fhir"
LOINC_TRIAGE = ("http://loinc.org", "11283-9")


def test_the_examples_are_there():
    assert len(EXAMPLES) >= 8, f"worked examples missing in {EXAMPLES_DIR}"


def codes(concept: dict[str, Any], system: str) -> list[str]:
    return [c["code"] for c in concept.get("coding", []) if c.get("system") == system]


def level_observation(bundle: dict[str, Any]) -> dict[str, Any]:
    (found,) = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and any(
            (c.get("system"), c.get("code")) == LOINC_TRIAGE
            for c in e["resource"]["code"]["coding"]
        )
    ]
    return found


def fired_rules(bundle: dict[str, Any], base: str = BASE) -> list[str]:
    system = f"{base}/CodeSystem/red-flag-rule"
    return [
        code
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
        for code in codes(e["resource"]["code"], system)
    ]


def unanswered(level: dict[str, Any], base: str = BASE) -> list[str]:
    kind = f"{base}/CodeSystem/triage-observation"
    return [
        c["valueCodeableConcept"]["coding"][0]["code"]
        for c in level.get("component", [])
        if "unanswered-screen-item" in codes(c["code"], kind)
    ]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_worked_example_through_http(post_triage, path):
    case = json.loads(path.read_text(encoding="utf-8"))
    response = post_triage(case["request"])
    assert response.status_code == 200, response.data
    assert response.headers["Content-Type"] == "application/fhir+json; fhirVersion=4.0"
    bundle = json.loads(response.data)
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "collection"
    level = level_observation(bundle)
    expected = case["expected"]
    assert codes(level["valueCodeableConcept"], f"{BASE}/CodeSystem/triage-level") == [
        expected["level"]
    ]
    assert sorted(fired_rules(bundle)) == sorted(expected["rules"])  # the examples list a set
    assert unanswered(level) == expected["unanswered"]
    (questionnaire_response,) = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "QuestionnaireResponse"
    ]
    assert questionnaire_response["status"] == "completed"


def test_the_request_is_echoed_only_as_given(post_triage):
    """A null answer is unknown: it leaves no item in the QuestionnaireResponse."""
    request = {
        "patient": {"age_years": 30, "sex": None},
        "twitching": {"body_sites": ["calf"]},
        "symptoms": {"headache": None, "fatigue": True},
    }
    bundle = json.loads(post_triage(request).data)
    (qr,) = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "QuestionnaireResponse"
    ]
    link_ids = {item["linkId"] for item in qr.get("item", [])}
    assert "symptoms.fatigue" in link_ids
    assert "symptoms.headache" not in link_ids
    assert "patient.sex" not in link_ids


def test_integral_float_answer_is_rendered_as_an_integer(post_triage):
    bundle = json.loads(
        post_triage({"patient": {"age_years": 30.0}, "twitching": {"body_sites": ["calf"]}}).data
    )
    (qr,) = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "QuestionnaireResponse"
    ]
    (age,) = [item for item in qr["item"] if item["linkId"] == "patient.age_years"]
    assert age["answer"] == [{"valueInteger": 30}]


def test_canonical_base_comes_from_configuration(monkeypatch):
    monkeypatch.setenv("TWITCH_TRIAGE_CANONICAL_BASE", "https://fhir.example.org/tt/")
    client = create_app({"TESTING": True}).test_client()
    case = json.loads(EXAMPLES[0].read_text(encoding="utf-8"))
    bundle = json.loads(client.post("/v1/triage", json=case["request"]).data)
    level = level_observation(bundle)
    base = "https://fhir.example.org/tt"
    assert codes(level["valueCodeableConcept"], f"{base}/CodeSystem/triage-level")
    assert "twitch-triage.org" not in json.dumps(bundle)


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.data) == {
        "status": "ok",
        "knowledge_base_version": KNOWLEDGE_BASE_VERSION,
    }


def test_openapi_document_is_served(client):
    response = client.get("/openapi.yaml")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/yaml")
    committed = (Path(__file__).resolve().parents[1] / "openapi.yaml").read_bytes()
    assert response.data == committed
