"""Decisive questions (PROTOCOL.md §8) against brute force: answer each unknown
screen item with every candidate, re-evaluate the whole request, compare."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from engine_cases import request, screened
from examples import EXAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import requests, value_for

from triage import decisive, evaluate
from triage import knowledge_base as kb
from triage.decisive import CANDIDATES, clear_memo
from triage.result import Level
from triage.vocabulary import ITEMS, Kind


def _answered(req: dict[str, Any], link_id: str, answer: Any) -> dict[str, Any]:
    """A copy of the request with one answer set, lists as JSON lists."""
    out = copy.deepcopy(req)
    value = (
        [dict(m) if isinstance(m, dict) else m for m in answer]
        if isinstance(answer, tuple)
        else answer
    )
    section, _, name = link_id.partition(".")
    if not name:
        out[section] = value
    else:
        body = out.get(section) or {}
        out[section] = body
        body[name] = value
    return out


def _brute_force_answers(link_id: str) -> tuple[Any, ...]:
    """Every candidate, and for a yes/no item both answers whatever the engine prunes."""
    if ITEMS[link_id].kind is Kind.BOOLEAN:
        return (True, False)
    return CANDIDATES[link_id]


def _check(req: dict[str, Any]) -> None:
    result = evaluate(req)
    assert [q.link_id for q in result.decisive] == list(result.unanswered)
    now = set(result.rule_ids)
    for question in result.decisive:
        levels = [
            (answer, evaluate(_answered(req, question.link_id, answer)).level)
            for answer in _brute_force_answers(question.link_id)
        ]
        top = max(level for _, level in levels)
        assert question.level == top, question
        # The first candidate that reaches the most urgent level is the one reported.
        assert question.answer == next(answer for answer, level in levels if level == top)
        chosen = evaluate(_answered(req, question.link_id, question.answer))
        assert chosen.level == question.level
        new_rules = [r for r in chosen.rule_ids if r not in now and r != "RF-SCREEN-INCOMPLETE"]
        assert list(question.rule_ids) == new_rules, question


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_decisive_questions_agree_with_full_re_evaluation(req):
    _check(req)


@pytest.mark.parametrize("case", [case for _, case in EXAMPLES], ids=[n for n, _ in EXAMPLES])
def test_decisive_questions_of_the_examples_agree_with_brute_force(case):
    _check(case["request"])


def test_the_seed_as_asked_shows_which_answer_calls_an_ambulance():
    case = dict(EXAMPLES)["seed-roller-skater-as-asked"]
    result = evaluate(case["request"])
    assert result.level is Level.CONSULTATION
    by_item = {q.link_id: q for q in result.decisive}
    assert len(by_item) == len(result.unanswered) == 27
    confusion = by_item["symptoms.confusion"]
    assert (confusion.answer, confusion.level) == (True, Level.EMERGENCY_AMBULANCE)
    assert "RF-CONFUSION" in confusion.rule_ids
    neck = by_item["symptoms.neck_pain"]  # falls: neck pain alone is a fall neck injury
    assert neck.answer is True
    assert "RF-FALL-NECK-PAIN" in neck.rule_ids
    dizzy = by_item["symptoms.dizziness"]  # falls: concussion symptoms (1.1)
    assert "RF-CONCUSSION-SYMPTOMS" in dizzy.rule_ids


def test_a_list_item_proposes_one_listed_value():
    result = evaluate(screened(history={"head_impact": True}))
    medications = next(q for q in result.decisive if q.link_id == "history.medications")
    assert medications.answer == ({"class": "anticoagulant"},)
    assert medications.level is Level.EMERGENCY
    assert medications.rule_ids == ("RF-HEAD-ANTICOAGULATED",)


def test_a_number_proposes_a_value_at_a_threshold():
    cramps = screened(symptoms={"muscle_cramps": True})
    question = next(q for q in evaluate(cramps).decisive if q.link_id == "twitching.cramp_minutes")
    assert question.answer == 60
    assert question.rule_ids == ("RF-PROLONGED-CRAMP",)
    assert question.level is Level.EMERGENCY


def test_no_unknown_items_no_decisive_questions():
    assert evaluate(screened()).decisive == ()


def test_decisive_questions_never_change_the_level_of_the_request():
    req = request()
    assert evaluate(req).level is Level.CONSULTATION
    assert all(q.level >= Level.CONSULTATION for q in evaluate(req).decisive)


def test_decisive_questions_do_not_change_when_the_request_is_changed_afterwards():
    req = request(history={"medications": [{"class": "statin", "days_since_start": 400}]})
    result = evaluate(req)
    expected = evaluate(copy.deepcopy(req)).decisive
    req["history"]["medications"][0]["class"] = "anticoagulant"
    req["symptoms"] = {"confusion": True}
    assert result.decisive == tuple(expected)


# --- the memo (triage.decisive memoises each question on the answers its rules read) -----

#: Every answer some rule that reads a screen item reads: what a memoised question depends on.
_READ_BY_READERS = sorted(
    {
        link_id
        for rule in kb.RULES
        if rule.when is not None
        for link_id in rule.when.link_ids() | (rule.unless.link_ids() if rule.unless else set())
        if link_id in ITEMS and not link_id.startswith("history.medications.")
    }
)


def _changed(draw: st.DrawFn, req: dict[str, Any]) -> dict[str, Any]:
    """A copy of the request with one answer those rules read set (or made unknown)."""
    link_id = draw(st.sampled_from(_READ_BY_READERS))
    return _answered(req, link_id, draw(st.none() | value_for(ITEMS[link_id])))


@st.composite
def neighbours(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Requests one answer apart: they share most of each question's signature.

    The first is a drawn request, or a small one (many screen items unknown) with a
    few answers those rules read; each next one changes one answer of an earlier one.
    """
    if draw(st.booleans()):
        base = draw(requests())
    else:
        base = request()
        for _ in range(draw(st.integers(0, 6))):
            base = _changed(draw, base)
    out = [base]
    for _ in range(draw(st.integers(1, 8))):
        out.append(_changed(draw, out[draw(st.integers(0, len(out) - 1))]))
    return out


def _fresh(req: dict[str, Any]) -> tuple[Any, ...]:
    clear_memo()
    return tuple(evaluate(req).decisive)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(neighbours())
def test_a_memoised_question_is_the_question_worked_out_afresh(reqs):
    expected = [_fresh(req) for req in reqs]
    clear_memo()
    pairs = list(zip(reqs, expected, strict=True))
    for req, fresh in [*pairs, *reversed(pairs)]:  # warm, then in the other order
        assert tuple(evaluate(req).decisive) == fresh


def test_a_yes_no_answer_that_is_not_a_bool_is_never_served_from_the_memo():
    """``1 == True`` as dict keys, but a rule tests ``is True``: such a request (only a
    caller bypassing the schema sends one) is worked out afresh."""
    as_bool = request(symptoms={"headache": True})
    as_int = request(symptoms={"headache": 1})
    fresh = _fresh(as_int)
    by_item = {q.link_id: q for q in _fresh(as_bool)}
    # The head-impact question of the two differs, on equal memo keys.
    assert by_item["history.head_impact"] != next(
        q for q in fresh if q.link_id == "history.head_impact"
    )
    clear_memo()
    assert len(evaluate(as_bool).decisive) > 0  # computes (and memoises) every question
    assert tuple(evaluate(as_int).decisive) == fresh


def test_the_memo_is_bounded(monkeypatch):
    monkeypatch.setattr(decisive, "MEMO_SIZE", 3)
    clear_memo()
    for minutes in range(10):
        len(evaluate(request(patient={"age_years": 10 + minutes})).decisive)
    assert all(len(plan.memo) <= 3 for plan in decisive._PLANS.values())
    assert max(len(plan.memo) for plan in decisive._PLANS.values()) > 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_the_answer_shown_is_a_listed_value_or_a_threshold(req):
    """§8: "for a list, one listed value such as anticoagulant; for a number or enum, a
    value at a rule's threshold" — also when no answer escalates (then the first
    candidate tried is shown: never ``[]``, never a value beside a threshold)."""
    for question in evaluate(req).decisive:
        kind = ITEMS[question.link_id].kind
        if kind in (Kind.CODES, Kind.GROUP):
            assert question.answer != (), question
        elif kind in (Kind.INTEGER, Kind.DECIMAL) and question.level <= evaluate(req).level:
            assert question.answer in decisive._thresholds(question.link_id), question


def test_a_case_nothing_escalates_still_shows_a_medication_and_a_threshold():
    """Confusion already calls an ambulance: the unknown items' answers cannot escalate,
    and what is shown for them is still an answer §8 describes."""
    symptoms = {"confusion": True, "muscle_cramps": True, "hand_foot_spasm": True}
    shown = {q.link_id: q.answer for q in evaluate(request(symptoms=symptoms)).decisive}
    first_class = ITEMS["history.medications.class"].codes[0].code
    assert shown["history.medications"] == ({"class": first_class},)
    assert shown["history.conditions"] == (ITEMS["history.conditions"].codes[0].code,)
    assert shown["twitching.cramp_minutes"] in decisive._thresholds("twitching.cramp_minutes")
