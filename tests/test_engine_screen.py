"""The minimum red-flag screen of PROTOCOL.md §5, written out independently here."""

from __future__ import annotations

from typing import Any

from engine_cases import SCREENED_SYMPTOMS, request, screened
from hypothesis import given, settings
from strategies import requests

from triage import evaluate
from triage.result import Level

ALWAYS = [
    *(f"symptoms.{name}" for name in SCREENED_SYMPTOMS),
    "history.head_impact",
]
AFTER_HEAD_IMPACT = [
    "symptoms.headache", "symptoms.vomiting", "symptoms.dizziness", "symptoms.loss_of_balance",
    "symptoms.worsening_headache", "symptoms.neck_pain", "history.medications",
]  # fmt: skip


def expected_unanswered(req: dict[str, Any]) -> list[str]:
    """§5 read straight from the text, as an oracle for the engine."""
    symptoms = req.get("symptoms") or {}
    history = req.get("history") or {}

    def known(link_id: str) -> bool:
        section, _, name = link_id.partition(".")
        if not name:
            return req.get(section) is not None
        return ({"symptoms": symptoms, "history": history}[section]).get(name) is not None

    items = list(ALWAYS)
    if history.get("head_impact") is True:
        items += AFTER_HEAD_IMPACT
    if symptoms.get("fainting") is True:
        items.append("symptoms.fainting_during_exercise")
    medications = history.get("medications") or []
    if any(m["class"] == "insulin_or_sulfonylurea" for m in medications):
        items.append("blood_glucose_mmol_l")
    return [item for item in items if not known(item)]


def test_screened_request_is_self_care():
    result = evaluate(screened())
    assert result.unanswered == ()
    assert result.level is Level.SELF_CARE


def test_minimal_request_lists_every_unconditional_item_in_order():
    assert list(evaluate(request()).unanswered) == ALWAYS


def test_head_impact_adds_its_follow_up_items():
    result = evaluate(screened(history={"head_impact": True}))
    assert list(result.unanswered) == AFTER_HEAD_IMPACT
    assert result.level is Level.CONSULTATION


def test_an_empty_medication_list_is_an_answer():
    answered = dict.fromkeys(name.split(".")[1] for name in AFTER_HEAD_IMPACT[:-1])
    answered = dict.fromkeys(answered, False)
    result = evaluate(screened(history={"head_impact": True, "medications": []}, symptoms=answered))
    assert result.unanswered == ()


def test_fainting_adds_fainting_during_exercise():
    result = evaluate(screened(symptoms={"fainting": True}))
    assert result.unanswered == ("symptoms.fainting_during_exercise",)


def test_insulin_adds_blood_glucose():
    on_insulin = {"medications": [{"class": "insulin_or_sulfonylurea"}]}
    assert evaluate(screened(history=on_insulin)).unanswered == ("blood_glucose_mmol_l",)
    measured = evaluate(screened(history=on_insulin, blood_glucose_mmol_l=6.0))
    assert measured.unanswered == ()


def test_unknown_screen_items_are_the_evidence_of_screen_incomplete():
    result = evaluate(screened(symptoms={"chest_pain": None}))
    finding = next(f for f in result.rules if f.rule_id == "RF-SCREEN-INCOMPLETE")
    assert [(a.link_id, a.value) for a in finding.evidence] == [("symptoms.chest_pain", None)]


@settings(max_examples=300, deadline=None)
@given(requests())
def test_engine_screen_matches_the_protocol_text(req):
    assert list(evaluate(req).unanswered) == expected_unanswered(req)
