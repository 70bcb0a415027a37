"""Contributing factors of PROTOCOL.md §6, in table order.

Each scoring line carries a label a clinician reads ("Sessions of 90 minutes or
more"), never the rule syntax behind it.
"""

from __future__ import annotations

from triage.conditions import AllOf, Compare, Is, Medication, No, NotEstablished, SiteIn, Yes
from triage.knowledge_base.entries import Factor, PerMedication, Points
from triage.knowledge_base.terms import (
    ADULT,
    AGE,
    CAFFEINE,
    DURATION,
    FALLS,
    FLUID,
    GLUCOSE,
    GRADUAL_DEFICIT,
    HEAD_IMPACT,
    HIGH_INTENSITY,
    HIGH_TEMPERATURE,
    MULTIPLE_REGIONS,
    MUSCLE_FASCICULATION,
    RECREATIONAL_STIMULANTS,
    SESSION,
    SINGLE_REGION,
    TEMPERATURE,
    TIC_DISORDER,
    TIC_PATTERN,
    UNDER_18,
    any_sym,
    listed,
    sym,
)
from triage.result import Level

#: Medicine classes of CF-MEDICATION-EFFECT, in the order §6 lists them.
MEDICATION_EFFECT_CLASSES = (
    "diuretic",
    "statin",
    "corticosteroid",
    "dopamine_blocker",
    "beta_agonist",
    "adhd_stimulant",
    "serotonergic",
)

FACTORS: tuple[Factor, ...] = (
    Factor(
        "CF-TRAINING-LOAD",
        "Training load",
        "Long or frequent sessions with little rest, a recent increase, high intensity or "
        "fatigue overload muscles and nerves.",
        points=(
            Points(1, Compare(SESSION, ">=", 90), "Sessions of 90 minutes or more"),
            Points(
                1,
                AllOf(
                    Compare("activity.rest_minutes_per_session", "<", 10),
                    Compare(SESSION, ">=", 60),
                ),
                "Less than 10 minutes' rest in a session of an hour or more",
            ),
            Points(
                1,
                Compare("activity.sessions_per_week", ">=", 6),
                "Six or more sessions a week",
            ),
            Points(1, Yes("activity.recent_load_increase"), "Training increased recently"),
            Points(1, HIGH_INTENSITY, "High or maximal intensity"),
            Points(1, sym("fatigue"), "Fatigue"),
        ),
    ),
    Factor(
        "CF-FLUID-ELECTROLYTE-LOSS",
        "Fluid and electrolyte loss",
        "Sweating, heat, little fluid and cramps point to dehydration and electrolyte loss.",
        only_when=NotEstablished(Is(FLUID, "excessive"), "fluid_intake is not excessive"),
        points=(
            Points(1, Yes("activity.heavy_sweating"), "Heavy sweating"),
            Points(1, Yes("activity.hot_or_humid"), "Hot or humid conditions"),
            Points(1, Is(FLUID, "none", "low"), "Little or no fluid"),
            Points(1, sym("excessive_thirst"), "Excessive thirst"),
            Points(
                1,
                any_sym("dark_yellow_urine", "no_urine_8h"),
                "Dark urine or no urine for 8 hours",
            ),
            Points(1, sym("muscle_cramps"), "Muscle cramps"),
            Points(1, Medication("diuretic"), "Takes a diuretic"),
        ),
    ),
    Factor(
        "CF-OVERHYDRATION",
        "Over-hydration",
        "Drinking well beyond thirst risks exercise-associated hyponatraemia.",
        only_when=Is(FLUID, "excessive"),
        points=(
            Points(2, Is(FLUID, "excessive"), "Drank well beyond thirst"),
            Points(1, sym("swollen_hands"), "Swollen hands"),
            Points(1, Compare(SESSION, ">=", 240), "Sessions of 4 hours or more"),
        ),
    ),
    Factor(
        "CF-HEAT-STRAIN",
        "Heat strain",
        "A high temperature, or heat with dizziness, nausea or cramps, is heat strain.",
        points=(
            Points(2, HIGH_TEMPERATURE, "High body temperature"),
            Points(
                1,
                AllOf(
                    Yes("activity.hot_or_humid"), any_sym("dizziness", "nausea", "muscle_cramps")
                ),
                "Heat with dizziness, nausea or cramps",
            ),
        ),
    ),
    Factor(
        "CF-FALLS-HEAD-INJURY",
        "Falls and head injury",
        "Falls and head knocks can injure the head or neck.",
        points=(
            Points(2, HEAD_IMPACT, "Head knock in the last 30 days"),
            Points(1, Compare(FALLS, ">=", 1), "A fall in the last week"),
            Points(1, Compare(FALLS, ">=", 3), "Three or more falls in the last week"),
        ),
    ),
    Factor(
        "CF-STRESS-SLEEP",
        "Stress and sleep",
        "Stress, anxiety and short sleep make benign twitching more frequent.",
        points=(
            Points(1, sym("anxiety_stress"), "Anxiety or stress"),
            Points(1, Yes("history.short_sleep"), "Sleeping less than usual"),
            Points(1, listed("anxiety_disorder"), "Anxiety disorder"),
        ),
    ),
    Factor(
        "CF-STIMULANTS",
        "Stimulants",
        "Caffeine, energy drinks, stimulant medicines and stimulant drugs increase nerve "
        "excitability.",
        points=(
            Points(
                2,
                AllOf(ADULT, Compare(CAFFEINE, ">", 400)),
                "More than 400 mg of caffeine a day",
            ),
            Points(
                2,
                AllOf(UNDER_18, Compare(CAFFEINE, ">", 100)),
                "More than 100 mg of caffeine a day in a child",
            ),
            Points(1, AllOf(ADULT, Yes("history.energy_drinks")), "Energy drinks"),
            Points(2, AllOf(UNDER_18, Yes("history.energy_drinks")), "Energy drinks in a child"),
            Points(1, Medication("adhd_stimulant"), "Takes an ADHD stimulant"),
            Points(1, Medication("beta_agonist"), "Uses a reliever inhaler"),
            Points(2, RECREATIONAL_STIMULANTS, "Stimulant drugs in the last 72 hours"),
        ),
    ),
    Factor(
        "CF-MEDICATION-EFFECT",
        "Medication effect",
        "Diuretics, statins, corticosteroids, dopamine blockers, reliever inhalers, ADHD "
        "stimulants and serotonergic medicines can cause twitching or cramps, most often "
        "soon after starting.",
        points=(
            PerMedication(
                MEDICATION_EFFECT_CLASSES, recent_days=90, recent_points=2, other_points=1
            ),
        ),
    ),
    Factor(
        "CF-LOW-BLOOD-SUGAR",
        "Low blood sugar",
        "Exercising without eating, glucose-lowering treatment or diabetes risk low blood sugar.",
        points=(
            Points(1, No("activity.ate_before_exercise"), "Did not eat before exercise"),
            Points(1, Medication("insulin_or_sulfonylurea"), "Takes insulin or a sulfonylurea"),
            Points(1, listed("diabetes"), "Diabetes"),
            Points(2, Compare(GLUCOSE, "<", 4), "Blood glucose below 4 mmol/L"),
        ),
    ),
    Factor(
        "CF-WARM-UP-COOL-DOWN",
        "No warm-up or cool-down",
        "Skipping the warm-up or the cool-down and stretching favours cramps and twitches.",
        points=(
            Points(1, No("activity.warm_up"), "No warm-up"),
            Points(1, No("activity.cool_down"), "No cool-down or stretching"),
        ),
    ),
    Factor(
        "CF-COLD",
        "Cold",
        "Cold exposure and a low body temperature cause shivering and cramps.",
        points=(
            Points(1, Yes("activity.cold_exposure"), "Cold exposure"),
            Points(2, Compare(TEMPERATURE, "<", 35), "Body temperature below 35 °C"),
        ),
    ),
    Factor(
        "CF-ALCOHOL",
        "Alcohol",
        "More than 14 units a week affects muscles, nerves and electrolytes.",
        points=(
            Points(
                1,
                Compare("history.alcohol_units_per_week", ">", 14),
                "More than 14 units of alcohol a week",
            ),
        ),
    ),
    Factor(
        "CF-TIC-PATTERN",
        "Tic pattern",
        "Suppressible movements with a premonitory urge in the face, neck or shoulders, not "
        "spreading, in a child or someone known to have tics, are typical of tics, which "
        "worsen with tiredness and stress.",
        only_when=TIC_PATTERN,
        points=(
            Points(1, Yes("twitching.suppressible"), "Can be held back for a while"),
            Points(1, Yes("twitching.urge_before"), "An urge before the movement"),
            Points(1, AllOf(Compare(AGE, ">=", 4), Compare(AGE, "<=", 17)), "Aged 4 to 17"),
            Points(1, listed("tic_disorder"), "Known tic disorder"),
            Points(1, any_sym("fatigue", "anxiety_stress"), "Fatigue or stress"),
        ),
        condition=TIC_DISORDER,
    ),
    Factor(
        "CF-NEUROMUSCULAR",
        "Neuromuscular features",
        "Wasting, gradual onset, spread and progression with weakness point towards a "
        "neuromuscular disease.",
        only_when=any_sym(
            "muscle_wasting", "muscle_weakness", "slurred_speech", "difficulty_swallowing"
        ),
        points=(
            Points(2, sym("muscle_wasting"), "Muscle wasting"),
            Points(1, GRADUAL_DEFICIT, "Came on gradually over weeks"),
            Points(1, MULTIPLE_REGIONS, "Twitching in more than one region, or spreading"),
            Points(1, Is("twitching.progression", "worsening"), "Getting worse"),
            Points(1, listed("neuromuscular_disease"), "Known neuromuscular disease"),
        ),
    ),
    Factor(
        "CF-BENIGN-FASCICULATION",
        "Benign fasciculation pattern",
        "Painless twitching in one region after exercise or at rest, for under 2 weeks and "
        "without weakness, is typical of benign fasciculation.",
        only_at_level=Level.SELF_CARE,
        # 1.1: not for painful twitching, nor for a child's head or neck.
        only_when=AllOf(
            NotEstablished(Yes("twitching.painful"), "painful is not true"),
            NotEstablished(
                AllOf(UNDER_18, SiteIn("head_neck")), "not a child with a head or neck site"
            ),
        ),
        points=(
            Points(1, SINGLE_REGION, "Twitching in one body region"),
            Points(
                1, Is("twitching.timing", "after_exercise", "at_rest"), "After exercise or at rest"
            ),
            Points(1, Compare(DURATION, "<=", 14), "For 2 weeks or less"),
            Points(1, No("symptoms.muscle_weakness"), "No muscle weakness"),
        ),
        condition=MUSCLE_FASCICULATION,
    ),
)
