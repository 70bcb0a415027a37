"""The minimum red-flag screen of PROTOCOL.md §5 (1.1), written out independently here."""

from __future__ import annotations

from typing import Any

import pytest
from engine_cases import SCREENED_SYMPTOMS, request, screened
from hypothesis import given, settings
from strategies import requests

from triage import evaluate
from triage.result import Level

ALWAYS = [
    *(f"symptoms.{name}" for name in SCREENED_SYMPTOMS),
    "history.head_impact",
]
HEAD_NECK = {"eyelid", "face", "jaw", "neck", "whole_body"}
HIGH_T = "symptoms.high_body_temperature"


def _s(*names: str) -> list[str]:
    return [f"symptoms.{name}" for name in names]


def _rows(req: dict[str, Any]) -> list[tuple[bool, list[str]]]:
    """The 27 rows of §5 read straight from the text: (condition holds, items)."""
    sy = req.get("symptoms") or {}
    hi = req.get("history") or {}
    ac = req.get("activity") or {}
    sites = set(req["twitching"]["body_sites"])
    conditions = hi.get("conditions") or []
    classes = {m["class"] for m in hi.get("medications") or []}
    head = hi.get("head_impact") is True
    fell = (hi.get("falls_last_7_days") or 0) >= 1
    hard = ac.get("intensity") in ("high", "maximal")
    session = ac.get("session_minutes")
    eah = ac.get("fluid_intake") == "excessive" or (
        session is not None and session >= 180 and ac.get("fluid_intake") not in ("none", "low")
    )

    def yes(name: str) -> bool:
        return sy.get(name) is True

    return [
        (True, list(ALWAYS)),
        (
            head,
            [
                *_s("headache", "vomiting", "dizziness", "loss_of_balance", "worsening_headache"),
                *_s("neck_pain", "nausea", "foggy_thinking", "vision_changes", "unequal_pupils"),
                "history.medications",
                "history.conditions",
            ],
        ),
        (
            fell,
            _s("neck_pain", "headache", "dizziness", "nausea", "loss_of_balance")
            + _s("vision_changes", "foggy_thinking"),
        ),
        (
            bool(sites & HEAD_NECK) or head,
            [
                "twitching.loss_of_awareness",
                "twitching.rhythmic_march",
                "twitching.sustained_posture",
            ],
        ),
        (yes("neck_pain"), _s("headache")),
        (yes("neck_pain") and (head or fell), _s("numbness_tingling")),
        (yes("fainting"), _s("fainting_during_exercise")),
        (
            yes("headache"),
            _s("sudden_severe_headache", "worsening_headache", "neck_pain", "vision_changes")
            + _s("vomiting"),
        ),
        (
            any(yes(n) for n in ("headache", "vomiting", "nausea", "swollen_hands")),
            ["activity.session_minutes", "activity.fluid_intake"],
        ),
        (yes("palpitations"), ["symptoms.dizziness", "history.conditions"]),
        (yes("severe_muscle_pain"), _s("muscle_swelling")),
        (yes("muscle_swelling"), _s("numbness_tingling")),
        (yes("muscle_cramps"), ["twitching.cramp_minutes"]),
        (yes("muscle_cramps") and hard, ["history.conditions"]),
        (yes("vomiting"), _s("repeated_vomiting")),
        (
            yes("hand_foot_spasm") or yes("perioral_tingling"),
            ["history.conditions", "history.medications"],
        ),
        (
            bool({"thyroid_or_parathyroid_surgery", "kidney_disease"} & set(conditions))
            or "diuretic" in classes,
            _s("hand_foot_spasm", "perioral_tingling"),
        ),
        (req["twitching"].get("sustained_posture") is True, ["history.medications"]),
        ("dopamine_blocker" in classes, ["twitching.sustained_posture"]),
        (ac.get("hot_or_humid") is True or hard, [HIGH_T, "symptoms.vomiting"]),
        (eah, _s("headache", "vomiting", "swollen_hands")),
        ("insulin_or_sulfonylurea" in classes, ["blood_glucose_mmol_l"]),
        ("diabetes" in conditions, ["history.medications"]),
        ("statin" in classes, _s("muscle_cramps")),
        ("sickle_cell_trait" in conditions, ["symptoms.muscle_cramps", "activity.intensity"]),
        (
            "pregnancy" in conditions,
            _s("headache", "worsening_headache", "vision_changes", "swollen_hands"),
        ),
        ("serotonergic" in classes or hi.get("recreational_stimulants") is True, [HIGH_T]),
    ]


def _known(req: dict[str, Any], link_id: str) -> bool:
    section, _, name = link_id.partition(".")
    if not name:
        return req.get(section) is not None
    if link_id == HIGH_T:
        temperature = req.get("body_temperature_c")
        ac = req.get("activity") or {}
        hot_or_hard = ac.get("hot_or_humid") is True or ac.get("intensity") in ("high", "maximal")
        if temperature is not None and (temperature >= 40 or (temperature >= 39 and hot_or_hard)):
            return True
    return ((req.get(section) or {}).get(name)) is not None


def expected_unanswered(req: dict[str, Any]) -> list[str]:
    """§5 as an oracle: rows that hold, in table order, each item once at its first place."""
    out: list[str] = []
    for holds, items in _rows(req):
        if holds:
            out += [i for i in items if i not in out and not _known(req, i)]
    return out


def test_the_table_has_27_rows():
    assert len(_rows(request())) == 27


def test_screened_request_is_self_care():
    result = evaluate(screened())
    assert result.unanswered == ()
    assert result.level is Level.SELF_CARE


def test_minimal_request_lists_every_unconditional_item_in_order():
    assert list(evaluate(request()).unanswered) == ALWAYS


#: One case per follow-up row: (overlay where the row holds, near miss, items it asks).
ROW_CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[str]]] = [
    (
        "head impact",
        {"history": {"head_impact": True}},
        {"history": {"head_impact": False}},
        _rows(screened(history={"head_impact": True}))[1][1],
    ),
    (
        "falls",
        {"history": {"falls_last_7_days": 1}},
        {"history": {"falls_last_7_days": 0}},
        _rows(screened())[2][1],
    ),
    (
        "head-neck site",
        {"twitching": {"body_sites": ["jaw"]}},
        {"twitching": {"body_sites": ["shoulder"]}},
        ["twitching.loss_of_awareness", "twitching.rhythmic_march", "twitching.sustained_posture"],
    ),
    (
        "whole body counts as a head-neck site",
        {"twitching": {"body_sites": ["whole_body"]}},
        {"twitching": {"body_sites": ["calf", "thigh"]}},
        ["twitching.loss_of_awareness"],
    ),
    ("neck pain", {"symptoms": {"neck_pain": True}}, {"symptoms": {"neck_pain": False}},
     _s("headache")),
    (
        "neck pain after a fall",
        {"symptoms": {"neck_pain": True}, "history": {"falls_last_7_days": 2}},
        {"symptoms": {"neck_pain": True}, "history": {"falls_last_7_days": 0}},
        _s("numbness_tingling"),
    ),
    ("fainting", {"symptoms": {"fainting": True}}, {"symptoms": {"fainting": False}},
     _s("fainting_during_exercise")),
    (
        "headache",
        {"symptoms": {"headache": True}},
        {"symptoms": {"headache": False}},
        _s("sudden_severe_headache", "worsening_headache", "neck_pain", "vision_changes"),
    ),
    (
        "EAH symptoms",
        {"symptoms": {"nausea": True}},
        {"symptoms": {"nausea": False}},
        ["activity.session_minutes", "activity.fluid_intake"],
    ),
    ("palpitations", {"symptoms": {"palpitations": True}}, {"symptoms": {"palpitations": False}},
     ["symptoms.dizziness", "history.conditions"]),
    ("severe muscle pain", {"symptoms": {"severe_muscle_pain": True}},
     {"symptoms": {"severe_muscle_pain": False}}, _s("muscle_swelling")),
    ("swelling", {"symptoms": {"muscle_swelling": True}}, {"symptoms": {"muscle_swelling": False}},
     _s("numbness_tingling")),
    ("cramps", {"symptoms": {"muscle_cramps": True}}, {"symptoms": {"muscle_cramps": False}},
     ["twitching.cramp_minutes"]),
    (
        "cramps at high intensity",
        {"symptoms": {"muscle_cramps": True}, "activity": {"intensity": "maximal"}},
        {"symptoms": {"muscle_cramps": True}, "activity": {"intensity": "moderate"}},
        ["history.conditions"],
    ),
    ("vomiting", {"symptoms": {"vomiting": True}}, {"symptoms": {"vomiting": False}},
     _s("repeated_vomiting")),
    (
        "tetany signs",
        {"symptoms": {"perioral_tingling": True}},
        {"symptoms": {"perioral_tingling": False, "hand_foot_spasm": False}},
        ["history.conditions", "history.medications"],
    ),
    (
        "tetany risk: kidney disease",
        {"history": {"conditions": ["kidney_disease"]}},
        {"history": {"conditions": ["asthma"]}},
        _s("hand_foot_spasm", "perioral_tingling"),
    ),
    (
        "tetany risk: diuretic",
        {"history": {"medications": [{"class": "diuretic"}]}},
        {"history": {"medications": [{"class": "other"}]}},
        _s("hand_foot_spasm", "perioral_tingling"),
    ),
    (
        "sustained posture",
        {"twitching": {"sustained_posture": True}},
        {"twitching": {"sustained_posture": False}},
        ["history.medications"],
    ),
    (
        "dopamine blocker",
        {"history": {"medications": [{"class": "dopamine_blocker"}]}},
        {"history": {"medications": [{"class": "other"}]}},
        ["twitching.sustained_posture"],
    ),
    (
        "heat",
        {"activity": {"hot_or_humid": True}},
        {"activity": {"hot_or_humid": False, "intensity": "low"}},
        [HIGH_T, "symptoms.vomiting"],
    ),
    (
        "EAH risk",
        {"activity": {"fluid_intake": "excessive"}},
        {"activity": {"fluid_intake": "adequate"}},
        _s("headache", "vomiting", "swollen_hands"),
    ),
    (
        "EAH risk: long session, intake unknown",
        {"activity": {"session_minutes": 180}},
        {"activity": {"session_minutes": 180, "fluid_intake": "low"}},
        _s("headache", "swollen_hands"),
    ),
    (
        "insulin",
        {"history": {"medications": [{"class": "insulin_or_sulfonylurea"}]}},
        {"history": {"medications": []}},
        ["blood_glucose_mmol_l"],
    ),
    (
        "diabetes",
        {"history": {"conditions": ["diabetes"]}},
        {"history": {"conditions": []}},
        ["history.medications"],
    ),
    (
        "statin",
        {"history": {"medications": [{"class": "statin"}]}},
        {"history": {"medications": [{"class": "other"}]}},
        _s("muscle_cramps"),
    ),
    (
        "sickle cell trait",
        {"history": {"conditions": ["sickle_cell_trait"]}},
        {"history": {"conditions": ["asthma"]}},
        ["symptoms.muscle_cramps", "activity.intensity"],
    ),
    (
        "pregnancy",
        {"history": {"conditions": ["pregnancy"]}},
        {"history": {"conditions": []}},
        _s("headache", "worsening_headache", "vision_changes", "swollen_hands"),
    ),
    (
        "serotonergic medicine",
        {"history": {"medications": [{"class": "serotonergic", "days_since_start": 400}]}},
        {"history": {"medications": [{"class": "other"}]}},
        [HIGH_T],
    ),
    (
        "recreational stimulants",
        {"history": {"recreational_stimulants": True}},
        {"history": {"recreational_stimulants": False}},
        [HIGH_T],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "holds", "near_miss", "items"), ROW_CASES,
                         ids=[c[0] for c in ROW_CASES])  # fmt: skip
def test_follow_up_row_asks_its_items_only_when_its_condition_holds(name, holds, near_miss, items):
    asked = evaluate(screened(**holds))
    assert set(items) <= set(asked.unanswered), name
    assert "RF-SCREEN-INCOMPLETE" in asked.rule_ids
    not_asked = evaluate(screened(**near_miss))
    assert not set(items) & set(not_asked.unanswered), name


def test_a_measured_high_temperature_answers_the_high_temperature_item():
    hot = {"activity": {"hot_or_humid": True}, "symptoms": {"vomiting": False}}
    assert evaluate(screened(**hot)).unanswered == (HIGH_T,)
    assert evaluate(screened(**hot, body_temperature_c=39.0)).unanswered == ()
    assert evaluate(screened(**hot, body_temperature_c=38.9)).unanswered == (HIGH_T,)
    cool = {"activity": {"intensity": "moderate"}, "history": {"recreational_stimulants": True}}
    assert evaluate(screened(**cool, body_temperature_c=39.5)).unanswered == (HIGH_T,)
    assert evaluate(screened(**cool, body_temperature_c=40.0)).unanswered == ()


def test_rows_list_items_in_table_order_each_once_at_first_place():
    # Falls first lists neck pain, then headache; the later headache row adds the rest.
    result = evaluate(screened(history={"falls_last_7_days": 3}, symptoms={"headache": True}))
    assert list(result.unanswered[:3]) == _s("neck_pain", "dizziness", "nausea")
    assert result.unanswered.count("symptoms.neck_pain") == 1


def test_an_empty_medication_list_is_an_answer():
    items = _rows(screened(history={"head_impact": True}))[1][1]
    answered = {link.split(".")[1]: False for link in items if link.startswith("symptoms.")}
    history = {"head_impact": True, "medications": [], "conditions": []}
    sites = {"body_sites": ["calf"]}
    result = evaluate(
        screened(
            history=history,
            symptoms=answered,
            twitching=sites
            | {"loss_of_awareness": False, "rhythmic_march": False, "sustained_posture": False},
        )
    )
    assert result.unanswered == ()


def test_unknown_screen_items_are_the_evidence_of_screen_incomplete():
    result = evaluate(screened(symptoms={"chest_pain": None}))
    finding = next(f for f in result.rules if f.rule_id == "RF-SCREEN-INCOMPLETE")
    assert [(a.link_id, a.value) for a in finding.evidence] == [("symptoms.chest_pain", None)]


@settings(max_examples=300, deadline=None)
@given(requests())
def test_engine_screen_matches_the_protocol_text(req):
    assert list(evaluate(req).unanswered) == expected_unanswered(req)
