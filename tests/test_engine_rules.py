"""Every red-flag rule of PROTOCOL.md §4: a case that fires it, and a near miss.

Each firing case also states the evidence the finding must carry: the exact
request paths and values that triggered it. A coverage test fails when a rule
of the knowledge base has no cases here.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from engine_cases import request
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from triage import evaluate
from triage.knowledge_base import RULES
from triage.result import Level

S = "symptoms"

# rule id → (fires, near miss, evidence the firing finding must contain)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], list[tuple[str, Any]]]] = {
    "RF-CONFUSION": (
        request(symptoms={"confusion": True}),
        request(symptoms={"confusion": False}),
        [("symptoms.confusion", True)],
    ),
    "RF-REDUCED-CONSCIOUSNESS": (
        request(symptoms={"drowsiness": True}),
        request(symptoms={"drowsiness": None}),
        [("symptoms.drowsiness", True)],
    ),
    "RF-UNEQUAL-PUPILS": (
        request(symptoms={"unequal_pupils": True}),
        request(symptoms={"unequal_pupils": False}),
        [("symptoms.unequal_pupils", True)],
    ),
    "RF-SEIZURE-DANGER": (
        request(
            symptoms={"seizure": True},
            twitching={"seizure_minutes": 4},
            history={"head_impact": False, "conditions": []},
        ),
        request(
            symptoms={"seizure": True},
            twitching={"seizure_minutes": 4},
            history={"head_impact": False, "conditions": ["epilepsy"]},
        ),
        [("symptoms.seizure", True)],
    ),
    "RF-AIRWAY": (
        request(symptoms={"noisy_breathing": True}),
        request(symptoms={"noisy_breathing": False, "breathing_difficulty": False}),
        [("symptoms.noisy_breathing", True)],
    ),
    "RF-CHEST-PAIN": (
        request(symptoms={"chest_pain": True}),
        request(symptoms={"chest_pain": False}),
        [("symptoms.chest_pain", True)],
    ),
    "RF-EXERTIONAL-SYNCOPE": (
        request(symptoms={"fainting_during_exercise": True}),
        request(symptoms={"fainting_during_exercise": False, "exertional_collapse": False}),
        [("symptoms.fainting_during_exercise", True)],
    ),
    "RF-HEATSTROKE": (
        request(body_temperature_c=40, symptoms={"exertional_collapse": True}),
        request(body_temperature_c=39.9, symptoms={"exertional_collapse": True}),
        [("body_temperature_c", 40), ("symptoms.exertional_collapse", True)],
    ),
    "RF-SUDDEN-NEURO-DEFICIT": (
        request(symptoms={"slurred_speech": True}, deficit_onset="gradual"),
        request(
            symptoms={"slurred_speech": True},
            deficit_onset="gradual",
            history={"head_impact": False},
        ),
        [("symptoms.slurred_speech", True)],
    ),
    "RF-THUNDERCLAP": (
        request(symptoms={"sudden_severe_headache": True}),
        request(symptoms={"sudden_severe_headache": False, "headache": True}),
        [("symptoms.sudden_severe_headache", True)],
    ),
    "RF-SPINAL": (
        request(
            symptoms={"neck_pain": True, "numbness_tingling": True},
            history={"falls_last_7_days": 1},
        ),
        request(
            symptoms={"neck_pain": True, "numbness_tingling": True},
            history={"falls_last_7_days": 0, "head_impact": False},
        ),
        [
            ("symptoms.neck_pain", True),
            ("symptoms.numbness_tingling", True),
            ("history.falls_last_7_days", 1),
        ],
    ),
    "RF-SICKLE-COLLAPSE": (
        request(
            symptoms={"muscle_cramps": True},
            activity={"intensity": "maximal"},
            history={"conditions": ["sickle_cell_trait"]},
        ),
        request(
            symptoms={"muscle_cramps": True},
            activity={"intensity": "moderate"},
            history={"conditions": ["sickle_cell_trait"]},
        ),
        [
            ("history.conditions", "sickle_cell_trait"),
            ("symptoms.muscle_cramps", True),
            ("activity.intensity", "maximal"),
        ],
    ),
    "RF-RHABDO-SYSTEMIC": (
        request(symptoms={"cola_urine": True, "no_urine_8h": True}),
        request(symptoms={"cola_urine": True, "no_urine_8h": False}),
        [("symptoms.cola_urine", True), ("symptoms.no_urine_8h", True)],
    ),
    "RF-EAH-SEVERE": (
        request(activity={"session_minutes": 200}, symptoms={"repeated_vomiting": True}),
        request(
            activity={"session_minutes": 200, "fluid_intake": "low"},
            symptoms={"repeated_vomiting": True},
        ),
        [("activity.session_minutes", 200), ("symptoms.repeated_vomiting", True)],
    ),
    "RF-SEVERE-HYPOTHERMIA": (
        request(body_temperature_c=31.9),
        request(body_temperature_c=32),
        [("body_temperature_c", 31.9)],
    ),
    "RF-LOSS-OF-CONSCIOUSNESS": (
        request(symptoms={"loss_of_consciousness": True}),
        request(symptoms={"loss_of_consciousness": False}),
        [("symptoms.loss_of_consciousness", True)],
    ),
    "RF-FAINT": (
        request(symptoms={"fainting": True}),
        request(symptoms={"fainting": False}),
        [("symptoms.fainting", True)],
    ),
    "RF-HEAD-VOMITING": (
        request(history={"head_impact": True}, symptoms={"vomiting": True}),
        request(history={"head_impact": False}, symptoms={"vomiting": True}),
        [("history.head_impact", True), ("symptoms.vomiting", True)],
    ),
    "RF-HEAD-ANTICOAGULATED": (
        request(
            history={
                "head_impact": True,
                "hours_since_head_impact": 60,
                "medications": [{"class": "anticoagulant"}],
            },
            symptoms={
                "vomiting": False,
                "dizziness": False,
                "loss_of_balance": False,
                "confusion": False,
                "drowsiness": False,
                "one_sided_weakness": False,
            },
        ),  # headache unknown: the exception cannot apply
        request(
            history={
                "head_impact": True,
                "hours_since_head_impact": 60,
                "medications": [{"class": "anticoagulant"}],
            },
            symptoms={
                "headache": False,
                "vomiting": False,
                "dizziness": False,
                "loss_of_balance": False,
                "confusion": False,
                "drowsiness": False,
                "one_sided_weakness": False,
            },
        ),
        [("history.head_impact", True), ("history.medications[0].class", "anticoagulant")],
    ),
    "RF-HEAD-NECK-PAIN": (
        request(history={"head_impact": True}, symptoms={"neck_pain": True}),
        request(history={"head_impact": True}, symptoms={"neck_pain": False}),
        [("history.head_impact", True), ("symptoms.neck_pain", True)],
    ),
    "RF-HEADACHE-RED-FLAG": (
        request(symptoms={"headache": True, "vision_changes": True}),
        request(symptoms={"headache": True, "vision_changes": False}),
        [("symptoms.headache", True), ("symptoms.vision_changes", True)],
    ),
    "RF-FOCAL-DEFICIT": (
        request(symptoms={"one_sided_weakness": True}, deficit_onset="gradual"),
        request(symptoms={"one_sided_weakness": False}),
        [("symptoms.one_sided_weakness", True)],
    ),
    "RF-SEIZURE": (
        request(twitching={"rhythmic_march": True}),
        request(twitching={"rhythmic_march": False, "loss_of_awareness": False}),
        [("twitching.rhythmic_march", True)],
    ),
    "RF-DARK-URINE": (
        request(symptoms={"cola_urine": True}),
        request(symptoms={"cola_urine": False, "dark_yellow_urine": True}),
        [("symptoms.cola_urine", True)],
    ),
    "RF-RHABDO-SUSPECT": (
        request(symptoms={"severe_muscle_pain": True, "muscle_swelling": True}),
        request(
            symptoms={
                "severe_muscle_pain": True,
                "muscle_swelling": False,
                "muscle_weakness": False,
            }
        ),
        [("symptoms.severe_muscle_pain", True), ("symptoms.muscle_swelling", True)],
    ),
    "RF-COMPARTMENT": (
        request(symptoms={"muscle_swelling": True, "numbness_tingling": True}),
        request(symptoms={"muscle_swelling": True, "numbness_tingling": False}),
        [("symptoms.muscle_swelling", True), ("symptoms.numbness_tingling", True)],
    ),
    "RF-SEVERE-WEAKNESS": (
        request(symptoms={"cannot_stand_or_walk": True}),
        request(symptoms={"cannot_stand_or_walk": False}),
        [("symptoms.cannot_stand_or_walk", True)],
    ),
    "RF-TETANY": (
        request(
            symptoms={"hand_foot_spasm": True}, history={"medications": [{"class": "diuretic"}]}
        ),
        request(
            symptoms={"hand_foot_spasm": True},
            history={"medications": [{"class": "statin"}], "conditions": []},
        ),
        [("symptoms.hand_foot_spasm", True), ("history.medications[0].class", "diuretic")],
    ),
    "RF-DYSTONIA": (
        request(twitching={"sustained_posture": True, "body_sites": ["neck"]}),
        request(
            twitching={"sustained_posture": True, "body_sites": ["calf"]},
            history={"medications": []},
        ),
        [("twitching.sustained_posture", True), ("twitching.body_sites", "neck")],
    ),
    "RF-HYPERTHERMIA": (
        request(symptoms={"high_body_temperature": True}),
        request(body_temperature_c=39.9),
        [("symptoms.high_body_temperature", True)],
    ),
    "RF-HYPOTHERMIA": (
        request(body_temperature_c=34.9),
        request(body_temperature_c=35),
        [("body_temperature_c", 34.9)],
    ),
    "RF-HEAT-VOMITING": (
        request(activity={"hot_or_humid": True}, symptoms={"vomiting": True}),
        request(activity={"hot_or_humid": False}, symptoms={"vomiting": True}),
        [("activity.hot_or_humid", True), ("symptoms.vomiting", True)],
    ),
    "RF-REPEATED-VOMITING": (
        request(symptoms={"repeated_vomiting": True}),
        request(symptoms={"repeated_vomiting": False, "vomiting": True}),
        [("symptoms.repeated_vomiting", True)],
    ),
    "RF-EAH": (
        request(activity={"fluid_intake": "excessive"}, symptoms={"headache": True}),
        request(
            activity={"fluid_intake": "adequate", "session_minutes": 179},
            symptoms={"headache": True},
        ),
        [("activity.fluid_intake", "excessive"), ("symptoms.headache", True)],
    ),
    "RF-PROLONGED-CRAMP": (
        request(twitching={"cramp_minutes": 60}),
        request(twitching={"cramp_minutes": 59.5}),
        [("twitching.cramp_minutes", 60)],
    ),
    "RF-CARDIAC-PALPITATIONS": (
        request(symptoms={"palpitations": True}, history={"conditions": ["heart_disease"]}),
        request(symptoms={"palpitations": True, "dizziness": False}, history={"conditions": []}),
        [("symptoms.palpitations", True), ("history.conditions", "heart_disease")],
    ),
    "RF-HYPOGLYCAEMIA": (
        request(blood_glucose_mmol_l=2.9),
        request(blood_glucose_mmol_l=3.0),
        [("blood_glucose_mmol_l", 2.9)],
    ),
    "RF-PRE-ECLAMPSIA": (
        request(history={"conditions": ["pregnancy"]}, symptoms={"swollen_hands": True}),
        request(history={"conditions": []}, symptoms={"swollen_hands": True}),
        [("history.conditions", "pregnancy"), ("symptoms.swollen_hands", True)],
    ),
    "RF-CONCUSSION-SYMPTOMS": (
        request(history={"head_impact": True}, symptoms={"nausea": True}),
        request(history={"head_impact": False}, symptoms={"nausea": True}),
        [("history.head_impact", True), ("symptoms.nausea", True)],
    ),
    "RF-MUSCLE-INJURY": (
        request(symptoms={"muscle_swelling": True}),
        request(symptoms={"muscle_swelling": False, "severe_muscle_pain": False}),
        [("symptoms.muscle_swelling", True)],
    ),
    "RF-STATIN-MUSCLE": (
        request(symptoms={"muscle_cramps": True}, history={"medications": [{"class": "statin"}]}),
        request(symptoms={"muscle_cramps": True}, history={"medications": []}),
        [("history.medications[0].class", "statin"), ("symptoms.muscle_cramps", True)],
    ),
    "RF-BETA-AGONIST": (
        request(
            symptoms={"muscle_cramps": True},
            history={"medications": [{"class": "beta_agonist", "doses_per_day": 4}]},
        ),
        request(
            symptoms={"muscle_cramps": True, "palpitations": False},
            history={"medications": [{"class": "beta_agonist", "doses_per_day": 3.5}]},
        ),
        [
            ("history.medications[0].class", "beta_agonist"),
            ("history.medications[0].doses_per_day", 4),
            ("symptoms.muscle_cramps", True),
        ],
    ),
    "RF-DIURETIC": (
        request(
            symptoms={"muscle_weakness": True}, history={"medications": [{"class": "diuretic"}]}
        ),
        request(
            symptoms={"muscle_weakness": False, "palpitations": False},
            history={"medications": [{"class": "diuretic"}]},
        ),
        [("history.medications[0].class", "diuretic"), ("symptoms.muscle_weakness", True)],
    ),
    "RF-DEHYDRATION": (
        request(symptoms={"no_urine_8h": True}),
        request(symptoms={"no_urine_8h": False, "dark_yellow_urine": True}),
        [("symptoms.no_urine_8h", True)],
    ),
    "RF-PALPITATIONS": (
        request(symptoms={"palpitations": True}),
        request(symptoms={"palpitations": False}),
        [("symptoms.palpitations", True)],
    ),
    "RF-NEW-WEAKNESS": (
        request(symptoms={"muscle_weakness": True}, deficit_onset="sudden"),
        request(symptoms={"muscle_weakness": True}, deficit_onset="gradual"),
        [("symptoms.muscle_weakness", True)],
    ),
    "RF-TETANY-POSSIBLE": (
        request(symptoms={"perioral_tingling": True}, twitching={"body_sites": ["face"]}),
        request(
            symptoms={"perioral_tingling": True, "muscle_cramps": False},
            twitching={"body_sites": ["calf"]},
        ),
        [("symptoms.perioral_tingling", True), ("twitching.body_sites", "face")],
    ),
    "RF-SUSTAINED-POSTURE": (
        request(twitching={"sustained_posture": True}),
        request(twitching={"sustained_posture": False}),
        [("twitching.sustained_posture", True)],
    ),
    "RF-FALL-NECK-PAIN": (
        request(symptoms={"neck_pain": True}, history={"falls_last_7_days": 1}),
        request(symptoms={"neck_pain": True}, history={"falls_last_7_days": 0}),
        [("symptoms.neck_pain", True), ("history.falls_last_7_days", 1)],
    ),
    "RF-LOW-GLUCOSE": (
        request(blood_glucose_mmol_l=3.9),
        request(blood_glucose_mmol_l=4.0),
        [("blood_glucose_mmol_l", 3.9)],
    ),
    "RF-PREGNANCY-HEADACHE": (
        request(history={"conditions": ["pregnancy"]}, symptoms={"headache": True}),
        request(history={"conditions": ["pregnancy"]}, symptoms={"headache": False}),
        [("history.conditions", "pregnancy"), ("symptoms.headache", True)],
    ),
    "RF-UNDER-4": (
        request(patient={"age_years": 3}),
        request(patient={"age_years": 4}),
        [("patient.age_years", 3)],
    ),
    "RF-PERSISTENT": (
        request(twitching={"duration_days": 15, "body_sites": ["eyelid"]}),  # tic features unknown
        request(
            patient={"age_years": 12},
            twitching={
                "duration_days": 15,
                "body_sites": ["eyelid"],
                "suppressible": True,
                "spreading": False,
            },
        ),  # an established tic pattern
        [("twitching.duration_days", 15)],
    ),
    "RF-MULTIPLE-REGIONS": (
        request(twitching={"body_sites": ["calf", "forearm_hand"]}),  # timing unknown
        request(twitching={"body_sites": ["calf", "forearm_hand"], "timing": "falling_asleep"}),
        [("twitching.body_sites", "calf"), ("twitching.body_sites", "forearm_hand")],
    ),
    "RF-NEUROMUSCULAR": (
        request(symptoms={"difficulty_swallowing": True}, deficit_onset="gradual"),
        request(
            symptoms={"difficulty_swallowing": True, "muscle_wasting": False},
            deficit_onset="sudden",
        ),
        [("deficit_onset", "gradual"), ("symptoms.difficulty_swallowing", True)],
    ),
    "RF-HEMIFACIAL": (
        request(twitching={"side": "left", "body_sites": ["eyelid", "jaw"], "duration_days": 15}),
        request(twitching={"side": "both", "body_sites": ["eyelid", "jaw"], "duration_days": 15}),
        [
            ("twitching.side", "left"),
            ("twitching.body_sites", "eyelid"),
            ("twitching.body_sites", "jaw"),
            ("twitching.duration_days", 15),
        ],
    ),
    "RF-TIC-TROUBLESOME": (
        request(twitching={"urge_before": True, "painful": True, "body_sites": ["calf"]}),
        request(
            twitching={
                "urge_before": True,
                "painful": False,
                "impact": "mild",
                "duration_days": 364,
            }
        ),
        [("twitching.urge_before", True), ("twitching.painful", True)],
    ),
    "RF-MEDICATION": (
        request(history={"medications": [{"class": "statin", "days_since_start": 90}]}),
        request(history={"medications": [{"class": "statin", "days_since_start": 91}]}),
        [
            ("history.medications[0].class", "statin"),
            ("history.medications[0].days_since_start", 90),
        ],
    ),
    "RF-SLEEP-DISRUPTION": (
        request(symptoms={"sleep_disruption": True}),
        request(symptoms={"sleep_disruption": False}),
        [("symptoms.sleep_disruption", True)],
    ),
    "RF-SELF-CARE-FAILED": (
        request(history={"self_care_tried": True, "previous_episodes": True}),
        request(
            history={"self_care_tried": True, "previous_episodes": False},
            twitching={"duration_days": 7},
        ),
        [("history.self_care_tried", True), ("history.previous_episodes", True)],
    ),
    "RF-SCREEN-INCOMPLETE": (
        request(),
        request(
            symptoms={
                "confusion": False,
                "drowsiness": False,
                "loss_of_consciousness": False,
                "fainting": False,
                "exertional_collapse": False,
                "chest_pain": False,
                "palpitations": False,
                "breathing_difficulty": False,
                "seizure": False,
                "slurred_speech": False,
                "one_sided_weakness": False,
                "cola_urine": False,
                "muscle_weakness": False,
                "severe_muscle_pain": False,
            },
            history={"head_impact": False},
        ),
        [("symptoms.confusion", None), ("history.head_impact", None)],
    ),
}

NEW_IN_1_1 = {
    "RF-HEAD-NEURO": (
        request(history={"head_impact": True}, symptoms={"vision_changes": True}),
        request(history={"head_impact": False}, symptoms={"vision_changes": True}),
        [("history.head_impact", True), ("symptoms.vision_changes", True)],
    ),
    "RF-TOXIC-HYPERTHERMIA": (
        request(
            history={"medications": [{"class": "serotonergic", "days_since_start": 200}]},
            body_temperature_c=38.0,
        ),
        request(
            history={"medications": [{"class": "serotonergic", "days_since_start": 200}]},
            body_temperature_c=37.9,
        ),
        [("history.medications[0].class", "serotonergic"), ("body_temperature_c", 38.0)],
    ),
    "RF-FEVER": (
        request(body_temperature_c=38.0),
        request(body_temperature_c=37.9),
        [("body_temperature_c", 38.0)],
    ),
    "RF-CAFFEINE-EXCESS": (
        request(patient={"age_years": 17}, history={"caffeine_mg_per_day": 400}),
        request(patient={"age_years": 18}, history={"caffeine_mg_per_day": 1199}),
        [("patient.age_years", 17), ("history.caffeine_mg_per_day", 400)],
    ),
    "RF-RECREATIONAL-STIMULANTS": (
        request(history={"recreational_stimulants": True}),
        request(history={"recreational_stimulants": False}),
        [("history.recreational_stimulants", True)],
    ),
    "RF-INTERFERES": (
        request(twitching={"impact": "interferes", "body_sites": ["calf"]}),
        request(
            patient={"age_years": 9},
            twitching={
                "impact": "interferes",
                "body_sites": ["neck"],
                "suppressible": True,
                "spreading": False,
            },
        ),  # an established tic pattern (RF-TIC-TROUBLESOME covers it instead)
        [("twitching.impact", "interferes")],
    ),
}
CASES.update(NEW_IN_1_1)

RULE_BY_ID = {rule.id: rule for rule in RULES}


@pytest.mark.parametrize("rule_id", list(NEW_IN_1_1))
def test_new_rule_of_1_1_carries_exactly_its_evidence(rule_id):
    fires, _, evidence = NEW_IN_1_1[rule_id]
    finding = next(f for f in evaluate(fires).rules if f.rule_id == rule_id)
    assert [(answer.path, answer.value) for answer in finding.evidence] == evidence


def test_caffeine_limits_for_adults():
    adult = {"age_years": 18}
    assert (
        "RF-CAFFEINE-EXCESS"
        in evaluate(request(patient=adult, history={"caffeine_mg_per_day": 1200})).rule_ids
    )
    assert (
        "RF-CAFFEINE-EXCESS"
        not in evaluate(
            request(patient={"age_years": 17}, history={"caffeine_mg_per_day": 399})
        ).rule_ids
    )


def test_toxic_hyperthermia_on_stimulant_drugs_with_a_high_temperature_answer():
    result = evaluate(
        request(history={"recreational_stimulants": True}, symptoms={"high_body_temperature": True})
    )
    assert {"RF-TOXIC-HYPERTHERMIA", "RF-HYPERTHERMIA"} <= set(result.rule_ids)
    assert "ADV-COOL-NOW" in result.advice_codes
    assert "ADV-LABS" in result.advice_codes


def test_every_rule_has_a_firing_case_and_a_near_miss():
    assert set(CASES) == set(RULE_BY_ID)


@pytest.mark.parametrize("rule_id", list(CASES))
def test_rule_fires_with_its_evidence(rule_id):
    fires, _, evidence = CASES[rule_id]
    result = evaluate(fires)
    findings = {finding.rule_id: finding for finding in result.rules}
    assert rule_id in findings
    finding = findings[rule_id]
    rule = RULE_BY_ID[rule_id]
    assert finding.level is rule.level
    assert (finding.display, finding.rationale, finding.source) == (
        rule.display,
        rule.rationale,
        rule.source,
    )
    assert finding.condition == rule.condition
    got = {(answer.path, answer.value) for answer in finding.evidence}
    assert set(evidence) <= got
    assert result.level >= rule.level


@pytest.mark.parametrize("rule_id", list(CASES))
def test_rule_near_miss_does_not_fire(rule_id):
    _, near_miss, _ = CASES[rule_id]
    assert rule_id not in evaluate(near_miss).rule_ids


@pytest.mark.parametrize(
    "overlay",
    [
        {"history": {"conditions": ["epilepsy"], "head_impact": False}},  # minutes unknown
        {"history": {"conditions": ["epilepsy"]}, "twitching": {"seizure_minutes": 2}},
        {"history": {"head_impact": False}, "twitching": {"seizure_minutes": 2}},  # list unknown
        {
            "history": {"conditions": ["epilepsy"], "head_impact": False},
            "twitching": {"seizure_minutes": 5},
        },
        {
            "history": {"conditions": ["epilepsy"], "head_impact": True},
            "twitching": {"seizure_minutes": 1},
        },
    ],
)
def test_seizure_exception_needs_every_answer_known_and_reassuring(overlay):
    result = evaluate(request(symptoms={"seizure": True}, **overlay))
    assert "RF-SEIZURE-DANGER" in result.rule_ids
    assert result.level is Level.EMERGENCY_AMBULANCE


def test_eah_risk_counts_unknown_fluid_intake_as_a_risk():
    long_session = {"session_minutes": 180}
    unknown = evaluate(request(activity=long_session, symptoms={"swollen_hands": True}))
    adequate = evaluate(
        request(
            activity={**long_session, "fluid_intake": "adequate"},
            symptoms={"swollen_hands": True},
        )
    )
    none = evaluate(
        request(activity={**long_session, "fluid_intake": "none"}, symptoms={"swollen_hands": True})
    )
    assert "RF-EAH" in unknown.rule_ids
    assert "RF-EAH" in adequate.rule_ids
    assert "RF-EAH" not in none.rule_ids


def test_whole_body_counts_as_every_region():
    result = evaluate(request(twitching={"body_sites": ["whole_body"], "sustained_posture": True}))
    assert {"RF-MULTIPLE-REGIONS", "RF-DYSTONIA"} <= set(result.rule_ids)


def test_spreading_makes_multiple_regions_even_when_falling_asleep():
    result = evaluate(request(twitching={"spreading": True, "timing": "falling_asleep"}))
    assert "RF-MULTIPLE-REGIONS" in result.rule_ids


def test_tic_pattern_needs_every_site_in_face_neck_or_shoulder():
    tic = {"suppressible": True, "duration_days": 30, "spreading": False}
    child = {"age_years": 10}
    inside = evaluate(
        request(patient=child, twitching={**tic, "body_sites": ["eyelid", "shoulder"]})
    )
    outside = evaluate(request(patient=child, twitching={**tic, "body_sites": ["eyelid", "calf"]}))
    assert "RF-PERSISTENT" not in inside.rule_ids
    assert {"RF-PERSISTENT", "RF-MULTIPLE-REGIONS"} <= set(outside.rule_ids)


def test_medication_with_an_omitted_start_date_counts_as_recent():
    # PROTOCOL.md 1.1 §4: RF-MEDICATION "with days_since_start ≤ 90 or omitted".
    result = evaluate(request(history={"medications": [{"class": "statin"}]}))
    assert "RF-MEDICATION" in result.rule_ids
    finding = next(f for f in result.rules if f.rule_id == "RF-MEDICATION")
    assert [(a.path, a.value) for a in finding.evidence] == [
        ("history.medications[0].class", "statin")
    ]
    other = evaluate(request(history={"medications": [{"class": "other"}]}))
    assert "RF-MEDICATION" not in other.rule_ids


def test_serotonergic_medicines_are_reviewed_when_recent():
    recent = {"medications": [{"class": "serotonergic", "days_since_start": 10}]}
    old = {"medications": [{"class": "serotonergic", "days_since_start": 91}]}
    assert "RF-MEDICATION" in evaluate(request(history=recent)).rule_ids
    assert "RF-MEDICATION" not in evaluate(request(history=old)).rule_ids


@pytest.mark.parametrize(
    ("patient", "twitching", "conditions", "fires"),
    [
        ({"age_years": 12}, {"spreading": False}, None, False),  # a child's tic pattern
        ({"age_years": 12}, {}, None, True),  # spreading unknown: not established
        ({"age_years": 12}, {"spreading": True}, None, True),
        ({"age_years": 30}, {"spreading": False}, None, True),  # adult onset
        ({"age_years": 30}, {"spreading": False}, ["tic_disorder"], False),
        ({"age_years": 30}, {"spreading": False}, [], True),
        ({"age_years": 17}, {"spreading": False}, None, False),
        ({"age_years": 18}, {"spreading": False}, None, True),
    ],
)
def test_tic_pattern_of_1_1_needs_spreading_false_and_a_child_or_known_tics(
    patient, twitching, conditions, fires
):
    history = {} if conditions is None else {"conditions": conditions}
    result = evaluate(
        request(
            patient=patient,
            twitching={"body_sites": ["eyelid"], "urge_before": True, "duration_days": 30}
            | twitching,
            history=history,
        )
    )
    assert ("RF-PERSISTENT" in result.rule_ids) is fires


def test_unknown_tic_features_leave_interferes_free_to_fire():
    result = evaluate(request(twitching={"body_sites": ["eyelid"], "impact": "interferes"}))
    assert "RF-INTERFERES" in result.rule_ids


def test_concussion_symptoms_after_falls_without_a_known_head_knock():
    result = evaluate(request(history={"falls_last_7_days": 1}, symptoms={"dizziness": True}))
    finding = next(f for f in result.rules if f.rule_id == "RF-CONCUSSION-SYMPTOMS")
    assert [(a.path, a.value) for a in finding.evidence] == [
        ("history.falls_last_7_days", 1),
        ("symptoms.dizziness", True),
    ]
    assert "ADV-NO-SAME-DAY-RETURN" in result.advice_codes
    none = evaluate(request(history={"falls_last_7_days": 0}, symptoms={"dizziness": True}))
    assert "RF-CONCUSSION-SYMPTOMS" not in none.rule_ids


@pytest.mark.parametrize("sign", ["rhythmic_march", "loss_of_awareness"])
def test_focal_seizure_signs_after_a_head_knock_call_an_ambulance(sign):
    after = evaluate(request(history={"head_impact": True}, twitching={sign: True}))
    assert "RF-SEIZURE-DANGER" in after.rule_ids
    assert after.level is Level.EMERGENCY_AMBULANCE
    finding = next(f for f in after.rules if f.rule_id == "RF-SEIZURE-DANGER")
    assert {(a.path, a.value) for a in finding.evidence} == {
        ("history.head_impact", True),
        (f"twitching.{sign}", True),
    }
    without = evaluate(request(history={"head_impact": False}, twitching={sign: True}))
    assert "RF-SEIZURE-DANGER" not in without.rule_ids
    unknown = evaluate(request(twitching={sign: True}))
    assert "RF-SEIZURE-DANGER" not in unknown.rule_ids  # a trigger needs answers present


@pytest.mark.parametrize(
    ("activity", "temperature", "high"),
    [
        ({"hot_or_humid": True}, 39.0, True),
        ({"intensity": "high"}, 39.0, True),
        ({"intensity": "maximal"}, 39.5, True),
        ({"intensity": "moderate"}, 39.5, False),
        ({}, 39.9, False),
        ({}, 40.0, True),
        ({"hot_or_humid": True}, 38.9, False),
    ],
)
def test_high_temperature_of_1_1_counts_39_in_heat_or_hard_exercise(activity, temperature, high):
    result = evaluate(request(activity=activity, body_temperature_c=temperature))
    assert ("RF-HYPERTHERMIA" in result.rule_ids) is high


def test_rules_are_reported_most_urgent_first_then_in_table_order():
    result = evaluate(
        request(
            symptoms={"sleep_disruption": True, "palpitations": True, "chest_pain": True},
            twitching={"duration_days": 30},
        )
    )
    order = [rule.id for rule in RULES]
    assert list(result.rule_ids) == sorted(
        result.rule_ids, key=lambda i: (-RULE_BY_ID[i].level, order.index(i))
    )
    assert result.rule_ids[0] == "RF-CHEST-PAIN"
    assert result.rule_ids[-1] == "RF-SCREEN-INCOMPLETE"


def test_beta_agonist_doses_add_up_over_repeated_entries():
    """Safer reading: two relievers at 2 doses a day are 4 doses a day."""
    two_inhalers = {
        "medications": [
            {"class": "beta_agonist", "doses_per_day": 2},
            {"class": "beta_agonist", "doses_per_day": 2},
        ]
    }
    result = evaluate(request(symptoms={"muscle_cramps": True}, history=two_inhalers))
    finding = next(f for f in result.rules if f.rule_id == "RF-BETA-AGONIST")
    paths = {answer.path for answer in finding.evidence}
    assert {"history.medications[0].doses_per_day", "history.medications[1].doses_per_day"} <= paths
    unknown_doses = {"medications": [{"class": "beta_agonist"}, {"class": "beta_agonist"}]}
    assert (
        "RF-BETA-AGONIST"
        not in evaluate(
            request(symptoms={"muscle_cramps": True, "palpitations": False}, history=unknown_doses)
        ).rule_ids
    )


@st.composite
def _doses_near_four(draw: st.DrawFn) -> list[Decimal]:
    """1 to 4 doses in hundredths whose total is 3.99, 4 or 4.01 (where float sums slip)."""
    parts = draw(st.lists(st.integers(0, 400), min_size=0, max_size=3))
    last = draw(st.sampled_from([399, 400, 401])) - sum(parts)
    assume(last >= 0)
    cents = [*parts, last]
    return [Decimal(c) / 100 for c in draw(st.permutations(cents))]


@settings(max_examples=400, deadline=None)
@given(_doses_near_four())
def test_beta_agonist_doses_are_added_as_written(doses):
    """The total is the decimal sum of the doses as sent (0.7 + 1.4 + 1.9 is 4), never a
    binary-float sum that falls short of the threshold."""
    medications = [{"class": "beta_agonist", "doses_per_day": float(d)} for d in doses]
    result = evaluate(
        request(
            symptoms={"muscle_cramps": True, "palpitations": False},
            history={"medications": medications},
        )
    )
    assert ("RF-BETA-AGONIST" in result.rule_ids) == (sum(doses) >= 4)


def test_whole_body_counts_as_every_site_for_hemifacial_spasm():
    """Safer reading: whole_body includes the eyelid and the face."""
    twitching = {"body_sites": ["whole_body"], "side": "left", "duration_days": 15}
    assert "RF-HEMIFACIAL" in evaluate(request(twitching=twitching)).rule_ids
