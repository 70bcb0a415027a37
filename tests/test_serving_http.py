"""Issue 12 probe findings against the real server (gunicorn, gevent workers, loopback).

One server per module (``python -m api.cli serve``, short header and body timeouts
so the bounds are quick to test, a metrics port), raw sockets for what an HTTP
client library cannot send. Marked ``server``; every socket has a timeout and
the server is always stopped.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from http import HTTPStatus

import pytest

from bench.http import API_KEYS, HOST, api_argv, free_port, request, running
from tests.support.rawhttp import connection, read_one_response, read_until_close

pytestmark = pytest.mark.server

HEADER_TIMEOUT = 2
BODY_TIMEOUT = 2
LIMIT = 65536
JSON = {"Content-Type": "application/json"}
#: The key of the server under test (issue 11: every triage needs one).
KEY: dict[str, bytes] = {}
VALID = b'{"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}'
QR_TEMPLATE = (
    '{"resourceType": "QuestionnaireResponse", "status": "completed", '
    '"questionnaire": "https://twitch-triage.org/fhir/Questionnaire/twitch-triage-intake", '
    '"item": [{"linkId": "patient.age_years", "answer": [{"valueInteger": %s}]}]}'
)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[object, int]]:
    port, metrics_port = free_port(), free_port()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TWITCH_TRIAGE_HEADER_TIMEOUT", str(HEADER_TIMEOUT))
        patch.setenv("TWITCH_TRIAGE_BODY_TIMEOUT", str(BODY_TIMEOUT))
        patch.setenv("TWITCH_TRIAGE_METRICS_PORT", str(metrics_port))
        patch.setenv("TWITCH_TRIAGE_MAX_BODY_BYTES", str(LIMIT))
        patch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
        with running("api", api_argv(port), port) as server:
            KEY["value"] = API_KEYS[port].encode()  # every triage needs a key (issue 11)
            yield server, metrics_port


@pytest.fixture
def server(served):
    return served[0]


def exchange(port: int, data: bytes, timeout: float = 5.0) -> tuple[int, dict[str, str], dict]:
    with connection(port, timeout) as sock:
        sock.sendall(data)
        status, headers, body = read_one_response(sock)
    assert headers["content-type"].startswith("application/fhir+json"), (status, headers, body)
    return status, headers, json.loads(body)


def post(length: int | None, path: bytes = b"/v1/triage", extra: bytes = b"") -> bytes:
    framing = b"Transfer-Encoding: chunked" if length is None else b"Content-Length: %d" % length
    return (b"POST " + path + b" HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + b"Authorization: Bearer " + KEY.get("value", b"") + b"\r\n"
            + framing + b"\r\n" + extra + b"\r\n")  # fmt: skip


def issue(outcome: dict) -> dict:
    assert outcome["resourceType"] == "OperationOutcome", outcome
    return outcome["issue"][0]


def wait_for_log(server, needle: str, seconds: float = 5.0) -> None:
    """The access line is written after the answer is sent: wait for it (bounded)."""
    deadline = time.monotonic() + seconds
    while needle not in server.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)


def log_lines(server) -> list[dict]:
    return [json.loads(line) for line in server.log_text().splitlines() if line.strip()]


# --- slow and idle clients -----------------------------------------------------------------------


def test_slow_header_clients_do_not_block_healthz_and_are_cut_off(server):
    port = server.port
    slow = [socket.create_connection((HOST, port), timeout=5.0) for _ in range(30)]
    try:
        for sock in slow:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        started = time.monotonic()
        for _ in range(10):
            status, _, _ = request(port, "GET", "/healthz", timeout=5.0)
            assert status == 200
        assert time.monotonic() - started < 2.0
        time.sleep(0.5)
        for sock in slow:
            sock.sendall(b"X-Slow: 1\r\n")  # still sending, one line at a time
        # The whole head must arrive within the header timeout: then the server closes.
        deadline = time.monotonic() + HEADER_TIMEOUT + 3
        for sock in slow:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            assert sock.recv(65536) == b""
        assert time.monotonic() < deadline
    finally:
        for sock in slow:
            sock.close()


def test_connections_close_after_each_answer_by_default(server):
    with connection(server.port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status, headers, _ = read_one_response(sock)
        assert (status, headers["connection"]) == (200, "close")
        assert sock.recv(1) == b""


def test_with_keep_alive_idle_connections_are_closed_after_the_header_timeout():
    port = free_port()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TWITCH_TRIAGE_KEEP_ALIVE", "1")
        patch.delenv("TWITCH_TRIAGE_METRICS_PORT", raising=False)  # the module server's
        patch.setenv("TWITCH_TRIAGE_HEADER_TIMEOUT", str(HEADER_TIMEOUT))
        with running("api-keepalive", api_argv(port, workers=1), port), connection(port) as sock:
            for _ in range(2):  # the connection is reused ...
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                status, headers, _ = read_one_response(sock)
                assert (status, headers["connection"]) == (200, "keep-alive")
            started = time.monotonic()
            assert sock.recv(1) == b""  # ... until it idles for the header timeout
            assert HEADER_TIMEOUT - 0.5 < time.monotonic() - started < HEADER_TIMEOUT + 2


def test_body_shorter_than_its_content_length_is_a_quick_400(server):
    started = time.monotonic()
    status, _, outcome = exchange(server.port, post(1000) + VALID[:30], timeout=10.0)
    elapsed = time.monotonic() - started
    assert (status, issue(outcome)["code"]) == (400, "structure")
    assert "Content-Length" in issue(outcome)["diagnostics"]
    assert elapsed < BODY_TIMEOUT + 2


# --- client mistakes are 4xx OperationOutcomes ---------------------------------------------------


def test_malformed_chunk_size_is_400(server):
    status, _, outcome = exchange(server.port, post(None) + b"zz\r\n{}\r\n0\r\n\r\n")
    assert (status, issue(outcome)["code"]) == (400, "structure")
    assert "transfer encoding" in issue(outcome)["diagnostics"]


def test_missing_chunk_terminator_is_400(server):
    status, _, outcome = exchange(server.port, post(None) + b"2\r\n{}XX0\r\n\r\n")
    assert (status, issue(outcome)["code"]) == (400, "structure")


@pytest.mark.parametrize("digits", ["1" * 5000, "-" + "9" * 4400])
def test_huge_integer_names_the_field_on_both_endpoints(server, digits):
    body = b'{"patient": {"age_years": %s}, "twitching": {"body_sites": ["calf"]}}' % (
        digits.encode()
    )
    status, _, outcome = exchange(server.port, post(len(body)) + body)
    assert status == 422
    assert issue(outcome)["expression"] == ["patient.age_years"]
    qr = (QR_TEMPLATE % digits).encode()
    path = b"/fhir/QuestionnaireResponse/$triage"
    status, _, outcome = exchange(server.port, post(len(qr), path=path) + qr)
    assert status == 422
    expressions = [i["expression"][0] for i in outcome["issue"]]
    assert "QuestionnaireResponse.item[0].answer[0].valueInteger" in expressions
    text = server.log_text()
    assert "Traceback" not in text
    assert '"level":"ERROR"' not in text


def test_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_413(server):
    exact = b'{"notes": "' + b"x" * (LIMIT - 13) + b'"}'
    assert len(exact) == LIMIT
    over = exact[:-2] + b'x"}'
    for framed in (
        post(len(exact)) + exact,
        post(None) + b"%x\r\n%s\r\n0\r\n\r\n" % (LIMIT, exact),
    ):
        status, _, outcome = exchange(server.port, framed)
        # Read in full and judged by the schema (notes over 2,000 characters), not 413.
        assert status == 422, outcome
        assert issue(outcome)["expression"] == ["notes"]
    for framed in (
        post(len(over)) + over,
        post(None) + b"%x\r\n%s\r\n0\r\n\r\n" % (LIMIT + 1, over),
    ):
        status, _, outcome = exchange(server.port, framed)
        assert (status, issue(outcome)["code"]) == (413, "too-costly")
        assert f"limit of {LIMIT} bytes" in issue(outcome)["diagnostics"]


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 414, "too-costly"),
        (b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
         + b"".join(b"X-H%d: 1\r\n" % i for i in range(200)) + b"\r\n", 431, "too-costly"),
        (b"POST /v1/triage HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n"
         b"Expect: 200-ok\r\n\r\n{}", 417, "not-supported"),
        (b"\x16\x03\x01\x02\x00 garbage\r\n\r\n", 400, "structure"),
        (b"POST /v1/triage HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: foo\r\n\r\n",
         501, "not-supported"),
    ],
)  # fmt: skip
def test_gunicorn_level_errors_are_operation_outcomes(server, raw, status, code):
    got, headers, outcome = exchange(server.port, raw)
    assert (got, issue(outcome)["code"]) == (status, code)
    # The status line names its own status (gunicorn kept "Bad Request" for its 501), and
    # a client's error is explained, not passed off as an internal one.
    with connection(server.port, 5.0) as sock:
        sock.sendall(raw)
        status_line = read_until_close(sock).split(b"\r\n", 1)[0]
    assert status_line == f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode()
    assert "internal error" not in issue(outcome)["diagnostics"]
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        headers["x-request-id"],
    )


@pytest.mark.parametrize(
    "line",
    [
        "GET /fhir/Observation?subject=Patient/LOG-{m}-\u00e9 HTTP/1.1",  # raw UTF-8 in the line
        "GET /fhir/Observation?subject=Patient/LOG-{m}\x01 HTTP/1.1",  # a control byte
        "GET /reports/x?expires=1&signature=LOG-{m} HTTP/1.1 extra",  # a malformed line
    ],
)
def test_a_refused_request_line_is_logged_without_its_query_string(server, line):
    """gunicorn logs the request lines it refuses; their queries hold patient ids and
    link signatures, which never reach the log (README, Logs)."""
    marker = uuid.uuid4().hex[:12]
    raw = line.format(m=marker).encode("utf-8") + b"\r\nHost: localhost\r\n\r\n"
    got, _, _ = exchange(server.port, raw)
    assert got == 400
    wait_for_log(server, '"refusal"')  # the rebuilt refusal line (api.serving.logs)
    time.sleep(0.2)
    text = server.log_text()
    assert "Invalid request" in text
    assert marker not in text


# --- request ids and logs -------------------------------------------------------------------------


def test_request_ids_are_kept_when_sane_and_logged(server):
    sane = "partner-req-0001"
    status, headers, _ = request(
        server.port, "GET", "/healthz", headers={"X-Request-Id": sane}, timeout=5.0
    )
    assert (status, headers["X-Request-Id"]) == (200, sane)
    status, headers, _ = request(
        server.port, "GET", "/healthz", headers={"X-Request-Id": "bad id\t<script>"}, timeout=5.0
    )
    assert status == 200
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        headers["X-Request-Id"],
    )
    wait_for_log(server, f'"request_id":"{sane}"')
    access = [line for line in log_lines(server) if line.get("logger") == "gunicorn.access"]
    assert any(line.get("request_id") == sane for line in access)


def test_log_lines_are_json_with_offset_time_level_and_request_id(server):
    patient_text = "Quxwy-private"  # not hex, so no random request id can contain it
    body = b'{"patient": {"age_years": 30, "reference": "Patient/qwzy"}, "notes": "%s"}' % (
        patient_text.encode()
    )
    status, headers, _ = request(
        server.port,
        "POST",
        f"/v1/triage?subject={patient_text}&_bundle=collection",
        body=body,
        headers=JSON,
        timeout=5.0,
    )
    assert status in (200, 422)
    wait_for_log(server, headers["X-Request-Id"])
    lines = log_lines(server)  # every line parses as JSON
    assert lines
    for line in lines:
        stamp = datetime.fromisoformat(line["time"])
        assert stamp.utcoffset() is not None
        assert stamp.utcoffset().total_seconds() == 0
        assert line["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    triage = [line for line in access if line["path"] == "/v1/triage" and line["method"] == "POST"]
    assert triage
    for line in triage:
        assert re.fullmatch(r"[A-Za-z0-9._:-]{8,64}", line["request_id"])
        assert isinstance(line["status"], int)
        assert line["duration_ms"] >= 0
    text = server.log_text()
    assert patient_text not in text  # neither the query value nor the body
    assert "qwzy" not in text


# --- metrics ------------------------------------------------------------------------------------


def metrics_text(port: int) -> str:
    status, _, raw = request(port, "GET", "/metrics", timeout=5.0)
    assert status == 200
    return raw.decode()


def sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_are_on_their_own_port_and_count_requests(served):
    server, metrics_port = served
    status, _, raw = request(server.port, "GET", "/metrics", timeout=5.0)
    assert status == 404  # never on the public port
    assert b"OperationOutcome" in raw
    before = metrics_text(metrics_port)
    for _ in range(4):  # lands on both workers: the master merges their samples
        answer = request(server.port, "POST", "/v1/triage", body=VALID, headers=JSON, timeout=5.0)
        assert answer[0] == 200
    after = metrics_text(metrics_port)
    labels = {"method": "POST", "route": "/v1/triage", "status": "200"}
    name = "twitch_triage_http_requests_total"
    assert sample(after, name, **labels) - sample(before, name, **labels) == 4
    hist = "twitch_triage_http_request_duration_seconds_count"
    assert sample(after, hist, **labels) - sample(before, hist, **labels) == 4
    levels = "twitch_triage_levels_issued_total"
    assert sample(after, levels, source="v1") - sample(before, levels, source="v1") == 4


def test_the_server_survived_everything(served):
    server, _ = served
    assert server.alive()
    assert request(server.port, "GET", "/healthz", timeout=5.0)[0] == 200
    text = server.log_text()
    for sign in ("Traceback", "WORKER TIMEOUT", "was sent SIG", '"level":"ERROR"'):
        assert sign not in text, text[-3000:]


def _serving_pids(server) -> set[int]:
    return {line["pid"] for line in log_lines(server) if line["logger"] == "gunicorn.access"}


def test_workers_ending_by_reload_or_stop_log_json_lines_only(monkeypatch):
    """A reload (SIGHUP) and a stop (SIGTERM) each end both workers; nothing but JSON.

    At every graceful worker exit Python printed "Exception ignored in
    _removeHandlerRef" and a traceback (logging's lock, patched by gevent, taken
    during interpreter teardown): raw lines in a stream log collectors parse as JSON.
    """
    monkeypatch.delenv("TWITCH_TRIAGE_METRICS_PORT", raising=False)  # the module server's
    port = free_port()
    with running("api", api_argv(port), port) as server:
        # Both workers serving first: a worker signalled before its handlers are installed
        # dies at once, without the line this test counts.
        deadline = time.monotonic() + 20
        while len(_serving_pids(server)) < 2 and time.monotonic() < deadline:
            assert request(port, "POST", "/v1/triage", body=VALID, headers=JSON)[0] == 200
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while server.log_text().count("Worker exiting") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert request(port, "POST", "/v1/triage", body=VALID, headers=JSON, timeout=5.0)[0] == 200
        server.stop()
        assert server.process.returncode == 0
        text = server.log_text()
    assert text.count("Worker exiting") == 4, text[-3000:]
    for line in text.splitlines():
        assert line.startswith("{"), (line, text[-3000:])
        assert json.loads(line)["message"], line
