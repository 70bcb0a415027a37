"""A "yes" to "does the person take any regular medicines?" is never silently dropped.

``history.medications.any`` and ``history.conditions.any`` open their lists in the
intake Questionnaire and are no vocabulary paths. ``$triage`` reads a yes with nothing
listed as an unknown list (the screen asks for it again), and a listed member counts
whatever the yes/no says. Those answers cannot travel in the request the engine reads,
so they travel beside it: the output QuestionnaireResponse, its narrative, the stored
Bundle and the clinician report still show what the caller said, while the level, the
unanswered items and the decisive questions are exactly those of the request.

Every combination of yes/no ∈ {absent, yes, no} × list ∈ {absent, empty, members}, for
both lists, goes through the real app: ``$triage`` in, Bundle out, the output
QuestionnaireResponse checked against the Questionnaire and posted again.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import anonymous
from examples import EXAMPLES
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import requests
from test_fhir_interop_resources import QUESTIONNAIRE, answers_problems
from test_fhir_validator import EXPECTED_WARNING, medplum  # noqa: F401 (the shared fixture)

from api import create_app
from api.fhir import FhirSettings, render_triage_bundle
from api.fhir import codesystems as cs
from api.fhir.questionnaire_response import GATES, gate_answers, map_questionnaire_response
from schemas import validate_request
from tests.support.conformance import narrative_problems
from triage import evaluate, wording
from triage.vocabulary import ITEMS

BASE = cs.DEFAULT_CANONICAL_BASE
OP = "/fhir/QuestionnaireResponse/$triage"
MEDS, CONDS = "history.medications", "history.conditions"
GATE = {list_id: gate for gate, list_id in GATES.items()}
CLASS_SYSTEM = cs.codesystem_url(BASE, cs.item_codesystem_id("history.medications.class"))
CONDITION_SYSTEM = cs.codesystem_url(BASE, cs.item_codesystem_id(CONDS))
#: The listed members the tests use: kinds the screen of this case reads.
CLASS = "anticoagulant"
CONDITION = "sickle_cell_trait"
#: The child with a head impact: with both lists unknown, both are screen items whose
#: one answer would make the case an emergency, so losing a "yes" matters here.
CASE = copy.deepcopy(dict(EXAMPLES)["skater-head-impact-concussion"]["request"])
for _list in ("medications", "conditions"):
    CASE["history"].pop(_list, None)
NO_LIST = ("absent", "empty", "members")
YES_NO = (None, True, False)


@pytest.fixture(scope="module")
def gate_app() -> Flask:
    """One app for the module (hypothesis runs many examples against it)."""
    return create_app({"TESTING": True})


@pytest.fixture(scope="module")
def gate_client(gate_app: Flask) -> FlaskClient:
    return gate_app.test_client()


def _post_qr(client: FlaskClient, qr: dict[str, Any]) -> Any:
    response = client.post(OP, data=json.dumps(qr), content_type="application/fhir+json")
    assert response.status_code == 200, response.data[:800]
    return response


def _base_qr(client: FlaskClient) -> dict[str, Any]:
    """The case's answers as a form would send them (our own output, without its ids)."""
    qr = client.post("/v1/triage", json=CASE).get_json()["entry"][0]["resource"]
    for key in ("id", "meta", "text"):
        qr.pop(key)
    return qr


def _list_items(list_id: str, shape: str) -> list[dict[str, Any]]:
    """The list as a form sends it: no item, an item without answers, or one member."""
    if shape == "absent":
        return []
    if list_id == MEDS:
        group: dict[str, Any] = {"linkId": MEDS}
        if shape == "members":
            group["item"] = [
                {
                    "linkId": "history.medications.class",
                    "answer": [{"valueCoding": {"system": CLASS_SYSTEM, "code": CLASS}}],
                }
            ]
        return [group]
    item: dict[str, Any] = {"linkId": CONDS}
    if shape == "members":
        item["answer"] = [{"valueCoding": {"system": CONDITION_SYSTEM, "code": CONDITION}}]
    return [item]


def _input(base: dict[str, Any], combos: dict[str, tuple[bool | None, str]]) -> dict[str, Any]:
    qr = copy.deepcopy(base)
    for list_id, (answer, shape) in combos.items():
        if answer is not None:
            qr["item"].append({"linkId": GATE[list_id], "answer": [{"valueBoolean": answer}]})
        qr["item"] += _list_items(list_id, shape)
    return qr


def _engine_value(list_id: str, answer: bool | None, shape: str) -> Any:
    """What the request holds: members count; no (or an empty list) is none; a yes with
    nothing listed, and a yes beside an empty list, are unknown (None)."""
    if shape == "members":
        return [{"class": CLASS}] if list_id == MEDS else [CONDITION]
    if answer is True:
        return None
    if answer is False or shape == "empty":
        return []
    return None


def _expected_gate(list_id: str, answer: bool | None, shape: str) -> bool | None:
    """The yes/no the output QuestionnaireResponse gives (None: no item)."""
    value = _engine_value(list_id, answer, shape)
    if value is None:
        return True if answer is True else None
    return bool(value)


def _screen(bundle: dict[str, Any]) -> tuple[Any, ...]:
    """What the screen decided: level, its components (advice, unanswered items,
    decisive questions, knowledge-base version) and the fired rules' codes."""
    level = bundle["entry"][1]["resource"]
    rules = [
        entry["resource"]["code"]["coding"][0]["code"]
        for entry in bundle["entry"][2:]
        if entry["resource"]["code"]["coding"][0]["system"].endswith("red-flag-rule")
    ]
    return level["valueCodeableConcept"], level.get("component"), rules


def _unanswered(bundle: dict[str, Any]) -> list[str]:
    return [
        c["valueCodeableConcept"]["coding"][0]["code"]
        for c in bundle["entry"][1]["resource"].get("component", [])
        if c["code"]["coding"][0]["code"] == "unanswered-screen-item"
    ]


def _items(qr: dict[str, Any], link_id: str) -> list[dict[str, Any]]:
    return [item for item in qr.get("item", []) if item["linkId"] == link_id]


def _check(client: FlaskClient, base: dict[str, Any], combos: dict[str, Any]) -> dict[str, Any]:
    """Every claim of the module for one combination; returns the output Bundle."""
    bundle = _post_qr(client, _input(base, combos)).get_json()
    out = bundle["entry"][0]["resource"]
    div = out["text"]["div"]
    request = copy.deepcopy(CASE)
    for list_id, (answer, shape) in combos.items():
        value = _engine_value(list_id, answer, shape)
        if value is not None:
            request["history"][list_id.rsplit(".", 1)[1]] = value
    # The screen is that of the request: the gate changes nothing the engine decides.
    direct = client.post("/v1/triage", json=request).get_json()
    assert _screen(bundle) == _screen(direct)
    result = evaluate(request)
    assert _unanswered(bundle) == list(result.unanswered)
    for list_id, (answer, shape) in combos.items():
        value = _engine_value(list_id, answer, shape)
        assert (list_id in result.unanswered) is (value is None)
        gate = GATE[list_id]
        expected = _expected_gate(list_id, answer, shape)
        gates = _items(out, gate)
        assert [g["answer"] for g in gates] == (
            [] if expected is None else [[{"valueBoolean": expected}]]
        ), (combos, out.get("item"))
        listed = [i for i in _items(out, list_id) if i.get("answer") or i.get("item")]
        assert bool(listed) is bool(value), (combos, listed)
        label = wording.label(gate)
        note = wording.gate_note(gate, answer, value)
        if answer is True and value is None:
            assert note == "Yes — not listed"
        elif answer is False and value:
            assert note is not None
            assert "answered no" in note
        else:
            assert note is None
        if note is not None:
            assert f"<tr><td>{label}</td><td>{note}</td></tr>" in div
        else:
            assert f"<td>{label}</td>" not in div
        # The next question of a list a yes left unknown says the yes was given.
        level_div = bundle["entry"][1]["resource"]["text"]["div"]
        assert (f"({label}: Yes — not listed)</li>" in level_div) is (
            answer is True and value is None
        )
        assert narrative_problems(level_div) == []
    # Conforms to the Questionnaire, the list optional after a yes; narrative is XHTML.
    assert answers_problems(out.get("item", []), QUESTIONNAIRE["item"], "QR") == []
    assert narrative_problems(div) == []
    # The output posted again: the same screen, the same yes/no answers, the same items.
    again_in = {k: v for k, v in out.items() if k not in ("id", "meta", "text")}
    again = _post_qr(client, again_in).get_json()
    assert _screen(again) == _screen(bundle)
    again_qr = again["entry"][0]["resource"]
    assert gate_answers(again_qr) == gate_answers(out)
    assert again_qr.get("item") == out.get("item")
    return bundle


COMBOS = [(answer, shape) for answer in YES_NO for shape in NO_LIST]


# 81 combinations of the two lists: hypothesis explores them (duplicates are cheap).
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meds=st.sampled_from(COMBOS), conditions=st.sampled_from(COMBOS))
def test_every_combination_keeps_the_answers_and_the_screen(gate_client, meds, conditions):
    _check(gate_client, _base_qr(gate_client), {MEDS: meds, CONDS: conditions})


@pytest.mark.parametrize(("answer", "shape"), COMBOS, ids=[f"{a}-{s}" for a, s in COMBOS])
def test_each_combination_for_both_lists(gate_client, answer, shape):
    """The nine cases one by one (hypothesis above mixes the two lists)."""
    _check(gate_client, _base_qr(gate_client), {MEDS: (answer, shape), CONDS: (answer, shape)})


def test_a_bare_yes_shows_in_the_result_and_the_screen_asks_again(gate_client):
    """The issue's case, spelled out: the yes is an item without its list, the narrative
    says so in clinician words, and the medicines are still asked (an emergency answer)."""
    bundle = _check(gate_client, _base_qr(gate_client), {MEDS: (True, "absent")})
    out = bundle["entry"][0]["resource"]
    assert _items(out, GATE[MEDS]) == [
        {
            "linkId": GATE[MEDS],
            "text": wording.question(GATE[MEDS]),
            "answer": [{"valueBoolean": True}],
        }
    ]
    assert not _items(out, MEDS)
    assert "Takes regular medicines</td><td>Yes — not listed" in out["text"]["div"]
    level = bundle["entry"][1]["resource"]
    assert level["valueCodeableConcept"]["coding"][0]["code"] == "emergency"
    decisive = [
        c
        for c in level["component"]
        if c["code"]["coding"][0]["code"] == "decisive-question" and c["code"]["text"] == MEDS
    ]
    assert len(decisive) == 1  # still a decisive question: a listed anticoagulant decides
    next_questions = level["text"]["div"].split("<b>Next questions</b>")[1]
    line = next(li for li in next_questions.split("<li>") if "medicines" in li)
    assert line.startswith(wording.question(MEDS))
    assert line.endswith("(Takes regular medicines: Yes — not listed)</li>")


def test_a_no_with_a_listed_member_records_the_yes_it_implies(gate_client):
    """The member counts; the output answers yes (the list is enabled only after a yes),
    and its narrative keeps the caller's no visible."""
    bundle = _check(gate_client, _base_qr(gate_client), {MEDS: (False, "members")})
    out = bundle["entry"][0]["resource"]
    assert gate_answers(out) == {GATE[MEDS]: True}
    assert (
        "Takes regular medicines</td><td>Yes — answered no, but medicines are listed, and "
        "they count" in out["text"]["div"]
    )
    assert "Anticoagulant" in out["text"]["div"]


def test_the_yes_is_stored_and_shown_in_the_clinician_report(gate_app, gate_client):
    response = _post_qr(gate_client, _input(_base_qr(gate_client), {MEDS: (True, "absent")}))
    bundle = response.get_json()
    stored = gate_client.get(f"/fhir/Bundle/{bundle['id']}").get_json()
    assert gate_answers(stored["entry"][0]["resource"]) == {GATE[MEDS]: True}
    link = urlsplit(re.match(r"<([^>]+)>", response.headers["Link"])[1])
    html = anonymous(gate_app).get(f"{link.path}?{link.query}").get_data(as_text=True)
    other = html[html.index('id="answers-other"') :]
    assert "<dt>Takes regular medicines</dt><dd><bdi>Yes — not listed</bdi></dd>" in other
    unknown = html[html.index('id="answers-unknown"') :]
    assert wording.label(MEDS) in unknown[: unknown.index("</ul>")]
    # The same answers through /v1/triage (no yes/no of its own): no such line.
    plain = gate_client.post("/v1/triage", json=CASE)
    link = urlsplit(re.match(r"<([^>]+)>", plain.headers["Link"])[1])
    html = anonymous(gate_app).get(f"{link.path}?{link.query}").get_data(as_text=True)
    assert "Takes regular medicines" not in html


def test_the_output_validates_with_the_independent_validator(gate_client, medplum):  # noqa: F811
    """medplum (as tests/test_fhir_validator.py) on every combination's Bundle and QR."""
    base = _base_qr(gate_client)
    items = []
    for answer, shape in COMBOS:
        body = _input(base, {MEDS: (answer, shape), CONDS: (answer, shape)})
        bundle = _post_qr(gate_client, body).get_json()
        items += [
            (f"{answer}-{shape}", bundle),
            (f"{answer}-{shape}-qr", bundle["entry"][0]["resource"]),
        ]
    for label, result in medplum(items).items():
        assert result["errors"] == [], label
        warnings = [w for w in result["warnings"] if EXPECTED_WARNING not in w["details"]["text"]]
        assert warnings == [], label


def test_the_members_the_tests_list_are_vocabulary_codes():
    assert CLASS in {c.code for c in ITEMS["history.medications.class"].codes}
    assert CONDITION in {c.code for c in ITEMS[CONDS].codes}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests(), meds=st.sampled_from(COMBOS), conditions=st.sampled_from(COMBOS))
def test_for_any_request_the_output_answers_the_questionnaire(request, meds, conditions):
    """Any request (lists removed), any yes/no and list shape: read as $triage reads it,
    rendered with the yes/no answers, the output conforms to the Questionnaire and
    gives the yes/no expected; its items read back to the same request."""
    request = copy.deepcopy(request)
    (request.get("history") or {}).pop("medications", None)
    (request.get("history") or {}).pop("conditions", None)
    plain = render_triage_bundle(request, evaluate(request), settings=FhirSettings())
    base = json.loads(json.dumps(plain["entry"][0]["resource"]))
    combos = {MEDS: meds, CONDS: conditions}
    mapped = map_questionnaire_response(_input(base, combos), canonical_base=BASE)
    loaded = validate_request(mapped.request)
    bundle = render_triage_bundle(
        loaded, evaluate(loaded), settings=FhirSettings(), gates=mapped.gates
    )
    out = json.loads(json.dumps(bundle["entry"][0]["resource"]))
    assert answers_problems(out.get("item", []), QUESTIONNAIRE["item"], "QR") == []
    expected = {
        GATE[list_id]: gate
        for list_id, (answer, shape) in combos.items()
        if (gate := _expected_gate(list_id, answer, shape)) is not None
    }
    assert gate_answers(out) == expected
    again = map_questionnaire_response(out, canonical_base=BASE)
    assert validate_request(again.request) == loaded
