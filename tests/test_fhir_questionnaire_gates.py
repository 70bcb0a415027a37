"""A form can say "none": the yes/no questions that open medications and conditions (§9).

The issue: a renderer could not record "no medications" or "no conditions", so a
completed form lost a head-impact case's screen answer. "No" must mean the empty
list, a bare "yes" must stay unknown (it is not "none"), and a listed member must
always count.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from examples import EXAMPLES
from hypothesis import given
from hypothesis import strategies as st

from api.fhir import QuestionnaireResponseError, questionnaire_response_to_request
from api.fhir import codesystems as cs
from api.fhir.questionnaire_response import GATES
from triage import KNOWLEDGE_BASE_VERSION
from triage.vocabulary import ITEMS

BASE = cs.DEFAULT_CANONICAL_BASE
OP = "/fhir/QuestionnaireResponse/$triage"
MEDS = "history.medications.any"
CONDITIONS = "history.conditions.any"
CONDITION_SYSTEM = cs.codesystem_url(BASE, cs.item_codesystem_id("history.conditions"))
CLASS_SYSTEM = cs.codesystem_url(BASE, cs.item_codesystem_id("history.medications.class"))
AGE = {"linkId": "patient.age_years", "answer": [{"valueInteger": 30}]}


def _qr(*items: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": cs.questionnaire_canonical(BASE, KNOWLEDGE_BASE_VERSION),
        "status": "completed",
        "item": [AGE, *items],
    }


def _gate(link_id: str, answer: bool | None) -> dict[str, Any]:
    item: dict[str, Any] = {"linkId": link_id}
    if answer is not None:
        item["answer"] = [{"valueBoolean": answer}]
    return item


def _conditions(*codes: str) -> dict[str, Any]:
    item: dict[str, Any] = {"linkId": "history.conditions"}
    if codes:
        item["answer"] = [{"valueCoding": {"system": CONDITION_SYSTEM, "code": c}} for c in codes]
    return item


def _medication(klass: str | None) -> dict[str, Any]:
    group: dict[str, Any] = {"linkId": "history.medications"}
    if klass is not None:
        group["item"] = [
            {
                "linkId": "history.medications.class",
                "answer": [{"valueCoding": {"system": CLASS_SYSTEM, "code": klass}}],
            }
        ]
    return group


def _history(*items: dict[str, Any]) -> dict[str, Any] | None:
    return questionnaire_response_to_request(_qr(*items), canonical_base=BASE).get("history")


def test_gates_open_vocabulary_lists_and_are_not_vocabulary_paths():
    assert set(GATES.values()) == {"history.medications", "history.conditions"}
    assert not set(GATES) & set(ITEMS)


def test_no_means_the_empty_list():
    assert _history(_gate(MEDS, False), _gate(CONDITIONS, False)) == {
        "medications": [],
        "conditions": [],
    }
    # With the list item a renderer may still send (empty), no changes nothing.
    assert _history(_gate(MEDS, False), _medication(None)) == {"medications": []}
    assert _history(_gate(CONDITIONS, False), _conditions()) == {"conditions": []}


def test_yes_without_a_listed_member_is_unknown_not_none():
    assert _history(_gate(MEDS, True)) is None
    assert _history(_gate(CONDITIONS, True)) is None
    # An empty list item would otherwise mean none; after a yes it cannot.
    assert _history(_gate(MEDS, True), _medication(None)) is None
    assert _history(_gate(CONDITIONS, True), _conditions()) is None


def test_unanswered_gate_keeps_todays_convention():
    assert _history(_gate(MEDS, None)) is None
    assert _history(_gate(MEDS, None), _medication(None)) == {"medications": []}
    assert _history(_gate(CONDITIONS, None), _conditions()) == {"conditions": []}


@given(
    st.lists(st.sampled_from([c.code for c in ITEMS["history.conditions"].codes]), unique=True),
    st.lists(st.sampled_from([c.code for c in ITEMS["history.medications.class"].codes])),
    st.sampled_from([True, False, None]),
)
def test_listed_members_always_count_whatever_the_gate(conditions, classes, gate):
    items = [_gate(CONDITIONS, gate), _gate(MEDS, gate)]
    if conditions:
        items.append(_conditions(*conditions))
    items += [_medication(klass) for klass in classes]
    history = _history(*items) or {}
    if conditions:
        assert history["conditions"] == conditions
    if classes:
        assert [m["class"] for m in history["medications"]] == classes
    if gate is False:
        assert history["conditions"] == conditions
        assert [m["class"] for m in history["medications"]] == classes
    if gate is True:
        assert ("conditions" in history) is bool(conditions)
        assert ("medications" in history) is bool(classes)


def test_a_gate_takes_one_boolean_once():
    with pytest.raises(QuestionnaireResponseError, match="appears twice") as twice:
        _history(_gate(MEDS, False), _gate(MEDS, False))
    assert twice.value.expression == "QuestionnaireResponse.item[2]"
    with pytest.raises(QuestionnaireResponseError, match="wrong type") as wrong:
        _history({"linkId": MEDS, "answer": [{"valueBoolean": "no"}]})
    assert wrong.value.link_id == MEDS
    with pytest.raises(QuestionnaireResponseError):
        _history({"linkId": MEDS, "answer": [{"valueCoding": {"code": "N"}}]})


def _unanswered_and_level(bundle: dict[str, Any]) -> tuple[str, list[str]]:
    level = bundle["entry"][1]["resource"]
    unanswered = [
        c["valueCodeableConcept"]["coding"][0]["code"]
        for c in level.get("component", [])
        if c["code"]["coding"][0]["code"] == "unanswered-screen-item"
    ]
    return level["valueCodeableConcept"]["coding"][0]["code"], unanswered


def test_the_issue_case_a_head_impact_form_saying_no_medicines(client):
    """The issue's case: "no medications" on a form gives what /v1/triage gives for []."""
    name, case = next(
        (name, case)
        for name, case in EXAMPLES
        if case["request"].get("history", {}).get("head_impact")
        and case["request"]["history"].get("medications") == []
    )
    direct = client.post("/v1/triage", json=case["request"]).json
    qr = copy.deepcopy(direct["entry"][0]["resource"])
    # Our own responses say "none" with the yes/no question too: form it afresh here.
    items = [i for i in qr["item"] if i["linkId"] not in ("history.medications", MEDS)]
    at = next(n for n, i in enumerate(items) if i["linkId"].startswith("history."))
    items.insert(at, _gate(MEDS, False))
    qr["item"] = items
    response = client.post(OP, data=json.dumps(qr), content_type="application/fhir+json")
    assert response.status_code == 200, response.data[:500]
    assert _unanswered_and_level(response.json) == _unanswered_and_level(direct), name
    assert "history.medications" not in _unanswered_and_level(response.json)[1]
    # A bare yes leaves medications unknown, so the screen asks for them again.
    qr["item"][at] = _gate(MEDS, True)
    asked = client.post(OP, data=json.dumps(qr), content_type="application/fhir+json").json
    assert "history.medications" in _unanswered_and_level(asked)[1]
