"""Decisive questions (PROTOCOL.md §8): which answer to an unknown screen item
would escalate the case, and to what.

For each unknown screen item, every candidate answer is tried alone on top of
the request; the reported level is the most urgent any of them gives, computed
with the same rules and screen as the request itself. Candidates come from the
vocabulary and the knowledge base, never from a hand list:
- yes/no: yes, then no;
- one code (enum): each code;
- a list of codes (conditions): ``[]``, then each code alone;
- the medication list: ``[]``, then one medication of each class, start date
  and doses omitted;
- a number: just below, at and just above every threshold any condition
  compares it with (1 apart for integers, 0.1 for decimals), within the item's range.

Only rules that read the item are re-tested: the others keep their verdict,
since nothing they read has changed. The screen (RF-SCREEN-INCOMPLETE) is
recomputed only when no re-tested rule reaches ``consultation``.
"""

from __future__ import annotations

from collections.abc import Iterator

from triage import knowledge_base as kb
from triage.conditions import MEDICATIONS, Compare, Condition, Facts
from triage.firing import SCREEN_RULE, rule_fires, unanswered
from triage.result import DecisiveQuestion, Level, ProposedAnswer
from triage.vocabulary import ITEMS, Kind


def _walk(condition: Condition | None) -> Iterator[Condition]:
    """Every node of a condition tree."""
    if condition is None:
        return
    yield condition
    for attribute in ("parts", "part", "definition"):
        child = getattr(condition, attribute, None)
        if isinstance(child, tuple):
            for part in child:
                yield from _walk(part)
        elif isinstance(child, Condition):
            yield from _walk(child)


def _all_conditions() -> Iterator[Condition]:
    for rule in kb.RULES:
        yield from _walk(rule.when)
        yield from _walk(rule.unless)
    for row in kb.SCREEN_ROWS:
        yield from _walk(row.when)
    yield from (node for c in kb.KNOWN_WITHOUT_ANSWER.values() for node in _walk(c))


def _thresholds(link_id: str) -> list[float]:
    return sorted(
        {
            node.threshold
            for node in _all_conditions()
            if isinstance(node, Compare) and node.link_id == link_id
        }
    )


def _number_candidates(link_id: str) -> tuple[ProposedAnswer, ...]:
    item = ITEMS[link_id]
    step = 1 if item.kind is Kind.INTEGER else 0.1
    low = item.minimum if item.minimum is not None else 0
    high = item.maximum if item.maximum is not None else float("inf")
    values: set[float] = set()
    for threshold in _thresholds(link_id):
        for near in (threshold - step, threshold, threshold + step):
            value = round(near, 1)
            if low <= value <= high:
                values.add(int(value) if item.kind is Kind.INTEGER else value)
    if not values:
        values.add(int(low) if item.kind is Kind.INTEGER else low)
    return tuple(sorted(values))


def candidates(link_id: str) -> tuple[ProposedAnswer, ...]:
    """Every answer tried for a screen item (see the module docstring)."""
    item = ITEMS[link_id]
    if item.kind is Kind.BOOLEAN:
        return (True, False)
    if item.kind is Kind.CODE:
        return tuple(code.code for code in item.codes)
    if item.kind is Kind.CODES:
        return ((), *((code.code,) for code in item.codes))
    if item.kind is Kind.GROUP:
        classes = ITEMS[f"{MEDICATIONS}.class"].codes
        return ((), *(({"class": code.code},) for code in classes))
    return _number_candidates(link_id)


def _readers(link_id: str) -> tuple[int, ...]:
    """Positions of the triggered rules that read the item (trigger or exception)."""
    return tuple(
        position
        for position, rule in enumerate(kb.RULES)
        if rule.when is not None
        and link_id in rule.when.link_ids() | (rule.unless.link_ids() if rule.unless else set())
    )


_SCREEN_LINKS = tuple(dict.fromkeys(item.link_id for item in kb.SCREEN))
CANDIDATES: dict[str, tuple[ProposedAnswer, ...]] = {
    link_id: candidates(link_id) for link_id in _SCREEN_LINKS
}
_READERS: dict[str, tuple[int, ...]] = {link_id: _readers(link_id) for link_id in _SCREEN_LINKS}
_LEVELS = tuple(rule.level for rule in kb.RULES)


def _question(link_id: str, facts: Facts, fired: frozenset[int]) -> DecisiveQuestion:
    readers = _READERS[link_id]
    unchanged = [position for position in fired if position not in readers]
    base = max((_LEVELS[p] for p in unchanged), default=Level.SELF_CARE)
    rules = kb.RULES
    best: tuple[Level, ProposedAnswer, tuple[int, ...]] | None = None
    trial = dict(facts)
    for answer in CANDIDATES[link_id]:
        trial[link_id] = answer
        newly = tuple(p for p in readers if p not in fired and rule_fires(rules[p], trial))
        still = [p for p in readers if p in fired and rule_fires(rules[p], trial)]
        level = max((_LEVELS[p] for p in (*newly, *still)), default=base)
        level = max(level, base)
        if level < Level.CONSULTATION and unanswered(trial):
            level = _LEVELS[SCREEN_RULE]
        if best is None or level > best[0]:
            best = (level, answer, newly)
    assert best is not None  # noqa: S101 - every screen item has a candidate
    level, answer, newly = best
    return DecisiveQuestion(link_id, answer, level, tuple(rules[p].id for p in sorted(newly)))


def decisive_questions(
    facts: Facts, fired: list[int], unknown: tuple[str, ...]
) -> tuple[DecisiveQuestion, ...]:
    """One decisive question per unknown screen item, in the order of ``unknown``."""
    if not unknown:
        return ()
    fired_set = frozenset(fired)
    return tuple(_question(link_id, facts, fired_set) for link_id in unknown)
