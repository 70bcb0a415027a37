"""CDS Hooks without prefetch: the intake is read from the EHR's FHIR server (issue 13).

The EHR's FHIR server is a real HTTP server on loopback, started by the test and
registered for the EHR (``ehrs register --fhir-server``); it checks the bearer token
the request's ``fhirAuthorization`` handed over. The data that cannot be had is a
412, and so is a ``fhirServer`` not registered for the calling EHR: nothing is ever
fetched from it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cds_support import (
    TENANT,
    Ehr,
    LoopbackServer,
    authorized,
    call,
    hook_request,
    intake_for,
    register,
    registered_ehr,  # noqa: F401 (the ehr fixture)
    searchset,
)
from flask import Flask

from api.services.cds import service as cds_service

VALID = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}
TOKEN = "ehr-issued-access-token-" + uuid.uuid4().hex


@pytest.fixture
def allow(app: Flask, ehr: Ehr) -> Callable[..., None]:
    """Register the EHR again with exactly these FHIR servers (the operator's list)."""

    def registered(*servers: str) -> None:
        register(app, ehr, TENANT, fhir_servers=servers)

    return registered


def _authorized(server: str) -> dict[str, Any]:
    return authorized(server, TOKEN)


def test_the_intake_is_fetched_with_the_ehrs_token(client, ehr, allow):
    intake = intake_for(client, {**VALID, "symptoms": {"confusion": True}}, "p1")
    with LoopbackServer({"/fhir/QuestionnaireResponse": (200, {}, searchset(intake))}) as fhir:
        allow(fhir.url + "/fhir")
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


def test_a_long_number_in_a_fetched_intake_keeps_its_side_of_the_threshold(client, ehr, allow):
    """31.99999999999999999 °C is below 32 (RF-SEVERE-HYPOTHERMIA: call an ambulance),
    although its nearest float is 32.0, in an intake read from the EHR's server too."""
    intake = intake_for(client, {**VALID, "body_temperature_c": 31.123}, "p-cold")
    data = json.dumps(searchset(intake)).encode()
    assert b'"valueDecimal": 31.123}' in data
    data = data.replace(b'"valueDecimal": 31.123}', b'"valueDecimal": 31.99999999999999999}')
    with LoopbackServer({"/QuestionnaireResponse": (200, {}, data)}) as fhir:
        allow(fhir.url)
        response = call(
            client, ehr, hook_request("p-cold", prefetch=False, **_authorized(fhir.url))
        )
    assert response.status_code == 200, response.data[:800]
    [card] = response.json["cards"]
    assert card["source"]["topic"]["code"] == "emergency_ambulance"


def test_an_empty_search_gives_no_card(client, ehr, allow):
    with LoopbackServer({"/QuestionnaireResponse": (200, {}, searchset())}) as fhir:
        allow(fhir.url)
        response = call(client, ehr, hook_request("p1", prefetch=False, **_authorized(fhir.url)))
    assert response.status_code == 200
    assert response.json == {"cards": []}


def test_a_fetched_intake_of_another_patient_is_412(client, ehr, allow):
    intake = intake_for(client, VALID, "someone-else")
    with LoopbackServer({"/QuestionnaireResponse": (200, {}, searchset(intake))}) as fhir:
        allow(fhir.url)
        response = call(client, ehr, hook_request("p1", prefetch=False, **_authorized(fhir.url)))
    assert response.status_code == 412
    assert response.json["issue"][0]["expression"] == ["QuestionnaireResponse.subject.reference"]


def _failed_search() -> dict[str, Any]:
    """A searchset with no match and an error outcome: the search failed (not "none")."""
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "fatal"}]}
    entry = {"resource": outcome, "search": {"mode": "outcome"}}
    return {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": [entry]}


@pytest.mark.parametrize(
    ("route", "needle"),
    [
        ((401, {}, {"resourceType": "OperationOutcome"}), "HTTP 401"),
        ((500, {}, b"oops"), "HTTP 500"),
        ((200, {}, b"not json"), "JSON"),
        ((200, {}, {"resourceType": "OperationOutcome", "issue": []}), "OperationOutcome"),
        ((200, {}, {"resourceType": "Patient"}), "neither"),
        ((200, {}, _failed_search()), "OperationOutcome"),
    ],
    ids=["401", "500", "not-json", "outcome", "wrong-type", "searchset-with-error-outcome"],
)
def test_data_that_cannot_be_had_is_412(client, ehr, allow, route, needle):
    with LoopbackServer({"/QuestionnaireResponse": route}) as fhir:
        allow(fhir.url)
        response = call(client, ehr, hook_request("p1", prefetch=False, **_authorized(fhir.url)))
    assert response.status_code == 412, response.data[:500]
    issue = response.json["issue"][0]
    assert needle in issue["diagnostics"]
    assert TOKEN not in response.get_data(as_text=True)


def test_an_unreachable_server_is_412(client, ehr, allow):
    with LoopbackServer({}) as fhir:
        url = fhir.url  # closed when the block ends: nothing listens there any more
    allow(url)
    response = call(client, ehr, hook_request("p1", prefetch=False, **_authorized(url)))
    assert response.status_code == 412
    assert response.json["issue"][0]["expression"] == ["fhirServer"]


def test_a_redirect_to_another_host_is_not_followed(client, ehr, allow):
    intake = intake_for(client, VALID, "p1")
    with LoopbackServer({"/QuestionnaireResponse": (200, {}, searchset(intake))}) as elsewhere:
        # 127.0.0.1 and localhost are different hosts to a browser and to us.
        target = elsewhere.url.replace("127.0.0.1", "localhost") + "/QuestionnaireResponse"
        with LoopbackServer({"/QuestionnaireResponse": (302, {"Location": target}, b"")}) as fhir:
            allow(fhir.url)  # only the server the EHR named, not where it redirects
            body = hook_request("p1", prefetch=False, **_authorized(fhir.url))
            response = call(client, ehr, body)
        assert response.status_code == 412, response.data[:500]
        assert "redirected" in response.json["issue"][0]["diagnostics"]
        assert elsewhere.calls == []  # the token never went there


def test_a_redirect_within_the_server_is_followed_with_the_token(client, ehr, allow):
    intake = intake_for(client, VALID, "p1")
    routes: dict[str, Any] = {"/new/QuestionnaireResponse": (200, {}, searchset(intake))}
    with LoopbackServer(routes) as fhir:
        routes["/QuestionnaireResponse"] = (
            302,
            {"Location": fhir.url + "/new/QuestionnaireResponse"},
            b"",
        )
        allow(fhir.url)
        response = call(client, ehr, hook_request("p1", prefetch=False, **_authorized(fhir.url)))
        assert response.status_code == 200, response.data[:500]
        assert [auth for _, auth in fhir.calls] == [f"Bearer {TOKEN}"] * 2


def test_a_prefetch_outcome_falls_back_to_the_fhir_server(client, ehr, allow):
    intake = intake_for(client, VALID, "p1")
    failed = {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}
    with LoopbackServer({"/QuestionnaireResponse": (200, {}, searchset(intake))}) as fhir:
        allow(fhir.url)
        body = hook_request("p1", failed, **_authorized(fhir.url))
        response = call(client, ehr, body)
        assert response.status_code == 200, response.data[:500]
        assert len(fhir.calls) == 1


# --- only registered FHIR servers are ever contacted -----------------------------------------


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL the service fetches from an EHR (the real fetch still runs)."""
    urls: list[str] = []
    real = cds_service.get_json

    def recording(url: str, **kwargs: Any) -> Any:
        urls.append(url)
        return real(url, **kwargs)

    monkeypatch.setattr(cds_service, "get_json", recording)
    return urls


def _refused(response: Any) -> dict[str, Any]:
    """The one 412 issue of a fhirServer that is not registered for the EHR."""
    assert response.status_code == 412, response.data[:800]
    assert response.json["resourceType"] == "OperationOutcome"
    [issue] = response.json["issue"]
    assert issue["expression"] == ["fhirServer"]
    assert "not a FHIR server registered for this EHR" in issue["diagnostics"]
    assert "--fhir-server" in issue["diagnostics"]  # how an operator registers one
    assert TOKEN not in response.get_data(as_text=True)
    return issue


@pytest.mark.parametrize(
    "named",
    [
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "https://internal.example/fhir",
        "https://ehr.example/fhir/other",
        "http://[::1]:9/fhir",
    ],
)
def test_an_unregistered_fhir_server_is_never_fetched(client, ehr, allow, fetched, named):
    intake = intake_for(client, VALID, "p1")
    with LoopbackServer({"/QuestionnaireResponse": (200, {}, searchset(intake))}) as fhir:
        allow(fhir.url, "https://ehr.example/fhir")
        response = call(client, ehr, hook_request("p1", prefetch=False, **_authorized(named)))
        _refused(response)
        assert fhir.calls == []
    assert fetched == []


def test_another_loopback_port_is_never_contacted(client, ehr, allow, fetched):
    intake = intake_for(client, VALID, "p1")
    routes = {"/QuestionnaireResponse": (200, {}, searchset(intake))}
    with LoopbackServer(routes) as registered, LoopbackServer(routes) as admin:
        allow(registered.url)
        for named in (admin.url, admin.url.replace("127.0.0.1", "localhost")):
            _refused(call(client, ehr, hook_request("p1", prefetch=False, **_authorized(named))))
        # A prefetch that failed does not open the way either.
        failed = {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}
        _refused(call(client, ehr, hook_request("p1", failed, **_authorized(admin.url))))
        assert admin.calls == []
        assert registered.calls == []
    assert fetched == []


def test_an_ehr_without_registered_servers_relies_on_prefetch(client, ehr, fetched):
    intake = intake_for(client, VALID, "p1")
    with LoopbackServer({"/QuestionnaireResponse": (200, {}, searchset(intake))}) as fhir:
        _refused(call(client, ehr, hook_request("p1", prefetch=False, **_authorized(fhir.url))))
        assert fhir.calls == []
        # The same intake as prefetch still gives the card.
        response = call(client, ehr, hook_request("p1", intake, **_authorized(fhir.url)))
        assert response.status_code == 200, response.data[:800]
        assert len(response.json["cards"]) == 1
        assert fhir.calls == []
    assert fetched == []


def test_another_ehrs_server_is_not_this_ehrs(app, client, ehr, fetched):
    other = Ehr(f"https://other-{uuid.uuid4().hex[:8]}.example/fhir")
    intake = intake_for(client, VALID, "p1")
    with LoopbackServer({"/QuestionnaireResponse": (200, {}, searchset(intake))}) as fhir:
        register(app, other, "clinic-b", fhir_servers=(fhir.url,))
        _refused(call(client, ehr, hook_request("p1", prefetch=False, **_authorized(fhir.url))))
        assert fhir.calls == []
        response = call(client, other, hook_request("p1", prefetch=False, **_authorized(fhir.url)))
        assert response.status_code == 200, response.data[:800]
        assert len(fhir.calls) == 1
    [url] = fetched
    assert url.startswith(fhir.url + "/QuestionnaireResponse?")


@pytest.mark.parametrize(
    ("registered", "named"),
    [("{url}/fhir", "{url}/fhir/"), ("{url}/fhir/", "{url}/fhir"), ("{url}/fhir//", "{url}/fhir")],
)
def test_a_trailing_slash_makes_no_difference(client, ehr, allow, registered, named):
    intake = intake_for(client, VALID, "p1")
    intake["subject"] = {"reference": "{url}/fhir/Patient/p1"}
    with LoopbackServer({"/fhir/QuestionnaireResponse": (200, {}, searchset(intake))}) as fhir:
        intake["subject"]["reference"] = intake["subject"]["reference"].format(url=fhir.url)
        allow(registered.format(url=fhir.url))
        body = hook_request("p1", prefetch=False, **_authorized(named.format(url=fhir.url)))
        response = call(client, ehr, body)
        assert response.status_code == 200, response.data[:800]
        assert len(response.json["cards"]) == 1  # the absolute subject on that server is p1
        [(path, authorization)] = fhir.calls
    assert path.startswith("/fhir/QuestionnaireResponse?")
    assert authorization == f"Bearer {TOKEN}"
