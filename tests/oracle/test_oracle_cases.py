"""Hand-written cases for the 1.1 oracle, each derived from one line of PROTOCOL.md.

The differential test cannot check the oracle against a 1.0 engine, so the 1.1
parts are pinned here: each new or changed §4 rule firing and a near miss, each
§5 follow-up row triggering its items (and a row whose condition is unknown not
triggering), and §8 decisive questions on small cases. Expected values are
worked out by hand from the text, not taken from the oracle.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .protocol_oracle import (
    CONDITIONS,
    LEVELS,
    MEDICATION_CLASSES,
    SCREEN,
    SYMPTOMS,
    URGENCY,
    decisive_questions,
    level_of,
    oracle,
    with_answer,
)
from .trigger_strategy import trigger_requests

DROP = object()  # an override that removes the key

ALWAYS_SYMPTOMS = (
    "confusion", "drowsiness", "loss_of_consciousness", "fainting", "exertional_collapse",
    "chest_pain", "palpitations", "breathing_difficulty", "seizure", "slurred_speech",
    "one_sided_weakness", "cola_urine", "muscle_weakness", "severe_muscle_pain",
)  # fmt: skip
HEAD_ROW = (
    "headache", "vomiting", "dizziness", "loss_of_balance", "worsening_headache", "neck_pain",
    "nausea", "foggy_thinking", "vision_changes", "unequal_pupils",
)  # fmt: skip
FALLS_ROW = (
    "neck_pain", "headache", "dizziness", "nausea", "loss_of_balance", "vision_changes",
    "foggy_thinking",
)  # fmt: skip
FOCAL = ("loss_of_awareness", "rhythmic_march", "sustained_posture")


def req(**sections: dict[str, Any] | Any) -> dict[str, Any]:
    """A screened adult with calf twitching (self_care), with sections merged in."""
    request: dict[str, Any] = {
        "patient": {"age_years": 30},
        "twitching": {"body_sites": ["calf"]},
        "symptoms": dict.fromkeys(ALWAYS_SYMPTOMS, False),
        "history": {"head_impact": False},
    }
    for name, value in sections.items():
        if isinstance(value, dict):
            target = request.setdefault(name, {})
            for key, item in value.items():
                if item is DROP:
                    target.pop(key, None)
                else:
                    target[key] = item
        else:
            request[name] = value
    return request


def sym(*names: str) -> list[str]:
    return [f"symptoms.{n}" for n in names]


def tw(*names: str) -> list[str]:
    return [f"twitching.{n}" for n in names]


HEAD_SCREENED = {
    "symptoms": dict.fromkeys(HEAD_ROW, False),
    "history": {"head_impact": True, "medications": [], "conditions": []},
    "twitching": dict.fromkeys(FOCAL, False),
}


def head(twitching: dict[str, Any] | None = None, **symptoms: bool) -> dict[str, Any]:
    """A screened head knock (every head follow-up answered) with some answers set."""
    request = req(**copy.deepcopy(HEAD_SCREENED))
    request["symptoms"].update(symptoms)
    request["twitching"].update(twitching or {})
    return request


# (id, request, level, rules, unanswered)
RULE_CASES: list[tuple[str, dict[str, Any], str, set[str], list[str]]] = [
    ("baseline-screened-calf", req(), "self_care", set(), []),
    # RF-HEAD-NEURO | head_impact and (loss_of_balance or vision_changes)
    (
        "head-neuro-balance",
        head(loss_of_balance=True),
        "emergency",
        {"RF-HEAD-NEURO", "RF-CONCUSSION-SYMPTOMS"},
        [],
    ),
    (
        "head-neuro-vision",
        head(vision_changes=True),
        "emergency",
        {"RF-HEAD-NEURO", "RF-CONCUSSION-SYMPTOMS"},
        [],
    ),
    (
        "head-neuro-miss-no-knock",
        req(symptoms={"loss_of_balance": True, "vision_changes": True}),
        "self_care",
        set(),
        [],
    ),
    # RF-CONCUSSION-SYMPTOMS after falls without a known knock
    (
        "concussion-after-fall",
        req(
            history={"falls_last_7_days": 1},
            symptoms={**dict.fromkeys(FALLS_ROW, False), "nausea": True},
            activity={"session_minutes": 30, "fluid_intake": "adequate"},
        ),
        "consultation_24",
        {"RF-CONCUSSION-SYMPTOMS"},
        [],
    ),
    (
        "concussion-miss-no-falls",
        req(
            history={"falls_last_7_days": 0},
            symptoms={"nausea": True},
            activity={"session_minutes": 30, "fluid_intake": "adequate"},
        ),
        "self_care",
        set(),
        [],
    ),
    (
        "concussion-knock-alone-is-not-enough",
        head(),
        "self_care",
        set(),
        [],
    ),
    # RF-SEIZURE-DANGER | ... or head_impact with rhythmic_march or loss_of_awareness
    (
        "seizure-danger-focal-after-knock",
        head({"rhythmic_march": True}),
        "emergency_ambulance",
        {"RF-SEIZURE-DANGER", "RF-SEIZURE"},
        [],
    ),
    (
        "seizure-danger-awareness-after-knock",
        head({"loss_of_awareness": True}),
        "emergency_ambulance",
        {"RF-SEIZURE-DANGER", "RF-SEIZURE"},
        [],
    ),
    (
        "seizure-focal-without-knock-is-emergency",
        req(twitching={"rhythmic_march": True}),
        "emergency",
        {"RF-SEIZURE"},
        [],
    ),
    (
        "seizure-danger-exception-known-epilepsy",
        req(
            symptoms={"seizure": True},
            twitching={"seizure_minutes": 4},
            history={"conditions": ["epilepsy"]},
        ),
        "emergency",
        {"RF-SEIZURE"},
        [],
    ),
    (
        "seizure-danger-exception-unknown-minutes",
        req(symptoms={"seizure": True}, history={"conditions": ["epilepsy"]}),
        "emergency_ambulance",
        {"RF-SEIZURE-DANGER", "RF-SEIZURE"},
        [],
    ),
    # RF-TOXIC-HYPERTHERMIA | (serotonergic listed or recreational_stimulants) and
    # (high temperature or body_temperature_c ≥ 38)
    (
        "toxic-hyperthermia-serotonergic-38",
        req(
            history={"medications": [{"class": "serotonergic", "days_since_start": 200}]},
            symptoms={"high_body_temperature": False},
            body_temperature_c=38,
        ),
        "emergency",
        {"RF-TOXIC-HYPERTHERMIA", "RF-FEVER"},
        [],
    ),
    (
        "toxic-hyperthermia-miss-37-9",
        req(
            history={"medications": [{"class": "serotonergic", "days_since_start": 200}]},
            symptoms={"high_body_temperature": False},
            body_temperature_c=37.9,
        ),
        "self_care",
        set(),
        [],
    ),
    (
        "toxic-hyperthermia-stimulants-feels-hot",
        req(history={"recreational_stimulants": True}, symptoms={"high_body_temperature": True}),
        "emergency",
        {"RF-TOXIC-HYPERTHERMIA", "RF-HYPERTHERMIA", "RF-RECREATIONAL-STIMULANTS"},
        [],
    ),
    # RF-FEVER | body_temperature_c ≥ 38
    ("fever-38", req(body_temperature_c=38), "consultation_24", {"RF-FEVER"}, []),
    ("fever-miss-37-9", req(body_temperature_c=37.9), "self_care", set(), []),
    # high temperature: ≥ 39 with hot_or_humid or intensity high or maximal
    (
        "high-temperature-39-hard-exercise",
        req(activity={"intensity": "high"}, symptoms={"vomiting": False}, body_temperature_c=39),
        "emergency",
        {"RF-HYPERTHERMIA", "RF-FEVER"},
        [],
    ),
    (
        "high-temperature-39-easy-exercise-is-fever",
        req(activity={"intensity": "low", "hot_or_humid": False}, body_temperature_c=39),
        "consultation_24",
        {"RF-FEVER"},
        [],
    ),
    # RF-CAFFEINE-EXCESS | caffeine_mg_per_day ≥ 1200 (age ≥ 18) or ≥ 400 (under 18)
    (
        "caffeine-adult-1200",
        req(history={"caffeine_mg_per_day": 1200}),
        "consultation_24",
        {"RF-CAFFEINE-EXCESS"},
        [],
    ),
    ("caffeine-adult-1199", req(history={"caffeine_mg_per_day": 1199}), "self_care", set(), []),
    (
        "caffeine-child-400",
        req(patient={"age_years": 12}, history={"caffeine_mg_per_day": 400}),
        "consultation_24",
        {"RF-CAFFEINE-EXCESS"},
        [],
    ),
    (
        "caffeine-child-399",
        req(patient={"age_years": 12}, history={"caffeine_mg_per_day": 399}),
        "self_care",
        set(),
        [],
    ),
    # RF-RECREATIONAL-STIMULANTS | recreational_stimulants (and its screen row)
    (
        "recreational-stimulants",
        req(history={"recreational_stimulants": True}, symptoms={"high_body_temperature": False}),
        "consultation_24",
        {"RF-RECREATIONAL-STIMULANTS"},
        [],
    ),
    (
        "recreational-stimulants-false",
        req(history={"recreational_stimulants": False}),
        "self_care",
        set(),
        [],
    ),
    # RF-INTERFERES | impact interferes and not a tic pattern
    (
        "interferes-adult-calf",
        req(twitching={"impact": "interferes"}),
        "consultation",
        {"RF-INTERFERES"},
        [],
    ),
    (
        "interferes-miss-child-tic-pattern",
        req(
            patient={"age_years": 10},
            twitching={
                "body_sites": ["eyelid"],
                "suppressible": True,
                "spreading": False,
                "impact": "interferes",
                **dict.fromkeys(FOCAL, False),
            },
        ),
        "consultation",
        {"RF-TIC-TROUBLESOME"},
        [],
    ),
    (
        "interferes-tic-with-spreading-unknown-is-not-a-pattern",
        req(
            patient={"age_years": 10},
            twitching={
                "body_sites": ["eyelid"],
                "suppressible": True,
                "impact": "interferes",
                **dict.fromkeys(FOCAL, False),
            },
        ),
        "consultation",
        {"RF-TIC-TROUBLESOME", "RF-INTERFERES"},
        [],
    ),
    # tic pattern: age ≤ 17 or tic_disorder listed
    (
        "adult-tic-without-tic-disorder-persists",
        req(
            twitching={
                "body_sites": ["neck"],
                "urge_before": True,
                "spreading": False,
                "duration_days": 15,
                **dict.fromkeys(FOCAL, False),
            },
        ),
        "consultation",
        {"RF-PERSISTENT"},
        [],
    ),
    (
        "adult-tic-with-tic-disorder-is-a-pattern",
        req(
            twitching={
                "body_sites": ["neck"],
                "urge_before": True,
                "spreading": False,
                "duration_days": 15,
                **dict.fromkeys(FOCAL, False),
            },
            history={"conditions": ["tic_disorder"]},
        ),
        "self_care",
        set(),
        [],
    ),
    # RF-MEDICATION: an omitted start date counts as recent; serotonergic covered
    (
        "medication-serotonergic-no-date",
        req(
            history={"medications": [{"class": "serotonergic"}]},
            symptoms={"high_body_temperature": False},
        ),
        "consultation",
        {"RF-MEDICATION"},
        [],
    ),
    (
        "medication-statin-90-days",
        req(
            history={"medications": [{"class": "statin", "days_since_start": 90}]},
            symptoms={"muscle_cramps": False},
        ),
        "consultation",
        {"RF-MEDICATION"},
        [],
    ),
    (
        "medication-statin-91-days",
        req(
            history={"medications": [{"class": "statin", "days_since_start": 91}]},
            symptoms={"muscle_cramps": False},
        ),
        "self_care",
        set(),
        [],
    ),
    (
        "medication-other-no-date",
        req(history={"medications": [{"class": "other"}]}),
        "self_care",
        set(),
        [],
    ),
    # whole_body counts as every site where a rule names sites (RF-HEMIFACIAL)
    (
        "hemifacial-whole-body",
        req(
            twitching={
                "body_sites": ["whole_body"],
                "side": "left",
                "duration_days": 15,
                **dict.fromkeys(FOCAL, False),
            },
        ),
        "consultation",
        {"RF-HEMIFACIAL", "RF-MULTIPLE-REGIONS", "RF-PERSISTENT"},
        [],
    ),
    (
        "dystonia-whole-body",
        req(
            twitching={
                "body_sites": ["whole_body"],
                **dict.fromkeys(FOCAL, False),
                "sustained_posture": True,
            },
            history={"medications": []},
        ),
        "emergency",
        {"RF-DYSTONIA", "RF-SUSTAINED-POSTURE", "RF-MULTIPLE-REGIONS"},
        [],
    ),
]


@pytest.mark.parametrize(
    ("request_", "level", "rules", "unanswered"),
    [case[1:] for case in RULE_CASES],
    ids=[case[0] for case in RULE_CASES],
)
def test_rule_case(
    request_: dict[str, Any], level: str, rules: set[str], unanswered: list[str]
) -> None:
    got = oracle(request_)
    assert got["unanswered"] == unanswered
    assert got["rules"] == rules | ({"RF-SCREEN-INCOMPLETE"} if unanswered else set())
    assert got["level"] == level


# (id, request, unanswered) — each §5 follow-up row triggering its items.
SCREEN_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("always-row", {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}},
     [*sym(*ALWAYS_SYMPTOMS), "history.head_impact"]),
    ("head-impact-unknown-asks-no-follow-up", req(history={"head_impact": None}),
     ["history.head_impact"]),
    ("head-impact-row", req(history={"head_impact": True}),
     [*sym(*HEAD_ROW), "history.medications", "history.conditions", *tw(*FOCAL)]),
    ("falls-row", req(history={"falls_last_7_days": 1}), sym(*FALLS_ROW)),
    ("falls-zero", req(history={"falls_last_7_days": 0}), []),
    ("head-neck-site-row", req(twitching={"body_sites": ["jaw"]}), tw(*FOCAL)),
    ("whole-body-is-a-head-neck-site", req(twitching={"body_sites": ["whole_body"]}),
     tw(*FOCAL)),
    ("shoulder-is-not-head-neck", req(twitching={"body_sites": ["shoulder"]}), []),
    ("neck-pain-row", req(symptoms={"neck_pain": True}), sym("headache")),
    ("neck-pain-after-falls-row", req(symptoms={"neck_pain": True},
                                      history={"falls_last_7_days": 2}),
     sym("headache", "dizziness", "nausea", "loss_of_balance", "vision_changes",
         "foggy_thinking", "numbness_tingling")),
    ("fainting-row", req(symptoms={"fainting": True}), sym("fainting_during_exercise")),
    ("headache-row", req(symptoms={"headache": True}),
     [*sym("sudden_severe_headache", "worsening_headache", "neck_pain", "vision_changes",
           "vomiting"), "activity.session_minutes", "activity.fluid_intake"]),
    ("swollen-hands-eah-row", req(symptoms={"swollen_hands": True}),
     ["activity.session_minutes", "activity.fluid_intake"]),
    ("nausea-eah-row", req(symptoms={"nausea": True}),
     ["activity.session_minutes", "activity.fluid_intake"]),
    ("palpitations-row", req(symptoms={"palpitations": True}),
     ["symptoms.dizziness", "history.conditions"]),
    ("severe-muscle-pain-row", req(symptoms={"severe_muscle_pain": True}),
     sym("muscle_swelling")),
    ("muscle-swelling-row", req(symptoms={"muscle_swelling": True}), sym("numbness_tingling")),
    ("cramps-row", req(symptoms={"muscle_cramps": True}), ["twitching.cramp_minutes"]),
    ("cramps-hard-exercise-rows", req(symptoms={"muscle_cramps": True},
                                      activity={"intensity": "maximal"}),
     ["twitching.cramp_minutes", "history.conditions", "symptoms.high_body_temperature",
      "symptoms.vomiting"]),
    ("vomiting-rows", req(symptoms={"vomiting": True}),
     ["activity.session_minutes", "activity.fluid_intake", "symptoms.repeated_vomiting"]),
    ("tetany-signs-row", req(symptoms={"hand_foot_spasm": True}),
     ["history.conditions", "history.medications"]),
    ("perioral-row", req(symptoms={"perioral_tingling": True}),
     ["history.conditions", "history.medications"]),
    ("kidney-disease-row", req(history={"conditions": ["kidney_disease"]}),
     sym("hand_foot_spasm", "perioral_tingling")),
    ("thyroid-surgery-row", req(history={"conditions": ["thyroid_or_parathyroid_surgery"]}),
     sym("hand_foot_spasm", "perioral_tingling")),
    ("diuretic-row", req(history={"medications": [{"class": "diuretic", "days_since_start": 400}]}),
     sym("hand_foot_spasm", "perioral_tingling")),
    ("sustained-posture-row", req(twitching={"sustained_posture": True}),
     ["history.medications"]),
    ("dopamine-blocker-row",
     req(history={"medications": [{"class": "dopamine_blocker", "days_since_start": 400}]}),
     ["twitching.sustained_posture"]),
    ("hot-row", req(activity={"hot_or_humid": True}),
     ["symptoms.high_body_temperature", "symptoms.vomiting"]),
    ("hot-row-measured-40-is-known", req(activity={"hot_or_humid": True}, body_temperature_c=40),
     ["symptoms.vomiting"]),
    ("hot-row-measured-39-in-heat-is-known",
     req(activity={"hot_or_humid": True}, body_temperature_c=39), ["symptoms.vomiting"]),
    ("hot-row-measured-38-is-not", req(activity={"hot_or_humid": True}, body_temperature_c=38),
     ["symptoms.high_body_temperature", "symptoms.vomiting"]),
    ("intensity-unknown-asks-no-heat", req(activity={"hot_or_humid": False}), []),
    ("eah-excessive-row", req(activity={"fluid_intake": "excessive"}),
     sym("headache", "vomiting", "swollen_hands")),
    ("eah-long-session-unknown-fluid-row", req(activity={"session_minutes": 180}),
     sym("headache", "vomiting", "swollen_hands")),
    ("eah-long-session-low-fluid", req(activity={"session_minutes": 180, "fluid_intake": "low"}),
     []),
    ("eah-179-minutes", req(activity={"session_minutes": 179}), []),
    ("insulin-row", req(history={"medications": [
        {"class": "insulin_or_sulfonylurea", "days_since_start": 400}]}),
     ["blood_glucose_mmol_l"]),
    ("diabetes-row", req(history={"conditions": ["diabetes"]}), ["history.medications"]),
    ("statin-row", req(history={"medications": [{"class": "statin", "days_since_start": 400}]}),
     sym("muscle_cramps")),
    ("sickle-cell-row", req(history={"conditions": ["sickle_cell_trait"]}),
     ["symptoms.muscle_cramps", "activity.intensity"]),
    ("pregnancy-row", req(history={"conditions": ["pregnancy"]}),
     sym("headache", "worsening_headache", "vision_changes", "swollen_hands")),
    ("serotonergic-row", req(history={"medications": [
        {"class": "serotonergic", "days_since_start": 400}]}),
     ["symptoms.high_body_temperature"]),
    ("stimulants-row", req(history={"recreational_stimulants": True}),
     ["symptoms.high_body_temperature"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("request_", "unanswered"),
    [case[1:] for case in SCREEN_CASES],
    ids=[case[0] for case in SCREEN_CASES],
)
def test_screen_case(request_: dict[str, Any], unanswered: list[str]) -> None:
    got = oracle(request_)
    assert got["unanswered"] == unanswered
    assert ("RF-SCREEN-INCOMPLETE" in got["rules"]) == bool(unanswered)
    if unanswered:
        assert URGENCY[got["level"]] >= URGENCY["consultation"]


def test_screen_has_27_rows_and_every_follow_up_row_is_exercised() -> None:
    assert len(SCREEN) == 27
    names = [name for name, _, _ in SCREEN]
    assert len(set(names)) == 27
    for name, holds, _ in SCREEN[1:]:
        assert any(holds(_answers(case[1])) for case in SCREEN_CASES), name


def _answers(request: dict[str, Any]) -> Any:
    from .protocol_oracle import Answers  # noqa: PLC0415 - local: only this helper needs it

    return Answers(request)


def test_every_item_is_asked_once_at_its_first_place() -> None:
    """head knock + falls + headache + vomiting: rows overlap; no item twice, and
    each sits where its first holding row puts it."""
    got = oracle(req(history={"head_impact": True, "falls_last_7_days": 3},
                     symptoms={"headache": True, "vomiting": True}))["unanswered"]  # fmt: skip
    assert len(got) == len(set(got))
    assert got[:10] == [
        *sym("dizziness", "loss_of_balance", "worsening_headache", "neck_pain", "nausea"),
        *sym("foggy_thinking", "vision_changes", "unequal_pupils"),
        "history.medications",
        "history.conditions",
    ]
    assert got[10:] == [
        *tw(*FOCAL),
        "symptoms.sudden_severe_headache",
        "activity.session_minutes",
        "activity.fluid_intake",
        "symptoms.repeated_vomiting",
    ]


# --- §8 decisive questions ------------------------------------------------------------------


def _decisive(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["link_id"]: d for d in decisive_questions(request)}


def test_decisive_yes_no_item_answers_yes() -> None:
    decisive = _decisive(req(symptoms={"confusion": None}))
    assert decisive["symptoms.confusion"]["level"] == "emergency_ambulance"
    assert decisive["symptoms.confusion"]["answer"] is True
    assert decisive["symptoms.confusion"]["answers"] == [True]


def test_decisive_head_impact_with_anticoagulant() -> None:
    request = req(history={"head_impact": None, "medications": [{"class": "anticoagulant"}]})
    decisive = _decisive(request)
    assert list(decisive) == ["history.head_impact"]
    assert decisive["history.head_impact"]["level"] == "emergency"
    assert decisive["history.head_impact"]["answer"] is True


def test_decisive_glucose_with_insulin_is_below_3() -> None:
    request = req(history={"medications": [{"class": "insulin_or_sulfonylurea",
                                            "days_since_start": 400}]})  # fmt: skip
    decisive = _decisive(request)
    assert decisive["blood_glucose_mmol_l"]["level"] == "emergency"  # RF-HYPOGLYCAEMIA
    assert decisive["blood_glucose_mmol_l"]["answers"] == [2.9]


def test_decisive_conditions_with_palpitations() -> None:
    request = req(symptoms={"palpitations": True, "dizziness": False})
    decisive = _decisive(request)
    assert decisive["history.conditions"]["level"] == "emergency"  # RF-CARDIAC-PALPITATIONS
    assert decisive["history.conditions"]["answers"] == [
        ["heart_disease"],
        ["family_sudden_death_under_50"],
    ]


def test_decisive_session_minutes_for_headache_is_eah() -> None:
    request = req(
        symptoms={**dict.fromkeys(("sudden_severe_headache", "worsening_headache", "neck_pain",
                                   "vision_changes", "vomiting", "swollen_hands"), False),
                  "headache": True},
        activity={"fluid_intake": "adequate"},
    )  # fmt: skip
    decisive = _decisive(request)
    assert list(decisive) == ["activity.session_minutes"]
    assert decisive["activity.session_minutes"]["level"] == "emergency"  # RF-EAH
    assert decisive["activity.session_minutes"]["answer"] == 180


def test_decisive_fluid_intake_excessive() -> None:
    request = req(
        symptoms={"swollen_hands": True, "headache": False, "vomiting": False},
        activity={"session_minutes": 30},
    )
    decisive = _decisive(request)
    assert decisive["activity.fluid_intake"]["level"] == "emergency"  # RF-EAH
    assert decisive["activity.fluid_intake"]["answers"] == ["excessive"]


def test_decisive_medications_after_knock_is_anticoagulant() -> None:
    request = head()
    request["history"]["medications"] = None
    decisive = _decisive(request)
    assert decisive["history.medications"]["level"] == "emergency"  # RF-HEAD-ANTICOAGULATED
    assert decisive["history.medications"]["answers"] == [[{"class": "anticoagulant"}]]


def test_decisive_item_that_cannot_escalate_keeps_the_level() -> None:
    """Diabetes listed, medications unknown: no single medication escalates beyond
    consultation (a screen follow-up or RF-MEDICATION), and "none" gives self_care."""
    decisive = _decisive(req(history={"conditions": ["diabetes"]}))
    assert list(decisive) == ["history.medications"]
    assert decisive["history.medications"]["level"] == "consultation"
    assert [] not in decisive["history.medications"]["answers"]
    assert [{"class": "insulin_or_sulfonylurea"}] in decisive["history.medications"]["answers"]


def test_decisive_sustained_posture_on_a_head_neck_site() -> None:
    request = req(twitching={"body_sites": ["jaw"], "loss_of_awareness": False,
                             "rhythmic_march": False})  # fmt: skip
    decisive = _decisive(request)
    # yes: RF-SUSTAINED-POSTURE, and RF-DYSTONIA (jaw is a head-neck site)
    assert decisive["twitching.sustained_posture"]["level"] == "emergency"
    assert decisive["twitching.sustained_posture"]["answer"] is True


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(trigger_requests())
def test_decisive_level_is_the_most_urgent_single_answer(request: dict[str, Any]) -> None:
    """§8 by its definition: for each unknown item, no candidate answer gives a more
    urgent level, one gives exactly it, and a yes/no item's answer is yes."""
    for question in decisive_questions(request):
        link_id = question["link_id"]
        levels = [
            oracle(with_answer(request, link_id, answer))["level"]
            for answer in _independent_candidates(link_id)
        ]
        assert question["level"] == max(levels, key=URGENCY.__getitem__)
        assert (
            oracle(with_answer(request, link_id, question["answer"]))["level"] == question["level"]
        )
        assert question["level"] in LEVELS


def _independent_candidates(link_id: str) -> list[Any]:
    """A wider candidate set than the oracle's: every enum value, list value and a
    fine grid of numbers, to check the oracle's thresholds miss nothing."""
    if link_id == "history.medications":
        return [[], *([{"class": c}] for c in MEDICATION_CLASSES)]
    if link_id == "history.conditions":
        return [[], *([c] for c in CONDITIONS)]
    if link_id == "activity.intensity":
        return ["low", "moderate", "high", "maximal"]
    if link_id == "activity.fluid_intake":
        return ["none", "low", "adequate", "excessive"]
    if link_id == "activity.session_minutes":
        return [*range(0, 1441, 10), 59, 89, 179, 239]
    if link_id == "twitching.cramp_minutes":
        return [x / 2 for x in range(0, 300)]
    if link_id == "blood_glucose_mmol_l":
        return [x / 10 for x in range(5, 401)]
    return [True, False]


@pytest.mark.parametrize("link_id", ["symptoms.confusion", "history.medications"])
def test_with_answer_creates_missing_sections(link_id: str) -> None:
    request = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}
    answered = with_answer(request, link_id, [] if link_id.startswith("history") else True)
    assert "symptoms" not in request
    assert "history" not in request
    section, name = link_id.split(".")
    assert name in answered[section]


# --- §5a invariants, checked on the oracle itself -------------------------------------------

_YES_NO_PATHS = (
    *(f"symptoms.{n}" for n in SYMPTOMS),
    *(
        f"twitching.{n}"
        for n in ("spreading", "rhythmic_march", "loss_of_awareness", "sustained_posture",
                  "painful")
    ),
    *(
        f"activity.{n}"
        for n in ("recent_load_increase", "hot_or_humid", "cold_exposure", "heavy_sweating",
                  "ate_before_exercise", "warm_up", "cool_down")
    ),
    *(
        f"history.{n}"
        for n in ("head_impact", "energy_drinks", "recreational_stimulants", "short_sleep",
                  "previous_episodes", "self_care_tried")
    ),
)  # fmt: skip


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(trigger_requests(), st.sampled_from(_YES_NO_PATHS))
def test_false_to_true_or_unknown_never_lowers_the_level(
    request: dict[str, Any], link_id: str
) -> None:
    """§5a: "Changing a yes/no answer from false to true, or from false to unknown,
    never makes the level less urgent" (suppressible and urge_before excepted, so
    they are not drawn)."""
    base = URGENCY[oracle(with_answer(request, link_id, False))["level"]]
    assert URGENCY[oracle(with_answer(request, link_id, True))["level"]] >= base
    assert URGENCY[oracle(with_answer(request, link_id, None))["level"]] >= base


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    trigger_requests(),
    st.sampled_from([c for c in CONDITIONS if c not in ("epilepsy", "tic_disorder")]),
    st.sampled_from(MEDICATION_CLASSES),
)
def test_adding_a_list_item_never_lowers_the_level(
    request: dict[str, Any], condition: str, medication: str
) -> None:
    """§5a: adding a medication, or a condition other than epilepsy and tic_disorder,
    to a given list never makes the level less urgent."""
    history = request.get("history") or {}
    conditions = history.get("conditions") or []
    medications = history.get("medications") or []
    base = URGENCY[oracle(with_answer(request, "history.conditions", conditions))["level"]]
    more = [*conditions, condition] if condition not in conditions else conditions
    assert URGENCY[oracle(with_answer(request, "history.conditions", more))["level"]] >= base
    base = URGENCY[oracle(with_answer(request, "history.medications", medications))["level"]]
    more_meds = [*medications, {"class": medication}]
    assert URGENCY[oracle(with_answer(request, "history.medications", more_meds))["level"]] >= base


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(trigger_requests())
def test_level_of_is_the_level_of_the_whole_protocol(request: dict[str, Any]) -> None:
    """The shortcut the decisive questions use gives the full oracle's level."""
    assert level_of(request) == oracle(request)["level"]
