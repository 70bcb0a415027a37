"""Advice of PROTOCOL.md §7, most important first; given when any of its triggers holds."""

from __future__ import annotations

from triage.conditions import AllOf, AnyOf, Compare, Is, Medication, Yes
from triage.knowledge_base.entries import Advice
from triage.knowledge_base.terms import (
    FLUID,
    GLUCOSE,
    HEAD_IMPACT,
    HIGH_INTENSITY,
    any_sym,
    listed,
)
from triage.result import Level

_ABOVE_SELF_CARE = frozenset(level for level in Level if level > Level.SELF_CARE)

ADVICE: tuple[Advice, ...] = (
    Advice(
        "ADV-CALL-AMBULANCE",
        "Call an ambulance",
        "Call emergency services now and stay with the person.",
        levels=frozenset({Level.EMERGENCY_AMBULANCE}),
    ),
    Advice(
        "ADV-GO-TO-ED",
        "Go to the emergency department",
        "Go to an emergency department now.",
        levels=frozenset({Level.EMERGENCY}),
    ),
    Advice(
        "ADV-SEE-WITHIN-24H",
        "See a clinician within 24 hours",
        "See a clinician today or tomorrow.",
        levels=frozenset({Level.CONSULTATION_24}),
    ),
    Advice(
        "ADV-SEE-CLINICIAN",
        "See a clinician",
        "Book an appointment with a clinician.",
        levels=frozenset({Level.CONSULTATION}),
        variant_rules=frozenset({"RF-NEUROMUSCULAR"}),
        variant_text="Book an appointment with a clinician within 2 weeks.",
    ),
    Advice(
        "ADV-CHECK-GLUCOSE",
        "Check blood glucose",
        "Check blood glucose now; below 4 mmol/L take 15 g of fast-acting carbohydrate and "
        "recheck after 15 minutes; watch for delayed lows overnight.",
        when=AnyOf(
            Medication("insulin_or_sulfonylurea"), listed("diabetes"), Compare(GLUCOSE, "<", 4)
        ),
    ),
    Advice(
        "ADV-COOL-NOW",
        "Cool now",
        "Cool the person at once, ideally by cold-water immersion, while help comes.",
        rules=frozenset({"RF-HEATSTROKE", "RF-HYPERTHERMIA", "RF-TOXIC-HYPERTHERMIA"}),
        when=AllOf(
            AnyOf(Yes("activity.hot_or_humid"), HIGH_INTENSITY),
            any_sym(
                "confusion", "drowsiness", "seizure", "exertional_collapse", "loss_of_consciousness"
            ),
        ),
    ),
    Advice(
        "ADV-STOP-TRAINING",
        "Stop training",
        "No training or competition until reviewed by a clinician.",
        levels=_ABOVE_SELF_CARE,
    ),
    Advice(
        "ADV-NO-SAME-DAY-RETURN",
        "No return to play today",
        "No return to play on the day of the knock or fall. Signs can appear hours to days "
        "later: if any concussion sign appears (headache, dizziness, nausea, confusion, "
        "balance or vision problems), stop and be assessed before any return.",
        rules=frozenset({"RF-CONCUSSION-SYMPTOMS"}),
        when=HEAD_IMPACT,
    ),
    Advice(
        "ADV-DO-NOT-DRINK-MORE",
        "Do not drink more water",
        "Do not drink more water until assessed.",
        rules=frozenset({"RF-EAH", "RF-EAH-SEVERE"}),
        when=Is(FLUID, "excessive"),
    ),
    Advice(
        "ADV-HYDRATE",
        "Drink to thirst",
        "Drink to thirst, not beyond it; use an electrolyte drink after heavy sweating.",
        factors=frozenset({"CF-FLUID-ELECTROLYTE-LOSS"}),
        not_with="ADV-DO-NOT-DRINK-MORE",
    ),
    Advice(
        "ADV-REDUCE-LOAD",
        "Reduce training load",
        "Shorter sessions with real breaks, progress gradually and keep rest days.",
        factors=frozenset({"CF-TRAINING-LOAD"}),
    ),
    Advice(
        "ADV-WARM-UP-COOL-DOWN",
        "Warm up and cool down",
        "Warm up before and cool down after training; stretch, massage or foam roll.",
        factors=frozenset({"CF-WARM-UP-COOL-DOWN"}),
    ),
    Advice(
        "ADV-NUTRITION",
        "Nutrition",
        "Eat foods rich in potassium, magnesium and calcium, and eat 1–3 hours before training.",
        factors=frozenset({"CF-FLUID-ELECTROLYTE-LOSS", "CF-LOW-BLOOD-SUGAR"}),
    ),
    Advice(
        "ADV-CUT-STIMULANTS",
        "Cut down stimulants",
        "Cut down caffeine and alcohol; no energy drinks for under-18s.",
        factors=frozenset({"CF-STIMULANTS", "CF-ALCOHOL"}),
        rules=frozenset({"RF-CAFFEINE-EXCESS", "RF-RECREATIONAL-STIMULANTS"}),
    ),
    Advice(
        "ADV-STRESS-SLEEP",
        "Sleep and stress",
        "Protect sleep; use relaxation and breathing exercises for stress.",
        factors=frozenset({"CF-STRESS-SLEEP"}),
    ),
    Advice(
        "ADV-MEDICATION-REVIEW",
        "Medication review",
        "Review the medication with the prescriber; do not stop a prescribed medicine abruptly.",
        factors=frozenset({"CF-MEDICATION-EFFECT"}),
    ),
    Advice(
        "ADV-LABS",
        "Blood and urine tests",
        "For the clinician: CK, electrolytes (Na, K, Mg, Ca), kidney function and glucose.",
        rules=frozenset(
            {
                "RF-DARK-URINE",
                "RF-RHABDO-SYSTEMIC",
                "RF-RHABDO-SUSPECT",
                "RF-MUSCLE-INJURY",
                "RF-COMPARTMENT",
                "RF-SICKLE-COLLAPSE",
                "RF-STATIN-MUSCLE",
                "RF-DIURETIC",
                "RF-BETA-AGONIST",
                "RF-TETANY",
                "RF-TETANY-POSSIBLE",
                "RF-PROLONGED-CRAMP",
                "RF-EAH",
                "RF-EAH-SEVERE",
                "RF-NEW-WEAKNESS",
                "RF-SEVERE-WEAKNESS",
                "RF-TOXIC-HYPERTHERMIA",
                "RF-RECREATIONAL-STIMULANTS",
                "RF-CAFFEINE-EXCESS",
            }
        ),
    ),
    Advice(
        "ADV-TIC-GUIDANCE",
        "Tic guidance",
        "Tics often get worse with tiredness and excitement; do not draw attention to them, "
        "and tell the school.",
        factors=frozenset({"CF-TIC-PATTERN"}),
    ),
    Advice(
        "ADV-SAFETY-NET",
        "Safety net",
        "Call emergency services for collapse or fainting during exercise, a seizure or blank "
        "spell with jerking, chest pain or pressure or exertional jaw or arm pain, trouble "
        "breathing or swallowing, confusion or being hard to wake, one-sided weakness or a "
        "drooping face, or a fixed twisted neck or eyes forced upward. Get seen the same day "
        "for new weakness, severe muscle pain or swelling, cola-coloured urine, feeling very "
        "hot or vomiting in heat, headache, vomiting or swollen hands after long exercise "
        "(and drink no more water), or after any knock or fall: headache, vomiting, "
        "dizziness, balance or vision problems (these can start days later). See a clinician "
        "if twitching lasts over 2 weeks (tics: if frequent, worsening, painful or "
        "interfering), spreads, keeps returning, disturbs sleep or interferes with daily life.",
        always=True,
    ),
)
