"""Differential test: the engine against an independent reading of PROTOCOL.md.

``tests/oracle/protocol_oracle.py`` implements the protocol naively from its text
alone. For generated valid requests the engine and the oracle must agree on the
level, the set of fired rules, the unanswered screen items (in order), the
reported factors (code and points, in order) and the advice codes (in order).

Three generators: the vocabulary-driven ``strategies.requests()`` (uniform over
the whole request space), ``oracle.trigger_strategy.trigger_requests()`` (biased
towards firing rules: screen answered, few symptoms true, numbers at thresholds,
head impact with follow-ups, tic patterns, medications with days and doses) and
``oracle.trigger_strategy.edge_requests()`` (small domains on the fields of the
"unless …" exceptions and the derived terms).
Derandomized so CI is stable; a large randomized exploration is run separately.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from oracle.protocol_oracle import oracle
from oracle.trigger_strategy import edge_requests, trigger_requests
from strategies import requests

from schemas import load_triage_request
from triage import evaluate

_SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def engine_view(request: dict[str, Any]) -> dict[str, Any]:
    """The engine's result in the oracle's shape."""
    result = evaluate(request)
    return {
        "level": result.level.code,
        "rules": set(result.rule_ids),
        "unanswered": list(result.unanswered),
        "factors": list(result.factor_points),
        "advice": list(result.advice_codes),
    }


def assert_agree(request: dict[str, Any]) -> None:
    """Engine and oracle agree on every compared part; report all differences."""
    expected = oracle(request)
    got = engine_view(request)
    differences = {
        part: {"engine": got[part], "oracle": expected[part]}
        for part in ("level", "rules", "unanswered", "factors", "advice")
        if got[part] != expected[part]
    }
    if "rules" in differences:
        differences["rules"] = {
            "engine_only": sorted(got["rules"] - expected["rules"]),
            "oracle_only": sorted(expected["rules"] - got["rules"]),
        }
    assert not differences, f"{differences}\nrequest: {json.dumps(request, sort_keys=True)}"


@settings(_SETTINGS, max_examples=3000)
@given(trigger_requests())
def test_engine_agrees_with_oracle_on_rule_triggering_requests(request: dict[str, Any]) -> None:
    assert_agree(request)


@settings(_SETTINGS, max_examples=1500)
@given(edge_requests())
def test_engine_agrees_with_oracle_on_exception_edges(request: dict[str, Any]) -> None:
    assert_agree(request)


@settings(_SETTINGS, max_examples=1500)
@given(requests())
def test_engine_agrees_with_oracle_on_vocabulary_requests(request: dict[str, Any]) -> None:
    assert_agree(request)


@settings(_SETTINGS, max_examples=300)
@given(trigger_requests())
def test_trigger_strategy_is_valid_and_loaded_requests_agree(request: dict[str, Any]) -> None:
    """The biased generator stays inside the §3 schema, and the engine gives the
    same answer on the request the API would load from it (nulls dropped)."""
    loaded = load_triage_request(json.loads(json.dumps(request)))
    assert_agree(loaded)
