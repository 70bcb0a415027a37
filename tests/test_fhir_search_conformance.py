"""What an EHR integrator's black-box FHIR battery found in read and search, pinned down.

Each test is one finding of the s10 battery (real app, SQLite and PostgreSQL):
conditional reads by ``If-Modified-Since``, the ``system|`` token, AuditEvent tokens
that ignored their system (and so returned more than was asked), FHIR's ``\\,`` escape
read as a separator, and ``_cursor`` values the server never issued being followed.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from conftest import anonymous, create_app
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.http import http_date, parse_date

from api.auth.clients import create_client
from api.config import EXTENSION
from api.fhir.search import AUDIT_TOKEN_SYSTEMS, Cursor

SYSTEM = "https://twitch-triage.org/fhir/CodeSystem"
CONCUSSION = {
    "patient": {"age_years": 12, "reference": "Patient/conformance"},
    "twitching": {"body_sites": ["calf"]},
    "symptoms": {"headache": True, "loss_of_balance": True},
    "history": {"head_impact": True},
}


@pytest.fixture
def app(database_url: str) -> Flask:
    return create_app({"TESTING": True, "DATABASE_URL": database_url})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def triage(client: FlaskClient, patient: str = "Patient/conformance") -> dict[str, Any]:
    body = {**CONCUSSION, "patient": {"age_years": 12, "reference": patient}}
    response = client.post("/v1/triage", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def search(client: FlaskClient, url: str, status: int = 200, **kwargs: Any) -> dict[str, Any]:
    response = client.get(url, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def ids(page: dict[str, Any]) -> set[str]:
    return {entry["resource"]["id"] for entry in page.get("entry", [])}


def next_link(page: dict[str, Any]) -> str:
    (url,) = [link["url"] for link in page["link"] if link["relation"] == "next"]
    return url.removeprefix("http://localhost")


def with_cursor(url: str, cursor: str) -> str:
    """``url`` with its ``_cursor`` replaced (the other parameters as they were)."""
    parts = urlsplit(url)
    pairs = [(k, v) for k, v in parse_qsl(parts.query) if k != "_cursor"]
    return f"{parts.path}?{urlencode([*pairs, ('_cursor', cursor)])}"


def cursor_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["_cursor"]


def refused_cursor(client: FlaskClient, url: str, **kwargs: Any) -> None:
    refused = search(client, url, status=400, **kwargs)
    assert refused["resourceType"] == "OperationOutcome"
    assert refused["issue"][0]["expression"] == ["http._cursor"]


# --- conditional read: If-Modified-Since ---------------------------------------------------


def stored_paths(client: FlaskClient) -> list[str]:
    bundle = triage(client)
    by_type = {"Bundle": bundle["id"], "Provenance": bundle["id"]}
    for entry in bundle["entry"]:
        by_type.setdefault(entry["resource"]["resourceType"], entry["resource"]["id"])
    events = search(client, "/fhir/AuditEvent?subtype=create&_count=1")
    by_type["AuditEvent"] = events["entry"][0]["resource"]["id"]
    return [
        f"/fhir/{resource_type}/{resource_id}" for resource_type, resource_id in by_type.items()
    ]


def test_if_modified_since_its_own_last_modified_is_a_304_for_every_stored_type(client):
    """The battery sent back each read's own Last-Modified and got the body again (200):
    If-Modified-Since was not read at all."""
    for path in stored_paths(client):
        first = client.get(path)
        assert first.status_code == 200
        last_modified = first.headers["Last-Modified"]
        moment = parse_date(last_modified)
        assert moment is not None
        for since in (last_modified, http_date(moment + timedelta(days=1))):
            again = client.get(path, headers={"If-Modified-Since": since})
            assert again.status_code == 304, (path, since)
            assert again.data == b""
            # RFC 9110 §15.4.5: a 304 carries the ETag (Last-Modified may be left out).
            assert again.headers["ETag"] == first.headers["ETag"]
        earlier = client.get(
            path, headers={"If-Modified-Since": http_date(moment - timedelta(seconds=1))}
        )
        assert earlier.status_code == 200
        assert earlier.data == first.data
        # RFC 9110 §13.1.3: with If-None-Match, If-Modified-Since is ignored.
        stale_tag = client.get(
            path, headers={"If-Modified-Since": last_modified, "If-None-Match": 'W/"2"'}
        )
        assert stale_tag.status_code == 200
        not_a_date = client.get(path, headers={"If-Modified-Since": "yesterday"})
        assert not_a_date.status_code == 200


def test_the_capability_statement_declares_conditional_read_and_each_date_it_searches(client):
    statement = client.get("/fhir/metadata").get_json()
    stored = {
        r["type"]: r
        for r in statement["rest"][0]["resource"]
        if r["type"] in ("Bundle", "Observation", "Provenance", "AuditEvent")
    }
    assert {r["conditionalRead"] for r in stored.values()} == {"full-support"}
    docs = {
        resource_type: {p["name"]: p["documentation"] for p in r.get("searchParam", [])}
        for resource_type, r in stored.items()
    }
    assert docs["AuditEvent"]["date"].startswith("AuditEvent.recorded")
    assert docs["Observation"]["date"].startswith("Observation.effectiveDateTime")
    assert "AuditEvent" not in docs["Observation"]["date"]


# --- tokens ----------------------------------------------------------------------------------


def test_a_system_alone_finds_every_code_of_that_system_and_nothing_else(client):
    bundle = triage(client, "Patient/system-only")
    systems: dict[str, set[str]] = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Observation":
            for coding in resource["code"]["coding"]:
                systems.setdefault(coding["system"], set()).add(resource["id"])
    assert len(systems[f"{SYSTEM}/red-flag-rule"]) >= 2  # the concussion fires several
    for system, carriers in systems.items():
        page = search(
            client, f"/fhir/Observation?subject=Patient/system-only&code={system}|&_count=100"
        )
        assert ids(page) == carriers, system
        assert page["total"] == len(carriers)
    unknown = "/fhir/Observation?subject=Patient/system-only&code=https://unknown.example/cs|"
    assert search(client, unknown)["total"] == 0
    # A system with a code of another system's: nothing.
    loinc_rule = "/fhir/Observation?subject=Patient/system-only&code=http://loinc.org|RF-HEAD-NEURO"
    assert search(client, loinc_rule)["total"] == 0


def test_audit_event_tokens_match_only_in_their_own_system(client):
    """`subtype=http://example.org|read` answered every read event: the system was ignored."""
    bundle = triage(client)
    assert client.get(f"/fhir/Bundle/{bundle['id']}").status_code == 200
    search(client, "/fhir/AuditEvent?_count=0")  # the newest event, left out below
    # The events before the newest one: the searches below add their own, later ones.
    newest = search(client, "/fhir/AuditEvent?_count=1")["entry"][0]["resource"]["recorded"]
    frozen = urlencode({"date": f"lt{newest}"})

    def total(query: str) -> int:
        return search(client, f"/fhir/AuditEvent?{frozen}&_count=0&{query}")["total"]

    for name, code in (("subtype", "read"), ("action", "R"), ("outcome", "0")):
        bare = total(f"{name}={code}")
        assert bare >= 1, name
        system = AUDIT_TOKEN_SYSTEMS[name]
        assert total(f"{name}={system}|{code}") == bare, name
        assert total(f"{name}=http://example.org|{code}") == 0, name
        assert total(f"{name}=|{code}") == 0, name  # explicitly no system: none has none
        assert total(f"{name}=http://example.org|{code},{code}") == bare, name  # OR
    everything = total("")
    assert total(f"subtype={AUDIT_TOKEN_SYSTEMS['subtype']}|") == everything
    assert total("subtype=http://example.org|") == 0


@pytest.mark.parametrize("value", ["a\\,b", "RF-HEAD-NEURO\\", "x|a\\|b", "\\\\"])
def test_fhir_escapes_are_refused_not_read_as_separators(client, value):
    """`code=a\\,b` is the one code `a,b` to FHIR; it was split into `a\\` OR `b`."""
    refused = search(client, "/fhir/Observation?" + urlencode({"code": value}), status=400)
    assert refused["issue"][0]["expression"] == ["http.code"]


# --- the paging cursor is signed -------------------------------------------------------------


def test_only_a_cursor_issued_for_this_search_of_this_tenant_is_followed(app, client):
    for _ in range(5):
        triage(client, "Patient/walker")
    first = search(client, "/fhir/QuestionnaireResponse?subject=Patient/walker&_count=2")
    url = next_link(first)
    token = cursor_of(url)
    second = search(client, url)
    assert len(ids(second)) == 2
    assert not ids(second) & ids(first)

    raw, dot, mac = token.partition(".")
    assert dot
    assert raw
    assert mac
    decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    _direction, sort_us, resource_id = decoded.split("|")
    moved = Cursor("after", int(sort_us) + 1, resource_id).encode()

    refused_cursor(client, with_cursor(url, raw))  # unsigned, as cursors were before
    refused_cursor(client, with_cursor(url, f"{moved}.{mac}"))  # another position
    refused_cursor(client, with_cursor(url, f"{raw}.{mac[::-1]}"))
    refused_cursor(client, with_cursor(url, f"{raw}.{mac}.{mac}"))
    # The same cursor in another search: another subject, another type, no subject.
    other_subject = with_cursor("/fhir/QuestionnaireResponse?subject=Patient/x&_count=2", token)
    refused_cursor(client, other_subject)
    refused_cursor(client, with_cursor("/fhir/Observation?subject=Patient/walker", token))
    refused_cursor(client, with_cursor("/fhir/QuestionnaireResponse?_count=2", token))
    # Another tenant holding this tenant's link.
    other = create_client(app.extensions[EXTENSION].clients, tenant="elsewhere")
    refused_cursor(anonymous(app), url, headers={"Authorization": f"Bearer {other.api_key}"})
    # What does not change the search: the page size, the order of the parameters.
    resized_url = "/fhir/QuestionnaireResponse?subject=Patient/walker&_count=3"
    resized = search(client, with_cursor(resized_url, token))
    assert ids(second) < ids(resized)
    reordered = search(
        client, with_cursor("/fhir/QuestionnaireResponse?_count=2&subject=Patient/walker", token)
    )
    assert ids(reordered) == ids(second)
    # A refused cursor is an audited, refused search of this tenant.
    # Seven refusals of this tenant (the eighth, the other tenant's, is filed under it).
    refusals = search(client, "/fhir/AuditEvent?subtype=search-type&outcome=4&_count=100")
    assert len(refusals["entry"]) == 7


def test_any_altered_character_of_a_cursor_is_refused(client):
    for _ in range(3):
        triage(client, "Patient/alter")
    url = next_link(search(client, "/fhir/Observation?subject=Patient/alter&_count=2"))
    token = cursor_of(url)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."

    @settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.integers(0, len(token) - 1), st.sampled_from(alphabet))
    def altered(position: int, character: str) -> None:
        if token[position] == character:
            return
        changed = token[:position] + character + token[position + 1 :]
        refused_cursor(client, with_cursor(url, changed))

    altered()
    assert search(client, url)["entry"]


# --- search by POST ------------------------------------------------------------------------

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_a_search_by_post_is_the_same_search_as_by_get(client):
    """POST /fhir/Observation/_search answered 404: R4 http.html has servers support
    search by GET and by POST (or refuse one of them with 405)."""
    for _ in range(3):
        triage(client, "Patient/poster")
    triage(client, "Patient/bystander")
    query = "subject=Patient/poster&code=http://loinc.org|11283-9&_count=2"
    by_get = search(client, f"/fhir/Observation?{query}")
    response = client.post("/fhir/Observation/_search", data=query, headers=FORM)
    assert response.status_code == 200, response.get_data(as_text=True)
    by_post = response.get_json()
    assert by_post["type"] == "searchset"
    assert by_post["total"] == by_get["total"] == 3
    assert ids(by_post) == ids(by_get)
    assert [link["url"] for link in by_post["link"]] == [link["url"] for link in by_get["link"]]
    assert response.headers["ETag"] == client.get(f"/fhir/Observation?{query}").headers["ETag"]
    # Its links are GET URLs, followed like any other.
    rest = search(client, next_link(by_post))
    assert len(ids(rest)) == 1
    # The URL's parameters and the body's are one search (ANDed), none dropped.
    split = client.post(
        "/fhir/Observation/_search?subject=Patient/poster",
        data="code=http://loinc.org|11283-9&_count=100",
        headers=FORM,
    )
    assert ids(split.get_json()) == ids(search(client, f"/fhir/Observation?{query[:-1]}100"))
    # A POST is not a revalidation: no 304 for its ETag.
    again = client.post(
        "/fhir/Observation/_search",
        data=query,
        headers={**FORM, "If-None-Match": response.headers["ETag"]},
    )
    assert again.status_code == 200
    # Audited like the GET, the body's parameters in entity.query.
    events = search(client, "/fhir/AuditEvent?subtype=search-type&outcome=0&_count=100")
    queries = [
        base64.b64decode(entity["query"]).decode()
        for event in events["entry"]
        for entity in event["resource"]["entity"]
        if "query" in entity
    ]
    assert "subject=Patient/poster&code=http://loinc.org|11283-9&_count=100" in queries


@pytest.mark.parametrize(
    ("body", "headers", "status", "expression"),
    [
        ("subject=Patient/a", {"Content-Type": "application/json"}, 415, "http.Content-Type"),
        ("subject=Patient/a", {}, 415, "http.Content-Type"),
        (
            "subject=Patient/a",
            {"Content-Type": f"{FORM['Content-Type']}; charset=latin-1"},
            415,
            "http.Content-Type",
        ),
        ("patient=Patient/a", FORM, 400, "http.patient"),
        ("subject:missing=true", FORM, 400, "http.subject:missing"),
        ("_format=json", FORM, 400, "http._format"),
        ("_cursor=YXwxfGE", FORM, 400, "http._cursor"),
        ("_count=101", FORM, 400, "http._count"),
    ],
)
def test_a_search_by_post_is_as_strict_as_by_get(client, body, headers, status, expression):
    response = client.post("/fhir/QuestionnaireResponse/_search", data=body, headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == [expression]


def test_a_search_by_post_needs_the_search_scope(app):
    clients = app.extensions[EXTENSION].clients
    reader = create_client(clients, tenant="local", scopes=("system/Observation.r",))
    response = anonymous(app).post(
        "/fhir/Observation/_search",
        data="subject=Patient/a",
        headers={**FORM, "Authorization": f"Bearer {reader.api_key}"},
    )
    assert response.status_code == 403
    assert "system/Observation.s" in response.headers["WWW-Authenticate"]


_NAMES = st.sampled_from(
    ["subject", "code", "date", "_lastUpdated", "authored", "_count", "_cursor", "patient", "x"]
)
_VALUES = st.one_of(
    st.sampled_from(
        ["Patient/poster", "poster", "http://loinc.org|11283-9", "|x", "ge2026", "2", "", "a\\,b"]
    ),
    st.text(max_size=12),
)


def test_post_and_get_searches_agree_on_every_query(client):
    """The same parameters by GET and by POST: the same status, matches, links and issues."""
    triage(client, "Patient/poster")

    @settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.tuples(_NAMES, _VALUES), max_size=4))
    def agree(pairs: list[tuple[str, str]]) -> None:
        query = urlencode(pairs)
        by_get = client.get(f"/fhir/Observation?{query}")
        by_post = client.post("/fhir/Observation/_search", data=query, headers=FORM)
        assert by_post.status_code == by_get.status_code, query
        got, posted = by_get.get_json(), by_post.get_json()
        for body in (got, posted):
            body.pop("id", None)
            body.pop("meta", None)
        assert posted == got, query

    agree()
