"""Issue 12 pieces that need no server: request ids, JSON log lines, settings, 500s, metrics.

Plus one ``server`` test: plain ``gunicorn 'api:create_app()'`` from the repository
root (gunicorn reads ``gunicorn.conf.py`` there) serves with the same model and logs.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from api import create_app
from api.config import ConfigError
from api.serving import metrics
from api.serving.config import ServingSettings
from api.serving.gunicorn_conf import WORKER_CLASS, freeze_preloaded_heap, gunicorn_options
from api.serving.logs import JsonFormatter
from api.serving.requestid import accepted_request_id
from api.serving.worker import operation_outcome_error
from bench.http import free_port, request, running

ROOT = Path(__file__).resolve().parents[1]
GENERATED = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


# --- request ids ----------------------------------------------------------------------------------


@given(st.text(max_size=300))
def test_any_request_id_header_gives_a_sane_id(raw):
    accepted = accepted_request_id(raw)
    assert re.fullmatch(r"[A-Za-z0-9._:-]{8,64}", accepted)
    # A client's id is kept exactly when it is sane; otherwise a fresh one replaces it.
    assert (accepted == raw) == bool(re.fullmatch(r"[A-Za-z0-9._:-]{8,64}", raw))
    if accepted != raw:
        assert GENERATED.fullmatch(accepted)


def test_missing_request_id_is_created_and_returned(client):
    first = client.get("/healthz").headers["X-Request-Id"]
    second = client.get("/healthz").headers["X-Request-Id"]
    assert GENERATED.fullmatch(first)
    assert GENERATED.fullmatch(second)
    assert first != second


def test_every_response_carries_the_request_id(client):
    for response in (
        client.get("/healthz", headers={"X-Request-Id": "abcd-1234-efgh"}),
        client.get("/nowhere", headers={"X-Request-Id": "abcd-1234-efgh"}),
        client.post(
            "/v1/triage",
            data=b"{",
            content_type="application/json",
            headers={"X-Request-Id": "abcd-1234-efgh"},
        ),
    ):
        assert response.headers["X-Request-Id"] == "abcd-1234-efgh"


def test_a_500_names_the_request_id_in_its_outcome_and_log(monkeypatch, caplog):
    monkeypatch.delenv("TWITCH_TRIAGE_MAX_BODY_BYTES", raising=False)
    app: Flask = create_app({"TESTING": False})

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("an unexpected failure")

    with caplog.at_level(logging.ERROR, logger="api.errors"):
        response = app.test_client().get("/boom", headers={"X-Request-Id": "incident-0042"})
    assert response.status_code == 500
    assert response.headers["X-Request-Id"] == "incident-0042"
    diagnostics = response.get_json()["issue"][0]["diagnostics"]
    assert "incident-0042" in diagnostics
    assert "an unexpected failure" not in diagnostics
    logged = [r for r in caplog.records if r.name == "api.errors"]
    assert any("incident incident-0042" in record.getMessage() for record in logged)
    assert JsonFormatter().format(logged[0])  # formats, traceback included as one field


def test_a_timeout_outside_the_body_read_stays_a_500(monkeypatch):
    """Only body read failures are the client's fault (400); a later timeout is ours."""
    monkeypatch.delenv("TWITCH_TRIAGE_MAX_BODY_BYTES", raising=False)
    app: Flask = create_app({"TESTING": False})

    @app.get("/slow-dependency")
    def slow_dependency() -> str:
        raise TimeoutError("a dependency timed out")

    response = app.test_client().get("/slow-dependency")
    assert response.status_code == 500
    assert response.get_json()["issue"][0]["code"] == "exception"


# --- the huge-integer fix through the test client -------------------------------------------------


@pytest.mark.parametrize("digits", ["1" * 5000, "-" + "2" * 4301, "3" * 4300])
def test_huge_integers_are_422_naming_the_field(client, digits):
    body = '{"patient": {"age_years": DIGITS}, "twitching": {"body_sites": ["calf"]}}'.replace(
        "DIGITS", digits
    )
    response = client.post("/v1/triage", data=body, content_type="application/json")
    assert response.status_code == 422
    issues = response.get_json()["issue"]
    assert [i["expression"] for i in issues] == [["patient.age_years"]]


# --- JSON log lines -------------------------------------------------------------------------------


def test_json_formatter_line_has_utc_offset_level_and_request_id(app):
    record = logging.LogRecord("api.errors", logging.WARNING, __file__, 1, "x %s", ("y",), None)
    with app.test_request_context("/healthz", headers={"X-Request-Id": "req-abcdefgh"}):
        app.preprocess_request()
        line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "x y"
    assert line["level"] == "WARNING"
    assert line["request_id"] == "req-abcdefgh"
    assert datetime.fromisoformat(line["time"]).utcoffset().total_seconds() == 0
    assert line["time"].endswith("+00:00")


def test_app_incident_lines_are_json_without_any_server_configuration():
    """``create_app`` alone (as under a bare ``gunicorn 'api:create_app()'``) logs JSON."""
    code = (
        "import logging; from api import create_app; create_app(); "
        "logging.getLogger('api.errors').error('unhandled error, incident %s', 'abc')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stderr.strip().splitlines()[-1])
    assert line["level"] == "ERROR"
    assert line["message"] == "unhandled error, incident abc"
    assert datetime.fromisoformat(line["time"]).utcoffset() is not None


# --- settings and gunicorn options ----------------------------------------------------------------


def test_serving_settings_defaults_and_environment():
    assert ServingSettings.load(environ={}).model == "gevent"
    env = {"TWITCH_TRIAGE_HEADER_TIMEOUT": "7", "TWITCH_TRIAGE_CONNECTIONS": "50"}
    settings = ServingSettings.load({"workers": "3"}, env)
    assert (settings.header_timeout, settings.connections, settings.workers) == (7, 50, 3)
    options = gunicorn_options(settings)
    assert options["worker_class"] == WORKER_CLASS
    assert options["keepalive"] == 7
    assert options["worker_connections"] == 50
    assert gunicorn_options(ServingSettings(model="sync"))["worker_class"] == "sync"


def test_only_the_proxy_may_say_https():
    """gunicorn believes X-Forwarded-Proto only from TWITCH_TRIAGE_FORWARDED_ALLOW_IPS."""
    assert gunicorn_options(ServingSettings.load(environ={}))["forwarded_allow_ips"] == (
        "127.0.0.1,::1"
    )
    env = {"TWITCH_TRIAGE_FORWARDED_ALLOW_IPS": " 10.0.0.10, 10.0.1.0/24 ,::1"}
    settings = ServingSettings.load(environ=env)
    assert gunicorn_options(settings)["forwarded_allow_ips"] == "10.0.0.10,10.0.1.0/24,::1"


def test_serve_offers_the_sync_model_only_behind_a_declared_proxy(tmp_path, capsys):
    """A sync worker is held by each slow client: without a buffering proxy, refused."""
    from api.cli import main  # noqa: PLC0415 (the serve command itself)

    env = {"TWITCH_TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path}/store.sqlite3",
           "TWITCH_TRIAGE_LOCAL_KEY_FILE": str(tmp_path / "key")}  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--model", "sync"], environ=env)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "buffering proxy" in error
    assert "TWITCH_TRIAGE_TLS_TERMINATED=true" in error
    assert not (tmp_path / "key").exists()  # refused before anything was set up


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TWITCH_TRIAGE_MODEL": "eventlet"}, "TWITCH_TRIAGE_MODEL"),
        ({"TWITCH_TRIAGE_HEADER_TIMEOUT": "0"}, "TWITCH_TRIAGE_HEADER_TIMEOUT"),
        ({"TWITCH_TRIAGE_BODY_TIMEOUT": "5s"}, "TWITCH_TRIAGE_BODY_TIMEOUT"),
        ({"TWITCH_TRIAGE_METRICS_PORT": "8000"}, "metrics port"),  # the API's own port
        ({"TWITCH_TRIAGE_CONNECTIONS": "-1"}, "TWITCH_TRIAGE_CONNECTIONS"),
        # "*" would let any client that reaches a node directly claim https.
        ({"TWITCH_TRIAGE_FORWARDED_ALLOW_IPS": "*"}, "TWITCH_TRIAGE_FORWARDED_ALLOW_IPS"),
        ({"TWITCH_TRIAGE_FORWARDED_ALLOW_IPS": "proxy.lan"}, "TWITCH_TRIAGE_FORWARDED_ALLOW_IPS"),
        ({"TWITCH_TRIAGE_FORWARDED_ALLOW_IPS": " , "}, "TWITCH_TRIAGE_FORWARDED_ALLOW_IPS"),
    ],
)
def test_bad_serving_settings_name_the_variable(env, named):
    with pytest.raises(ConfigError, match=named):
        ServingSettings.load(environ=env)


def test_gunicorn_error_page_is_an_operation_outcome():
    raw = operation_outcome_error(431, "Request Header Fields Too Large", "too many headers")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"Content-Type: application/fhir+json; fhirVersion=4.0" in head
    assert int(re.search(rb"Content-Length: (\d+)", head).group(1)) == len(body)
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "too-costly"
    hidden = json.loads(operation_outcome_error(500, "Internal Server Error", "secret detail")
                        .partition(b"\r\n\r\n")[2])  # fmt: skip
    assert "secret detail" not in json.dumps(hidden)
    assert hidden["issue"][0]["code"] == "exception"


# --- metrics --------------------------------------------------------------------------------------


def test_metrics_are_not_served_by_the_app(client):
    response = client.get("/metrics")
    assert response.status_code == 404


def _levels_issued(source: str) -> float:
    """Triage levels counted for ``source``, summed over every level."""
    return sum(
        sample.value
        for metric in metrics.TRIAGE_LEVELS.collect()
        for sample in metric.samples
        if sample.name == "twitch_triage_levels_issued_total" and sample.labels["source"] == source
    )


def test_app_counts_requests_and_levels(client):
    labels = ("POST", "/v1/triage", "200")
    before = metrics.HTTP_REQUESTS.labels(*labels)._value.get()
    levels_before = _levels_issued("v1")
    body = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}
    assert client.post("/v1/triage", json=body).status_code == 200
    assert metrics.HTTP_REQUESTS.labels(*labels)._value.get() == before + 1
    assert _levels_issued("v1") == levels_before + 1


def test_storage_and_identity_counters_are_defined():
    assert metrics.DATABASE_ERRORS._labelnames == ("operation",)
    assert metrics.RATE_LIMIT_REJECTIONS._labelnames == ("route",)


# --- plain gunicorn -------------------------------------------------------------------------------


@pytest.mark.server
def test_plain_gunicorn_from_the_repository_serves_the_same_way():
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "api:create_app()", "-b", f"127.0.0.1:{port}",
            "-w", "1"]  # fmt: skip
    with running("plain-gunicorn", argv, port) as server:
        status, headers, _ = request(port, "GET", "/healthz?x=Quxwy", timeout=5.0)
        assert status == 200
        request_id = headers["X-Request-Id"]
        deadline = time.monotonic() + 5  # the access line is written after the answer
        while request_id not in (text := server.log_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert any(line["message"].startswith("Using worker: " + WORKER_CLASS) for line in lines)
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    assert any(line["request_id"] == request_id and line["path"] == "/healthz" for line in access)
    assert "Quxwy" not in text
    for line in lines:
        assert datetime.fromisoformat(line["time"]).utcoffset() is not None
        assert line["level"]


@pytest.mark.parametrize("model", ["gevent", "sync"])
def test_the_master_freezes_the_preloaded_heap_before_each_fork(model):
    """A worker's full collection walked the ~150,000 objects of the preloaded app (~65 ms
    of stopped event loop, measured); frozen in the master, no collection visits them."""
    options = gunicorn_options(ServingSettings.load({"model": model}, environ={}))
    assert options["pre_fork"] is freeze_preloaded_heap
    assert options["preload_app"] is True
    loaded = [object()]  # stands for the preloaded app: tracked by the collector
    try:
        before = gc.get_freeze_count()
        freeze_preloaded_heap()
        assert gc.get_freeze_count() > before
        assert not any(item is loaded for item in gc.get_objects())  # out of its sight
    finally:
        gc.unfreeze()


# --- the contract ---------------------------------------------------------------------------------


def test_every_operation_documents_the_request_id_and_the_servers_own_errors():
    from tools.openapi import REQUEST_ID_PATTERN, build_spec  # noqa: PLC0415

    document = build_spec()
    header = document["components"]["headers"]["XRequestId"]
    assert header["required"] is True
    assert header["schema"]["pattern"] == REQUEST_ID_PATTERN
    # The documented pattern is the rule the server applies (and new ids match it).
    assert re.fullmatch(REQUEST_ID_PATTERN[1:-1], accepted_request_id("bad id"))
    assert accepted_request_id("keep-me-01") == "keep-me-01"
    operations = [op for ops in document["paths"].values() for op in ops.values()]
    assert len(operations) >= 17
    for operation in operations:
        assert {"$ref": "#/components/parameters/XRequestId"} in operation["parameters"]
        responses = operation["responses"]
        assert {"414", "417", "431"} <= set(responses), operation["operationId"]
        if "requestBody" in operation:  # the proxy enforces the API's own limit
            assert "client_max_body_size" in responses["413"]["description"]
        for response in responses.values():
            assert response["headers"]["X-Request-Id"] == {
                "$ref": "#/components/headers/XRequestId"
            }
    for status in ("414", "431"):
        answer = document["paths"]["/healthz"]["get"]["responses"][status]
        assert "too-costly" in answer["description"]
