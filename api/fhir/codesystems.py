"""Every system URL and product CodeSystem the FHIR layer uses, in one place.

PROTOCOL.md §9 requires every coding to carry ``system`` and ``code`` and every
product code (levels, rule ids, factor codes, advice codes ...) to sit in a
CodeSystem at ``{canonical base}/CodeSystem/{id}``. The renderer and the
(issue 4) publisher of the CodeSystem resources both read this module, so the
URL a Bundle cites is the URL the server answers.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from triage.result import LEVEL_DISPLAY, LEVEL_MEANING, Level, Likelihood
from triage.vocabulary import Kind, iter_items

# --- external terminologies ----------------------------------------------------------

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"

#: LOINC 11283-9, the code of the triage-level Observation (PROTOCOL.md §9).
LOINC_ACUITY = ("11283-9", "Acuity assessment")

# --- product canonical URLs ----------------------------------------------------------

DEFAULT_CANONICAL_BASE = "https://twitch-triage.org/fhir"

TRIAGE_LEVEL = "triage-level"
RED_FLAG_RULE = "red-flag-rule"
CONTRIBUTING_FACTOR = "contributing-factor"
ADVICE = "advice"
LIKELIHOOD = "likelihood"
INTAKE_ITEM = "intake-item"
TRIAGE_OBSERVATION = "triage-observation"
KNOWLEDGE_BASE = "knowledge-base"

#: id of the intake Questionnaire (issue 4 publishes it at this id).
QUESTIONNAIRE_ID = "twitch-triage-intake"
#: The single concept of the ``knowledge-base`` CodeSystem; its version is the KB version.
KNOWLEDGE_BASE_CODE = "twitch-triage-protocol"
KNOWLEDGE_BASE_DISPLAY = "Twitch-triage protocol knowledge base"

#: The product's own observation and component codes (``triage-observation``).
OBSERVATION_CODES: dict[str, tuple[str, str]] = {
    "triage-level": (
        "Triage level",
        "How urgently the person needs care: the most urgent level of the red flags found.",
    ),
    "red-flag": ("Red-flag finding", "A red-flag rule that fired, with the answers behind it."),
    "contributing-factor": (
        "Contributing factor",
        "A contributing factor with at least one point, with the answers behind each point.",
    ),
    "advice": ("Advice", "One coded piece of advice, most important first."),
    "unanswered-screen-item": (
        "Unanswered screen item",
        "A minimum red-flag screen item that is unknown: the next question to ask.",
    ),
    "decisive-question": (
        "Decisive question",
        "An unanswered screen item with the answer that would decide it and, in interpretation, "
        "the most urgent level that answer alone would give (then the rules it would fire).",
    ),
    "none": (
        "None",
        "The answer to a list question that lists nothing (as a decisive answer: answering none).",
    ),
    "points": ("Points", "The points a contributing factor scored."),
    "knowledge-base-version": (
        "Knowledge-base version",
        "The version of the knowledge base that produced the result.",
    ),
}


def normalize_base(canonical_base: str) -> str:
    """The canonical base without a trailing slash; rejects non-http(s) bases."""
    base = canonical_base.rstrip("/")
    if not base.startswith(("https://", "http://")) or len(base) <= len("https://"):
        raise ValueError(f"canonical base must be an absolute http(s) URL, got {canonical_base!r}")
    return base


def codesystem_url(canonical_base: str, codesystem_id: str) -> str:
    """``{canonical base}/CodeSystem/{id}`` (PROTOCOL.md §9)."""
    return f"{canonical_base.rstrip('/')}/CodeSystem/{codesystem_id}"


def item_codesystem_id(link_id: str) -> str:
    """CodeSystem id of a CODE/CODES item: ``twitching.body_sites`` → ``twitching-body-sites``."""
    return link_id.replace(".", "-").replace("_", "-")


def questionnaire_url(canonical_base: str) -> str:
    """Unversioned canonical URL of the intake Questionnaire."""
    return f"{canonical_base.rstrip('/')}/Questionnaire/{QUESTIONNAIRE_ID}"


def questionnaire_canonical(canonical_base: str, version: str) -> str:
    """Versioned canonical (``url|version``) that QuestionnaireResponses cite."""
    return f"{questionnaire_url(canonical_base)}|{version}"


# --- CodeSystem content (for publishing: issue 4) ------------------------------------


@dataclass(frozen=True, slots=True)
class Concept:
    """One concept of a product CodeSystem."""

    code: str
    display: str
    definition: str = ""


@dataclass(frozen=True, slots=True)
class CodeSystemSpec:
    """What a product CodeSystem contains; issue 4 turns it into a resource."""

    id: str
    title: str
    description: str
    concepts: tuple[Concept, ...]
    #: True when the content follows the knowledge-base version (rules, factors, advice).
    versioned_with_knowledge_base: bool = False

    def url(self, canonical_base: str) -> str:
        return codesystem_url(canonical_base, self.id)


def coded_items() -> Iterator[Any]:
    """Every CODE/CODES vocabulary item (each has its own CodeSystem)."""
    return (item for item in iter_items() if item.kind in (Kind.CODE, Kind.CODES))


def vocabulary_codesystems() -> tuple[CodeSystemSpec, ...]:
    """The CodeSystems derived from the vocabulary and result types alone."""
    specs = [
        CodeSystemSpec(
            TRIAGE_LEVEL,
            "Triage level",
            "Triage levels, most urgent first (the codes of Infermedica's public triage API).",
            tuple(
                Concept(level.code, LEVEL_DISPLAY[level], LEVEL_MEANING[level])
                for level in sorted(Level, reverse=True)
            ),
        ),
        CodeSystemSpec(
            LIKELIHOOD,
            "Contributing-factor likelihood",
            "How strongly a contributing factor is supported by its points.",
            (
                Concept(Likelihood.HIGH.value, "High", "3 or more points."),
                Concept(Likelihood.MODERATE.value, "Moderate", "2 points."),
                Concept(Likelihood.LOW.value, "Low", "1 point."),
            ),
        ),
        CodeSystemSpec(
            INTAKE_ITEM,
            "Intake item",
            "Every question of the intake, by its vocabulary path (the linkId).",
            tuple(Concept(item.link_id, item.text, item.definition) for item in iter_items()),
        ),
        CodeSystemSpec(
            TRIAGE_OBSERVATION,
            "Triage observation codes",
            "Observation and component codes of the twitch-triage result Bundle.",
            tuple(Concept(c, d, f) for c, (d, f) in OBSERVATION_CODES.items()),
        ),
        CodeSystemSpec(
            KNOWLEDGE_BASE,
            "Knowledge base",
            "The twitch-triage knowledge base; the coding's version is the KB version.",
            (Concept(KNOWLEDGE_BASE_CODE, KNOWLEDGE_BASE_DISPLAY),),
            versioned_with_knowledge_base=True,
        ),
    ]
    specs.extend(
        CodeSystemSpec(
            item_codesystem_id(item.link_id),
            item.text,
            f"Permitted values of the intake item {item.link_id}.",
            tuple(Concept(c.code, c.display, c.definition) for c in item.codes),
        )
        for item in coded_items()
    )
    return tuple(specs)


def knowledge_base_codesystems() -> tuple[CodeSystemSpec, ...]:
    """Rule, factor and advice CodeSystems, read from ``triage.knowledge_base``.

    Imported lazily: the renderer itself needs only the codes in the result.
    """
    kb = importlib.import_module("triage.knowledge_base")
    return (
        CodeSystemSpec(
            RED_FLAG_RULE,
            "Red-flag rule",
            "Red-flag rules, most urgent level first.",
            tuple(
                Concept(r.id, r.display, f"Fires when {r.fires_when()}. {r.rationale}")
                for r in kb.RULES
            ),
            versioned_with_knowledge_base=True,
        ),
        CodeSystemSpec(
            CONTRIBUTING_FACTOR,
            "Contributing factor",
            "Contributing factors: what may explain or aggravate the twitching.",
            tuple(Concept(f.code, f.display, f.rationale) for f in kb.FACTORS),
            versioned_with_knowledge_base=True,
        ),
        CodeSystemSpec(
            ADVICE,
            "Advice",
            "Coded advice, most important first.",
            tuple(Concept(a.code, a.display, a.text) for a in kb.ADVICE),
            versioned_with_knowledge_base=True,
        ),
    )


@functools.cache
def rule_displays() -> dict[str, str]:
    """Rule id → display, for codings that cite a rule outside a result (decisive questions)."""
    kb = importlib.import_module("triage.knowledge_base")
    return {rule.id: rule.display for rule in kb.RULES}


def product_codesystems() -> tuple[CodeSystemSpec, ...]:
    """Every product CodeSystem a result Bundle may cite."""
    return vocabulary_codesystems() + knowledge_base_codesystems()
