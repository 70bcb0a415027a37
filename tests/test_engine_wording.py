"""Clinician wording of the knowledge base (PROTOCOL.md §8): displays are short
clinical phrases, sources name public guidance, and no text shows rule syntax,
internal documents or ungrammatical counts."""

from __future__ import annotations

import re

import pytest
from engine_cases import request

from triage import evaluate
from triage import knowledge_base as kb

FORBIDDEN = re.compile(
    r"PROTOCOL|\.md\b|\.py\b|\bseeds?\b|§|section \d|[≥≤<>=]"
    r"|\b[a-z]+_[a-z0-9_]+\b"  # a field name such as rest_minutes_per_session
    r"|\b1 (?:days|points|hours|minutes|weeks|falls|sessions|units)\b",
    re.IGNORECASE,
)


def _texts() -> list[tuple[str, str]]:
    texts: list[tuple[str, str]] = []
    for rule in kb.RULES:
        texts += [(rule.id, rule.display), (rule.id, rule.rationale), (rule.id, rule.source)]
    for factor in kb.FACTORS:
        texts += [(factor.code, factor.display), (factor.code, factor.rationale)]
        texts += [(factor.code, line.text) for line in factor.points]
    for advice in kb.ADVICE:
        texts += [(advice.code, advice.display), (advice.code, advice.text)]
        if advice.variant_text:
            texts.append((advice.code, advice.variant_text))
    return texts


@pytest.mark.parametrize(("code", "text"), _texts())
def test_knowledge_base_text_is_clinical_prose(code, text):
    assert text.strip(), code
    match = FORBIDDEN.search(text)
    assert match is None, f"{code}: {match.group(0)!r} in {text!r}"


def test_the_pattern_catches_what_it_must():
    for bad in (
        "rest_minutes_per_session < 10 and session_minutes ≥ 60",
        "See PROTOCOL.md §5",
        "Seed 002",
        "started 1 days ago",
        "1 points",
    ):
        assert FORBIDDEN.search(bad), bad


def test_displays_are_short_phrases_and_sources_are_named():
    for rule in kb.RULES:
        assert len(rule.display) <= 70, rule.id
        assert not rule.display.endswith("."), rule.id
        assert rule.rationale.endswith("."), rule.id
    for factor in kb.FACTORS:
        assert len(factor.display) <= 40, factor.code
        for line in factor.points:
            assert line.text[0].isupper(), (factor.code, line.text)


@pytest.mark.parametrize(("days", "label"), [(1, "1 day"), (2, "2 days"), (0, "0 days")])
def test_medication_point_labels_count_grammatically(days, label):
    result = evaluate(
        request(history={"medications": [{"class": "statin", "days_since_start": days}]})
    )
    factor = next(f for f in result.factors if f.code == "CF-MEDICATION-EFFECT")
    assert factor.breakdown[0].label == f"Statin, started {label} ago"
    unknown = evaluate(request(history={"medications": [{"class": "serotonergic"}]}))
    factor = next(f for f in unknown.factors if f.code == "CF-MEDICATION-EFFECT")
    assert factor.breakdown[0].label == "Serotonergic medicine, start date unknown"
