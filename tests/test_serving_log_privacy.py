"""No request text in the server log, whatever the request (s8 findings F1, F2).

A real server (``twitch-triage serve``: gunicorn, gevent workers, JSON logs) on
loopback; raw sockets send what no HTTP client library would. A marker string is
put in every part of a request line, a header and a path; it must not appear
anywhere in the log, while the refusal is still named (class, status) and the
access line still says which route answered. Marked ``server``.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.http import API_KEYS, api_argv, free_port, running
from tests.support.rawhttp import connection, parse_head, read_until_close

pytestmark = pytest.mark.server

#: Letters no hex request id, timestamp or duration holds, so only a leak can show them.
_COUNTER = itertools.count()


def new_marker() -> str:
    """A fresh marker: upper case (gunicorn upper-cases header names) and never hex."""
    return f"ZQXJ{next(_COUNTER):05d}VWK"


@pytest.fixture(scope="module")
def server() -> Iterator[object]:
    port = free_port()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TWITCH_TRIAGE_HEADER_TIMEOUT", "2")
        patch.setenv("TWITCH_TRIAGE_BODY_TIMEOUT", "2")
        patch.delenv("TWITCH_TRIAGE_METRICS_PORT", raising=False)
        patch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
        with running("api-logs", api_argv(port), port) as served:
            yield served


def send(server, raw: bytes) -> tuple[int | None, list[dict]]:
    """Send ``raw``, read until the server closes; the status and the log lines it wrote.

    The server writes a request's log lines before it closes the connection
    (gunicorn logs a refusal before answering, an access line before closing).
    """
    before = len(server.log_text())
    with connection(server.port, timeout=10.0) as sock:
        sock.sendall(raw)
        answer = read_until_close(sock)  # a timeout raises: the test fails
    status = parse_head(answer.partition(b"\r\n\r\n")[0])[0] if answer else None
    text = server.log_text()[before:]
    return status, [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_not_logged(server, marker: str) -> None:
    text = server.log_text()
    assert marker.lower() not in text.lower(), [
        line for line in text.splitlines() if marker.lower() in line.lower()
    ]


def refusals(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line.get("refusal")]


# --- F1: what gunicorn refuses is named, never quoted --------------------------------------------

HOST = "Host: localhost\r\n"


@pytest.mark.parametrize(
    ("head", "status", "refusal"),
    [
        # The tester's lines: a space splits the request line (the rest of the query was
        # logged as the "HTTP version"); a quote ended the old pattern's match.
        ("GET /fhir/Observation?subject=Patient/123&note=Jane {m}-Doe HTTP/1.1\r\n" + HOST,
         400, "InvalidHTTPVersion"),
        ("GET /fhir/Observation?note=O'{m}-Brien-M\u00fcller HTTP/1.1\r\n" + HOST, 400, None),
        ('GET /fhir/Observation?code="{m}-code\x7f HTTP/1.1\r\n' + HOST, 400, None),
        ("GET /intake/abc?expires=1&x='&signature={m}-sig\x01 HTTP/1.1\r\n" + HOST, 400, None),
        ("GET /fhir/Patient/{m} HTTP/1.1 extra\r\n" + HOST, 400, None),
        # One of each refusal, the marker in the part that is refused.
        ("get{m} /fhir/Observation HTTP/1.1\r\n" + HOST, 400, "InvalidRequestMethod"),
        ("GET /fhir/Observation HTTP/{m}\r\n" + HOST, 400, "InvalidHTTPVersion"),
        ("GET /fhir/Patient/{m} HTTP/1.1\r\n" + HOST + "X-{m}\x01: 1\r\n", 400, None),
        ("POST /fhir/Patient/{m}?q={m} HTTP/1.1\r\n" + HOST + "Content-Length: 1{m}\r\n",
         400, "InvalidHeader"),
        ("GET /fhir/Patient/{m} HTTP/1.1\r\n" + HOST + "X-Note: a\r\n {m} folded\r\n",
         400, "ObsoleteFolding"),
        ("GET /fhir/Patient/{m}/" + "a" * 9000 + " HTTP/1.1\r\n" + HOST, 414, "LimitRequestLine"),
        ("GET /fhir/Patient/{m} HTTP/1.1\r\n" + HOST
         + "".join(f"X-H{i}: {{m}}\r\n" for i in range(200)), 431, "LimitRequestHeaders"),
        ("POST /v1/triage?subject={m} HTTP/1.1\r\n" + HOST + "Content-Length: 2\r\n"
         "Expect: {m}-continue\r\n", 417, "ExpectationFailed"),
        ("GET /fhir/Patient/{m} HTTP/1.1\r\n" + HOST
         + "X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n", 400, "InvalidSchemeHeaders"),
        ("POST /fhir/Patient/{m} HTTP/1.1\r\n" + HOST + "Transfer-Encoding: {m}, chunked\r\n",
         None, None),
    ],
)  # fmt: skip
def test_a_refused_request_is_named_by_its_refusal_never_by_its_text(server, head, status, refusal):
    marker = new_marker()
    got, lines = send(server, (head.replace("{m}", marker) + "\r\n").encode("utf-8"))
    assert got is not None
    assert got >= 400
    if status is not None:
        assert got == status
    assert_not_logged(server, marker)
    named = refusals(lines)
    assert len(named) == 1, lines
    line = named[0]
    assert line["message"].startswith("Invalid request from ip=127.0.0.1: ")
    assert line["status"] == got  # the logged status is the one answered
    if refusal is not None:
        assert line["refusal"] == refusal
    assert line["level"] == "WARNING"
    assert "exception" not in line  # a parser traceback would quote the request


def test_the_method_of_a_refusal_is_logged_when_it_is_a_standard_one(server):
    marker = new_marker()
    _, lines = send(
        server,
        f"POST /fhir/Patient/{marker} HTTP/1.1\r\n{HOST}Content-Length: x{marker}\r\n\r\n".encode(),
    )
    (line,) = refusals(lines)
    assert (line["refusal"], line["method"]) == ("InvalidHeader", "POST")
    access = [entry for entry in lines if entry["logger"] == "gunicorn.access"]
    assert [(a["method"], a["path"], a["status"]) for a in access] == [("POST", "<unmatched>", 400)]
    assert_not_logged(server, marker)


# --- F2: the access line names the route, never the path as sent ------------------------------


def access_line(server, method: str, target: str, request_id: str) -> dict:
    raw = (
        f"{method} {target} HTTP/1.1\r\n{HOST}X-Request-Id: {request_id}\r\n"
        f"Authorization: Bearer {API_KEYS[server.port]}\r\n\r\n"
    ).encode()
    _, lines = send(server, raw)
    (line,) = [
        entry
        for entry in lines
        if entry["logger"] == "gunicorn.access" and entry.get("request_id") == request_id
    ]
    return line


@pytest.mark.parametrize(
    ("method", "target", "logged_method", "logged_path"),
    [
        ("GET", "/fhir/Patient/{m}", "GET", "<unmatched>"),
        ("GET", "/fhir/{m}?x={m}", "GET", "<unmatched>"),
        ("GET", "/fhir/Observation%3Fsubject%3DPatient%2F{m}", "GET", "<unmatched>"),
        ("GET", "/fhir/Bundle/{m}", "GET", "/fhir/Bundle/<fhir_id:resource_id>"),
        ("GET", "/fhir/Observation/{m}-x", "GET", "/fhir/Observation/<fhir_id:resource_id>"),
        ("GET", "/reports/{m}%20Doe?signature={m}", "GET", "/reports/<any_path:rest>"),
        ("GET", "/intake/{m}?expires=1&signature={m}", "GET", "/intake/<link_id>"),
        ("PUT", "/v1/triage?subject={m}", "PUT", "<unmatched>"),  # 405
        ("JANE{m}", "/v1/triage", "<other>", "<unmatched>"),  # a token gunicorn accepts
    ],
)
def test_the_access_line_shows_the_route_never_client_text(
    server, method, target, logged_method, logged_path
):
    marker = new_marker()
    request_id = f"privacy-{uuid.uuid4().hex[:12]}"
    line = access_line(
        server, method.replace("{m}", marker), target.replace("{m}", marker), request_id
    )
    assert (line["method"], line["path"]) == (logged_method, logged_path)
    assert line["message"] == f"{logged_method} {logged_path} {line['status']}"
    assert_not_logged(server, marker)


def test_an_id_this_service_minted_is_shown_in_the_path_and_no_other_value(server):
    minted = str(uuid.uuid4())  # the form of every Bundle id the service hands out
    line = access_line(server, "GET", f"/fhir/Bundle/{minted}", f"privacy-{minted[:8]}")
    assert (line["path"], line["status"]) == (f"/fhir/Bundle/{minted}", 404)
    # A type from the route's fixed list is ours too; the id is kept with it.
    line = access_line(server, "GET", f"/fhir/Observation/{minted}", f"privacy-{minted[:8]}-o")
    assert line["path"] == f"/fhir/Observation/{minted}"
    # Not the form we mint (upper case, a suffix): the client's text, so the rule.
    for sent in (minted.upper(), minted + "-" + new_marker()):
        line = access_line(server, "GET", f"/fhir/Bundle/{sent}", f"privacy-{uuid.uuid4().hex}")
        assert line["path"] == "/fhir/Bundle/<fhir_id:resource_id>"
    assert minted.upper() not in server.log_text()  # case matters here: a UUID's hex


# --- any request line, any header: a marker anywhere, spaces and quotes included ---------------

TEMPLATES = (
    "GET /fhir/Observation?subject=Patient/123&note=x HTTP/1.1\r\n"
    "Host: localhost\r\nAccept: application/fhir+json\r\n\r\n",
    "POST /v1/triage?_bundle=collection HTTP/1.1\r\nHost: localhost\r\n"
    "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    "GET /intake/5f0c2a4e-2a8b-4c53-9d55-1f5ab5c8e6a0?expires=1&signature=abc HTTP/1.1\r\n"
    "Host: localhost\r\nUser-Agent: probe\r\n\r\n",
    "GET /fhir/Bundle/5f0c2a4e-2a8b-4c53-9d55-1f5ab5c8e6a0 HTTP/1.1\r\nHost: localhost\r\n"
    "Cookie: a=b\r\n\r\n",
)
#: What surrounds the marker: the characters that cut the old pattern short, and more.
NOISE = st.text(
    alphabet=st.sampled_from([" ", "'", '"', "\x01", "\x7f", "\u00e9", "%", "?", "&", "=", "/",
                              "#", "\t", "<", ">", "\\", ":", ",", ";", "a", "Z"]),
    max_size=4,
)  # fmt: skip


@st.composite
def marked_requests(draw: st.DrawFn) -> tuple[str, bytes]:
    """A request with a fresh marker (and noise) inserted anywhere in its head."""
    template = draw(st.sampled_from(TEMPLATES))
    head_end = template.index("\r\n\r\n") + 2  # between the last header and the blank line
    position = draw(st.integers(0, head_end))
    marker = new_marker()
    inserted = draw(NOISE) + marker + draw(NOISE)
    raw = template[:position] + inserted + template[position:]
    return marker, raw.encode("utf-8")


@settings(max_examples=150, deadline=None)
@given(marked_requests())
def test_no_marker_anywhere_in_a_request_head_reaches_the_log(server, marked):
    marker, raw = marked
    status, lines = send(server, raw)
    assert_not_logged(server, marker)
    # Every answered request is accounted for: a refusal line or an access line (a head
    # left open, the marker taking the blank line's place, is closed unanswered).
    assert status is None or any(
        line.get("refusal") or line["logger"] == "gunicorn.access" for line in lines
    ), (
        raw,
        lines,
    )
    assert all(line["level"] != "ERROR" and "exception" not in line for line in lines), lines
    assert server.alive()


def test_the_sync_model_logs_the_same_way():
    """The rules live in the logger, not in our gevent worker: ``serve --model sync``
    (kept for comparison, behind a proxy) runs gunicorn's own worker and logs alike."""
    port = free_port()
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("TWITCH_TRIAGE_METRICS_PORT", raising=False)
        with running("api-logs-sync", api_argv(port, workers=1, model="sync"), port) as sync:
            marker = new_marker()
            for head in (
                f"GET /fhir/Observation?note=Jane {marker}-Doe HTTP/1.1\r\n{HOST}\r\n",
                f"GET /fhir/Observation?note=O'{marker} HTTP/1.1\r\n{HOST}\r\n",
                f"GET /fhir/Patient/{marker} HTTP/1.1\r\n{HOST}\r\n",
            ):
                assert send(sync, head.encode())[0] in (400, 401, 404)
            lines = [json.loads(line) for line in sync.log_text().splitlines() if line.strip()]
            assert_not_logged(sync, marker)
    assert [line["refusal"] for line in refusals(lines)] == ["InvalidHTTPVersion"]
    access = [line["path"] for line in lines if line["logger"] == "gunicorn.access"]
    assert access[-2:] == ["/fhir/Observation", "<unmatched>"]  # the quote is accepted
