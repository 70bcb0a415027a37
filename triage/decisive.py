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
- a list of codes (conditions): each code alone, then ``[]``;
- the medication list: one medication of each class, start date and doses
  omitted, then ``[]``;
- a number: every threshold any condition compares it with, then just below and
  just above each (1 apart for integers, 0.1 for decimals), within the item's range.

The answer shown is the first tried that gives the reported level, so when no
answer escalates it is still what §8 asks: a listed value, a value at a threshold.

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

So, the screen aside, a question is a function of the item, the level of the
most urgent fired rule that does not read it, and the answers its readers read
(which also decide which readers fire now): it is memoised per item on exactly
these (issue 9: an incomplete request must stay fast). A request repeats the
work of earlier ones only where an answer those rules read differs; the
brute-force and memo tests in ``tests/test_engine_decisive.py`` hold it to the
full re-evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any, NamedTuple

from triage import knowledge_base as kb
from triage.conditions import MEDICATIONS, Compare, Condition, Facts, No, NotEstablished, Tri
from triage.firing import TESTS, unanswered
from triage.result import DecisiveQuestion, Level, ProposedAnswer
from triage.vocabulary import ITEMS, SECTIONS, TOP_LEVEL_ITEMS, Kind


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
    thresholds = _thresholds(link_id)
    for threshold in thresholds:
        for near in (threshold - step, threshold, threshold + step):
            value = round(near, 1)
            if low <= value <= high:
                values.add(int(value) if item.kind is Kind.INTEGER else value)
    if not values:
        values.add(int(low) if item.kind is Kind.INTEGER else low)
    # The thresholds themselves first: when no answer escalates, the one shown is the
    # first tried, and §8 shows "a value at a rule's threshold".
    at = {v for v in values if v in thresholds}
    return (*sorted(at), *sorted(values - at))


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
        return (*((code.code,) for code in item.codes), ())
    if item.kind is Kind.GROUP:
        classes = ITEMS[f"{MEDICATIONS}.class"].codes
        return (*(({"class": code.code},) for code in classes), ())
    return _number_candidates(link_id)


class _Reader(NamedTuple):
    """A rule that reads an item, with what testing it needs, looked up once."""

    position: int
    level: Level
    rule_id: str
    when: Callable[[Facts], Tri]
    unless: Callable[[Facts], Tri]
    #: The answer sets the rule requires that this item cannot provide, as masks of
    #: ``_BITS``: each needs one given answer for the rule to fire.
    others: tuple[int, ...]


class _Plan(NamedTuple):
    """Everything about one screen item that does not depend on the request."""

    readers: tuple[_Reader, ...]  # table order: most urgent first
    read: frozenset[int]  # their positions
    #: Every answer (other than the item's own) the readers read: the memo signature.
    links: tuple[str, ...]
    #: Those answers' values out of ``_keyed`` facts, in one call.
    signature: Callable[[Facts], Any]
    options: tuple[ProposedAnswer, ...]
    fragile: bool
    #: Questions already worked out, by (base level, signature); see ``decisive_questions``.
    memo: dict[tuple[Level, Any], DecisiveQuestion]


#: The request's own answers, as ``flatten`` names them (medication members are not keys).
_FACT_KEYS = frozenset(
    [item.link_id for section in SECTIONS for item in section.items]
    + [item.link_id for item in TOP_LEVEL_ITEMS]
)
#: One bit per fact key: which answers are given, as one int per request.
_BITS = {link_id: 1 << number for number, link_id in enumerate(sorted(_FACT_KEYS))}


def _mask(links: frozenset[str]) -> int:
    """The bits of the fact keys among ``links`` (other names are never given)."""
    mask = 0
    for link_id in links:
        mask |= _BITS.get(link_id, 0)
    return mask


def _readers(link_id: str) -> tuple[_Reader, ...]:
    """The triggered rules that read the item (trigger or exception)."""
    readers = []
    for position, rule in enumerate(kb.RULES):
        if rule.when is None:
            continue
        if link_id not in rule.when.link_ids() | (rule.unless.link_ids() if rule.unless else set()):
            continue
        others = tuple(_mask(r) for r in rule.when.requirements() if link_id not in r)
        when, unless = TESTS[position]
        readers.append(_Reader(position, rule.level, rule.id, when, unless, others))
    return tuple(readers)


def _plan(link_id: str) -> _Plan:
    readers = _readers(link_id)
    links: set[str] = set()
    for reader in readers:
        rule = kb.RULES[reader.position]
        assert rule.when is not None  # noqa: S101 - _readers skips the screen rule
        links |= rule.when.link_ids() | (rule.unless.link_ids() if rule.unless else set())
    read_links = tuple(sorted((links & _FACT_KEYS) - {link_id}))
    return _Plan(
        readers=readers,
        read=frozenset(reader.position for reader in readers),
        links=read_links,
        signature=itemgetter(*read_links) if read_links else _nothing,
        options=CANDIDATES[link_id],
        fragile=link_id in _FRAGILE,
        memo={},
    )


def _nothing(_facts: Facts) -> tuple[()]:
    """The signature of an item whose readers read no other answer."""
    return ()


_SCREEN_LINKS = tuple(dict.fromkeys(item.link_id for item in kb.SCREEN))
CANDIDATES: dict[str, tuple[ProposedAnswer, ...]] = {
    link_id: candidates(link_id) for link_id in _SCREEN_LINKS
}
_PLANS = {link_id: _plan(link_id) for link_id in _SCREEN_LINKS}
_LEVELS = tuple(rule.level for rule in kb.RULES)
_SELF_CARE = Level.SELF_CARE

#: Entries of one item's memo. Bounded: emptied when full (one dict operation, so
#: safe under threads and greenlets alike); it holds answers only, never who gave them.
MEMO_SIZE = 1024
#: Every fact key unknown: the start of ``_keyed`` (a copy is cheaper than lookups that miss).
_ALL_UNKNOWN: dict[str, Any] = dict.fromkeys(_FACT_KEYS)
_BOOLEAN_LINKS = frozenset(link for link in _FACT_KEYS if ITEMS[link].kind is Kind.BOOLEAN)


def clear_memo() -> None:
    """Forget every memoised question (benchmarks of the cold path, tests)."""
    for plan in _PLANS.values():
        plan.memo.clear()


def _level(
    readers: list[_Reader], trial: Facts, floor: Level, screen_stays_incomplete: bool
) -> Level:
    """The level the trial answers give, or ``floor`` if no reader can beat it.

    Readers come most urgent first (table order), so the first that fires
    decides and none at or below ``floor`` needs a test.
    """
    level = floor
    for _, reader_level, _, when, unless, _ in readers:
        if reader_level <= level:
            break
        if when(trial) is True and unless(trial) is not True:
            level = reader_level
            break
    if level < Level.CONSULTATION and (screen_stays_incomplete or unanswered(trial)):
        level = Level.CONSULTATION  # RF-SCREEN-INCOMPLETE
    return level


def _active(readers: tuple[_Reader, ...], given: int, fired: frozenset[int]) -> list[_Reader]:
    """The readers an answer to the item can affect: each that fires now (an answer may
    stop it) or whose other required answers each have one given (``given``: ``_BITS``)."""
    active = []
    for reader in readers:
        others = reader[5]
        if others and reader[0] not in fired:
            for mask in others:
                if not given & mask:
                    break
            else:
                active.append(reader)
            continue
        active.append(reader)
    return active


def _question(
    link_id: str,
    plan: _Plan,
    trial: dict[str, Any],
    *,
    given: int,
    fired: frozenset[int],
    base: Level,
    screen_stays_incomplete: bool,
) -> DecisiveQuestion:
    """The decisive question of one unknown item; ``trial`` is the request's facts,
    lent for the trial answers and handed back unchanged.

    ``base`` is the level of the most urgent fired rule that does not read the
    item: no answer to the item can lower it. A reader is skipped when another
    of its required answers is not given (unless it fires now: then it is tested,
    as an answer may stop it).
    """
    readers = _active(plan.readers, given, fired)
    options = plan.options
    best_answer = options[0]
    if len(options) > 1:
        # No answer gives more than the most urgent reader (or the screen's level).
        ceiling = max(readers[0][1] if readers else Level.SELF_CARE, Level.CONSULTATION)
        best_level = Level.SELF_CARE
        for number, answer in enumerate(options):
            trial[link_id] = answer
            floor = base if number == 0 else max(base, best_level)
            level = _level(readers, trial, floor, screen_stays_incomplete)
            # Only a strictly more urgent level replaces an earlier candidate.
            if number == 0 or level > best_level:
                best_level, best_answer = level, answer
                if best_level >= ceiling:
                    break
    trial[link_id] = best_answer
    level = base
    newly = []
    for position, reader_level, rule_id, when, unless, _ in readers:
        if when(trial) is True and unless(trial) is not True:
            level = max(level, reader_level)
            if position not in fired:
                newly.append(rule_id)
    if level < Level.CONSULTATION and (screen_stays_incomplete or unanswered(trial)):
        level = Level.CONSULTATION
    del trial[link_id]
    return DecisiveQuestion(link_id, best_answer, level, tuple(newly))


def _keyed(facts: Facts) -> dict[str, Any] | None:
    """Every fact key to its answer or None, hashable; None when the memo must not be used.

    The medication list becomes tuples of the members conditions read (in list
    order). A yes/no answer that is not a bool (only a caller bypassing the schema
    sends one) opts out: ``1 == True`` as keys, but ``Yes`` tests ``is True``.
    """
    keyed = _ALL_UNKNOWN.copy()
    keyed.update(facts)
    medications = facts.get(MEDICATIONS)
    if medications is not None:
        keyed[MEDICATIONS] = tuple(
            (m.get("class"), m.get("days_since_start"), m.get("doses_per_day")) for m in medications
        )
    for link_id in _BOOLEAN_LINKS.intersection(facts):
        if facts[link_id].__class__ is not bool:
            return None
    return keyed


def decisive_questions(
    facts: Facts, fired: list[int], unknown: tuple[str, ...]
) -> tuple[DecisiveQuestion, ...]:
    """One decisive question per unknown screen item, in the order of ``unknown``.

    ``fired`` must be ``fired_positions(facts)``. A question depends only on the
    item, its ``base`` level and the answers its readers read (which also decide
    which of them fire now), except when the screen is recomputed (the item is
    the last unknown one, or ``_FRAGILE``); so the other questions are memoised
    per item on exactly that: an answer the readers do not read never changes them.
    """
    if not unknown:
        return ()
    others_unknown = len(unknown) > 1
    keyed = _keyed(facts)
    # What working a question out needs, made on the first memo miss only: a request
    # whose questions were all seen before never pays for it.
    lent: list[tuple[dict[str, Any], int, frozenset[int]]] = []

    def work_out(link_id: str, plan: _Plan, base: Level, stays: bool) -> DecisiveQuestion:
        if not lent:
            lent.append((dict(facts), _mask(frozenset(facts)), frozenset(fired)))
        trial, given, fired_set = lent[0]
        return _question(
            link_id,
            plan,
            trial,
            given=given,
            fired=fired_set,
            base=base,
            screen_stays_incomplete=stays,
        )

    questions = []
    for link_id in unknown:
        plan = _PLANS[link_id]
        base = _SELF_CARE
        if fired:
            read = plan.read
            for position in fired:  # most urgent first
                if position not in read:
                    base = _LEVELS[position]
                    break
        stays = others_unknown and not plan.fragile
        if keyed is None or not stays:  # the screen reads more than the signature
            questions.append(work_out(link_id, plan, base, stays))
            continue
        key = (base, plan.signature(keyed))
        memo = plan.memo
        question = memo.get(key)
        if question is None:
            question = work_out(link_id, plan, base, True)
            if len(memo) >= MEMO_SIZE:
                memo.clear()
            memo[key] = question
        questions.append(question)
    return tuple(questions)
