"""SMART Backend Services: signed client assertions in, short-lived access tokens out.

Keys are generated per test run (cryptography); one client registers its JWKS
inline, another by URL (served on loopback by a thread of this test).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from conftest import anonymous, create_app
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.auth.clients import create_client
from api.config import EXTENSION

TOKEN_URL = "http://localhost/auth/token"  # noqa: S105 (a URL, not a secret)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP384R1())


def jwks_of(private: Any, kid: str, alg: str) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(private.public_key()))
    return {"keys": [{**public, "kid": kid, "alg": alg, "use": "sig"}]}


def assertion(client_id: str, *, key: Any = RSA_KEY, alg: str = "RS384", **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": now + 240,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    kid = "ec-1" if alg == "ES384" else "rsa-1"
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


def token_request(client: Any, signed: str, scope: str | None = None) -> Any:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }
    if scope is not None:
        form["scope"] = scope
    return client.post("/auth/token", data=form)


@pytest.fixture(scope="module")
def smart() -> dict[str, Any]:
    app = create_app({"TESTING": True})
    clients = app.extensions[EXTENSION].clients
    reader = create_client(
        clients,
        tenant="smart",
        scopes=["system/Observation.rs", "system/Bundle.r"],
        jwks=jwks_of(RSA_KEY, "rsa-1", "RS384"),
    )
    return {"app": app, "client": anonymous(app), "reader": reader}


def test_a_signed_assertion_gets_a_short_lived_token_that_works(smart):
    response = token_request(smart["client"], assertion(smart["reader"].client_id))
    assert response.status_code == 200, response.data
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["token_type"] == "bearer"  # noqa: S105 (the OAuth token type)
    assert 0 < body["expires_in"] <= 300
    assert body["scope"] == "system/Observation.rs system/Bundle.r"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert smart["client"].get("/fhir/Observation", headers=headers).status_code == 200
    # The token carries the client's scopes, no more: no create, no AuditEvent search.
    triage = smart["client"].post("/v1/triage", json={}, headers=headers)
    assert triage.status_code == 403
    assert smart["client"].get("/fhir/AuditEvent", headers=headers).status_code == 403


def test_a_narrower_scope_can_be_asked_for_and_a_wider_one_cannot(smart):
    reader = smart["reader"].client_id
    narrow = token_request(smart["client"], assertion(reader), "system/Observation.r")
    assert narrow.get_json()["scope"] == "system/Observation.r"
    headers = {"Authorization": f"Bearer {narrow.get_json()['access_token']}"}
    assert smart["client"].get("/fhir/Observation", headers=headers).status_code == 403
    wide = token_request(smart["client"], assertion(reader), "system/Observation.cruds")
    assert wide.status_code == 400
    assert wide.get_json()["error"] == "invalid_scope"


def test_an_es384_client_with_a_jwks_url_served_on_loopback():
    @contextlib.contextmanager
    def serving(document: dict[str, Any]) -> Iterator[str]:
        data = json.dumps(document).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                return

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)

    app = create_app({"TESTING": True})
    with serving(jwks_of(EC_KEY, "ec-1", "ES384")) as url:
        created = create_client(app.extensions[EXTENSION].clients, tenant="smart", jwks_url=url)
        signed = assertion(created.client_id, key=EC_KEY, alg="ES384")
        response = token_request(anonymous(app), signed)
    assert response.status_code == 200, response.data
    token = response.get_json()["access_token"]
    answer = anonymous(app).get("/fhir/Observation", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200


def refused(response: Any) -> str:
    assert response.status_code == 401, response.data
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()["error"]


def test_wrong_audience_is_refused(smart):
    signed = assertion(smart["reader"].client_id, aud="https://elsewhere.example/token")
    assert refused(token_request(smart["client"], signed)) == "invalid_client"


def test_the_audience_is_the_public_token_url_not_the_host_header():
    """With a public base URL the token URL is that one (as SMART discovery says): an
    assertion made for another server is refused even when the caller names that
    server in its Host header, which a proxy passes on as sent."""
    app = create_app({"TESTING": True, "PUBLIC_BASE_URL": "https://triage.example/api"})
    clients = app.extensions[EXTENSION].clients
    reader = create_client(
        clients, tenant="smart", scopes=["system/Bundle.r"], jwks=jwks_of(RSA_KEY, "rsa-1", "RS384")
    )
    client = anonymous(app)
    public = "https://triage.example/api/auth/token"
    discovered = client.get("/.well-known/smart-configuration").get_json()
    assert discovered["token_endpoint"] == public
    foreign = assertion(reader.client_id, aud="https://staging.example/auth/token")
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": foreign,
    }
    spoofed = client.post("/auth/token", data=form, base_url="https://staging.example", headers={})
    assert refused(spoofed) == "invalid_client"
    assert token_request(client, assertion(reader.client_id, aud=public)).status_code == 200


def test_a_replayed_jti_is_refused(smart):
    signed = assertion(smart["reader"].client_id)
    assert token_request(smart["client"], signed).status_code == 200
    assert refused(token_request(smart["client"], signed)) == "invalid_client"


def test_alg_none_and_hmac_are_refused(smart):
    client_id = smart["reader"].client_id
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": int(time.time()) + 60,
        "jti": str(uuid.uuid4()),
    }
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert refused(token_request(smart["client"], unsigned)) == "invalid_client"
    # HMAC keyed with the public JWK's text: the classic algorithm-confusion attack.
    hmac_signed = jwt.encode(claims, "x" * 64, algorithm="HS384")
    assert refused(token_request(smart["client"], hmac_signed)) == "invalid_client"


def test_an_assertion_too_far_ahead_expired_or_foreign_is_refused(smart):
    client_id = smart["reader"].client_id
    far = assertion(client_id, exp=int(time.time()) + 3600)
    assert refused(token_request(smart["client"], far)) == "invalid_client"
    past = assertion(client_id, exp=int(time.time()) - 120)
    assert refused(token_request(smart["client"], past)) == "invalid_client"
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = assertion(client_id, key=other_key)
    assert refused(token_request(smart["client"], forged)) == "invalid_client"
    wrong_sub = assertion(client_id, sub="someone-else")
    assert refused(token_request(smart["client"], wrong_sub)) == "invalid_client"


def test_a_client_without_a_jwks_cannot_get_a_token(smart):
    created = create_client(smart["app"].extensions[EXTENSION].clients, tenant="smart")
    assert refused(token_request(smart["client"], assertion(created.client_id))) == (
        "invalid_client"
    )


def test_other_grants_are_refused(smart):
    response = smart["client"].post("/auth/token", data={"grant_type": "password"})
    assert response.status_code == 400
    assert response.get_json()["error"] == "unsupported_grant_type"
