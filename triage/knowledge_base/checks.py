"""Load-time consistency checks of the knowledge base against itself and the vocabulary.

Conditions check their own fields and values when built; these check the
tables against each other, so a typo in an id fails at start-up.
"""

from __future__ import annotations

from triage.conditions import VocabularyError
from triage.knowledge_base.advice import ADVICE
from triage.knowledge_base.factors import FACTORS
from triage.knowledge_base.rules import RULES
from triage.knowledge_base.screen import KNOWN_WITHOUT_ANSWER, SCREEN, SCREEN_ROWS
from triage.vocabulary import ITEMS, Kind


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
    _check_screen()


def _check_screen() -> None:
    rule_ids = {rule.id for rule in RULES}
    for row in SCREEN_ROWS:
        unknown = set(row.for_rules) - rule_ids
        if unknown or not row.items or len(set(row.items)) != len(row.items):
            raise VocabularyError(f"screen row {row.items}: bad items or rules {sorted(unknown)}")
    for screen_item in SCREEN:
        if screen_item.link_id not in ITEMS or ITEMS[screen_item.link_id].kind in (
            Kind.STRING,
            Kind.REFERENCE,
        ):
            raise VocabularyError(f"screen item {screen_item.link_id!r} is not a known answer")
    for link_id in KNOWN_WITHOUT_ANSWER:
        if link_id not in {s.link_id for s in SCREEN}:
            raise VocabularyError(f"{link_id!r} is not a screen item")
