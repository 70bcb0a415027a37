"""SMART Backend Services: signed client assertions in, short-lived access tokens out.

Keys are generated per test run (cryptography); one client registers its JWKS
inline, another by URL (served on loopback by a thread of this test). Key sets read at
a URL are cached (``api.auth.jwks_cache``): each test gets an empty cache, and the cache
tests at the end drive its clock by hand.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cds_support import LoopbackServer, ManualClock, Product, simultaneous_statuses
from conftest import anonymous, create_app
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from api.auth import smart as smart_auth
from api.auth.clients import ClientError, create_client
from api.auth.jwks_cache import JWKS_MIN_CACHE_SECONDS, JWKS_REFETCH_SECONDS, JwksCache
from api.config import EXTENSION
from tools.smart_contract import DESCRIPTION_PATTERN

TOKEN_URL = "http://localhost/auth/token"  # noqa: S105 (a URL, not a secret)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP384R1())


def jwks_of(private: Any, kid: str, alg: str) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(private.public_key()))
    return {"keys": [{**public, "kid": kid, "alg": alg, "use": "sig"}]}


def assertion(
    client_id: str,
    *,
    key: Any = RSA_KEY,
    alg: str = "RS384",
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A signed client assertion; ``headers`` replaces the default (the key's kid)."""
    now = int(time.time())
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": now + 240,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    if headers is None:
        headers = {"kid": "ec-1" if alg == "ES384" else "rsa-1"}
    return jwt.encode(body, key, algorithm=alg, headers=headers)


def token_request(client: Any, signed: str, scope: str | None = None) -> Any:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }
    if scope is not None:
        form["scope"] = scope
    return client.post("/auth/token", data=form)


def _jwks_cache(clock: Any = time.monotonic) -> JwksCache:
    return JwksCache(smart_auth._load_jwks, smart_auth._refused_jwks, clock=clock)


@pytest.fixture(autouse=True)
def _empty_jwks_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no cached key set: a loopback port one test used may be
    given to another test's JWKS server, serving other keys."""
    monkeypatch.setattr(smart_auth, "JWKS_CACHE", _jwks_cache(), raising=False)


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


@contextlib.contextmanager
def serving(document: dict[str, Any]) -> Iterator[str]:
    """A JWKS URL on loopback that answers ``document``."""
    with LoopbackServer({"/jwks.json": (200, {}, document)}) as server:
        yield server.url + "/jwks.json"


def test_an_es384_client_with_a_jwks_url_served_on_loopback():
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


# --- conformance with RFC 6749 §5 and SMART's client-confidential-asymmetric profile ---------


def _form(issuer: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(issuer),
        **extra,
    }


def oauth_error(response: Any, status: int) -> str:
    """The RFC 6749 §5.2 error of a refused token request, its no-cache headers checked."""
    assert response.status_code == status, response.data
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    return response.get_json()["error"]


def test_a_token_answer_is_never_cached(smart):
    """RFC 6749 §5.1: Cache-Control no-store and Pragma no-cache on a token answer."""
    response = token_request(smart["client"], assertion(smart["reader"].client_id))
    assert response.status_code == 200, response.data
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def test_a_request_missing_or_repeating_a_parameter_is_invalid_request(smart):
    """RFC 6749 §5.2: a missing grant_type or a repeated parameter is invalid_request (a
    grant type that is there but not supported stays unsupported_grant_type)."""
    client_id = smart["reader"].client_id
    missing = _form(client_id)
    del missing["grant_type"]
    assert oauth_error(smart["client"].post("/auth/token", data=missing), 400) == (
        "invalid_request"
    )
    for name in ("grant_type", "client_assertion_type", "client_assertion", "scope"):
        form = MultiDict(_form(client_id, scope="system/Bundle.r"))
        form.add(name, form[name])
        response = smart["client"].post("/auth/token", data=form)
        assert oauth_error(response, 400) == "invalid_request", name
    as_json = smart["client"].post("/auth/token", json=_form(client_id))
    assert oauth_error(as_json, 400) == "invalid_request"
    other = smart["client"].post("/auth/token", data=_form(client_id, grant_type="password"))
    assert oauth_error(other, 400) == "unsupported_grant_type"


def test_a_client_id_other_than_the_assertions_iss_is_refused(smart):
    """SMART: the server SHALL "ensure that the client_id provided is known and matches
    the JWT's iss claim"."""
    client_id = smart["reader"].client_id
    response = smart["client"].post("/auth/token", data=_form(client_id, client_id="another"))
    assert oauth_error(response, 401) == "invalid_client"
    same = smart["client"].post("/auth/token", data=_form(client_id, client_id=client_id))
    assert same.status_code == 200, same.data


def test_the_key_is_resolved_as_smart_says(smart):
    """A kid is required and must name exactly one key of the algorithm's type; a jku
    that is not the registered JWKS URL fails; a typ other than JWT fails."""
    doubled = jwks_of(RSA_KEY, "rsa-1", "RS384")
    doubled["keys"].append(dict(doubled["keys"][0]))
    client_id = smart["reader"].client_id
    refused_assertions = {
        "no-kid": assertion(client_id, headers={}),
        "jku-not-registered": assertion(
            client_id, headers={"kid": "rsa-1", "jku": "https://attacker.example/jwks.json"}
        ),
        "typ-not-jwt": assertion(client_id, headers={"kid": "rsa-1", "typ": "at+jwt"}),
    }
    for name, signed in refused_assertions.items():
        response = token_request(smart["client"], signed)
        assert oauth_error(response, 401) == "invalid_client", name
    # Registration refuses a doubled kid; a set served at a JWKS URL is checked at use.
    clients = smart["app"].extensions[EXTENSION].clients
    with serving(doubled) as url:
        twice = create_client(clients, tenant="smart", scopes=["system/Bundle.r"], jwks_url=url)
        response = token_request(
            smart["client"], assertion(twice.client_id, headers={"kid": "rsa-1"})
        )
    assert oauth_error(response, 401) == "invalid_client"
    accepted = token_request(
        smart["client"], assertion(client_id, headers={"kid": "rsa-1", "typ": "JWT"})
    )
    assert accepted.status_code == 200, accepted.data


def test_smart_v1_scopes_are_granted_with_v1_meaning(smart):
    """SMART 2: servers SHOULD process v1 scopes (.read = .rs, .write = .cud) and return
    v1 scopes when v1 scopes are requested and granted."""
    reader = smart["reader"].client_id
    response = token_request(smart["client"], assertion(reader), "system/Observation.read")
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert body["scope"] == "system/Observation.read"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert smart["client"].get("/fhir/Observation", headers=headers).status_code == 200
    assert smart["client"].post("/v1/triage", json={}, headers=headers).status_code == 403
    wider = token_request(smart["client"], assertion(reader), "system/Observation.write")
    assert oauth_error(wider, 400) == "invalid_scope"
    clients = smart["app"].extensions[EXTENSION].clients
    v1 = create_client(
        clients, tenant="smart", scopes=["system/*.read"], jwks=jwks_of(RSA_KEY, "rsa-1", "RS384")
    )
    granted = token_request(smart["client"], assertion(v1.client_id), "system/Observation.rs")
    assert granted.status_code == 200, granted.data


@pytest.mark.parametrize(
    "path", ["/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"]
)
def test_smart_configuration_is_at_the_fhir_base_with_every_required_field(smart, path):
    """SMART: served at the FHIR base URL + /.well-known/smart-configuration; REQUIRED:
    token_endpoint, grant_types_supported, capabilities, code_challenge_methods_supported
    (S256 in, plain out)."""
    response = smart["client"].get(path)
    assert response.status_code == 200, response.data
    assert response.content_type == "application/json"
    body = response.get_json()
    assert body["token_endpoint"] == TOKEN_URL
    assert body["grant_types_supported"] == ["client_credentials"]
    assert body["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert set(body["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
    assert "S256" in body["code_challenge_methods_supported"]
    assert "plain" not in body["code_challenge_methods_supported"]
    assert {"client-confidential-asymmetric", "permission-v1", "permission-v2"} <= set(
        body["capabilities"]
    )


def test_a_jwks_key_without_a_kid_is_refused_at_registration(smart):
    """The assertion's kid picks the key, so a key without one could never verify: the
    registration says so instead of every token request failing later."""
    public = jwks_of(RSA_KEY, "rsa-1", "RS384")
    del public["keys"][0]["kid"]
    with pytest.raises(ClientError, match="kid"):
        create_client(smart["app"].extensions[EXTENSION].clients, tenant="smart", jwks=public)


# A key the product must refuse, made on purpose to show that it does.
WEAK_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505


def _private_jwk(private: Any, kid: str, alg: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(private))
    return {"keys": [{**jwk, "kid": kid, "alg": alg, "use": "sig"}]}


def _public(jwks: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {"keys": [{**jwks["keys"][0], **changes}]}


#: Key sets SMART or RFC 7518 forbid: "SHALL register the public key", "each JWK SHALL
#: represent an asymmetric key", kid unique, RS384 with 2048 bits or more, ES384 on P-384.
BAD_KEY_SETS = {
    "private-rsa": (_private_jwk(RSA_KEY, "rsa-1", "RS384"), "private or symmetric"),
    "symmetric": ({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "o"}]}, "private or symmetric"),
    "empty": ({"keys": []}, "non-empty"),
    "rsa-1024": (jwks_of(WEAK_RSA_KEY, "weak", "RS384"), "1024-bit"),
    "p-256": (
        jwks_of(ec.generate_private_key(ec.SECP256R1()), "p256", "ES256"),
        "P-384|ES384",
    ),
    "encryption-key": (_public(jwks_of(RSA_KEY, "e", "RS384"), use="enc"), "not a signing key"),
    "kid-twice": (
        {"keys": [jwks_of(RSA_KEY, "k", "RS384")["keys"][0]] * 2},
        "repeats kid",
    ),
    "broken-rsa": (_public(jwks_of(RSA_KEY, "b", "RS384"), n="AQAB"), "usable|bit"),
}


@pytest.mark.parametrize("name", BAD_KEY_SETS)
def test_client_registration_refuses_what_is_not_a_public_signing_key(name):
    """The EHR registration's rule, for SMART clients too (they were stored as given)."""
    jwks, reason = BAD_KEY_SETS[name]
    app = create_app({"TESTING": True})
    with pytest.raises(ClientError, match=reason):
        create_client(app.extensions[EXTENSION].clients, tenant="smart", jwks=jwks)


# Signing with the short key on purpose: PyJWT warns, the product must refuse it.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("name", ["private-rsa", "rsa-1024"])
def test_a_bad_key_served_at_a_jwks_url_is_invalid_client_never_used(name):
    """A private JWK made PyJWT fail inside decode (a 500); a 1024-bit key was accepted."""
    jwks = BAD_KEY_SETS[name][0]
    key = RSA_KEY if name == "private-rsa" else WEAK_RSA_KEY
    kid = jwks["keys"][0]["kid"]
    app = create_app({"TESTING": True})
    with serving(jwks) as url:
        created = create_client(app.extensions[EXTENSION].clients, tenant="smart", jwks_url=url)
        response = token_request(
            anonymous(app), assertion(created.client_id, key=key, headers={"kid": kid})
        )
    assert refused(response) == "invalid_client"


# --- the token endpoint as openapi.yaml describes it (tests/test_fuzz_contract.py fuzzes it) --

OAUTH_DESCRIPTION = re.compile(DESCRIPTION_PATTERN)


@pytest.mark.parametrize("scope", ["", "   ", "\t"])
def test_an_empty_scope_is_granted_the_clients_registered_scopes(smart, scope):
    """RFC 6749 §3.3: without a requested scope the server uses a pre-defined default;
    here, the scopes the client was registered with (as openapi.yaml says)."""
    response = token_request(smart["client"], assertion(smart["reader"].client_id), scope)
    assert response.status_code == 200, response.data
    assert response.get_json()["scope"] == "system/Observation.rs system/Bundle.r"


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scope=st.text(max_size=80).filter(lambda text: text.strip()))
def test_every_refused_scope_is_described_in_rfc_6749_characters(smart, scope):
    """RFC 6749 §5.2: error_description is printable ASCII without `"` and `\\`, whatever
    the scope it quotes (non-ASCII, quotes, backslashes, controls)."""
    response = token_request(smart["client"], assertion(smart["reader"].client_id), scope)
    if response.status_code == 200:  # one of the scopes the client holds, by chance
        return
    assert oauth_error(response, 400) == "invalid_scope"
    assert OAUTH_DESCRIPTION.fullmatch(response.get_json()["error_description"])


def test_a_pyjwt_message_is_described_in_rfc_6749_characters(smart):
    """PyJWT names a missing claim in double quotes ('Token is missing the "jti" claim')."""
    client_id = smart["reader"].client_id
    signed = jwt.encode(
        {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "exp": int(time.time()) + 60},
        RSA_KEY,
        algorithm="RS384",
        headers={"kid": "rsa-1"},
    )
    response = token_request(smart["client"], signed)
    assert oauth_error(response, 401) == "invalid_client"
    description = response.get_json()["error_description"]
    assert OAUTH_DESCRIPTION.fullmatch(description)
    assert "'jti'" in description


def test_an_over_long_assertion_is_invalid_request_saying_so(smart):
    form = _form(smart["reader"].client_id)
    form["client_assertion"] = "a." * 8192 + "b"
    response = smart["client"].post("/auth/token", data=form)
    assert oauth_error(response, 400) == "invalid_request"
    assert "longer than 16384" in response.get_json()["error_description"]


def test_the_http_layer_answers_before_the_token_logic_with_operation_outcomes(smart):
    """What openapi.yaml says happens before the form is read: a wrong method is 405 and
    a body too large 413 (OperationOutcomes, as on every path); a wrong media type is
    still the token endpoint's own OAuth invalid_request, never 415."""
    client = smart["client"]
    for method in ("GET", "PUT", "DELETE"):
        response = client.open("/auth/token", method=method)
        assert response.status_code == 405, method
        assert response.mimetype == "application/fhir+json"
        assert set(response.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}
        assert response.get_json()["issue"][0]["code"] == "not-supported"
    too_large = client.post(
        "/auth/token",
        data="grant_type=client_credentials&pad=" + "x" * 70000,
        content_type="application/x-www-form-urlencoded",
    )
    assert too_large.status_code == 413
    assert too_large.mimetype == "application/fhir+json"
    for content_type in ("application/json", "text/plain", "multipart/form-data; boundary=x"):
        response = client.post("/auth/token", data="grant_type=x", content_type=content_type)
        assert oauth_error(response, 400) == "invalid_request", content_type
    unreadable = client.post(
        "/auth/token",
        environ_overrides={
            "wsgi.input": io.BytesIO(b"grant_type=client_credentials"),
            "CONTENT_LENGTH": "100",
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
        },
    )
    assert unreadable.status_code == 400
    assert unreadable.mimetype == "application/fhir+json"
    assert unreadable.get_json()["issue"][0]["code"] == "structure"


def test_the_token_endpoint_is_not_rate_limited():
    """The caller is not identified until its assertion is verified, so no client's
    counter is charged (openapi.yaml: no RateLimit headers). The token endpoint's own
    limits, per address and per client id, are tests/test_auth_token_hostile.py's."""
    app = create_app({"TESTING": True, "RATE_LIMIT": "2/minute"})
    client = anonymous(app)
    for _ in range(5):
        response = client.post("/auth/token", data={"grant_type": "password"})
        assert oauth_error(response, 400) == "unsupported_grant_type"
        assert "RateLimit" not in response.headers
    keyed = app.test_client()
    statuses = [keyed.get("/fhir/Observation").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]  # the same app does limit identified clients


# --- key sets at a --jwks-url are cached as an EHR's jku (api.auth.jwks_cache) ----------------
# Review finding (session 9): the JWKS URL was fetched on every token request, so whoever
# knew a client id could make this server fetch the partner's keys once per bogus assertion
# (and wait up to 3 s each time). A real JWKS server on loopback counts the fetches; the
# cache runs on a clock the test moves.


@pytest.fixture(name="jwks_clock")
def jwks_clock_fixture(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """An empty SMART JWKS cache on a clock the test moves by hand (no sleeping)."""
    clock = ManualClock()
    monkeypatch.setattr(smart_auth, "JWKS_CACHE", _jwks_cache(clock), raising=False)
    return clock


OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _url_client(keys: LoopbackServer) -> tuple[Any, str]:
    """(a test client of a new app, the id of a client registered with keys.url/jwks)."""
    app = create_app({"TESTING": True})
    created = create_client(
        app.extensions[EXTENSION].clients, tenant="smart", jwks_url=keys.url + "/jwks"
    )
    return anonymous(app), created.client_id


def _status(client: Any, signed: str) -> int:
    return token_request(client, signed).status_code


def test_token_requests_good_and_bogus_fetch_the_jwks_once_within_its_lifetime(jwks_clock):
    """Valid assertions, forged signatures under the registered kid, wrong audiences,
    replays and unknown kids alike: one fetch until the answer's max-age runs out."""
    routes = {"/jwks": (200, {"Cache-Control": "max-age=60"}, jwks_of(RSA_KEY, "rsa-1", "RS384"))}
    with LoopbackServer(routes) as keys:
        client, client_id = _url_client(keys)
        replayed = assertion(client_id)
        assert _status(client, replayed) == 200
        bogus = [
            replayed,
            assertion(client_id, key=OTHER_RSA_KEY),  # forged: the registered kid, another key
            assertion(client_id, aud="https://elsewhere.example/auth/token"),
            assertion(client_id, headers={"kid": f"unknown-{uuid.uuid4().hex}"}),
        ]
        for _ in range(5):
            assert _status(client, assertion(client_id)) == 200
            assert [_status(client, signed) for signed in bogus] == [401] * len(bogus)
        jwks_clock.advance(59.9)
        assert [_status(client, assertion(client_id)) for _ in range(5)] == [200] * 5
        assert [_status(client, signed) for signed in bogus[1:3]] == [401, 401]
        assert len(keys.calls) == 1
        jwks_clock.advance(0.2)  # the set has expired: the next request reads it again
        assert _status(client, assertion(client_id)) == 200
        assert len(keys.calls) == 2


def test_unknown_kids_fetch_the_jwks_again_at_most_once_per_5_s(jwks_clock):
    """An assertion naming a kid not in the cached set looks once more (SMART key
    rotation), but a stream of made-up kids cannot make a fetch per request."""
    routes = {"/jwks": (200, {}, jwks_of(RSA_KEY, "rsa-1", "RS384"))}
    with LoopbackServer(routes) as keys:
        client, client_id = _url_client(keys)

        def stranger() -> int:
            return _status(client, assertion(client_id, headers={"kid": uuid.uuid4().hex}))

        assert [stranger() for _ in range(10)] == [401] * 10
        assert len(keys.calls) == 1  # the first fetch was just now: no refetch yet
        jwks_clock.advance(JWKS_REFETCH_SECONDS)
        assert [stranger() for _ in range(10)] == [401] * 10
        assert len(keys.calls) == 2
        assert _status(client, assertion(client_id)) == 200
        assert len(keys.calls) == 2


def test_a_rotated_key_with_a_new_kid_is_picked_up_at_once(jwks_clock):
    """SMART "client-confidential-asymmetric": the client publishes a new key under a new
    kid and signs with it; the first assertion naming it fetches the set again (once 5 s
    have passed since the last fetch), and a key the client withdrew stops working then."""
    routes = {"/jwks": (200, {}, jwks_of(RSA_KEY, "rsa-1", "RS384"))}
    with LoopbackServer(routes) as keys:
        client, client_id = _url_client(keys)
        assert [_status(client, assertion(client_id)) for _ in range(3)] == [200] * 3
        routes["/jwks"] = (200, {}, jwks_of(OTHER_RSA_KEY, "rsa-2", "RS384"))

        def rotated() -> int:
            return _status(
                client, assertion(client_id, key=OTHER_RSA_KEY, headers={"kid": "rsa-2"})
            )

        jwks_clock.advance(JWKS_REFETCH_SECONDS - 0.1)
        assert rotated() == 401  # 4.9 s after the last fetch: not asked again yet
        assert _status(client, assertion(client_id)) == 200  # the cached set still holds
        assert len(keys.calls) == 1
        jwks_clock.advance(0.1)
        assert [rotated() for _ in range(3)] == [200] * 3
        assert _status(client, assertion(client_id)) == 401  # rsa-1 was withdrawn
        assert len(keys.calls) == 2


def test_a_jwks_server_asking_for_no_caching_is_asked_once_per_10_s(jwks_clock):
    """``no-store`` (hostile, or a framework's default) cannot make every token request
    wait on a fetch."""
    headers = {"Cache-Control": "no-store"}
    with LoopbackServer({"/jwks": (200, headers, jwks_of(RSA_KEY, "rsa-1", "RS384"))}) as keys:
        client, client_id = _url_client(keys)
        assert [_status(client, assertion(client_id)) for _ in range(5)] == [200] * 5
        jwks_clock.advance(JWKS_MIN_CACHE_SECONDS - 0.1)
        assert [_status(client, assertion(client_id)) for _ in range(5)] == [200] * 5
        assert len(keys.calls) == 1
        jwks_clock.advance(0.2)
        assert _status(client, assertion(client_id)) == 200
        assert len(keys.calls) == 2


def test_a_failing_jwks_server_is_asked_at_most_once_per_5_s(jwks_clock):
    """A failed fetch is remembered for 5 s: every token request meanwhile is refused
    with the failure's reason, without asking the server."""
    routes = {"/jwks": (503, {}, {"down": True})}
    with LoopbackServer(routes) as keys:
        client, client_id = _url_client(keys)
        for _ in range(10):
            response = token_request(client, assertion(client_id))
            assert oauth_error(response, 401) == "invalid_client"
            description = response.get_json()["error_description"]
            assert description == "the client's JWKS URL could not be read"
        assert len(keys.calls) == 1
        routes["/jwks"] = (200, {}, jwks_of(RSA_KEY, "rsa-1", "RS384"))
        jwks_clock.advance(JWKS_REFETCH_SECONDS - 0.1)
        assert _status(client, assertion(client_id)) == 401
        assert len(keys.calls) == 1
        jwks_clock.advance(0.1)
        assert _status(client, assertion(client_id)) == 200
        assert len(keys.calls) == 2


def test_keys_past_their_lifetime_are_never_used_even_when_the_refetch_fails(jwks_clock):
    routes = {"/jwks": (200, {"Cache-Control": "max-age=60"}, jwks_of(RSA_KEY, "rsa-1", "RS384"))}
    with LoopbackServer(routes) as keys:
        client, client_id = _url_client(keys)
        assert _status(client, assertion(client_id)) == 200
        routes["/jwks"] = (500, {}, {"down": True})
        jwks_clock.advance(30)
        stranger = assertion(client_id, headers={"kid": "rotated"})
        assert _status(client, stranger) == 401  # the refetch fails ...
        assert _status(client, assertion(client_id)) == 200  # ... the fresh keys are kept
        assert len(keys.calls) == 2
        jwks_clock.advance(31)  # 61 s: expired, and the server is still down
        assert _status(client, assertion(client_id)) == 401
        assert len(keys.calls) == 3


@pytest.mark.parametrize(
    ("served", "description"),
    [
        (b"[" * 70000, "the client's JWKS is too large"),
        (b"<html>keys</html>", "the client's JWKS is not JSON"),
        (b'["keys"]', "the client's JWKS is not a JSON object"),
    ],
)
def test_an_unusable_jwks_answer_is_invalid_client_saying_why(served, description):
    """The SMART path keeps its own limits (64 KiB) and wording through the cache."""
    routes = {"/jwks": (200, {}, served)}
    with LoopbackServer(routes) as keys:
        client, client_id = _url_client(keys)
        for _ in range(3):
            response = token_request(client, assertion(client_id))
            assert oauth_error(response, 401) == "invalid_client"
            assert response.get_json()["error_description"] == description
        assert len(keys.calls) == 1


def test_the_cache_is_keyed_by_url_so_each_client_gets_its_own_keys():
    """Two clients publishing the same kid at two URLs: each assertion is checked against
    its own client's set (a client registered again with a new URL reads the new URL)."""
    first = {"/jwks": (200, {}, jwks_of(RSA_KEY, "rsa-1", "RS384"))}
    second = {"/jwks": (200, {}, jwks_of(OTHER_RSA_KEY, "rsa-1", "RS384"))}
    with LoopbackServer(first) as one, LoopbackServer(second) as two:
        app = create_app({"TESTING": True})
        clients = app.extensions[EXTENSION].clients
        old = create_client(clients, tenant="smart", jwks_url=one.url + "/jwks").client_id
        new = create_client(clients, tenant="smart", jwks_url=two.url + "/jwks").client_id
        client = anonymous(app)
        assert _status(client, assertion(old)) == 200
        assert _status(client, assertion(new, key=OTHER_RSA_KEY)) == 200
        assert _status(client, assertion(new)) == 401  # the first client's key, refused
        assert _status(client, assertion(old, key=OTHER_RSA_KEY)) == 401
        assert (len(one.calls), len(two.calls)) == (1, 1)


def test_under_gunicorn_and_gevent_token_requests_together_share_one_fetch(tmp_path: Path):
    """The product as served (``twitch-triage serve``: gevent worker, the app and its
    JWKS cache made before gevent patches ``threading``): eight token requests at once
    while the JWKS server is slow get eight tokens from one fetch (a lock that blocked
    the worker's one thread while a greenlet fetched would hang them all)."""
    product = Product.at(tmp_path)
    base = product.base
    routes = {"/jwks": (200, {"Cache-Control": "max-age=60"}, jwks_of(RSA_KEY, "rsa-1", "RS384"))}
    with LoopbackServer(routes, delay=0.5) as keys:
        created = product.cli(
            "clients", "create", "--tenant", "smart", "--jwks-url", keys.url + "/jwks"
        )
        client_id = json.loads(created.stdout)["client_id"]

        def one_request() -> urllib.request.Request:
            form = {
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion(client_id, aud=f"{base}/auth/token"),
            }
            return urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
                f"{base}/auth/token",
                data=urllib.parse.urlencode(form).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )

        with product.serving() as log:
            statuses = simultaneous_statuses(one_request)
    assert statuses == [200] * 8, log.read_text()[-2000:]
    assert len(keys.calls) == 1
