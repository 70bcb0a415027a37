"""The knowledge base: PROTOCOL.md 1.1 as data, one section per module.

A clinician reviews one section per file: ``terms`` (§3 derived terms),
``rules`` (§4), ``screen`` (§5), ``factors`` (§6), ``advice`` (§7); ``checks``
holds the load-time consistency checks, run when this package is imported so
that a typo fails at start-up, not at request time.

Readings (where PROTOCOL.md 1.1 is ambiguous, the safer one; also in the README):
- "not a tic pattern" (RF-PERSISTENT, RF-MULTIPLE-REGIONS, RF-INTERFERES) holds unless
  a tic pattern is *established*; unknown tic features, an unknown ``spreading`` (1.1
  needs it known false) or an unknown timing let those rules fire, as in 1.0.
- "painful is not true" / "spreading not true" (CF-BENIGN-FASCICULATION): unknown is
  "not true", read literally (the runner example relies on it); a factor only.
- An omitted number makes its condition false, except RF-MEDICATION, where 1.1 counts an
  omitted start date as recent; CF-MEDICATION-EFFECT then scores 1 point, not 2.
- ``whole_body`` is every region and, where a rule names sites, every site (RF-HEMIFACIAL,
  RF-DYSTONIA, RF-TETANY-POSSIBLE, the §5 head-neck row, the child head-neck gate of
  CF-BENIGN-FASCICULATION); never a tic-pattern site.
- The high-temperature screen item is known when answered or when the measured
  temperature alone already makes high temperature true; a lower reading leaves it unknown.
- §5 lists the unknown items in table order, each once at its first place among the
  rows whose condition holds (as the worked examples do).
- ADV-NO-SAME-DAY-RETURN follows its §7 row: head impact, or RF-CONCUSSION-SYMPTOMS fired.
- RF-BETA-AGONIST adds the doses of all beta-agonist entries; CF-STIMULANTS scores a
  medicine class once however many entries list it (1.0 readings, kept).
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
