"""Red-flag rules of PROTOCOL.md §4, most urgent level first, each level in table order.

Reading the triggers:
- ``sym("x")`` is the yes/no symptom ``symptoms.x`` answered *true*; ``No(...)``
  is an answer known to be *false*; an unknown answer is neither.
- ``unless=`` is an exception: it only applies when it is established, i.e.
  every answer it tests is known and reassuring (PROTOCOL.md §3).
- ``Compare`` on an omitted number is false (PROTOCOL.md §3).
"""

from __future__ import annotations

from triage.conditions import (
    AllOf,
    AnyOf,
    Compare,
    DailyDoses,
    Is,
    Medication,
    No,
    SiteIn,
    SitesInclude,
    Yes,
)
from triage.knowledge_base.entries import Rule
from triage.knowledge_base.terms import (
    ADULT,
    AGE,
    CAFFEINE,
    CRAMP,
    DEHYDRATION,
    DURATION,
    EAH_RISK,
    FALLS,
    FELL,
    GLUCOSE,
    GRADUAL_DEFICIT,
    HEAD_IMPACT,
    HIGH_INTENSITY,
    HIGH_TEMPERATURE,
    HYPOCALCEMIA,
    MOTOR_NEURON_DISEASE,
    MULTIPLE_REGIONS,
    MUSCLE_WEAKNESS,
    NOT_TIC_PATTERN,
    RECREATIONAL_STIMULANTS,
    RHABDOMYOLYSIS,
    TEMPERATURE,
    TIC_DISORDER,
    TIC_FEATURES,
    UNDER_18,
    any_sym,
    listed,
    sym,
)
from triage.result import Level

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
        when=AnyOf(
            sym("seizure"),
            AllOf(
                HEAD_IMPACT,
                AnyOf(Yes("twitching.rhythmic_march"), Yes("twitching.loss_of_awareness")),
            ),
        ),
        unless=AllOf(
            No("history.head_impact"),
            Compare("twitching.seizure_minutes", "<", 5),
            listed("epilepsy"),
        ),
        rationale="A first seizure, a seizure of 5 minutes or more, or a seizure or focal "
        "seizure signs after a head injury need emergency services; only a short typical "
        "seizure in known epilepsy without a head injury is excepted.",
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
        "RF-HEAD-NEURO",
        E,
        "Loss of balance or vision changes after a head injury",
        when=AllOf(HEAD_IMPACT, any_sym("loss_of_balance", "vision_changes")),
        rationale="Loss of balance or a change in vision since a head injury is a new focal "
        "neurological problem that needs emergency assessment.",
        source="NICE NG232 head and spinal injury",
    ),
    Rule(
        "RF-TOXIC-HYPERTHERMIA",
        E,
        "Raised temperature on serotonergic medicines or stimulant drugs",
        when=AllOf(
            AnyOf(Medication("serotonergic"), RECREATIONAL_STIMULANTS),
            AnyOf(HIGH_TEMPERATURE, Compare(TEMPERATURE, ">=", 38)),
        ),
        rationale="A raised temperature with twitching on a serotonergic medicine or after "
        "stimulant drugs may be serotonin or sympathomimetic toxicity.",
        source="StatPearls: serotonin syndrome (Hunter criteria); sympathomimetic toxicity",
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
            AnyOf(HEAD_IMPACT, FELL),
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
        "changes after a head knock or a fall suggest concussion (a blow to the body can "
        "cause it too): no play and a same-day review.",
        source="CDC HEADS UP",
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
        "RF-FEVER",
        C24,
        "Fever",
        when=Compare(TEMPERATURE, ">=", 38),
        rationale="Fever with twitching may be an infection or heat illness and needs "
        "same-day assessment.",
        source="NHS: fever",
    ),
    Rule(
        "RF-CAFFEINE-EXCESS",
        C24,
        "Very high caffeine intake",
        when=AnyOf(
            AllOf(ADULT, Compare(CAFFEINE, ">=", 1200)),
            AllOf(UNDER_18, Compare(CAFFEINE, ">=", 400)),
        ),
        rationale="Seizures and arrhythmia are reported from about 1,200 mg of caffeine a day "
        "in adults, and from much less in children.",
        source="FDA: spilling the beans, how much caffeine is too much",
    ),
    Rule(
        "RF-RECREATIONAL-STIMULANTS",
        C24,
        "Recent stimulant drug use",
        when=RECREATIONAL_STIMULANTS,
        rationale="Stimulant drugs raise the risk of arrhythmia, heat illness and "
        "rhabdomyolysis with exercise.",
        source="StatPearls: sympathomimetic toxicity",
    ),
    Rule(
        "RF-UNDER-4",
        C24,
        "Under 4 years old",
        when=Compare(AGE, "<", 4),
        rationale="Children under 4 are outside the population this decision support was "
        "validated for.",
        source="Intended use of this decision support: ages 4 and over",
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
            "serotonergic",
            max_days=90,
            omitted_days_recent=True,
        ),
        rationale="A medicine started in the last 90 days, or at an unknown date, can cause "
        "twitching or cramps: prescriber review; do not stop it abruptly.",
        source="BNF; NHS",
    ),
    Rule(
        "RF-SLEEP-DISRUPTION",
        C,
        "Twitching that disturbs sleep",
        when=sym("sleep_disruption"),
        rationale="Twitching or cramps that disturb sleep should be assessed.",
        source="NHS: muscle twitches",
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
        source="NHS: muscle twitches",
    ),
    Rule(
        "RF-INTERFERES",
        C,
        "Twitching that interferes with daily life",
        when=AllOf(Is("twitching.impact", "interferes"), NOT_TIC_PATTERN),
        rationale="Twitching that disrupts school, work, sleep or social life should be assessed.",
        source="NHS: muscle twitches",
    ),
    Rule(
        "RF-SCREEN-INCOMPLETE",
        C,
        "Red-flag screen incomplete",
        when=None,
        from_screen=True,
        rationale="Red flags have not been excluded: the unknown screen items must be asked "
        "before self-care can be advised.",
        source="Minimum red-flag screen of this decision support",
    ),
)
