"""Contributing factors (PROTOCOL.md §6) and advice (§7), entry by entry."""

from __future__ import annotations

from typing import Any

import pytest
from engine_cases import request, screened

from triage import evaluate
from triage.knowledge_base import ADVICE, FACTORS
from triage.result import Likelihood

# factor code → (request, expected points or None when not reported)
FACTOR_CASES: dict[str, list[tuple[dict[str, Any], int | None]]] = {
    "CF-TRAINING-LOAD": [
        (
            request(
                activity={
                    "session_minutes": 90, "rest_minutes_per_session": 9,
                    "sessions_per_week": 6, "recent_load_increase": True, "intensity": "maximal",
                },
                symptoms={"fatigue": True},
            ),
            6,
        ),
        (request(activity={"session_minutes": 59, "rest_minutes_per_session": 0}), None),
        (request(activity={"session_minutes": 60, "rest_minutes_per_session": 0}), 1),
    ],
    "CF-FLUID-ELECTROLYTE-LOSS": [
        (
            request(
                activity={"heavy_sweating": True, "hot_or_humid": True, "fluid_intake": "none"},
                symptoms={"excessive_thirst": True, "dark_yellow_urine": True,
                          "no_urine_8h": True, "muscle_cramps": True},
                history={"medications": [{"class": "diuretic"}]},
            ),
            7,
        ),
        (request(activity={"heavy_sweating": True, "fluid_intake": "excessive"}), None),
        (request(activity={"fluid_intake": "adequate"}), None),
    ],
    "CF-OVERHYDRATION": [
        (
            request(activity={"fluid_intake": "excessive", "session_minutes": 240},
                    symptoms={"swollen_hands": True}),
            4,
        ),
        (request(activity={"session_minutes": 300}, symptoms={"swollen_hands": True}), None),
    ],
    "CF-HEAT-STRAIN": [
        (request(body_temperature_c=40.5, activity={"hot_or_humid": True},
                 symptoms={"nausea": True}), 3),
        (request(activity={"hot_or_humid": True}, symptoms={"nausea": False}), None),
    ],
    "CF-FALLS-HEAD-INJURY": [
        (request(history={"head_impact": True, "falls_last_7_days": 3}), 4),
        (request(history={"falls_last_7_days": 2}), 1),
        (request(history={"head_impact": False, "falls_last_7_days": 0}), None),
    ],
    "CF-STRESS-SLEEP": [
        (request(symptoms={"anxiety_stress": True},
                 history={"short_sleep": True, "conditions": ["anxiety_disorder"]}), 3),
        (request(history={"short_sleep": False}), None),
    ],
    "CF-STIMULANTS": [
        (request(history={"caffeine_mg_per_day": 401, "energy_drinks": True,
                          "medications": [{"class": "adhd_stimulant"},
                                          {"class": "beta_agonist"}]}), 5),
        (request(patient={"age_years": 17},
                 history={"caffeine_mg_per_day": 101, "energy_drinks": True}), 4),
        (request(history={"caffeine_mg_per_day": 400}), None),
        (request(patient={"age_years": 17}, history={"caffeine_mg_per_day": 100}), None),
        (request(history={"recreational_stimulants": True}), 2),
        (request(history={"recreational_stimulants": False}), None),
    ],
    "CF-MEDICATION-EFFECT": [
        (request(history={"medications": [
            {"class": "statin", "days_since_start": 30},
            {"class": "statin", "days_since_start": 400},
            {"class": "corticosteroid"},
            {"class": "anticoagulant", "days_since_start": 3},
        ]}), 4),
        (request(history={"medications": [{"class": "other", "days_since_start": 1}]}), None),
        (request(history={"medications": [{"class": "serotonergic", "days_since_start": 90},
                                          {"class": "serotonergic", "days_since_start": 91}]}), 3),
    ],
    "CF-LOW-BLOOD-SUGAR": [
        (request(activity={"ate_before_exercise": False}, blood_glucose_mmol_l=3.9,
                 history={"medications": [{"class": "insulin_or_sulfonylurea"}],
                          "conditions": ["diabetes"]}), 5),
        (request(activity={"ate_before_exercise": True}, blood_glucose_mmol_l=4.0), None),
    ],
    "CF-WARM-UP-COOL-DOWN": [
        (request(activity={"warm_up": False, "cool_down": False}), 2),
        (request(activity={"warm_up": True}), None),  # cool_down unknown is not "false"
    ],
    "CF-COLD": [
        (request(activity={"cold_exposure": True}, body_temperature_c=34), 3),
        (request(activity={"cold_exposure": False}, body_temperature_c=35), None),
    ],
    "CF-ALCOHOL": [
        (request(history={"alcohol_units_per_week": 15}), 1),
        (request(history={"alcohol_units_per_week": 14}), None),
    ],
    "CF-TIC-PATTERN": [
        (request(patient={"age_years": 9},
                 twitching={"body_sites": ["eyelid"], "suppressible": True, "urge_before": True,
                            "spreading": False},
                 history={"conditions": ["tic_disorder"]},
                 symptoms={"anxiety_stress": True, "fatigue": True}), 5),
        (request(patient={"age_years": 3}, twitching={"body_sites": ["face"],
                                                     "urge_before": True, "spreading": False}), 1),
        (request(patient={"age_years": 9},
                 twitching={"body_sites": ["thigh"], "suppressible": True}), None),
    ],
    "CF-NEUROMUSCULAR": [
        (request(symptoms={"muscle_wasting": True}, deficit_onset="gradual",
                 twitching={"spreading": True, "progression": "worsening"},
                 history={"conditions": ["neuromuscular_disease"]}), 6),
        (request(symptoms={"muscle_weakness": True}), None),  # gate open, no point
        (request(deficit_onset="gradual", twitching={"progression": "worsening"}), None),
    ],
    "CF-BENIGN-FASCICULATION": [
        (screened(twitching={"timing": "at_rest", "duration_days": 14}), 4),
        (screened(twitching={"body_sites": ["calf", "thigh"], "spreading": False}), 2),
        (request(twitching={"timing": "at_rest", "duration_days": 3}), None),  # not self_care
        (screened(twitching={"timing": "at_rest", "painful": True}), None),  # 1.1: painful
        (screened(twitching={"timing": "at_rest", "painful": False}), 3),
        (screened(patient={"age_years": 17}, twitching={"body_sites": ["neck"],  # a child's neck
              "timing": "at_rest", "loss_of_awareness": False, "rhythmic_march": False,
              "sustained_posture": False}), None),
        (screened(patient={"age_years": 18}, twitching={"body_sites": ["neck"],
              "timing": "at_rest", "loss_of_awareness": False, "rhythmic_march": False,
              "sustained_posture": False}), 3),
    ],
}  # fmt: skip


def test_every_factor_has_cases():
    assert set(FACTOR_CASES) == {factor.code for factor in FACTORS}


@pytest.mark.parametrize(
    ("code", "case", "points"),
    [(code, case, points) for code, cases in FACTOR_CASES.items() for case, points in cases],
)
def test_factor_points(code, case, points):
    reported = {factor.code: factor for factor in evaluate(case).factors}
    if points is None:
        assert code not in reported
        return
    factor = reported[code]
    assert factor.points == points
    assert factor.likelihood is Likelihood.for_points(points)
    assert sum(point.points for point in factor.breakdown) == points


@pytest.mark.parametrize(("points", "likelihood"), [(1, "low"), (2, "moderate"), (3, "high")])
def test_likelihood_thresholds(points, likelihood):
    assert Likelihood.for_points(points).value == likelihood


def test_factors_most_points_first_ties_in_table_order():
    result = evaluate(
        request(
            activity={"warm_up": False, "cool_down": False, "heavy_sweating": True,
                      "hot_or_humid": True, "session_minutes": 95},
            history={"alcohol_units_per_week": 20},
        )
    )  # fmt: skip
    assert result.factor_points == (
        ("CF-FLUID-ELECTROLYTE-LOSS", 2),
        ("CF-WARM-UP-COOL-DOWN", 2),
        ("CF-TRAINING-LOAD", 1),
        ("CF-ALCOHOL", 1),
    )


def test_medication_points_carry_each_entry_as_evidence():
    result = evaluate(
        request(history={"medications": [{"class": "other"}, {"class": "statin",
                                                              "days_since_start": 10}]})
    )  # fmt: skip
    factor = next(f for f in result.factors if f.code == "CF-MEDICATION-EFFECT")
    paths = [answer.path for answer in factor.evidence]
    assert paths == ["history.medications[1].class", "history.medications[1].days_since_start"]


# advice code → (a request that gets it, a request that does not)
ADVICE_CASES: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "ADV-CALL-AMBULANCE": (request(symptoms={"chest_pain": True}), request()),
    "ADV-GO-TO-ED": (request(symptoms={"fainting": True}), request(symptoms={"chest_pain": True})),
    "ADV-SEE-WITHIN-24H": (request(symptoms={"palpitations": True}), request()),
    "ADV-SEE-CLINICIAN": (request(), screened()),
    "ADV-CHECK-GLUCOSE": (request(history={"conditions": ["diabetes"]}),
                          request(blood_glucose_mmol_l=4.0, history={"conditions": []})),
    "ADV-COOL-NOW": (request(activity={"intensity": "high"}, symptoms={"drowsiness": True}),
                     request(activity={"intensity": "moderate"}, symptoms={"drowsiness": True})),
    "ADV-STOP-TRAINING": (request(), screened()),
    "ADV-NO-SAME-DAY-RETURN": (request(history={"head_impact": True}),
                               request(history={"head_impact": False})),
    "ADV-DO-NOT-DRINK-MORE": (request(activity={"session_minutes": 200},
                                      symptoms={"vomiting": True}),
                              request(activity={"fluid_intake": "adequate"})),
    "ADV-HYDRATE": (screened(activity={"heavy_sweating": True}),
                    screened(activity={"heavy_sweating": True, "session_minutes": 200},
                             symptoms={"swollen_hands": True})),
    "ADV-REDUCE-LOAD": (screened(activity={"sessions_per_week": 7}), screened()),
    "ADV-WARM-UP-COOL-DOWN": (screened(activity={"warm_up": False}), screened()),
    "ADV-NUTRITION": (screened(activity={"ate_before_exercise": False}), screened()),
    "ADV-CUT-STIMULANTS": (screened(history={"alcohol_units_per_week": 30}), screened()),
    "ADV-STRESS-SLEEP": (screened(history={"short_sleep": True}), screened()),
    "ADV-MEDICATION-REVIEW": (screened(history={"medications": [{"class": "statin"}]}),
                              screened(history={"medications": [{"class": "other"}]})),
    "ADV-LABS": (request(symptoms={"muscle_swelling": True}), request()),
    "ADV-TIC-GUIDANCE": (screened(patient={"age_years": 8},
                                  twitching={"body_sites": ["eyelid"], "suppressible": True,
                                             "spreading": False}),
                         screened(patient={"age_years": 8},
                                  twitching={"body_sites": ["calf"], "suppressible": True,
                                             "spreading": False})),
    "ADV-SAFETY-NET": (screened(), None),
}  # fmt: skip


def test_every_advice_entry_has_cases():
    assert set(ADVICE_CASES) == {advice.code for advice in ADVICE}


@pytest.mark.parametrize("code", list(ADVICE_CASES))
def test_advice_given_and_withheld(code):
    given, withheld = ADVICE_CASES[code]
    assert code in evaluate(given).advice_codes
    if withheld is not None:
        assert code not in evaluate(withheld).advice_codes


def test_advice_follows_table_order_and_says_why():
    result = evaluate(request(symptoms={"cola_urine": True}, history={"head_impact": True}))
    table = [advice.code for advice in ADVICE]
    codes = list(result.advice_codes)
    assert codes == sorted(codes, key=table.index)
    assert all(advice.because for advice in result.advice)
    labs = next(a for a in result.advice if a.code == "ADV-LABS")
    assert labs.because == ("RF-DARK-URINE",)


def test_see_clinician_within_two_weeks_when_neuromuscular_fired():
    result = evaluate(screened(symptoms={"muscle_wasting": True}))
    advice = next(a for a in result.advice if a.code == "ADV-SEE-CLINICIAN")
    assert "2 weeks" in advice.text
    plain = next(a for a in evaluate(request()).advice if a.code == "ADV-SEE-CLINICIAN")
    assert "2 weeks" not in plain.text
