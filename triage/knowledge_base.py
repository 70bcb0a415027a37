"""The knowledge base: PROTOCOL.md v1 as data, to be read top to bottom.

Every red-flag rule, contributing factor, advice entry and screen item of
PROTOCOL.md lives in the tables below, with its id, level, trigger, plain-English
display and rationale, and source. The triggers are written in the condition
language of ``triage.logic``; each condition checks the fields and values it
names against ``triage.vocabulary`` when this module loads, and ``check()`` at
the bottom checks the tables against each other, so a typo fails at start-up.

Reading the triggers:
- ``sym("x")`` is the yes/no symptom ``symptoms.x`` answered *true*; ``No(...)``
  is an answer known to be *false*; an unknown answer is neither.
- ``unless=`` is an exception: it only applies when it is established, i.e.
  every answer it tests is known and reassuring (PROTOCOL.md §3).
- ``Compare`` on an omitted number is false (PROTOCOL.md §3).
"""

from __future__ import annotations

from dataclasses import dataclass

from triage.logic import (
    AllOf,
    AnyOf,
    Compare,
    Condition,
    DailyDoses,
    Is,
    Listed,
    Medication,
    No,
    NotEstablished,
    RegionCount,
    SiteIn,
    SitesInclude,
    SitesWithin,
    Term,
    VocabularyError,
    Yes,
)
from triage.result import Concept, Level
from triage.vocabulary import ITEMS, TIC_SITES, Kind

#: Version of this knowledge base; bump on any clinical change. Reported on every finding.
KNOWLEDGE_BASE_VERSION = "1.0.0"
#: The protocol document this version implements.
PROTOCOL = "Post-exercise twitching triage protocol — version 1"

SNOMED = "http://snomed.info/sct"
RHABDOMYOLYSIS = Concept(SNOMED, "240131006", "Rhabdomyolysis")
HYPOCALCEMIA = Concept(SNOMED, "5291005", "Hypocalcemia")
DEHYDRATION = Concept(SNOMED, "34095006", "Dehydration")
MOTOR_NEURON_DISEASE = Concept(SNOMED, "37340000", "Motor neuron disease")
MUSCLE_WEAKNESS = Concept(SNOMED, "26544005", "Muscle weakness")
TIC_DISORDER = Concept(SNOMED, "568005", "Tic disorder")
MUSCLE_FASCICULATION = Concept(SNOMED, "82470000", "Muscle fasciculation")
CRAMP = Concept(SNOMED, "55300003", "Cramp")


# --- shorthands that keep the tables readable ---


def sym(name: str) -> Yes:
    """The symptom ``symptoms.<name>`` is answered true."""
    return Yes(f"symptoms.{name}")


def any_sym(*names: str) -> Condition:
    """Any of the symptoms is answered true."""
    return AnyOf(*(sym(name) for name in names)) if len(names) > 1 else sym(names[0])


def listed(code: str) -> Listed:
    """The condition is in the given ``history.conditions`` list."""
    return Listed("history.conditions", code)


HEAD_IMPACT = Yes("history.head_impact")
FALLS = "history.falls_last_7_days"
DURATION = "twitching.duration_days"
SESSION = "activity.session_minutes"
FLUID = "activity.fluid_intake"
TEMPERATURE = "body_temperature_c"
GLUCOSE = "blood_glucose_mmol_l"
AGE = "patient.age_years"
HIGH_INTENSITY = Is("activity.intensity", "high", "maximal")
GRADUAL_DEFICIT = Is("deficit_onset", "gradual")
ADULT = Compare(AGE, ">=", 18)
UNDER_18 = Compare(AGE, "<", 18)

# --- derived terms (PROTOCOL.md §3) --------------------------------------------------------

TIC_FEATURES = Term(
    "tic features",
    AnyOf(Yes("twitching.suppressible"), Yes("twitching.urge_before")),
)
TIC_PATTERN = Term("tic pattern", AllOf(TIC_FEATURES, SitesWithin(TIC_SITES)))
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
HIGH_TEMPERATURE = Term(
    "high temperature",
    AnyOf(sym("high_body_temperature"), Compare(TEMPERATURE, ">=", 40)),
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


# --- entry types ---


@dataclass(frozen=True, slots=True)
class Rule:
    """A red-flag rule of PROTOCOL.md §4."""

    id: str
    level: Level
    display: str
    when: Condition | None
    rationale: str
    source: str
    unless: Condition | None = None
    condition: Concept | None = None
    #: RF-SCREEN-INCOMPLETE fires from the screen (§5), not from a trigger.
    from_screen: bool = False

    def fires_when(self) -> str:
        """The trigger in words, as in PROTOCOL.md."""
        if self.from_screen:
            return "an item of the minimum red-flag screen is unknown"
        assert self.when is not None  # noqa: S101 - guaranteed by check()
        text = self.when.describe()
        if self.unless is not None:
            text += f", unless {self.unless.describe()}"
        return text


@dataclass(frozen=True, slots=True)
class Points:
    """One scoring line of a factor: ``points`` when ``when`` is true."""

    points: int
    when: Condition
    label: str = ""

    @property
    def text(self) -> str:
        return self.label or self.when.describe()


@dataclass(frozen=True, slots=True)
class PerMedication:
    """Points for each listed medication of the classes: more if started recently."""

    classes: tuple[str, ...]
    recent_days: int
    recent_points: int
    other_points: int

    @property
    def text(self) -> str:
        return (
            f"each listed {', '.join(self.classes)}: +{self.recent_points} if "
            f"days_since_start ≤ {self.recent_days}, else +{self.other_points}"
        )


@dataclass(frozen=True, slots=True)
class Factor:
    """A contributing factor of PROTOCOL.md §6, reported with ≥ 1 point."""

    code: str
    display: str
    rationale: str
    points: tuple[Points | PerMedication, ...]
    #: The factor is only scored when this is true (e.g. "only for a tic pattern").
    only_when: Condition | None = None
    #: The factor is only scored at this final level (CF-BENIGN-FASCICULATION).
    only_at_level: Level | None = None
    condition: Concept | None = None


@dataclass(frozen=True, slots=True)
class Advice:
    """An advice entry of PROTOCOL.md §7; given when any of its triggers holds."""

    code: str
    display: str
    text: str
    levels: frozenset[Level] = frozenset()
    rules: frozenset[str] = frozenset()
    factors: frozenset[str] = frozenset()
    when: Condition | None = None
    always: bool = False
    #: Not given when this other advice is given (ADV-HYDRATE vs ADV-DO-NOT-DRINK-MORE).
    not_with: str | None = None
    #: A more specific text when one of these rules fired.
    variant_rules: frozenset[str] = frozenset()
    variant_text: str = ""


@dataclass(frozen=True, slots=True)
class ScreenItem:
    """An item of the minimum red-flag screen (§5); required when ``required_when`` holds."""

    link_id: str
    required_when: Condition | None = None


# --- §4 red-flag rules, most urgent level first, each level in table order ---

A, E, C24, C = (
    Level.EMERGENCY_AMBULANCE,
    Level.EMERGENCY,
    Level.CONSULTATION_24,
    Level.CONSULTATION,
)

RULES: tuple[Rule, ...] = (
    # emergency_ambulance
    Rule(
        "RF-CONFUSION",
        A,
        "Confusion",
        when=sym("confusion"),
        rationale="New confusion around exercise can mean heat stroke, exercise-associated "
        "hyponatraemia, a head injury or low blood sugar; all are emergencies.",
        source="CDC heat illness guidance; Third EAH Consensus Statement",
    ),
    Rule(
        "RF-REDUCED-CONSCIOUSNESS",
        A,
        "Drowsy or hard to wake",
        when=sym("drowsiness"),
        rationale="Reduced consciousness is a danger sign after exertion or a head knock.",
        source="CDC HEADS UP danger signs",
    ),
    Rule(
        "RF-UNEQUAL-PUPILS",
        A,
        "Unequal pupils",
        when=sym("unequal_pupils"),
        rationale="One pupil larger than the other suggests raised intracranial pressure.",
        source="CDC HEADS UP danger signs",
    ),
    Rule(
        "RF-SEIZURE-DANGER",
        A,
        "Seizure that needs an ambulance",
        when=sym("seizure"),
        unless=AllOf(
            No("history.head_impact"),
            Compare("twitching.seizure_minutes", "<", 5),
            listed("epilepsy"),
        ),
        rationale="A first seizure, a seizure of 5 minutes or more, or a seizure after a head "
        "injury needs emergency services; only a short typical seizure in known epilepsy "
        "without a head injury is excepted.",
        source="NHS: what to do if someone has a seizure (call 999)",
    ),
    Rule(
        "RF-AIRWAY",
        A,
        "Breathing difficulty or noisy breathing",
        when=any_sym("breathing_difficulty", "noisy_breathing"),
        rationale="Shortness of breath at rest or noisy breathing may be airway compromise, "
        "e.g. laryngeal dystonia or tetany.",
        source="StatPearls: acute dystonia; hypocalcaemia",
    ),
    Rule(
        "RF-CHEST-PAIN",
        A,
        "Chest pain",
        when=sym("chest_pain"),
        rationale="Chest pain around exertion may be myocardial ischaemia or an arrhythmia.",
        source="NHS chest pain guidance",
    ),
    Rule(
        "RF-EXERTIONAL-SYNCOPE",
        A,
        "Collapse or fainting during exercise",
        when=any_sym("exertional_collapse", "fainting_during_exercise"),
        rationale="Collapse during exercise is cardiac until proven otherwise.",
        source="Sports cardiology consensus; NHS",
    ),
    Rule(
        "RF-HEATSTROKE",
        A,
        "Possible heat stroke",
        when=AllOf(
            HIGH_TEMPERATURE,
            any_sym(
                "confusion", "drowsiness", "seizure", "exertional_collapse", "loss_of_consciousness"
            ),
        ),
        rationale="A core temperature of 40 °C or more with brain dysfunction is exertional "
        "heat stroke: cool at once and call an ambulance.",
        source="CDC heat-related illness",
    ),
    Rule(
        "RF-SUDDEN-NEURO-DEFICIT",
        A,
        "Sudden speech, swallowing or one-sided weakness",
        when=any_sym("slurred_speech", "difficulty_swallowing", "one_sided_weakness"),
        unless=AllOf(GRADUAL_DEFICIT, No("history.head_impact")),
        rationale="A new deficit of speech, swallowing or one side of the body may be a stroke "
        "or an intracranial injury; only a deficit known to have come on gradually, without "
        "a head injury, is excepted.",
        source="NHS stroke symptoms (FAST)",
    ),
    Rule(
        "RF-THUNDERCLAP",
        A,
        "Sudden severe (thunderclap) headache",
        when=sym("sudden_severe_headache"),
        rationale="The worst headache ever, peaking within a minute, may be a subarachnoid "
        "haemorrhage or an arterial dissection.",
        source="NHS; NICE headache guidance",
    ),
    Rule(
        "RF-SPINAL",
        A,
        "Possible cervical spinal cord injury",
        when=AllOf(
            sym("neck_pain"),
            any_sym("numbness_tingling", "muscle_weakness", "one_sided_weakness"),
            AnyOf(HEAD_IMPACT, Compare(FALLS, ">=", 1)),
        ),
        rationale="Neck pain with numbness, tingling or weakness after a fall or a blow may be "
        "a cervical spinal cord injury: keep the neck still.",
        source="NICE NG232 head and spinal injury",
    ),
    Rule(
        "RF-SICKLE-COLLAPSE",
        A,
        "Possible exertional sickling",
        when=AllOf(
            listed("sickle_cell_trait"),
            AnyOf(
                sym("exertional_collapse"),
                sym("muscle_weakness"),
                sym("severe_muscle_pain"),
                sym("breathing_difficulty"),
                AllOf(sym("muscle_cramps"), HIGH_INTENSITY),
                text="any of exertional_collapse, muscle_weakness, severe_muscle_pain, "
                "breathing_difficulty, or muscle_cramps with intensity high or maximal",
            ),
        ),
        rationale="In sickle cell trait, collapse, weakness, severe muscle pain, breathlessness "
        "or cramping at high intensity can be exertional sickling, a medical emergency.",
        source="NCAA sickle cell trait statement",
    ),
    Rule(
        "RF-RHABDO-SYSTEMIC",
        A,
        "Rhabdomyolysis with kidney or heart involvement",
        when=AllOf(
            sym("cola_urine"),
            any_sym("palpitations", "no_urine_8h", "confusion", "fainting"),
        ),
        rationale="Cola-coloured urine with palpitations, no urine, confusion or fainting "
        "suggests rhabdomyolysis with hyperkalaemia or acute kidney injury.",
        source="CDC/NIOSH exertional rhabdomyolysis",
        condition=RHABDOMYOLYSIS,
    ),
    Rule(
        "RF-EAH-SEVERE",
        A,
        "Possible severe exercise-associated hyponatraemia",
        when=AllOf(EAH_RISK, any_sym("repeated_vomiting", "confusion", "seizure")),
        rationale="Over-drinking or a long event with repeated vomiting, confusion or a seizure "
        "suggests severe hyponatraemia with brain swelling.",
        source="Third International EAH Consensus Statement",
    ),
    Rule(
        "RF-SEVERE-HYPOTHERMIA",
        A,
        "Severe hypothermia",
        when=Compare(TEMPERATURE, "<", 32),
        rationale="A body temperature below 32 °C is severe hypothermia.",
        source="NHS hypothermia",
    ),
    # emergency
    Rule(
        "RF-LOSS-OF-CONSCIOUSNESS",
        E,
        "Knocked out by a blow",
        when=sym("loss_of_consciousness"),
        rationale="Any loss of consciousness after a blow needs emergency assessment.",
        source="CDC HEADS UP",
    ),
    Rule(
        "RF-FAINT",
        E,
        "Fainting",
        when=sym("fainting"),
        rationale="Fainting around exercise needs same-day emergency assessment.",
        source="NHS fainting guidance",
    ),
    Rule(
        "RF-HEAD-VOMITING",
        E,
        "Vomiting after a head injury",
        when=AllOf(HEAD_IMPACT, any_sym("vomiting", "repeated_vomiting")),
        rationale="Vomiting since a head injury is a sign to go to the emergency department.",
        source="NHS head injury and concussion",
    ),
    Rule(
        "RF-HEAD-ANTICOAGULATED",
        E,
        "Head injury on anticoagulants or with a bleeding disorder",
        when=AllOf(
            HEAD_IMPACT,
            AnyOf(Medication("anticoagulant"), listed("bleeding_disorder")),
        ),
        unless=AllOf(
            Compare("history.hours_since_head_impact", ">", 48),
            *(
                No(f"symptoms.{name}")
                for name in (
                    "headache",
                    "vomiting",
                    "dizziness",
                    "loss_of_balance",
                    "confusion",
                    "drowsiness",
                    "one_sided_weakness",
                )
            ),
            text="hours_since_head_impact > 48 and each of headache, vomiting, dizziness, "
            "loss_of_balance, confusion, drowsiness, one_sided_weakness is false",
        ),
        rationale="Anticoagulation or a bleeding disorder raises the risk of intracranial "
        "bleeding after a head injury, which can be delayed; CT within 8 hours.",
        source="NICE QS74 head injury",
    ),
    Rule(
        "RF-HEAD-NECK-PAIN",
        E,
        "Neck pain after a head injury",
        when=AllOf(HEAD_IMPACT, sym("neck_pain")),
        rationale="Neck pain after a head injury may be a spinal injury.",
        source="NICE NG232 head and spinal injury",
    ),
    Rule(
        "RF-HEADACHE-RED-FLAG",
        E,
        "Headache with danger signs",
        when=AnyOf(
            sym("worsening_headache"),
            AllOf(
                sym("headache"),
                any_sym("neck_pain", "vision_changes", "vomiting", "repeated_vomiting"),
            ),
        ),
        rationale="A worsening headache, or headache with neck pain, vision changes or "
        "vomiting, may be intracranial pathology.",
        source="CDC HEADS UP danger signs",
    ),
    Rule(
        "RF-FOCAL-DEFICIT",
        E,
        "One-sided weakness",
        when=sym("one_sided_weakness"),
        rationale="Weakness of one side suggests a structural lesion, whatever the onset.",
        source="NHS; NICE NG127",
    ),
    Rule(
        "RF-SEIZURE",
        E,
        "Possible seizure",
        when=AnyOf(
            sym("seizure"), Yes("twitching.rhythmic_march"), Yes("twitching.loss_of_awareness")
        ),
        rationale="A seizure, rhythmic jerking that marches to neighbouring parts (Jacksonian "
        "march) or loss of awareness during episodes suggests focal seizures.",
        source="NHS epilepsy; NICE NG217",
    ),
    Rule(
        "RF-DARK-URINE",
        E,
        "Cola-coloured urine",
        when=sym("cola_urine"),
        rationale="Tea or cola coloured urine after exercise suggests exertional "
        "rhabdomyolysis: immediate care and a CK level.",
        source="CDC/NIOSH exertional rhabdomyolysis",
        condition=RHABDOMYOLYSIS,
    ),
    Rule(
        "RF-RHABDO-SUSPECT",
        E,
        "Suspected rhabdomyolysis",
        when=AllOf(sym("severe_muscle_pain"), any_sym("muscle_swelling", "muscle_weakness")),
        rationale="Muscle pain far beyond normal soreness with swelling or weakness suggests "
        "exertional rhabdomyolysis.",
        source="CDC/NIOSH exertional rhabdomyolysis",
        condition=RHABDOMYOLYSIS,
    ),
    Rule(
        "RF-COMPARTMENT",
        E,
        "Possible compartment syndrome",
        when=AllOf(sym("muscle_swelling"), sym("numbness_tingling")),
        rationale="A swollen muscle with numbness or tingling may be compartment syndrome.",
        source="StatPearls: compartment syndrome",
    ),
    Rule(
        "RF-SEVERE-WEAKNESS",
        E,
        "Cannot stand or walk",
        when=sym("cannot_stand_or_walk"),
        rationale="Being unable to stand or walk suggests periodic paralysis, Guillain-Barré "
        "syndrome or severe rhabdomyolysis.",
        source="StatPearls; NHS",
        condition=MUSCLE_WEAKNESS,
    ),
    Rule(
        "RF-TETANY",
        E,
        "Tetany with a risk of low calcium",
        when=AllOf(
            any_sym("hand_foot_spasm", "perioral_tingling"),
            AnyOf(
                listed("thyroid_or_parathyroid_surgery"),
                listed("kidney_disease"),
                Medication("diuretic"),
            ),
        ),
        rationale="Carpopedal spasm or tingling around the mouth after thyroid or parathyroid "
        "surgery, with kidney disease or on a diuretic suggests hypocalcaemia.",
        source="StatPearls: hypocalcaemia",
        condition=HYPOCALCEMIA,
    ),
    Rule(
        "RF-DYSTONIA",
        E,
        "Possible acute dystonic reaction",
        when=AllOf(
            Yes("twitching.sustained_posture"),
            AnyOf(SiteIn("head_neck", "trunk"), Medication("dopamine_blocker")),
        ),
        rationale="A sustained twisted posture of the head, neck or trunk, or on a dopamine "
        "blocker, may be an acute dystonic reaction that can involve the airway.",
        source="StatPearls: acute dystonic reactions",
    ),
    Rule(
        "RF-HYPERTHERMIA",
        E,
        "High body temperature",
        when=HIGH_TEMPERATURE,
        rationale="A high body temperature around exercise is exertional heat illness.",
        source="CDC heat-related illness",
    ),
    Rule(
        "RF-HYPOTHERMIA",
        E,
        "Hypothermia",
        when=Compare(TEMPERATURE, "<", 35),
        rationale="A body temperature below 35 °C is hypothermia.",
        source="NHS hypothermia",
    ),
    Rule(
        "RF-HEAT-VOMITING",
        E,
        "Vomiting in the heat",
        when=AllOf(Yes("activity.hot_or_humid"), any_sym("vomiting", "repeated_vomiting")),
        rationale="Vomiting after exercise in hot or humid conditions is heat exhaustion that "
        "is not settling.",
        source="CDC heat-related illness",
    ),
    Rule(
        "RF-REPEATED-VOMITING",
        E,
        "Repeated vomiting",
        when=sym("repeated_vomiting"),
        rationale="Repeated vomiting may mean dehydration, hyponatraemia or a head injury.",
        source="NHS",
    ),
    Rule(
        "RF-EAH",
        E,
        "Possible exercise-associated hyponatraemia",
        when=AllOf(EAH_RISK, any_sym("headache", "vomiting", "swollen_hands")),
        rationale="Over-drinking or a long event with headache, vomiting or swollen hands: "
        "hyponatraemia cannot be excluded at home.",
        source="Third International EAH Consensus Statement",
    ),
    Rule(
        "RF-PROLONGED-CRAMP",
        E,
        "Cramp lasting an hour or more",
        when=Compare("twitching.cramp_minutes", ">=", 60),
        rationale="Cramps lasting over an hour need medical care.",
        source="CDC heat cramps",
        condition=CRAMP,
    ),
    Rule(
        "RF-CARDIAC-PALPITATIONS",
        E,
        "Palpitations with dizziness or cardiac risk",
        when=AllOf(
            sym("palpitations"),
            AnyOf(
                sym("dizziness"), listed("heart_disease"), listed("family_sudden_death_under_50")
            ),
        ),
        rationale="Palpitations with dizziness, heart disease or a family history of sudden "
        "death under 50 may be a dangerous arrhythmia.",
        source="NHS heart palpitations; sports cardiology consensus",
    ),
    Rule(
        "RF-HYPOGLYCAEMIA",
        E,
        "Severe hypoglycaemia",
        when=Compare(GLUCOSE, "<", 3.0),
        rationale="A blood glucose below 3.0 mmol/L is severe hypoglycaemia.",
        source="NHS low blood sugar",
    ),
    Rule(
        "RF-PRE-ECLAMPSIA",
        E,
        "Possible pre-eclampsia",
        when=AllOf(
            listed("pregnancy"), any_sym("vision_changes", "swollen_hands", "worsening_headache")
        ),
        rationale="In pregnancy, vision changes, swelling of the hands or a worsening headache "
        "may be pre-eclampsia.",
        source="NHS pre-eclampsia",
    ),
    # consultation_24
    Rule(
        "RF-CONCUSSION-SYMPTOMS",
        C24,
        "Suspected concussion",
        when=AllOf(
            HEAD_IMPACT,
            any_sym(
                "headache",
                "dizziness",
                "loss_of_balance",
                "nausea",
                "foggy_thinking",
                "vision_changes",
            ),
        ),
        rationale="Headache, dizziness, loss of balance, nausea, foggy thinking or vision "
        "changes after a head impact suggest concussion: off play and a same-day review.",
        source="Seed 000; CDC HEADS UP",
    ),
    Rule(
        "RF-MUSCLE-INJURY",
        C24,
        "Severe muscle pain or swelling",
        when=any_sym("severe_muscle_pain", "muscle_swelling"),
        rationale="Muscle pain far beyond normal soreness or swelling may be early "
        "rhabdomyolysis: same-day CK.",
        source="CDC/NIOSH exertional rhabdomyolysis",
        condition=RHABDOMYOLYSIS,
    ),
    Rule(
        "RF-STATIN-MUSCLE",
        C24,
        "Muscle symptoms on a statin",
        when=AllOf(
            Medication("statin"), any_sym("severe_muscle_pain", "muscle_cramps", "muscle_weakness")
        ),
        rationale="Muscle pain, cramps or weakness on a statin may be statin myopathy.",
        source="NHS statins: side effects",
    ),
    Rule(
        "RF-BETA-AGONIST",
        C24,
        "Reliever inhaler overuse or side effects",
        when=AnyOf(
            AllOf(Medication("beta_agonist"), sym("palpitations")),
            AllOf(DailyDoses("beta_agonist", 4), any_sym("muscle_cramps", "muscle_weakness")),
            text="beta_agonist and (palpitations, or (doses_per_day ≥ 4, added over the "
            "beta_agonist entries, and (muscle_cramps or muscle_weakness)))",
        ),
        rationale="Palpitations, or cramps or weakness with frequent reliever use, suggest "
        "beta-agonist overuse and low potassium.",
        source="NHS salbutamol inhaler",
    ),
    Rule(
        "RF-DIURETIC",
        C24,
        "Weakness or palpitations on a diuretic",
        when=AllOf(Medication("diuretic"), any_sym("muscle_weakness", "palpitations")),
        rationale="Weakness or palpitations on a diuretic suggest low potassium or magnesium.",
        source="NHS; BNF diuretics",
    ),
    Rule(
        "RF-DEHYDRATION",
        C24,
        "No urine for 8 hours",
        when=sym("no_urine_8h"),
        rationale="No urine for 8 hours needs urgent advice for dehydration.",
        source="NHS dehydration",
        condition=DEHYDRATION,
    ),
    Rule(
        "RF-PALPITATIONS",
        C24,
        "Palpitations",
        when=sym("palpitations"),
        rationale="Palpitations around exercise may be an arrhythmia: no sport until reviewed.",
        source="NHS heart palpitations",
    ),
    Rule(
        "RF-NEW-WEAKNESS",
        C24,
        "New muscle weakness",
        when=sym("muscle_weakness"),
        unless=GRADUAL_DEFICIT,
        rationale="New true weakness (not tiredness) needs same-day assessment unless it is "
        "known to have come on gradually over weeks.",
        source="NHS; NICE NG127",
        condition=MUSCLE_WEAKNESS,
    ),
    Rule(
        "RF-TETANY-POSSIBLE",
        C24,
        "Possible tetany",
        when=AnyOf(
            sym("hand_foot_spasm"),
            AllOf(sym("perioral_tingling"), AnyOf(sym("muscle_cramps"), SiteIn("head_neck"))),
        ),
        rationale="Hand or foot spasm, or tingling around the mouth with cramps or facial "
        "twitching, suggests hypocalcaemia or over-breathing.",
        source="StatPearls: hypocalcaemia",
        condition=HYPOCALCEMIA,
    ),
    Rule(
        "RF-SUSTAINED-POSTURE",
        C24,
        "Sustained abnormal posture",
        when=Yes("twitching.sustained_posture"),
        rationale="A fixed twisted posture lasting minutes suggests dystonia.",
        source="StatPearls: dystonia",
    ),
    Rule(
        "RF-FALL-NECK-PAIN",
        C24,
        "Neck pain after a fall",
        when=AllOf(sym("neck_pain"), Compare(FALLS, ">=", 1)),
        rationale="Neck pain after a fall in the last week may be a neck injury.",
        source="NICE NG232 head and spinal injury",
    ),
    Rule(
        "RF-LOW-GLUCOSE",
        C24,
        "Low blood glucose",
        when=Compare(GLUCOSE, "<", 4.0),
        rationale="A blood glucose below 4.0 mmol/L is hypoglycaemia.",
        source="NHS low blood sugar",
    ),
    Rule(
        "RF-PREGNANCY-HEADACHE",
        C24,
        "Headache in pregnancy",
        when=AllOf(listed("pregnancy"), sym("headache")),
        rationale="A headache in pregnancy needs pre-eclampsia excluded.",
        source="NHS pre-eclampsia",
    ),
    Rule(
        "RF-UNDER-4",
        C24,
        "Under 4 years old",
        when=Compare(AGE, "<", 4),
        rationale="Children under 4 are outside the population this protocol was validated for.",
        source="PROTOCOL.md §1 intended use",
    ),
    # consultation
    Rule(
        "RF-PERSISTENT",
        C,
        "Twitching for more than 2 weeks",
        when=AllOf(Compare(DURATION, ">", 14), NOT_TIC_PATTERN),
        rationale="A twitch lasting over 2 weeks should be seen by a clinician.",
        source="NHS muscle twitches",
    ),
    Rule(
        "RF-MULTIPLE-REGIONS",
        C,
        "Twitching in more than one place",
        when=AllOf(MULTIPLE_REGIONS, NOT_TIC_PATTERN),
        rationale="Twitching in more than one body region, or spreading, should be seen by a "
        "clinician.",
        source="NHS muscle twitches",
    ),
    Rule(
        "RF-NEUROMUSCULAR",
        C,
        "Features of a neuromuscular disease",
        when=AnyOf(
            sym("muscle_wasting"),
            AllOf(
                GRADUAL_DEFICIT,
                any_sym("muscle_weakness", "slurred_speech", "difficulty_swallowing"),
            ),
        ),
        rationale="Muscle wasting, or weakness, slurred speech or swallowing difficulty coming "
        "on over weeks, needs motor neuron disease excluded within 2 weeks.",
        source="NICE NG127 suspected neurological conditions",
        condition=MOTOR_NEURON_DISEASE,
    ),
    Rule(
        "RF-HEMIFACIAL",
        C,
        "Possible hemifacial spasm",
        when=AllOf(
            Is("twitching.side", "left", "right"),
            SitesInclude("eyelid"),
            SitesInclude("face", "jaw"),
            Compare(DURATION, ">", 14),
        ),
        rationale="One-sided eyelid and facial twitching for over 2 weeks suggests hemifacial "
        "spasm.",
        source="NHS hemifacial spasm",
    ),
    Rule(
        "RF-TIC-TROUBLESOME",
        C,
        "Troublesome tics",
        when=AllOf(
            TIC_FEATURES,
            AnyOf(
                Is("twitching.impact", "interferes"),
                Yes("twitching.painful"),
                Is("twitching.progression", "worsening"),
                Compare(DURATION, ">=", 365),
            ),
        ),
        rationale="Tics that interfere with daily life, are painful, are worsening or have "
        "lasted a year or more merit assessment; behavioural therapy helps.",
        source="NHS tics; AAN tic guideline",
        condition=TIC_DISORDER,
    ),
    Rule(
        "RF-MEDICATION",
        C,
        "Recently started medication that can cause twitching",
        when=Medication(
            "adhd_stimulant",
            "corticosteroid",
            "diuretic",
            "dopamine_blocker",
            "beta_agonist",
            "statin",
            max_days=90,
        ),
        rationale="A medication started in the last 90 days can cause twitching or cramps: "
        "prescriber review; do not stop it abruptly.",
        source="BNF; NHS",
    ),
    Rule(
        "RF-SLEEP-DISRUPTION",
        C,
        "Twitching that disturbs sleep",
        when=sym("sleep_disruption"),
        rationale="Twitching or cramps that disturb sleep should be assessed.",
        source="Seed 002",
    ),
    Rule(
        "RF-SELF-CARE-FAILED",
        C,
        "Persisting despite self-care",
        when=AllOf(
            Yes("history.self_care_tried"),
            AnyOf(Yes("history.previous_episodes"), Compare(DURATION, ">", 7)),
        ),
        rationale="Twitching that recurs or persists despite rest, fluids and stretching "
        "should be assessed.",
        source="Seed 002",
    ),
    Rule(
        "RF-SCREEN-INCOMPLETE",
        C,
        "Red-flag screen incomplete",
        when=None,
        from_screen=True,
        rationale="Red flags have not been excluded: the unknown screen items must be asked "
        "before self-care can be advised.",
        source="PROTOCOL.md §5 minimum red-flag screen",
    ),
)

# --- §5 minimum red-flag screen, in protocol order ---

_FAINTED = sym("fainting")
SCREEN: tuple[ScreenItem, ...] = (
    *(
        ScreenItem(f"symptoms.{name}")
        for name in (
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
    ),
    ScreenItem("history.head_impact"),
    *(
        ScreenItem(f"symptoms.{name}", HEAD_IMPACT)
        for name in (
            "headache",
            "vomiting",
            "dizziness",
            "loss_of_balance",
            "worsening_headache",
            "neck_pain",
        )
    ),
    ScreenItem("history.medications", HEAD_IMPACT),
    ScreenItem("symptoms.fainting_during_exercise", _FAINTED),
    ScreenItem(GLUCOSE, Medication("insulin_or_sulfonylurea")),
)

# --- §6 contributing factors, in table order ---

_RECENT_MEDICATION_CLASSES = (
    "diuretic",
    "statin",
    "corticosteroid",
    "dopamine_blocker",
    "beta_agonist",
    "adhd_stimulant",
)

FACTORS: tuple[Factor, ...] = (
    Factor(
        "CF-TRAINING-LOAD",
        "Training load",
        "Long or frequent sessions with little rest, a recent increase, high intensity or "
        "fatigue overload muscles and nerves (seeds 000, 002).",
        points=(
            Points(1, Compare(SESSION, ">=", 90)),
            Points(
                1,
                AllOf(
                    Compare("activity.rest_minutes_per_session", "<", 10),
                    Compare(SESSION, ">=", 60),
                ),
            ),
            Points(1, Compare("activity.sessions_per_week", ">=", 6)),
            Points(1, Yes("activity.recent_load_increase")),
            Points(1, HIGH_INTENSITY),
            Points(1, sym("fatigue")),
        ),
    ),
    Factor(
        "CF-FLUID-ELECTROLYTE-LOSS",
        "Fluid and electrolyte loss",
        "Sweating, heat, little fluid and cramps point to dehydration and electrolyte loss "
        "(seeds 000, 001, 002).",
        only_when=NotEstablished(Is(FLUID, "excessive"), "fluid_intake is not excessive"),
        points=(
            Points(1, Yes("activity.heavy_sweating")),
            Points(1, Yes("activity.hot_or_humid")),
            Points(1, Is(FLUID, "none", "low")),
            Points(1, sym("excessive_thirst")),
            Points(1, any_sym("dark_yellow_urine", "no_urine_8h")),
            Points(1, sym("muscle_cramps")),
            Points(1, Medication("diuretic")),
        ),
    ),
    Factor(
        "CF-OVERHYDRATION",
        "Over-hydration",
        "Drinking well beyond thirst risks exercise-associated hyponatraemia.",
        only_when=Is(FLUID, "excessive"),
        points=(
            Points(2, Is(FLUID, "excessive")),
            Points(1, sym("swollen_hands")),
            Points(1, Compare(SESSION, ">=", 240)),
        ),
    ),
    Factor(
        "CF-HEAT-STRAIN",
        "Heat strain",
        "A high temperature, or heat with dizziness, nausea or cramps, is heat strain.",
        points=(
            Points(2, HIGH_TEMPERATURE),
            Points(
                1,
                AllOf(
                    Yes("activity.hot_or_humid"), any_sym("dizziness", "nausea", "muscle_cramps")
                ),
            ),
        ),
    ),
    Factor(
        "CF-FALLS-HEAD-INJURY",
        "Falls and head injury",
        "Falls and head knocks can injure the head or neck (seed 000).",
        points=(
            Points(2, HEAD_IMPACT),
            Points(1, Compare(FALLS, ">=", 1)),
            Points(1, Compare(FALLS, ">=", 3)),
        ),
    ),
    Factor(
        "CF-STRESS-SLEEP",
        "Stress and sleep",
        "Stress, anxiety and short sleep make benign twitching more frequent (seed 001).",
        points=(
            Points(1, sym("anxiety_stress")),
            Points(1, Yes("history.short_sleep")),
            Points(1, listed("anxiety_disorder")),
        ),
    ),
    Factor(
        "CF-STIMULANTS",
        "Stimulants",
        "Caffeine, energy drinks and stimulant medicines increase nerve excitability.",
        points=(
            Points(2, AllOf(ADULT, Compare("history.caffeine_mg_per_day", ">", 400))),
            Points(2, AllOf(UNDER_18, Compare("history.caffeine_mg_per_day", ">", 100))),
            Points(1, AllOf(ADULT, Yes("history.energy_drinks"))),
            Points(2, AllOf(UNDER_18, Yes("history.energy_drinks"))),
            Points(1, Medication("adhd_stimulant")),
            Points(1, Medication("beta_agonist")),
        ),
    ),
    Factor(
        "CF-MEDICATION-EFFECT",
        "Medication effect",
        "Diuretics, statins, corticosteroids, dopamine blockers, beta agonists and ADHD "
        "stimulants can cause twitching or cramps, most often soon after starting.",
        points=(
            PerMedication(
                _RECENT_MEDICATION_CLASSES, recent_days=90, recent_points=2, other_points=1
            ),
        ),
    ),
    Factor(
        "CF-LOW-BLOOD-SUGAR",
        "Low blood sugar",
        "Exercising without eating, glucose-lowering treatment or diabetes risk low blood sugar.",
        points=(
            Points(1, No("activity.ate_before_exercise")),
            Points(1, Medication("insulin_or_sulfonylurea")),
            Points(1, listed("diabetes")),
            Points(2, Compare(GLUCOSE, "<", 4)),
        ),
    ),
    Factor(
        "CF-WARM-UP-COOL-DOWN",
        "No warm-up or cool-down",
        "Skipping the warm-up or the cool-down and stretching favours cramps and twitches "
        "(seeds 001, 002).",
        points=(
            Points(1, No("activity.warm_up")),
            Points(1, No("activity.cool_down")),
        ),
    ),
    Factor(
        "CF-COLD",
        "Cold",
        "Cold exposure and a low body temperature cause shivering and cramps.",
        points=(
            Points(1, Yes("activity.cold_exposure")),
            Points(2, Compare(TEMPERATURE, "<", 35)),
        ),
    ),
    Factor(
        "CF-ALCOHOL",
        "Alcohol",
        "More than 14 units a week affects muscles, nerves and electrolytes.",
        points=(Points(1, Compare("history.alcohol_units_per_week", ">", 14)),),
    ),
    Factor(
        "CF-TIC-PATTERN",
        "Tic pattern",
        "Suppressible movements with a premonitory urge in the face, neck or shoulders are "
        "typical of tics, common in children and worse with tiredness and stress.",
        only_when=TIC_PATTERN,
        points=(
            Points(1, Yes("twitching.suppressible")),
            Points(1, Yes("twitching.urge_before")),
            Points(1, AllOf(Compare(AGE, ">=", 4), Compare(AGE, "<=", 17)), "age 4–17"),
            Points(1, listed("tic_disorder")),
            Points(1, any_sym("fatigue", "anxiety_stress"), "fatigue or anxiety_stress present"),
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
            Points(2, sym("muscle_wasting")),
            Points(1, GRADUAL_DEFICIT),
            Points(1, MULTIPLE_REGIONS),
            Points(1, Is("twitching.progression", "worsening")),
            Points(1, listed("neuromuscular_disease")),
        ),
    ),
    Factor(
        "CF-BENIGN-FASCICULATION",
        "Benign fasciculation pattern",
        "Twitching in one region after exercise or at rest, for under 2 weeks and without "
        "weakness, is typical of benign fasciculation.",
        only_at_level=Level.SELF_CARE,
        points=(
            Points(1, SINGLE_REGION),
            Points(1, Is("twitching.timing", "after_exercise", "at_rest")),
            Points(1, Compare(DURATION, "<=", 14)),
            Points(1, No("symptoms.muscle_weakness")),
        ),
        condition=MUSCLE_FASCICULATION,
    ),
)

# --- §7 advice, most important first ---

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
        rules=frozenset({"RF-HEATSTROKE", "RF-HYPERTHERMIA"}),
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
        "No return to play on the day of a head impact; return gradually and only after "
        "clinical clearance.",
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
        "Drink to thirst; use an electrolyte drink after heavy sweating.",
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
        "Get help at once for weakness, spreading twitching, confusion, dark urine, chest pain, "
        "fainting or a head-injury danger sign; see a clinician if it lasts over 2 weeks or "
        "disturbs sleep.",
        always=True,
    ),
)


# --- load-time checks ---


def _check_unique(name: str, ids: list[str]) -> None:
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise VocabularyError(f"duplicate {name} ids {sorted(duplicates)}")


def _check_rules() -> None:
    levels = [rule.level for rule in RULES]
    if levels != sorted(levels, reverse=True):
        raise VocabularyError("RULES must be grouped most urgent level first")
    for rule in RULES:
        if rule.from_screen == (rule.when is not None):
            raise VocabularyError(f"{rule.id}: exactly one of when= / from_screen")
        if not (rule.display and rule.rationale and rule.source):
            raise VocabularyError(f"{rule.id}: display, rationale and source are required")
    if sum(rule.from_screen for rule in RULES) != 1:
        raise VocabularyError("exactly one rule fires from the screen")


def _check_advice() -> None:
    known_rules = {rule.id for rule in RULES}
    known_factors = {factor.code for factor in FACTORS}
    advice_codes = {advice.code for advice in ADVICE}
    for advice in ADVICE:
        unknown = (advice.rules | advice.variant_rules) - known_rules
        unknown |= advice.factors - known_factors
        if advice.not_with is not None and advice.not_with not in advice_codes:
            unknown.add(advice.not_with)
        if unknown:
            raise VocabularyError(f"{advice.code} names unknown ids {sorted(unknown)}")
        if not (advice.always or advice.levels or advice.rules or advice.factors or advice.when):
            raise VocabularyError(f"{advice.code} is never given")


def check() -> None:
    """Check the tables against each other and the vocabulary; raise VocabularyError."""
    _check_unique("rule", [rule.id for rule in RULES])
    _check_unique("factor", [factor.code for factor in FACTORS])
    _check_unique("advice", [advice.code for advice in ADVICE])
    _check_rules()
    for factor in FACTORS:
        if not factor.points or not factor.rationale:
            raise VocabularyError(f"{factor.code}: points and rationale are required")
    _check_advice()
    for screen_item in SCREEN:
        item = ITEMS.get(screen_item.link_id)
        if item is None or item.kind not in (Kind.BOOLEAN, Kind.DECIMAL, Kind.GROUP):
            raise VocabularyError(f"screen item {screen_item.link_id!r} is not a known answer")


check()
