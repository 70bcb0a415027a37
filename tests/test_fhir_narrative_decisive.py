"""Decisive questions, respondent and counts in the Bundle (PROTOCOL.md 1.1 §8, §9).

Hand-built results cover every answer kind of a decisive question (yes/no, a
listed value, a number with a unit, an integer) independently of the engine;
the engine's own decisive questions are checked over every shared example.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.bundle import Bundle as R5Bundle
from fhir.resources.R4B.bundle import Bundle as R4BBundle

from api.fhir import LAYOUT_DESCRIPTION, FhirSettings, render_triage_bundle
from api.fhir import codesystems as cs
from tests.support.conformance import bundle_problems
from triage import evaluate, wording
from triage.result import (
    Answer,
    DecisiveQuestion,
    FactorPoint,
    FiredRule,
    GivenAdvice,
    Level,
    Likelihood,
    ReportedFactor,
    TriageResult,
)

BASE = cs.DEFAULT_CANONICAL_BASE
SETTINGS = FhirSettings()
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
XHTML = "{http://www.w3.org/1999/xhtml}"
PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "shared" / "protocol"
EXAMPLE_PATHS = sorted(PROTOCOL_DIR.glob("examples*/*.json"))
EXAMPLE_IDS = [f"{path.parent.name}/{path.stem}" for path in EXAMPLE_PATHS]

REQUEST: dict[str, Any] = {
    "patient": {"age_years": 16, "sex": "female"},
    "activity": {"intensity": "moderate"},
    "twitching": {"body_sites": ["calf"], "duration_days": 1},
    "symptoms": {"fatigue": True},
    "history": {"medications": [{"class": "other", "days_since_start": 1, "doses_per_day": 1}]},
}
DECISIVE = (
    DecisiveQuestion("symptoms.confusion", True, Level.EMERGENCY_AMBULANCE, ("RF-CONFUSION",)),
    DecisiveQuestion(
        "history.medications",
        ({"class": "anticoagulant"},),
        Level.EMERGENCY,
        ("RF-HEAD-ANTICOAGULATED",),
    ),
    DecisiveQuestion(
        "blood_glucose_mmol_l", 3.9, Level.CONSULTATION_24, ("RF-LOW-GLUCOSE", "RF-HYPOGLYCAEMIA")
    ),
    DecisiveQuestion("activity.session_minutes", 180, Level.CONSULTATION, ()),
    DecisiveQuestion("activity.intensity", "maximal", Level.CONSULTATION, ()),
    DecisiveQuestion("history.conditions", ("sickle_cell_trait",), Level.EMERGENCY, ("RF-X",)),
    DecisiveQuestion("twitching.body_sites", (), Level.CONSULTATION, ()),
)
UNANSWERED = (
    "symptoms.confusion",
    "history.medications",
    "blood_glucose_mmol_l",
    "activity.session_minutes",
    "activity.intensity",
    "history.conditions",
    "twitching.body_sites",
    "symptoms.drowsiness",
)


def _result(decisive: tuple[DecisiveQuestion, ...] = DECISIVE) -> TriageResult:
    screen = FiredRule(
        "RF-SCREEN-INCOMPLETE",
        Level.CONSULTATION,
        "Red-flag screen incomplete",
        "Danger signs have not been asked about.",
        "NHS: muscle twitches",
        None,
        tuple(Answer(link_id, None, link_id) for link_id in UNANSWERED),
    )
    load = ReportedFactor(
        "CF-TRAINING-LOAD",
        "Training load",
        "Tired muscles twitch more.",
        1,
        Likelihood.LOW,
        (FactorPoint(1, "Tiredness", (Answer("symptoms.fatigue", True, "symptoms.fatigue"),)),),
        None,
    )
    return TriageResult(
        Level.CONSULTATION,
        (screen,),
        (load,),
        (GivenAdvice("ADV-SAFETY-NET", "Safety net", "Escalate if worse.", ("always",)),),
        UNANSWERED,
        "1.1.0",
        decisive,
    )


def _render(request: dict[str, Any] | None = None, result: TriageResult | None = None, **kw: Any):
    bundle = render_triage_bundle(
        request if request is not None else REQUEST,
        result if result is not None else _result(),
        settings=SETTINGS,
        now=NOW,
        **kw,
    )
    return orjson.loads(orjson.dumps(bundle))


def _url(cs_id: str) -> str:
    return cs.codesystem_url(BASE, cs_id)


def _codes(concept: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["system"], c["code"]) for c in concept["coding"]]


def _decisive_components(level: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        c
        for c in level["component"]
        if (_url("triage-observation"), "decisive-question") in _codes(c["code"])
    ]


def _text(div: str) -> str:
    root = ET.fromstring(div)  # noqa: S314 - our own output
    return " ".join(" ".join(root.itertext()).split())


# --- the coded decisive questions -----------------------------------------------------


def test_one_coded_component_per_decisive_question_in_order():
    level = _render()["entry"][1]["resource"]
    components = _decisive_components(level)
    assert [_codes(c["code"]) for c in components] == [
        [(_url("triage-observation"), "decisive-question"), (_url("intake-item"), q.link_id)]
        for q in DECISIVE
    ]
    assert [c["code"]["text"] for c in components] == [q.link_id for q in DECISIVE]
    # The level each answer alone would give comes first, then the rules it would fire.
    assert [_codes(c["interpretation"][0]) for c in components] == [
        [(_url("triage-level"), q.level.code)] for q in DECISIVE
    ]
    assert [[_codes(i)[0][1] for i in c["interpretation"][1:]] for c in components] == [
        list(q.rule_ids) for q in DECISIVE
    ]
    assert all(
        _codes(i)[0][0] == _url("red-flag-rule")
        for c in components
        for i in c["interpretation"][1:]
    )


def test_the_deciding_answer_is_typed_like_evidence():
    components = _decisive_components(_render()["entry"][1]["resource"])
    confusion, medication, glucose, session, intensity, condition, sites = components
    assert confusion["valueBoolean"] is True
    assert _codes(medication["valueCodeableConcept"]) == [
        (_url("history-medications-class"), "anticoagulant")
    ]
    assert glucose["valueQuantity"] == {
        "value": 3.9,
        "unit": "mmol/L",
        "system": cs.UCUM,
        "code": "mmol/L",
    }
    assert session["valueInteger"] == 180
    assert _codes(intensity["valueCodeableConcept"]) == [(_url("activity-intensity"), "maximal")]
    assert _codes(condition["valueCodeableConcept"]) == [
        (_url("history-conditions"), "sickle_cell_trait")
    ]
    # "None" (an empty list) is a coded answer too.
    assert _codes(sites["valueCodeableConcept"]) == [(_url("triage-observation"), "none")]
    for component in components:
        assert sum(key.startswith("value") for key in component) == 1


def test_decisive_components_sit_after_the_unanswered_items_and_before_the_version():
    level = _render()["entry"][1]["resource"]
    kinds = [_codes(c["code"])[0][1] for c in level["component"]]
    assert kinds == (
        ["advice"]
        + ["unanswered-screen-item"] * len(UNANSWERED)
        + ["decisive-question"] * len(DECISIVE)
        + ["knowledge-base-version"]
    )


def test_a_bundle_with_decisive_questions_is_valid_fhir():
    bundle = _render()
    R4BBundle.model_validate(bundle)
    R5Bundle.model_validate(_render(fhir_version="5.0"))
    assert bundle_problems(bundle, canonical_base=BASE) == []


def test_no_decisive_questions_no_components():
    level = _render(result=_result(()))["entry"][1]["resource"]
    assert _decisive_components(level) == []
    assert "→" not in level["text"]["div"]


def test_decisive_question_code_is_published():
    spec = next(s for s in cs.product_codesystems() if s.id == cs.TRIAGE_OBSERVATION)
    assert "decisive-question" in {c.code for c in spec.concepts}
    assert "decisive-question" in LAYOUT_DESCRIPTION


# --- the narrative --------------------------------------------------------------------


def test_next_questions_are_questions_with_the_deciding_answer_and_its_level():
    text = _text(_render()["entry"][1]["resource"]["text"]["div"])
    expected = [
        f"{wording.question('symptoms.confusion')} If yes → Call an ambulance",
        f"{wording.question('history.medications')} If the answer includes "
        f"{wording.answer_text('history.medications.class', 'anticoagulant')} → "
        "Go to the emergency department",
        f"{wording.question('blood_glucose_mmol_l')} If the answer is "
        f"{wording.answer_text('blood_glucose_mmol_l', 3.9)} → See a clinician within 24 hours",
        f"{wording.question('activity.session_minutes')} If the answer is "
        f"{wording.answer_text('activity.session_minutes', 180)} → See a clinician",
        f"{wording.question('activity.intensity')} If the answer is "
        f"{wording.answer_text('activity.intensity', 'maximal')} → See a clinician",
        f"{wording.question('history.conditions')} If the answer includes "
        f"{wording.answer_text('history.conditions', 'sickle_cell_trait')} → "
        "Go to the emergency department",
        f"{wording.question('twitching.body_sites')} If none → See a clinician",
    ]
    positions = [text.index(line) for line in expected]
    assert positions == sorted(positions)
    # An unknown item without a deciding answer is still asked, as a question.
    assert wording.question("symptoms.drowsiness") in text
    assert text.index(wording.question("symptoms.drowsiness")) > positions[-1]


def test_respondent_is_shown_in_the_answers_and_the_summary():
    given = _render({**REQUEST, "respondent": "parent_or_carer"})
    shown = wording.answer_text("respondent", "parent_or_carer")
    for resource in (given["entry"][0]["resource"], given["entry"][1]["resource"]):
        text = _text(resource["text"]["div"])
        assert f"Answers given by: {shown}." in text
        assert text.count(wording.label("respondent")) == 1  # said once, at the top
    qr_items = {item["linkId"]: item for item in given["entry"][0]["resource"]["item"]}
    assert [
        (a["valueCoding"]["system"], a["valueCoding"]["code"])
        for a in qr_items["respondent"]["answer"]
    ] == [(_url("respondent"), "parent_or_carer")]
    unknown = _render()
    for resource in (unknown["entry"][0]["resource"], unknown["entry"][1]["resource"]):
        assert "Answers given by: not recorded." in _text(resource["text"]["div"])


def test_counts_are_grammatical():
    bundle = _render()
    qr_text = _text(bundle["entry"][0]["resource"]["text"]["div"])
    assert f"started {wording.count(1, 'day')} ago" in qr_text
    assert f"{wording.count(1, 'dose')} per day" in qr_text
    factor_text = _text(bundle["entry"][3]["resource"]["text"]["div"])
    assert f"{wording.count(1, 'point')}, likelihood low" in factor_text
    assert wording.count(1, "day") == "1 day"
    assert wording.count(2, "day") == "2 days"


def test_evidence_is_shown_as_question_and_answer():
    bundle = _render()
    factor_text = _text(bundle["entry"][3]["resource"]["text"]["div"])
    fatigue = Answer("symptoms.fatigue", True, "symptoms.fatigue")
    assert wording.evidence_text(fatigue) in factor_text
    screen_text = _text(bundle["entry"][2]["resource"]["text"]["div"])
    for link_id in UNANSWERED:
        assert wording.evidence_text(Answer(link_id, None, link_id)) in screen_text


# --- the engine's decisive questions, end to end ---------------------------------------


@pytest.mark.parametrize("path", EXAMPLE_PATHS, ids=EXAMPLE_IDS)
def test_engine_decisive_questions_are_in_the_bundle_and_its_narrative(path):
    request = json.loads(path.read_text(encoding="utf-8"))["request"]
    result = evaluate(request)
    bundle = _render(request, result)
    level = bundle["entry"][1]["resource"]
    components = _decisive_components(level)
    assert [
        (_codes(c["code"])[1][1], _codes(c["interpretation"][0])[0][1]) for c in components
    ] == [(q.link_id, q.level.code) for q in result.decisive]
    assert {q.link_id for q in result.decisive} <= set(result.unanswered)
    text = _text(level["text"]["div"])
    for question in result.decisive:
        assert f"→ {question.level.display}" in text
        assert wording.question(question.link_id) in text
