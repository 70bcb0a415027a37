"""Fragments shared between responses are read-only; copies are ordinary JSON."""

from __future__ import annotations

import copy
import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.fhir import FhirContext, FhirSettings, render_triage_bundle
from api.fhir.frozen import FrozenDict, FrozenList, freeze
from triage import evaluate

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)

REQUEST = {
    "patient": {"age_years": 12, "reference": "Patient/p-1"},
    "twitching": {"body_sites": ["neck"], "timing": "after_exercise", "duration_days": 1},
    "symptoms": {"headache": True, "loss_of_balance": True},
    "history": {"head_impact": True, "falls_last_7_days": 3},
}


@given(JSON)
def test_freezing_keeps_the_json(value):
    frozen = freeze(value)
    assert frozen == value
    assert orjson.dumps(frozen) == orjson.dumps(value)
    assert json.dumps(frozen) == json.dumps(value)
    thawed = copy.deepcopy(frozen)
    assert thawed == value
    assert type(thawed) in (type(value), dict, list)


def test_every_mutation_of_a_frozen_container_raises():
    frozen = freeze({"a": [1, {"b": 2}]})
    assert isinstance(frozen, FrozenDict)
    assert isinstance(frozen["a"], FrozenList)
    for mutate in (
        lambda: frozen.__setitem__("c", 1),
        lambda: frozen.pop("a"),
        lambda: frozen.update(c=1),
        lambda: frozen.setdefault("c", 1),
        frozen.clear,
        lambda: frozen["a"].append(2),
        lambda: frozen["a"].__setitem__(0, 5),
        lambda: frozen["a"][1].__setitem__("b", 3),
        frozen["a"].sort,
    ):
        with pytest.raises(TypeError):
            mutate()
    assert frozen == {"a": [1, {"b": 2}]}


def test_an_edit_of_a_rendered_bundle_cannot_corrupt_the_next_one():
    context = FhirContext.build(FhirSettings())
    result = evaluate(REQUEST)

    def render() -> dict:
        return render_triage_bundle(
            REQUEST, result, settings=context.settings, tables=context.tables
        )

    first = render()
    before = orjson.dumps(render()["entry"][1]["resource"]["code"])
    level = first["entry"][1]["resource"]
    with pytest.raises(TypeError):
        level["code"]["coding"].append({"code": "x"})  # shared with every Bundle
    with pytest.raises(TypeError):
        level["method"]["coding"][0]["version"] = "edited"
    (headache,) = [
        item
        for item in first["entry"][0]["resource"]["item"]
        if item["linkId"] == "symptoms.headache"
    ]
    with pytest.raises(TypeError):
        headache["answer"][0]["valueBoolean"] = False  # a prebuilt yes/no item
    level["id"] = "assigned-by-storage"  # the resource itself is per request
    mutable = copy.deepcopy(first)
    mutable["entry"][1]["resource"]["code"]["coding"].append({"code": "x"})
    assert orjson.dumps(render()["entry"][1]["resource"]["code"]) == before


def test_published_resources_are_read_only():
    context = FhirContext.build(FhirSettings())
    questionnaire = context.catalog.get("Questionnaire", "twitch-triage-intake")
    with pytest.raises(TypeError):
        questionnaire["item"].pop()
