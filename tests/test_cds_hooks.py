"""CDS Hooks 2.0: discovery, the patient-view service and its cards, feedback (issue 13).

Conformance is checked with tests/support/cds_conformance.py (written from the
specification text) over every shared example and over generated intakes; the
card's level is the one ``$triage`` gives for the same answers.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from cds_support import (
    FEEDBACK,
    HOST,
    SERVICE,
    TENANT,
    Ehr,
    call,
    feedback_entry,
    hook_request,
    intake_for,
    register,
    registered_ehr,  # noqa: F401 (the ehr fixture)
)
from conftest import anonymous
from examples import EXAMPLE_IDS, EXAMPLES
from flask import Flask
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator
from markdown_it import MarkdownIt
from strategies import requests

from api import create_app
from api.auth.clients import create_client
from api.auth.ehrs import remove_ehr
from api.config import EXTENSION
from api.services.links import REPORT
from schemas import validate_request
from tests.support.cds_conformance import discovery_problems, response_problems
from tools.openapi import OPENAPI_PATH
from triage import Level, evaluate

INDICATOR = {
    "emergency_ambulance": "critical",
    "emergency": "critical",
    "consultation_24": "warning",
    "consultation": "info",
    "self_care": "info",
}
VALID = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}


def tenant_key(app: Flask, tenant: str = TENANT) -> str:
    return create_client(app.extensions[EXTENSION].clients, tenant=tenant).api_key


def issues_of(response: Any, status: int) -> list[dict[str, Any]]:
    assert response.status_code == status, response.data[:800]
    assert response.content_type.startswith("application/fhir+json")
    body = response.json
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"]


# --- discovery ---------------------------------------------------------------------------


def test_discovery_is_public_and_conformant(app):
    response = anonymous(app).get("/cds-services")
    assert response.status_code == 200
    assert response.content_type == "application/json"
    document = response.json
    assert discovery_problems(document) == []
    [service] = document["services"]
    assert service["id"] == "twitch-triage"
    assert service["hook"] == "patient-view"
    assert service["title"]
    assert service["usageRequirements"]
    template = service["prefetch"]["intake"]
    resource, _, query = template.partition("?")
    assert resource == "QuestionnaireResponse"
    assert parse_qs(query) == {
        "patient": ["{{context.patientId}}"],
        "questionnaire": ["https://twitch-triage.org/fhir/Questionnaire/twitch-triage-intake"],
        "status": ["completed"],
        "_sort": ["-authored"],
        "_count": ["1"],
    }


def test_discovery_names_the_deployments_questionnaire():
    app = create_app({"TESTING": True, "CANONICAL_BASE": "https://forms.example.org/fhir"})
    template = app.test_client().get("/cds-services").json["services"][0]["prefetch"]["intake"]
    assert "questionnaire=https://forms.example.org/fhir/Questionnaire/twitch-triage-intake" in (
        template
    )


def test_the_conformance_checker_sees_problems():
    # Guard against checks that cannot fail: each planted defect is reported.
    bad = {
        "cards": [
            {
                "summary": "x" * 140,
                "indicator": "hard-stop",
                "source": {"label": "s", "url": "relative/path"},
                "suggestions": [{"label": "do it"}],
                "links": [{"label": "l", "url": "https://a.example", "type": "web"}],
                "detail": "",
            }
        ]
    }
    problems = " ".join(response_problems(bad))
    for needle in (
        "summary has 140",
        "indicator",
        "source.url",
        "selectionBehavior",
        "type",
        "empty",
    ):
        assert needle in problems
    assert discovery_problems({"services": [{"hook": "patient-view"}]})


# --- cards over every shared example --------------------------------------------------------


def _expected_top_rule(request: dict[str, Any]) -> str | None:
    result = evaluate(validate_request(request))
    return result.rules[0].display if result.rules else None


@pytest.mark.parametrize(("name", "case"), EXAMPLES, ids=EXAMPLE_IDS)
def test_every_example_gives_a_conformant_card_with_its_level(app, client, ehr, name, case):
    intake = intake_for(client, case["request"], "pat-1")
    response = call(client, ehr, hook_request("pat-1", intake))
    assert response.status_code == 200, response.data[:800]
    assert response.content_type == "application/json"
    body = response.json
    assert response_problems(body) == [], name
    [card] = body["cards"]
    level = Level.from_code(case["expected"]["level"])
    assert card["indicator"] == INDICATOR[level.code]
    assert card["summary"].startswith(level.display)
    top = _expected_top_rule(case["request"])
    if top is not None:
        assert top[:40] in card["summary"]
    assert card["source"]["topic"]["code"] == level.code
    assert "protocol 1.1" in card["source"]["label"]
    detail = card["detail"]
    assert level.display in detail
    for rule in evaluate(validate_request(case["request"])).rules:
        assert rule.display.replace("-", "") in detail.replace("-", "")
    # The absolute link opens the stored assessment's report, signed for it.
    [link] = card["links"]
    assert link["type"] == "absolute"
    url = urlsplit(link["url"])
    assert f"{url.scheme}://{url.netloc}" == HOST
    bundle_id = url.path.removeprefix("/reports/")
    query = parse_qs(url.query)
    signer = app.extensions[EXTENSION].links
    now = int(time.time())
    assert signer.verify(REPORT, bundle_id, query["expires"][0], query["signature"][0], now=now)
    assert int(query["expires"][0]) - now <= app.extensions[EXTENSION].settings.report_link_seconds
    # ... and a clinician's browser (no API key) opens that report (issue 14).
    page = anonymous(app).get(f"{url.path}?{url.query}")
    assert page.status_code == 200, page.status_code
    assert level.display in page.get_data(as_text=True)
    # Stored under the EHR's tenant: its clients read it, the local tenant does not.
    stored = anonymous(app).get(
        f"/fhir/Bundle/{bundle_id}", headers={"Authorization": f"Bearer {tenant_key(app)}"}
    )
    assert stored.status_code == 200
    assert client.get(f"/fhir/Bundle/{bundle_id}").status_code == 404


APP = create_app({"TESTING": True})
APP_EHR = Ehr(f"https://generated-{uuid.uuid4().hex[:8]}.example/fhir")  # one per process
register(APP, APP_EHR, TENANT)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests())
def test_any_intake_gives_a_conformant_card_with_the_triage_level(request):
    client = APP.test_client()
    intake = intake_for(client, request, "generated-1")
    via_triage = client.post("/fhir/QuestionnaireResponse/$triage", json=intake)
    assert via_triage.status_code == 200, via_triage.data[:500]
    response = call(client, APP_EHR, hook_request("generated-1", intake))
    assert response.status_code == 200, response.data[:800]
    assert response_problems(response.json) == []
    [card] = response.json["cards"]
    level = Level.from_code(card["source"]["topic"]["code"])
    assert level == evaluate(validate_request(_with_reference(request, "generated-1"))).level
    assert card["indicator"] == INDICATOR[level.code]


def _with_reference(request: dict[str, Any], patient_id: str) -> dict[str, Any]:
    copied = copy.deepcopy(request)
    copied.setdefault("patient", {})["reference"] = f"Patient/{patient_id}"
    return copied


# --- prefetch shapes, null, absent ----------------------------------------------------------


def test_a_searchset_bundle_gives_its_newest_intake(client, ehr):
    old = intake_for(client, {**VALID, "symptoms": {"confusion": True}}, "p2")
    old["authored"] = "2026-01-01T00:00:00Z"
    new = intake_for(client, VALID, "p2")
    new["authored"] = "2026-11-27T08:00:00+01:00"
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": old, "search": {"mode": "match"}},
            {"resource": {"resourceType": "Patient", "id": "p2"}, "search": {"mode": "include"}},
            {"resource": new, "search": {"mode": "match"}},
        ],
    }
    response = call(client, ehr, hook_request("p2", bundle))
    assert response.status_code == 200, response.data[:800]
    [card] = response.json["cards"]
    assert card["indicator"] == "info"  # the newer intake (no confusion), not the older one
    assert "Call an ambulance" not in card["summary"]


@pytest.mark.parametrize(
    "prefetch",
    [None, {"resourceType": "Bundle", "type": "searchset", "total": 0}],
    ids=["null", "empty-searchset"],
)
def test_no_intake_gives_no_card(client, ehr, prefetch):
    response = call(client, ehr, hook_request("p3", prefetch))
    assert response.status_code == 200
    assert response.json == {"cards": []}


def test_absent_prefetch_without_fhir_server_is_412(client, ehr):
    response = call(client, ehr, hook_request("p3", prefetch=False))
    [issue] = issues_of(response, 412)
    assert issue["expression"] == ["prefetch.intake"]


def test_a_prefetch_that_is_no_intake_is_412(client, ehr):
    response = call(client, ehr, hook_request("p3", {"resourceType": "Patient", "id": "p3"}))
    [issue] = issues_of(response, 412)
    assert issue["expression"] == ["prefetch.intake"]


def test_a_prefetch_search_that_failed_is_412_not_no_card(client, ehr):
    """CDS Hooks: a client "SHOULD" report a failed prefetch with OperationOutcome(s), and a
    service "SHOULD check any prefetched data for the existence of OperationOutcomes". A
    searchset whose only entry is an error outcome is a failed query, not "no intake":
    without a fhirServer to ask, 412. Only warnings, no match: an empty search, no card."""
    failed = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 0,
        "entry": [
            {
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "timeout"}],
                },
                "search": {"mode": "outcome"},
            }
        ],
    }
    [issue] = issues_of(call(client, ehr, hook_request("p3", failed)), 412)
    assert issue["expression"] == ["prefetch.intake"]
    warned = copy.deepcopy(failed)
    warned["entry"][0]["resource"]["issue"][0]["severity"] = "warning"
    response = call(client, ehr, hook_request("p3", warned))
    assert response.status_code == 200, response.data[:500]
    assert response.json == {"cards": []}


# --- never the wrong patient ------------------------------------------------------------------


def _stored_for(app: Flask, patient: str) -> int:
    """How many intakes of ``patient`` the tenant has stored (other tests run alongside)."""
    found = anonymous(app).get(
        f"/fhir/QuestionnaireResponse?subject=Patient/{patient}",
        headers={"Authorization": f"Bearer {tenant_key(app)}"},
    )
    assert found.status_code == 200, found.data[:300]
    return len(found.json.get("entry", []))


@pytest.mark.parametrize(
    "subject",
    [
        {"reference": "Patient/someone-else"},
        {"reference": "https://other.example/fhir/Patient/{patient}"},
        {"display": "the patient"},
        None,
    ],
    ids=["other-id", "other-server", "no-reference", "no-subject"],
)
def test_an_intake_of_another_patient_is_never_triaged_into_this_chart(app, client, ehr, subject):
    patient = f"p4-{uuid.uuid4().hex[:8]}"
    intake = intake_for(client, {**VALID, "symptoms": {"confusion": True}}, patient)
    if subject is None:
        del intake["subject"]
    else:
        intake["subject"] = json.loads(json.dumps(subject).replace("{patient}", patient))
    response = call(client, ehr, hook_request(patient, intake))
    [issue] = issues_of(response, 412)
    assert issue["expression"] == ["prefetch.intake.subject.reference"]
    assert _stored_for(app, patient) == 0
    assert _stored_for(app, "someone-else") == 0


def test_the_subject_on_the_ehrs_own_server_is_the_patient(app, client, ehr):
    patient = f"p5-{uuid.uuid4().hex[:8]}"
    intake = intake_for(client, VALID, patient)
    intake["subject"] = {"reference": f"https://ehr.example/fhir/Patient/{patient}"}
    body = hook_request(patient, intake, fhirServer="https://ehr.example/fhir")
    response = call(client, ehr, body)
    assert response.status_code == 200, response.data[:800]
    assert len(response.json["cards"]) == 1
    assert _stored_for(app, patient) == 1  # filed under this patient, for the EHR's tenant


def test_an_answer_naming_another_patient_is_refused_like_triage(app, client, ehr):
    answered, chart = f"p6-{uuid.uuid4().hex[:8]}", f"p7-{uuid.uuid4().hex[:8]}"
    intake = intake_for(client, VALID, answered)  # the patient.reference answer
    intake["subject"] = {"reference": f"Patient/{chart}"}  # the chart open
    issues = issues_of(call(client, ehr, hook_request(chart, intake)), 422)
    assert issues[0]["expression"] == ["QuestionnaireResponse.subject.reference"]
    assert _stored_for(app, chart) == 0
    assert _stored_for(app, answered) == 0


# --- bad shapes: 400 naming the field ----------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "expression"),
    [
        (lambda b: b.pop("hook"), "hook"),
        (lambda b: b.update(hook="order-sign"), "hook"),
        (lambda b: b.update(hook=7), "hook"),
        (lambda b: b.pop("hookInstance"), "hookInstance"),
        (lambda b: b.pop("context"), "context"),
        (lambda b: b.update(context=[]), "context"),
        (lambda b: b["context"].pop("patientId"), "context.patientId"),
        (lambda b: b["context"].update(patientId="a/b"), "context.patientId"),
        (lambda b: b["context"].update(userId=5), "context.userId"),
        # CDS Hooks 2.0 patient-view: userId is REQUIRED (bad-input battery, session 9).
        (lambda b: b["context"].pop("userId"), "context.userId"),
        (lambda b: b["context"].update(userId=None), "context.userId"),
        (lambda b: b["context"].update(userId=" "), "context.userId"),
        (lambda b: b.update(prefetch=[]), "prefetch"),
        (lambda b: b["prefetch"].update(intake="QuestionnaireResponse/1"), "prefetch.intake"),
        (lambda b: b.update(fhirServer="ftp://ehr.example"), "fhirServer"),
        (
            lambda b: b.update(
                fhirAuthorization={"token_type": "Bearer"}, fhirServer="https://e.x"
            ),
            "fhirAuthorization.access_token",
        ),
        (
            lambda b: b.update(fhirAuthorization={"access_token": "t", "token_type": "Bearer"}),
            "fhirServer",
        ),
        (
            lambda b: b.update(
                fhirAuthorization={"access_token": "t", "token_type": "MAC"},
                fhirServer="https://e.x",
            ),
            "fhirAuthorization.token_type",
        ),
    ],
)
def test_bad_request_shapes_are_400_naming_the_field(client, ehr, edit, expression):
    body = hook_request("p8", None)
    edit(body)
    issues = issues_of(call(client, ehr, body), 400)
    assert [expression] in [issue.get("expression") for issue in issues]


@pytest.mark.parametrize("body", [b"[]", b"{", b'{"a": NaN}'])
def test_bodies_that_are_not_an_object_are_400(client, ehr, body):
    response = client.post(
        SERVICE,
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {ehr.token(HOST + SERVICE)}"},
    )
    issues_of(response, 400)


def test_an_intake_that_cannot_be_triaged_is_the_triage_422(client, ehr):
    intake = intake_for(client, VALID, "p9")
    intake["questionnaire"] = "https://elsewhere.example/Questionnaire/x"
    issues = issues_of(call(client, ehr, hook_request("p9", intake)), 422)
    assert issues[0]["expression"] == ["QuestionnaireResponse.questionnaire"]


# --- request text is inert in the detail ----------------------------------------------------------

_NOTES = (
    "<script>alert(1)</script> **bold** [x](javascript:alert(1)) ![i](https://e.example/i.png) "
    "`code` <b>b</b> &amp; \u2028# heading \u2029| a | b |\u2028|---|---| ~~gone~~ _em_"
)
_ACTIVITY = "<img src=x onerror=alert(1)>*run*"


def test_free_text_is_escaped_for_markdown_and_html(client, ehr):
    request = {**VALID, "notes": _NOTES, "activity": {"type": _ACTIVITY}}
    intake = intake_for(client, request, "p10")
    response = call(client, ehr, hook_request("p10", intake))
    assert response.status_code == 200, response.data[:800]
    detail = response.json["cards"][0]["detail"]
    renderer = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    html = renderer.render(detail)
    for forbidden in (
        "<script",
        "<img",
        "<a ",
        "<code>",
        "<b>",
        "<h1",
        "<table",
        "<s>",
        "<em>em",
        "<strong>bold",
        "<em>run",
    ):
        assert forbidden not in html, forbidden
    text = MarkdownIt("commonmark").parse(detail)
    shown = "".join(
        child.content
        for token in text
        if token.type == "inline"
        for child in token.children or []
        if child.type == "text"
    )
    for literal in ("<script>alert(1)</script>", "**bold**", "[x](javascript:alert(1))", "&amp;"):
        assert literal in shown, literal
    assert "<img src=x onerror=alert(1)>*run*" in shown


def test_a_yes_without_the_list_is_shown_where_the_card_asks_for_the_list(client, ehr):
    """A "yes" to "any regular medicines?" with none listed leaves the list unknown (the
    card asks for it), and the card says the yes was given: the answer is not lost."""
    request = copy.deepcopy(dict(EXAMPLES)["skater-head-impact-concussion"]["request"])
    request["history"].pop("medications", None)
    intake = intake_for(client, request, "p-gate")
    intake["item"] = [i for i in intake["item"] if not i["linkId"].startswith("history.med")]
    intake["item"].append({"linkId": "history.medications.any", "answer": [{"valueBoolean": True}]})
    response = call(client, ehr, hook_request("p-gate", intake))
    assert response.status_code == 200, response.data[:800]
    detail = response.json["cards"][0]["detail"]
    asked = [line for line in detail.splitlines() if line.startswith("- ") and "medicines" in line]
    assert len(asked) == 1, detail
    assert asked[0].endswith("(Takes regular medicines: Yes — not listed)"), asked[0]
    # Without the yes, the same question carries no such note.
    intake["item"] = [i for i in intake["item"] if i["linkId"] != "history.medications.any"]
    detail = call(client, ehr, hook_request("p-gate", intake)).json["cards"][0]["detail"]
    assert "not listed" not in detail


# --- feedback ------------------------------------------------------------------------------------


def test_a_resent_hook_call_is_answered_from_its_first_assessment(app, client, ehr):
    """An EHR that resends a call (its answer lost, a timeout) with the same hookInstance
    gets the same card again; the assessment is stored once, not once per attempt."""
    patient = f"p-re-{uuid.uuid4().hex[:8]}"
    body = hook_request(patient, intake_for(client, {**VALID, "symptoms": {"confusion": True}},
                                            patient))  # fmt: skip
    first = call(client, ehr, body)
    again = call(client, ehr, body)  # a fresh JWT (jti), the same call
    assert first.status_code == again.status_code == 200, again.data[:500]
    [card_1], [card_2] = first.json["cards"], again.json["cards"]
    assert card_1["indicator"] == card_2["indicator"] == "critical"
    assert card_1["summary"] == card_2["summary"]
    report = urlsplit(card_1["links"][0]["url"]).path
    assert urlsplit(card_2["links"][0]["url"]).path == report  # the same assessment
    assert _stored_for(app, patient) == 1


def test_a_reused_hook_instance_with_another_intake_still_gets_its_own_card(app, client, ehr):
    """Not a resent call but an EHR reusing ids: triaged and stored on its own, never
    refused (a card withheld could hide a red flag)."""
    patient = f"p-reuse-{uuid.uuid4().hex[:8]}"
    body = hook_request(patient, intake_for(client, VALID, patient))
    assert call(client, ehr, body).json["cards"][0]["indicator"] == "info"
    urgent = intake_for(client, {**VALID, "symptoms": {"confusion": True}}, patient)
    body["prefetch"] = {"intake": urgent}
    response = call(client, ehr, body)
    assert response.status_code == 200, response.data[:500]
    assert response.json["cards"][0]["indicator"] == "critical"
    assert _stored_for(app, patient) == 2


def _card(client: Any, ehr: Ehr, patient: str, request: dict[str, Any] | None = None) -> dict:
    intake = intake_for(client, request or VALID, patient)
    response = call(client, ehr, hook_request(patient, intake))
    assert response.status_code == 200, response.data[:800]
    return response.json["cards"][0]


def test_removing_the_ehr_ends_the_report_links_of_its_cards(app, client, ehr):
    """A card's report link works while its EHR is registered, not once it is removed."""
    card = _card(client, ehr, "p-removed")
    url = urlsplit(card["links"][0]["url"])
    assert anonymous(app).get(f"{url.path}?{url.query}").status_code == 200
    remove_ehr(app.extensions[EXTENSION].cds, ehr.iss)
    assert anonymous(app).get(f"{url.path}?{url.query}").status_code == 404


def test_feedback_is_stored_and_audited(app, client, ehr):
    card = _card(client, ehr, "p11")
    bundle_id = urlsplit(card["links"][0]["url"]).path.removeprefix("/reports/")
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {"system": "https://ehr.example/reasons", "code": "seen"},
                    "userComment": "Seen in clinic today",
                },
                "outcomeTimestamp": "2026-11-27T12:00:00Z",
            },
            feedback_entry(card["uuid"], outcomeTimestamp="2026-11-27T12:01:00Z"),
        ]
    }
    response = call(client, ehr, feedback, path=FEEDBACK)
    assert response.status_code == 200, response.data[:800]
    assert response.json == {"stored": 2}
    stored = app.extensions[EXTENSION].cds.feedback(card["uuid"], tenant=TENANT)
    assert [record.outcome for record in stored] == ["overridden", "overridden"]
    assert (
        json.loads(stored[0].body_json)["overrideReason"]["userComment"] == "Seen in clinic today"
    )
    assert "overrideReason" not in json.loads(stored[1].body_json)  # each entry as it was sent
    noon = datetime(2026, 11, 27, 12, tzinfo=UTC).timestamp()
    assert [record.outcome_us for record in stored] == [noon * 1_000_000, (noon + 60) * 1_000_000]
    assert stored[0].assessment_id == bundle_id
    # Visible in the tenant's audit trail, naming the assessment.
    audit = anonymous(app).get(
        f"/fhir/AuditEvent?entity=Bundle/{bundle_id}&subtype=operation",
        headers={"Authorization": f"Bearer {tenant_key(app)}"},
    )
    assert audit.status_code == 200
    events = [entry["resource"] for entry in audit.json.get("entry", [])]
    assert len(events) == 2
    assert all(event["outcome"] == "0" for event in events)
    assert all(
        event["agent"][0]["who"]["identifier"]["value"].startswith("ehr_") for event in events
    )
    # Not in another tenant's.
    elsewhere = client.get(f"/fhir/AuditEvent?entity=Bundle/{bundle_id}")
    assert elsewhere.json.get("total", 0) == 0


@pytest.mark.parametrize(
    "entry",
    [
        # The specification's own examples (CDS Hooks 2.0, Feedback).
        {"outcome": "overridden", "outcomeTimestamp": "2020-12-11T00:00:00Z"},
        {"outcome": "overridden", "outcomeTimestamp": "2020-12-11T00:00:00Z",
         "overrideReason": {"reason": {"code": "d7ecf885",
                                       "system": "https://example.com/cds-hooks/override-reason-system"},
                            "userComment": "A comment entered by the clinician."}},
        # What else 2.0 allows.
        {"outcome": "overridden", "outcomeTimestamp": "1985-04-12T23:20:50.52Z",
         "overrideReason": {"userComment": "no reason code"}},
        {"outcome": "overridden", "outcomeTimestamp": "2026-11-27T12:00:00-05:00",
         "overrideReason": {"reason": {"system": "s", "code": "x", "display": "X"}}},
        {"outcome": "overridden", "extension": {"a": 1},
         "outcomeTimestamp": "2026-11-27T12:00:00.123+02:00"},
        {"outcome": "overridden", "acceptedSuggestions": [],
         "outcomeTimestamp": "2026-11-27t12:00:00z"},  # RFC 3339 §5.6: T and Z in any case
    ],
)  # fmt: skip
def test_feedback_takes_every_shape_cds_hooks_2_allows(client, ehr, entry):
    card = _card(client, ehr, "p12")
    response = call(client, ehr, {"feedback": [{"card": card["uuid"], **entry}]}, path=FEEDBACK)
    assert response.status_code == 200, response.data[:800]


@pytest.mark.parametrize(
    "entry",
    [
        # The specification's own example (CDS Hooks 2.0, Feedback): a suggestion id.
        {"outcome": "accepted",
         "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
         "outcomeTimestamp": "2021-12-11T10:05:31Z"},
        {"outcome": "accepted", "acceptedSuggestions": [{"id": "s1"}], "extension": {"a": 1},
         "outcomeTimestamp": "2026-11-27T12:00:00.123+02:00"},
        {"outcome": "accepted", "acceptedSuggestions": [{"id": "never-offered"}],
         "outcomeTimestamp": "2026-11-28T12:00:00Z"},
        # Overridden, yet naming a suggestion accepted: none was offered either.
        {"outcome": "overridden", "acceptedSuggestions": [{"id": "s1"}],
         "outcomeTimestamp": "2026-11-27T12:00:00Z"},
    ],
)  # fmt: skip
def test_an_accepted_suggestion_the_card_never_offered_is_400(app, client, ehr, entry):
    """CDS Hooks 2.0: ``acceptedSuggestions`` names the card's suggestions; our cards offer
    none, so no id can be one of them (bad-input battery, session 9: it was stored)."""
    card = _card(client, ehr, "p12")
    assert "suggestions" not in card  # else feedback must check the ids against the card
    response = call(client, ehr, {"feedback": [{"card": card["uuid"], **entry}]}, path=FEEDBACK)
    issues = issues_of(response, 400)
    assert [issue["expression"] for issue in issues] == [["feedback[0].acceptedSuggestions[0].id"]]
    assert "offer none" in issues[0]["diagnostics"]
    assert app.extensions[EXTENSION].cds.feedback(card["uuid"], tenant=TENANT) == []


def test_a_card_uuid_is_matched_whatever_the_case_of_its_hex_digits(app, client, ehr):
    """RFC 9562 §4: a UUID's hex digits are case-insensitive (an upper-case uuid was a 404);
    the feedback is filed under the card as issued, the entry kept as sent."""
    card = _card(client, ehr, "p12")
    shouted = card["uuid"].upper()
    assert shouted != card["uuid"]
    response = call(client, ehr, feedback_entry(shouted), path=FEEDBACK)
    assert response.status_code == 200, response.data[:800]
    [stored] = app.extensions[EXTENSION].cds.feedback(card["uuid"], tenant=TENANT)
    assert stored.card_uuid == card["uuid"]
    assert json.loads(stored.body_json)["card"] == shouted
    # Only the case is forgiven: another spelling of the same UUID is no card of ours.
    for other in (f"{{{card['uuid']}}}", card["uuid"].replace("-", ""), f"urn:uuid:{shouted}"):
        issues = issues_of(call(client, ehr, feedback_entry(other), path=FEEDBACK), 404)
        assert issues[0]["expression"] == ["feedback[0].card"]


def test_a_bare_feedback_entry_is_accepted(client, ehr):
    card = _card(client, ehr, "p13")
    response = call(client, ehr, feedback_entry(card["uuid"]), path=FEEDBACK)
    assert response.status_code == 200, response.data[:800]


def test_feedback_on_an_unknown_or_foreign_card_is_404_and_stores_nothing(app, client, ehr):
    card = _card(client, ehr, "p14")
    other = Ehr(f"https://other-tenant-{uuid.uuid4().hex[:8]}.example/fhir")
    register(app, other, "clinic-b")
    body = {"feedback": [feedback_entry(card["uuid"]), feedback_entry(str(uuid.uuid4()))]}
    issues = issues_of(call(client, other, body, path=FEEDBACK), 404)
    assert [issue["expression"] for issue in issues] == [["feedback[0].card"], ["feedback[1].card"]]
    issues = issues_of(call(client, ehr, body, path=FEEDBACK), 404)
    assert [issue["expression"] for issue in issues] == [["feedback[1].card"]]
    assert app.extensions[EXTENSION].cds.feedback(card["uuid"], tenant=TENANT) == []


@pytest.mark.parametrize(
    ("body", "expression"),
    [
        ({}, "feedback"),
        ({"feedback": []}, "feedback"),
        ({"feedback": [{"outcome": "accepted"}]}, "feedback[0].card"),
        ({"feedback": [{"card": "c", "outcome": "rejected"}]}, "feedback[0].outcome"),
        ({"feedback": [feedback_entry("c", outcomeTimestamp="yesterday")]},
         "feedback[0].outcomeTimestamp"),
        ({"feedback": [feedback_entry("c", "overridden", overrideReason="x")]},
         "feedback[0].overrideReason"),
    ],
)  # fmt: skip
def test_bad_feedback_is_400_naming_the_field(client, ehr, body, expression):
    issues = issues_of(call(client, ehr, body, path=FEEDBACK), 400)
    assert [expression] in [issue.get("expression") for issue in issues]


# --- links and browsers ---------------------------------------------------------------------------


def test_the_smart_link_appears_when_an_intake_app_is_configured(ehr):
    app = create_app({"TESTING": True, "CDS_INTAKE_APP_URL": "https://intake.example/launch"})
    register(app, ehr, TENANT)
    client = app.test_client()
    card = _card(client, ehr, "p15")
    assert {"label": "Open the twitch-triage intake", "url": "https://intake.example/launch",
            "type": "smart"} in card["links"]  # fmt: skip


def test_links_use_the_public_base_url(ehr):
    app = create_app({"TESTING": True, "PUBLIC_BASE_URL": "https://triage.example"})
    register(app, ehr, TENANT)
    client = app.test_client()
    token = ehr.token("https://triage.example" + SERVICE)
    intake = intake_for(client, VALID, "p16")
    response = call(client, ehr, hook_request("p16", intake), token=token)
    assert response.status_code == 200, response.data[:800]
    card = response.json["cards"][0]
    assert card["links"][0]["url"].startswith("https://triage.example/reports/")
    assert card["source"]["url"].startswith("https://triage.example/")


def test_nothing_stored_means_no_report_link(ehr):
    app = create_app({"TESTING": True, "STORE_ASSESSMENTS": False})
    register(app, ehr, TENANT)
    card = _card(app.test_client(), ehr, "p17")
    assert "links" not in card


def test_cors_for_browser_based_ehrs_follows_the_allowlist(ehr):
    app = create_app({"TESTING": True, "CORS_ORIGINS": "https://ehr-app.example"})
    register(app, ehr, TENANT)
    client = anonymous(app)
    allowed = client.options(
        SERVICE,
        headers={
            "Origin": "https://ehr-app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://ehr-app.example"
    assert "Authorization" in allowed.headers["Access-Control-Allow-Headers"]
    refused = client.options(
        SERVICE,
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 403
    intake = intake_for(app.test_client(), VALID, "p18")
    response = call(
        client, ehr, hook_request("p18", intake), headers={"Origin": "https://ehr-app.example"}
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://ehr-app.example"


# --- the contract: openapi.yaml describes what is sent and read -----------------------------


def _validator(component: str) -> Any:
    document = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    root = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    return Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _errors(component: str, instance: Any) -> list[str]:
    return [error.message for error in _validator(component).iter_errors(instance)]


@pytest.mark.parametrize(("name", "case"), EXAMPLES[:3], ids=EXAMPLE_IDS[:3])
def test_requests_and_answers_match_the_contract(client, ehr, name, case):
    assert _errors("CdsDiscovery", client.get("/cds-services").json) == []
    intake = intake_for(client, case["request"], "pc")
    request = hook_request("pc", intake)
    assert _errors("CdsRequest", request) == []
    response = call(client, ehr, request)
    assert _errors("CdsResponse", response.json) == [], name
    assert _errors("CdsResponse", call(client, ehr, hook_request("pc", None)).json) == []
    feedback = {"feedback": [feedback_entry(response.json["cards"][0]["uuid"])]}
    assert _errors("CdsFeedbackRequest", feedback) == []
    answer = call(client, ehr, feedback, path=FEEDBACK)
    assert _errors("CdsFeedbackResponse", answer.json) == []
    # The canary: a card off contract is caught.
    broken = copy.deepcopy(response.json)
    broken["cards"][0]["indicator"] = "hard-stop"
    broken["cards"][0]["summary"] = "x" * 140
    assert len(_errors("CdsResponse", broken)) == 2


@pytest.mark.parametrize("status", ["in-progress", "stopped"])
def test_an_unfinished_intake_is_never_called_completed(client, ehr, status):
    """The prefetch asks for status=completed; an EHR that sends another intake gets it
    triaged as it stands (unanswered = unknown), and the card says it was not finished."""
    intake = intake_for(client, dict(EXAMPLES)["seed-roller-skater-as-asked"]["request"], "p-u")
    finished = call(client, ehr, hook_request("p-u", intake)).json["cards"][0]["detail"]
    assert "Intake completed 2026" in finished
    assert "not finished" not in finished
    intake["status"] = status
    detail = call(client, ehr, hook_request("p-u", intake)).json["cards"][0]["detail"]
    assert "Intake **not finished** (status " in detail
    assert status.replace("-", "\\-") in detail
    assert "completed" not in detail
    assert "last saved 2026" in detail


@pytest.mark.parametrize("length", [256, 3000])
def test_a_long_hook_instance_is_400_saying_its_own_limit(client, ehr, length):
    """Over 2,048 characters it said "at most 2048", though the limit is 255 (review)."""
    body = hook_request("p8", None)
    body["hookInstance"] = "h" * length
    issues = issues_of(call(client, ehr, body), 400)
    (issue,) = [i for i in issues if i.get("expression") == ["hookInstance"]]
    assert (
        issue["diagnostics"] == "hookInstance: must be a non-empty string of at most 255 characters"
    )
