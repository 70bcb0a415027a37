"""The worked cases of PROTOCOL.md: level, rules, unanswered items and factors exactly."""

from __future__ import annotations

import pytest
from examples import EXAMPLE_IDS, EXAMPLES

from triage import KNOWLEDGE_BASE_VERSION, evaluate


def test_the_examples_folder_is_read():
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize(("name", "case"), EXAMPLES, ids=EXAMPLE_IDS)
def test_example_gives_the_expected_result(name, case):
    result = evaluate(case["request"])
    expected = case["expected"]
    assert result.level.code == expected["level"], name
    # Rules are a set (PROTOCOL.md §2); the engine orders them most urgent first.
    assert sorted(result.rule_ids) == sorted(expected["rules"])
    assert len(result.rule_ids) == len(set(result.rule_ids))
    assert list(result.unanswered) == expected["unanswered"]
    assert [{"code": c, "points": p} for c, p in result.factor_points] == expected["factors"]
    assert result.knowledge_base_version == KNOWLEDGE_BASE_VERSION


@pytest.mark.parametrize(("name", "case"), EXAMPLES, ids=EXAMPLE_IDS)
def test_example_findings_carry_evidence_from_the_request(name, case):
    result = evaluate(case["request"])
    for finding in result.rules:
        assert finding.evidence, f"{name}: {finding.rule_id} has no evidence"
    for factor in result.factors:
        assert sum(point.points for point in factor.breakdown) == factor.points
        assert all(point.evidence for point in factor.breakdown), factor.code
    assert result.advice_codes[-1] == "ADV-SAFETY-NET"
