"""The shared protocol examples, end to end: request → evaluate → FHIR Bundle → checks.

Also checks that every product code a Bundle cites is defined in the product
CodeSystem it names (so the CodeSystems issue 4 publishes resolve every code).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.bundle import Bundle as R5Bundle
from fhir.resources.R4B.bundle import Bundle as R4BBundle

from api.fhir import FhirSettings, questionnaire_response_to_request, render_triage_bundle
from api.fhir import codesystems as cs
from tests.support.conformance import bundle_problems, iter_nodes
from triage import evaluate
from triage import knowledge_base as kb

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "protocol" / "examples-1.1"
CASES = sorted(EXAMPLES.glob("*.json"))
BASE = cs.DEFAULT_CANONICAL_BASE
SPECS = {spec.url(BASE): spec for spec in cs.product_codesystems()}


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _render(request: dict[str, Any], fhir_version: str = "4.0") -> dict[str, Any]:
    bundle = render_triage_bundle(
        request, evaluate(request), settings=FhirSettings(), fhir_version=fhir_version
    )
    return orjson.loads(orjson.dumps(bundle))


def _code_of(concept: dict[str, Any], system: str) -> str:
    return next(c["code"] for c in concept["coding"] if c["system"] == system)


def _url(cs_id: str) -> str:
    return cs.codesystem_url(BASE, cs_id)


def test_there_are_examples():
    assert len(CASES) >= 8


@pytest.fixture(params=CASES, ids=[p.stem for p in CASES])
def case(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _load(request.param)


def test_example_bundle_is_valid_r4_with_the_section9_layout(case):
    bundle = _render(case["request"])
    R4BBundle.model_validate(bundle)
    assert bundle_problems(bundle, canonical_base=BASE) == []


def test_example_bundle_is_valid_r5(case):
    R5Bundle.model_validate(_render(case["request"], fhir_version="5.0"))


def test_example_bundle_carries_the_expected_result(case):
    expected = case["expected"]
    result = evaluate(case["request"])
    bundle = _render(case["request"])
    resources = [entry["resource"] for entry in bundle["entry"]]
    level = resources[1]
    assert _code_of(level["valueCodeableConcept"], _url("triage-level")) == expected["level"]
    rules = [
        _code_of(r["code"], _url("red-flag-rule"))
        for r in resources
        if any(c["system"] == _url("red-flag-rule") for c in r.get("code", {}).get("coding", []))
    ]
    assert rules == list(result.rule_ids)  # the engine's order: most urgent first, table order
    assert sorted(rules) == sorted(expected["rules"])  # the examples list the set
    factor_obs = [
        r
        for r in resources
        if any(
            c["system"] == _url("contributing-factor") for c in r.get("code", {}).get("coding", [])
        )
    ]
    factors = [
        {
            "code": _code_of(r["code"], _url("contributing-factor")),
            "points": r["component"][0]["valueInteger"],
        }
        for r in factor_obs
    ]
    assert [(f["code"], f["points"]) for f in factors] == list(result.factor_points)
    assert sorted(factors, key=str) == sorted(expected["factors"], key=str)
    unanswered = [
        _code_of(c["valueCodeableConcept"], _url("intake-item"))
        for c in level["component"]
        if _code_of(c["code"], _url("triage-observation")) == "unanswered-screen-item"
    ]
    assert unanswered == expected["unanswered"]
    advice = [
        _code_of(c["valueCodeableConcept"], _url("advice"))
        for c in level["component"]
        if _code_of(c["code"], _url("triage-observation")) == "advice"
    ]
    assert advice == list(result.advice_codes)
    assert "ADV-SAFETY-NET" in advice


def test_every_finding_carries_its_evidence(case):
    result = evaluate(case["request"])
    resources = [entry["resource"] for entry in _render(case["request"])["entry"]]
    findings = resources[2:]
    for rule, obs in zip(result.rules, findings, strict=False):
        evidence = list(obs.get("component", []))
        assert [c["code"]["text"] for c in evidence] == [a.path for a in rule.evidence]
        assert [c["code"]["coding"][0]["code"] for c in evidence] == [
            a.link_id for a in rule.evidence
        ]
    for factor, obs in zip(result.factors, findings[len(result.rules) :], strict=True):
        evidence = obs["component"][1:]
        assert [c["code"]["text"] for c in evidence] == [a.path for a in factor.evidence]


def test_every_product_code_is_defined_in_its_codesystem(case):
    bundle = _render(case["request"])
    checked = 0
    for path, node in iter_nodes(bundle):
        if not (isinstance(node, dict) and "system" in node and "code" in node):
            continue
        system = node["system"]
        if not system.startswith(BASE):
            continue
        spec = SPECS.get(system)
        assert spec is not None, f"{path}: {system} is not a product CodeSystem"
        concepts = {c.code: c.display for c in spec.concepts}
        assert node["code"] in concepts, f"{path}: {node['code']} not in {spec.id}"
        if "display" in node:
            assert node["display"] == concepts[node["code"]], path
        checked += 1
    assert checked > 20


def test_example_questionnaire_response_round_trips_to_the_same_triage(case):
    request = case["request"]
    qr = _render(request)["entry"][0]["resource"]
    back = questionnaire_response_to_request(qr, canonical_base=BASE)
    meaning = {k: v for k, v in request.items() if v is not None and v != {}}  # {} = unknown
    assert back == meaning
    before, after = evaluate(request), evaluate(back)
    assert (after.level, after.rule_ids, after.unanswered) == (
        before.level,
        before.rule_ids,
        before.unanswered,
    )


def test_notes_of_examples_are_escaped_in_the_narrative():
    request = _load(EXAMPLES / "seed-roller-skater-as-asked.json")["request"]
    request = {**request, "notes": "<img src=x onerror=alert(1)> & <script>x</script>"}
    bundle = _render(request)
    divs = "".join(e["resource"]["text"]["div"] for e in bundle["entry"])
    assert "<img" not in divs
    assert "<script" not in divs
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &lt;script&gt;x&lt;/script&gt;" in divs


# --- the product CodeSystems ----------------------------------------------------------


def test_codesystem_ids_are_unique_and_cover_the_knowledge_base():
    specs = cs.product_codesystems()
    ids = [spec.id for spec in specs]
    assert len(set(ids)) == len(ids)
    by_id = {spec.id: spec for spec in specs}
    assert [c.code for c in by_id["red-flag-rule"].concepts] == [rule.id for rule in kb.RULES]
    assert [c.code for c in by_id["contributing-factor"].concepts] == [f.code for f in kb.FACTORS]
    assert [c.code for c in by_id["advice"].concepts] == [a.code for a in kb.ADVICE]
    assert [c.code for c in by_id["triage-level"].concepts] == [
        "emergency_ambulance",
        "emergency",
        "consultation_24",
        "consultation",
        "self_care",
    ]
    for cs_id in ("twitching-body-sites", "history-medications-class", "patient-sex"):
        assert cs_id in by_id
    assert cs.item_codesystem_id("activity.fluid_intake") == "activity-fluid-intake"
    assert all(concept.display for spec in specs for concept in spec.concepts)
