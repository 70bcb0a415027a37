"""The SMART token endpoint under hostile clients (session 10).

``POST /auth/token`` had no rate limit: anyone could send unlimited client assertions,
each costing a signature check (and a JWKS lookup). Now every request counts against its
client address and refused authentications against the ``client_id`` they name; over
either limit the answer is a 429 in the OAuth error shape, audited like other refusals.
The counters are checked on a real app, and shared by two apps through a real Redis; a
used ``jti`` is refused on another app of the same database (SQLite and PostgreSQL) and
on another ``twitch-triage serve`` process.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cds_support import LoopbackServer, Product
from conftest import anonymous, create_app
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from sqlalchemy import select
from storage_support import database_url, postgres_url  # noqa: F401 (fixtures)
from test_auth_limits import redis_url  # noqa: F401 (fixture)
from test_auth_smart import ASSERTION_TYPE, RSA_KEY, assertion, jwks_of, token_request

from api.auth.clients import create_client
from api.config import EXTENSION
from api.storage.models import AuditRecord
from tools.smart_contract import DESCRIPTION_PATTERN

FORGING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _app(settings: dict[str, str] | None = None) -> Flask:
    """An app with no token limit but those ``settings`` name."""
    return create_app({"TESTING": True, "TOKEN_RATE_LIMIT": "", **(settings or {})})


def _smart_client(app: Flask, **kwargs: Any) -> str:
    if "jwks_url" not in kwargs:
        kwargs["jwks"] = jwks_of(RSA_KEY, "rsa-1", "RS384")
    return create_client(app.extensions[EXTENSION].clients, tenant="smart", **kwargs).client_id


def _address() -> str:
    """A client address no other test (nor an earlier run on a shared Redis) counted."""
    return f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"


def _post(app: Flask, signed: str, address: str = "127.0.0.1") -> Any:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }
    return anonymous(app).post("/auth/token", data=form, environ_base={"REMOTE_ADDR": address})


def assert_too_many(response: Any) -> str:
    """A 429 in RFC 6749 §5.2's shape with Retry-After, never cached; its description."""
    assert response.status_code == 429, response.data
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    body = response.get_json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == "invalid_request"
    assert re.fullmatch(DESCRIPTION_PATTERN, body["error_description"])
    assert f"retry after {response.headers['Retry-After']} s" in body["error_description"]
    assert "access_token" not in body
    return str(body["error_description"])


def test_an_address_over_its_limit_gets_429_whatever_it_sends_and_others_do_not():
    app = _app({"TOKEN_RATE_LIMIT": "3/minute"})
    client_id = _smart_client(app)
    busy, other = _address(), _address()
    bogus = anonymous(app)
    statuses = [
        bogus.post(
            "/auth/token", data={"grant_type": "password"}, environ_base={"REMOTE_ADDR": busy}
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [400, 400, 400]
    # Counted before the form is read: a good assertion from that address waits too.
    assert "token requests" in assert_too_many(_post(app, assertion(client_id), busy))
    assert_too_many(bogus.post("/auth/token", environ_base={"REMOTE_ADDR": busy}))
    served = _post(app, assertion(client_id), other)
    assert served.status_code == 200, served.data
    # The API's own per-client headers are not sent by the token endpoint.
    assert "RateLimit" not in served.headers


def test_a_client_id_refused_too_often_is_refused_before_its_key_is_looked_up():
    """Forged assertions naming one client (from any address) are counted per client id;
    over the limit even a good assertion is refused without looking at keys: the JWKS
    server (real, on loopback) is asked nothing more."""
    app = _app({"TOKEN_FAILURE_LIMIT": "2/minute"})
    routes = {"/jwks": (200, {"Cache-Control": "no-store"}, jwks_of(RSA_KEY, "rsa-1", "RS384"))}
    with LoopbackServer(routes) as keys:
        victim = _smart_client(app, jwks_url=keys.url + "/jwks")
        bystander = _smart_client(app)
        forged = [_post(app, assertion(victim, key=FORGING_KEY), _address()) for _ in range(2)]
        assert [response.status_code for response in forged] == [401, 401]
        fetched = len(keys.calls)
        assert fetched >= 1
        description = assert_too_many(_post(app, assertion(victim), _address()))
        assert "refused token requests for this client" in description
        assert_too_many(_post(app, assertion(victim, headers={"kid": "new"}), _address()))
        assert len(keys.calls) == fetched  # no key lookup, no signature check
    # Another client is not held back, nor is an unknown id counted (no counter per
    # invented id: those are refused by one lookup, and bounded per address).
    assert _post(app, assertion(bystander)).status_code == 200
    unknown = str(uuid.uuid4())
    assert [_post(app, assertion(unknown)).status_code for _ in range(4)] == [401] * 4


def test_a_verified_client_asking_for_scopes_it_lacks_is_not_locked_out():
    app = _app({"TOKEN_FAILURE_LIMIT": "2/minute"})
    client_id = create_client(
        app.extensions[EXTENSION].clients,
        tenant="smart",
        scopes=["system/Observation.rs"],
        jwks=jwks_of(RSA_KEY, "rsa-1", "RS384"),
    ).client_id
    client = anonymous(app)
    for _ in range(4):
        wider = token_request(client, assertion(client_id), "system/Bundle.c")
        assert wider.status_code == 400
        assert wider.get_json()["error"] == "invalid_scope"
    assert token_request(client, assertion(client_id)).status_code == 200


def _audit_rows(app: Flask, request_id: str) -> list[AuditRecord]:
    store = app.extensions[EXTENSION].store
    with store.engine.connect() as connection:
        rows = connection.execute(select(AuditRecord).where(AuditRecord.request_id == request_id))
        return list(rows)


def test_a_throttled_token_request_is_audited_within_the_anonymous_budget():
    app = _app({"TOKEN_RATE_LIMIT": "1/minute", "ANONYMOUS_AUDIT_LIMIT": "3/minute"})
    address = _address()
    answers = [anonymous(app).post("/auth/token", environ_base={"REMOTE_ADDR": address})]
    answers += [
        anonymous(app).post("/auth/token", environ_base={"REMOTE_ADDR": address}) for _ in range(5)
    ]
    assert answers[0].status_code == 400
    for answer in answers[1:]:
        assert_too_many(answer)
    audited = [_audit_rows(app, answer.headers["X-Request-ID"]) for answer in answers]
    # The first three refusals of the address are audited, the rest only refused.
    assert [len(rows) for rows in audited] == [1, 1, 1, 0, 0, 0]
    throttled = audited[1][0]
    assert (throttled.subtype, throttled.outcome, throttled.tenant) == ("operation", "4", None)
    event = json.loads(throttled.body)
    assert event["outcomeDesc"] == "HTTP 429"
    assert event["agent"][0]["network"]["address"] == address


def test_two_apps_share_the_token_counters_through_redis(redis_url):  # noqa: F811
    settings = {"TOKEN_RATE_LIMIT": "3/minute", "RATE_LIMIT_STORAGE": redis_url}
    one, two = _app(settings), _app(settings)
    client_id = _smart_client(one)  # both apps use the suite's database
    address = _address()
    answers = [_post(app, assertion(client_id), address) for app in (one, two, one)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert_too_many(_post(two, assertion(client_id), address))
    assert_too_many(_post(one, assertion(client_id), address))
    # Refused authentications of one client id, counted on both apps.
    failures = {"TOKEN_FAILURE_LIMIT": "2/minute", "RATE_LIMIT_STORAGE": redis_url}
    three, four = _app(failures), _app(failures)
    victim = _smart_client(three)
    assert _post(three, assertion(victim, key=FORGING_KEY), _address()).status_code == 401
    assert _post(four, assertion(victim, key=FORGING_KEY), _address()).status_code == 401
    assert_too_many(_post(three, assertion(victim), _address()))
    assert_too_many(_post(four, assertion(victim), _address()))


def test_an_unreachable_counter_store_does_not_stop_token_requests():
    """As the API's limits: Redis down, requests are served (and a warning logged)."""
    app = _app({"TOKEN_RATE_LIMIT": "1/minute", "RATE_LIMIT_STORAGE": "redis://127.0.0.1:9/0"})
    client_id = _smart_client(app)
    assert [_post(app, assertion(client_id)).status_code for _ in range(2)] == [200, 200]


# --- a jti is used once across apps, processes and nodes ------------------------------------


def test_a_jti_used_on_one_app_is_refused_on_another_of_the_same_database(database_url):  # noqa: F811
    """The used ``jti`` is a primary key of the shared database (``used_assertion``), not
    a per-process set: every worker and node of one deployment refuses the replay."""
    settings = {"DATABASE_URL": database_url}
    one, two = _app(settings), _app(settings)
    client_id = _smart_client(one)
    signed = assertion(client_id)
    assert _post(one, signed).status_code == 200
    replayed = _post(two, signed)
    assert replayed.status_code == 401
    assert "used before" in replayed.get_json()["error_description"]


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """Two ``twitch-triage serve`` processes (two workers each) on one SQLite store:
    (the first's base URL, the second's, a SMART client id registered by the CLI)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = Product.at(tmp_path / "a"), Product.at(tmp_path / "b")
    shared = f"sqlite:///{tmp_path / 'store.db'}"
    public = first.base  # the audience both nodes accept: one deployment, one URL
    for node in (first, second):
        node.env.update(
            TWITCH_TRIAGE_DATABASE_URL=shared,
            TWITCH_TRIAGE_PUBLIC_BASE_URL=public,
            TWITCH_TRIAGE_TOKEN_RATE_LIMIT="",
        )
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(jwks_of(RSA_KEY, "rsa-1", "RS384")))
    created = first.cli("clients", "create", "--tenant", "smart", "--jwks-file", str(keys))
    client_id = json.loads(created.stdout)["client_id"]
    with contextlib.ExitStack() as running:
        for node in (first, second):
            running.enter_context(node.serving(workers=2))
        yield first.base, second.base, client_id


def _send(base: str, signed: str) -> int:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }
    ask = urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
        f"{base}/auth/token",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with urllib.request.urlopen(ask, timeout=15) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


def test_one_assertion_sent_at_once_to_two_nodes_of_two_workers_gets_one_token(two_nodes):
    first, second, client_id = two_nodes
    signed = assertion(client_id, aud=f"{first}/auth/token")
    start = threading.Barrier(8)
    statuses: list[int] = []

    def one(base: str) -> None:
        start.wait()
        statuses.append(_send(base, signed))

    threads = [threading.Thread(target=one, args=(base,)) for base in (first, second) * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [200] + [401] * 7
    # And a fresh assertion still works on either node.
    assert _send(second, assertion(client_id, aud=f"{first}/auth/token")) == 200


# --- read as an attacker would: algorithm confusion, injected kids and keys ----------------


def _public_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    return RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _claims(client_id: str) -> dict[str, Any]:
    import time  # noqa: PLC0415

    return {
        "iss": client_id,
        "sub": client_id,
        "aud": "http://localhost/auth/token",
        "exp": int(time.time()) + 60,
        "jti": str(uuid.uuid4()),
    }


def _hmac_signed(claims: dict[str, Any], alg: str, header_alg: str) -> str:
    """A JWS MAC'd with the client's *public* key as the secret (the classic confusion),
    its header naming ``header_alg``."""
    import base64  # noqa: PLC0415
    import hashlib  # noqa: PLC0415
    import hmac  # noqa: PLC0415

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = part(json.dumps({"alg": header_alg, "kid": "rsa-1", "typ": "JWT"}).encode())
    body = part(json.dumps(claims).encode())
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384}[alg]
    mac = hmac.new(_public_pem(), f"{header}.{body}".encode(), digest).digest()
    return f"{header}.{body}.{part(mac)}"


@pytest.mark.parametrize(
    ("alg", "header_alg"),
    [
        ("HS256", "HS256"),
        ("HS384", "HS384"),
        ("HS384", "RS384"),  # a MAC under an RSA header: the signature check fails
        ("HS256", "none"),
        ("HS256", "NONE"),
        ("HS256", "RS256"),
        ("HS256", "PS384"),
        ("HS256", "ES256"),
        ("HS256", "EdDSA"),
    ],
)
def test_algorithm_confusion_with_the_public_key_is_invalid_client(alg, header_alg):
    app = _app()
    client_id = _smart_client(app)
    # The same key and claims, properly signed, are accepted: the refusal is the alg's.
    header = {"alg": "RS384", "kid": "rsa-1", "typ": "JWT"}
    assert _post(app, _rs384_signed(header, _claims(client_id))).status_code == 200
    response = _post(app, _hmac_signed(_claims(client_id), alg, header_alg))
    assert response.status_code == 401, response.data
    assert response.get_json()["error"] == "invalid_client"


def _rs384_signed(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A JWS signed by the client's own key with any header (PyJWT's encoder refuses a
    kid that is not a string; an attacker's does not)."""
    import base64  # noqa: PLC0415

    import jwt  # noqa: PLC0415

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{part(json.dumps(header).encode())}.{part(json.dumps(claims).encode())}"
    rs384 = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA384)
    return f"{signing_input}.{part(rs384.sign(signing_input.encode(), RSA_KEY))}"


@pytest.mark.parametrize(
    "kid",
    [
        "../../../etc/passwd",
        "rsa-1' OR '1'='1",
        "rsa-1\x00",
        "rsa-1\u202e",
        "k" * 256,
        17,
        ["rsa-1"],
        {"$ne": None},
        None,
    ],
)
def test_an_injected_kid_is_invalid_client_never_a_500(kid):
    app = _app()
    client_id = _smart_client(app)
    header = {"alg": "RS384", "typ": "JWT", **({"kid": kid} if kid is not None else {})}
    response = _post(app, _rs384_signed(header, _claims(client_id)))
    assert response.status_code == 401, response.data
    assert response.get_json()["error"] == "invalid_client"


def test_a_key_sent_in_the_header_is_never_used():
    """``jwk``, ``x5c`` and a foreign ``jku`` in the header: the key is only ever the
    client's registered one, so an assertion signed by the attacker's key is refused."""
    app = _app()
    client_id = _smart_client(app)
    attacker = jwks_of(FORGING_KEY, "rsa-1", "RS384")["keys"][0]
    for header in (
        {"kid": "rsa-1", "jwk": attacker},
        {"kid": "rsa-1", "x5c": ["MIIB"], "x5u": "https://evil.example/cert"},
        {"kid": "rsa-1", "jku": "https://evil.example/jwks"},
    ):
        forged = assertion(client_id, key=FORGING_KEY, headers=header)
        assert _post(app, forged).status_code == 401, header
    assert _post(app, assertion(client_id)).status_code == 200


def test_many_parameters_and_oversized_assertions_are_refused_cheaply():
    app = _app()
    client_id = _smart_client(app)
    client = anonymous(app)
    good = assertion(client_id)
    form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        *[("client_assertion", good)] * 50,
    ]
    body = urllib.parse.urlencode(form)
    repeated = client.post(
        "/auth/token", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert repeated.status_code == 400
    assert repeated.get_json()["error"] == "invalid_request"
    padded = urllib.parse.urlencode(
        [*form[:2], ("client_assertion", good), *[(f"p{i}", "x") for i in range(3000)]]
    )
    # Unknown parameters are ignored (RFC 6749 §3.2); the body limit bounds them.
    ignored = client.post(
        "/auth/token", data=padded, content_type="application/x-www-form-urlencoded"
    )
    assert ignored.status_code == 200, ignored.data
    huge = client.post(
        "/auth/token",
        data=urllib.parse.urlencode([*form[:2], ("client_assertion", "e" * 60000)]),
        content_type="application/x-www-form-urlencoded",
    )
    assert huge.status_code == 400
    assert "longer than" in huge.get_json()["error_description"]


def test_behind_a_trusted_proxy_each_client_has_its_own_counter_and_others_cannot_spoof():
    """Behind deploy/nginx every peer is the proxy (loopback here, gunicorn's default
    trusted list, with the proxy declared): its ``X-Forwarded-For`` names the client. A
    peer that is not a trusted proxy is counted as itself, whatever it claims."""
    app = _app({"TOKEN_RATE_LIMIT": "2/minute", "TLS_TERMINATED": True})
    client = anonymous(app)

    def ask(peer: str, forwarded: str | None) -> int:
        headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
        return client.post(
            "/auth/token", environ_base={"REMOTE_ADDR": peer}, headers=headers
        ).status_code

    busy, quiet = _address(), _address()
    assert [ask("127.0.0.1", busy) for _ in range(3)] == [400, 400, 429]
    assert ask("127.0.0.1", f"{busy}, {quiet}") == 400  # the proxy's own (last) entry
    assert ask("127.0.0.1", quiet) == 400
    stranger = "198.51.100.7"
    claims = [ask(stranger, _address()) for _ in range(3)]
    assert claims == [400, 400, 429]  # a new X-Forwarded-For each time: still one counter


def test_without_a_declared_proxy_no_caller_picks_its_counter_by_a_header():
    """The default deployment (``serve`` on loopback, no proxy declared): a local caller's
    ``X-Forwarded-For`` is its own claim, so a new one per request is still one counter."""
    client = anonymous(_app({"TOKEN_RATE_LIMIT": "2/minute"}))
    statuses = [
        client.post(
            "/auth/token",
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
            headers={"X-Forwarded-For": _address()},
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [400, 400, 429]
