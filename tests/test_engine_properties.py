"""Properties that hold for every request (PROTOCOL.md §2, §5, §5a, §6, §7, §8)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import BOOLEAN_ITEMS, requests

from triage import evaluate
from triage import knowledge_base as kb
from triage.conditions import AllOf, AnyOf, Condition, NotEstablished, Term
from triage.engine import flatten
from triage.firing import LINE_INDEX, LINES, ROW_INDEX, fired_positions
from triage.result import Level, Likelihood
from triage.vocabulary import CONDITIONS, MEDICATION_CLASSES, REGIONS

PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
REASSURING_BOOLEANS = {"twitching.suppressible", "twitching.urge_before"}
RULE_INDEX = {rule.id: index for index, rule in enumerate(kb.RULES)}
RULE_LEVEL = {rule.id: rule.level for rule in kb.RULES}
FACTOR_INDEX = {factor.code: index for index, factor in enumerate(kb.FACTORS)}
ADVICE_INDEX = {advice.code: index for index, advice in enumerate(kb.ADVICE)}


def _with_answer(request: dict[str, Any], link_id: str, value: Any) -> dict[str, Any]:
    """A copy of ``request`` with one answer set (``...`` removes it: unknown)."""
    out = copy.deepcopy(request)
    section, name = link_id.split(".")
    body = out.get(section) or {}
    out[section] = body
    if value is ...:
        body.pop(name, None)
    else:
        body[name] = value
    return out


def _answer_at(request: dict[str, Any], path: str) -> Any:
    """The request value at an evidence path such as ``history.medications[1].class``."""
    node: Any = request
    for part in path.replace("]", "").split("."):
        name, _, index = part.partition("[")
        node = node[name]
        if index:
            node = node[int(index)]
    return node


@PROPERTY_SETTINGS
@given(requests())
def test_evaluation_is_deterministic_and_does_not_touch_the_request(request):
    before = copy.deepcopy(request)
    first = evaluate(request)
    assert request == before
    assert evaluate(copy.deepcopy(request)) == first


@PROPERTY_SETTINGS
@given(requests())
def test_level_is_the_most_urgent_fired_rule(request):
    result = evaluate(request)
    if result.rules:
        assert result.level == max(rule.level for rule in result.rules)
    else:
        assert result.level is Level.SELF_CARE
    order = [(-RULE_LEVEL[i], RULE_INDEX[i]) for i in result.rule_ids]
    assert order == sorted(order)
    assert len(set(result.rule_ids)) == len(result.rule_ids)


@PROPERTY_SETTINGS
@given(requests())
def test_every_finding_carries_the_answers_that_triggered_it(request):
    result = evaluate(request)
    for finding in result.rules:
        assert finding.evidence, finding.rule_id
        for answer in finding.evidence:
            if finding.rule_id == "RF-SCREEN-INCOMPLETE":
                assert answer.value is None
                continue
            got = _answer_at(request, answer.path)
            if isinstance(got, list):
                assert answer.value in got
            else:
                assert got == answer.value, (finding.rule_id, answer)


@PROPERTY_SETTINGS
@given(requests())
def test_screen_items_are_unknown_items_in_protocol_order(request):
    result = evaluate(request)
    facts = flatten(request)
    order = [item.link_id for item in kb.SCREEN]
    # Each item once; the unconditional row first, in its table order.
    assert len(set(result.unanswered)) == len(result.unanswered)
    always = [link_id for link_id in result.unanswered if link_id in order[:15]]
    assert list(result.unanswered[: len(always)]) == sorted(always, key=order.index)
    assert all(link_id not in facts for link_id in result.unanswered)
    assert ("RF-SCREEN-INCOMPLETE" in result.rule_ids) == bool(result.unanswered)
    for link_id in order[:15]:  # the unconditional items
        assert (link_id in result.unanswered) == (link_id not in facts)


@PROPERTY_SETTINGS
@given(requests())
def test_factors_and_advice_are_consistent(request):
    result = evaluate(request)
    keys = [(-f.points, FACTOR_INDEX[f.code]) for f in result.factors]
    assert keys == sorted(keys)
    for factor in result.factors:
        assert factor.points >= 1
        assert factor.points == sum(point.points for point in factor.breakdown)
        assert factor.likelihood is Likelihood.for_points(factor.points)
    if result.level is not Level.SELF_CARE:
        assert "CF-BENIGN-FASCICULATION" not in dict(result.factor_points)
    codes = list(result.advice_codes)
    assert codes == sorted(codes, key=ADVICE_INDEX.__getitem__)
    assert codes[-1] == "ADV-SAFETY-NET"
    level_advice = {"ADV-CALL-AMBULANCE", "ADV-GO-TO-ED", "ADV-SEE-WITHIN-24H", "ADV-SEE-CLINICIAN"}
    assert len(level_advice & set(codes)) == (result.level is not Level.SELF_CARE)
    assert ("ADV-STOP-TRAINING" in codes) == (result.level is not Level.SELF_CARE)
    assert not {"ADV-HYDRATE", "ADV-DO-NOT-DRINK-MORE"} <= set(codes)


@PROPERTY_SETTINGS
@given(requests(), st.sampled_from(sorted(set(BOOLEAN_ITEMS) - REASSURING_BOOLEANS)))
def test_true_or_unknown_is_never_less_urgent_than_false(request, link_id):
    no = evaluate(_with_answer(request, link_id, False)).level
    assert evaluate(_with_answer(request, link_id, True)).level >= no
    assert evaluate(_with_answer(request, link_id, ...)).level >= no


@PROPERTY_SETTINGS
@given(
    requests(), st.sampled_from(sorted({s for r in REGIONS.values() for s in r} | {"whole_body"}))
)
def test_adding_a_body_site_is_never_less_urgent(request, site):
    sites = request["twitching"]["body_sites"]
    if site in sites:
        return
    more = _with_answer(request, "twitching.body_sites", [*sites, site])
    assert evaluate(more).level >= evaluate(request).level


@PROPERTY_SETTINGS
@given(
    requests(),
    st.sampled_from([c.code for c in CONDITIONS if c.code not in {"epilepsy", "tic_disorder"}]),
)
def test_adding_a_condition_other_than_epilepsy_or_tic_disorder_is_never_less_urgent(
    request, condition
):
    history = request.get("history") or {}
    listed = history.get("conditions") or []
    if condition in listed:
        return
    more = _with_answer(request, "history.conditions", [*listed, condition])
    assert (
        evaluate(more).level >= evaluate(_with_answer(request, "history.conditions", listed)).level
    )


@PROPERTY_SETTINGS
@given(
    requests(),
    st.fixed_dictionaries(
        {"class": st.sampled_from([c.code for c in MEDICATION_CLASSES])},
        optional={
            "days_since_start": st.sampled_from([0, 30, 90, 91, 1000]),
            "doses_per_day": st.sampled_from([1, 3.5, 4, 8]),
        },
    ),
)
def test_adding_a_medication_is_never_less_urgent(request, medication):
    history = request.get("history") or {}
    listed = history.get("medications") or []
    base = _with_answer(request, "history.medications", listed)
    more = _with_answer(request, "history.medications", [*listed, medication])
    assert evaluate(more).level >= evaluate(base).level


def _walk(condition: Condition | None):
    if condition is None:
        return
    yield condition
    if isinstance(condition, AnyOf | AllOf):
        for part in condition.parts:
            yield from _walk(part)
    elif isinstance(condition, NotEstablished):
        yield from _walk(condition.part)
    elif isinstance(condition, Term):
        yield from _walk(condition.definition)


ALL_CONDITIONS = [
    node
    for root in (
        *(c for rule in kb.RULES for c in (rule.when, rule.unless)),
        *(factor.only_when for factor in kb.FACTORS),
        *(line.when for factor in kb.FACTORS for line in factor.points if hasattr(line, "when")),
        *(advice.when for advice in kb.ADVICE),
        *(item.required_when for item in kb.SCREEN),
    )
    for node in _walk(root)
]


def _reference_fired(facts):
    """Rules that fire by the three-valued definitions: trigger True, exception not True."""
    return [
        position
        for position, rule in enumerate(kb.RULES)
        if (
            rule.when is not None
            and rule.when.test(facts) is True
            and not (rule.unless is not None and rule.unless.test(facts) is True)
        )
    ]


def _reference_scoring_lines(facts, self_care):
    hits = []
    for factor_position, factor in enumerate(kb.FACTORS):
        if factor.only_at_level is not None and not self_care:
            continue
        if factor.only_when is not None and factor.only_when.test(facts) is not True:
            continue
        for line_position, line in enumerate(factor.points):
            holds = (
                bool(facts.get("history.medications"))
                if isinstance(line, kb.PerMedication)
                else line.when.test(facts) is True
            )
            if holds:
                hits.append((factor_position, line_position))
    return hits


def _indexed_scoring_lines(facts, self_care):
    """The scoring lines the candidate index offers that hold, gates applied."""
    hits = []
    for flat in LINE_INDEX.candidates(facts):
        factor_position, line_position = LINES[flat]
        factor = kb.FACTORS[factor_position]
        if factor.only_at_level is not None and not self_care:
            continue
        if factor.only_when is not None and factor.only_when.test(facts) is not True:
            continue
        line = factor.points[line_position]
        holds = (
            bool(facts.get("history.medications"))
            if isinstance(line, kb.PerMedication)
            else line.when.test(facts) is True
        )
        if holds:
            hits.append((factor_position, line_position))
    return hits


@PROPERTY_SETTINGS
@given(requests(), st.booleans())
def test_the_candidate_index_never_misses_a_rule_or_a_scoring_line(request, self_care):
    """Testing only indexed candidates gives what testing every entry gives."""
    facts = flatten(request)
    assert fired_positions(facts) == _reference_fired(facts)
    assert _indexed_scoring_lines(facts, self_care) == _reference_scoring_lines(facts, self_care)


@PROPERTY_SETTINGS
@given(requests())
def test_the_screen_index_never_misses_a_row_that_holds(request):
    """Screen rows that hold are always candidates (asked twice: the second answer
    comes from the memo of the set of given answers)."""
    facts = flatten(request)
    rows = [p for p, row in enumerate(kb.SCREEN_ROWS) if row.when is None or row.when.test(facts)]
    for _ in range(2):
        assert set(rows) <= set(ROW_INDEX.candidates(facts))


def test_every_condition_node_names_known_fields():
    assert ALL_CONDITIONS
    for node in ALL_CONDITIONS:
        support = node.support()
        assert support is None or support <= node.link_ids() | {"history.medications"}, node
