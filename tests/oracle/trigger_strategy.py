"""A request strategy biased towards firing PROTOCOL.md rules, factors and advice.

``tests/strategies.requests()`` draws every field uniformly, so most requests stop
at RF-SCREEN-INCOMPLETE and few reach the rare combinations. This strategy:

* usually answers the §5 screen (often all false), so other rules decide the level;
* sets a few symptoms true at a time (the combinations rules test);
* draws numbers at and either side of every protocol threshold;
* favours head impact with its follow-ups, tic patterns (suppressible / urge on
  eyelid-face-jaw-neck-shoulder), whole_body, medications with days and doses,
  and condition lists, including the reassuring ones of the exceptions;
* favours the conditions of the §5 (1.1) follow-up rows — head impact, falls,
  headache, palpitations, cramps in hard exercise, vomiting, tetany signs and
  risks, sustained posture, heat, EAH risk, listed diuretic / dopamine blocker /
  insulin / statin / serotonergic, sickle cell trait, pregnancy, stimulants — and
  in "complete" requests answers every follow-up item, so the other rules decide.

The vocabulary is PROTOCOL.md §3 as written out in ``protocol_oracle`` (not the
engine's), so the generators stay independent of the engine too. Every generated
request satisfies the §3 schema (same vocabulary, same ranges).
"""

from __future__ import annotations

import functools
from typing import Any

from hypothesis import strategies as st

from .protocol_oracle import (
    BODY_SITES,
    CONDITIONS,
    FLUID_INTAKES,
    INTENSITIES,
    MEDICATION_CLASSES,
    RESPONDENTS,
    SYMPTOMS,
)

OMIT = object()

SYMPTOM_NAMES = SYMPTOMS
SCREEN_SYMPTOMS = (
    "confusion",
    "drowsiness",
    "loss_of_consciousness",
    "fainting",
    "exertional_collapse",
    "chest_pain",
    "palpitations",
    "breathing_difficulty",
    "seizure",
    "slurred_speech",
    "one_sided_weakness",
    "cola_urine",
    "muscle_weakness",
    "severe_muscle_pain",
)
HEAD_FOLLOW_UPS = (
    "headache",
    "vomiting",
    "dizziness",
    "loss_of_balance",
    "worsening_headache",
    "neck_pain",
)
#: Every symptom a §5 follow-up row may ask (answered false in "complete" requests).
FOLLOW_UP_SYMPTOMS = (
    *HEAD_FOLLOW_UPS, "nausea", "foggy_thinking", "vision_changes", "unequal_pupils",
    "numbness_tingling", "fainting_during_exercise", "sudden_severe_headache",
    "muscle_swelling", "repeated_vomiting", "hand_foot_spasm", "perioral_tingling",
    "high_body_temperature", "swollen_hands", "muscle_cramps",
)  # fmt: skip
#: Symptoms whose "yes" opens a §5 follow-up row.
FOLLOW_UP_TRIGGERS = (
    "neck_pain", "fainting", "headache", "vomiting", "nausea", "swollen_hands", "palpitations",
    "severe_muscle_pain", "muscle_swelling", "muscle_cramps", "hand_foot_spasm",
    "perioral_tingling",
)  # fmt: skip
#: Medication classes and conditions that open a §5 follow-up row (or a rule).
FOLLOW_UP_CLASSES = (
    "diuretic", "dopamine_blocker", "insulin_or_sulfonylurea", "statin", "serotonergic",
    "anticoagulant", "beta_agonist",
)  # fmt: skip
FOLLOW_UP_CONDITIONS = (
    "thyroid_or_parathyroid_surgery", "kidney_disease", "diabetes", "sickle_cell_trait",
    "pregnancy", "heart_disease", "family_sudden_death_under_50", "epilepsy", "tic_disorder",
    "bleeding_disorder",
)  # fmt: skip
SITE_CODES = BODY_SITES
TIC_SITES = ("eyelid", "face", "jaw", "neck", "shoulder")
CONDITION_CODES = CONDITIONS
MEDICATION_CODES = MEDICATION_CLASSES


def _maybe(values: st.SearchStrategy[Any], *, p_omit: int = 1) -> st.SearchStrategy[Any]:
    """The value, or omitted, or null."""
    return st.one_of(values, _OMIT_OR_NULL[p_omit])


_OMIT_OR_NULL = {p: st.sampled_from([OMIT] * p + [None]) for p in (1, 2, 6)}


@functools.cache
def _maybe_of(values: tuple[Any, ...], p_omit: int = 1) -> st.SearchStrategy[Any]:
    """One of the values, or omitted, or null (built once: hypothesis validates
    every new strategy object, which dominated generation time)."""
    return _maybe(st.sampled_from(values), p_omit=p_omit)


_TRI = {
    "any": st.sampled_from([True, False, None, OMIT]),
    "true": st.sampled_from([True, True, True, False, None, OMIT]),
    "false": st.sampled_from([False, False, False, True, None, OMIT]),
}


def tri(bias: str = "any") -> st.SearchStrategy[Any]:
    """A tri-state answer (True / False / null / omitted), optionally biased."""
    return _TRI[bias]


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not OMIT:
        target[key] = value


def _near(*values: float) -> st.SearchStrategy[Any]:
    return _maybe_of(values)


_CLASS = st.sampled_from(MEDICATION_CODES) | st.sampled_from(FOLLOW_UP_CLASSES)
_CONDITION = st.sampled_from(CONDITION_CODES) | st.sampled_from(FOLLOW_UP_CONDITIONS)


@st.composite
def _medication(draw: st.DrawFn) -> dict[str, Any]:
    med: dict[str, Any] = {"class": draw(_CLASS)}
    _put(med, "days_since_start", draw(_near(0, 30, 90, 91, 365)))
    _put(med, "doses_per_day", draw(_near(0, 1, 2, 3.9, 4, 4.0, 8)))
    return med


_MEDICATIONS = _maybe(st.lists(_medication(), max_size=3))
_CONDITIONS = _maybe(st.lists(_CONDITION, max_size=3, unique=True))


@st.composite
def _sites(draw: st.DrawFn) -> list[str]:
    kind = draw(st.sampled_from(["tic", "one", "any", "whole", "face"]))
    if kind == "tic":
        pool: tuple[str, ...] = TIC_SITES
    elif kind == "whole":
        other = draw(st.sampled_from([c for c in SITE_CODES if c != "whole_body"]))
        return draw(st.permutations(["whole_body", other]))[: draw(st.integers(1, 2))]
    elif kind == "face":
        pool = ("eyelid", "face", "jaw")
    elif kind == "one":
        return [draw(st.sampled_from(SITE_CODES))]
    else:
        pool = SITE_CODES
    return draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4, unique=True))


#: Symptoms that fire no rule on their own (they feed factors and combinations).
MILD_SYMPTOMS = (
    "fatigue",
    "anxiety_stress",
    "muscle_cramps",
    "dark_yellow_urine",
    "excessive_thirst",
    "nausea",
    "dizziness",
    "headache",
    "numbness_tingling",
    "swollen_hands",
    "vomiting",
    "vision_changes",
    "neck_pain",
    "perioral_tingling",
    "muscle_swelling",
    "loss_of_balance",
    "foggy_thinking",
    "high_body_temperature",
)


@st.composite
def trigger_requests(draw: st.DrawFn) -> dict[str, Any]:  # noqa: PLR0912, PLR0915
    """A valid request likely to fire rules, open §5 follow-up rows, factors and advice.

    ``calm`` requests (about a third) answer the whole screen, set at most a
    couple of mild symptoms and keep measurements benign, so self_care, the
    consultation rules and CF-BENIGN-FASCICULATION are reached too. In
    "complete" requests every follow-up item is answered as well; "holes"
    requests then leave one to three of them unknown.
    """
    calm = draw(st.integers(0, 2)) == 0
    p_omit = 6 if calm else 1  # how strongly alarming numbers are left out

    def near(*values: float, benign: tuple[float, ...] = ()) -> Any:
        if calm and benign:
            return draw(_maybe_of(benign, 2))
        return draw(_maybe_of(values, p_omit))

    request: dict[str, Any] = {}
    ages = [10, 17, 18, 30, 70] if calm else [2, 3, 4, 10, 17, 18, 30, 70]
    request["patient"] = {"age_years": draw(st.sampled_from(ages))}
    _put(request["patient"], "sex", draw(_maybe_of(("female", "male"))))
    _put(request, "respondent", draw(_maybe_of(RESPONDENTS)))

    # --- activity ---------------------------------------------------------------------
    if draw(st.integers(0, 9)) > 0:
        activity: dict[str, Any] = {}
        _put(activity, "intensity", draw(_maybe_of((*INTENSITIES, "high"))))
        _put(activity, "session_minutes", near(0, 59, 60, 89, 90, 179, 180, 239, 240, 600))
        _put(activity, "sessions_per_week", near(0, 5, 6, 14))
        _put(activity, "rest_minutes_per_session", near(0, 5, 9, 10, 30))
        for name in (
            "recent_load_increase",
            "cold_exposure",
            "heavy_sweating",
            "ate_before_exercise",
            "warm_up",
            "cool_down",
        ):
            _put(activity, name, draw(tri()))
        _put(activity, "hot_or_humid", draw(tri("true")))  # opens the heat row
        _put(
            activity,
            "fluid_intake",
            draw(_maybe_of((*FLUID_INTAKES, "excessive"))),
        )
        request["activity"] = activity
    elif draw(st.booleans()):
        request["activity"] = None

    # --- twitching --------------------------------------------------------------------
    twitching: dict[str, Any] = {"body_sites": draw(_sites())}
    _put(twitching, "side", draw(_maybe_of(("left", "right", "both", "midline"))))
    _put(
        twitching,
        "timing",
        draw(
            _maybe(
                st.sampled_from(
                    ["during_exercise", "after_exercise", "at_rest", "falling_asleep", "any_time"]
                )
            )
        ),
    )
    _put(twitching, "cramp_minutes", near(0, 5, 59.9, 60, 61, benign=(0, 5, 59.9)))
    _put(twitching, "seizure_minutes", near(0, 1, 4.9, 5, 5.1, 30))
    _put(twitching, "duration_days", near(0, 1, 7, 8, 14, 15, 40, 364, 365, 400))
    _put(twitching, "hours_after_exercise", near(0, 2, 24))
    _put(twitching, "episode_minutes", near(0, 1, 120))
    _put(twitching, "onset", draw(_maybe_of(("sudden", "gradual"))))
    _put(
        twitching,
        "progression",
        draw(_maybe_of(("improving", "stable", "worsening"))),
    )
    _put(twitching, "impact", draw(_maybe_of(("none", "mild", "interferes"))))
    tic_bias = draw(st.sampled_from(["true", "false", "any"]))
    _put(twitching, "suppressible", draw(tri(tic_bias)))
    _put(twitching, "urge_before", draw(tri(tic_bias)))
    for name in ("spreading", "rhythmic_march", "loss_of_awareness", "sustained_posture"):
        _put(
            twitching,
            name,
            draw(tri("false")) if not calm else draw(st.sampled_from([False, False, OMIT])),
        )
    _put(twitching, "painful", draw(tri()))
    request["twitching"] = twitching

    # --- history ----------------------------------------------------------------------
    if draw(st.integers(0, 9)) > 0:
        history: dict[str, Any] = {}
        _put(history, "head_impact", draw(st.sampled_from([True, True, False, False, None, OMIT])))
        _put(history, "hours_since_head_impact", near(0, 6, 48, 48.5, 100))
        _put(history, "falls_last_7_days", near(0, 1, 2, 3, 5, benign=(0, 1, 3)))
        _put(history, "medications", draw(_MEDICATIONS))
        _put(history, "caffeine_mg_per_day", near(0, 100, 101, 399, 400, 401, 1199, 1200))
        _put(history, "energy_drinks", draw(tri()))
        _put(history, "recreational_stimulants", draw(tri("false")))
        _put(history, "alcohol_units_per_week", near(0, 14, 15))
        _put(history, "short_sleep", draw(tri()))
        _put(history, "conditions", draw(_CONDITIONS))
        _put(history, "previous_episodes", draw(tri()))
        _put(history, "self_care_tried", draw(tri()))
        request["history"] = history
    elif draw(st.booleans()):
        request["history"] = None

    # --- symptoms ---------------------------------------------------------------------
    # screen: "complete" answers every §5 item (follow-ups included); "holes" leaves
    # a few unknown; "random" draws every symptom; "none" sends no symptoms.
    screen = draw(st.sampled_from(["complete", "complete", "holes", "random", "none"]))
    if calm:
        screen = draw(st.sampled_from(["complete", "complete", "complete", "holes"]))
    if screen == "none":
        if draw(st.booleans()):
            request["symptoms"] = None
    else:
        symptoms: dict[str, Any] = {}
        for name in SYMPTOM_NAMES:
            if screen == "random":
                value = draw(tri())
            elif name in SCREEN_SYMPTOMS or name in FOLLOW_UP_SYMPTOMS:
                value = False
            else:
                value = draw(st.sampled_from([False, False, OMIT, None]))
            _put(symptoms, name, value)
        pool = MILD_SYMPTOMS if calm else SYMPTOM_NAMES
        size = 2 if calm else 4
        for name in draw(st.lists(st.sampled_from(pool), max_size=size, unique=True)):
            symptoms[name] = True
        if not calm:
            for name in draw(st.lists(st.sampled_from(FOLLOW_UP_TRIGGERS), max_size=2)):
                symptoms[name] = True
        request["symptoms"] = symptoms
    if screen in ("complete", "holes"):
        _answer_follow_ups(draw, request)
    if screen == "holes":
        symptoms = request["symptoms"]
        for name in draw(
            st.lists(st.sampled_from(SCREEN_SYMPTOMS + FOLLOW_UP_SYMPTOMS), min_size=1, max_size=3)
        ):
            if draw(st.booleans()):
                symptoms[name] = None
            else:
                symptoms.pop(name, None)
        for path in draw(st.lists(st.sampled_from(_OTHER_FOLLOW_UPS), max_size=2)):
            section, name = path.split(".")
            if isinstance(request.get(section), dict):
                request[section].pop(name, None)

    # --- top level --------------------------------------------------------------------
    _put(
        request,
        "body_temperature_c",
        near(25, 31.9, 32, 34.9, 35, 37, 37.9, 38, 38.9, 39, 39.9, 40, benign=(35, 37, 37.9)),
    )
    if "blood_glucose_mmol_l" not in request:
        glucose = near(0.5, 2.9, 3.0, 3.9, 4.0, 6, benign=(4.0, 6))
        _put(request, "blood_glucose_mmol_l", glucose)
    _put(request, "deficit_onset", draw(_maybe_of(("sudden", "gradual"))))
    return request


#: Non-symptom items a §5 follow-up row may ask ("holes" requests drop some).
_OTHER_FOLLOW_UPS = (
    "history.head_impact",
    "history.medications",
    "history.conditions",
    "twitching.loss_of_awareness",
    "twitching.rhythmic_march",
    "twitching.sustained_posture",
    "twitching.cramp_minutes",
    "activity.session_minutes",
    "activity.fluid_intake",
    "activity.intensity",
)


_FOLLOW_UP_ANSWERS: dict[str, st.SearchStrategy[Any]] = {
    "history.head_impact": st.just(False),
    "history.medications": st.builds(list),
    "history.conditions": st.builds(list),
    "twitching.loss_of_awareness": st.just(False),
    "twitching.rhythmic_march": st.just(False),
    "twitching.sustained_posture": st.just(False),
    "twitching.cramp_minutes": st.sampled_from([0, 5, 59.9]),
    "activity.session_minutes": st.sampled_from([30, 60, 120]),
    "activity.fluid_intake": st.sampled_from(["low", "adequate"]),
    "activity.intensity": st.sampled_from(INTENSITIES),
    **{f"symptoms.{n}": st.just(False) for n in (*SCREEN_SYMPTOMS, *FOLLOW_UP_SYMPTOMS)},
}


def _answer_follow_ups(
    draw: st.DrawFn, request: dict[str, Any], *, keep_nulls: bool = False
) -> None:
    """Answer every item a §5 row could ask that the request leaves unknown.

    Written from the list of follow-up items, not from the rows' conditions, so
    it does not lean on the oracle's reading of when a row holds. With
    ``keep_nulls`` an explicit null stays unknown (only omitted items are answered).
    """
    for path, value in _FOLLOW_UP_ANSWERS.items():
        section, name = path.split(".")
        if not isinstance(request.get(section), dict):
            request[section] = {}
        current = request[section]
        if name not in current or (current[name] is None and not keep_nulls):
            current[name] = draw(value)
    history = request["history"]
    if any(m["class"] == "insulin_or_sulfonylurea" for m in history["medications"] or []):
        request["blood_glucose_mmol_l"] = draw(st.sampled_from([3.0, 4.0, 6]))


@st.composite
def edge_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A screened request with small domains on the fields of the §3 exceptions
    ("unless …") and derived terms, so their known / unknown / reassuring
    combinations are all reached: RF-SEIZURE-DANGER, RF-SUDDEN-NEURO-DEFICIT,
    RF-HEAD-ANTICOAGULATED, RF-NEW-WEAKNESS, tic pattern, multiple / single
    region, EAH risk."""
    three = st.sampled_from([True, False, None, OMIT])
    mostly_false = st.sampled_from([False, False, False, True, None])
    symptoms: dict[str, Any] = dict.fromkeys(SCREEN_SYMPTOMS, False)
    for name in (*HEAD_FOLLOW_UPS, "difficulty_swallowing"):
        symptoms[name] = False
    focus = draw(st.lists(st.sampled_from(SCREEN_SYMPTOMS + HEAD_FOLLOW_UPS), max_size=2))
    for name in focus:
        symptoms[name] = True
    for name in (
        "headache",
        "vomiting",
        "dizziness",
        "loss_of_balance",
        "confusion",
        "drowsiness",
        "one_sided_weakness",
        "difficulty_swallowing",
        "muscle_weakness",
        "seizure",
        "slurred_speech",
        "muscle_wasting",
        "repeated_vomiting",
        "swollen_hands",
    ):
        if draw(st.integers(0, 3)) == 0:
            _put(symptoms, name, draw(mostly_false))
    request: dict[str, Any] = {
        "patient": {"age_years": draw(st.sampled_from([10, 17, 18, 30]))},
        "twitching": {"body_sites": draw(_sites())},
        "symptoms": symptoms,
    }
    twitching = request["twitching"]
    _put(twitching, "spreading", draw(three))
    _put(twitching, "suppressible", draw(three))
    _put(twitching, "urge_before", draw(three))
    _put(twitching, "timing", draw(_maybe_of(("falling_asleep", "at_rest"))))
    _put(twitching, "duration_days", draw(_near(14, 15, 365)))
    _put(twitching, "seizure_minutes", draw(_near(4.9, 5)))
    _put(twitching, "side", draw(_maybe_of(("left", "both"))))
    for name in ("rhythmic_march", "loss_of_awareness"):
        _put(twitching, name, draw(mostly_false))
    activity: dict[str, Any] = {}
    _put(activity, "fluid_intake", draw(_maybe_of(("low", "adequate", "excessive"))))
    _put(activity, "session_minutes", draw(_near(179, 180)))
    request["activity"] = activity
    history: dict[str, Any] = {"head_impact": draw(st.sampled_from([True, False, False, None]))}
    _put(history, "hours_since_head_impact", draw(_near(48, 48.5)))
    _put(history, "falls_last_7_days", draw(_near(0, 1)))
    _put(history, "recreational_stimulants", draw(mostly_false))
    meds = draw(
        _maybe(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "class": st.sampled_from(
                            ["anticoagulant", "other", "beta_agonist", "serotonergic"]
                        )
                    },
                    optional={
                        "doses_per_day": st.sampled_from([2, 4]),
                        "days_since_start": st.sampled_from([90, 91]),
                    },
                ),
                max_size=2,
            )
        )
    )
    _put(history, "medications", meds)
    conditions = draw(
        _maybe(
            st.lists(
                st.sampled_from(["epilepsy", "bleeding_disorder", "tic_disorder"]),
                max_size=2,
                unique=True,
            )
        )
    )
    _put(history, "conditions", conditions)
    request["history"] = history
    _put(request, "deficit_onset", draw(_maybe_of(("sudden", "gradual"))))
    if draw(st.booleans()):
        _answer_follow_ups(draw, request, keep_nulls=True)
    return request
