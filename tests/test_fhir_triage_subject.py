"""$triage never files a result under the wrong patient: every form of ``subject``.

The result names the patient only as ``Patient/<id>`` (the ``patient.reference``
answer, PROTOCOL.md §3), so a ``subject`` is used only in that form and only when
it agrees with the answer. Every other form is a 422 naming
``QuestionnaireResponse.subject…``, never silently dropped: an absolute URL (the
result would name a patient relative to whatever server it is filed on), a
``urn:`` or contained reference (nothing to resolve it in), an ``identifier``
(cannot be carried or compared), a ``display`` alone, another resource type.
The same holds for a Parameters body, rooted in its parameter.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import create_app

FHIR = "application/fhir+json"
OP = "/fhir/QuestionnaireResponse/$triage"
APP = create_app({"TESTING": True})
ANSWERED = "Patient/123"
#: What the absolute URL of the issue names: the same id as ANSWERED, on a server.
ABSOLUTE = "https://ehr.example/fhir/Patient/123"
_S = "QuestionnaireResponse.subject"
_SENT = object()  # marker: the subject stands in for the answer and is used as is


def _qr(reference: str | None) -> dict[str, Any]:
    """A QuestionnaireResponse as /v1/triage renders it, with or without the answer."""
    patient: dict[str, Any] = {"age_years": 30}
    if reference is not None:
        patient["reference"] = reference
    request = {"patient": patient, "twitching": {"body_sites": ["calf"]}}
    response = APP.test_client().post("/v1/triage", json=request)
    assert response.status_code == 200, response.data[:300]
    qr = response.json["entry"][0]["resource"]
    qr.pop("subject", None)  # each case sets its own
    return qr


def _post(body: Any) -> Any:
    return APP.test_client().post(OP, data=json.dumps(body), content_type=FHIR)


def _subjects(bundle: dict[str, Any]) -> set[str]:
    """Every patient the Bundle files something under (absent subject = None)."""
    return {
        (entry["resource"].get("subject") or {}).get("reference")
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] != "Patient"
    }


# (subject, patient.reference answer or None, expected): expected is the patient the
# result is filed under (200) or the [(code, expression)] of the 422 and a needle.
CASES = [
    # Relative Patient references: the one form the result carries.
    ({"reference": "Patient/123"}, None, "Patient/123"),
    ({"reference": "Patient/123"}, ANSWERED, "Patient/123"),
    ({"reference": "Patient/a-b.C9"}, None, "Patient/a-b.C9"),
    ({"reference": "Patient/123", "type": "Patient"}, None, "Patient/123"),
    ({"reference": "Patient/123", "display": "Ann Example"}, ANSWERED, "Patient/123"),
    (
        {
            "reference": "Patient/123",
            "id": "s1",
            "extension": [{"url": "http://example.org/x", "valueString": "y"}],
        },
        None,
        "Patient/123",
    ),
    # FHIR JSON has no empty arrays; a malformed element of a subject is not ignored.
    (
        {"reference": "Patient/123", "extension": []},
        None,
        ([("value", f"{_S}.extension")], "array"),
    ),
    ({"reference": "Patient/123", "display": 5}, None, ([("value", f"{_S}.display")], "string")),
    ({"reference": "Patient/999"}, ANSWERED, ([("value", f"{_S}.reference")], "different")),
    ({"reference": "Patient/"}, None, ([("value", f"{_S}.reference")], "Patient/<id>")),
    ({"reference": "Patient/a b"}, None, ([("value", f"{_S}.reference")], "Patient/<id>")),
    ({"reference": "Patient/" + "1" * 65}, None, ([("value", f"{_S}.reference")], "1 to 64")),
    ({"reference": "Patient/123/_history/2"}, None, ([("value", f"{_S}.reference")], "<id>")),
    ({"reference": "patient/123"}, ANSWERED, ([("value", f"{_S}.reference")], "not a Patient")),
    # Absolute URLs: the issue's case, and the same id on a server (cannot be carried).
    (
        {"reference": "https://ehr.example/fhir/Patient/999"},
        ANSWERED,
        ([("value", f"{_S}.reference")], "different patients"),
    ),
    ({"reference": ABSOLUTE}, ANSWERED, ([("value", f"{_S}.reference")], "absolute")),
    ({"reference": ABSOLUTE}, None, ([("value", f"{_S}.reference")], "absolute")),
    ({"reference": ABSOLUTE + "/_history/3"}, None, ([("value", f"{_S}.reference")], "absolute")),
    ({"reference": "http://ehr.example/"}, None, ([("value", f"{_S}.reference")], "absolute")),
    (
        {"reference": "https://ehr.example/fhir/Group/123"},
        ANSWERED,
        ([("value", f"{_S}.reference")], "names a Group"),
    ),
    # Bundle-internal and contained references: nothing to resolve them in.
    (
        {"reference": "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e"},
        None,
        ([("value", f"{_S}.reference")], "Bundle"),
    ),
    (
        {"reference": "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e"},
        ANSWERED,
        ([("value", f"{_S}.reference")], "Bundle"),
    ),
    ({"reference": "#p1"}, None, ([("value", f"{_S}.reference")], "contained")),
    # Identifiers: cannot be carried, nor checked against the answer.
    (
        {"identifier": {"system": "urn:oid:1.2.3", "value": "123"}},
        None,
        ([("value", f"{_S}.identifier")], "identifier"),
    ),
    (
        {"identifier": {"system": "urn:oid:1.2.3", "value": "123"}},
        ANSWERED,
        ([("value", f"{_S}.identifier")], "identifier"),
    ),
    (
        {"reference": "Patient/123", "identifier": {"value": "123"}},
        ANSWERED,
        ([("value", f"{_S}.identifier")], "identifier"),
    ),
    # Other resource types.
    ({"reference": "Group/1"}, None, ([("value", f"{_S}.reference")], "names a Group")),
    ({"reference": "Practitioner/123"}, ANSWERED, ([("value", f"{_S}.reference")], "Practitioner")),
    ({"reference": "Patient/123", "type": "Group"}, None, ([("value", f"{_S}.type")], "Group")),
    ({"reference": "Patient/123", "type": None}, None, ([("value", f"{_S}.type")], "Patient")),
    # No reference at all: nobody is named.
    ({"display": "Ann Example"}, None, ([("required", f"{_S}.reference")], "display")),
    ({"display": "Ann Example"}, ANSWERED, ([("required", f"{_S}.reference")], "display")),
    ({}, None, ([("required", f"{_S}.reference")], "no patient")),
    ({"type": "Patient"}, ANSWERED, ([("required", f"{_S}.reference")], "no patient")),
    # Not a Reference.
    ("Patient/123", None, ([("value", _S)], "Reference")),
    ({"reference": 123}, None, ([("value", f"{_S}.reference")], "string")),
    ({"reference": None}, ANSWERED, ([("value", f"{_S}.reference")], "string")),
    ({"reference": "Patient/123", "foo": 1}, None, ([("invalid", f"{_S}.foo")], "unknown")),
    # Several problems in one subject: each reported.
    (
        {"identifier": {"value": "1"}, "type": "Group", "foo": 1},
        None,
        ([("value", f"{_S}.identifier"), ("invalid", f"{_S}.foo"), ("value", f"{_S}.type")], ""),
    ),
]


def _id(case: tuple[Any, Any, Any]) -> str:
    subject, answer, expected = case
    shown = json.dumps(subject)[:60]
    outcome = expected if isinstance(expected, str) else 422
    return f"{shown}{' +answer' if answer else ''}->{outcome}"


@pytest.mark.parametrize("wrapped", [False, True], ids=["qr", "parameters"])
@pytest.mark.parametrize(("subject", "answer", "expected"), CASES, ids=map(_id, CASES))
def test_every_form_of_subject(subject, answer, expected, wrapped):
    qr = _qr(answer)
    qr["subject"] = subject
    root = "QuestionnaireResponse"
    body: Any = qr
    if wrapped:
        body = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": qr}]}
        root = "Parameters.parameter[0].resource"
    response = _post(body)
    if isinstance(expected, str):
        assert response.status_code == 200, response.data[:500]
        assert _subjects(response.json) == {expected}
        return
    issues, needle = expected
    assert response.status_code == 422, response.data[:500]
    got = response.json["issue"]
    assert [(i["code"], i["expression"]) for i in got] == [
        (code, [root + expression.removeprefix("QuestionnaireResponse")])
        for code, expression in issues
    ]
    assert needle in got[0]["diagnostics"]


def test_the_issue_report_absolute_subject_and_another_answer_is_refused():
    """The defect as reported: 200 and the result filed under Patient/999."""
    qr = _qr("Patient/999")
    qr["subject"] = {"reference": ABSOLUTE}
    response = _post(qr)
    assert response.status_code == 422
    (issue,) = response.json["issue"]
    assert issue["expression"] == [f"{_S}.reference"]
    assert "Patient/999" in issue["diagnostics"]
    assert "different patients" in issue["diagnostics"]


def test_subject_problems_are_reported_with_the_items_problems():
    qr = _qr(None)
    qr["subject"] = {"identifier": {"value": "123"}}
    qr["item"].append({"linkId": "symptoms.headach"})
    response = _post(qr)
    assert response.status_code == 422
    expressions = [i["expression"][0] for i in response.json["issue"]]
    assert expressions == [f"QuestionnaireResponse.item[{len(qr['item']) - 1}]", f"{_S}.identifier"]


_IDS = st.from_regex(r"[A-Za-z0-9\-.]{1,64}", fullmatch=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject_id=_IDS,
    answer_id=st.none() | _IDS,
    base=st.none() | st.sampled_from(["https://ehr.example/fhir/", "http://h/", "urn:uuid:"]),
)
def test_a_result_is_filed_only_under_the_one_patient_both_name(subject_id, answer_id, base):
    """For every pair of ids: triaged only when they agree, and then under that patient."""
    qr = _qr(None if answer_id is None else f"Patient/{answer_id}")
    reference = f"Patient/{subject_id}"
    qr["subject"] = {"reference": (base or "") + reference}
    response = _post(qr)
    agrees = base is None and answer_id in (None, subject_id)
    assert response.status_code == (200 if agrees else 422), response.data[:300]
    if agrees:
        assert _subjects(response.json) == {reference}
    else:
        (issue,) = response.json["issue"]
        assert issue["expression"] == [f"{_S}.reference"]
