"""The one place that words answers for people (PROTOCOL.md §8 "clinician wording").

Questions, short labels, help texts and the phrasing of answers and evidence are
built here so that the intake Questionnaire, the narratives and the engine's
decisive questions say the same thing the same way. Every text is plain clinical
language: no field names, no document or section references, grammatical counts
("1 day", "2 days"). Pure Python: it reads only the vocabulary.

Time windows follow §3: symptoms mean the last 72 hours; the head-injury items
(the ones a head impact makes part of the screen, and being knocked out) also
cover the time since an impact, because a head impact counts for 30 days and its
signs can start late: asking about the longer window never misses one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from triage.result import Answer
from triage.vocabulary import ITEMS, Kind

WINDOW = "In the last 72 hours,"
HEAD_WINDOW = "In the last 72 hours, or since a head impact if there was one,"
RECENT = "Has the person recently had"


class Wording(NamedTuple):
    """How one item is asked and named; ``help`` only where it helps."""

    label: str
    question: str
    help: str | None = None


def _symptom(
    label: str,
    phrase: str,
    help_text: str | None = None,
    *,
    head: bool = False,
    verb: str = "has the person had",
) -> Wording:
    """A §3 symptom: "In the last 72 hours, has the person had <phrase>?"."""
    window = HEAD_WINDOW if head else WINDOW
    return Wording(label, f"{window} {verb} {phrase}?", help_text)


#: Every request field, by link id, including the 1.1 additions (``respondent``,
#: ``history.recreational_stimulants``) that the vocabulary gains with protocol 1.1.
TABLE: dict[str, Wording] = {
    "respondent": Wording(
        "Answers given by",
        "Who is answering these questions?",
        "The person themselves, a parent or carer, a clinician, or someone else.",
    ),
    # --- patient
    "patient.reference": Wording(
        "Patient record", "Which patient record do these answers belong to?", None
    ),
    "patient.age_years": Wording("Age", "How old is the person, in years?"),
    "patient.sex": Wording("Sex", "What is the person's sex?"),
    # --- activity
    "activity.type": Wording(
        "Activity",
        "What exercise or sport are the symptoms linked to?",
        'For example "artistic roller skating" or "running".',
    ),
    "activity.intensity": Wording("Intensity", "How hard is the exercise usually?"),
    "activity.session_minutes": Wording(
        "Session length",
        "How long did a usual session (or the latest one) last, in minutes?",
    ),
    "activity.sessions_per_week": Wording(
        "Sessions per week", "How many sessions does the person do in a usual week?"
    ),
    "activity.rest_minutes_per_session": Wording(
        "Rest inside a session",
        "In one session, how many minutes of rest are there in total?",
    ),
    "activity.recent_load_increase": Wording(
        "Recent increase in training",
        "In the last 2 weeks, has training been harder, longer or unaccustomed?",
    ),
    "activity.hot_or_humid": Wording(
        "Hot or humid conditions", "Was the exercise in hot or humid conditions?"
    ),
    "activity.cold_exposure": Wording(
        "Cold exposure", "Was the person exposed to cold (cold water, cold weather)?"
    ),
    "activity.heavy_sweating": Wording(
        "Heavy sweating", "Did the person sweat heavily during exercise?"
    ),
    "activity.fluid_intake": Wording(
        "Fluid intake",
        "How much did the person drink around exercise?",
        "Excessive means drinking well beyond thirst.",
    ),
    "activity.ate_before_exercise": Wording(
        "Ate before exercise", "Did the person eat in the hours before exercise?"
    ),
    "activity.warm_up": Wording("Warm-up", "Does the person warm up before exercise?"),
    "activity.cool_down": Wording(
        "Cool-down", "Does the person cool down and stretch after exercise?"
    ),
    # --- twitching
    "twitching.body_sites": Wording(
        "Body sites",
        "Where on the body is the twitching?",
        "Choose every place; whole body counts as every part of the body.",
    ),
    "twitching.side": Wording("Side", "Which side of the body does the twitching affect?"),
    "twitching.timing": Wording("Timing", "When does the twitching happen?"),
    "twitching.hours_after_exercise": Wording(
        "Start after exercise",
        "How many hours after a session does the twitching start?",
    ),
    "twitching.episode_minutes": Wording(
        "Episode length", "How long does one twitching episode last, in minutes?"
    ),
    "twitching.cramp_minutes": Wording(
        "Longest cramp", "How long did the longest cramp last, in minutes?"
    ),
    "twitching.seizure_minutes": Wording(
        "Longest seizure", "How long did the longest seizure last, in minutes?"
    ),
    "twitching.duration_days": Wording(
        "Duration of the problem", "For how many days has the problem existed?"
    ),
    "twitching.onset": Wording("Onset", "Did the twitching begin suddenly or gradually?"),
    "twitching.progression": Wording(
        "Progression", "Is the twitching improving, stable or getting worse?"
    ),
    "twitching.spreading": Wording(
        "Spreading",
        "Over days or weeks, has the twitching spread to new parts of the body?",
    ),
    "twitching.rhythmic_march": Wording(
        "Rhythmic march",
        "During one episode, does rhythmic jerking spread to neighbouring parts of the body?",
        "For example jerking that starts in the hand and moves up the arm to the face.",
    ),
    "twitching.loss_of_awareness": Wording(
        "Loss of awareness",
        "During an episode, does the person lose awareness (stare, not respond)?",
    ),
    "twitching.suppressible": Wording(
        "Can be held back", "Can the person hold the movements back for a while?"
    ),
    "twitching.urge_before": Wording(
        "Urge before",
        "Is there an urge or itch before the movement that the movement relieves?",
    ),
    "twitching.sustained_posture": Wording(
        "Sustained posture",
        "Has part of the body been held in a twisted or fixed position for minutes?",
        "For example the neck turned to one side, the eyes forced upward or the jaw locked, "
        "not relieved by stretching.",
    ),
    "twitching.impact": Wording(
        "Impact on daily life",
        "How much does the twitching affect daily life?",
        "Interferes means with school, work, sleep or social life.",
    ),
    "twitching.painful": Wording("Painful", "Is the twitching painful?"),
    # --- symptoms (the last 72 hours; head-injury items also since an impact)
    "symptoms.confusion": _symptom("Confusion", "any confusion"),
    "symptoms.drowsiness": _symptom(
        "Drowsiness",
        "drowsy or hard to wake",
        "More than ordinary tiredness.",
        verb="has the person been",
    ),
    "symptoms.loss_of_consciousness": Wording(
        "Knocked out",
        "In the last 72 hours, or since a head impact if there was one, has the person been "
        "knocked out by a blow, even briefly?",
    ),
    "symptoms.fainting": _symptom(
        "Fainting", "a faint (passing out without a blow)", "Any faint, at rest or in exercise."
    ),
    "symptoms.fainting_during_exercise": _symptom(
        "Fainting during exercise",
        "a faint during exercise",
        "Only if the person fainted. A collapse without fainting is asked separately.",
    ),
    "symptoms.exertional_collapse": _symptom(
        "Collapse during exercise", "a collapse during exercise"
    ),
    "symptoms.seizure": _symptom("Seizure", "a seizure (fit)"),
    "symptoms.slurred_speech": _symptom("Slurred speech", "slurred speech"),
    "symptoms.difficulty_swallowing": _symptom("Difficulty swallowing", "difficulty swallowing"),
    "symptoms.one_sided_weakness": _symptom(
        "One-sided weakness",
        "weakness or drooping of one side of the face or body",
        "For example a drooping face or mouth on one side, or weakness of one arm or leg.",
    ),
    "symptoms.unequal_pupils": _symptom(
        "Unequal pupils", "larger than the other", head=True, verb="has one pupil been"
    ),
    "symptoms.vision_changes": _symptom(
        "Vision changes", "changes in vision (blurred or double vision)", head=True
    ),
    "symptoms.headache": _symptom("Headache", "a headache", head=True),
    "symptoms.worsening_headache": _symptom(
        "Worsening headache", "a headache that keeps getting worse", head=True
    ),
    "symptoms.sudden_severe_headache": _symptom(
        "Sudden severe headache",
        "a sudden severe headache",
        "The worst headache ever, reaching its peak within a minute.",
    ),
    "symptoms.dizziness": _symptom("Dizziness", "dizziness", head=True),
    "symptoms.loss_of_balance": _symptom("Loss of balance", "loss of balance", head=True),
    "symptoms.foggy_thinking": _symptom("Foggy thinking", "foggy or slowed thinking", head=True),
    "symptoms.numbness_tingling": _symptom("Numbness or tingling", "numbness or tingling"),
    "symptoms.perioral_tingling": _symptom(
        "Tingling around the mouth", "tingling around the mouth"
    ),
    "symptoms.hand_foot_spasm": _symptom(
        "Hand or foot spasm",
        "hands or feet drawn into a fixed spasm",
        "Usually on both sides, the fingers or toes pulled into a fixed position; "
        "not a cramp of a single muscle.",
    ),
    "symptoms.neck_pain": _symptom("Neck pain", "neck pain", head=True),
    "symptoms.muscle_weakness": _symptom(
        "Muscle weakness",
        "muscle weakness that stays after 30 minutes of rest",
        "Cannot make a normally easy movement, such as rising from a squat, standing on "
        "tiptoe or gripping, after 30 minutes of rest. Not tiredness.",
    ),
    "symptoms.cannot_stand_or_walk": _symptom(
        "Cannot stand or walk", "unable to stand or walk", verb="has the person been"
    ),
    "symptoms.muscle_wasting": _symptom("Muscle wasting", "visible thinning (wasting) of a muscle"),
    "symptoms.severe_muscle_pain": _symptom(
        "Severe muscle pain",
        "severe muscle pain",
        "Far beyond normal soreness after exercise.",
    ),
    "symptoms.muscle_swelling": _symptom("Muscle swelling", "swelling of a muscle"),
    "symptoms.muscle_cramps": _symptom("Muscle cramps", "muscle cramps"),
    "symptoms.cola_urine": _symptom(
        "Cola-coloured urine", "urine the colour of tea or cola", verb="has the person passed"
    ),
    "symptoms.dark_yellow_urine": _symptom(
        "Dark yellow urine", "dark yellow urine", verb="has the person passed"
    ),
    "symptoms.no_urine_8h": _symptom(
        "No urine for 8 hours",
        "8 hours or more without passing urine",
        verb="has the person gone",
    ),
    "symptoms.excessive_thirst": _symptom("Excessive thirst", "excessive thirst"),
    "symptoms.swollen_hands": _symptom("Swollen hands", "swollen hands or fingers"),
    "symptoms.nausea": _symptom("Nausea", "nausea (feeling sick)", head=True),
    "symptoms.vomiting": _symptom("Vomiting", "vomiting", head=True),
    "symptoms.repeated_vomiting": _symptom("Repeated vomiting", "repeated vomiting"),
    "symptoms.high_body_temperature": _symptom(
        "High body temperature",
        "a high body temperature",
        "Feels very hot, has hot skin, or a high temperature reading.",
    ),
    "symptoms.chest_pain": _symptom(
        "Chest pain",
        "chest pain or pressure, or exertional pain in the neck, jaw, shoulder or arm",
        "Chest pain or pressure at any time, or pain or discomfort in the neck, jaw, "
        "shoulder or arm that comes on with exertion.",
    ),
    "symptoms.palpitations": _symptom(
        "Palpitations",
        "palpitations",
        "An irregular, fluttering or pounding heartbeat, or a heartbeat still racing "
        "10 minutes after stopping exercise.",
    ),
    "symptoms.breathing_difficulty": Wording(
        "Breathing difficulty",
        "Is the person short of breath at rest now?",
    ),
    "symptoms.noisy_breathing": _symptom("Noisy breathing", "noisy or high-pitched breathing"),
    "symptoms.fatigue": _symptom("Fatigue", "unusual tiredness (fatigue)"),
    "symptoms.sleep_disruption": _symptom(
        "Sleep disruption", "the person's sleep", verb="have the twitching or cramps disturbed"
    ),
    "symptoms.anxiety_stress": _symptom("Anxiety or stress", "anxiety or stress"),
    # --- measurements
    "body_temperature_c": Wording(
        "Body temperature",
        "What was the measured body temperature, in °C?",
        "Readings in the mouth, ear or armpit after exercise are lower than the core temperature.",
    ),
    "blood_glucose_mmol_l": Wording(
        "Blood glucose", "What was the measured blood glucose, in mmol/L?"
    ),
    "deficit_onset": Wording(
        "Onset of weakness, speech or swallowing problems",
        "Did the weakness, speech or swallowing problems begin suddenly or gradually?",
        "Gradual means over weeks.",
    ),
    "notes": Wording("Notes", "Is there anything else the clinician should know?"),
    # --- history
    "history.head_impact": Wording(
        "Head impact",
        "In the last 30 days, has the person hit their head (in a fall or collision)?",
    ),
    "history.hours_since_head_impact": Wording(
        "Time since the head impact",
        "How many hours ago was the head impact?",
        "Only if there was a head impact.",
    ),
    "history.falls_last_7_days": Wording(
        "Falls in the last 7 days", "In the last 7 days, how many times has the person fallen?"
    ),
    "history.medications": Wording(
        "Medications",
        "Which regular medicines does the person take?",
        "One entry per medicine; the same kind may be listed more than once.",
    ),
    "history.medications.class": Wording(
        "Medication",
        "What kind of medicine is it?",
        "Anticoagulant: a blood thinner such as warfarin or apixaban. Diuretic: a water "
        "tablet. Statin: for cholesterol. Dopamine blocker: metoclopramide, "
        "prochlorperazine or an antipsychotic. Beta agonist: a reliever inhaler such as "
        "salbutamol. Choose other for any other medicine.",
    ),
    "history.medications.days_since_start": Wording(
        "Medication started", "How many days ago was this medicine started?"
    ),
    "history.medications.doses_per_day": Wording(
        "Doses per day", "How many doses of this medicine are taken per day?"
    ),
    "history.caffeine_mg_per_day": Wording(
        "Caffeine per day",
        "How much caffeine does the person take per day, in mg?",
        "A cup of coffee has about 80 to 100 mg, a can of energy drink about 80 to 160 mg.",
    ),
    "history.energy_drinks": Wording("Energy drinks", "Does the person drink energy drinks?"),
    "history.recreational_stimulants": Wording(
        "Recreational stimulants",
        "In the last 72 hours, has the person taken cocaine, amphetamines, MDMA or "
        "stimulant medicines not prescribed for them?",
    ),
    "history.alcohol_units_per_week": Wording(
        "Alcohol per week", "How many units of alcohol does the person drink in a usual week?"
    ),
    "history.short_sleep": Wording("Short sleep", "Has the person been sleeping less than usual?"),
    "history.conditions": Wording(
        "Conditions",
        "Which of these conditions or situations apply to the person?",
        "Choose every one that applies.",
    ),
    "history.previous_episodes": Wording(
        "Previous episodes", "Has the person had episodes like this before?"
    ),
    "history.self_care_tried": Wording(
        "Self-care tried",
        "Have rest, fluids and stretching been tried without improvement?",
    ),
}


def _conditions_listed() -> str:
    """The conditions of the vocabulary in running text, for a question that lists them."""
    displays = [code.display for code in ITEMS["history.conditions"].codes]
    words = [display[0].lower() + display[1:] for display in displays]
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else "".join(words)


#: Yes/no questions that gate a list in the intake Questionnaire, so that a form can
#: say "none" (the answer "no") and never asks for list members that do not exist.
GATES: dict[str, Wording] = {
    "history.medications.any": Wording(
        "Takes regular medicines",
        "Does the person take any regular medicines (prescribed or bought, including "
        "inhalers, insulin and the contraceptive pill)?",
        "Answer no only if the person takes none; the medicines are asked next otherwise.",
    ),
    "history.conditions.any": Wording(
        "Has a listed condition",
        f"Does any of these apply to the person: {_conditions_listed()}?",
        "Answer no only if none of them applies; which ones is asked next otherwise.",
    ),
}
TABLE.update(GATES)

#: What each gate's list holds, in words, for the note on a "no" given with members.
_GATE_LISTS: dict[str, str] = {
    "history.medications.any": "medicines",
    "history.conditions.any": "conditions",
}


def gate_note(gate: str, given: bool | None, listed: Sequence[Any] | None) -> str | None:
    """A gate's answer where the list alone does not show it; None where it does.

    The list carries the gate's answer except in two cases, which would otherwise
    vanish from what a clinician reads: a "yes" with nothing listed (the list stays
    unknown and is asked again), and a "no" given together with listed members (the
    members count, so the answer is recorded as the yes they imply, and the "no" is
    worded here so the contradiction stays visible).
    """
    if given is True and listed is None:
        return "Yes — not listed"
    if given is False and listed:
        return f"Yes — answered no, but {_GATE_LISTS.get(gate, 'some')} are listed, and they count"
    return None


#: Displays of codes the vocabulary does not (yet) carry; the vocabulary wins when it does.
_CODE_DISPLAYS: dict[str, dict[str, str]] = {
    "respondent": {
        "patient": "The person themselves",
        "parent_or_carer": "Parent or carer",
        "clinician": "Clinician",
        "other": "Someone else",
    },
    "history.medications.class": {
        "serotonergic": "Serotonergic medicine (SSRI, SNRI, tramadol, triptan, lithium)",
    },
}

#: Numbers that are counted: (singular, plural or None, suffix after the count).
_COUNTED: dict[str, tuple[str, str | None, str]] = {
    "min": ("minute", None, ""),
    "h": ("hour", None, ""),
    "d": ("day", None, ""),
    "a": ("year", None, ""),
    "/wk": ("session", None, " per week"),
    "/d": ("dose", None, " per day"),
    "{count}": ("fall", None, ""),
    "{units}/wk": ("unit", None, " per week"),
}


def _entry(link_id: str) -> Wording:
    try:
        return TABLE[link_id]
    except KeyError:
        raise KeyError(f"no wording for {link_id!r}") from None


def question(link_id: str) -> str:
    """The Questionnaire text of an item: a question answerable as it stands."""
    return _entry(link_id).question


def label(link_id: str) -> str:
    """A short clinician label ("Session length", "Confusion")."""
    return _entry(link_id).label


def help_text(link_id: str) -> str | None:
    """Help for the person answering, or None where the question says it all."""
    return _entry(link_id).help


def number(value: float) -> str:
    """A number as people write it: 120, 2.5, 39.5 (no trailing ".0")."""
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return str(int(value))
    return str(value)


def count(n: float, singular: str, plural: str | None = None) -> str:
    """A grammatical count: "1 day", "2 days", "0 days", "1.5 hours"."""
    word = singular if n == 1 else (plural or f"{singular}s")
    return f"{number(n)} {word}"


def code_display(link_id: str, code: str) -> str:
    """The display of one coded answer; the code itself, unchanged, if it is unknown."""
    item = ITEMS.get(link_id)
    if item is not None:
        for known in item.codes:
            if known.code == code:
                return known.display
    return _CODE_DISPLAYS.get(link_id, {}).get(code, code.replace("_", " ").capitalize())


def _number_text(link_id: str, value: float) -> str:
    if link_id == "history.medications.days_since_start":
        return "today" if value == 0 else f"{count(value, 'day')} ago"
    item = ITEMS.get(link_id)
    unit = item.unit if item is not None else None
    if unit is None:
        return number(value)
    counted = _COUNTED.get(unit.code)
    if counted is not None:
        singular, plural, suffix = counted
        return count(value, singular, plural) + suffix
    if unit.code == "Cel":
        return f"{number(value)} °C"
    return f"{number(value)} {unit.display}"


def _medication_text(medication: Mapping[str, Any]) -> str:
    parts = []
    klass = medication.get("class")
    parts.append(
        code_display("history.medications.class", klass) if klass is not None else "Unknown kind"
    )
    days = medication.get("days_since_start")
    if days is not None:
        parts.append("started " + _number_text("history.medications.days_since_start", days))
    doses = medication.get("doses_per_day")
    if doses is not None:
        parts.append(_number_text("history.medications.doses_per_day", doses))
    return ", ".join(parts)


def answer_text(link_id: str, value: Any) -> str:
    """One answer in words: "Yes", "Not known", "120 minutes", "Diuretic", "None"."""
    if value is None:
        return "Not known"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, int | float):
        return _number_text(link_id, value)
    if isinstance(value, Mapping):
        return _medication_text(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            return "None"
        separator = "; " if any(isinstance(member, Mapping) for member in value) else ", "
        return separator.join(answer_text(link_id, member) for member in value)
    item = ITEMS.get(link_id)
    if (item is not None and item.codes) or link_id in _CODE_DISPLAYS:
        return code_display(link_id, value)
    return str(value)


def decisive_condition(link_id: str, answer: Any) -> str:
    """How a decisive question's deciding answer is put: "If yes", "If none",
    "If the answer is 40 °C", "If the answer includes Anticoagulant".

    One wording for the clinician report and the CDS card. A medication list's
    members are put as their class, in words ("Anticoagulant", not the code).
    """
    item = ITEMS.get(link_id)
    group = item is not None and item.kind is Kind.GROUP
    answer_id = "history.medications.class" if group else link_id
    if isinstance(answer, bool):
        return "If yes" if answer else "If no"
    if isinstance(answer, tuple):
        values = [v.get("class") if isinstance(v, Mapping) else v for v in answer]
        if not values:
            return "If none"
        shown = ", ".join(answer_text(answer_id, str(value)) for value in values)
        return f"If the answer includes {shown}"
    return f"If the answer is {answer_text(answer_id, answer)}"


def evidence_text(answer: Answer) -> str:
    """A triggering answer as question and answer: "Session length: 120 minutes"."""
    return f"{label(answer.link_id)}: {answer_text(answer.link_id, answer.value)}"
