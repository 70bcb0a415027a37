"""Evaluate a validated request against the knowledge base.

``evaluate`` is a pure function of the request and the knowledge-base version
(PROTOCOL.md §5a): no clock, no randomness, no I/O. It flattens the request
once into link id → answer, finds the fired rules, then the scoring lines of
the factors (one factor depends on the final level), then the advice, then the
decisive questions (``triage.decisive``).

Rules and scoring lines are found through the candidate index of
``triage.firing``; findings whose evidence never varies are built once, at load.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from operator import itemgetter
from typing import Any, NamedTuple

from triage import knowledge_base as kb
from triage.conditions import MEDICATIONS, Facts, Tri, medication_answers, unique_answers
from triage.decisive import decisive_questions
from triage.firing import (
    LINE_INDEX,
    LINES,
    SCREEN_RULE,
    fired_positions,
    unanswered,
)
from triage.result import (
    Answer,
    DecisiveQuestions,
    FactorPoint,
    FiredRule,
    GivenAdvice,
    Level,
    Likelihood,
    ReportedFactor,
    TriageResult,
)
from triage.vocabulary import ITEMS, SECTIONS, TOP_LEVEL_ITEMS, Kind


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
_CLASS_DISPLAY = {code.code: code.display for code in ITEMS["history.medications.class"].codes}


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
            if link_id == MEDICATIONS:  # copied: the facts outlive the call (decisive)
                facts[link_id] = tuple(dict(medication) for medication in answer)
            elif link_id in _LIST_LINKS:
                facts[link_id] = tuple(answer)
            else:
                facts[link_id] = answer
    return facts


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


def _prebuilt(rule: kb.Rule) -> FiredRule | None:
    """The finding itself, when the trigger always cites the same answers."""
    constant = None if rule.when is None else rule.when.constant_evidence()
    return None if constant is None else _finding(rule, constant)


#: Findings built once (results are immutable, so shared).
_PREBUILT_FINDINGS = tuple(_prebuilt(rule) for rule in kb.RULES)


def _fired_rules(facts: Facts, positions: list[int], unknown: tuple[str, ...]) -> list[FiredRule]:
    if unknown:
        positions = sorted([*positions, SCREEN_RULE])
    fired: list[FiredRule] = []
    for position in positions:  # table order is most urgent first
        rule = kb.RULES[position]
        if rule.when is None:  # RF-SCREEN-INCOMPLETE: the unknown items are its evidence
            fired.append(_finding(rule, tuple(Answer(link, None, link) for link in unknown)))
            continue
        finding = _PREBUILT_FINDINGS[position]
        if finding is None:
            finding = _finding(rule, unique_answers(rule.when.evidence(facts)))
        fired.append(finding)
    return fired


def _plural(count: float, unit: str) -> str:
    return f"{count:g} {unit}" if count == 1 else f"{count:g} {unit}s"


def _medication_points(line: kb.PerMedication, facts: Facts) -> list[FactorPoint]:
    points = []
    for index, medication in enumerate(facts.get(MEDICATIONS) or ()):
        if medication["class"] not in line.classes:
            continue
        days = medication.get("days_since_start")
        recent = days is not None and days <= line.recent_days
        name = _CLASS_DISPLAY[medication["class"]]
        label = (
            f"{name}, started {_plural(days, 'day')} ago"
            if days is not None
            else f"{name}, start date unknown"
        )
        evidence = medication_answers(index, medication, ("class", "days_since_start"))
        points.append(
            FactorPoint(line.recent_points if recent else line.other_points, label, tuple(evidence))
        )
    return points


class _Line(NamedTuple):
    """One scoring line (in ``LINES`` order) with what scoring it needs, looked up at load."""

    factor_position: int
    #: The line's trigger test, or None for a per-medication line.
    test: Callable[[Facts], Tri] | None
    evidence: Callable[[Facts], list[Answer]] | None
    #: The scored point itself, when its evidence never varies (results are immutable).
    prebuilt: FactorPoint | None
    points: int
    label: str
    per_medication: kb.PerMedication | None


def _line(factor_position: int, line: kb.Points | kb.PerMedication) -> _Line:
    if isinstance(line, kb.PerMedication):
        return _Line(factor_position, None, None, None, 0, line.text, line)
    constant = line.when.constant_evidence()
    prebuilt = None if constant is None else FactorPoint(line.points, line.text, constant)
    return _Line(
        factor_position, line.when.test, line.when.evidence, prebuilt, line.points, line.text, None
    )


_LINE_TABLE = tuple(_line(f, kb.FACTORS[f].points[p]) for f, p in LINES)
#: Per factor position: its level gate and its "only when" test (None: no such gate).
_GATES = tuple(
    (factor.only_at_level, factor.only_when.test if factor.only_when is not None else None)
    for factor in kb.FACTORS
)


def _gate_open(factor_position: int, facts: Facts, level: Level) -> bool:
    """May the factor score at all (its level and "only when" gates)?"""
    only_at_level, only_when = _GATES[factor_position]
    if only_at_level is not None and only_at_level is not level:
        return False
    return only_when is None or only_when(facts) is True


def _factors(facts: Facts, level: Level) -> tuple[ReportedFactor, ...]:
    breakdowns: dict[int, list[FactorPoint]] = {}
    gates: dict[int, bool] = {}
    for flat in LINE_INDEX.candidates(facts):
        factor_position, test, evidence, prebuilt, points, label, per_medication = _LINE_TABLE[flat]
        gate = gates.get(factor_position)
        if gate is None:
            gate = gates[factor_position] = _gate_open(factor_position, facts, level)
        if not gate:
            continue
        if per_medication is not None:
            scored = _medication_points(per_medication, facts)
            if scored:
                breakdowns.setdefault(factor_position, []).extend(scored)
            continue
        assert test is not None  # noqa: S101 - a Points line always has a trigger
        assert evidence is not None  # noqa: S101
        if test(facts) is not True:
            continue
        point = prebuilt
        if point is None:
            point = FactorPoint(points, label, unique_answers(evidence(facts)))
        breakdown = breakdowns.get(factor_position)
        if breakdown is None:
            breakdowns[factor_position] = [point]
        else:
            breakdown.append(point)
    reported = []
    for position, breakdown in breakdowns.items():
        factor = kb.FACTORS[position]
        total = sum(point.points for point in breakdown)
        reported.append(
            (
                (-total, position),
                ReportedFactor(
                    code=factor.code,
                    display=factor.display,
                    rationale=factor.rationale,
                    points=total,
                    likelihood=Likelihood.for_points(total),
                    breakdown=tuple(breakdown),
                    condition=factor.condition,
                ),
            )
        )
    reported.sort(key=_FIRST)  # most points first, ties in table order
    return tuple(factor for _, factor in reported)


_FIRST = itemgetter(0)


def _advise(
    facts: Facts,
    level: Level,
    rule_ids: frozenset[str],
    factor_codes: frozenset[str],
) -> tuple[GivenAdvice, ...]:
    given: list[GivenAdvice] = []
    given_codes: set[str] = set()
    for advice in kb.ADVICE:
        by_level = level in advice.levels
        by_rules = not advice.rules.isdisjoint(rule_ids)
        by_factors = not advice.factors.isdisjoint(factor_codes)
        by_answers = advice.when is not None and advice.when.test(facts) is True
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
        if by_answers and advice.when is not None:
            because.extend(a.path for a in unique_answers(advice.when.evidence(facts)))
        text = advice.variant_text if advice.variant_rules & rule_ids else advice.text
        given.append(GivenAdvice(advice.code, advice.display, text, tuple(because)))
        given_codes.add(advice.code)
    return tuple(given)


def evaluate(request: Mapping[str, Any]) -> TriageResult:
    """Triage one validated request (PROTOCOL.md §3 shape) into a TriageResult."""
    facts = flatten(request)
    unknown = unanswered(facts)
    positions = fired_positions(facts)
    fired = _fired_rules(facts, positions, unknown)
    level = max((finding.level for finding in fired), default=Level.SELF_CARE)
    factors = _factors(facts, level)
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
        unanswered=unknown,
        knowledge_base_version=kb.KNOWLEDGE_BASE_VERSION,
        decisive=DecisiveQuestions(partial(decisive_questions, facts, positions, unknown))
        if unknown
        else (),
    )
