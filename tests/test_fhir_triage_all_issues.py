"""$triage reports every problem at once, one issue per offending item (PROTOCOL.md §9).

As ``POST /v1/triage`` does for fields: structural problems (unknown linkIds and
elements, wrong answer types, an item twice, resource-level problems) are all
collected, in document order, then the request schema reports the values of the
items that could be read. An item that could not be read is not reported a
second time as missing. At most 100 issues, the last counting the rest.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import requests

from api import create_app
from api.errors import MAX_ISSUES
from api.fhir import QuestionnaireResponseError, map_questionnaire_response

FHIR = "application/fhir+json"
OP = "/fhir/QuestionnaireResponse/$triage"
APP = create_app({"TESTING": True})
_R = "QuestionnaireResponse"
FULL = {
    "patient": {"reference": "Patient/p1", "age_years": 30},
    "activity": {"session_minutes": 60, "sessions_per_week": 3},
    "twitching": {"body_sites": ["calf", "thigh"]},
    "symptoms": {"headache": False, "confusion": True},
    "history": {
        "medications": [
            {"class": "statin", "days_since_start": 3, "doses_per_day": 1},
            {"class": "diuretic"},
        ]
    },
}


def _qr(request: dict[str, Any]) -> dict[str, Any]:
    response = APP.test_client().post("/v1/triage", json=request)
    assert response.status_code == 200, response.data[:300]
    return response.json["entry"][0]["resource"]


def _post(body: Any) -> Any:
    return APP.test_client().post(OP, data=json.dumps(body), content_type=FHIR)


def _issues(body: Any) -> list[dict[str, Any]]:
    response = _post(body)
    assert response.status_code == 422, response.data[:500]
    assert response.json["resourceType"] == "OperationOutcome"
    return response.json["issue"]


def _at(qr: dict[str, Any], link_id: str, nth: int = 0) -> int:
    return [i for i, item in enumerate(qr["item"]) if item["linkId"] == link_id][nth]


def _pairs(issues: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(i["code"], i["expression"][0]) for i in issues]


def test_every_structural_problem_is_one_issue_in_document_order():
    qr = _qr(FULL)
    age, minutes = _at(qr, "patient.age_years"), _at(qr, "activity.session_minutes")
    headache, med = _at(qr, "symptoms.headache"), _at(qr, "history.medications")
    qr["item"][age]["answer"] = [{"valueString": "30"}]  # wrong type
    qr["item"][minutes]["answr"] = []  # misspelt element
    qr["item"][headache]["answer"].append({"valueBoolean": True})  # two answers
    qr["item"][med]["item"][1]["answer"] = [{"valueInteger": "3"}]  # inside a medication
    qr["item"].append({"linkId": "symptoms.headach"})  # unknown linkId
    qr["item"].append(copy.deepcopy(qr["item"][_at(qr, "symptoms.confusion")]))  # twice
    last = len(qr["item"]) - 1
    issues = _issues(qr)
    assert _pairs(issues) == [
        ("value", f"{_R}.item[{age}].answer[0]"),
        ("invalid", f"{_R}.item[{minutes}].answr"),
        ("value", f"{_R}.item[{headache}].answer[1]"),
        ("value", f"{_R}.item[{med}].item[1].answer[0].valueInteger"),
        ("invalid", f"{_R}.item[{last - 1}]"),
        ("invalid", f"{_R}.item[{last}]"),
    ]
    assert [i["diagnostics"].split(":")[0] for i in issues] == [
        "linkId patient.age_years",
        "linkId activity.session_minutes",
        "linkId symptoms.headache",
        "linkId history.medications.days_since_start",
        "linkId symptoms.headach",
        "linkId symptoms.confusion",
    ]


def test_resource_level_problems_are_all_reported_with_the_items():
    qr = _qr(FULL)
    qr["status"] = "done"
    qr.pop("questionnaire")
    qr["answers"] = []
    qr["modifierExtension"] = []
    qr["item"][_at(qr, "patient.age_years")]["answer"] = [{"valueBoolean": True}]
    assert sorted(_pairs(_issues(qr))) == sorted(
        [
            ("code-invalid", f"{_R}.status"),
            ("required", f"{_R}.questionnaire"),
            ("invalid", f"{_R}.answers"),
            ("not-supported", f"{_R}.modifierExtension"),
            ("value", f"{_R}.item[{_at(qr, 'patient.age_years')}].answer[0]"),
        ]
    )


def test_structural_and_value_problems_are_reported_together():
    """A wrong type (reader) and an out-of-range value (schema), each once."""
    qr = _qr(FULL)
    age, minutes = _at(qr, "patient.age_years"), _at(qr, "activity.session_minutes")
    qr["item"][age]["answer"] = [{"valueDecimal": 30.5}]
    qr["item"][minutes]["answer"][0]["valueInteger"] = 99999
    issues = _issues(qr)
    # age_years could not be read, so it is missing from the request: that required
    # error only repeats the first issue and is not listed.
    assert _pairs(issues) == [
        ("value", f"{_R}.item[{age}].answer[0]"),
        ("value", f"{_R}.item[{minutes}].answer[0]"),
    ]


def test_a_list_item_reports_every_bad_answer_and_nothing_twice():
    qr = _qr(FULL)
    sites = _at(qr, "twitching.body_sites")
    qr["item"][sites]["answer"][0]["valueCoding"]["system"] = "http://snomed.info/sct"
    qr["item"][sites]["answer"][1] = {"valueString": "thigh"}
    # twitching.body_sites is required: not read, but not reported missing either.
    assert _pairs(_issues(qr)) == [
        ("code-invalid", f"{_R}.item[{sites}].answer[0].valueCoding"),
        ("value", f"{_R}.item[{sites}].answer[1]"),
    ]


def test_a_medication_reports_every_bad_child_and_its_values():
    qr = _qr(FULL)
    first, second = _at(qr, "history.medications"), _at(qr, "history.medications", 1)
    group = qr["item"][first]
    group["item"][0]["answer"] = [{"valueString": "statin"}]  # class: wrong type
    group["item"][2]["answr"] = []  # doses_per_day: misspelt
    group["item"][1]["answer"][0]["valueInteger"] = -1  # days_since_start: out of range
    qr["item"][second]["item"][0]["answer"][0]["valueCoding"]["code"] = "nonsense"
    issues = _issues(qr)
    assert _pairs(issues) == [
        ("value", f"{_R}.item[{first}].item[0].answer[0]"),
        ("invalid", f"{_R}.item[{first}].item[2].answr"),
        ("value", f"{_R}.item[{first}].item[1].answer[0]"),
        ("code-invalid", f"{_R}.item[{second}].item[0].answer[0]"),
    ]


def test_a_required_item_missing_for_no_reason_is_still_reported():
    """Only the missing item an unreadable one explains is left out, no other."""
    qr = _qr(FULL)
    minutes = _at(qr, "activity.session_minutes")
    qr["item"][minutes]["answr"] = []
    del qr["item"][_at(qr, "patient.age_years")]
    minutes = _at(qr, "activity.session_minutes")
    issues = _issues(qr)
    assert _pairs(issues) == [("invalid", f"{_R}.item[{minutes}].answr"), ("required", _R)]
    assert issues[1]["diagnostics"].startswith("linkId patient.age_years: ")


def test_a_parameters_body_reports_the_same_issues_in_the_parameter():
    qr = _qr(FULL)
    qr["status"] = "done"
    qr["item"].append({"linkId": "symptoms.headach"})
    qr["item"][_at(qr, "activity.session_minutes")]["answer"][0]["valueInteger"] = 99999
    direct = _issues(qr)
    wrapped = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": qr}]}
    via = _issues(wrapped)
    assert len(direct) == 3
    assert via == [
        {
            **issue,
            "expression": [
                issue["expression"][0].replace(_R, "Parameters.parameter[0].resource", 1)
            ],
        }
        for issue in direct
    ]


def test_the_issue_count_is_capped_as_for_v1():
    qr = _qr(FULL)
    qr["item"] += [{"linkId": f"symptoms.unknown_{n}"} for n in range(300)]
    issues = _issues(qr)
    assert len(issues) == MAX_ISSUES
    assert all(i["code"] == "invalid" for i in issues[:-1])
    assert issues[-1]["code"] == "too-costly"
    assert "201 further problems" in issues[-1]["diagnostics"]


def test_an_unreadable_body_is_one_issue():
    """Nothing to read item by item: not a QuestionnaireResponse, or no item list."""
    (issue,) = _issues({"resourceType": "Patient"})
    assert (issue["code"], issue["expression"]) == ("invalid", [_R])
    qr = _qr(FULL)
    qr["item"] = {}
    qr["status"] = "done"
    assert _pairs(_issues(qr)) == [("value", f"{_R}.item")]


def test_the_reader_raises_once_with_every_problem():
    qr = _qr(FULL)
    qr.pop("subject")
    qr["item"][0]["answr"] = []
    qr["item"][1]["answer"] = "30"
    with pytest.raises(QuestionnaireResponseError) as info:
        map_questionnaire_response(qr)
    assert [p.expression for p in info.value.problems] == [
        f"{_R}.item[0].answr",
        f"{_R}.item[1].answer",
    ]
    assert info.value.expression == f"{_R}.item[0].answr"  # the first, as before


@st.composite
def _corrupted(draw: st.DrawFn) -> tuple[dict[str, Any], list[int]]:
    qr = _qr(draw(requests()))
    chosen = draw(st.sets(st.integers(0, len(qr["item"]) - 1), max_size=len(qr["item"])))
    for index in chosen:
        qr["item"][index]["answr"] = []
    return qr, sorted(chosen)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_corrupted())
def test_any_set_of_unreadable_items_gives_exactly_one_issue_each(case):
    """For every request and every subset of its items: one issue per broken item, no more."""
    qr, broken = case
    response = _post(qr)
    if not broken:
        assert response.status_code == 200, response.data[:500]
        return
    assert response.status_code == 422, response.data[:500]
    assert _pairs(response.json["issue"]) == [("invalid", f"{_R}.item[{i}].answr") for i in broken]


@pytest.mark.parametrize("link_id", [{}, 5, None, ["symptoms.headache"]])
def test_a_linkid_that_is_no_string_is_reported_with_the_values(link_id):
    """Found by contract fuzzing: such a linkId broke the check for repeated errors (500)."""
    qr = _qr(FULL)
    minutes = _at(qr, "activity.session_minutes")
    qr["item"][minutes]["answer"][0]["valueInteger"] = 99999
    qr["item"].append({"linkId": link_id})
    med = _at(qr, "history.medications")
    qr["item"][med]["item"].append({"linkId": link_id})
    issues = _issues(qr)
    assert _pairs(issues) == [
        ("invalid", f"{_R}.item[{med}].item[3]"),
        ("invalid", f"{_R}.item[{len(qr['item']) - 1}]"),
        ("value", f"{_R}.item[{minutes}].answer[0]"),
    ]
    assert not issues[0]["diagnostics"].startswith("linkId")


def test_an_unreadable_item_does_not_hide_a_missing_one_of_its_section():
    """patient.reference unreadable and patient.age_years absent: both reported."""
    qr = _qr(FULL)
    del qr["item"][_at(qr, "patient.age_years")]
    reference = _at(qr, "patient.reference")
    qr["item"][reference]["answer"] = [{"valueInteger": 1}]
    issues = _issues(qr)
    assert _pairs(issues) == [("value", f"{_R}.item[{reference}].answer[0]"), ("required", _R)]
    assert issues[1]["diagnostics"].startswith("linkId patient.age_years: ")


def test_a_refused_subject_does_not_hide_a_missing_item():
    qr = _qr({"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}})
    del qr["item"][_at(qr, "patient.age_years")]
    qr["subject"] = {"reference": "https://ehr.example/fhir/Patient/1"}
    issues = _issues(qr)
    assert _pairs(issues) == [("value", f"{_R}.subject.reference"), ("required", _R)]
    assert issues[1]["diagnostics"].startswith("linkId patient")


# --- elements the triage does not read are still checked, never dropped ---------------

_MALFORMED = [
    ("authored", "not-a-date"),
    ("authored", 20261128),
    ("authored", "2026-02-30"),  # no such day
    ("authored", "2026-11-28T09:30:00"),  # a time needs its zone
    ("authored", "2026-11-28T09:30Z"),  # ... and its seconds
    ("authored", "2026-11-28T09:30:00+15:00"),  # offsets end at ±14:00
    ("id", "a b"),
    ("id", 7),
    ("language", "en US"),
    ("meta", "profile"),
    ("text", ["generated"]),
    ("author", "Practitioner/1"),
    ("encounter", None),
    ("extension", {"url": "http://example.org/x"}),
    ("extension", []),
    ("basedOn", [{"reference": "ServiceRequest/1"}, "x"]),
    ("identifier", "abc"),
    ("identifier", []),
]


@pytest.mark.parametrize(("name", "value"), _MALFORMED)
def test_a_malformed_element_the_triage_does_not_read_is_refused_by_name(name, value):
    qr = _qr(FULL) | {name: value}
    issues = _issues(qr)
    assert [(i["code"], i["expression"]) for i in issues] == [("value", [f"{_R}.{name}"])]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("authored", "2026"),
        ("authored", "2026-11"),
        ("authored", "2024-02-29"),
        ("authored", "2026-11-28T09:30:00.123+14:00"),
        ("authored", "2026-11-28T23:59:60Z"),  # FHIR allows a leap second
        ("language", "zh-Hant-TW"),
        ("identifier", {"value": "form-1"}),  # R4
        ("identifier", [{"value": "form-1"}]),  # R5
        ("meta", {"profile": ["http://example.org/StructureDefinition/qr"]}),
        ("author", {"reference": "Practitioner/1"}),
    ],
)
def test_well_formed_elements_the_triage_does_not_read_are_taken(name, value):
    response = _post(_qr(FULL) | {name: value})
    assert response.status_code == 200, response.data[:500]


def test_malformed_elements_are_reported_with_every_other_problem():
    qr = _qr(FULL) | {"authored": "yesterday", "id": "no spaces", "bogus": 1}
    expressions = [i["expression"][0] for i in _issues(qr)]
    assert sorted(expressions) == sorted([f"{_R}.authored", f"{_R}.id", f"{_R}.bogus"])
