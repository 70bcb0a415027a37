"""Rate limits per client (memory and a real Redis shared by two apps), CORS and headers."""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from cds_support import FEEDBACK, Ehr, call, hook_request, register
from conftest import VALID_REQUEST, anonymous, create_app
from limits import parse
from limits.strategies import FixedWindowRateLimiter

from api.auth.clients import create_client
from api.auth.http import RateLimiter, SweptMemoryStorage
from api.config import EXTENSION, Settings
from api.errors import ThrottledError


def keyed(app, tenant: str = "limits") -> dict[str, str]:
    created = create_client(app.extensions[EXTENSION].clients, tenant=tenant)
    return {"Authorization": f"Bearer {created.api_key}"}


def assert_throttled(response) -> None:
    assert response.status_code == 429
    outcome = response.get_json(force=True)
    assert outcome["resourceType"] == "OperationOutcome"
    assert [issue["code"] for issue in outcome["issue"]] == ["throttled"]
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["RateLimit-Policy"] == '"l0";q=3;w=60'
    assert response.headers["RateLimit"].startswith('"l0";r=0;t=')


def test_a_client_over_its_limit_gets_429_and_others_do_not():
    app = create_app({"TESTING": True, "RATE_LIMIT": "3/minute"})
    first, second = keyed(app), keyed(app)
    client = anonymous(app)
    answers = [client.get("/fhir/Observation", headers=first) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers["RateLimit"].split(";")[1] for a in answers] == ["r=2", "r=1", "r=0"]
    assert all(a.headers["RateLimit-Policy"] == '"l0";q=3;w=60' for a in answers)
    assert_throttled(client.get("/fhir/Observation", headers=first))
    assert client.get("/fhir/Observation", headers=second).status_code == 200
    # Public endpoints are not counted.
    assert all(client.get("/healthz").status_code == 200 for _ in range(5))


def test_an_ehr_over_the_limit_gets_429_on_cds_calls_and_others_do_not():
    """CDS Hooks calls (an EHR's JWT, no API key) count against the same limits, per EHR
    and apart from API clients: a hostile or looping EHR cannot starve the others."""
    app = create_app({"TESTING": True, "RATE_LIMIT": "3/minute"})
    busy, quiet = Ehr("https://busy.example/fhir"), Ehr("https://quiet.example/fhir")
    register(app, busy, "clinic-a")
    register(app, quiet, "clinic-b")
    client = anonymous(app)
    answers = [call(client, busy, hook_request("p1", None)) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200], answers[-1].data[:300]
    assert [a.headers["RateLimit"].split(";")[1] for a in answers] == ["r=2", "r=1", "r=0"]
    assert_throttled(call(client, busy, hook_request("p1", None)))
    assert_throttled(call(client, busy, {"feedback": []}, path=FEEDBACK))
    assert call(client, quiet, hook_request("p1", None)).status_code == 200
    # An API client of the same deployment has its own counter.
    assert client.get("/fhir/Observation", headers=keyed(app)).status_code == 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """The CI Redis (``.ci/run`` starts it), else a private redis-server on loopback."""
    given = os.environ.get("TWITCH_TRIAGE_TEST_REDIS_URL")
    if given:
        yield given
        return
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is required in CI (apt-get install -y redis-server)")
        pytest.skip("redis-server not installed (apt-get install -y redis-server)")
    port = _free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)


def test_two_api_instances_share_the_limit_through_redis(redis_url):
    settings = {"TESTING": True, "RATE_LIMIT": "3/minute", "RATE_LIMIT_STORAGE": redis_url}
    one, two = create_app(settings), create_app(settings)
    headers = keyed(one, tenant="redis")  # both apps use the same database, so the same key
    answers = [anonymous(app).get("/fhir/Observation", headers=headers) for app in (one, two, one)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert_throttled(anonymous(two).get("/fhir/Observation", headers=headers))
    assert_throttled(anonymous(one).get("/fhir/Observation", headers=headers))


PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization",
}


def test_cors_preflight_from_an_allowed_origin_is_answered():
    app = create_app({"TESTING": True, "CORS_ORIGINS": "https://partner.example"})
    client = anonymous(app)
    response = client.options(
        "/v1/triage", headers={**PREFLIGHT, "Origin": "https://partner.example"}
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://partner.example"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "Origin" in response.headers["Vary"]
    actual = client.post(
        "/v1/triage",
        json=VALID_REQUEST,
        headers={**keyed(app), "Origin": "https://partner.example"},
    )
    assert actual.status_code == 200
    assert actual.headers["Access-Control-Allow-Origin"] == "https://partner.example"
    assert "Location" in actual.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize(
    "path", ["/fhir/metadata", "/fhir/Questionnaire/triage-intake", "/v1/triage"]
)
def test_with_cors_on_every_answer_varies_by_origin_even_without_one(path):
    """A shared cache must not hand a copy made for a request without Origin (no CORS
    headers) to an allowed origin's browser (the authorization review)."""
    app = create_app({"TESTING": True, "CORS_ORIGINS": "https://partner.example"})
    response = anonymous(app).get(path)
    assert "Origin" in response.headers.get("Vary", "")
    plain = create_app({"TESTING": True})
    assert "Origin" not in anonymous(plain).get(path).headers.get("Vary", "")


@pytest.mark.parametrize("origins", ["", "https://partner.example"])
def test_cors_preflight_from_another_origin_is_refused(origins):
    app = create_app({"TESTING": True, "CORS_ORIGINS": origins})
    client = anonymous(app)
    response = client.options("/v1/triage", headers={**PREFLIGHT, "Origin": "https://evil.example"})
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    assert response.get_json(force=True)["issue"][0]["code"] == "forbidden"
    actual = client.post(
        "/v1/triage", json=VALID_REQUEST, headers={**keyed(app), "Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in actual.headers


def test_security_headers(client):
    created = client.post("/v1/triage", json=VALID_REQUEST)
    assert created.headers["X-Content-Type-Options"] == "nosniff"
    assert created.headers["Cache-Control"] == "no-store"
    read = client.get(created.headers["Location"])
    assert read.headers["Cache-Control"] == "no-store"
    for path in ("/healthz", "/fhir/metadata", "/openapi.yaml"):
        response = client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers.get("Cache-Control") != "no-store"


def test_memory_counters_start_no_thread_per_hit_and_still_expire() -> None:
    """The embedded limiter counts without a sweeper thread per request (issue 9 profile)."""

    storage = SweptMemoryStorage()
    limiter = FixedWindowRateLimiter(storage)
    item = parse("3/second")
    started = threading.active_count()
    assert [limiter.hit(item, "client") for _ in range(5)] == [True, True, True, False, False]
    assert threading.active_count() == started
    time.sleep(1.05)
    assert limiter.hit(item, "client")  # the window expired without any sweeper thread
    limiter.hit(parse("3/second"), "other")
    time.sleep(1.05)
    limiter.hit(item, "client")  # sweeps inline: the idle client's counter is gone
    assert "other" not in " ".join(storage.storage)


def test_the_limiter_counts_as_the_librarys_fixed_window_strategy() -> None:
    """RateLimiter.check inlines hit + get_window_stats (one key per hit): same counts."""
    limiter = RateLimiter(Settings.load({"RATE_LIMIT": "3/minute;5/hour"}, environ={}))
    reference = FixedWindowRateLimiter(SweptMemoryStorage())
    items = [parse("3/minute"), parse("5/hour")]
    assert limiter.policy == '"l0";q=3;w=60, "l1";q=5;w=3600'
    for hit in range(8):
        allowed = [reference.hit(item, "client") for item in items]
        stats = [reference.get_window_stats(item, "client") for item in items]
        expected = ", ".join(
            f'"l{index}";r={stat.remaining};t={max(1, math.ceil(stat.reset_time - time.time()))}'
            for index, stat in enumerate(stats)
        )
        if all(allowed):
            headers = limiter.check("client")
        else:
            with pytest.raises(ThrottledError) as refused:
                limiter.check("client")
            headers = refused.value.headers()
            assert hit >= 3
        assert headers["RateLimit-Policy"] == limiter.policy
        assert headers["RateLimit"] == expected
