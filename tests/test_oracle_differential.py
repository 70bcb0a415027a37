"""Differential test: the engine against an independent reading of PROTOCOL.md 1.1.

``tests/oracle/protocol_oracle.py`` implements the protocol naively from its text
alone. For generated valid requests the engine and the oracle must agree on the
level, the set of fired rules, the unanswered screen items (in order), the
reported factors (code and points, in order), the advice codes (in order) and
the §8 decisive questions (per unknown screen item, in order: the linkId, the
level, and the answer — yes for a yes/no item, the same value where only one
candidate reaches the level, and in every case an answer that, put into the
request, gives that level according to the oracle).

Three generators: the vocabulary-driven ``strategies.requests()`` (uniform over
the whole request space), ``oracle.trigger_strategy.trigger_requests()`` (biased
towards firing rules and opening the §5 follow-up rows: screen answered, few
symptoms true, numbers at thresholds, head impact, falls, headache,
palpitations, cramps in hard exercise, listed risk medicines and conditions,
heat, EAH risk) and ``oracle.trigger_strategy.edge_requests()`` (small domains
on the fields of the "unless …" exceptions and the derived terms).

Each generator's requests are all compared before the test fails, so a failure
reports how many requests disagree, on which parts, and the first few requests
with the engine's and the oracle's answers side by side. Derandomized (seeded)
so CI is stable; no shrinking (the report shows real, varied requests).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError
from oracle.protocol_oracle import (
    ENUM_CANDIDATES,
    KNOWLEDGE_BASE_VERSION,
    LIST_CANDIDATES,
    NUMBER_CANDIDATES,
    decisive_questions,
    level_of,
    oracle,
    with_answer,
)
from oracle.trigger_strategy import edge_requests, trigger_requests
from strategies import requests

import triage
from schemas import load_triage_request
from triage import evaluate

#: Requests compared per generator in CI (§ "thousands of requests").
TRIGGER_EXAMPLES = 2000
EDGE_EXAMPLES = 800
VOCABULARY_EXAMPLES = 800
LOADED_EXAMPLES = 200
#: Disagreeing requests shown in full in a failure report.
SHOWN = 3

_SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)
PARTS = ("level", "rules", "unanswered", "factors", "advice", "decisive")


# --- the engine in the oracle's shape ------------------------------------------------------


def _code(value: Any) -> Any:
    """A level as its code, whether the engine gives an enum member or a string."""
    return getattr(value, "code", value)


def _engine_decisive(result: Any) -> list[dict[str, Any]] | None:
    """The engine's decisive questions as dicts, or None when the result has none."""
    questions = getattr(result, "decisive", None)
    if questions is None:
        questions = getattr(result, "decisive_questions", None)
    if questions is None:
        return None
    return [
        {"link_id": q.link_id, "level": _code(q.level), "answer": getattr(q, "answer", None)}
        for q in questions
    ]


def engine_view(request: dict[str, Any], *, with_decisive: bool) -> dict[str, Any]:
    """The engine's result in the oracle's shape."""
    result = evaluate(request)
    view = {
        "level": _code(result.level),
        "rules": set(result.rule_ids),
        "unanswered": list(result.unanswered),
        "factors": list(result.factor_points),
        "advice": list(result.advice_codes),
    }
    if with_decisive:
        view["decisive"] = _engine_decisive(result)
    return view


# --- comparing ------------------------------------------------------------------------------


def as_request_answer(link_id: str, answer: Any) -> Any:
    """An engine answer as the value to put into the request.

    §8 names "one listed value such as `anticoagulant`" for a list, so a bare
    class or condition (or a list of them) is accepted for the list items.
    """
    if link_id == "history.medications":
        values = answer if isinstance(answer, list | tuple) else [answer]
        return [v if isinstance(v, dict) else {"class": v} for v in values]
    if link_id == "history.conditions":
        return list(answer) if isinstance(answer, list | tuple) else [answer]
    return {"yes": True, "no": False}.get(answer, answer) if isinstance(answer, str) else answer


def decisive_differences(
    request: dict[str, Any], engine: list[dict[str, Any]] | None, expected: list[dict[str, Any]]
) -> list[str]:
    """Readable disagreements on the decisive questions (empty when they agree)."""
    if engine is None:
        return ["the engine's result has no decisive questions"]
    out: list[str] = []
    got_ids = [q["link_id"] for q in engine]
    want_ids = [q["link_id"] for q in expected]
    if got_ids != want_ids:
        return [f"items: engine {got_ids} != oracle {want_ids}"]
    for got, want in zip(engine, expected, strict=True):
        link_id = got["link_id"]
        if got["level"] != want["level"]:
            out.append(
                f"{link_id}: level engine {got['level']} (answer {got['answer']!r}) != "
                f"oracle {want['level']} (answers {want['answers']!r})"
            )
            continue
        is_yes_no = not (
            link_id in NUMBER_CANDIDATES or link_id in ENUM_CANDIDATES or link_id in LIST_CANDIDATES
        )
        answer = as_request_answer(link_id, got["answer"])
        if is_yes_no and answer is not True:
            out.append(f"{link_id}: answer engine {got['answer']!r} != yes")
            continue
        unambiguous = link_id not in NUMBER_CANDIDATES and len(want["answers"]) == 1
        if unambiguous and answer != want["answers"][0]:
            out.append(f"{link_id}: answer engine {answer!r} != oracle {want['answers'][0]!r}")
            continue
        reached = level_of(with_answer(request, link_id, answer))
        if reached != want["level"]:
            out.append(
                f"{link_id}: the engine's answer {answer!r} gives {reached} per the oracle, "
                f"not {want['level']}"
            )
    return out


def _part_difference(engine: Any, expected: Any) -> Any:
    """What differs in one part: the level side by side; for sets and lists what only
    one side has, and both lists in full when only their order differs."""
    if isinstance(engine, set | list) and isinstance(expected, set | list):
        engine_only = [x for x in engine if x not in expected]
        oracle_only = [x for x in expected if x not in engine]
        if engine_only or oracle_only:
            return {"engine_only": sorted(engine_only), "oracle_only": sorted(oracle_only)}
        return {"order: engine": engine, "oracle": expected}
    return {"engine": engine, "oracle": expected}


def differences(request: dict[str, Any], *, with_decisive: bool = True) -> dict[str, Any]:
    """Every part on which engine and oracle disagree, readably; {} when they agree."""
    expected = oracle(request)
    try:
        got = engine_view(request, with_decisive=with_decisive)
    except Exception as error:  # a crash is reported as a disagreement, not raised
        return {"engine": f"raised {type(error).__name__}: {error}"}
    out: dict[str, Any] = {}
    for part in PARTS[:-1]:
        if got[part] != expected[part]:
            out[part] = _part_difference(got[part], expected[part])
    if with_decisive:
        decisive = decisive_differences(request, got["decisive"], decisive_questions(request))
        if decisive:
            out["decisive"] = decisive
    return out


def report(name: str, compared: int, failures: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """How many requests disagree, on which parts, and the first few in full."""
    by_part = Counter(part for _, diff in failures for part in diff)
    lines = [
        f"{name}: {len(failures)} of {compared} requests disagree "
        f"(by part: {dict(by_part.most_common())})",
    ]
    distinct: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for request, diff in failures:  # hypothesis repeats small requests; show each once
        distinct.setdefault(json.dumps(request, sort_keys=True), (request, diff))
    for number, (request, diff) in enumerate(list(distinct.values())[:SHOWN], 1):
        lines.append(f"--- disagreement {number}")
        lines.append(f"request: {json.dumps(request, sort_keys=True)}")
        lines.extend(f"  {part}: {detail}" for part, detail in diff.items())
    return "\n".join(lines)


def compare_all(
    name: str,
    strategy: st.SearchStrategy[dict[str, Any]],
    examples: int,
    *,
    load: bool = False,
    with_decisive: bool = True,
) -> None:
    """Compare engine and oracle on every generated request, then fail with a report."""
    compared: list[int] = []
    failures: list[tuple[dict[str, Any], dict[str, Any]]] = []

    @settings(_SETTINGS, max_examples=examples)
    @given(strategy)
    def explore(request: dict[str, Any]) -> None:
        compared.append(1)
        if load:
            try:
                request = load_triage_request(json.loads(json.dumps(request)))
            except ValidationError as error:
                failures.append((request, {"schema": f"rejects the request: {error}"}))
                return
        diff = differences(request, with_decisive=with_decisive)
        if diff:
            failures.append((request, diff))

    explore()
    assert len(compared) >= examples // 2, f"{name}: only {len(compared)} requests generated"
    assert not failures, report(name, len(compared), failures)


# --- the tests ------------------------------------------------------------------------------


def test_decisive_comparison_accepts_the_oracle_and_catches_a_wrong_level() -> None:
    """The comparison itself can fail: the oracle's own questions pass, a lowered
    level, a "no" for a yes/no item and an answer that does not reach the level fail."""
    request = {
        "patient": {"age_years": 30},
        "twitching": {"body_sites": ["calf"]},
        "history": {"medications": [{"class": "insulin_or_sulfonylurea"}]},
    }
    expected = decisive_questions(request)
    own = [{"link_id": q["link_id"], "level": q["level"], "answer": q["answer"]} for q in expected]
    assert decisive_differences(request, own, expected) == []
    first = own[0]
    assert first["link_id"] == "symptoms.confusion"
    lowered = [{**first, "level": "consultation"}, *own[1:]]
    assert decisive_differences(request, lowered, expected)
    no = [{**first, "answer": False}, *own[1:]]
    assert decisive_differences(request, no, expected)
    glucose = next(q for q in own if q["link_id"] == "blood_glucose_mmol_l")
    assert glucose["level"] == "emergency"
    wrong = [{**q, "answer": 6.0} if q is glucose else q for q in own]
    assert decisive_differences(request, wrong, expected)
    assert decisive_differences(request, own[1:], expected)
    assert decisive_differences(request, None, expected)


def test_engine_knowledge_base_version_is_the_protocol_version() -> None:
    assert triage.KNOWLEDGE_BASE_VERSION == KNOWLEDGE_BASE_VERSION


def test_engine_agrees_with_oracle_on_rule_triggering_requests() -> None:
    compare_all("trigger_requests", trigger_requests(), TRIGGER_EXAMPLES)


def test_engine_agrees_with_oracle_on_exception_edges() -> None:
    compare_all("edge_requests", edge_requests(), EDGE_EXAMPLES)


def test_engine_agrees_with_oracle_on_vocabulary_requests() -> None:
    compare_all("requests", requests(), VOCABULARY_EXAMPLES)


def test_trigger_strategy_is_valid_and_loaded_requests_agree() -> None:
    """The biased generator stays inside the §3 schema (the loader raises
    otherwise), and the engine gives the same answer on the request the API would
    load from it (nulls dropped)."""
    compare_all(
        "loaded trigger_requests",
        trigger_requests(),
        LOADED_EXAMPLES,
        load=True,
        with_decisive=False,
    )
