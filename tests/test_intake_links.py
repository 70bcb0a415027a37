"""Intake links (issue 14): creation, the signed page, one submission, the right patient.

Flask-client tests against the real app and store (SQLite, and PostgreSQL where the
claim's atomicity is at stake). The browser side is in tests/browser/test_intake_page.py.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from conftest import anonymous, create_app
from examples import EXAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.auth.clients import create_client, revoke_client
from api.config import EXTENSION
from api.services.intake import LINK_AGENT, REFUSED, open_intake_link
from api.services.links import INTAKE, REPORT
from api.storage.assessments import Exchange
from api.storage.intake_links import claim_link, find_link
from schemas.intake_links import DEFAULT_EXPIRES_IN, MAX_EXPIRES_IN, MIN_EXPIRES_IN

FHIR = "application/fhir+json"
SEED = dict(EXAMPLES)["seed-roller-skater-as-asked"]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app({"TESTING": True})


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def _link(client: Any, body: Any = None, **headers: str) -> dict[str, Any]:
    created = client.post("/v1/intake-links", json={} if body is None else body, headers=headers)
    assert created.status_code == 201, created.data[:500]
    return created.get_json()


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _qr(client: Any, request: dict[str, Any]) -> dict[str, Any]:
    """The QuestionnaireResponse of a request, as a form renderer would post it."""
    direct = client.post("/v1/triage", json=request)
    assert direct.status_code == 200, direct.data[:300]
    qr = direct.get_json()["entry"][0]["resource"]
    for key in ("id", "meta", "subject"):
        qr.pop(key, None)
    return qr


def _without(qr: dict[str, Any], link_id: str) -> dict[str, Any]:
    out = copy.deepcopy(qr)
    out["item"] = [item for item in out["item"] if item["linkId"] != link_id]
    return out


def _submit(client: Any, url: str, qr: Any) -> Any:
    return anonymous(client.application).post(
        _path(url), data=json.dumps(qr), content_type=FHIR, headers={"Accept": FHIR}
    )


def _stored(client: Any, location: str) -> dict[str, Any]:
    bundle_id = urlsplit(location).path.rsplit("/", 1)[1]
    read = client.get(f"/fhir/Bundle/{bundle_id}")
    assert read.status_code == 200
    return read.get_json()


def _level(bundle: dict[str, Any]) -> str:
    observation = bundle["entry"][1]["resource"]
    return observation["valueCodeableConcept"]["coding"][0]["code"]


def _subjects(bundle: dict[str, Any]) -> set[str | None]:
    return {(e["resource"].get("subject") or {}).get("reference") for e in bundle["entry"]}


# --- creating a link ----------------------------------------------------------------------


def test_a_link_is_created_signed_and_stored_for_the_callers_tenant(app, client):
    before = int(time.time())
    created = client.post("/v1/intake-links", json={"patient": {"reference": "Patient/p-1"}})
    assert created.status_code == 201
    assert created.content_type == "application/json"
    body = created.get_json()
    assert set(body) == {"id", "url", "expires", "expires_unix", "show", "patient"}
    assert created.headers["Location"] == body["url"]
    assert body["show"] == "report"
    assert body["patient"] == {"reference": "Patient/p-1"}
    assert (
        before + DEFAULT_EXPIRES_IN <= body["expires_unix"] <= int(time.time()) + DEFAULT_EXPIRES_IN
    )
    parts = urlsplit(body["url"])
    assert f"{parts.scheme}://{parts.netloc}" == "http://localhost"
    assert parts.path == f"/intake/{body['id']}"
    query = parse_qs(parts.query)
    assert query["expires"] == [str(body["expires_unix"])]
    state = app.extensions[EXTENSION]
    assert state.links.verify(
        INTAKE, body["id"], query["expires"][0], query["signature"][0], now=int(time.time())
    )
    # Signed for INTAKE only: the same signature never opens a report.
    assert not state.links.verify(
        REPORT, body["id"], query["expires"][0], query["signature"][0], now=int(time.time())
    )
    row = find_link(state.store, body["id"])
    assert row is not None
    assert (row.tenant, row.client, row.subject, row.show, row.used_us) == (
        "local",
        app.config["TEST_CLIENT_ID"],
        "Patient/p-1",
        "report",
        None,
    )
    assert row.expires_us == body["expires_unix"] * 1_000_000


def test_expiry_bounds_show_option_and_public_base_url():
    app = create_app({"TESTING": True, "PUBLIC_BASE_URL": "https://triage.example/api"})
    client = app.test_client()
    now = int(time.time())
    body = _link(client, {"expires_in": MIN_EXPIRES_IN, "show": "thank-you"})
    assert body["url"].startswith(f"https://triage.example/api/intake/{body['id']}?")
    assert body["show"] == "thank-you"
    assert "patient" not in body
    assert now + MIN_EXPIRES_IN <= body["expires_unix"] <= now + MIN_EXPIRES_IN + 5
    assert _link(client, {"expires_in": MAX_EXPIRES_IN})["expires_unix"] >= now + MAX_EXPIRES_IN
    # null means "not given", as everywhere in the API.
    assert _link(client, {"patient": None, "expires_in": None, "show": None})["show"] == "report"


@pytest.mark.parametrize(
    ("body", "expression", "code"),
    [
        ({"patient": {"reference": "Patient/"}}, "patient.reference", "value"),
        ({"patient": {"reference": "Practitioner/1"}}, "patient.reference", "value"),
        ({"patient": {"reference": "https://ehr.example/Patient/1"}}, "patient.reference", "value"),
        ({"patient": {"reference": "Patient/" + "1" * 65}}, "patient.reference", "value"),
        ({"patient": {"reference": 12}}, "patient.reference", "value"),
        ({"patient": {}}, "patient.reference", "required"),
        ({"patient": {"reference": "Patient/1", "display": "Ann"}}, "patient.display", "invalid"),
        ({"patient": "Patient/1"}, "patient", "value"),
        ({"expires_in": MIN_EXPIRES_IN - 1}, "expires_in", "value"),
        ({"expires_in": MAX_EXPIRES_IN + 1}, "expires_in", "value"),
        ({"expires_in": "600"}, "expires_in", "value"),
        ({"expires_in": 600.5}, "expires_in", "value"),
        ({"expires_in": True}, "expires_in", "value"),
        ({"show": "Report"}, "show", "code-invalid"),
        ({"show": ["report"]}, "show", "value"),
        ({"shows": "report"}, "shows", "invalid"),
    ],
)
def test_a_bad_field_is_a_422_naming_it(client, body, expression, code):
    response = client.post("/v1/intake-links", json=body)
    assert response.status_code == 422
    assert response.content_type.startswith(FHIR)
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert [(i["code"], i["expression"]) for i in outcome["issue"]] == [(code, [expression])]


@given(
    body=st.dictionaries(
        st.sampled_from(["patient", "expires_in", "show", "extra"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(10**9), 10**9),
            st.text(max_size=20),
            st.fixed_dictionaries({"reference": st.text(max_size=80)}),
        ),
    )
)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_body_is_a_201_or_a_422_never_a_500(client, body):
    response = client.post("/v1/intake-links", json=body)
    assert response.status_code in (201, 422), response.data[:300]
    if response.status_code == 422:
        fields = {e for issue in response.get_json()["issue"] for e in issue["expression"]}
        assert fields
        assert fields <= {
            "patient",
            "patient.reference",
            "expires_in",
            "show",
            "extra",
        }


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [(b"[]", "application/json", 400), (b"{", "application/json", 400), (b"{}", "text/plain", 415)],
)
def test_a_body_that_is_not_a_json_object_is_refused(client, data, content_type, status):
    response = client.post("/v1/intake-links", data=data, content_type=content_type)
    assert response.status_code == status
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_creating_a_link_needs_a_key_and_the_triage_scope(app):
    assert anonymous(app).post("/v1/intake-links", json={}).status_code == 401
    clients = app.extensions[EXTENSION].clients
    reader = create_client(clients, tenant="local", scopes=["system/Bundle.r"])
    refused = anonymous(app).post("/v1/intake-links", json={}, headers=bearer(reader.api_key))
    assert refused.status_code == 403
    assert "system/QuestionnaireResponse.c" in refused.headers["WWW-Authenticate"]
    writer = create_client(clients, tenant="local", scopes=["system/QuestionnaireResponse.c"])
    allowed = anonymous(app).post("/v1/intake-links", json={}, headers=bearer(writer.api_key))
    assert allowed.status_code == 201


# --- the page -----------------------------------------------------------------------------


def test_the_page_serves_the_questionnaire_with_the_products_own_files(app, client):
    link = _link(client)
    page = anonymous(app).get(_path(link["url"]))
    assert page.status_code == 200
    assert page.content_type == "text/html; charset=utf-8"
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp
    assert "style-src 'self';" in csp  # style attributes stay refused
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert "style-src-elem 'self' 'sha256-" in csp  # only LHC-Forms' own <style> elements
    assert "frame-ancestors 'none'" in csp
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    html = page.get_data(as_text=True)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "<script>" not in html  # no inline script
    assert "/static/lforms/40.1.3/webcomponent/main.js" in html
    assert "/static/intake/intake.js" in html
    assert "https://" not in html.split('id="intake-questionnaire"')[0]  # no CDN
    embedded = html.split('id="intake-questionnaire">')[1].split("</script>")[0]
    assert json.loads(embedded)["url"].endswith("/Questionnaire/twitch-triage-intake")
    assert "<" not in embedded  # its XHTML narrative cannot end the script element
    for asset in ("lforms/40.1.3/webcomponent/main.js", "intake/intake.js", "intake/intake.css"):
        served = anonymous(app).get(f"/static/{asset}")
        assert served.status_code == 200, asset
        served.close()


def test_a_refused_link_page_leaks_nothing(app, client):
    link = _link(client, {"patient": {"reference": "Patient/secret-77"}})
    state = app.extensions[EXTENSION]
    expires = str(link["expires_unix"])
    signature = parse_qs(urlsplit(link["url"]).query)["signature"][0]
    past = int(time.time()) - 1
    unknown = str(uuid.uuid4())
    refusals = {
        "altered signature": f"/intake/{link['id']}?expires={expires}&signature=A{signature[1:]}",
        "altered expiry": f"/intake/{link['id']}?expires={int(expires) + 1}&signature={signature}",
        "no signature": f"/intake/{link['id']}?expires={expires}",
        "no query": f"/intake/{link['id']}",
        "expired": f"/intake/{link['id']}?{state.links.sign(INTAKE, link['id'], past).query}",
        "report signature": f"/intake/{link['id']}?"
        + state.links.sign(REPORT, link["id"], int(expires)).query,
        "unknown id": f"/intake/{unknown}?" + state.links.sign(INTAKE, unknown, int(expires)).query,
        "not an id": "/intake/%3Cscript%3E?expires=1&signature=x",
    }
    bodies = set()
    for name, path in refusals.items():
        page = anonymous(app).get(path)
        assert page.status_code == 404, name
        assert page.content_type == "text/html; charset=utf-8", name
        assert page.headers["Cache-Control"] == "no-store"
        html = page.get_data(as_text=True)
        assert link["id"] not in html
        assert "secret-77" not in html
        assert "<script" not in html
        bodies.add(html)
    assert len(bodies) == 1  # one page for every reason: nothing tells them apart


# --- submitting ---------------------------------------------------------------------------


def test_the_seed_child_is_triaged_stored_under_the_links_patient_and_tenant(app, client):
    link = _link(client, {"patient": {"reference": "Patient/seed-000"}})
    submitted = _submit(client, link["url"], _qr(client, SEED["request"]))
    assert submitted.status_code == 303
    location = submitted.headers["Location"]
    parts = urlsplit(location)
    assert parts.path.startswith("/reports/")
    bundle_id = parts.path.rsplit("/", 1)[1]
    query = parse_qs(parts.query)
    state = app.extensions[EXTENSION]
    assert state.links.verify(
        REPORT, bundle_id, query["expires"][0], query["signature"][0], now=int(time.time())
    )
    bundle = _stored(client, location)
    # The stored Bundle announces the same report the browser is sent to.
    assert [link["url"] for link in bundle["link"]] == [location]
    assert _level(bundle) == SEED["expected"]["level"] == "consultation"
    assert _subjects(bundle) == {"Patient/seed-000"}
    columns = state.store.assessment_columns(bundle_id)
    assert (columns["tenant"], columns["subject"], columns["client"]) == (
        "local",
        "Patient/seed-000",
        app.config["TEST_CLIENT_ID"],
    )
    assert find_link(state.store, link["id"]).assessment_id == bundle_id


def test_a_link_is_used_once_and_then_refused_like_a_forged_one(app, client):
    link = _link(client)
    qr = _qr(client, SEED["request"])
    assert _submit(client, link["url"], qr).status_code == 303
    again = _submit(client, link["url"], qr)
    assert again.status_code == 404
    assert again.get_json()["issue"][0]["diagnostics"] == REFUSED
    assert anonymous(app).get(_path(link["url"])).status_code == 404
    forged = link["url"].replace("signature=", "signature=x")
    assert _submit(client, forged, qr).get_json() == again.get_json()


def test_revoking_the_client_that_made_a_link_ends_the_link(app, client):
    """A link files its submission as the client that made it: once that client is
    revoked, its links open and accept nothing, refused like a forged link."""
    clients = app.extensions[EXTENSION].clients
    maker = create_client(clients, tenant="local", label="revoked-intake-maker")
    link = _link(client, **bearer(maker.api_key))
    qr = _qr(client, SEED["request"])
    assert anonymous(app).get(_path(link["url"])).status_code == 200
    revoke_client(clients, maker.client_id)
    assert anonymous(app).get(_path(link["url"])).status_code == 404
    refused = _submit(client, link["url"], qr)
    assert refused.status_code == 404
    assert refused.get_json()["issue"][0]["diagnostics"] == REFUSED
    kept = _link(client)  # another client's link of the same tenant still works
    assert _submit(client, kept["url"], qr).status_code == 303


def test_an_invalid_form_does_not_use_the_link_up(app, client):
    link = _link(client)
    qr = _qr(client, SEED["request"])
    incomplete = _without(qr, "patient.age_years")
    refused = _submit(client, link["url"], incomplete)
    assert refused.status_code == 422
    issues = refused.get_json()["issue"]
    assert any("patient.age_years" in issue["diagnostics"] for issue in issues)
    assert find_link(app.extensions[EXTENSION].store, link["id"]).used_us is None
    assert anonymous(app).get(_path(link["url"])).status_code == 200
    assert _submit(client, link["url"], qr).status_code == 303


@pytest.mark.parametrize(
    ("link_patient", "change", "expression"),
    [
        ("Patient/p-1", {"subject": {"reference": "Patient/p-2"}}, "QuestionnaireResponse.subject"),
        ("Patient/p-1", {"subject": {"display": "Ann"}}, "QuestionnaireResponse.subject"),
        (None, {"subject": {"reference": "Patient/p-2"}}, "QuestionnaireResponse.subject"),
        # The $triage reader compares the answer with the forced subject.
        ("Patient/p-1", {"answer": "Patient/p-2"}, "QuestionnaireResponse.subject.reference"),
        (None, {"answer": "Patient/p-2"}, "QuestionnaireResponse.item[0]"),
        ("Patient/p-1", {"resourceType": "Parameters"}, "QuestionnaireResponse.resourceType"),
    ],
)
def test_another_patient_is_refused_and_the_link_stays_usable(
    app, client, link_patient, change, expression
):
    body = {} if link_patient is None else {"patient": {"reference": link_patient}}
    link = _link(client, body)
    qr = _qr(client, SEED["request"])
    sent = copy.deepcopy(qr)
    if "answer" in change:
        sent["item"].insert(
            0, {"linkId": "patient.reference", "answer": [{"valueString": change["answer"]}]}
        )
    else:
        sent.update(change)
    refused = _submit(client, link["url"], sent)
    assert refused.status_code == 422, refused.data[:300]
    expressions = [e for issue in refused.get_json()["issue"] for e in issue["expression"]]
    assert expression in expressions
    assert find_link(app.extensions[EXTENSION].store, link["id"]).used_us is None
    stored = _stored(client, _submit(client, link["url"], qr).headers["Location"])
    assert _subjects(stored) == {link_patient}


def test_the_same_subject_as_the_link_is_accepted(client):
    link = _link(client, {"patient": {"reference": "Patient/p-9"}})
    qr = _qr(client, SEED["request"])
    qr["subject"] = {"reference": "Patient/p-9"}
    stored = _stored(client, _submit(client, link["url"], qr).headers["Location"])
    assert _subjects(stored) == {"Patient/p-9"}


def test_thank_you_links_and_a_store_that_keeps_nothing_show_no_result(app, client):
    link = _link(client, {"show": "thank-you"})
    submitted = _submit(client, link["url"], _qr(client, SEED["request"]))
    assert submitted.status_code == 303
    assert submitted.headers["Location"] == "http://localhost/intake/thank-you"
    page = anonymous(app).get("/intake/thank-you")
    assert page.status_code == 200
    assert "Thank you" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"]
    nothing = create_app({"TESTING": True, "STORE_ASSESSMENTS": False})
    keyed = nothing.test_client()
    link = _link(keyed)  # a report link, but there is no report to open
    submitted = _submit(keyed, link["url"], _qr(keyed, SEED["request"]))
    assert submitted.headers["Location"].endswith("/intake/thank-you")


@pytest.mark.parametrize(("name", "case"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_a_patient_facing_page_says_what_to_do_now_for_an_emergency(app, client, name, case):
    """ "Thank-you only" hides the result, but never an emergency: the person is told to
    call an ambulance or go to the emergency department now, not to wait for a call."""
    link = _link(client, {"show": "thank-you"})
    submitted = _submit(client, link["url"], _qr(client, case["request"]))
    assert submitted.status_code == 303
    expected = {"emergency_ambulance": "ambulance", "emergency": "emergency"}.get(
        case["expected"]["level"]
    )
    location = submitted.headers["Location"]
    query = parse_qs(urlsplit(location).query)
    assert query == ({"act": [expected]} if expected else {}), name
    page = anonymous(app).get(_path(location)).get_data(as_text=True)
    if expected == "ambulance":
        assert "Call an ambulance now" in page
    elif expected == "emergency":
        assert "Go to the emergency\n       department now" in page
    else:
        assert 'id="act-now"' not in page
        assert "They will contact you" in page


def test_an_unknown_act_shows_the_plain_thank_you(app):
    page = anonymous(app).get("/intake/thank-you?act=<b>x</b>").get_data(as_text=True)
    assert 'id="act-now"' not in page
    assert "<b>x" not in page


def test_submissions_and_pages_are_audited_under_the_links_tenant(app):
    clients = app.extensions[EXTENSION].clients
    north = create_client(clients, tenant="north-intake")
    south = create_client(clients, tenant="south-intake")
    partner = anonymous(app)
    created = partner.post("/v1/intake-links", json={}, headers=bearer(north.api_key))
    link = created.get_json()
    assert partner.get(_path(link["url"])).status_code == 200
    keyed = app.test_client()
    submitted = _submit(keyed, link["url"], _qr(keyed, SEED["request"]))
    bundle_id = urlsplit(submitted.headers["Location"]).path.rsplit("/", 1)[1]
    # Filed under the link's tenant: its owner reads it, the other tenant cannot.
    assert (
        partner.get(f"/fhir/Bundle/{bundle_id}", headers=bearer(north.api_key)).status_code == 200
    )
    assert (
        partner.get(f"/fhir/Bundle/{bundle_id}", headers=bearer(south.api_key)).status_code == 404
    )
    assert partner.get(f"/fhir/Bundle/{bundle_id}").status_code == 401

    def events(entity: str, key: str) -> list[dict[str, Any]]:
        found = partner.get(f"/fhir/AuditEvent?entity={entity}", headers=bearer(key))
        return [entry["resource"] for entry in found.get_json().get("entry", [])]

    task = events(f"Task/{link['id']}", north.api_key)
    assert sorted((e["subtype"][0]["code"], e["outcome"]) for e in task) == [
        ("create", "0"),
        ("read", "0"),
    ]
    # The partner's client made the link; the browser holding it viewed the page, and
    # the client that issued the link is named beside it, never as the requestor.
    by_subtype = {e["subtype"][0]["code"]: e for e in task}
    [creator] = [a for a in by_subtype["create"]["agent"] if a["requestor"]]
    assert creator["who"]["identifier"]["value"] == north.client_id
    [viewer] = [a for a in by_subtype["read"]["agent"] if a["requestor"]]
    assert viewer["who"] == {"display": LINK_AGENT}
    issuers = [
        a["who"]["identifier"]["value"]
        for a in by_subtype["read"]["agent"]
        if not a["requestor"] and "identifier" in a["who"]
    ]
    assert issuers == [north.client_id]
    created_bundle = events(f"Bundle/{bundle_id}", north.api_key)
    assert sorted((e["subtype"][0]["code"], e["outcome"]) for e in created_bundle) == [
        ("create", "0"),  # the submission
        ("read", "0"),  # the partner's read above
    ]
    assert events(f"Task/{link['id']}", south.api_key) == []
    # The other tenant sees only its own refused read, never the owner's events.
    foreign = events(f"Bundle/{bundle_id}", south.api_key)
    assert [(e["agent"][0]["who"]["identifier"]["value"], e["outcome"]) for e in foreign] == [
        (south.client_id, "4")
    ]


def test_no_patient_data_reaches_the_log(client, caplog):
    marker = "ZQX-intake-marker-" + uuid.uuid4().hex
    link = _link(client, {"patient": {"reference": "Patient/p-log"}})
    request = copy.deepcopy(SEED["request"])
    request["notes"] = marker
    with caplog.at_level("DEBUG"):
        assert _submit(client, link["url"], _qr(client, request)).status_code == 303
    assert marker not in caplog.text
    assert "p-log" not in caplog.text


def test_a_link_expires_with_its_row_even_when_the_signature_still_holds(app, client):
    link = _link(client, {"expires_in": MIN_EXPIRES_IN})
    state = app.extensions[EXTENSION]
    query = parse_qs(urlsplit(link["url"]).query)
    deployment_args = {
        "link_id": link["id"],
        "expires": query["expires"][0],
        "signature": query["signature"][0],
    }
    from api.routes.intake import _deployment  # noqa: PLC0415 (the view's own wiring)

    exchange = Exchange(request_id=str(uuid.uuid4()), client_address=None, software_version="t")
    with app.test_request_context():
        deployment = _deployment()
        assert open_intake_link(deployment, exchange, now_s=int(time.time()), **deployment_args)
        with pytest.raises(Exception, match="cannot be used"):
            open_intake_link(
                deployment,
                exchange,
                now_s=link["expires_unix"],
                **deployment_args,
            )
    assert state.links.verify(
        INTAKE, link["id"], query["expires"][0], query["signature"][0], now=int(time.time())
    )


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [(b"{", FHIR, 400), (b"{}", "text/plain", 415), (b"[]", FHIR, 400)],
)
def test_a_malformed_submission_is_an_operation_outcome_and_keeps_the_link(
    app, client, data, content_type, status
):
    link = _link(client)
    response = anonymous(app).post(_path(link["url"]), data=data, content_type=content_type)
    assert response.status_code == status
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert find_link(app.extensions[EXTENSION].store, link["id"]).used_us is None


# --- two submissions at once: exactly one is stored (SQLite and PostgreSQL) -------------


def test_two_concurrent_submissions_store_exactly_one(database_url):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    keyed = app.test_client()
    qr = orjson.dumps(_qr(keyed, SEED["request"]))
    for _round in range(3):
        link = _link(keyed)
        assessments = app.extensions[EXTENSION].store.counts()["assessment"]
        barrier = threading.Barrier(4)
        statuses: list[int] = []

        def submit(
            link: dict[str, Any] = link,
            barrier: threading.Barrier = barrier,
            statuses: list[int] = statuses,
        ) -> None:
            browser = anonymous(app)
            barrier.wait()
            response = browser.post(_path(link["url"]), data=qr, content_type=FHIR)
            statuses.append(response.status_code)

        threads = [threading.Thread(target=submit) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(statuses) == [303, 404, 404, 404]
        stored = app.extensions[EXTENSION].store
        row = find_link(stored, link["id"])
        assert row.assessment_id is not None
        assert stored.counts()["assessment"] == assessments + 1
        # A loser that found the link already used was refused before its tenant was
        # known (audited without one); one that lost the claim itself, under the link's.
        created = keyed.get(f"/fhir/AuditEvent?entity=Task/{link['id']}&subtype=create")
        outcomes = sorted(e["resource"]["outcome"] for e in created.get_json()["entry"])
        assert outcomes[0] == "0"  # the link's creation
        assert set(outcomes[1:]) <= {"4"}


def test_the_claim_itself_has_one_winner_among_concurrent_claimers(database_url):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    store = app.extensions[EXTENSION].store
    for _round in range(5):
        link = _link(app.test_client())
        barrier = threading.Barrier(6)
        won: list[bool] = []

        def claim(
            link_id: str = link["id"], barrier: threading.Barrier = barrier, won: list[bool] = won
        ) -> None:
            barrier.wait()
            won.append(claim_link(store, link_id, now_us=time.time_ns() // 1000))

        threads = [threading.Thread(target=claim) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(won) == [False] * 5 + [True]


def test_a_refused_link_creation_is_audited_for_the_caller(client):
    refused = client.post("/v1/intake-links", json={"show": "never"})
    assert refused.status_code == 422
    request_id = refused.headers["X-Request-ID"]
    events = client.get("/fhir/AuditEvent?subtype=create&outcome=4").get_json()["entry"]
    recorded = [
        entity["what"]["identifier"]["value"]
        for event in events
        for entity in event["resource"]["entity"]
        if entity.get("description") == "request id"
    ]
    assert any(request_id in value for value in recorded)
