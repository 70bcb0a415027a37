"""The minimum red-flag screen of PROTOCOL.md §5 (1.1), as data: 27 rows in table order.

Each row: when its condition holds (the first row always), its items must be
known before self-care may be given, because a "yes" there could complete a
more urgent rule. The unknown items are listed in the order of this table,
each once at its first place among the rows that hold.

Item names are link ids. ``HIGH_TEMPERATURE_ITEM`` (``symptoms.high_body_temperature``)
is also known when a measured temperature already makes high temperature true.
"""

from __future__ import annotations

from triage.conditions import AllOf, AnyOf, Medication, SiteIn, Yes
from triage.knowledge_base.entries import ScreenItem, ScreenRow
from triage.knowledge_base.terms import (
    EAH_RISK,
    FELL,
    HEAD_IMPACT,
    HIGH_INTENSITY,
    HOT_OR_HUMID,
    MEASURED_HIGH_TEMPERATURE,
    RECREATIONAL_STIMULANTS,
    any_sym,
    listed,
    sym,
)

HIGH_TEMPERATURE_ITEM = "symptoms.high_body_temperature"
#: The screen item is known without an answer when this holds (§5, heat row).
KNOWN_WITHOUT_ANSWER = {HIGH_TEMPERATURE_ITEM: MEASURED_HIGH_TEMPERATURE}


def _s(*names: str) -> tuple[str, ...]:
    return tuple(f"symptoms.{name}" for name in names)


_HEAD_NECK_SITE = SiteIn("head_neck")  # whole_body counts as a head-neck site

SCREEN_ROWS: tuple[ScreenRow, ...] = (
    ScreenRow(
        None,
        (
            *_s(
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
            ),
            "history.head_impact",
        ),
        ("RF-CONFUSION", "RF-REDUCED-CONSCIOUSNESS", "RF-CHEST-PAIN", "RF-SEIZURE-DANGER"),
    ),
    ScreenRow(
        HEAD_IMPACT,
        (
            *_s(
                "headache",
                "vomiting",
                "dizziness",
                "loss_of_balance",
                "worsening_headache",
                "neck_pain",
                "nausea",
                "foggy_thinking",
                "vision_changes",
                "unequal_pupils",
            ),
            "history.medications",
            "history.conditions",
        ),
        (
            "RF-CONCUSSION-SYMPTOMS",
            "RF-HEAD-NEURO",
            "RF-HEAD-VOMITING",
            "RF-HEAD-NECK-PAIN",
            "RF-HEAD-ANTICOAGULATED",
            "RF-UNEQUAL-PUPILS",
        ),
    ),
    ScreenRow(
        FELL,
        _s(
            "neck_pain",
            "headache",
            "dizziness",
            "nausea",
            "loss_of_balance",
            "vision_changes",
            "foggy_thinking",
        ),
        ("RF-FALL-NECK-PAIN", "RF-SPINAL", "RF-CONCUSSION-SYMPTOMS"),
    ),
    ScreenRow(
        AnyOf(_HEAD_NECK_SITE, HEAD_IMPACT),
        (
            "twitching.loss_of_awareness",
            "twitching.rhythmic_march",
            "twitching.sustained_posture",
        ),
        ("RF-SEIZURE", "RF-SEIZURE-DANGER", "RF-DYSTONIA"),
    ),
    ScreenRow(sym("neck_pain"), _s("headache"), ("RF-HEADACHE-RED-FLAG",)),
    ScreenRow(
        AllOf(sym("neck_pain"), AnyOf(HEAD_IMPACT, FELL)),
        _s("numbness_tingling"),
        ("RF-SPINAL",),
    ),
    ScreenRow(sym("fainting"), _s("fainting_during_exercise"), ("RF-EXERTIONAL-SYNCOPE",)),
    ScreenRow(
        sym("headache"),
        _s(
            "sudden_severe_headache",
            "worsening_headache",
            "neck_pain",
            "vision_changes",
            "vomiting",
        ),
        ("RF-THUNDERCLAP", "RF-HEADACHE-RED-FLAG"),
    ),
    ScreenRow(
        any_sym("headache", "vomiting", "nausea", "swollen_hands"),
        ("activity.session_minutes", "activity.fluid_intake"),
        ("RF-EAH", "RF-EAH-SEVERE"),
    ),
    ScreenRow(
        sym("palpitations"),
        ("symptoms.dizziness", "history.conditions"),
        ("RF-CARDIAC-PALPITATIONS",),
    ),
    ScreenRow(sym("severe_muscle_pain"), _s("muscle_swelling"), ("RF-RHABDO-SUSPECT",)),
    ScreenRow(sym("muscle_swelling"), _s("numbness_tingling"), ("RF-COMPARTMENT",)),
    ScreenRow(sym("muscle_cramps"), ("twitching.cramp_minutes",), ("RF-PROLONGED-CRAMP",)),
    ScreenRow(
        AllOf(sym("muscle_cramps"), HIGH_INTENSITY),
        ("history.conditions",),
        ("RF-SICKLE-COLLAPSE",),
    ),
    ScreenRow(sym("vomiting"), _s("repeated_vomiting"), ("RF-REPEATED-VOMITING",)),
    ScreenRow(
        any_sym("hand_foot_spasm", "perioral_tingling"),
        ("history.conditions", "history.medications"),
        ("RF-TETANY",),
    ),
    ScreenRow(
        AnyOf(
            listed("thyroid_or_parathyroid_surgery"),
            listed("kidney_disease"),
            Medication("diuretic"),
        ),
        _s("hand_foot_spasm", "perioral_tingling"),
        ("RF-TETANY",),
    ),
    ScreenRow(
        Yes("twitching.sustained_posture"),
        ("history.medications",),
        ("RF-DYSTONIA",),
    ),
    ScreenRow(
        Medication("dopamine_blocker"),
        ("twitching.sustained_posture",),
        ("RF-DYSTONIA",),
    ),
    ScreenRow(
        AnyOf(HOT_OR_HUMID, HIGH_INTENSITY),
        (HIGH_TEMPERATURE_ITEM, "symptoms.vomiting"),
        ("RF-HYPERTHERMIA", "RF-HEATSTROKE", "RF-HEAT-VOMITING"),
    ),
    ScreenRow(
        EAH_RISK,
        _s("headache", "vomiting", "swollen_hands"),
        ("RF-EAH", "RF-EAH-SEVERE"),
    ),
    ScreenRow(
        Medication("insulin_or_sulfonylurea"),
        ("blood_glucose_mmol_l",),
        ("RF-HYPOGLYCAEMIA", "RF-LOW-GLUCOSE"),
    ),
    ScreenRow(
        listed("diabetes"),
        ("history.medications",),
        ("RF-HYPOGLYCAEMIA", "RF-LOW-GLUCOSE"),
    ),
    ScreenRow(Medication("statin"), _s("muscle_cramps"), ("RF-STATIN-MUSCLE",)),
    ScreenRow(
        listed("sickle_cell_trait"),
        ("symptoms.muscle_cramps", "activity.intensity"),
        ("RF-SICKLE-COLLAPSE",),
    ),
    ScreenRow(
        listed("pregnancy"),
        _s("headache", "worsening_headache", "vision_changes", "swollen_hands"),
        ("RF-PRE-ECLAMPSIA", "RF-PREGNANCY-HEADACHE"),
    ),
    ScreenRow(
        AnyOf(Medication("serotonergic"), RECREATIONAL_STIMULANTS),
        (HIGH_TEMPERATURE_ITEM,),
        ("RF-TOXIC-HYPERTHERMIA",),
    ),
)


def _screen_items() -> tuple[ScreenItem, ...]:
    """Each screen item once, at its first row, required when any of its rows holds."""
    conditions: dict[str, list[ScreenRow]] = {}
    for row in SCREEN_ROWS:
        for link_id in row.items:
            conditions.setdefault(link_id, []).append(row)
    items = []
    for link_id, rows in conditions.items():
        if any(row.when is None for row in rows):
            items.append(ScreenItem(link_id))
            continue
        whens = [row.when for row in rows if row.when is not None]
        items.append(ScreenItem(link_id, whens[0] if len(whens) == 1 else AnyOf(*whens)))
    return tuple(items)


#: Every screen item once, with when it is required (for the intake Questionnaire).
SCREEN: tuple[ScreenItem, ...] = _screen_items()
