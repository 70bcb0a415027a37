"""A deliberately naive, independent reading of PROTOCOL.md (version 1.1).

Written from the protocol text alone, without looking at the engine, so that a
differential test can find places where the engine and a second reader disagree.
Every block quotes the protocol line it implements. Where the text admits more
than one reading, the block is marked ``# AMBIGUOUS:`` and takes the safer one
(more urgent, more screen items, more likely to fire).

``oracle(request)`` returns::

    {
        "level": "consultation",               # §2 code
        "rules": {"RF-...", ...},              # every fired rule (a set)
        "unanswered": ["symptoms.x", ...],     # §5, in §5 order, each item once
        "factors": [("CF-...", points), ...],  # §6, most points first, ties in table order
        "advice": ["ADV-...", ...],            # §7, in table order
        "version": "1.1.0",
    }

``decisive_questions(request)`` gives §8's decisive questions by brute force:
every candidate answer of every unknown screen item is put into the request and
the whole protocol is evaluated again.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

KNOWLEDGE_BASE_VERSION = "1.1.0"

# §2: "Most urgent first."
LEVELS = ("emergency_ambulance", "emergency", "consultation_24", "consultation", "self_care")
URGENCY = {code: len(LEVELS) - 1 - i for i, code in enumerate(LEVELS)}

# --- §3 vocabulary (only what the generators and the decisive questions need) -------------

BODY_SITES = (
    "eyelid", "face", "jaw", "neck", "shoulder", "upper_arm", "forearm_hand", "chest", "back",
    "abdomen", "thigh", "calf", "foot", "whole_body",
)  # fmt: skip
MEDICATION_CLASSES = (
    "anticoagulant", "diuretic", "statin", "dopamine_blocker", "adhd_stimulant", "beta_agonist",
    "corticosteroid", "insulin_or_sulfonylurea", "serotonergic", "other",
)  # fmt: skip
CONDITIONS = (
    "sickle_cell_trait", "heart_disease", "family_sudden_death_under_50",
    "thyroid_or_parathyroid_surgery", "epilepsy", "diabetes", "kidney_disease", "asthma",
    "neuromuscular_disease", "tic_disorder", "anxiety_disorder", "bleeding_disorder", "pregnancy",
)  # fmt: skip
SYMPTOMS = (
    "confusion", "drowsiness", "loss_of_consciousness", "fainting", "fainting_during_exercise",
    "exertional_collapse", "seizure", "slurred_speech", "difficulty_swallowing",
    "one_sided_weakness", "unequal_pupils", "vision_changes", "headache", "worsening_headache",
    "sudden_severe_headache", "dizziness", "loss_of_balance", "foggy_thinking",
    "numbness_tingling", "perioral_tingling", "hand_foot_spasm", "neck_pain", "muscle_weakness",
    "cannot_stand_or_walk", "muscle_wasting", "severe_muscle_pain", "muscle_swelling",
    "muscle_cramps", "cola_urine", "dark_yellow_urine", "no_urine_8h", "excessive_thirst",
    "swollen_hands", "nausea", "vomiting", "repeated_vomiting", "high_body_temperature",
    "chest_pain", "palpitations", "breathing_difficulty", "noisy_breathing", "fatigue",
    "sleep_disruption", "anxiety_stress",
)  # fmt: skip
INTENSITIES = ("low", "moderate", "high", "maximal")
FLUID_INTAKES = ("none", "low", "adequate", "excessive")
RESPONDENTS = ("patient", "parent_or_carer", "clinician", "other")
HARD = ("high", "maximal")  # "intensity high or maximal"

# §3 "Body regions: head-neck = eyelid, face, jaw, neck; upper limb = shoulder,
# upper_arm, forearm_hand; trunk = chest, back, abdomen; lower limb = thigh,
# calf, foot. `whole_body` counts as every region and, where a rule names single
# sites ("a head-neck site", "sites include eyelid"), as every site; it is never
# one of the tic-pattern sites."
REGIONS = {
    "head_neck": frozenset({"eyelid", "face", "jaw", "neck"}),
    "upper_limb": frozenset({"shoulder", "upper_arm", "forearm_hand"}),
    "trunk": frozenset({"chest", "back", "abdomen"}),
    "lower_limb": frozenset({"thigh", "calf", "foot"}),
}
ALL_SINGLE_SITES = frozenset().union(*REGIONS.values())
# §3 "every site is in {eyelid, face, jaw, neck, shoulder}"
TIC_SITES = frozenset({"eyelid", "face", "jaw", "neck", "shoulder"})

# §6 table order (ties are broken by this order).
FACTOR_ORDER = (
    "CF-TRAINING-LOAD",
    "CF-FLUID-ELECTROLYTE-LOSS",
    "CF-OVERHYDRATION",
    "CF-HEAT-STRAIN",
    "CF-FALLS-HEAD-INJURY",
    "CF-STRESS-SLEEP",
    "CF-STIMULANTS",
    "CF-MEDICATION-EFFECT",
    "CF-LOW-BLOOD-SUGAR",
    "CF-WARM-UP-COOL-DOWN",
    "CF-COLD",
    "CF-ALCOHOL",
    "CF-TIC-PATTERN",
    "CF-NEUROMUSCULAR",
    "CF-BENIGN-FASCICULATION",
)


class Answers:
    """Read access to a request with the §3 semantics of unknown.

    Yes/no items are tri-state: ``True``, ``False`` or ``None`` (omitted or null =
    unknown). Lists: ``None`` = unknown, a given list is complete.
    """

    def __init__(self, request: dict[str, Any]) -> None:
        self.request = request

    def _section(self, name: str) -> dict[str, Any]:
        return self.request.get(name) or {}

    def get(self, link_id: str) -> Any:
        """The raw answer at a vocabulary path; None when omitted or null."""
        if "." not in link_id:
            return self.request.get(link_id)
        section, name = link_id.split(".", 1)
        return self._section(section).get(name)

    # --- tri-state booleans -----------------------------------------------------------
    def yes(self, link_id: str) -> bool:
        """The answer is present: true (§4 'A rule fires on answers that are present')."""
        return self.get(link_id) is True

    def no(self, link_id: str) -> bool:
        """The answer is known and false."""
        return self.get(link_id) is False

    def s(self, name: str) -> bool:
        """symptoms.<name> is true."""
        return self.yes(f"symptoms.{name}")

    def s_false(self, name: str) -> bool:
        return self.no(f"symptoms.{name}")

    # --- numbers ("A numeric condition on an omitted number is false") ---------------
    def ge(self, link_id: str, bound: float) -> bool:
        value = self.get(link_id)
        return value is not None and value >= bound

    def gt(self, link_id: str, bound: float) -> bool:
        value = self.get(link_id)
        return value is not None and value > bound

    def lt(self, link_id: str, bound: float) -> bool:
        value = self.get(link_id)
        return value is not None and value < bound

    def le(self, link_id: str, bound: float) -> bool:
        value = self.get(link_id)
        return value is not None and value <= bound

    # --- lists ---------------------------------------------------------------------
    @property
    def medications(self) -> list[dict[str, Any]] | None:
        return self._section("history").get("medications")

    @property
    def conditions(self) -> list[str] | None:
        return self._section("history").get("conditions")

    def med(self, cls: str) -> bool:
        """A medication of this class is listed."""
        return any(m["class"] == cls for m in self.medications or [])

    def meds_of(self, cls: str) -> list[dict[str, Any]]:
        return [m for m in self.medications or [] if m["class"] == cls]

    def cond(self, name: str) -> bool:
        """This condition is listed."""
        return name in (self.conditions or [])

    # --- twitching / patient ----------------------------------------------------------
    @property
    def sites(self) -> list[str]:
        return list(self._section("twitching").get("body_sites") or [])

    @property
    def age(self) -> int:
        return self._section("patient")["age_years"]

    @property
    def intensity(self) -> str | None:
        return self.get("activity.intensity")


# --- §3 derived terms ------------------------------------------------------------------


def regions_of(sites: list[str]) -> set[str]:
    """Regions touched by the sites; `whole_body` counts as every region."""
    out: set[str] = set()
    for site in sites:
        if site == "whole_body":
            out |= set(REGIONS)
        for region, members in REGIONS.items():
            if site in members:
                out.add(region)
    return out


def named_sites(a: Answers) -> set[str]:
    """The sites as a rule naming single sites sees them: `whole_body` is every site."""
    sites = set(a.sites)
    if "whole_body" in sites:
        sites |= ALL_SINGLE_SITES
    return sites


def has_region_site(a: Answers, region: str) -> bool:
    """'a head-neck site' etc.: a listed site of the region, `whole_body` included."""
    return bool(named_sites(a) & REGIONS[region])


def tic_features(a: Answers) -> bool:
    # "tic features = `suppressible` or `urge_before` is true."
    return a.yes("twitching.suppressible") or a.yes("twitching.urge_before")


def tic_pattern(a: Answers) -> bool:
    # "tic pattern = tic features, every site is in {eyelid, face, jaw, neck,
    #  shoulder}, `spreading` is false, and (age_years ≤ 17 or `tic_disorder` is
    #  listed)." `whole_body` is never a tic-pattern site. Each part must be known:
    # an unknown `spreading` or an unknown condition list leaves the pattern
    # unproven, so "not a tic pattern" holds and the rules that need it fire.
    return (
        tic_features(a)
        and all(site in TIC_SITES for site in a.sites)
        and a.no("twitching.spreading")
        and (a.age <= 17 or a.cond("tic_disorder"))
    )


def multiple_regions(a: Answers) -> bool:
    # "multiple regions = `spreading` is true, or (the sites span ≥ 2 regions or
    #  include `whole_body`, and `timing` is not `falling_asleep`)."
    # AMBIGUOUS: with `timing` unknown, is it "not falling_asleep"? Readings: (a)
    # yes, only a known falling_asleep excuses several regions; (b) no, the
    # excuse is unproven either way so the term is unknown and not true. (a)
    # fires RF-MULTIPLE-REGIONS more often (safer). Taken: (a).
    if a.yes("twitching.spreading"):
        return True
    spans = len(regions_of(a.sites)) >= 2 or "whole_body" in a.sites
    return spans and a.get("twitching.timing") != "falling_asleep"


def single_region(a: Answers) -> bool:
    # "single region = all sites in one region, no `whole_body`, `spreading` not true."
    # (Unknown spreading is "not true"; runner-calf-fasciculation scores single
    #  region with spreading omitted.)
    sites = a.sites
    return (
        "whole_body" not in sites
        and len(regions_of(sites)) == 1
        and not a.yes("twitching.spreading")
    )


def high_temperature(a: Answers) -> bool:
    # "high temperature = `high_body_temperature` is true, or `body_temperature_c`
    #  ≥ 40, or `body_temperature_c` ≥ 39 with `hot_or_humid` true or intensity
    #  high or maximal"
    return (
        a.s("high_body_temperature")
        or a.ge("body_temperature_c", 40)
        or (
            a.ge("body_temperature_c", 39)
            and (a.yes("activity.hot_or_humid") or a.intensity in HARD)
        )
    )


def measured_high_temperature(a: Answers) -> bool:
    """§5: a measured temperature that already makes high temperature true."""
    return a.ge("body_temperature_c", 40) or (
        a.ge("body_temperature_c", 39) and (a.yes("activity.hot_or_humid") or a.intensity in HARD)
    )


def eah_risk(a: Answers) -> bool:
    # "EAH risk = `fluid_intake` is `excessive`, or `session_minutes` ≥ 180 and
    #  `fluid_intake` is not `none` or `low` (unknown counts as a risk)."
    # AMBIGUOUS: what does "(unknown counts as a risk)" cover? Readings: (a) an
    # unknown fluid_intake only; an omitted session_minutes makes "≥ 180" false
    # (§3 numeric rule); (b) an unknown session_minutes too. (b) is safer, but the
    # 1.1 example skater-head-impact-concussion (headache true, session and fluid
    # unknown, no RF-EAH, session and fluid listed as unanswered instead) decides
    # for (a). Taken: (a); the unknown items are asked by the §5 screen instead.
    fluid = a.get("activity.fluid_intake")
    if fluid == "excessive":
        return True
    return a.ge("activity.session_minutes", 180) and fluid not in ("none", "low")


def any_sym(a: Answers, *names: str) -> bool:
    """'any of x, y, z' over symptoms: at least one is true."""
    return any(a.s(name) for name in names)


# --- §4 red-flag rules -------------------------------------------------------------------
# "A rule fires on answers that are present (true, listed or matching)." "An
# exception ('unless …') applies only when every answer it tests is known and
# reassuring; otherwise the rule fires."


def red_flag_rules(a: Answers) -> dict[str, str]:  # noqa: PLR0915
    """Every fired rule id (except RF-SCREEN-INCOMPLETE) mapped to its level."""
    fired: dict[str, str] = {}

    def fire(rule_id: str, level: str, condition: bool) -> None:
        if condition:
            fired[rule_id] = level

    head = a.yes("history.head_impact")
    falls = a.ge("history.falls_last_7_days", 1)

    amb = "emergency_ambulance"
    # RF-CONFUSION | confusion
    fire("RF-CONFUSION", amb, a.s("confusion"))
    # RF-REDUCED-CONSCIOUSNESS | drowsiness
    fire("RF-REDUCED-CONSCIOUSNESS", amb, a.s("drowsiness"))
    # RF-UNEQUAL-PUPILS | unequal_pupils
    fire("RF-UNEQUAL-PUPILS", amb, a.s("unequal_pupils"))
    # RF-SEIZURE-DANGER | seizure, or head_impact with rhythmic_march or
    # loss_of_awareness; unless head_impact is false, seizure_minutes is under 5
    # and epilepsy is listed
    seizure_exception = (
        a.no("history.head_impact") and a.lt("twitching.seizure_minutes", 5) and a.cond("epilepsy")
    )
    fire(
        "RF-SEIZURE-DANGER",
        amb,
        (
            a.s("seizure")
            or (
                head and (a.yes("twitching.rhythmic_march") or a.yes("twitching.loss_of_awareness"))
            )
        )
        and not seizure_exception,
    )
    # RF-AIRWAY | breathing_difficulty or noisy_breathing
    fire("RF-AIRWAY", amb, any_sym(a, "breathing_difficulty", "noisy_breathing"))
    # RF-CHEST-PAIN | chest_pain
    fire("RF-CHEST-PAIN", amb, a.s("chest_pain"))
    # RF-EXERTIONAL-SYNCOPE | exertional_collapse or fainting_during_exercise
    fire(
        "RF-EXERTIONAL-SYNCOPE",
        amb,
        any_sym(a, "exertional_collapse", "fainting_during_exercise"),
    )
    # RF-HEATSTROKE | high temperature and any of confusion, drowsiness, seizure,
    # exertional_collapse, loss_of_consciousness
    fire(
        "RF-HEATSTROKE",
        amb,
        high_temperature(a)
        and any_sym(
            a, "confusion", "drowsiness", "seizure", "exertional_collapse", "loss_of_consciousness"
        ),
    )
    # RF-SUDDEN-NEURO-DEFICIT | any of slurred_speech, difficulty_swallowing,
    # one_sided_weakness, unless deficit_onset is gradual and head_impact is false
    neuro_exception = a.get("deficit_onset") == "gradual" and a.no("history.head_impact")
    fire(
        "RF-SUDDEN-NEURO-DEFICIT",
        amb,
        any_sym(a, "slurred_speech", "difficulty_swallowing", "one_sided_weakness")
        and not neuro_exception,
    )
    # RF-THUNDERCLAP | sudden_severe_headache
    fire("RF-THUNDERCLAP", amb, a.s("sudden_severe_headache"))
    # RF-SPINAL | neck_pain and any of numbness_tingling, muscle_weakness,
    # one_sided_weakness, and (head_impact or falls_last_7_days ≥ 1)
    fire(
        "RF-SPINAL",
        amb,
        a.s("neck_pain")
        and any_sym(a, "numbness_tingling", "muscle_weakness", "one_sided_weakness")
        and (head or falls),
    )
    # RF-SICKLE-COLLAPSE | sickle_cell_trait and (any of exertional_collapse,
    # muscle_weakness, severe_muscle_pain, breathing_difficulty, or muscle_cramps
    # with intensity high or maximal)
    fire(
        "RF-SICKLE-COLLAPSE",
        amb,
        a.cond("sickle_cell_trait")
        and (
            any_sym(
                a,
                "exertional_collapse",
                "muscle_weakness",
                "severe_muscle_pain",
                "breathing_difficulty",
            )
            or (a.s("muscle_cramps") and a.intensity in HARD)
        ),
    )
    # RF-RHABDO-SYSTEMIC | cola_urine and any of palpitations, no_urine_8h,
    # confusion, fainting
    fire(
        "RF-RHABDO-SYSTEMIC",
        amb,
        a.s("cola_urine") and any_sym(a, "palpitations", "no_urine_8h", "confusion", "fainting"),
    )
    # RF-EAH-SEVERE | EAH risk and any of repeated_vomiting, confusion, seizure
    fire(
        "RF-EAH-SEVERE",
        amb,
        eah_risk(a) and any_sym(a, "repeated_vomiting", "confusion", "seizure"),
    )
    # RF-SEVERE-HYPOTHERMIA | body_temperature_c < 32
    fire("RF-SEVERE-HYPOTHERMIA", amb, a.lt("body_temperature_c", 32))

    em = "emergency"
    # RF-LOSS-OF-CONSCIOUSNESS | loss_of_consciousness
    fire("RF-LOSS-OF-CONSCIOUSNESS", em, a.s("loss_of_consciousness"))
    # RF-FAINT | fainting
    fire("RF-FAINT", em, a.s("fainting"))
    # RF-HEAD-VOMITING | head_impact and (vomiting or repeated_vomiting)
    fire("RF-HEAD-VOMITING", em, head and any_sym(a, "vomiting", "repeated_vomiting"))
    # RF-HEAD-ANTICOAGULATED | head_impact and (anticoagulant or bleeding_disorder
    # listed), unless hours_since_head_impact > 48 and each of headache, vomiting,
    # dizziness, loss_of_balance, confusion, drowsiness, one_sided_weakness is false
    anticoag_exception = a.gt("history.hours_since_head_impact", 48) and all(
        a.s_false(name)
        for name in (
            "headache",
            "vomiting",
            "dizziness",
            "loss_of_balance",
            "confusion",
            "drowsiness",
            "one_sided_weakness",
        )
    )
    fire(
        "RF-HEAD-ANTICOAGULATED",
        em,
        head and (a.med("anticoagulant") or a.cond("bleeding_disorder")) and not anticoag_exception,
    )
    # RF-HEAD-NECK-PAIN | head_impact and neck_pain
    fire("RF-HEAD-NECK-PAIN", em, head and a.s("neck_pain"))
    # RF-HEAD-NEURO | head_impact and (loss_of_balance or vision_changes)
    fire("RF-HEAD-NEURO", em, head and any_sym(a, "loss_of_balance", "vision_changes"))
    # RF-TOXIC-HYPERTHERMIA | (serotonergic listed or recreational_stimulants) and
    # (high temperature or body_temperature_c ≥ 38)
    fire(
        "RF-TOXIC-HYPERTHERMIA",
        em,
        (a.med("serotonergic") or a.yes("history.recreational_stimulants"))
        and (high_temperature(a) or a.ge("body_temperature_c", 38)),
    )
    # RF-HEADACHE-RED-FLAG | worsening_headache, or headache with any of neck_pain,
    # vision_changes, vomiting, repeated_vomiting
    fire(
        "RF-HEADACHE-RED-FLAG",
        em,
        a.s("worsening_headache")
        or (
            a.s("headache")
            and any_sym(a, "neck_pain", "vision_changes", "vomiting", "repeated_vomiting")
        ),
    )
    # RF-FOCAL-DEFICIT | one_sided_weakness
    fire("RF-FOCAL-DEFICIT", em, a.s("one_sided_weakness"))
    # RF-SEIZURE | seizure, rhythmic_march or loss_of_awareness
    fire(
        "RF-SEIZURE",
        em,
        a.s("seizure") or a.yes("twitching.rhythmic_march") or a.yes("twitching.loss_of_awareness"),
    )
    # RF-DARK-URINE | cola_urine
    fire("RF-DARK-URINE", em, a.s("cola_urine"))
    # RF-RHABDO-SUSPECT | severe_muscle_pain and (muscle_swelling or muscle_weakness)
    fire(
        "RF-RHABDO-SUSPECT",
        em,
        a.s("severe_muscle_pain") and any_sym(a, "muscle_swelling", "muscle_weakness"),
    )
    # RF-COMPARTMENT | muscle_swelling and numbness_tingling
    fire("RF-COMPARTMENT", em, a.s("muscle_swelling") and a.s("numbness_tingling"))
    # RF-SEVERE-WEAKNESS | cannot_stand_or_walk
    fire("RF-SEVERE-WEAKNESS", em, a.s("cannot_stand_or_walk"))
    # RF-TETANY | (hand_foot_spasm or perioral_tingling) and any of
    # thyroid_or_parathyroid_surgery, kidney_disease, diuretic
    fire(
        "RF-TETANY",
        em,
        any_sym(a, "hand_foot_spasm", "perioral_tingling")
        and (
            a.cond("thyroid_or_parathyroid_surgery")
            or a.cond("kidney_disease")
            or a.med("diuretic")
        ),
    )
    # RF-DYSTONIA | sustained_posture and (a head-neck or trunk site, or dopamine_blocker)
    fire(
        "RF-DYSTONIA",
        em,
        a.yes("twitching.sustained_posture")
        and (
            has_region_site(a, "head_neck")
            or has_region_site(a, "trunk")
            or a.med("dopamine_blocker")
        ),
    )
    # RF-HYPERTHERMIA | high temperature
    fire("RF-HYPERTHERMIA", em, high_temperature(a))
    # RF-HYPOTHERMIA | body_temperature_c < 35
    fire("RF-HYPOTHERMIA", em, a.lt("body_temperature_c", 35))
    # RF-HEAT-VOMITING | hot_or_humid and (vomiting or repeated_vomiting)
    fire(
        "RF-HEAT-VOMITING",
        em,
        a.yes("activity.hot_or_humid") and any_sym(a, "vomiting", "repeated_vomiting"),
    )
    # RF-REPEATED-VOMITING | repeated_vomiting
    fire("RF-REPEATED-VOMITING", em, a.s("repeated_vomiting"))
    # RF-EAH | EAH risk and any of headache, vomiting, swollen_hands
    fire("RF-EAH", em, eah_risk(a) and any_sym(a, "headache", "vomiting", "swollen_hands"))
    # RF-PROLONGED-CRAMP | cramp_minutes ≥ 60
    fire("RF-PROLONGED-CRAMP", em, a.ge("twitching.cramp_minutes", 60))
    # RF-CARDIAC-PALPITATIONS | palpitations and (dizziness, or heart_disease or
    # family_sudden_death_under_50 listed)
    fire(
        "RF-CARDIAC-PALPITATIONS",
        em,
        a.s("palpitations")
        and (a.s("dizziness") or a.cond("heart_disease") or a.cond("family_sudden_death_under_50")),
    )
    # RF-HYPOGLYCAEMIA | blood_glucose_mmol_l < 3.0
    fire("RF-HYPOGLYCAEMIA", em, a.lt("blood_glucose_mmol_l", 3.0))
    # RF-PRE-ECLAMPSIA | pregnancy and any of vision_changes, swollen_hands,
    # worsening_headache
    fire(
        "RF-PRE-ECLAMPSIA",
        em,
        a.cond("pregnancy") and any_sym(a, "vision_changes", "swollen_hands", "worsening_headache"),
    )

    c24 = "consultation_24"
    # RF-CONCUSSION-SYMPTOMS | (head_impact or falls_last_7_days ≥ 1) and any of
    # headache, dizziness, loss_of_balance, nausea, foggy_thinking, vision_changes
    fire(
        "RF-CONCUSSION-SYMPTOMS",
        c24,
        (head or falls)
        and any_sym(
            a, "headache", "dizziness", "loss_of_balance", "nausea", "foggy_thinking",
            "vision_changes",
        ),
    )  # fmt: skip
    # RF-MUSCLE-INJURY | severe_muscle_pain or muscle_swelling
    fire("RF-MUSCLE-INJURY", c24, any_sym(a, "severe_muscle_pain", "muscle_swelling"))
    # RF-STATIN-MUSCLE | statin and any of severe_muscle_pain, muscle_cramps, muscle_weakness
    fire(
        "RF-STATIN-MUSCLE",
        c24,
        a.med("statin") and any_sym(a, "severe_muscle_pain", "muscle_cramps", "muscle_weakness"),
    )
    # RF-BETA-AGONIST | beta_agonist and (palpitations, or (doses_per_day ≥ 4 and
    # (muscle_cramps or muscle_weakness)))
    # AMBIGUOUS: "doses_per_day" is a field of each medication entry and "the same
    # class may repeat". Readings: (a) any one beta_agonist entry has ≥ 4 doses;
    # (b) the beta_agonist doses summed over entries are ≥ 4 (total reliever use).
    # (b) is the safer (fires whenever (a) does, and also for 2 + 2). Taken: (b).
    beta_doses = sum(
        m["doses_per_day"] for m in a.meds_of("beta_agonist") if m.get("doses_per_day") is not None
    )
    fire(
        "RF-BETA-AGONIST",
        c24,
        a.med("beta_agonist")
        and (
            a.s("palpitations")
            or (beta_doses >= 4 and any_sym(a, "muscle_cramps", "muscle_weakness"))
        ),
    )
    # RF-DIURETIC | diuretic and (muscle_weakness or palpitations)
    fire("RF-DIURETIC", c24, a.med("diuretic") and any_sym(a, "muscle_weakness", "palpitations"))
    # RF-DEHYDRATION | no_urine_8h
    fire("RF-DEHYDRATION", c24, a.s("no_urine_8h"))
    # RF-PALPITATIONS | palpitations
    fire("RF-PALPITATIONS", c24, a.s("palpitations"))
    # RF-NEW-WEAKNESS | muscle_weakness, unless deficit_onset is gradual
    fire("RF-NEW-WEAKNESS", c24, a.s("muscle_weakness") and a.get("deficit_onset") != "gradual")
    # RF-TETANY-POSSIBLE | hand_foot_spasm, or (perioral_tingling and (muscle_cramps
    # or a head-neck site))
    fire(
        "RF-TETANY-POSSIBLE",
        c24,
        a.s("hand_foot_spasm")
        or (a.s("perioral_tingling") and (a.s("muscle_cramps") or has_region_site(a, "head_neck"))),
    )
    # RF-SUSTAINED-POSTURE | sustained_posture
    fire("RF-SUSTAINED-POSTURE", c24, a.yes("twitching.sustained_posture"))
    # RF-FALL-NECK-PAIN | neck_pain and falls_last_7_days ≥ 1
    fire("RF-FALL-NECK-PAIN", c24, a.s("neck_pain") and falls)
    # RF-LOW-GLUCOSE | blood_glucose_mmol_l < 4.0
    fire("RF-LOW-GLUCOSE", c24, a.lt("blood_glucose_mmol_l", 4.0))
    # RF-PREGNANCY-HEADACHE | pregnancy and headache
    fire("RF-PREGNANCY-HEADACHE", c24, a.cond("pregnancy") and a.s("headache"))
    # RF-FEVER | body_temperature_c ≥ 38
    fire("RF-FEVER", c24, a.ge("body_temperature_c", 38))
    # RF-CAFFEINE-EXCESS | caffeine_mg_per_day ≥ 1200 (age ≥ 18) or ≥ 400 (under 18)
    fire(
        "RF-CAFFEINE-EXCESS",
        c24,
        a.ge("history.caffeine_mg_per_day", 1200 if a.age >= 18 else 400),
    )
    # RF-RECREATIONAL-STIMULANTS | recreational_stimulants
    fire("RF-RECREATIONAL-STIMULANTS", c24, a.yes("history.recreational_stimulants"))
    # RF-UNDER-4 | age_years < 4
    fire("RF-UNDER-4", c24, a.age < 4)

    con = "consultation"
    # RF-PERSISTENT | duration_days > 14 and not a tic pattern
    fire("RF-PERSISTENT", con, a.gt("twitching.duration_days", 14) and not tic_pattern(a))
    # RF-MULTIPLE-REGIONS | multiple regions and not a tic pattern
    fire("RF-MULTIPLE-REGIONS", con, multiple_regions(a) and not tic_pattern(a))
    # RF-NEUROMUSCULAR | muscle_wasting, or deficit_onset gradual with any of
    # muscle_weakness, slurred_speech, difficulty_swallowing
    fire(
        "RF-NEUROMUSCULAR",
        con,
        a.s("muscle_wasting")
        or (
            a.get("deficit_onset") == "gradual"
            and any_sym(a, "muscle_weakness", "slurred_speech", "difficulty_swallowing")
        ),
    )
    # RF-HEMIFACIAL | side left or right, sites include eyelid and (face or jaw),
    # duration_days > 14   (whole_body counts as every site: §3, normative in 1.1)
    sites = named_sites(a)
    fire(
        "RF-HEMIFACIAL",
        con,
        a.get("twitching.side") in ("left", "right")
        and "eyelid" in sites
        and bool(sites & {"face", "jaw"})
        and a.gt("twitching.duration_days", 14),
    )
    # RF-TIC-TROUBLESOME | tic features and (impact interferes, painful, progression
    # worsening, or duration_days ≥ 365)
    fire(
        "RF-TIC-TROUBLESOME",
        con,
        tic_features(a)
        and (
            a.get("twitching.impact") == "interferes"
            or a.yes("twitching.painful")
            or a.get("twitching.progression") == "worsening"
            or a.ge("twitching.duration_days", 365)
        ),
    )
    # RF-MEDICATION | any medication of class adhd_stimulant, corticosteroid,
    # diuretic, dopamine_blocker, beta_agonist, statin or serotonergic with
    # days_since_start ≤ 90 or omitted
    fire(
        "RF-MEDICATION",
        con,
        any(
            m["class"] in MEDICATION_RULE_CLASSES
            and (m.get("days_since_start") is None or m["days_since_start"] <= 90)
            for m in a.medications or []
        ),
    )
    # RF-SLEEP-DISRUPTION | sleep_disruption
    fire("RF-SLEEP-DISRUPTION", con, a.s("sleep_disruption"))
    # RF-SELF-CARE-FAILED | self_care_tried and (previous_episodes or duration_days > 7)
    fire(
        "RF-SELF-CARE-FAILED",
        con,
        a.yes("history.self_care_tried")
        and (a.yes("history.previous_episodes") or a.gt("twitching.duration_days", 7)),
    )
    # RF-INTERFERES | impact interferes and not a tic pattern
    fire(
        "RF-INTERFERES",
        con,
        a.get("twitching.impact") == "interferes" and not tic_pattern(a),
    )
    return fired


MEDICATION_RULE_CLASSES = frozenset(
    {
        "adhd_stimulant",
        "corticosteroid",
        "diuretic",
        "dopamine_blocker",
        "beta_agonist",
        "statin",
        "serotonergic",
    }
)


# --- §5 minimum red-flag screen ------------------------------------------------------------
# "Before `self_care` may be given these must be known (answered true or false; a
# number or enum given; a list given, `[]` included). The base items always; each
# follow-up row when its condition holds ... the result lists the unknown items by
# linkId ... in the order of this table, each item once (at its first place)".
#
# AMBIGUOUS: does a follow-up row hold when its condition is unknown (head_impact
# unknown, intensity unknown)? Readings: (a) only on present answers (true,
# listed, a number meeting the bound), like a §4 rule; (b) also when unknown,
# which asks more items (safer). The 1.1 examples decide for (a):
# cyclist-chest-pain (head_impact unknown) does not ask the head-impact rows, and
# runner-calf-fasciculation (cramps, intensity unknown) does not ask for the
# conditions. Taken: (a); the unknown condition item is itself asked (head_impact
# is a base item), so a later "yes" opens the row.
# "First place" is the first place among the rows that hold:
# seed-roller-skater-as-asked lists neck_pain before headache, in the falls row's
# order, although the head-impact row (which does not hold there) names headache
# first.
#
# "Bare names are `symptoms.` items; `falls_last_7_days`, `head_impact`,
# `recreational_stimulants` and the conditions are `history.` items;
# `hot_or_humid` and intensity are `activity.` items."

HIGH_TEMPERATURE_ITEM = "symptoms.high_body_temperature"


def _sym(*names: str) -> tuple[str, ...]:
    return tuple(f"symptoms.{name}" for name in names)


ScreenRow = tuple[str, Callable[[Answers], bool], tuple[str, ...]]

SCREEN: tuple[ScreenRow, ...] = (
    (
        "always",
        lambda _: True,
        (
            *_sym(
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
    ),
    (
        "head_impact is true",
        lambda a: a.yes("history.head_impact"),
        (
            *_sym(
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
    ),
    (
        "falls_last_7_days ≥ 1",
        lambda a: a.ge("history.falls_last_7_days", 1),
        _sym(
            "neck_pain",
            "headache",
            "dizziness",
            "nausea",
            "loss_of_balance",
            "vision_changes",
            "foggy_thinking",
        ),
    ),
    (
        "a head-neck site, or head_impact is true",
        lambda a: has_region_site(a, "head_neck") or a.yes("history.head_impact"),
        ("twitching.loss_of_awareness", "twitching.rhythmic_march", "twitching.sustained_posture"),
    ),
    ("neck_pain is true", lambda a: a.s("neck_pain"), _sym("headache")),
    (
        "neck_pain is true and (head_impact is true or falls_last_7_days ≥ 1)",
        lambda a: (
            a.s("neck_pain")
            and (a.yes("history.head_impact") or a.ge("history.falls_last_7_days", 1))
        ),
        _sym("numbness_tingling"),
    ),
    ("fainting is true", lambda a: a.s("fainting"), _sym("fainting_during_exercise")),
    (
        "headache is true",
        lambda a: a.s("headache"),
        _sym(
            "sudden_severe_headache",
            "worsening_headache",
            "neck_pain",
            "vision_changes",
            "vomiting",
        ),
    ),
    (
        "any of headache, vomiting, nausea, swollen_hands is true",
        lambda a: any_sym(a, "headache", "vomiting", "nausea", "swollen_hands"),
        ("activity.session_minutes", "activity.fluid_intake"),
    ),
    (
        "palpitations is true",
        lambda a: a.s("palpitations"),
        ("symptoms.dizziness", "history.conditions"),
    ),
    ("severe_muscle_pain is true", lambda a: a.s("severe_muscle_pain"), _sym("muscle_swelling")),
    ("muscle_swelling is true", lambda a: a.s("muscle_swelling"), _sym("numbness_tingling")),
    ("muscle_cramps is true", lambda a: a.s("muscle_cramps"), ("twitching.cramp_minutes",)),
    (
        "muscle_cramps is true with intensity high or maximal",
        lambda a: a.s("muscle_cramps") and a.intensity in HARD,
        ("history.conditions",),
    ),
    ("vomiting is true", lambda a: a.s("vomiting"), _sym("repeated_vomiting")),
    (
        "hand_foot_spasm or perioral_tingling is true",
        lambda a: any_sym(a, "hand_foot_spasm", "perioral_tingling"),
        ("history.conditions", "history.medications"),
    ),
    (
        "thyroid_or_parathyroid_surgery or kidney_disease is listed, or a diuretic is listed",
        lambda a: (
            a.cond("thyroid_or_parathyroid_surgery")
            or a.cond("kidney_disease")
            or a.med("diuretic")
        ),
        _sym("hand_foot_spasm", "perioral_tingling"),
    ),
    (
        "sustained_posture is true",
        lambda a: a.yes("twitching.sustained_posture"),
        ("history.medications",),
    ),
    (
        "a dopamine_blocker is listed",
        lambda a: a.med("dopamine_blocker"),
        ("twitching.sustained_posture",),
    ),
    (
        "hot_or_humid is true, or intensity high or maximal",
        lambda a: a.yes("activity.hot_or_humid") or a.intensity in HARD,
        (HIGH_TEMPERATURE_ITEM, "symptoms.vomiting"),
    ),
    ("EAH risk", eah_risk, _sym("headache", "vomiting", "swollen_hands")),
    (
        "an insulin_or_sulfonylurea medication is listed",
        lambda a: a.med("insulin_or_sulfonylurea"),
        ("blood_glucose_mmol_l",),
    ),
    ("diabetes is listed", lambda a: a.cond("diabetes"), ("history.medications",)),
    ("a statin is listed", lambda a: a.med("statin"), _sym("muscle_cramps")),
    (
        "sickle_cell_trait is listed",
        lambda a: a.cond("sickle_cell_trait"),
        ("symptoms.muscle_cramps", "activity.intensity"),
    ),
    (
        "pregnancy is listed",
        lambda a: a.cond("pregnancy"),
        _sym("headache", "worsening_headache", "vision_changes", "swollen_hands"),
    ),
    (
        "a serotonergic medication is listed, or recreational_stimulants is true",
        lambda a: a.med("serotonergic") or a.yes("history.recreational_stimulants"),
        (HIGH_TEMPERATURE_ITEM,),
    ),
)
assert len(SCREEN) == 27, "PROTOCOL.md 1.1 §5 has 27 rows"


def known(a: Answers, link_id: str) -> bool:
    """§5 "known (answered true or false; a number or enum given; a list given)".

    High temperature (linkId `symptoms.high_body_temperature`) is "known when
    `high_body_temperature` is answered or a measured `body_temperature_c`
    already makes high temperature true (§3)".
    """
    if link_id == HIGH_TEMPERATURE_ITEM:
        return a.get(link_id) is not None or measured_high_temperature(a)
    return a.get(link_id) is not None


def screen_items(a: Answers) -> list[str]:
    """Every item the screen asks for this request, each once at its first place."""
    items: list[str] = []
    for _, holds, row_items in SCREEN:
        if holds(a):
            items += [item for item in row_items if item not in items]
    return items


def unanswered_screen(a: Answers) -> list[str]:
    """The unknown screen items by linkId, in §5 order."""
    return [item for item in screen_items(a) if not known(a, item)]


# --- §6 contributing factors ---------------------------------------------------------------

STIMULANT_MEDICATION_EFFECT = (
    "diuretic",
    "statin",
    "corticosteroid",
    "dopamine_blocker",
    "beta_agonist",
    "adhd_stimulant",
    "serotonergic",
)


def factor_points(a: Answers, level: str) -> dict[str, int]:
    """Points of every factor (0 included) for the request at the given level."""
    points: dict[str, int] = dict.fromkeys(FACTOR_ORDER, 0)
    adult = a.age >= 18

    # CF-TRAINING-LOAD | +1 each: session_minutes ≥ 90; rest_minutes_per_session < 10
    # with session_minutes ≥ 60; sessions_per_week ≥ 6; recent_load_increase;
    # intensity high or maximal; fatigue
    p = 0
    p += a.ge("activity.session_minutes", 90)
    p += a.lt("activity.rest_minutes_per_session", 10) and a.ge("activity.session_minutes", 60)
    p += a.ge("activity.sessions_per_week", 6)
    p += a.yes("activity.recent_load_increase")
    p += a.intensity in HARD
    p += a.s("fatigue")
    points["CF-TRAINING-LOAD"] = p

    # CF-FLUID-ELECTROLYTE-LOSS | +1 each: heavy_sweating; hot_or_humid; fluid_intake
    # none or low; excessive_thirst; dark_yellow_urine or no_urine_8h; muscle_cramps;
    # diuretic. Not reported when fluid_intake is excessive
    # (diuretic: +1 when one is listed, like every other item of this "+1 each" list.)
    fluid = a.get("activity.fluid_intake")
    if fluid != "excessive":
        p = 0
        p += a.yes("activity.heavy_sweating")
        p += a.yes("activity.hot_or_humid")
        p += fluid in ("none", "low")
        p += a.s("excessive_thirst")
        p += a.s("dark_yellow_urine") or a.s("no_urine_8h")
        p += a.s("muscle_cramps")
        p += a.med("diuretic")
        points["CF-FLUID-ELECTROLYTE-LOSS"] = p

    # CF-OVERHYDRATION | only when fluid_intake is excessive: +2; swollen_hands +1;
    # session_minutes ≥ 240 +1
    if fluid == "excessive":
        points["CF-OVERHYDRATION"] = (
            2 + a.s("swollen_hands") + a.ge("activity.session_minutes", 240)
        )

    # CF-HEAT-STRAIN | high temperature +2; hot_or_humid with any of dizziness,
    # nausea, muscle_cramps +1
    points["CF-HEAT-STRAIN"] = 2 * high_temperature(a) + (
        a.yes("activity.hot_or_humid") and any_sym(a, "dizziness", "nausea", "muscle_cramps")
    )

    # CF-FALLS-HEAD-INJURY | head_impact +2; falls_last_7_days ≥ 1 +1;
    # falls_last_7_days ≥ 3 another +1
    points["CF-FALLS-HEAD-INJURY"] = (
        2 * a.yes("history.head_impact")
        + a.ge("history.falls_last_7_days", 1)
        + a.ge("history.falls_last_7_days", 3)
    )

    # CF-STRESS-SLEEP | +1 each: anxiety_stress; short_sleep; anxiety_disorder
    points["CF-STRESS-SLEEP"] = (
        a.s("anxiety_stress") + a.yes("history.short_sleep") + a.cond("anxiety_disorder")
    )

    # CF-STIMULANTS | caffeine_mg_per_day above 400 (age ≥ 18) or above 100 (under
    # 18) +2; energy_drinks +1 (age ≥ 18) or +2 (under 18); adhd_stimulant +1;
    # beta_agonist +1; recreational_stimulants +2
    # AMBIGUOUS: adhd_stimulant / beta_agonist listed twice: +1 once, or +1 per
    # entry? Taken: once per class, because CF-MEDICATION-EFFECT says "each
    # listed" and this line does not. (Points only; no level or rule depends on it.)
    p = 0
    p += 2 * a.gt("history.caffeine_mg_per_day", 400 if adult else 100)
    if a.yes("history.energy_drinks"):
        p += 1 if adult else 2
    p += a.med("adhd_stimulant")
    p += a.med("beta_agonist")
    p += 2 * a.yes("history.recreational_stimulants")
    points["CF-STIMULANTS"] = p

    # CF-MEDICATION-EFFECT | each listed diuretic, statin, corticosteroid,
    # dopamine_blocker, beta_agonist, adhd_stimulant, serotonergic: +2 if
    # days_since_start ≤ 90, else +1
    # AMBIGUOUS: an omitted days_since_start. Readings: (a) §3 "a numeric condition
    # on an omitted number is false unless the rule says otherwise": +1; (b) as in
    # RF-MEDICATION, whose 1.1 text says "≤ 90 or omitted": +2. This line does not
    # say "or omitted", and the points move no level, so neither is safer. Taken:
    # (a), the literal text.
    p = 0
    for m in a.medications or []:
        if m["class"] in STIMULANT_MEDICATION_EFFECT:
            days = m.get("days_since_start")
            p += 2 if days is not None and days <= 90 else 1
    points["CF-MEDICATION-EFFECT"] = p

    # CF-LOW-BLOOD-SUGAR | ate_before_exercise false +1; insulin_or_sulfonylurea +1;
    # diabetes +1; blood_glucose_mmol_l < 4 +2
    points["CF-LOW-BLOOD-SUGAR"] = (
        a.no("activity.ate_before_exercise")
        + a.med("insulin_or_sulfonylurea")
        + a.cond("diabetes")
        + 2 * a.lt("blood_glucose_mmol_l", 4)
    )

    # CF-WARM-UP-COOL-DOWN | warm_up false +1; cool_down false +1
    points["CF-WARM-UP-COOL-DOWN"] = a.no("activity.warm_up") + a.no("activity.cool_down")

    # CF-COLD | cold_exposure +1; body_temperature_c < 35 +2
    points["CF-COLD"] = a.yes("activity.cold_exposure") + 2 * a.lt("body_temperature_c", 35)

    # CF-ALCOHOL | alcohol_units_per_week > 14 +1
    points["CF-ALCOHOL"] = int(a.gt("history.alcohol_units_per_week", 14))

    # CF-TIC-PATTERN | only for a tic pattern: +1 each suppressible, urge_before,
    # age 4–17, tic_disorder, fatigue or anxiety_stress present
    # AMBIGUOUS: "fatigue or anxiety_stress present" is read as one item (+1 when
    # either is true), not +1 each; swimmer-mild-tic (fatigue only) cannot tell.
    # (Points only; no level depends on it.)
    if tic_pattern(a):
        points["CF-TIC-PATTERN"] = (
            a.yes("twitching.suppressible")
            + a.yes("twitching.urge_before")
            + (4 <= a.age <= 17)
            + a.cond("tic_disorder")
            + (a.s("fatigue") or a.s("anxiety_stress"))
        )

    # CF-NEUROMUSCULAR | only with muscle_wasting, muscle_weakness, slurred_speech or
    # difficulty_swallowing: muscle_wasting +2; +1 each: deficit_onset gradual,
    # multiple regions, progression worsening, neuromuscular_disease
    if any_sym(a, "muscle_wasting", "muscle_weakness", "slurred_speech", "difficulty_swallowing"):
        points["CF-NEUROMUSCULAR"] = (
            2 * a.s("muscle_wasting")
            + (a.get("deficit_onset") == "gradual")
            + multiple_regions(a)
            + (a.get("twitching.progression") == "worsening")
            + a.cond("neuromuscular_disease")
        )

    # CF-BENIGN-FASCICULATION | only when the level is self_care, `painful` is not
    # true, and not (age under 18 with a head-neck site): +1 each: single region;
    # timing after_exercise or at_rest; duration_days ≤ 14; muscle_weakness false
    if (
        level == "self_care"
        and not a.yes("twitching.painful")
        and not (a.age < 18 and has_region_site(a, "head_neck"))
    ):
        points["CF-BENIGN-FASCICULATION"] = (
            single_region(a)
            + (a.get("twitching.timing") in ("after_exercise", "at_rest"))
            + a.le("twitching.duration_days", 14)
            + a.s_false("muscle_weakness")
        )
    return points


def reported_factors(points: dict[str, int]) -> list[tuple[str, int]]:
    # "only factors with ≥ 1 point are reported, most points first, ties in this
    #  table's order."
    reported = [(code, int(points[code])) for code in FACTOR_ORDER if points[code] >= 1]
    return sorted(reported, key=lambda cp: -cp[1])  # stable: ties keep table order


# --- §7 advice ------------------------------------------------------------------------------

LABS_RULES = frozenset(
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
)


def advice_codes(a: Answers, level: str, rules: set[str], factors: set[str]) -> list[str]:
    """Advice codes in §7 table order.

    AMBIGUOUS: §7 conditions that name an answer ("head_impact", "diabetes
    listed") are read like §4 rule conditions: the answer must be present (true /
    listed). An unknown head_impact does not give ADV-NO-SAME-DAY-RETURN.
    Alternative: give advice on unknown answers too. Not taken: an unknown
    screen item already forces level ≥ consultation and ADV-STOP-TRAINING.
    """
    out: list[str] = []

    def give(code: str, condition: bool) -> None:
        if condition:
            out.append(code)

    # ADV-CALL-AMBULANCE | level emergency_ambulance
    give("ADV-CALL-AMBULANCE", level == "emergency_ambulance")
    # ADV-GO-TO-ED | level emergency
    give("ADV-GO-TO-ED", level == "emergency")
    # ADV-SEE-WITHIN-24H | level consultation_24
    give("ADV-SEE-WITHIN-24H", level == "consultation_24")
    # ADV-SEE-CLINICIAN | level consultation
    give("ADV-SEE-CLINICIAN", level == "consultation")
    # ADV-CHECK-GLUCOSE | insulin_or_sulfonylurea or diabetes listed, or
    # blood_glucose_mmol_l < 4
    give(
        "ADV-CHECK-GLUCOSE",
        a.med("insulin_or_sulfonylurea") or a.cond("diabetes") or a.lt("blood_glucose_mmol_l", 4),
    )
    # ADV-COOL-NOW | RF-HEATSTROKE, RF-HYPERTHERMIA or RF-TOXIC-HYPERTHERMIA fired, or
    # (hot_or_humid or intensity high or maximal) with any of confusion, drowsiness,
    # seizure, exertional_collapse, loss_of_consciousness
    give(
        "ADV-COOL-NOW",
        bool(rules & {"RF-HEATSTROKE", "RF-HYPERTHERMIA", "RF-TOXIC-HYPERTHERMIA"})
        or (
            (a.yes("activity.hot_or_humid") or a.intensity in HARD)
            and any_sym(
                a,
                "confusion",
                "drowsiness",
                "seizure",
                "exertional_collapse",
                "loss_of_consciousness",
            )
        ),
    )
    # ADV-STOP-TRAINING | level above self_care
    give("ADV-STOP-TRAINING", level != "self_care")
    # ADV-NO-SAME-DAY-RETURN | head_impact, or RF-CONCUSSION-SYMPTOMS fired
    # AMBIGUOUS: "Changes in 1.1" says this advice is given "after falls too".
    # Readings: (a) the §7 table as written: after falls only through
    # RF-CONCUSSION-SYMPTOMS (falls with a concussion sign); (b) after any fall
    # (falls_last_7_days ≥ 1). (b) advises more, but advice moves no level and the
    # table is the rule text. Taken: (a).
    give(
        "ADV-NO-SAME-DAY-RETURN",
        a.yes("history.head_impact") or "RF-CONCUSSION-SYMPTOMS" in rules,
    )
    # ADV-DO-NOT-DRINK-MORE | fluid_intake excessive, or RF-EAH or RF-EAH-SEVERE fired
    no_more = a.get("activity.fluid_intake") == "excessive" or bool(
        rules & {"RF-EAH", "RF-EAH-SEVERE"}
    )
    give("ADV-DO-NOT-DRINK-MORE", no_more)
    # ADV-HYDRATE | CF-FLUID-ELECTROLYTE-LOSS reported and ADV-DO-NOT-DRINK-MORE not given
    give("ADV-HYDRATE", "CF-FLUID-ELECTROLYTE-LOSS" in factors and not no_more)
    # ADV-REDUCE-LOAD | CF-TRAINING-LOAD
    give("ADV-REDUCE-LOAD", "CF-TRAINING-LOAD" in factors)
    # ADV-WARM-UP-COOL-DOWN | CF-WARM-UP-COOL-DOWN
    give("ADV-WARM-UP-COOL-DOWN", "CF-WARM-UP-COOL-DOWN" in factors)
    # ADV-NUTRITION | CF-FLUID-ELECTROLYTE-LOSS or CF-LOW-BLOOD-SUGAR
    give(
        "ADV-NUTRITION",
        "CF-FLUID-ELECTROLYTE-LOSS" in factors or "CF-LOW-BLOOD-SUGAR" in factors,
    )
    # ADV-CUT-STIMULANTS | CF-STIMULANTS or CF-ALCOHOL reported, or
    # RF-CAFFEINE-EXCESS or RF-RECREATIONAL-STIMULANTS fired
    give(
        "ADV-CUT-STIMULANTS",
        "CF-STIMULANTS" in factors
        or "CF-ALCOHOL" in factors
        or bool(rules & {"RF-CAFFEINE-EXCESS", "RF-RECREATIONAL-STIMULANTS"}),
    )
    # ADV-STRESS-SLEEP | CF-STRESS-SLEEP
    give("ADV-STRESS-SLEEP", "CF-STRESS-SLEEP" in factors)
    # ADV-MEDICATION-REVIEW | CF-MEDICATION-EFFECT
    give("ADV-MEDICATION-REVIEW", "CF-MEDICATION-EFFECT" in factors)
    # ADV-LABS | any of RF-DARK-URINE, ... RF-CAFFEINE-EXCESS
    give("ADV-LABS", bool(rules & LABS_RULES))
    # ADV-TIC-GUIDANCE | CF-TIC-PATTERN
    give("ADV-TIC-GUIDANCE", "CF-TIC-PATTERN" in factors)
    # ADV-SAFETY-NET | always
    give("ADV-SAFETY-NET", True)
    return out


# --- the whole protocol ---------------------------------------------------------------------


def oracle(request: dict[str, Any]) -> dict[str, Any]:
    """The result PROTOCOL.md prescribes for one valid request (decisive questions apart)."""
    a = Answers(request)
    fired = red_flag_rules(a)
    unanswered = unanswered_screen(a)
    # §5 "If any is unknown, RF-SCREEN-INCOMPLETE fires (level `consultation`)"
    if unanswered:
        fired["RF-SCREEN-INCOMPLETE"] = "consultation"
    # §2 "Final level = the most urgent level among all rules that fired;
    #  `self_care` only when no rule fired."
    level = max(fired.values(), key=URGENCY.__getitem__, default="self_care")
    factors = reported_factors(factor_points(a, level))
    rules = set(fired)
    return {
        "level": level,
        "rules": rules,
        "unanswered": unanswered,
        "factors": factors,
        "advice": advice_codes(a, level, rules, {code for code, _ in factors}),
        "version": KNOWLEDGE_BASE_VERSION,
    }


def level_of(request: dict[str, Any]) -> str:
    """Only the level (what a decisive answer is judged by): §4 rules and §5 screen,
    without the factors and advice that cannot change it."""
    a = Answers(request)
    levels = list(red_flag_rules(a).values())
    if unanswered_screen(a):
        levels.append("consultation")
    return max(levels, key=URGENCY.__getitem__, default="self_care")


# --- §8 decisive questions (brute force) ----------------------------------------------------
# "for each unknown screen item, the most urgent level that any one answer to that
#  item alone would give, and that answer (yes for a yes/no item; for a list, one
#  listed value such as `anticoagulant`; for a number or enum, a value at a rule's
#  threshold)". "Computed with the same engine": here, with this oracle.

#: Every number a rule, factor or screen row compares the screen's numeric items with,
#: and the values on each side of it (in range).
# AMBIGUOUS: "a value at a rule's threshold" for a strict bound ("< 3.0"): the
# bound itself does not fire the rule. Readings: (a) the bound; (b) a value just
# past it. Both are candidates here, so the level is the most urgent either gives
# and the reported answer is the first that reaches it (2.9 for < 3.0); the
# differential test checks an engine's numeric answer by putting it into the
# request, not by equality. A listed medication is tried without days or doses
# (so an omitted start date counts as recent for RF-MEDICATION, as §4 says).
NUMBER_CANDIDATES: dict[str, tuple[float, ...]] = {
    # session_minutes: ≥ 60, ≥ 90, ≥ 180, ≥ 240
    "activity.session_minutes": (0, 59, 60, 89, 90, 179, 180, 239, 240),
    # cramp_minutes: ≥ 60
    "twitching.cramp_minutes": (0, 59, 60),
    # blood_glucose_mmol_l: < 3.0, < 4.0
    "blood_glucose_mmol_l": (2.9, 3.0, 3.9, 4.0),
}
ENUM_CANDIDATES: dict[str, tuple[str, ...]] = {
    "activity.intensity": INTENSITIES,
    "activity.fluid_intake": FLUID_INTAKES,
}
LIST_CANDIDATES: dict[str, tuple[Any, ...]] = {
    # "for a list, one listed value": a one-element list per class / condition
    # (medications without days or doses), and the empty list "none".
    "history.medications": ([], *([{"class": c}] for c in MEDICATION_CLASSES)),
    "history.conditions": ([], *([c] for c in CONDITIONS)),
}


def candidate_answers(link_id: str) -> tuple[Any, ...]:
    """Every answer tried for one screen item (yes first for yes/no items)."""
    if link_id in NUMBER_CANDIDATES:
        return NUMBER_CANDIDATES[link_id]
    if link_id in ENUM_CANDIDATES:
        return ENUM_CANDIDATES[link_id]
    if link_id in LIST_CANDIDATES:
        return LIST_CANDIDATES[link_id]
    return (True, False)


def with_answer(request: dict[str, Any], link_id: str, answer: Any) -> dict[str, Any]:
    """A copy of the request with one item answered (its section created if absent)."""
    out = copy.deepcopy(request)
    if "." not in link_id:
        out[link_id] = copy.deepcopy(answer)
        return out
    section, name = link_id.split(".", 1)
    if not isinstance(out.get(section), dict):
        out[section] = {}
    out[section][name] = copy.deepcopy(answer)
    return out


def decisive_questions(request: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per unknown screen item, in screen order.

    ``level``: the most urgent level over every candidate answer; ``answer``: the
    first candidate reaching it (yes for yes/no items); ``answers``: every
    candidate reaching it, so a caller can tell whether the answer is unambiguous.

    AMBIGUOUS: §8 says "for each unknown screen item", so items whose answers
    cannot escalate beyond the current level are listed too (with that level);
    the alternative is to list only escalating ones. Taken: every item.
    """
    out: list[dict[str, Any]] = []
    for link_id in oracle(request)["unanswered"]:
        by_answer = [
            (answer, level_of(with_answer(request, link_id, answer)))
            for answer in candidate_answers(link_id)
        ]
        best = max(URGENCY[level] for _, level in by_answer)
        reaching = [answer for answer, level in by_answer if URGENCY[level] == best]
        out.append(
            {
                "link_id": link_id,
                "level": LEVELS[len(LEVELS) - 1 - best],
                "answer": reaching[0],
                "answers": reaching,
            }
        )
    return out
