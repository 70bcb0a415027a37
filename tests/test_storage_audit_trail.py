"""Every access to patient data is audited, by the agent that acted (findings F3 to F6).

Real app and store, on SQLite and PostgreSQL (``storage_support``); the AuditEvents are
read back through ``GET /fhir/AuditEvent`` by an API client of the tenant, as a partner
would, and looked up by the request id the response named. Attempts no tenant may see
(an anonymous caller, an unverified link) are read from the store, as an operator would.

- F3: every CDS Hooks call writes an ``operation`` AuditEvent (the EHR the requestor),
  a call answered ``{"cards": []}`` and one that fetched the intake from the EHR's FHIR
  server with the EHR's token included.
- F4: an intake submission refused at the HTTP edge (400, 413, 415) is audited under
  the link's tenant.
- F5: a refused request of an identified caller on the data API (``/v1/…``,
  ``/fhir/…``) is audited even when no route matched; anonymous ones are only counted.
- F6: an intake page view and submission name the browser holding the signed link as
  the requestor, the client that issued the link as a second agent, and the link.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

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
    searchset,
)
from conftest import anonymous
from examples import EXAMPLES
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from sqlalchemy import select
from storage_support import app_on_each_backend  # noqa: F401 (app on SQLite and PostgreSQL)

from api.auth.clients import create_client
from api.config import EXTENSION
from api.fhir.audit import CLIENT_ID_SYSTEM
from api.fhir.search import ID_TEXT
from api.services.cds.service import EHR_SEARCH
from api.services.intake import LINK_AGENT
from api.storage.documents import unpack
from api.storage.intake_links import find_link
from api.storage.models import AuditRecord
from api.storage_http import unmatched_attempt

FHIR = "application/fhir+json"
SEED = dict(EXAMPLES)["seed-roller-skater-as-asked"]
VALID = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}
TOKEN = "ehr-access-token-" + uuid.uuid4().hex


# --- reading the trail back -----------------------------------------------------------


def _request_id(event: dict[str, Any]) -> str:
    [value] = [
        e["what"]["identifier"]["value"]
        for e in event["entity"]
        if e.get("description") == "request id"
    ]
    return value.removeprefix("urn:uuid:")


def partner_events(client: FlaskClient, response: Any, **search: str) -> list[dict[str, Any]]:
    """The AuditEvents of ``response``'s request a client of the tenant finds by search."""
    request_id = response.headers["X-Request-ID"]
    page = client.get(f"/fhir/AuditEvent?{urlencode({'_count': '100', **search})}")
    assert page.status_code == 200, page.data[:300]
    found = [entry["resource"] for entry in page.get_json().get("entry", [])]
    return [event for event in found if _request_id(event) == request_id]


def stored_events(app: Flask, response: Any) -> list[tuple[str | None, dict[str, Any]]]:
    """(tenant, AuditEvent) of every row the store holds for ``response``'s request."""
    store = app.extensions[EXTENSION].store
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(AuditRecord.tenant, AuditRecord.body).where(
                AuditRecord.request_id == response.headers["X-Request-ID"]
            )
        ).all()
    return [(tenant, json.loads(unpack(body))) for tenant, body in rows]


def requestor(event: dict[str, Any]) -> dict[str, Any]:
    [agent] = [agent for agent in event["agent"] if agent["requestor"]]
    return agent["who"]


def client_agents(event: dict[str, Any]) -> list[tuple[str, bool]]:
    """(client id, requestor) of every agent named by an API client id."""
    return [
        (agent["who"]["identifier"]["value"], agent["requestor"])
        for agent in event["agent"]
        if agent["who"].get("identifier", {}).get("system") == CLIENT_ID_SYSTEM
    ]


def references(event: dict[str, Any]) -> list[str]:
    return [e["what"]["reference"] for e in event["entity"] if "reference" in e.get("what", {})]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- F3: every CDS Hooks call -----------------------------------------------------------


@pytest.fixture
def ehr(app: Flask) -> Ehr:
    found = Ehr(f"https://ehr-{uuid.uuid4().hex[:8]}.example/fhir")
    register(app, found, TENANT)
    return found


@pytest.fixture
def clinic(app: Flask) -> FlaskClient:
    """A test client sending the key of an API client of the EHR's tenant."""
    created = create_client(app.extensions[EXTENSION].clients, tenant=TENANT)
    partner = anonymous(app)
    partner.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {created.api_key}"
    return partner


def _ehr_id(app: Flask, ehr: Ehr) -> str:
    return app.extensions[EXTENSION].cds.by_iss(ehr.iss).id


def _authorized(server: str) -> dict[str, Any]:
    return authorized(server, TOKEN)


def test_a_call_answered_with_no_card_is_audited(app, client, clinic, ehr):
    patient = f"p-{uuid.uuid4().hex[:10]}"
    response = call(client, ehr, hook_request(patient, None))
    assert response.status_code == 200
    assert response.json == {"cards": []}
    [event] = partner_events(clinic, response, entity=f"Patient/{patient}")
    assert event["subtype"][0]["code"] == "operation"
    assert (event["action"], event["outcome"]) == ("E", "0")
    assert requestor(event)["identifier"]["value"] == _ehr_id(app, ehr)
    assert references(event) == [f"Patient/{patient}"]
    patient_entity = event["entity"][0]
    assert patient_entity["role"]["code"] == "1"  # object-role Patient
    assert patient not in event["text"]["div"]  # ids of patients stay out of the text


def test_a_fetch_from_the_ehr_that_finds_nothing_is_audited_with_the_search_sent(
    app, client, clinic, ehr
):
    with LoopbackServer({"/fhir/QuestionnaireResponse": (200, {}, searchset())}) as fhir:
        register(app, ehr, TENANT, fhir_servers=(fhir.url + "/fhir",))
        body = hook_request("p-fetch-none", prefetch=False, **_authorized(fhir.url + "/fhir"))
        response = call(client, ehr, body)
        [(sent, authorization)] = fhir.calls
    assert response.status_code == 200
    assert response.json == {"cards": []}
    assert authorization == f"Bearer {TOKEN}"  # patient data was read with the EHR's token
    [event] = partner_events(clinic, response, subtype="operation")
    assert event["outcome"] == "0"
    [query] = [e for e in event["entity"] if "query" in e]
    assert query["description"] == EHR_SEARCH
    assert base64.b64decode(query["query"]).decode() == fhir.url + sent
    assert TOKEN not in json.dumps(event)  # the token is never recorded


def test_a_fetched_intake_that_gives_a_card_is_named_with_the_assessment(app, client, clinic, ehr):
    intake = intake_for(client, {**VALID, "symptoms": {"confusion": True}}, "p-fetch-card")
    intake["id"] = "ehr-qr-1"
    with LoopbackServer({"/fhir/QuestionnaireResponse": (200, {}, searchset(intake))}) as fhir:
        register(app, ehr, TENANT, fhir_servers=(fhir.url + "/fhir",))
        body = hook_request("p-fetch-card", prefetch=False, **_authorized(fhir.url + "/fhir"))
        response = call(client, ehr, body)
    assert response.status_code == 200, response.data[:500]
    [card] = response.json["cards"]
    bundle_id = urlsplit(card["links"][0]["url"]).path.rsplit("/", 1)[1]
    [operation] = partner_events(clinic, response, subtype="operation")
    assert references(operation) == [
        "Patient/p-fetch-card",
        f"{fhir.url}/fhir/QuestionnaireResponse/ehr-qr-1",
        f"Bundle/{bundle_id}",
    ]
    # The stored assessment keeps its own create AuditEvent.
    [created] = partner_events(clinic, response, subtype="create")
    assert references(created) == [f"Bundle/{bundle_id}"]


def test_a_refused_call_is_an_operation_naming_what_it_read(app, client, clinic, ehr):
    other = intake_for(client, VALID, "someone-else")
    with LoopbackServer({"/fhir/QuestionnaireResponse": (200, {}, searchset(other))}) as fhir:
        register(app, ehr, TENANT, fhir_servers=(fhir.url + "/fhir",))
        body = hook_request("p-wrong", prefetch=False, **_authorized(fhir.url + "/fhir"))
        response = call(client, ehr, body)
    assert response.status_code == 412
    [event] = partner_events(clinic, response, entity="Patient/p-wrong")
    assert event["subtype"][0]["code"] == "operation"
    assert (event["outcome"], event["outcomeDesc"]) == ("4", "HTTP 412")
    assert any("query" in e for e in event["entity"])  # the fetch happened: it is named
    assert requestor(event)["identifier"]["value"] == _ehr_id(app, ehr)


def test_a_malformed_call_is_audited_without_a_patient(client, clinic, ehr):
    response = call(client, ehr, {"hook": "patient-view", "context": {"patientId": "a b"}})
    assert response.status_code == 400
    [event] = partner_events(clinic, response, subtype="operation", outcome="4")
    assert references(event) == []  # an invalid patientId is not named


# --- F4: intake submissions refused at the edge -----------------------------------------


def _link(client: FlaskClient) -> dict[str, Any]:
    created = client.post("/v1/intake-links", json={"patient": {"reference": "Patient/in-1"}})
    assert created.status_code == 201
    return created.get_json()


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b"{", FHIR, 400),
        (b"{}", "text/plain", 415),
        (json.dumps({"x": "y" * 70_000}).encode(), FHIR, 413),
    ],
)
def test_a_submission_refused_at_the_edge_is_audited_under_the_links_tenant(
    app, client, data, content_type, status
):
    link = _link(client)
    response = anonymous(app).post(_path(link["url"]), data=data, content_type=content_type)
    assert response.status_code == status
    [event] = partner_events(client, response, entity=f"Task/{link['id']}", subtype="create")
    assert (event["outcome"], event["outcomeDesc"]) == ("4", f"HTTP {status}")
    assert requestor(event) == {"display": LINK_AGENT}
    assert client_agents(event) == [(app.config["TEST_CLIENT_ID"], False)]
    # The link was not used up by the refusal.
    page = anonymous(app).get(_path(link["url"]))
    assert page.status_code == 200


def test_a_malformed_submission_on_a_forged_link_is_audited_for_operators_only(app, client):
    link = _link(client)
    forged = urlsplit(link["url"]).path + "?expires=9999999999&signature=AAAA"
    response = anonymous(app).post(forged, data=b"{", content_type=FHIR)
    assert response.status_code == 400
    [(tenant, event)] = stored_events(app, response)
    assert tenant is None  # nothing of an unverified link is trusted
    assert requestor(event) == {"display": LINK_AGENT}
    assert references(event) == []
    assert partner_events(client, response, subtype="create", outcome="4") == []


# --- F5: refusals no route matched --------------------------------------------------------

BUNDLE = "01a22146-b913-7000-9b27-1361a4e5c3e7"
UNMATCHED = [
    # method, path, status, subtype, entity named
    ("PUT", "/v1/triage", 405, "update", None),
    ("POST", f"/fhir/Bundle/{BUNDLE}", 405, "create", f"Bundle/{BUNDLE}"),
    ("GET", "/fhir/Bundle/a_b", 404, "read", None),
    ("GET", "/fhir/Bundle/" + "a" * 65, 404, "read", None),
    ("GET", "/fhir/Patient/1", 404, "read", "Patient/1"),
    ("GET", "/fhir/Bundle", 404, "search-type", None),
    ("DELETE", "/fhir/Observation/o-1", 405, "delete", "Observation/o-1"),
    ("GET", "/v1/assessments", 404, "read", None),
]


@pytest.mark.parametrize("case", UNMATCHED, ids=lambda case: f"{case[0]} {case[1][:30]}")
def test_an_identified_callers_unmatched_request_is_audited(app, client, case):
    method, path, status, subtype, entity = case
    response = client.open(path, method=method, json={} if method in ("PUT", "POST") else None)
    assert response.status_code == status
    assert response.get_json()["resourceType"] == "OperationOutcome"
    [event] = partner_events(client, response, outcome="4", subtype=subtype)
    assert event["outcomeDesc"] == f"HTTP {status}"
    assert requestor(event)["identifier"]["value"] == app.config["TEST_CLIENT_ID"]
    assert references(event) == ([] if entity is None else [entity])
    if entity is not None:  # found by the entity it names, as any other event
        assert partner_events(client, response, entity=entity) == [event]


def _unmatched_count(method: str, status: int) -> float:
    sample = REGISTRY.get_sample_value(
        "twitch_triage_http_requests_total",
        {"method": method, "route": "<unmatched>", "status": str(status)},
    )
    return sample or 0.0


@pytest.mark.parametrize("case", UNMATCHED, ids=lambda case: f"{case[0]} {case[1][:30]}")
def test_an_anonymous_unmatched_request_is_counted_not_audited(app, case):
    method, path, status, _, _ = case
    expected = 405 if status == 405 else 401  # an unknown path needs a key first
    before = _unmatched_count(method, expected)
    for headers in ({}, bearer("not-a-key")):
        response = anonymous(app).open(path, method=method, headers=headers)
        assert response.status_code == expected
        assert stored_events(app, response) == []
    assert _unmatched_count(method, expected) == before + 2


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/fhir/Questionnaire/unknown", 404),
        ("DELETE", "/fhir/metadata", 405),
        ("POST", "/fhir/CodeSystem/x", 405),
        ("GET", "/healthz/x", 404),
    ],
)
def test_published_conformance_resources_and_other_paths_are_not_audited(
    app, client, method, path, status
):
    response = client.open(path, method=method)
    assert response.status_code == status
    assert stored_events(app, response) == []


_PATH_TEXT = st.text(
    alphabet=st.sampled_from("AaBbPpQZz019-._$/~ %"), min_size=0, max_size=80
) | st.sampled_from(["Patient/1", "Bundle/" + "a" * 64, "A" * 33 + "/x", "$triage"])


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "TRACE"]),
    root=st.sampled_from(["/fhir/", "/v1/", "/reports/", "/intake/", "/", "/fhirx/"]),
    rest=_PATH_TEXT,
)
def test_an_attempt_names_an_entity_only_when_it_is_a_valid_reference(method, root, rest):
    attempt = unmatched_attempt(method, root + rest)
    if root not in ("/fhir/", "/v1/"):
        assert attempt is None
        return
    first = rest.split("/")[0]
    if root == "/fhir/" and first in ("metadata", ".well-known", "Questionnaire", "CodeSystem"):
        assert attempt is None
        return
    assert attempt is not None
    if attempt.entity is not None:
        resource_type, resource_id = attempt.entity
        # It fits the audit columns and is what a search by entity accepts.
        assert re.fullmatch(r"[A-Z][A-Za-z]{0,31}", resource_type)
        assert re.fullmatch(ID_TEXT, resource_id)
        assert rest.startswith(f"{resource_type}/{resource_id}")


@pytest.fixture(name="sqlite_app")
def sqlite_app_fixture(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    import api  # noqa: PLC0415 (conftest's keyed create_app)

    folder = tmp_path_factory.mktemp("unmatched")
    return api.create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{folder}/s.sqlite3"})


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
    rest=_PATH_TEXT,
)
def test_any_refused_data_api_request_of_a_client_is_audited_once(sqlite_app, method, rest):
    assume(not {".", ".."} & set(rest.split("/")))  # the client would leave /fhir/
    client = sqlite_app.test_client()
    response = client.open("/fhir/" + rest.replace("%", "%25").replace(" ", "%20"), method=method)
    assert response.status_code < 500
    events = stored_events(sqlite_app, response)
    published = rest.split("/")[0] in ("metadata", ".well-known", "Questionnaire", "CodeSystem")
    if response.status_code < 400 or published:
        assert len(events) <= 1  # a success audits itself (or is published: none)
    else:
        assert len(events) == 1
        [(tenant, event)] = events
        assert tenant == "local"
        assert event["outcome"] == "4"


# --- F6: the browser holding an intake link is the requestor ----------------------------


def test_the_intake_browser_is_the_requestor_and_the_link_is_named(app, client):
    link = _link(client)
    browser = anonymous(app)
    page = browser.get(_path(link["url"]))
    assert page.status_code == 200
    [view] = partner_events(client, page, entity=f"Task/{link['id']}", subtype="read")
    assert requestor(view) == {"display": LINK_AGENT}
    assert client_agents(view) == [(app.config["TEST_CLIENT_ID"], False)]

    qr = client.post("/v1/triage", json=SEED["request"]).get_json()["entry"][0]["resource"]
    for key in ("id", "meta", "subject"):
        qr.pop(key, None)
    submitted = browser.post(_path(link["url"]), data=json.dumps(qr), content_type=FHIR)
    assert submitted.status_code == 303
    bundle_id = _bundle_of_link(app, link["id"])
    [created] = partner_events(client, submitted, entity=f"Bundle/{bundle_id}")
    assert (created["subtype"][0]["code"], created["outcome"]) == ("create", "0")
    assert requestor(created) == {"display": LINK_AGENT}
    assert client_agents(created) == [(app.config["TEST_CLIENT_ID"], False)]
    assert references(created) == [f"Bundle/{bundle_id}", f"Task/{link['id']}"]
    # The assessment is still filed under the client that issued the link.
    stored = app.extensions[EXTENSION].store.assessment_columns(bundle_id)
    assert stored["client"] == app.config["TEST_CLIENT_ID"]


def test_a_refused_intake_page_names_the_browser_not_an_api_client(app, client):
    link = _link(client)
    response = anonymous(app).get(urlsplit(link["url"]).path + "?expires=1&signature=x")
    assert response.status_code == 404
    [(tenant, event)] = stored_events(app, response)
    assert tenant is None
    assert requestor(event) == {"display": LINK_AGENT}
    assert client_agents(event) == []


def _bundle_of_link(app: Flask, link_id: str) -> str:
    row = find_link(app.extensions[EXTENSION].store, link_id)
    assert row is not None
    assert row.assessment_id is not None
    return row.assessment_id
