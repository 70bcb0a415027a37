"""The error table of PROTOCOL.md §9, one test per row, through HTTP.

Every error must be a FHIR OperationOutcome with the right status and issue
code, served as application/fhir+json, never a Flask HTML page.
"""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any

import pytest
from conftest import VALID_REQUEST
from flask import Flask
from werkzeug.test import TestResponse

from api import create_app
from api.errors import MAX_ISSUES

FHIR_JSON = "application/fhir+json; fhirVersion=4.0"


def outcome(response: TestResponse, status: int) -> dict[str, Any]:
    """Assert the common OperationOutcome shape and return the parsed body."""
    assert response.status_code == status, response.data
    assert response.headers["Content-Type"] == FHIR_JSON
    body = json.loads(response.data)
    assert body["resourceType"] == "OperationOutcome"
    assert body["text"]["status"] == "generated"
    assert body["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
    assert body["issue"], "an OperationOutcome needs at least one issue"
    for issue in body["issue"]:
        assert issue["severity"] == "error"
        assert issue["diagnostics"]
    return body


def only_code(body: dict[str, Any]) -> str:
    (issue,) = body["issue"]
    return issue["code"]


# --- 400 structure -------------------------------------------------------------------


def test_400_malformed_json(post_triage):
    body = outcome(post_triage(b'{"patient": {"age_years": 30}'), 400)
    assert only_code(body) == "structure"
    assert "not valid JSON" in body["issue"][0]["diagnostics"]


def test_400_nan(post_triage):
    body = outcome(post_triage(b'{"patient": {"age_years": NaN}}'), 400)
    assert only_code(body) == "structure"
    assert "NaN" in body["issue"][0]["diagnostics"]


def test_400_duplicate_keys(post_triage):
    raw = b'{"patient": {"age_years": 30, "age_years": 31}, "twitching": {"body_sites": ["calf"]}}'
    body = outcome(post_triage(raw), 400)
    assert only_code(body) == "structure"
    assert "duplicate key" in body["issue"][0]["diagnostics"]


def test_400_not_an_object(post_triage):
    body = outcome(post_triage(b'[{"patient": {"age_years": 30}}]'), 400)
    assert only_code(body) == "structure"


# --- 413 too-costly ------------------------------------------------------------------


@pytest.fixture
def small_limit_app(monkeypatch: pytest.MonkeyPatch) -> Flask:
    monkeypatch.delenv("TWITCH_TRIAGE_MAX_BODY_BYTES", raising=False)
    return create_app({"TESTING": True, "MAX_BODY_BYTES": 64})


def test_413_content_length_over_the_configured_limit(small_limit_app):
    raw = json.dumps({**VALID_REQUEST, "notes": "x" * 100}).encode()
    response = small_limit_app.test_client().post(
        "/v1/triage", data=raw, content_type="application/json"
    )
    body = outcome(response, 413)
    assert only_code(body) == "too-costly"
    assert "64 bytes" in body["issue"][0]["diagnostics"]


@pytest.mark.parametrize("werkzeug_limit", [True, False], ids=["werkzeug-cap", "own-cap"])
def test_413_chunked_body_without_content_length(small_limit_app, werkzeug_limit):
    """A streamed body is cut at the limit by the read itself, not by a header."""
    if not werkzeug_limit:
        small_limit_app.config["MAX_CONTENT_LENGTH"] = None  # only read_body's cap is left
    raw = json.dumps({**VALID_REQUEST, "notes": "x" * 100}).encode()
    response = small_limit_app.test_client().post(
        "/v1/triage",
        input_stream=io.BytesIO(raw),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert only_code(outcome(response, 413)) == "too-costly"


def test_body_at_the_limit_is_read(small_limit_app):
    raw = b'{"patient":{"age_years":30},"twitching":{"body_sites":["calf"]}}'
    raw = raw + b" " * (64 - len(raw))
    assert len(raw) == 64
    response = small_limit_app.test_client().post(
        "/v1/triage", data=raw, content_type="application/json"
    )
    assert response.status_code == 200


# --- 415 not-supported ---------------------------------------------------------------


def test_415_wrong_content_type(post_triage):
    body = outcome(post_triage(VALID_REQUEST, content_type="text/plain"), 415)
    assert only_code(body) == "not-supported"


# --- 422 one issue per field -----------------------------------------------------------


def test_422_one_issue_per_field_with_path_and_code(post_triage):
    request = {
        "patient": {"age_years": 130, "sex": "woman"},
        "twitching": {"body_sites": ["calf", "calf", "nose"]},
        "symptoms": {"confsion": True},
        "history": {"medications": [{"class": "statin"}, {"days_since_start": 3}]},
    }
    body = outcome(post_triage(request), 422)
    found = {issue["expression"][0]: issue for issue in body["issue"]}
    assert {path: issue["code"] for path, issue in found.items()} == {
        "patient.age_years": "value",
        "patient.sex": "code-invalid",
        "twitching.body_sites[1]": "value",
        "twitching.body_sites[2]": "code-invalid",
        "symptoms.confsion": "invalid",
        "history.medications[1].class": "required",
    }
    for path, issue in found.items():
        assert len(issue["expression"]) == 1
        assert issue["diagnostics"].startswith(f"{path}: ")
    assert "from 0 to 120" in found["patient.age_years"]["diagnostics"]
    assert "did you mean 'confusion'" in found["symptoms.confsion"]["diagnostics"]


def test_422_missing_required_sections(post_triage):
    body = outcome(post_triage({}), 422)
    assert [(i["expression"], i["code"]) for i in body["issue"]] == [
        (["patient"], "required"),
        (["twitching"], "required"),
    ]


def test_422_free_text_is_escaped_in_the_narrative_and_capped(post_triage):
    key = "<script>alert(1)</script>" + "k" * 300
    body = outcome(post_triage({**VALID_REQUEST, key: 1}), 422)
    div = body["text"]["div"]
    assert "<script>" not in div
    assert "&lt;script&gt;" in div
    (issue,) = body["issue"]
    assert issue["code"] == "invalid"
    assert len(issue["expression"][0]) < 100
    assert len(issue["diagnostics"]) <= 500


def test_422_lone_surrogate_in_a_key_still_gives_a_json_outcome(post_triage):
    raw = b'{"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}, "\\ud800": 1}'
    body = outcome(post_triage(raw), 422)
    assert body["issue"][0]["expression"] == ['["\\ud800"]']


def test_422_issue_count_is_bounded(post_triage):
    request = {**VALID_REQUEST, **{f"unknown_{n}": n for n in range(300)}}
    body = outcome(post_triage(request), 422)
    assert len(body["issue"]) == MAX_ISSUES
    assert body["issue"][-1]["code"] == "too-costly"
    assert "201 further problems" in body["issue"][-1]["diagnostics"]


# --- 404 / 405 / 406 ---------------------------------------------------------------------


def test_404_unknown_path(client):
    body = outcome(client.get("/v1/triage/extra"), 404)
    assert only_code(body) == "not-found"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/fhir//AuditEvent"), ("POST", "/v1//triage"), ("GET", "//healthz")],
)
def test_a_doubled_slash_is_a_404_outcome_not_an_html_redirect(client, method, path):
    """werkzeug merges slashes with a 308 HTML page whose Location follows the Host header."""
    response = client.open(
        path, method=method, json=VALID_REQUEST, headers={"Host": "evil.example"}
    )
    body = outcome(response, 404)
    assert only_code(body) == "not-found"
    assert "Location" not in response.headers


def test_405_wrong_method_keeps_allow_header(client):
    response = client.get("/v1/triage")
    body = outcome(response, 405)
    assert only_code(body) == "not-supported"
    assert "POST" in response.headers["Allow"]


def test_406_accept_excludes_json(post_triage):
    body = outcome(post_triage(VALID_REQUEST, headers={"Accept": "text/html"}), 406)
    assert only_code(body) == "not-supported"


# --- 500 exception -------------------------------------------------------------------------


SECRET = "db-password=hunter2 at /srv/secret/path.py"  # noqa: S105 (a fake leak to detect)


@pytest.fixture
def failing_app(app: Flask) -> Flask:
    """The real app plus a test-only route that fails with internals in the message."""

    @app.get("/test-only/boom")
    def boom() -> None:
        raise RuntimeError(SECRET)

    return app


def assert_leaks_nothing(response: TestResponse) -> str:
    body = outcome(response, 500)
    text = response.get_data(as_text=True)
    for leak in ("hunter2", "/srv/secret", "RuntimeError", "Traceback", "line "):
        assert leak not in text
    assert only_code(body) == "exception"
    # The incident id is the request id (a UUID unless the caller sent a sane one).
    match = re.search(r"incident ([A-Za-z0-9._:-]{8,64})", body["issue"][0]["diagnostics"])
    assert match
    return match.group(1)


def test_500_leaks_nothing_and_logs_the_incident(failing_app, caplog):
    with caplog.at_level(logging.ERROR, logger="api.errors"):
        response = failing_app.test_client().get("/test-only/boom")
    incident = assert_leaks_nothing(response)
    (record,) = [r for r in caplog.records if incident in r.getMessage()]
    assert record.exc_info is not None
    assert SECRET in str(record.exc_info[1])


def test_500_from_the_engine(post_triage, monkeypatch):
    def broken(request: object) -> None:
        raise KeyError(SECRET, request)

    monkeypatch.setattr("api.services.triage.evaluate", broken)
    assert_leaks_nothing(post_triage(VALID_REQUEST))
