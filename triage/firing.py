"""Which rules fire and which screen items are unknown: the core the engine and
the decisive questions share.

Speed without generated code: each rule and scoring line is indexed by the
answers of which one must be given for it to hold (``Condition.support``), so
a request tests only the entries its answers can satisfy, and not one of them
that lacks an answer it requires (``Condition.requirements``); the candidates
of a set of given answers are worked out once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from triage import knowledge_base as kb
from triage.conditions import MEDICATIONS, Condition, Facts, Tri

#: Entries of an index's memo (sets of given answers seen). Bounded: emptied when full
#: (one dict operation, so safe under threads and greenlets alike); keys only, no values.
CANDIDATES_MEMO_SIZE = 1024


class Index:
    """Positions of entries by the answers that can make them hold.

    Which entries are candidates depends only on *which* answers are given, never
    on their values, and requests from one form give the same answers again and
    again; so the candidates are memoised per set of given answers.
    """

    def __init__(
        self,
        supports: Iterable[frozenset[str] | None],
        requirements: Iterable[tuple[frozenset[str], ...]] | None = None,
    ) -> None:
        always: list[int] = []
        by_link: dict[str, list[int]] = {}
        for position, support in enumerate(supports):
            if support is None:
                always.append(position)
                continue
            for link_id in support:
                by_link.setdefault(link_id, []).append(position)
        self.always = tuple(always)
        self.by_link = {link_id: tuple(positions) for link_id, positions in by_link.items()}
        #: Per position: answer sets that must *each* have one given answer
        #: (``Condition.requirements``); an entry missing one cannot hold.
        self.requirements = tuple(requirements) if requirements is not None else None
        self._memo: dict[frozenset[str], tuple[int, ...]] = {}

    def candidates(self, facts: Facts) -> tuple[int, ...]:
        """Positions, in table order, of the entries this request can make hold."""
        given = frozenset(facts)
        found = self._memo.get(given)
        if found is None:
            found = self._candidates(given)
            if len(self._memo) >= CANDIDATES_MEMO_SIZE:
                self._memo.clear()
            self._memo[given] = found
        return found

    def _candidates(self, given: frozenset[str]) -> tuple[int, ...]:
        found = set(self.always)
        by_link = self.by_link
        for link_id in given:
            positions = by_link.get(link_id)
            if positions:
                found.update(positions)
        requirements = self.requirements
        if requirements is not None:
            found = {
                position
                for position in found
                if all(not needed.isdisjoint(given) for needed in requirements[position])
            }
        return tuple(sorted(found))


def holds(condition: Condition | None, facts: Facts) -> bool:
    """Is the condition established (tests True)? A missing condition always holds."""
    return condition is None or condition.test(facts) is True


def rule_fires(rule: kb.Rule, facts: Facts) -> bool:
    """Does a rule with a trigger fire: trigger true and no established exception."""
    assert rule.when is not None  # noqa: S101 - RF-SCREEN-INCOMPLETE is handled apart
    return rule.when.test(facts) is True and (
        rule.unless is None or rule.unless.test(facts) is not True
    )


def _never(_facts: Facts) -> Tri:
    """The screen rule's trigger and a missing exception: never established."""
    return None


#: Per rule position: (trigger test, exception test) as bound methods, looked up
#: once; the screen rule's trigger never holds here (it fires from the screen).
TESTS: tuple[tuple[Callable[[Facts], Tri], Callable[[Facts], Tri]], ...] = tuple(
    (
        rule.when.test if rule.when is not None else _never,
        rule.unless.test if rule.unless is not None else _never,
    )
    for rule in kb.RULES
)


def fires_at(position: int, facts: Facts) -> bool:
    """``rule_fires`` by position, through the prebound tests."""
    when, unless = TESTS[position]
    return when(facts) is True and unless(facts) is not True


SCREEN_RULE = next(position for position, rule in enumerate(kb.RULES) if rule.from_screen)
RULE_INDEX = Index(
    (rule.when.support() if rule.when else frozenset() for rule in kb.RULES),
    (rule.when.requirements() if rule.when else () for rule in kb.RULES),
)

#: (factor position, line position) of every scoring line, and their index.
LINES: tuple[tuple[int, int], ...] = tuple(
    (f, p) for f, factor in enumerate(kb.FACTORS) for p in range(len(factor.points))
)


def _line_support(line: kb.Points | kb.PerMedication) -> frozenset[str] | None:
    return frozenset({MEDICATIONS}) if isinstance(line, kb.PerMedication) else line.when.support()


def _line_requirements(line: kb.Points | kb.PerMedication) -> tuple[frozenset[str], ...]:
    return () if isinstance(line, kb.PerMedication) else line.when.requirements()


LINE_INDEX = Index(
    (_line_support(kb.FACTORS[f].points[p]) for f, p in LINES),
    (_line_requirements(kb.FACTORS[f].points[p]) for f, p in LINES),
)


#: Screen rows by the answers that can make their condition hold (row 1: always).
ROW_INDEX = Index(
    (row.when.support() if row.when is not None else None for row in kb.SCREEN_ROWS),
    (row.when.requirements() if row.when is not None else () for row in kb.SCREEN_ROWS),
)


def unanswered(facts: Facts) -> tuple[str, ...]:
    """The unknown screen items, in §5 table order, each once at its first place."""
    found: dict[str, None] = {}
    rows = kb.SCREEN_ROWS
    for position in ROW_INDEX.candidates(facts):
        row = rows[position]
        if row.when is not None and row.when.test(facts) is not True:
            continue
        for link_id in row.items:
            if link_id in facts or link_id in found:
                continue
            known_by = kb.KNOWN_WITHOUT_ANSWER.get(link_id)
            if known_by is not None and known_by.test(facts) is True:
                continue
            found[link_id] = None
    return tuple(found)


def fired_positions(facts: Facts) -> list[int]:
    """Positions in ``RULES`` of the triggered rules that fire (screen rule excluded)."""
    fired = []
    for position in RULE_INDEX.candidates(facts):
        when, unless = TESTS[position]
        if when(facts) is True and unless(facts) is not True:
            fired.append(position)
    return fired
