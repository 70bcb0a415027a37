"""The knowledge base: PROTOCOL.md 1.1 as data, one section per module.

A clinician reviews one section per file: ``terms`` (§3 derived terms),
``rules`` (§4), ``screen`` (§5), ``factors`` (§6), ``advice`` (§7); ``checks``
holds the load-time consistency checks, run when this package is imported so
that a typo fails at start-up, not at request time.
"""

from __future__ import annotations

from triage.knowledge_base import checks
from triage.knowledge_base.advice import ADVICE
from triage.knowledge_base.entries import (
    Advice,
    Factor,
    PerMedication,
    Points,
    Rule,
    ScreenItem,
    ScreenRow,
)
from triage.knowledge_base.factors import FACTORS
from triage.knowledge_base.rules import RULES
from triage.knowledge_base.screen import (
    HIGH_TEMPERATURE_ITEM,
    KNOWN_WITHOUT_ANSWER,
    SCREEN,
    SCREEN_ROWS,
)

#: Version of this knowledge base; bump on any clinical change. Reported on every result.
KNOWLEDGE_BASE_VERSION = "1.1.0"
#: The protocol document this version implements.
PROTOCOL = "Post-exercise twitching triage protocol — version 1.1"

checks.check()

__all__ = [
    "ADVICE",
    "FACTORS",
    "HIGH_TEMPERATURE_ITEM",
    "KNOWLEDGE_BASE_VERSION",
    "KNOWN_WITHOUT_ANSWER",
    "PROTOCOL",
    "RULES",
    "SCREEN",
    "SCREEN_ROWS",
    "Advice",
    "Factor",
    "PerMedication",
    "Points",
    "Rule",
    "ScreenItem",
    "ScreenRow",
]
