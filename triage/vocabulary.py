"""The request vocabulary of PROTOCOL.md §3, declared once.

Everything that names a request field is derived from this table: the marshmallow
schema (``schemas/``), the FHIR intake Questionnaire and QuestionnaireResponse
mapping (``api/fhir``) and the knowledge-base checks (``triage.knowledge_base``).
A field is addressed by its *link id*, the dotted vocabulary path that PROTOCOL.md
§9 also uses as the FHIR ``linkId`` (``patient.age_years``, ``symptoms.headache``,
``blood_glucose_mmol_l``, ``history.medications.class``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field


class Kind(enum.Enum):
    """The answer type of an item; decides validation and the FHIR value[x]."""

    BOOLEAN = "boolean"  # tri-state: true, false, or omitted/null = unknown
    INTEGER = "integer"  # JSON number with an integral value (3.0 accepted)
    DECIMAL = "decimal"  # any finite JSON number
    CODE = "code"  # one value of a closed list
    CODES = "codes"  # a list of values of a closed list
    STRING = "string"  # free text
    REFERENCE = "reference"  # a FHIR reference string, e.g. Patient/123
    GROUP = "group"  # a list of objects (history.medications)


@dataclass(frozen=True, slots=True)
class Code:
    """One permitted value of a CODE or CODES item."""

    code: str
    display: str
    definition: str = ""


@dataclass(frozen=True, slots=True)
class Unit:
    """A UCUM unit for a numeric item (used in FHIR Quantity and Questionnaire)."""

    code: str
    display: str


@dataclass(frozen=True, slots=True)
class Item:
    """One request field. ``link_id`` is its vocabulary path and FHIR linkId."""

    link_id: str
    kind: Kind
    text: str
    definition: str = ""
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    codes: tuple[Code, ...] = ()
    max_length: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    unique: bool = False
    unit: Unit | None = None
    default: str | None = None
    pattern: str | None = None
    children: tuple[Item, ...] = ()

    @property
    def name(self) -> str:
        """The JSON key of the item inside its section."""
        return self.link_id.rsplit(".", 1)[-1]

    @property
    def code_values(self) -> frozenset[str]:
        return frozenset(c.code for c in self.codes)

    @property
    def is_numeric(self) -> bool:
        return self.kind in (Kind.INTEGER, Kind.DECIMAL)


@dataclass(frozen=True, slots=True)
class Section:
    """A nested JSON object of the request (``patient``, ``symptoms`` ...)."""

    name: str
    text: str
    required: bool
    items: tuple[Item, ...] = field(default_factory=tuple)


# --- helpers that keep the table below readable ------------------------------------


def _codes(*pairs: str | tuple[str, str] | tuple[str, str, str]) -> tuple[Code, ...]:
    out = []
    for pair in pairs:
        if isinstance(pair, str):
            out.append(Code(pair, pair.replace("_", " ").capitalize()))
        else:
            out.append(Code(*pair))
    return tuple(out)


def _yes_no(link_id: str, text: str, definition: str = "") -> Item:
    return Item(link_id, Kind.BOOLEAN, text, definition)


MINUTES = Unit("min", "minutes")
HOURS = Unit("h", "hours")
DAYS = Unit("d", "days")
YEARS = Unit("a", "years")
CELSIUS = Unit("Cel", "°C")
MMOL_L = Unit("mmol/L", "mmol/L")
MG_PER_DAY = Unit("mg/d", "mg per day")
PER_WEEK = Unit("/wk", "per week")
PER_DAY = Unit("/d", "per day")
COUNT = Unit("{count}", "count")
UNITS_PER_WEEK = Unit("{units}/wk", "units per week")

BODY_SITES = _codes(
    "eyelid",
    "face",
    "jaw",
    "neck",
    "shoulder",
    ("upper_arm", "Upper arm"),
    ("forearm_hand", "Forearm or hand"),
    "chest",
    "back",
    "abdomen",
    "thigh",
    "calf",
    "foot",
    ("whole_body", "Whole body", "Counts as every body region."),
)

#: Body regions of PROTOCOL.md §3; ``whole_body`` counts as every region.
REGIONS: dict[str, frozenset[str]] = {
    "head_neck": frozenset({"eyelid", "face", "jaw", "neck"}),
    "upper_limb": frozenset({"shoulder", "upper_arm", "forearm_hand"}),
    "trunk": frozenset({"chest", "back", "abdomen"}),
    "lower_limb": frozenset({"thigh", "calf", "foot"}),
}
WHOLE_BODY = "whole_body"
#: Sites a tic pattern may involve (PROTOCOL.md §3, derived terms).
TIC_SITES = frozenset({"eyelid", "face", "jaw", "neck", "shoulder"})

MEDICATION_CLASSES = _codes(
    ("anticoagulant", "Anticoagulant"),
    ("diuretic", "Diuretic"),
    ("statin", "Statin"),
    (
        "dopamine_blocker",
        "Dopamine blocker",
        "Metoclopramide, prochlorperazine, antipsychotics.",
    ),
    ("adhd_stimulant", "ADHD stimulant"),
    ("beta_agonist", "Beta agonist (reliever inhaler)"),
    ("corticosteroid", "Corticosteroid"),
    ("insulin_or_sulfonylurea", "Insulin or sulfonylurea"),
    (
        "serotonergic",
        "Serotonergic medicine",
        "SSRIs, SNRIs, tramadol, triptans, MAOIs, lithium, St John's wort.",
    ),
    ("other", "Other medication"),
)

CONDITIONS = _codes(
    ("sickle_cell_trait", "Sickle cell trait"),
    ("heart_disease", "Heart disease"),
    ("family_sudden_death_under_50", "Family history of sudden death under 50"),
    ("thyroid_or_parathyroid_surgery", "Thyroid or parathyroid surgery"),
    ("epilepsy", "Epilepsy"),
    ("diabetes", "Diabetes"),
    ("kidney_disease", "Kidney disease"),
    ("asthma", "Asthma"),
    ("neuromuscular_disease", "Neuromuscular disease"),
    ("tic_disorder", "Tic disorder"),
    ("anxiety_disorder", "Anxiety disorder"),
    ("bleeding_disorder", "Bleeding disorder"),
    ("pregnancy", "Pregnancy"),
)

# --- the vocabulary ------------------------------------------------------------------

PATIENT = Section(
    "patient",
    "The person with the symptoms.",
    required=True,
    items=(
        Item(
            "patient.reference",
            Kind.REFERENCE,
            "FHIR Patient reference",
            "Optional reference Patient/<id>; used as the subject of every resource.",
            pattern=r"^Patient/[A-Za-z0-9\-.]{1,64}$",
            max_length=72,
        ),
        Item(
            "patient.age_years",
            Kind.INTEGER,
            "Age in years",
            required=True,
            minimum=0,
            maximum=120,
            unit=YEARS,
        ),
        Item(
            "patient.sex",
            Kind.CODE,
            "Sex",
            "Omitted means unknown.",
            codes=_codes("female", "male", "other", "unknown"),
            default="unknown",
        ),
    ),
)

ACTIVITY = Section(
    "activity",
    "The exercise or sport around which the symptoms occur.",
    required=False,
    items=(
        Item(
            "activity.type",
            Kind.STRING,
            "Activity",
            'e.g. "artistic roller skating"',
            max_length=80,
        ),
        Item(
            "activity.intensity",
            Kind.CODE,
            "Intensity",
            codes=_codes("low", "moderate", "high", "maximal"),
        ),
        Item(
            "activity.session_minutes",
            Kind.INTEGER,
            "Session length",
            "Length of a usual (or the latest) session.",
            minimum=0,
            maximum=1440,
            unit=MINUTES,
        ),
        Item(
            "activity.sessions_per_week",
            Kind.INTEGER,
            "Sessions per week",
            minimum=0,
            maximum=28,
            unit=PER_WEEK,
        ),
        Item(
            "activity.rest_minutes_per_session",
            Kind.INTEGER,
            "Rest inside one session",
            "Total rest inside one session.",
            minimum=0,
            maximum=1440,
            unit=MINUTES,
        ),
        _yes_no(
            "activity.recent_load_increase",
            "Recent increase in training load",
            "Harder, longer or unaccustomed training in the last 2 weeks.",
        ),
        _yes_no("activity.hot_or_humid", "Hot or humid conditions"),
        _yes_no("activity.cold_exposure", "Cold exposure"),
        _yes_no("activity.heavy_sweating", "Heavy sweating"),
        Item(
            "activity.fluid_intake",
            Kind.CODE,
            "Fluid intake",
            "Excessive = drank well beyond thirst.",
            codes=_codes(
                "none",
                "low",
                "adequate",
                ("excessive", "Excessive", "Drank well beyond thirst."),
            ),
        ),
        _yes_no("activity.ate_before_exercise", "Ate before exercise"),
        _yes_no("activity.warm_up", "Warm-up before exercise"),
        _yes_no(
            "activity.cool_down", "Cool-down after exercise", "Cool-down and stretching after."
        ),
    ),
)

TWITCHING = Section(
    "twitching",
    "The twitching, tics, spasms or cramps.",
    required=True,
    items=(
        Item(
            "twitching.body_sites",
            Kind.CODES,
            "Body sites",
            "Where the twitching is; whole_body counts as every region.",
            required=True,
            codes=BODY_SITES,
            min_items=1,
            max_items=14,
            unique=True,
        ),
        Item("twitching.side", Kind.CODE, "Side", codes=_codes("left", "right", "both", "midline")),
        Item(
            "twitching.timing",
            Kind.CODE,
            "Timing",
            codes=_codes(
                ("during_exercise", "During exercise"),
                ("after_exercise", "After exercise"),
                ("at_rest", "At rest"),
                ("falling_asleep", "Falling asleep"),
                ("any_time", "Any time"),
            ),
        ),
        Item(
            "twitching.hours_after_exercise",
            Kind.DECIMAL,
            "Hours after exercise",
            "When it starts after a session.",
            minimum=0,
            maximum=168,
            unit=HOURS,
        ),
        Item(
            "twitching.episode_minutes",
            Kind.DECIMAL,
            "Episode length",
            "How long one twitching episode lasts.",
            minimum=0,
            maximum=10080,
            unit=MINUTES,
        ),
        Item(
            "twitching.cramp_minutes",
            Kind.DECIMAL,
            "Longest cramp",
            "How long the longest cramp lasted.",
            minimum=0,
            maximum=1440,
            unit=MINUTES,
        ),
        Item(
            "twitching.seizure_minutes",
            Kind.DECIMAL,
            "Longest seizure",
            "How long the longest seizure lasted.",
            minimum=0,
            maximum=1440,
            unit=MINUTES,
        ),
        Item(
            "twitching.duration_days",
            Kind.INTEGER,
            "Duration of the problem",
            "How long the problem has existed.",
            minimum=0,
            maximum=36500,
            unit=DAYS,
        ),
        Item(
            "twitching.onset",
            Kind.CODE,
            "Onset",
            "How the twitching began.",
            codes=_codes("sudden", "gradual"),
        ),
        Item(
            "twitching.progression",
            Kind.CODE,
            "Progression",
            codes=_codes("improving", "stable", "worsening"),
        ),
        _yes_no(
            "twitching.spreading", "Spreading", "Spreads to new body parts over days or weeks."
        ),
        _yes_no(
            "twitching.rhythmic_march",
            "Rhythmic march",
            "Rhythmic jerking that spreads to neighbouring parts within one episode.",
        ),
        _yes_no("twitching.loss_of_awareness", "Loss of awareness", "During an episode."),
        _yes_no("twitching.suppressible", "Suppressible", "Can be held back for a while."),
        _yes_no(
            "twitching.urge_before", "Urge before", "An urge or itch that the movement relieves."
        ),
        _yes_no(
            "twitching.sustained_posture",
            "Sustained posture",
            "A twisted or fixed posture lasting minutes, not relieved by stretching: "
            "neck turned, eyes forced upward, jaw locked.",
        ),
        Item(
            "twitching.impact",
            Kind.CODE,
            "Impact on daily life",
            "Interferes = with school, work, sleep or social life.",
            codes=_codes("none", "mild", "interferes"),
        ),
        _yes_no("twitching.painful", "Painful"),
    ),
)

_SYMPTOMS: tuple[tuple[str, str, str], ...] = (
    ("confusion", "Confusion", ""),
    ("drowsiness", "Drowsiness", "Hard to wake."),
    ("loss_of_consciousness", "Loss of consciousness", "Knocked out by a blow."),
    ("fainting", "Fainting", "Passed out without a blow."),
    ("fainting_during_exercise", "Fainting during exercise", ""),
    ("exertional_collapse", "Exertional collapse", "Collapsed during exercise."),
    ("seizure", "Seizure", ""),
    ("slurred_speech", "Slurred speech", ""),
    ("difficulty_swallowing", "Difficulty swallowing", ""),
    (
        "one_sided_weakness",
        "One-sided weakness",
        "Weakness or drooping of one side of the face or body.",
    ),
    ("unequal_pupils", "Unequal pupils", ""),
    ("vision_changes", "Vision changes", ""),
    ("headache", "Headache", ""),
    ("worsening_headache", "Worsening headache", ""),
    ("sudden_severe_headache", "Sudden severe headache", "Worst ever, peaking within a minute."),
    ("dizziness", "Dizziness", ""),
    ("loss_of_balance", "Loss of balance", ""),
    ("foggy_thinking", "Foggy thinking", ""),
    ("numbness_tingling", "Numbness or tingling", ""),
    ("perioral_tingling", "Tingling around the mouth", ""),
    (
        "hand_foot_spasm",
        "Hand or foot spasm",
        "Hands or feet drawn into a fixed spasm, usually both sides; not a single-muscle cramp.",
    ),
    ("neck_pain", "Neck pain", ""),
    (
        "muscle_weakness",
        "Muscle weakness",
        "Cannot make a normally easy movement (rise from a squat, stand on tiptoe, grip) "
        "after 30 minutes of rest; not tiredness.",
    ),
    ("cannot_stand_or_walk", "Cannot stand or walk", ""),
    ("muscle_wasting", "Muscle wasting", ""),
    ("severe_muscle_pain", "Severe muscle pain", "Far beyond normal soreness."),
    ("muscle_swelling", "Muscle swelling", ""),
    ("muscle_cramps", "Muscle cramps", ""),
    ("cola_urine", "Cola-coloured urine", "Tea or cola coloured."),
    ("dark_yellow_urine", "Dark yellow urine", ""),
    ("no_urine_8h", "No urine for 8 hours", ""),
    ("excessive_thirst", "Excessive thirst", ""),
    ("swollen_hands", "Swollen hands", ""),
    ("nausea", "Nausea", ""),
    ("vomiting", "Vomiting", ""),
    ("repeated_vomiting", "Repeated vomiting", ""),
    (
        "high_body_temperature",
        "High body temperature",
        "Feels very hot, hot skin, or a high reading.",
    ),
    (
        "chest_pain",
        "Chest pain",
        "Chest pain or pressure, or pain or discomfort in the neck, jaw, shoulder or arm "
        "brought on by exertion.",
    ),
    (
        "palpitations",
        "Palpitations",
        "Irregular, fluttering or pounding heartbeat, or still racing 10 minutes after stopping.",
    ),
    ("breathing_difficulty", "Breathing difficulty", "Short of breath at rest, now."),
    ("noisy_breathing", "Noisy breathing", ""),
    ("fatigue", "Fatigue", ""),
    ("sleep_disruption", "Sleep disruption", "The twitching or cramps disturb sleep."),
    ("anxiety_stress", "Anxiety or stress", ""),
)

SYMPTOMS = Section(
    "symptoms",
    "Symptoms in the last 72 hours (head-injury items: since the impact).",
    required=False,
    items=tuple(
        _yes_no(f"symptoms.{name}", text, definition) for name, text, definition in _SYMPTOMS
    ),
)

MEDICATION_ITEMS = (
    Item(
        "history.medications.class",
        Kind.CODE,
        "Medication class",
        required=True,
        codes=MEDICATION_CLASSES,
    ),
    Item(
        "history.medications.days_since_start",
        Kind.INTEGER,
        "Days since started",
        minimum=0,
        maximum=36500,
        unit=DAYS,
    ),
    Item(
        "history.medications.doses_per_day",
        Kind.DECIMAL,
        "Doses per day",
        minimum=0,
        maximum=100,
        unit=PER_DAY,
    ),
)

HISTORY = Section(
    "history",
    "History.",
    required=False,
    items=(
        _yes_no(
            "history.head_impact",
            "Head impact",
            "Hit the head (fall or collision) in the last 30 days.",
        ),
        Item(
            "history.hours_since_head_impact",
            Kind.DECIMAL,
            "Hours since the head impact",
            minimum=0,
            maximum=720,
            unit=HOURS,
        ),
        Item(
            "history.falls_last_7_days",
            Kind.INTEGER,
            "Falls in the last 7 days",
            minimum=0,
            maximum=1000,
            unit=COUNT,
        ),
        Item(
            "history.medications",
            Kind.GROUP,
            "Medications",
            "A given list is complete: [] means none; omitted means unknown. "
            "The same class may repeat.",
            max_items=20,
            children=MEDICATION_ITEMS,
        ),
        Item(
            "history.caffeine_mg_per_day",
            Kind.INTEGER,
            "Caffeine per day",
            minimum=0,
            maximum=10000,
            unit=MG_PER_DAY,
        ),
        _yes_no("history.energy_drinks", "Energy drinks"),
        _yes_no(
            "history.recreational_stimulants",
            "Recreational stimulants",
            "Cocaine, amphetamines, MDMA or non-prescribed stimulant medicines in the last "
            "72 hours.",
        ),
        Item(
            "history.alcohol_units_per_week",
            Kind.INTEGER,
            "Alcohol per week",
            minimum=0,
            maximum=500,
            unit=UNITS_PER_WEEK,
        ),
        _yes_no("history.short_sleep", "Short sleep", "Sleeping less than usual."),
        Item(
            "history.conditions",
            Kind.CODES,
            "Conditions",
            "A given list is complete: [] means none; omitted means unknown.",
            codes=CONDITIONS,
            max_items=len(CONDITIONS),
            unique=True,
        ),
        _yes_no("history.previous_episodes", "Previous episodes"),
        _yes_no(
            "history.self_care_tried",
            "Self-care tried",
            "Rest, fluids and stretching tried without improvement.",
        ),
    ),
)

SECTIONS: tuple[Section, ...] = (PATIENT, ACTIVITY, TWITCHING, SYMPTOMS, HISTORY)

#: Items at the top level of the request (no section).
TOP_LEVEL_ITEMS: tuple[Item, ...] = (
    Item(
        "body_temperature_c",
        Kind.DECIMAL,
        "Body temperature",
        "Measured.",
        minimum=25,
        maximum=45,
        unit=CELSIUS,
    ),
    Item(
        "blood_glucose_mmol_l",
        Kind.DECIMAL,
        "Blood glucose",
        "Measured.",
        minimum=0.5,
        maximum=40,
        unit=MMOL_L,
    ),
    Item(
        "deficit_onset",
        Kind.CODE,
        "Onset of weakness, speech or swallowing problems",
        "Gradual = over weeks.",
        codes=_codes("sudden", "gradual"),
    ),
    Item(
        "respondent",
        Kind.CODE,
        "Who gave the answers",
        "Never changes the triage; shown to the clinician with the answers.",
        codes=_codes(
            ("patient", "Patient"),
            ("parent_or_carer", "Parent or carer"),
            ("clinician", "Clinician"),
            ("other", "Other"),
        ),
    ),
    Item(
        "notes",
        Kind.STRING,
        "Notes",
        "Kept in the record, never interpreted.",
        max_length=2000,
    ),
)


def iter_items(*, include_children: bool = True) -> Iterator[Item]:
    """Every item in request order (sections first, then the top level)."""
    for section in SECTIONS:
        for item in section.items:
            yield item
            if include_children:
                yield from item.children
    yield from TOP_LEVEL_ITEMS


#: Every item by link id, children of groups included.
ITEMS: dict[str, Item] = {item.link_id: item for item in iter_items()}


def item(link_id: str) -> Item:
    """The item with this link id; KeyError names the unknown path."""
    try:
        return ITEMS[link_id]
    except KeyError:
        raise KeyError(f"unknown vocabulary path {link_id!r}") from None
