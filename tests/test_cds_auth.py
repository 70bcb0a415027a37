"""CDS Hooks "Trusting CDS Clients": every service and feedback call carries the EHR's JWT.

The matrix of refused tokens (each a 401 OperationOutcome that never echoes the
token), the accepted variants, replay protection shared through the database,
registered ``jku`` URLs (and no other URL ever fetched).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from typing import Any

import jwt
import pytest
from cds_support import (
    FEEDBACK,
    HOST,
    SERVICE,
    Ehr,
    LoopbackServer,
    call,
    hook_request,
    jwks_clock_fixture,  # noqa: F401 (the jwks_clock fixture)
    register,
)
from cryptography.hazmat.primitives import serialization
from flask import Flask

from api import create_app
from api.auth import ehr as ehr_auth
from api.auth.clients import ClientError
from api.auth.ehrs import register_ehr
from api.config import EXTENSION

TENANT = "clinic-a"


@pytest.fixture
def ehr(app: Flask) -> Ehr:
    found = Ehr(f"https://ehr-{uuid.uuid4().hex[:8]}.example/fhir")
    register(app, found, TENANT)
    return found


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(ehr: Ehr) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": ehr.kid}).encode())
    now = int(time.time())
    claims = {"iss": ehr.iss, "aud": HOST + SERVICE, "exp": now + 60, "iat": now, "jti": "u1"}
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def _hmac_with_public_key(ehr: Ehr) -> str:
    """The classic key-confusion attack: HS256 keyed with the EHR's public key PEM."""
    pem = ehr.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": ehr.kid}).encode())
    now = int(time.time())
    claims = {"iss": ehr.iss, "aud": HOST + SERVICE, "exp": now + 60, "iat": now, "jti": "h1"}
    signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _refused(response: Any) -> str:
    assert response.status_code == 401, response.data[:500]
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="twitch-triage"')
    body = response.json
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "login"
    return body["issue"][0]["diagnostics"]


def _tokens(ehr: Ehr, app: Flask) -> dict[str, str]:
    stranger = Ehr(ehr.iss, kid=ehr.kid)  # same iss and kid, another key
    other_tenant = Ehr(f"https://other-{uuid.uuid4().hex[:6]}.example")
    register(app, other_tenant, "clinic-b")
    rsa_ehr = Ehr(ehr.iss, alg="RS384", kid=ehr.kid)
    now = int(time.time())
    aud = HOST + SERVICE
    return {
        "unsigned-none": _unsigned(ehr),
        "hs256-with-public-key": _hmac_with_public_key(ehr),
        "rs256": jwt.encode(
            {"iss": ehr.iss, "aud": aud, "exp": now + 60, "iat": now, "jti": "r1"},
            rsa_ehr.private,
            algorithm="RS256",
            headers={"kid": ehr.kid},
        ),
        "wrong-key": stranger.token(aud),
        "wrong-tenants-key": other_tenant.token(aud, claims={"iss": ehr.iss}),
        "wrong-aud-feedback": ehr.token(HOST + FEEDBACK),
        "wrong-aud-host": ehr.token("https://elsewhere.example" + SERVICE),
        "wrong-aud-prefix": ehr.token(HOST + "/cds-services"),
        "expired": ehr.token(aud, claims={"exp": now - 120, "iat": now - 400}),
        "missing-exp": ehr.token(aud, drop=("exp",)),
        "missing-iat": ehr.token(aud, drop=("iat",)),
        "missing-jti": ehr.token(aud, drop=("jti",)),
        "missing-aud": ehr.token(aud, drop=("aud",)),
        "exp-an-hour-ahead": ehr.token(aud, claims={"exp": now + 3600}),
        "issued-in-the-future": ehr.token(aud, claims={"iat": now + 600, "exp": now + 700}),
        "unknown-iss": Ehr("https://unknown.example").token(aud),
        "no-kid": jwt.encode(
            {"iss": ehr.iss, "aud": aud, "exp": now + 60, "iat": now, "jti": "k1"},
            ehr.private,
            algorithm="ES384",
        ),
        "unknown-kid": ehr.token(aud, headers={"kid": "not-registered"}),
        "jku-not-registered": ehr.token(aud, headers={"jku": "http://127.0.0.1:9/jwks"}),
        "typ-not-jwt": ehr.token(aud, headers={"typ": "dpop+jwt"}),
        "not-a-jwt": "tt_an-api-key-is-not-an-ehr-jwt",
    }


CASES = [
    "unsigned-none",
    "hs256-with-public-key",
    "rs256",
    "wrong-key",
    "wrong-tenants-key",
    "wrong-aud-feedback",
    "wrong-aud-host",
    "wrong-aud-prefix",
    "expired",
    "missing-exp",
    "missing-iat",
    "missing-jti",
    "missing-aud",
    "exp-an-hour-ahead",
    "issued-in-the-future",
    "unknown-iss",
    "no-kid",
    "unknown-kid",
    "jku-not-registered",
    "typ-not-jwt",
    "not-a-jwt",
]


@pytest.mark.parametrize("case", CASES)
def test_refused_tokens_are_401_and_never_echoed(app, client, ehr, case, caplog):
    token = _tokens(ehr, app)[case]
    caplog.set_level(logging.DEBUG)
    response = call(client, ehr, hook_request("p1", None), token=token)
    diagnostics = _refused(response)
    assert token not in response.get_data(as_text=True)
    assert token not in diagnostics
    assert all(token not in record.getMessage() for record in caplog.records)
    signature = token.rsplit(".", 1)[-1]
    if signature:
        assert all(signature not in record.getMessage() for record in caplog.records)


def test_the_matrix_covers_every_case(app, ehr):
    assert sorted(_tokens(ehr, app)) == sorted(CASES)


@pytest.mark.parametrize("path", [SERVICE, FEEDBACK])
@pytest.mark.parametrize(
    "authorization",
    [None, "Basic abc", "Bearer", "Bearer a b"],
    ids=["none", "basic", "empty", "two-words"],
)
def test_missing_or_malformed_authorization_is_401(app, client, path, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = app.test_client().post(
        path, data=b"{}", content_type="application/json", headers=headers
    )
    # The test client's API key is not an EHR JWT either.
    if authorization is None:
        response = client.post(path, data=b"{}", content_type="application/json")
    _refused(response)


def test_an_api_key_does_not_open_the_cds_service(client):
    response = client.post(SERVICE, json=hook_request("p1", None))  # the local client's key
    _refused(response)


def test_a_valid_token_passes_with_aud_as_a_list_and_rsa(app, client, ehr):
    assert call(client, ehr, hook_request("p1", None)).status_code == 200
    listed = ehr.token("x", claims={"aud": ["https://other.example", HOST + SERVICE]})
    assert call(client, ehr, hook_request("p1", None), token=listed).status_code == 200
    rsa = Ehr(f"https://rsa-{uuid.uuid4().hex[:6]}.example", alg="RS384")
    register(app, rsa, TENANT)
    assert call(client, rsa, hook_request("p1", None)).status_code == 200


def test_a_replayed_jti_is_refused_on_every_node(client, ehr, database_url):
    token = ehr.token(HOST + SERVICE)
    assert call(client, ehr, hook_request("p1", None), token=token).status_code == 200
    _refused(call(client, ehr, hook_request("p1", None), token=token))
    # Two nodes of one deployment share the database: a jti seen by one is refused by the other.
    first = create_app({"TESTING": True, "DATABASE_URL": database_url})
    second = create_app({"TESTING": True, "DATABASE_URL": database_url})
    shared = Ehr(f"https://shared-{uuid.uuid4().hex[:6]}.example")
    register(first, shared, TENANT)
    token = shared.token(HOST + SERVICE)
    ok = call(first.test_client(), shared, hook_request("p1", None), token=token)
    assert ok.status_code == 200, ok.data[:300]
    _refused(call(second.test_client(), shared, hook_request("p1", None), token=token))


def test_a_removed_ehr_is_refused_at_once(app, client, ehr):
    assert call(client, ehr, hook_request("p1", None)).status_code == 200
    app.extensions["twitch_triage"].cds.remove(ehr.iss)
    _refused(call(client, ehr, hook_request("p1", None)))


def test_keys_from_a_registered_jku_and_no_other_url(app, client):
    ehr = Ehr(f"https://jku-{uuid.uuid4().hex[:6]}.example")
    with (
        LoopbackServer({"/jwks": (200, {}, ehr.jwks())}) as keys,
        LoopbackServer({"/jwks": (200, {}, Ehr("x", kid=ehr.kid).jwks())}) as rogue,
    ):
        register(app, ehr, TENANT, jku=keys.url + "/jwks")
        token = ehr.token(HOST + SERVICE, headers={"jku": keys.url + "/jwks"})
        assert call(client, ehr, hook_request("p1", None), token=token).status_code == 200
        # No jku header: the registered URL is used (already cached: one fetch in all).
        assert call(client, ehr, hook_request("p1", None)).status_code == 200
        assert [path for path, _ in keys.calls] == ["/jwks"]
        # A token naming another URL is refused, and that URL is never fetched.
        token = ehr.token(HOST + SERVICE, headers={"jku": rogue.url + "/jwks"})
        _refused(call(client, ehr, hook_request("p1", None), token=token))
        assert rogue.calls == []


def test_a_rotated_key_at_the_jku_is_fetched_again(app, client, jwks_clock):
    """A kid not in the cached set fetches the jku again, at most once per 5 s."""
    ehr = Ehr(f"https://rotating-{uuid.uuid4().hex[:6]}.example")
    rotated = Ehr(ehr.iss)
    routes = {"/jwks": (200, {}, ehr.jwks())}
    with LoopbackServer(routes) as keys:
        register(app, ehr, TENANT, jku=keys.url + "/jwks")
        assert call(client, ehr, hook_request("p1", None)).status_code == 200
        routes["/jwks"] = (200, {}, rotated.jwks())
        jwks_clock.advance(ehr_auth.JWKS_REFETCH_SECONDS - 0.5)
        _refused(call(client, rotated, hook_request("p1", None)))  # too soon to fetch again
        assert len(keys.calls) == 1
        jwks_clock.advance(0.5)
        assert call(client, rotated, hook_request("p1", None)).status_code == 200
        assert len(keys.calls) == 2


def test_a_jku_that_cannot_be_read_is_401(app, client):
    ehr = Ehr(f"https://down-{uuid.uuid4().hex[:6]}.example")
    with LoopbackServer({"/jwks": (500, {}, {"error": 1})}) as keys:
        register(app, ehr, TENANT, jku=keys.url + "/jwks")
        _refused(call(client, ehr, hook_request("p1", None)))


def test_feedback_needs_the_jwt_for_its_own_url(client, ehr):
    token = ehr.token(HOST + SERVICE)  # minted for the service, sent to feedback
    body = {"feedback": [{"card": "x", "outcome": "accepted"}]}
    _refused(call(client, ehr, body, path=FEEDBACK, token=token))


def _private_jwks(ehr: Ehr) -> dict[str, Any]:
    """The EHR's key set with its private members: what must never be used."""
    private = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ehr.private))
    return {"keys": [{**private, "kid": ehr.kid, "use": "sig", "alg": ehr.alg}]}


# Signing with the short key on purpose: PyJWT warns, the product must refuse it.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_a_jku_serving_a_private_or_short_key_is_401_never_a_500(app, client):
    """A private JWK at the EHR's jku made PyJWT fail inside decode (a 500); a 1024-bit
    RSA key was accepted (RFC 7518 §3.3: RS384 MUST use 2048 bits or more)."""
    leaky = Ehr(f"https://leaky-{uuid.uuid4().hex[:6]}.example")
    short = Ehr(f"https://short-{uuid.uuid4().hex[:6]}.example", alg="RS384")
    short.private = rsa_1024()
    for ehr, served in ((leaky, _private_jwks(leaky)), (short, short.jwks())):
        with LoopbackServer({"/jwks": (200, {}, served)}) as keys:
            register(app, ehr, TENANT, jku=keys.url + "/jwks")
            assert "kid" in _refused(call(client, ehr, hook_request("p1", None)))


def rsa_1024() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

    # A key the product must refuse, made on purpose to show that it does.
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505


@pytest.mark.parametrize("kind", ["private", "rsa-1024", "p-256", "kid-twice"])
def test_registration_refuses_what_is_not_a_public_signing_key(app, kind):
    ehr = Ehr(f"https://bad-{uuid.uuid4().hex[:6]}.example")
    jwks = ehr.jwks()
    if kind == "private":
        jwks = _private_jwks(ehr)
    elif kind == "rsa-1024":
        short = Ehr(ehr.iss, alg="RS384", private=rsa_1024())
        jwks = short.jwks()
    elif kind == "p-256":
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

        jwks = Ehr(ehr.iss, private=ec.generate_private_key(ec.SECP256R1())).jwks()
    else:
        jwks = {"keys": jwks["keys"] * 2}
    with pytest.raises(ClientError, match=r"keys\[\d\]"):
        register_ehr(app.extensions[EXTENSION].cds, tenant=TENANT, iss=ehr.iss, jwks=jwks)


@pytest.mark.parametrize("path", ["/cds-services/unknown-svc", "/cds-services/", SERVICE + "/x"])
def test_an_unknown_cds_service_is_404_whatever_the_credentials(client, ehr, path):
    """It was a 401 saying the header must be 'Bearer <api key>': an EHR holding a valid
    JWT went looking for a broken token, not a wrong URL."""
    for headers in ({}, {"Authorization": f"Bearer {ehr.token(HOST + path)}"}):
        response = client.post(path, json=hook_request("p1"), headers=headers)
        assert response.status_code == 404, response.data[:300]
        assert response.json["issue"][0]["code"] == "not-found"
