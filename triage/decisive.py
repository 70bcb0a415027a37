"""Decisive questions (PROTOCOL.md §8): which answer to an unknown screen item
would escalate the case, and to what.

For each unknown screen item, every candidate answer is tried alone on top of
the request; the reported level is the most urgent any of them gives, computed
with the same rules and screen as the request itself. Candidates come from the
vocabulary and the knowledge base, never from a hand list:
- yes/no: yes, then no -- "no" only for an item some exception or negation
  reads (``No``, "not ...", ``unless``): an item read only as "yes" cannot give
  a more urgent level on "no" (§5a, checked by the brute-force test);
- one code (enum): each code;
- a list of codes (conditions): ``[]``, then each code alone;
- the medication list: ``[]``, then one medication of each class, start date
  and doses omitted;
- a number: just below, at and just above every threshold any condition
  compares it with (1 apart for integers, 0.1 for decimals), within the item's range.

Only rules that read the item are re-tested: the others keep their verdict,
since nothing they read has changed; and a reader is skipped when another of
its required answers (``Condition.requirements``) is not given, since it
cannot fire whatever this item's answer. The screen (RF-SCREEN-INCOMPLETE)
matters only when no rule reaches ``consultation``; it is recomputed only when
answering the item could make the
other unknown items known: when it is the last one, or when the item is read
by a "not ..." clause of a screen row or by the measured-temperature shortcut.
(Otherwise the rows that held still hold: a three-valued condition that is
true stays true when an unknown answer becomes known.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from triage import knowledge_base as kb
from triage.conditions import MEDICATIONS, Compare, Condition, Facts, No, NotEstablished
from triage.firing import fires_at, unanswered
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


def _negated_links() -> frozenset[str]:
    """Items some condition reads as a reassuring "no" (where "no" may escalate)."""
    links: set[str] = set()
    roots = [rule.unless for rule in kb.RULES if rule.unless is not None]
    roots += [node.part for node in _all_conditions() if isinstance(node, NotEstablished)]
    for root in roots:
        links |= root.link_ids()
    links |= {node.link_id for node in _all_conditions() if isinstance(node, No)}
    return frozenset(links)


_NEGATED = _negated_links()


def _screen_fragile_links() -> frozenset[str]:
    """Items whose answer can make a holding screen row stop holding, or an item known."""
    links: set[str] = set()
    for row in kb.SCREEN_ROWS:
        for node in _walk(row.when):
            if isinstance(node, NotEstablished):
                links |= node.part.link_ids()
    for condition in kb.KNOWN_WITHOUT_ANSWER.values():
        links |= condition.link_ids()
    return frozenset(links)


_FRAGILE = _screen_fragile_links()


def candidates(link_id: str) -> tuple[ProposedAnswer, ...]:
    """Every answer tried for a screen item (see the module docstring)."""
    item = ITEMS[link_id]
    if item.kind is Kind.BOOLEAN:
        return (True, False) if link_id in _NEGATED else (True,)
    if item.kind is Kind.CODE:
        return tuple(code.code for code in item.codes)
    if item.kind is Kind.CODES:
        return ((), *((code.code,) for code in item.codes))
    if item.kind is Kind.GROUP:
        classes = ITEMS[f"{MEDICATIONS}.class"].codes
        return ((), *(({"class": code.code},) for code in classes))
    return _number_candidates(link_id)


def _readers(link_id: str) -> tuple[tuple[int, tuple[frozenset[str], ...]], ...]:
    """The triggered rules that read the item (trigger or exception), each with the
    answer sets it requires that this item cannot provide."""
    readers = []
    for position, rule in enumerate(kb.RULES):
        if rule.when is None:
            continue
        if link_id not in rule.when.link_ids() | (rule.unless.link_ids() if rule.unless else set()):
            continue
        others = tuple(r for r in rule.when.requirements() if link_id not in r)
        readers.append((position, others))
    return tuple(readers)


_SCREEN_LINKS = tuple(dict.fromkeys(item.link_id for item in kb.SCREEN))
CANDIDATES: dict[str, tuple[ProposedAnswer, ...]] = {
    link_id: candidates(link_id) for link_id in _SCREEN_LINKS
}
_READERS = {link_id: _readers(link_id) for link_id in _SCREEN_LINKS}
_READ = {link_id: frozenset(p for p, _ in readers) for link_id, readers in _READERS.items()}
_LEVELS = tuple(rule.level for rule in kb.RULES)
_IDS = tuple(rule.id for rule in kb.RULES)


def _level(readers: list[int], trial: Facts, floor: Level, screen_stays_incomplete: bool) -> Level:
    """The level the trial answers give, or ``floor`` if no reader can beat it.

    Readers come most urgent first (table order), so the first that fires
    decides and none at or below ``floor`` needs a test.
    """
    level = floor
    for position in readers:
        if _LEVELS[position] <= level:
            break
        if fires_at(position, trial):
            level = _LEVELS[position]
            break
    if level < Level.CONSULTATION and (screen_stays_incomplete or unanswered(trial)):
        level = Level.CONSULTATION  # RF-SCREEN-INCOMPLETE
    return level


def _question(
    link_id: str, trial: dict[str, Any], fired: list[int], others_unknown: bool
) -> DecisiveQuestion:
    """The decisive question of one unknown item; ``trial`` is the request's facts,
    lent for the trial answers and handed back unchanged."""
    read = _READ[link_id]
    given = trial.keys()
    readers = [
        position
        for position, others in _READERS[link_id]
        if not others or position in fired or not any(given.isdisjoint(n) for n in others)
    ]
    # ``fired`` is in table order, most urgent first: the first rule the item does
    # not read sets the level no answer to the item can lower.
    base = next((_LEVELS[p] for p in fired if p not in read), Level.SELF_CARE)
    screen_stays_incomplete = others_unknown and link_id not in _FRAGILE
    options = CANDIDATES[link_id]
    best_answer = options[0]
    if len(options) > 1:
        best_level = Level.SELF_CARE
        for number, answer in enumerate(options):
            trial[link_id] = answer
            floor = base if number == 0 else max(base, best_level)
            level = _level(readers, trial, floor, screen_stays_incomplete)
            # Only a strictly more urgent level replaces an earlier candidate.
            if number == 0 or level > best_level:
                best_level, best_answer = level, answer
    trial[link_id] = best_answer
    level = base
    newly = []
    for position in readers:
        if fires_at(position, trial):
            level = max(level, _LEVELS[position])
            if position not in fired:
                newly.append(position)
    if level < Level.CONSULTATION and (screen_stays_incomplete or unanswered(trial)):
        level = Level.CONSULTATION
    del trial[link_id]
    return DecisiveQuestion(link_id, best_answer, level, tuple(_IDS[p] for p in newly))


def decisive_questions(
    facts: Facts, fired: list[int], unknown: tuple[str, ...]
) -> tuple[DecisiveQuestion, ...]:
    """One decisive question per unknown screen item, in the order of ``unknown``."""
    if not unknown:
        return ()
    others_unknown = len(unknown) > 1
    trial = dict(facts)
    return tuple(_question(link_id, trial, fired, others_unknown) for link_id in unknown)
