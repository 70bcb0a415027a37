"""Evaluate a validated request against the knowledge base.

``evaluate`` is a pure function of the request and the knowledge-base version
(PROTOCOL.md §5a): no clock, no randomness, no I/O. It flattens the request
once into link id → answer, tests every rule, then scores the factors (one of
which depends on the final level), then picks the advice. Evidence is gathered
only for what fired, which keeps the common path fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from triage import knowledge_base as kb
from triage.logic import (
    MEDICATIONS,
    Condition,
    Facts,
    Holds,
    answer_tokens,
    medication_answers,
    unique_answers,
)
from triage.result import (
    Answer,
    FactorPoint,
    FiredRule,
    GivenAdvice,
    Level,
    Likelihood,
    ReportedFactor,
    TriageResult,
)
from triage.vocabulary import SECTIONS, TOP_LEVEL_ITEMS, Kind


class RequestShapeError(ValueError):
    """The request is not in the vocabulary's shape (the schema should have caught it)."""


_LINK_IDS: dict[str, dict[str, str]] = {
    section.name: {item.name: item.link_id for item in section.items} for section in SECTIONS
}
_TOP_LEVEL: dict[str, str] = {item.name: item.link_id for item in TOP_LEVEL_ITEMS}
_LIST_KINDS = (Kind.CODES, Kind.GROUP)
_LIST_LINKS = frozenset(
    item.link_id for section in SECTIONS for item in section.items if item.kind in _LIST_KINDS
)


def flatten(request: Mapping[str, Any]) -> dict[str, Any]:
    """The request as link id → answer; omitted and null answers are left out (unknown)."""
    facts: dict[str, Any] = {}
    for key, value in request.items():
        if value is None:
            continue
        links = _LINK_IDS.get(key)
        if links is None:
            link_id = _TOP_LEVEL.get(key)
            if link_id is None:
                raise RequestShapeError(f"unknown field {key!r}")
            facts[link_id] = value
            continue
        if not isinstance(value, Mapping):
            raise RequestShapeError(f"{key!r} must be an object")
        for name, answer in value.items():
            if answer is None:
                continue
            link_id = links.get(name)
            if link_id is None:
                raise RequestShapeError(f"unknown field {key}.{name!r}")
            facts[link_id] = tuple(answer) if link_id in _LIST_LINKS else answer
    return facts


@dataclass(frozen=True, slots=True)
class _LinePlan:
    """A scoring line compiled, with its label rendered once.

    ``point`` is the line's FactorPoint built at load time when its evidence is
    the same whenever it holds (results are immutable, so it can be shared).
    """

    points: int
    keys: frozenset[str] | None
    holds: Holds
    condition: Condition
    label: str
    point: FactorPoint | None


@dataclass(frozen=True, slots=True)
class _FactorPlan:
    factor: kb.Factor
    #: Tokens one of which must be present for any line to score (None: always try).
    keys: frozenset[str] | None
    gate: Holds | None
    lines: tuple[_LinePlan | kb.PerMedication, ...]


@dataclass(frozen=True, slots=True)
class _AdvicePlan:
    advice: kb.Advice
    when: Holds | None


def _finding(rule: kb.Rule, evidence: tuple[Answer, ...]) -> FiredRule:
    """The reported finding of a rule that fired, on this evidence."""
    return FiredRule(
        rule_id=rule.id,
        level=rule.level,
        display=rule.display,
        rationale=rule.rationale,
        source=rule.source,
        condition=rule.condition,
        evidence=evidence,
    )


def _compile(condition: Condition | None) -> Holds | None:
    return None if condition is None else condition.compile()


def _keys(condition: Condition | None) -> frozenset[str] | None:
    return None if condition is None else condition.trigger_keys()


def _prebuilt(rule: kb.Rule) -> FiredRule | None:
    """The finding itself, when the trigger always cites the same answers."""
    constant = None if rule.when is None else rule.when.constant_evidence()
    return None if constant is None else _finding(rule, constant)


#: (rule, its trigger, trigger keys, compiled trigger, compiled exception, prebuilt
#: finding); a rule without a trigger (RF-SCREEN-INCOMPLETE) fires from the screen.
_RULES: tuple[
    tuple[
        kb.Rule,
        Condition | None,
        frozenset[str] | None,
        Holds | None,
        Holds | None,
        FiredRule | None,
    ],
    ...,
] = tuple(
    (
        rule,
        rule.when,
        _keys(rule.when),
        _compile(rule.when),
        _compile(rule.unless),
        _prebuilt(rule),
    )
    for rule in kb.RULES
)
_SCREEN = tuple((item.link_id, _compile(item.required_when)) for item in kb.SCREEN)


class _TokenIndex:
    """Which entries (by position) could hold, given the request's answer tokens.

    An entry with trigger keys can only hold when one of them is among the
    tokens, so it is found through the index; entries without keys are always
    candidates. Candidates come back in table order.
    """

    __slots__ = ("always", "by_token")

    def __init__(self, keys: list[frozenset[str] | None]) -> None:
        by_token: dict[str, list[int]] = {}
        for position, entry_keys in enumerate(keys):
            for token in entry_keys or ():
                by_token.setdefault(token, []).append(position)
        self.by_token = {token: tuple(positions) for token, positions in by_token.items()}
        self.always = frozenset(p for p, entry_keys in enumerate(keys) if entry_keys is None)

    def candidates(self, tokens: frozenset[str]) -> list[int]:
        found = set(self.always)
        by_token = self.by_token
        for token in tokens:
            positions = by_token.get(token)
            if positions is not None:
                found.update(positions)
        return sorted(found)


_RULE_INDEX = _TokenIndex([keys for _, _, keys, _, _, _ in _RULES])


def _line_plan(line: kb.Points) -> _LinePlan:
    constant = line.when.constant_evidence()
    point = None if constant is None else FactorPoint(line.points, line.text, constant)
    return _LinePlan(
        line.points, line.when.trigger_keys(), line.when.compile(), line.when, line.text, point
    )


def _factor_plan(factor: kb.Factor) -> _FactorPlan:
    lines = tuple(
        line if isinstance(line, kb.PerMedication) else _line_plan(line) for line in factor.points
    )
    line_keys = [
        frozenset({MEDICATIONS}) if isinstance(line, kb.PerMedication) else line.keys
        for line in lines
    ]
    keys = None if None in line_keys else frozenset().union(*line_keys)  # type: ignore[arg-type]
    return _FactorPlan(factor, keys, _compile(factor.only_when), lines)


_FACTORS = tuple(_factor_plan(factor) for factor in kb.FACTORS)
_FACTOR_INDEX = _TokenIndex([plan.keys for plan in _FACTORS])
_ADVICE = tuple(_AdvicePlan(advice, _compile(advice.when)) for advice in kb.ADVICE)


def unanswered_screen_items(facts: Facts) -> tuple[str, ...]:
    """The screen items that must be known but are not, in protocol order (§5)."""
    return tuple(
        link_id
        for link_id, required_when in _SCREEN
        if link_id not in facts and (required_when is None or required_when(facts))
    )


def _score(
    plan: _FactorPlan, facts: Facts, tokens: frozenset[str], level: Level
) -> ReportedFactor | None:
    factor = plan.factor
    if factor.only_at_level is not None and level is not factor.only_at_level:
        return None
    if plan.gate is not None and not plan.gate(facts):
        return None
    breakdown: list[FactorPoint] = []
    for line in plan.lines:
        if type(line) is _LinePlan:
            keys = line.keys
            if (keys is None or not keys.isdisjoint(tokens)) and line.holds(facts):
                point = line.point
                if point is None:
                    evidence = unique_answers(line.condition.evidence(facts))
                    point = FactorPoint(line.points, line.label, evidence)
                breakdown.append(point)
        else:
            breakdown.extend(_medication_points(line, facts))
    if not breakdown:
        return None
    points = sum(point.points for point in breakdown)
    return ReportedFactor(
        code=factor.code,
        display=factor.display,
        rationale=factor.rationale,
        points=points,
        likelihood=Likelihood.for_points(points),
        breakdown=tuple(breakdown),
        condition=factor.condition,
    )


def _medication_points(line: kb.PerMedication, facts: Facts) -> list[FactorPoint]:
    points = []
    for index, medication in enumerate(facts.get(MEDICATIONS) or ()):
        if medication["class"] not in line.classes:
            continue
        days = medication.get("days_since_start")
        recent = days is not None and days <= line.recent_days
        label = (
            f"{medication['class']} started {days} days ago"
            if days is not None
            else f"{medication['class']} (start unknown)"
        )
        evidence = medication_answers(index, medication, ("class", "days_since_start"))
        points.append(
            FactorPoint(line.recent_points if recent else line.other_points, label, tuple(evidence))
        )
    return points


def _advise(
    facts: Facts,
    level: Level,
    rule_ids: frozenset[str],
    factor_codes: frozenset[str],
) -> tuple[GivenAdvice, ...]:
    given: list[GivenAdvice] = []
    given_codes: set[str] = set()
    for plan in _ADVICE:
        advice = plan.advice
        by_level = level in advice.levels
        by_rules = not advice.rules.isdisjoint(rule_ids)
        by_factors = not advice.factors.isdisjoint(factor_codes)
        by_answers = plan.when is not None and plan.when(facts)
        if not (advice.always or by_level or by_rules or by_factors or by_answers):
            continue
        if advice.not_with is not None and advice.not_with in given_codes:
            continue
        because: list[str] = ["always given"] if advice.always else []
        if by_level:
            because.append(f"level {level.code}")
        if by_rules:
            because.extend(sorted(advice.rules & rule_ids))
        if by_factors:
            because.extend(sorted(advice.factors & factor_codes))
        if by_answers:
            assert advice.when is not None  # noqa: S101 - compiled from it
            because.extend(a.path for a in unique_answers(advice.when.evidence(facts)))
        text = advice.variant_text if advice.variant_rules & rule_ids else advice.text
        given.append(GivenAdvice(advice.code, advice.display, text, tuple(because)))
        given_codes.add(advice.code)
    return tuple(given)


def evaluate(request: Mapping[str, Any]) -> TriageResult:
    """Triage one validated request (PROTOCOL.md §3 shape) into a TriageResult."""
    facts = flatten(request)
    unanswered = unanswered_screen_items(facts)
    fired: list[FiredRule] = []
    tokens = answer_tokens(facts)
    for position in _RULE_INDEX.candidates(tokens):  # most urgent first, then table order
        rule, trigger, _, when, unless, prebuilt = _RULES[position]
        if trigger is None or when is None:
            if unanswered:  # RF-SCREEN-INCOMPLETE, in its table position
                unknown = tuple(Answer(link_id, None, link_id) for link_id in unanswered)
                fired.append(_finding(rule, unknown))
        elif when(facts) and (unless is None or not unless(facts)):
            fired.append(prebuilt or _finding(rule, unique_answers(trigger.evidence(facts))))
    level = max((finding.level for finding in fired), default=Level.SELF_CARE)

    scored = [
        (position, reported)
        for position in _FACTOR_INDEX.candidates(tokens)
        if (reported := _score(_FACTORS[position], facts, tokens, level)) is not None
    ]
    scored.sort(key=lambda pair: (-pair[1].points, pair[0]))
    factors = tuple(reported for _, reported in scored)

    advice = _advise(
        facts,
        level,
        frozenset(finding.rule_id for finding in fired),
        frozenset(factor.code for factor in factors),
    )
    return TriageResult(
        level=level,
        rules=tuple(fired),
        factors=factors,
        advice=advice,
        unanswered=unanswered,
        knowledge_base_version=kb.KNOWLEDGE_BASE_VERSION,
    )
