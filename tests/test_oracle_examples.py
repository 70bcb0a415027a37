"""The independent PROTOCOL.md oracle reproduces every shared worked example.

If this fails, either the oracle misreads the protocol or the example is wrong;
the examples are shared and are never edited from here.
"""

from __future__ import annotations

from typing import Any

import pytest
from examples import EXAMPLE_IDS, EXAMPLES
from oracle.protocol_oracle import oracle


@pytest.mark.parametrize("case", [case for _, case in EXAMPLES], ids=EXAMPLE_IDS)
def test_oracle_reproduces_example(case: dict[str, Any]) -> None:
    expected = case["expected"]
    got = oracle(case["request"])
    assert got["level"] == expected["level"]
    assert got["rules"] == set(expected["rules"])
    assert got["unanswered"] == list(expected["unanswered"])
    assert got["factors"] == [(f["code"], f["points"]) for f in expected["factors"]]
    if "advice" in expected:
        assert got["advice"] == list(expected["advice"])
