"""The clinician report page and its signed link, through the Flask test client (issue 14).

What a browser without an API key gets: the report for an unaltered, unexpired
link, the same 404 page for anything else (nothing of the request echoed), the
page headers, the ``Link`` header and ``Bundle.link`` on every stored answer
(none when storage is off) and an AuditEvent for each read, under the
assessment's tenant. Real SQLite and PostgreSQL stores (``database_url``).
The browser itself (layout, print, axe) is in ``tests/browser/test_report_browser.py``.
"""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from conftest import anonymous
from examples import EXAMPLE_IDS, EXAMPLES
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update
from storage_support import app_on_each_backend  # noqa: F401 (the app fixture: both backends)

from api import create_app
from api.auth.clients import create_client, revoke_client
from api.config import EXTENSION
from api.services.links import INTAKE, REPORT
from api.services.reports import (
    DISCLAIMER,
    LINK_AGENT,
    PATIENT_ADVICE,
    PATIENT_ADVICE_VARIANTS,
    report_link,
)
from api.storage.models import Assessment
from triage import KNOWLEDGE_BASE_VERSION, Level, evaluate, wording

REQUEST: dict[str, Any] = {
    "patient": {"age_years": 12, "reference": "Patient/p-1"},
    "respondent": "parent_or_carer",
    "activity": {"type": "roller skating"},
    "twitching": {"body_sites": ["neck"], "timing": "after_exercise", "duration_days": 1},
    "symptoms": {"headache": True, "loss_of_balance": True, "confusion": False},
    "history": {"head_impact": True, "falls_last_7_days": 3},
}
LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="alternate"; type="text/html"$')


def triage(client: FlaskClient, body: Any = None) -> Any:
    response = client.post("/v1/triage", json=REQUEST if body is None else body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def link_url(response: Any) -> str:
    match = LINK.match(response.headers["Link"])
    assert match is not None, response.headers["Link"]
    return match["url"]


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


class Text(HTMLParser):
    """The text of a page, element ids to their text, and every tag name seen."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: ARG002 (HTMLParser signature)
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


def page_text(html: str) -> Text:
    parser = Text()
    parser.feed(html)
    return parser


# --- the link is handed out with every stored answer -----------------------------------


def test_triage_bundle_and_header_carry_the_same_signed_report_link(app, client):
    response = triage(client)
    bundle = response.get_json()
    url = link_url(response)
    assert bundle["link"] == [{"relation": "alternate", "url": url}]
    parts = urlsplit(url)
    assert parts.path == f"/reports/{bundle['id']}"
    query = parse_qs(parts.query)
    expires = int(query["expires"][0])
    seconds = app.extensions[EXTENSION].settings.report_link_seconds
    assert abs(expires - (time.time() + seconds)) < 60
    # The link is handed to the client that triaged: it lives as long as that client.
    assert query["holder"] == [app.config["TEST_CLIENT_ID"]]
    subject = f"{bundle['id']} {query['holder'][0]}"
    assert app.extensions[EXTENSION].links.verify(
        REPORT, subject, query["expires"][0], query["signature"][0], now=int(time.time())
    )


def test_a_bundle_read_keeps_the_stored_bytes_and_sends_a_fresh_link(client):
    created = triage(client)
    bundle_id = created.get_json()["id"]
    read = client.get(f"/fhir/Bundle/{bundle_id}")
    assert read.status_code == 200
    assert read.data == created.data  # the stored Bundle is immutable
    assert urlsplit(link_url(read)).path == f"/reports/{bundle_id}"
    assert anonymous(client.application).get(local(link_url(read))).status_code == 200


def test_fhir_triage_operation_announces_the_report_too(client):
    questionnaire_response = triage(client).get_json()["entry"][0]["resource"]
    questionnaire_response = {
        k: v for k, v in questionnaire_response.items() if k not in ("id", "meta")
    }
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": questionnaire_response}],
    }
    response = client.post(
        "/fhir/QuestionnaireResponse/$triage",
        data=orjson.dumps(body),
        headers={"Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    bundle = response.get_json()
    assert bundle["link"][0]["url"] == link_url(response)
    page = anonymous(client.application).get(local(link_url(response)))
    assert page.status_code == 200
    assert "Answers given by Parent or carer" in page_text(page.get_data(as_text=True)).text


def test_an_idempotent_replay_answers_the_stored_link_and_a_fresh_header(client):
    first = client.post("/v1/triage", json=REQUEST, headers={"Idempotency-Key": "k-1"})
    second = client.post("/v1/triage", json=REQUEST, headers={"Idempotency-Key": "k-1"})
    assert second.data == first.data
    assert urlsplit(link_url(second)).path == urlsplit(link_url(first)).path
    assert anonymous(client.application).get(local(link_url(second))).status_code == 200


def test_public_base_url_is_the_base_of_the_link(database_url):
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "PUBLIC_BASE_URL": "https://triage.example/api",
        }
    )
    response = triage(app.test_client())
    url = link_url(response)
    assert url.startswith("https://triage.example/api/reports/")
    assert response.get_json()["link"][0]["url"] == url


def test_storage_off_hands_out_no_report_link(database_url):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "STORE_ASSESSMENTS": "false"})
    client = app.test_client()
    response = triage(client)
    assert "Link" not in response.headers
    bundle = response.get_json()
    assert "link" not in bundle
    # Nothing was stored, so even a correctly signed link for that id is the 404 page.
    signed = app.extensions[EXTENSION].links.sign(REPORT, bundle["id"], int(time.time()) + 600)
    assert anonymous(app).get(f"/reports/{bundle['id']}?{signed.query}").status_code == 404


# --- the page ------------------------------------------------------------------------


def test_the_report_opens_without_an_api_key_with_page_headers(app, client):
    url = local(link_url(triage(client)))
    page = anonymous(app).get(url)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["X-Frame-Options"] == "DENY"
    html = page.get_data(as_text=True)
    text = page_text(html)
    assert "style=" not in html  # no inline style: the CSP would block it
    assert "<script>" not in html  # only the product's own script file
    assert text.text.startswith("Triage report")  # the title
    assert DISCLAIMER in text.text
    assert f"Knowledge base {KNOWLEDGE_BASE_VERSION}" in text.text
    for path in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        asset = anonymous(app).get(path)
        assert asset.status_code == 200, path
        assert asset.headers["X-Content-Type-Options"] == "nosniff"


def test_frame_ancestors_come_from_configuration(database_url):
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "FRAME_ANCESTORS": "https://ehr.example, https://portal.example:8443",
        }
    )
    page = anonymous(app).get(local(link_url(triage(app.test_client()))))
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors https://ehr.example https://portal.example:8443" in csp
    assert "X-Frame-Options" not in page.headers


def test_the_page_shows_what_the_engine_found(client):
    response = triage(client)
    bundle = response.get_json()
    text = page_text(anonymous(client.application).get(local(link_url(response))).data.decode())
    level = bundle["entry"][1]["resource"]["valueCodeableConcept"]["coding"][0]["code"]
    assert f"Triage level {Level.from_code(level).display}" in text.text
    assert "Answers given by Parent or carer" in text.text
    assert "Answered yes Headache Loss of balance" in text.text
    assert "Answered no Confusion" in text.text
    assert "Patient record Patient/p-1" in text.text
    assert bundle["id"] in text.text
    assert "Head impact: Yes" in text.text  # a triggering answer, worded


@pytest.mark.parametrize("name", EXAMPLE_IDS)
def test_each_shared_example_shows_level_red_flags_in_order_and_unknowns(name, client):
    case = dict(EXAMPLES)[name]
    response = triage(client, case["request"])
    text = page_text(
        anonymous(client.application).get(local(link_url(response))).data.decode()
    ).text
    expected = case["expected"]
    level = Level.from_code(expected["level"])
    assert f"Triage level {level.display}" in text
    fired = evaluate(case["request"]).rules
    assert {rule.rule_id for rule in fired} == set(expected["rules"])
    flags = text[text.index("Red flags most urgent first") : text.index("Contributing factors")]
    positions = [flags.index(f" {rule.rule_id} ") for rule in fired]
    assert positions == sorted(positions)  # most urgent first, then table order
    assert [rule.level for rule in fired] == sorted((r.level for r in fired), reverse=True)
    for link_id in expected.get("unanswered", ()):
        assert wording.question(link_id) in text  # asked as a decisive question
    if not expected.get("unanswered"):
        assert "Red-flag screen incomplete" not in text


def test_notes_and_activity_markup_is_shown_as_text(client):
    body = {
        **REQUEST,
        "activity": {"type": '<img src=x onerror="alert(1)">skating'},
        "notes": "<script>alert('x')</script><b>bold</b> & more",
    }
    html = anonymous(client.application).get(local(link_url(triage(client, body)))).data.decode()
    parsed = page_text(html)
    assert "img" not in parsed.tags
    assert parsed.tags.count("script") == 1  # report.js only
    assert "b" not in parsed.tags
    assert '<img src=x onerror="alert(1)">skating' in parsed.text
    assert "<script>alert('x')</script><b>bold</b> & more" in parsed.text


def test_without_a_respondent_the_page_says_not_recorded(client):
    body = {k: v for k, v in REQUEST.items() if k != "respondent"}
    text = page_text(
        anonymous(client.application).get(local(link_url(triage(client, body)))).data.decode()
    ).text
    assert "Answers given by Not recorded" in text


def test_another_knowledge_base_shows_the_stored_result_as_issued(app, client):
    response = triage(client)
    bundle_id = response.get_json()["id"]
    store = app.extensions[EXTENSION].store
    with store.engine.begin() as connection:
        connection.execute(
            update(Assessment)
            .where(Assessment.id == bundle_id)
            .values(knowledge_base_version="0.9.0")
        )
    text = page_text(anonymous(app).get(local(link_url(response))).data.decode()).text
    assert "Shown as it was issued (knowledge base 0.9.0" in text
    assert "Knowledge base 0.9.0" in text
    summary = orjson.loads(store.assessment_columns(bundle_id)["result_json"])
    assert f"Triage level {Level.from_code(summary['level']).display}" in text
    for rule_id in summary["rules"]:
        assert rule_id in text


def test_a_rebuilt_result_that_disagrees_with_the_issued_one_is_not_shown(app, client):
    """Same knowledge base, yet another result (a corrupted row): the page shows the issued one."""
    response = triage(client)
    bundle_id = response.get_json()["id"]
    store = app.extensions[EXTENSION].store
    summary = orjson.loads(store.assessment_columns(bundle_id)["result_json"])
    issued = {**summary, "level": "emergency_ambulance"}
    with store.engine.begin() as connection:
        connection.execute(
            update(Assessment)
            .where(Assessment.id == bundle_id)
            .values(result_json=orjson.dumps(issued))
        )
    text = page_text(anonymous(app).get(local(link_url(response))).data.decode()).text
    assert "Triage level Call an ambulance" in text
    assert f"Shown as it was issued (knowledge base {KNOWLEDGE_BASE_VERSION}" in text


def test_every_advice_has_a_hand_over_version():
    """The patient wording covers every advice and variant (else the clinician text is used)."""
    from triage.knowledge_base import ADVICE  # noqa: PLC0415

    assert {advice.code for advice in ADVICE} == set(PATIENT_ADVICE)
    variants = {advice.variant_text for advice in ADVICE if advice.variant_text}
    assert variants == set(PATIENT_ADVICE_VARIANTS)
    texts = [*PATIENT_ADVICE.values(), *PATIENT_ADVICE_VARIANTS.values()]
    assert all(text and text[0].isupper() and text.endswith(".") for text in texts)


# --- refused links: one 404 page that leaks nothing -----------------------------------


def _refusals(app: Flask, bundle_id: str, other_id: str, url: str) -> list[str]:
    query = parse_qs(urlsplit(url).query)
    expires, signature = query["expires"][0], query["signature"][0]
    signer = app.extensions[EXTENSION].links
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    expired = signer.sign(REPORT, bundle_id, int(time.time()) - 1)
    intake = signer.sign(INTAKE, bundle_id, int(expires))
    unknown = "0" * 8 + bundle_id[8:]
    return [
        f"/reports/{bundle_id}?expires={expires}&signature={flipped}",
        f"/reports/{bundle_id}?expires={int(expires) + 1}&signature={signature}",
        # The signed expiry spelt otherwise (int() reads both alike): an altered link.
        f"/reports/{bundle_id}?expires=0{expires}&signature={signature}",
        f"/reports/{other_id}?expires={expires}&signature={signature}",
        f"/reports/{bundle_id}?{expired.query}",
        f"/reports/{bundle_id}?{intake.query}",
        f"/reports/{bundle_id}",
        f"/reports/{bundle_id}?expires={expires}",
        f"/reports/{unknown}?{signer.sign(REPORT, unknown, int(expires)).query}",
        f"/reports/{bundle_id}/x?expires={expires}&signature={signature}",
        "/reports/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "/reports/",
        # Control characters (werkzeug's path converter stops at a newline; the fuzzer's find).
        "/reports/%C2%A3%0A%02?signature=x",
        f"/reports/{bundle_id}%0A/x?expires={expires}&signature={signature}",
    ]


def test_altered_expired_unknown_links_are_one_404_page(app, client):
    first = triage(client)
    bundle_id = first.get_json()["id"]
    other_id = triage(client).get_json()["id"]
    browser = anonymous(app)
    bodies = set()
    for path in _refusals(app, bundle_id, other_id, link_url(first)):
        page = browser.get(path)
        assert page.status_code == 404, path
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"
        assert page.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        html = page.get_data(as_text=True)
        assert bundle_id not in html
        assert other_id not in html
        assert "script>alert" not in html
        bodies.add(page.data)
    assert len(bodies) == 1  # identical whatever was wrong


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    expires=st.one_of(st.none(), st.integers(min_value=-(10**13), max_value=10**13).map(str)),
    signature=st.one_of(st.none(), st.text(max_size=80)),
)
def test_any_other_query_is_the_404_page(expires, signature):
    app = _shared_app()
    bundle_id = _shared_bundle(app)
    query = {}
    if expires is not None:
        query["expires"] = expires
    if signature is not None:
        query["signature"] = signature
    page = anonymous(app).get(f"/reports/{bundle_id}", query_string=query)
    assert page.status_code == 404
    assert bundle_id.encode() not in page.data


_SHARED: dict[str, Any] = {}


def _shared_app() -> Flask:
    """One app for every hypothesis example (SQLite in a temporary instance folder)."""
    if "app" not in _SHARED:
        _SHARED["app"] = create_app({"TESTING": True})
    return _SHARED["app"]


def _shared_bundle(app: Flask) -> str:
    if "bundle" not in _SHARED:
        _SHARED["bundle"] = triage(app.test_client()).get_json()["id"]
    return _SHARED["bundle"]


# --- audit -----------------------------------------------------------------------------


def test_a_report_read_is_audited_under_the_assessments_tenant(app):
    clients = app.extensions[EXTENSION].clients
    owner = create_client(clients, tenant="owner", label="owner app")
    other = create_client(clients, tenant="other", label="other app")
    client = app.test_client()
    created = client.post(
        "/v1/triage", json=REQUEST, headers={"Authorization": f"Bearer {owner.api_key}"}
    )
    bundle_id = created.get_json()["id"]
    assert anonymous(app).get(local(link_url(created))).status_code == 200

    def reads(key: str) -> list[dict[str, Any]]:
        page = client.get(
            f"/fhir/AuditEvent?entity=Bundle/{bundle_id}&subtype=read&_count=100",
            headers={"Authorization": f"Bearer {key}"},
        ).get_json()
        return [entry["resource"] for entry in page.get("entry", [])]

    events = reads(owner.api_key)
    assert len(events) == 1
    event = events[0]
    assert event["agent"][0]["who"] == {"display": LINK_AGENT}
    assert event["outcome"] == "0"
    assert {"reference": f"Bundle/{bundle_id}"} in [e.get("what") for e in event["entity"]]
    assert reads(other.api_key) == []  # another tenant never sees it


def test_a_refused_link_is_audited_without_tenant_or_entity(app, client):
    created = triage(client)
    bundle_id = created.get_json()["id"]
    store = app.extensions[EXTENSION].store
    before = store.counts()["audit_event"]
    assert anonymous(app).get(f"/reports/{bundle_id}?expires=1&signature=x").status_code == 404
    assert store.counts()["audit_event"] == before + 1
    # The refused attempt names nothing a tenant could see (tenant NULL, operators only).
    page = client.get(f"/fhir/AuditEvent?entity=Bundle/{bundle_id}&subtype=read").get_json()
    assert page.get("total", 0) == 0


def test_revoking_the_client_ends_the_report_links_it_was_handed(app):
    """A revoked client's links are refused like forged ones (and audited so), while
    another client's links of the same tenant keep working."""
    clients = app.extensions[EXTENSION].clients
    revoked = create_client(clients, tenant="local", label="revoked-report-holder")
    kept = create_client(clients, tenant="local", label="kept-report-holder")
    client = app.test_client()

    def handed(key: str) -> str:
        created = client.post(
            "/v1/triage", json=REQUEST, headers={"Authorization": f"Bearer {key}"}
        )
        assert created.status_code == 200, created.get_data(as_text=True)
        return local(link_url(created))

    revoked_link, kept_link = handed(revoked.api_key), handed(kept.api_key)
    assert anonymous(app).get(revoked_link).status_code == 200
    store = app.extensions[EXTENSION].store
    revoke_client(clients, revoked.client_id)
    before = store.counts()["audit_event"]
    refused = anonymous(app).get(revoked_link)
    assert refused.status_code == 404
    assert store.counts()["audit_event"] == before + 1
    forged = anonymous(app).get(f"{urlsplit(revoked_link).path}?expires=1&signature=x")
    assert refused.data == forged.data  # the same page: nothing says why
    assert anonymous(app).get(kept_link).status_code == 200


def test_a_tenants_other_client_gets_a_working_link_after_the_filer_is_revoked(app):
    """Found by an authorization review: once the client that filed an assessment was
    revoked, another client of the tenant could still read the Bundle, but every read
    handed out a fresh link that always answered 404: the tenant lost the report. A
    link now lives as long as the client it was handed to, within the tenant."""
    clients = app.extensions[EXTENSION].clients
    filer = create_client(clients, tenant="local", label="filer")
    reader = create_client(clients, tenant="local", label="reader")
    stranger = create_client(clients, tenant="elsewhere", label="stranger")
    client = app.test_client()
    created = client.post(
        "/v1/triage", json=REQUEST, headers={"Authorization": f"Bearer {filer.api_key}"}
    )
    assert created.status_code == 200
    bundle_id = created.get_json()["id"]
    filers_link = local(link_url(created))
    revoke_client(clients, filer.client_id)
    assert anonymous(app).get(filers_link).status_code == 404  # the revoked holder's
    read = client.get(
        f"/fhir/Bundle/{bundle_id}", headers={"Authorization": f"Bearer {reader.api_key}"}
    )
    assert read.status_code == 200
    readers_link = local(link_url(read))
    assert anonymous(app).get(readers_link).status_code == 200
    # The holder is signed: naming another client in the link breaks the signature, and
    # a link genuinely signed for another tenant's client opens nothing of this tenant.
    swapped = readers_link.replace(reader.client_id, stranger.client_id)
    assert anonymous(app).get(swapped).status_code == 404
    foreign = report_link(
        app.extensions[EXTENSION].links,
        "",
        bundle_id,
        now=int(time.time()),
        seconds=60,
        holder=stranger.client_id,
    )
    assert anonymous(app).get(foreign).status_code == 404
    revoke_client(clients, reader.client_id)
    assert anonymous(app).get(readers_link).status_code == 404
