"""The independent PROTOCOL.md 1.1 oracle reproduces every shared worked example.

If this fails, either the oracle misreads the protocol or the example is wrong;
the examples are shared and are never edited from here.
"""

from __future__ import annotations

from typing import Any

import pytest
from examples import EXAMPLE_IDS, EXAMPLES
from oracle.protocol_oracle import KNOWLEDGE_BASE_VERSION, decisive_questions, oracle

#: The expected fields this test knows how to compare; a new one must be added here.
KNOWN_FIELDS = {"level", "rules", "unanswered", "factors", "advice", "decisive", "version"}


def test_the_examples_are_the_1_1_ones() -> None:
    assert len(EXAMPLES) >= 8
    assert "seed-roller-skater-as-asked" in EXAMPLE_IDS


@pytest.mark.parametrize("case", [case for _, case in EXAMPLES], ids=EXAMPLE_IDS)
def test_oracle_reproduces_example(case: dict[str, Any]) -> None:
    expected = case["expected"]
    assert set(expected) <= KNOWN_FIELDS, f"uncompared fields: {set(expected) - KNOWN_FIELDS}"
    got = oracle(case["request"])
    assert got["level"] == expected["level"]
    assert got["rules"] == set(expected["rules"])
    assert got["unanswered"] == list(expected["unanswered"])
    assert got["factors"] == [(f["code"], f["points"]) for f in expected["factors"]]
    if "advice" in expected:
        assert got["advice"] == list(expected["advice"])
    if "version" in expected:
        assert expected["version"] == KNOWLEDGE_BASE_VERSION
    if "decisive" in expected:
        decisive = decisive_questions(case["request"])
        assert [(d["link_id"], d["level"]) for d in decisive] == [
            (d["link_id"], d["level"]) for d in expected["decisive"]
        ]


@pytest.mark.parametrize("case", [case for _, case in EXAMPLES], ids=EXAMPLE_IDS)
def test_decisive_questions_cover_the_unanswered_items(case: dict[str, Any]) -> None:
    """§8: one decisive question per unknown screen item, in screen order, never
    less urgent than the request itself (the item is unknown, so RF-SCREEN-INCOMPLETE
    fired; any answer keeps every other rule)."""
    got = oracle(case["request"])
    decisive = decisive_questions(case["request"])
    assert [d["link_id"] for d in decisive] == got["unanswered"]
    urgency = ("self_care", "consultation", "consultation_24", "emergency", "emergency_ambulance")
    for question in decisive:
        assert urgency.index(question["level"]) >= urgency.index("consultation")
