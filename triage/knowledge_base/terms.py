"""Derived terms of PROTOCOL.md §3 and the shorthands the tables are written in.

A clinician reviewing the derived terms reads this file alone: each term is
one condition, and its three-valued meaning follows ``triage.conditions``
(an unknown answer is never read as absent).
"""

from __future__ import annotations

from triage.conditions import (
    AllOf,
    AnyOf,
    AnyYes,
    Compare,
    Condition,
    Is,
    Listed,
    Medication,
    No,
    NotEstablished,
    RegionCount,
    SitesWithin,
    Term,
    Yes,
)
from triage.result import Concept
from triage.vocabulary import TIC_SITES

SNOMED = "http://snomed.info/sct"
RHABDOMYOLYSIS = Concept(SNOMED, "240131006", "Rhabdomyolysis")
HYPOCALCEMIA = Concept(SNOMED, "5291005", "Hypocalcemia")
DEHYDRATION = Concept(SNOMED, "34095006", "Dehydration")
MOTOR_NEURON_DISEASE = Concept(SNOMED, "37340000", "Motor neuron disease")
MUSCLE_WEAKNESS = Concept(SNOMED, "26544005", "Muscle weakness")
TIC_DISORDER = Concept(SNOMED, "568005", "Tic disorder")
MUSCLE_FASCICULATION = Concept(SNOMED, "82470000", "Muscle fasciculation")
CRAMP = Concept(SNOMED, "55300003", "Cramp")


def sym(name: str) -> Yes:
    """The symptom ``symptoms.<name>`` is answered true."""
    return Yes(f"symptoms.{name}")


def any_sym(*names: str) -> Condition:
    """Any of the symptoms is answered true."""
    if len(names) == 1:
        return sym(names[0])
    return AnyYes(*(f"symptoms.{name}" for name in names))


def listed(code: str) -> Listed:
    """The condition is in the given ``history.conditions`` list."""
    return Listed("history.conditions", code)


def medication(*classes: str) -> Medication:
    """A medication of one of the classes is in the given ``history.medications`` list."""
    return Medication(*classes)


HEAD_IMPACT = Yes("history.head_impact")
RECREATIONAL_STIMULANTS = Yes("history.recreational_stimulants")
FALLS = "history.falls_last_7_days"
DURATION = "twitching.duration_days"
SESSION = "activity.session_minutes"
FLUID = "activity.fluid_intake"
TEMPERATURE = "body_temperature_c"
GLUCOSE = "blood_glucose_mmol_l"
AGE = "patient.age_years"
CAFFEINE = "history.caffeine_mg_per_day"
HIGH_INTENSITY = Is("activity.intensity", "high", "maximal")
HOT_OR_HUMID = Yes("activity.hot_or_humid")
GRADUAL_DEFICIT = Is("deficit_onset", "gradual")
ADULT = Compare(AGE, ">=", 18)
UNDER_18 = Compare(AGE, "<", 18)
FELL = Compare(FALLS, ">=", 1)
HEAD_NECK_SITE_REGIONS = ("head_neck",)

# --- derived terms (PROTOCOL.md §3) ------------------------------------------------------

TIC_FEATURES = Term(
    "tic features",
    AnyOf(Yes("twitching.suppressible"), Yes("twitching.urge_before")),
)
#: 1.1: spreading must be known false, and the person a child or known to have tics.
TIC_PATTERN = Term(
    "tic pattern",
    AllOf(
        TIC_FEATURES,
        SitesWithin(TIC_SITES),
        No("twitching.spreading"),
        AnyOf(Compare(AGE, "<=", 17), listed("tic_disorder")),
    ),
)
#: "not a tic pattern" holds unless a tic pattern is *established*: an unknown
#: tic pattern leaves RF-PERSISTENT, RF-MULTIPLE-REGIONS and RF-INTERFERES free to fire.
NOT_TIC_PATTERN = NotEstablished(TIC_PATTERN, "not a tic pattern")
MULTIPLE_REGIONS = Term(
    "multiple regions",
    AnyOf(
        Yes("twitching.spreading"),
        AllOf(
            RegionCount(at_least=2),
            # Safer reading: an unknown timing does not establish falling asleep.
            NotEstablished(
                Is("twitching.timing", "falling_asleep"), "timing is not falling_asleep"
            ),
        ),
    ),
)
SINGLE_REGION = Term(
    "single region",
    AllOf(RegionCount(exactly=1), NotEstablished(Yes("twitching.spreading"), "spreading not true")),
)
#: 1.1: a measured 39 °C counts in heat or hard exercise (readings run below core).
HIGH_TEMPERATURE = Term(
    "high temperature",
    AnyOf(
        sym("high_body_temperature"),
        Compare(TEMPERATURE, ">=", 40),
        AllOf(Compare(TEMPERATURE, ">=", 39), AnyOf(HOT_OR_HUMID, HIGH_INTENSITY)),
    ),
)
#: A measured temperature alone that makes high temperature true (screen: "known").
MEASURED_HIGH_TEMPERATURE = Term(
    "a measured high temperature",
    AnyOf(
        Compare(TEMPERATURE, ">=", 40),
        AllOf(Compare(TEMPERATURE, ">=", 39), AnyOf(HOT_OR_HUMID, HIGH_INTENSITY)),
    ),
)
EAH_RISK = Term(
    "EAH risk",
    AnyOf(
        Is(FLUID, "excessive"),
        AllOf(
            Compare(SESSION, ">=", 180),
            # "unknown counts as a risk": only a known none/low intake removes it.
            NotEstablished(Is(FLUID, "none", "low"), "fluid_intake is not none or low"),
        ),
    ),
)
