"""No bad request crashes a worker: the nastiest bodies over a real socket, against gunicorn.

The catalogue (``test_bad_input_catalogue.py``) goes through Flask's test
client; this starts the real server (``python -m api.cli serve``, what the
``twitch-triage serve`` script runs: gunicorn, 2 gevent workers with bounded
reads, loopback, a free port) and sends raw bytes the test client cannot: a body shorter than its
Content-Length left hanging, chunked uploads far over the limit, invalid
UTF-8, 10,000 levels of nesting, a garbage request line. Afterwards both
workers must still answer ``/healthz`` and a valid triage, and the server log
must show no traceback, no worker timeout and no worker booted after the
first two (a crashed worker is replaced by a new one, which would hide it).

Marked ``server`` (about 10 s, mostly start-up); it runs in CI with the rest.
Bounded: every socket has a timeout, the server is always stopped.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.http import API_KEYS, api_argv, free_port, request, running
from tests.support.rawhttp import connection, read_until_close

pytestmark = pytest.mark.server

VALID = json.dumps({"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}).encode()
LIMIT = 65536
#: The key of the server under test (issue 11: every triage needs one).
KEY: dict[str, bytes] = {}


@pytest.fixture(scope="module")
def server() -> Iterator[object]:
    port = free_port()
    with running("api", api_argv(port), port) as started:
        KEY["value"] = API_KEYS[port].encode()
        yield started


def status_and_body(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"application/fhir+json" in head, head
    return status, json.loads(body)


def post_head(length: int | None, content_type: bytes = b"application/json") -> bytes:
    framing = b"Transfer-Encoding: chunked" if length is None else b"Content-Length: %d" % length
    return (
        b"POST /v1/triage HTTP/1.1\r\nHost: localhost\r\nContent-Type: " + content_type + b"\r\n"
        + b"Authorization: Bearer " + KEY.get("value", b"") + b"\r\n"
        + framing + b"\r\nConnection: close\r\n\r\n"
    )  # fmt: skip


def send_raw(port: int, data: bytes) -> tuple[int, dict]:
    with connection(port) as sock:
        sock.sendall(data)
        return status_and_body(read_until_close(sock))


def chunked(body: bytes, size: int = 4096) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
             for i in range(0, len(body), size)]  # fmt: skip
    return b"".join(parts) + b"0\r\n\r\n"


def issue_code(outcome: dict) -> str:
    assert outcome["resourceType"] == "OperationOutcome"
    return outcome["issue"][0]["code"]


def test_nasty_bodies_over_a_socket_never_crash_a_worker(server):
    port = server.port
    started = time.monotonic()

    # A body shorter than its Content-Length: the worker waits, the client gives up
    # (half-closes), the worker answers 400 for the truncated body.
    with connection(port, timeout=1.0) as sock:
        sock.sendall(post_head(1000) + VALID[:40])
        with pytest.raises(TimeoutError):
            sock.recv(1)  # nothing is answered while the body is incomplete
        sock.shutdown(socket.SHUT_WR)
        status, outcome = status_and_body(read_until_close(sock))
    assert (status, issue_code(outcome)) == (400, "structure")

    # The same, but the client vanishes without a word (the worker is left reading).
    with connection(port, timeout=1.0) as sock:
        sock.sendall(post_head(5000) + VALID)

    status, outcome = send_raw(
        port, post_head(len(b'{"notes": "caf\xe9"}')) + b'{"notes": "caf\xe9"}'
    )
    assert (status, issue_code(outcome)) == (400, "structure")
    assert "UTF-8" in outcome["issue"][0]["diagnostics"]

    deep = b'{"notes": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    status, outcome = send_raw(port, post_head(len(deep)) + deep)
    assert (status, issue_code(outcome)) == (400, "structure")

    small_but_chunked = chunked(VALID)
    status, outcome = send_raw(port, post_head(None) + small_but_chunked)
    assert status == 200, outcome
    assert outcome["resourceType"] == "Bundle"

    # Far over the limit, chunked: refused once the limit is read, whatever follows.
    huge = json.dumps({"notes": "x" * (4 * LIMIT)}).encode()
    status, outcome = send_raw(port, post_head(None) + chunked(huge))
    assert (status, issue_code(outcome)) == (413, "too-costly")

    # A declared length over the limit is refused before anything is read.
    status, outcome = send_raw(port, post_head(10 * LIMIT) + VALID)
    assert (status, issue_code(outcome)) == (413, "too-costly")

    # A lying, too small Content-Length: only that many bytes are read.
    status, outcome = send_raw(port, post_head(20) + VALID)
    assert (status, issue_code(outcome)) == (400, "structure")

    status, outcome = send_raw(port, post_head(len(VALID), b"text/plain") + VALID)
    assert (status, issue_code(outcome)) == (415, "not-supported")

    # Not HTTP at all: gunicorn itself answers 400, as an OperationOutcome (issue 12),
    # and the worker lives on.
    with connection(port) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00 garbage\r\n\r\n")
        raw = read_until_close(sock)
        assert raw.startswith(b"HTTP/1.1 400")
        assert issue_code(status_and_body(raw)[1]) == "structure"

    # Both workers still serve: several requests land on each of them.
    for _ in range(6):
        assert request(port, "GET", "/healthz", timeout=5.0)[0] == 200
        status, headers, raw = request(
            port,
            "POST",
            "/v1/triage",
            body=VALID,
            headers={"Content-Type": "application/json"},
            timeout=5.0,
        )
        assert status == 200
        assert headers["Content-Type"] == "application/fhir+json; fhirVersion=4.0"
        assert json.loads(raw)["resourceType"] == "Bundle"
    assert server.alive()
    assert time.monotonic() - started < 30

    log = server.log_text()
    assert len(re.findall(r"Booting worker with pid", log)) == 2, log
    for sign in ("Traceback", "WORKER TIMEOUT", "Worker exiting", "was sent SIG", "[ERROR]",
                 '"level":"ERROR"'):  # fmt: skip
        assert sign not in log, log


def test_the_http_benchmark_runs_end_to_end():
    """``python -m bench.http --smoke``: both servers, one short round, no wrk needed.

    Only that the harness works; speed is reported by the benchmark, never asserted here.
    """
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "bench.http", "--smoke", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["loader"] == "python"
    assert result["failed"] == 0
    assert [run["target"] for run in result["runs"]] == ["echo", "api"]
    for target in ("echo", "api"):
        assert result[target]["requests_per_s"] > 0
        assert 0 < result[target]["p50_ms"] <= result[target]["p99_ms"]
    assert "ratio api/echo" in done.stdout


def test_the_slow_clients_benchmark_runs_end_to_end():
    """``python -m bench.slowclients`` on a small scale: the harness works and stops.

    Only that; the latencies are reported by the benchmark (README), never asserted here.
    """
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "bench.slowclients", "--models", "gevent", "--slow", "5",
         "--idle", "2", "--seconds", "1", "--settle", "0.5", "--json"],
        cwd=root, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = json.loads(done.stdout.strip().splitlines()[-1])["results"]
    assert result["model"] == "gevent"
    assert result["server_alive"] is True
    for part in ("healthz", "triage"):
        assert result[part]["requests"] > 0
