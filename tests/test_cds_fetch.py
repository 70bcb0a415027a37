"""CDS Hooks without prefetch: the intake is read from the EHR's FHIR server (issue 13).

The EHR's FHIR server is a real HTTP server on loopback, started by the test; it
checks the bearer token the request's ``fhirAuthorization`` handed over. The
data that cannot be had is a 412.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cds_support import Ehr, LoopbackServer, call, hook_request, intake_for, register
from flask import Flask

TENANT = "clinic-a"
VALID = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}
TOKEN = "ehr-issued-access-token-" + uuid.uuid4().hex


@pytest.fixture
def ehr(app: Flask) -> Ehr:
    found = Ehr(f"https://ehr-{uuid.uuid4().hex[:8]}.example/fhir")
    register(app, found, TENANT)
    return found


def _searchset(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }


def _authorized(server: str) -> dict[str, Any]:
    return {
        "fhirServer": server,
        "fhirAuthorization": {
            "access_token": TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/QuestionnaireResponse.read",
            "subject": "twitch-triage",
        },
    }


def test_the_intake_is_fetched_with_the_ehrs_token(client, ehr):
    intake = intake_for(client, {**VALID, "symptoms": {"confusion": True}}, "p1")
    with LoopbackServer({"/fhir/QuestionnaireResponse": (200, {}, _searchset(intake))}) as fhir:
        body = hook_request("p1", prefetch=False, **_authorized(fhir.url + "/fhir"))
        response = call(client, ehr, body)
        assert response.status_code == 200, response.data[:800]
        [card] = response.json["cards"]
        assert card["indicator"] == "critical"
        [(path, authorization)] = fhir.calls
    assert authorization == f"Bearer {TOKEN}"
    url = urlsplit(path)
    assert url.path == "/fhir/QuestionnaireResponse"
    assert parse_qs(url.query) == {
        "patient": ["p1"],
        "questionnaire": ["https://twitch-triage.org/fhir/Questionnaire/twitch-triage-intake"],
        "status": ["completed"],
        "_sort": ["-authored"],
        "_count": ["1"],
    }


def test_an_empty_search_gives_no_card(client, ehr):
    with LoopbackServer({"/QuestionnaireResponse": (200, {}, _searchset())}) as fhir:
        response = call(client, ehr, hook_request("p1", prefetch=False, **_authorized(fhir.url)))
    assert response.status_code == 200
    assert response.json == {"cards": []}


def test_a_fetched_intake_of_another_patient_is_412(client, ehr):
    intake = intake_for(client, VALID, "someone-else")
    with LoopbackServer({"/QuestionnaireResponse": (200, {}, _searchset(intake))}) as fhir:
        response = call(client, ehr, hook_request("p1", prefetch=False, **_authorized(fhir.url)))
    assert response.status_code == 412
    assert response.json["issue"][0]["expression"] == ["QuestionnaireResponse.subject.reference"]


@pytest.mark.parametrize(
    ("route", "needle"),
    [
        ((401, {}, {"resourceType": "OperationOutcome"}), "HTTP 401"),
        ((500, {}, b"oops"), "HTTP 500"),
        ((200, {}, b"not json"), "JSON"),
        ((200, {}, {"resourceType": "OperationOutcome", "issue": []}), "OperationOutcome"),
        ((200, {}, {"resourceType": "Patient"}), "neither"),
    ],
    ids=["401", "500", "not-json", "outcome", "wrong-type"],
)
def test_data_that_cannot_be_had_is_412(client, ehr, route, needle):
    with LoopbackServer({"/QuestionnaireResponse": route}) as fhir:
        response = call(client, ehr, hook_request("p1", prefetch=False, **_authorized(fhir.url)))
    assert response.status_code == 412, response.data[:500]
    issue = response.json["issue"][0]
    assert needle in issue["diagnostics"]
    assert TOKEN not in response.get_data(as_text=True)


def test_an_unreachable_server_is_412(client, ehr):
    with LoopbackServer({}) as fhir:
        url = fhir.url  # closed when the block ends: nothing listens there any more
    response = call(client, ehr, hook_request("p1", prefetch=False, **_authorized(url)))
    assert response.status_code == 412
    assert response.json["issue"][0]["expression"] == ["fhirServer"]


def test_a_redirect_to_another_host_is_not_followed(client, ehr):
    intake = intake_for(client, VALID, "p1")
    with LoopbackServer({"/QuestionnaireResponse": (200, {}, _searchset(intake))}) as elsewhere:
        # 127.0.0.1 and localhost are different hosts to a browser and to us.
        target = elsewhere.url.replace("127.0.0.1", "localhost") + "/QuestionnaireResponse"
        with LoopbackServer({"/QuestionnaireResponse": (302, {"Location": target}, b"")}) as fhir:
            body = hook_request("p1", prefetch=False, **_authorized(fhir.url))
            response = call(client, ehr, body)
        assert response.status_code == 412, response.data[:500]
        assert "redirected" in response.json["issue"][0]["diagnostics"]
        assert elsewhere.calls == []  # the token never went there


def test_a_redirect_within_the_server_is_followed_with_the_token(client, ehr):
    intake = intake_for(client, VALID, "p1")
    routes: dict[str, Any] = {"/new/QuestionnaireResponse": (200, {}, _searchset(intake))}
    with LoopbackServer(routes) as fhir:
        routes["/QuestionnaireResponse"] = (
            302,
            {"Location": fhir.url + "/new/QuestionnaireResponse"},
            b"",
        )
        response = call(client, ehr, hook_request("p1", prefetch=False, **_authorized(fhir.url)))
        assert response.status_code == 200, response.data[:500]
        assert [auth for _, auth in fhir.calls] == [f"Bearer {TOKEN}"] * 2


def test_a_prefetch_outcome_falls_back_to_the_fhir_server(client, ehr):
    intake = intake_for(client, VALID, "p1")
    failed = {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}
    with LoopbackServer({"/QuestionnaireResponse": (200, {}, _searchset(intake))}) as fhir:
        body = hook_request("p1", failed, **_authorized(fhir.url))
        response = call(client, ehr, body)
        assert response.status_code == 200, response.data[:500]
        assert len(fhir.calls) == 1
