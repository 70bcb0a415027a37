"""Contract fuzzing: schemathesis drives the app from the committed openapi.yaml.

Every operation in ``openapi.yaml`` is called in-process through the WSGI app
(no server, no network) with schema-valid and schema-violating data, and every
response goes through ALL of schemathesis's checks: no 5xx, documented status
codes, content types and headers, responses valid against their schema (FHIR
JSON is ``application/fhir+json``, which schemathesis parses as JSON; the
canary test below proves it), schema-violating requests rejected with a 4xx,
schema-valid ones accepted, and the resource and auth checks (vacuous here:
no resources are created and there is no auth, but enabled so they start
working the day the contract grows them).

Bounded and reproducible for CI: a fixed seed, ``deterministic`` generation
(Hypothesis derandomised, no example database) and a capped number of
examples per operation; the coverage phase adds the boundary values of every
range, length and enum (about 1,000 requests for ``POST /v1/triage``).

The SMART token endpoint (``POST /auth/token``) is fuzzed with url-encoded forms like
any operation: its refusals must be the contract's OAuth error bodies. A fuzzer cannot
sign a client assertion, so the tests at the end sign real ones for a registered client
and put the issued token and the post-authentication ``invalid_scope`` through the same
checks.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import ServerError
from schemathesis.openapi.checks import JsonSchemaError

from api import create_app
from api.auth.clients import create_client
from api.config import EXTENSION
from api.services.assessments import StoredTriage
from tools.openapi import OPENAPI_PATH

#: Fuzzing-phase examples per operation (the coverage phase runs on top of these).
MAX_EXAMPLES = 300
SEED = 20251121

APP = create_app({"TESTING": True})

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        # Every call carries the test client's key (issue 11) as the contract's own bearer
        # scheme, so schemathesis knows it is explicit auth; its auth checks also call
        # without it and with a wrong one and expect the documented 401.
        "auth": {"openapi": {"apiKey": {"bearer": APP.config["TEST_API_KEY"]}}},
        "generation": {
            "mode": "all",  # positive and negative data
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            # No links between operations in openapi.yaml: nothing to chain.
            "stateful": {"enabled": False},
        },
        # Every check schemathesis has; none is disabled.
        "checks": {"enabled": True},
        "operations": [
            {
                # A schema-violating token request is refused as OAuth says (400, 401), or,
                # when an over-long field (`client_assertion` past its maxLength, in 4-byte
                # characters percent-encoded) takes the body past TWITCH_TRIAGE_MAX_BODY_BYTES,
                # by the documented 413 before any field is read. Nothing else.
                "include-path": "/auth/token",
                "checks": {"negative_data_rejection": {"expected-statuses": [400, 401, 413]}},
            },
            {
                # $triage's body schemas hold every R4 element the operation checks
                # (recursive extensions, ext-1 as oneOf, ele-1 as anyOf of required): the
                # coverage phase's enumeration of their boundary cases did not end in an
                # hour. Examples and the fuzzing phase (positive and negative data) run as
                # for every operation; the boundary cases of those elements are
                # tests/test_fhir_triage_r4_elements.py's table and properties.
                "include-path-regex": r"\$triage$",
                "phases": {"coverage": {"enabled": False}},
            },
            {
                # The searches by POST take a form body. Schemathesis' negative cases give a
                # field an object value, which werkzeug's test client drops from a form it
                # encodes (it takes it for a file): the server then gets a valid search
                # without that field and rightly answers 200. Every other check runs; that
                # POST and GET searches agree on every query, refusals included, is
                # tests/test_fhir_search_conformance.py's property test.
                "include-path-regex": "/_search$",
                "checks": {"negative_data_rejection": {"enabled": False}},
            },
        ],
    }
)

# The CDS Hooks POSTs answer only a JWT the EHR signs for each call (aud = the URL, a
# fresh jti, a registered key), which no fuzzer case carries: every call would be the
# documented 401. tests/test_cds_hooks.py validates their requests and responses against
# these same schemas; GET /cds-services (public) is fuzzed like the rest.
SCHEMA = schemathesis.openapi.from_path(OPENAPI_PATH, config=CONFIG).exclude(
    path_regex=r"^/cds-services/"
)
SCHEMA.app = APP


@SCHEMA.parametrize()
def test_every_operation_honours_the_contract(case):
    case.call_and_validate()


def test_every_schemathesis_check_is_enabled():
    """A check added by a schemathesis upgrade must not be silently skipped."""
    load_all_checks()
    config = SCHEMA.config.checks_config_for(operation=None, phase=None)
    names = CHECKS.get_all_names()
    assert "negative_data_rejection" in names
    assert "positive_data_acceptance" in names
    disabled = [name for name in names if not config.get_by_name(name=name).enabled]
    assert disabled == []


def test_every_operation_is_fuzzed():
    labels = {result.ok().label for result in SCHEMA.get_all_operations()}
    assert {
        "POST /v1/triage",
        "GET /healthz",
        "GET /openapi.yaml",
        "POST /auth/token",
        "GET /.well-known/smart-configuration",
    } <= labels


VALID = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}


def _triage_case() -> Any:
    operation = SCHEMA["/v1/triage"]["POST"]
    return operation.Case(
        body=VALID,
        media_type="application/json",
        headers={"Authorization": f"Bearer {APP.config['TEST_API_KEY']}"},
    )


def test_a_valid_call_passes_every_check():
    response = _triage_case().call_and_validate()
    assert response.status_code == 200


@pytest.mark.parametrize(
    "broken",
    [
        {"resourceType": "Bundle", "type": "collection"},  # no entry, no timestamp
        {"resourceType": "Bundle", "type": "searchset", "timestamp": "x", "entry": []},
    ],
    ids=["missing-entry", "wrong-type"],
)
def test_canary_a_bundle_off_contract_is_caught(monkeypatch, broken):
    """application/fhir+json bodies really are validated as JSON against the schema."""
    # The body sent is what storage serialised (it gives the Bundle its ids), so break that.
    monkeypatch.setattr(
        "api.http.stored_triage",
        lambda *_a, **_k: StoredTriage(
            body=json.dumps(broken).encode(), bundle_id="x", stored=False
        ),
    )
    with pytest.raises(BaseExceptionGroup) as info:
        _triage_case().call_and_validate()
    assert info.group_contains(JsonSchemaError, match="Response violates schema")


def test_canary_a_server_error_is_caught(monkeypatch):
    def broken(_request: object) -> None:
        raise RuntimeError("engine failure")

    monkeypatch.setattr("api.services.triage.evaluate", broken)
    with pytest.raises(BaseExceptionGroup) as info:
        _triage_case().call_and_validate()
    assert info.group_contains(ServerError)


# --- SMART Backend Services: what a fuzzer cannot forge, through the same checks ----------

TOKEN_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
TOKEN_CLIENT = create_client(
    APP.extensions[EXTENSION].clients,
    tenant="fuzz",
    scopes=["system/Observation.rs", "system/Bundle.r"],
    jwks={
        "keys": [
            {
                **json.loads(RSAAlgorithm.to_jwk(TOKEN_KEY.public_key())),
                "kid": "fuzz-1",
                "alg": "RS384",
            }
        ]
    },
)


def _token_case(scope: str | None) -> Any:
    """A token request with a fresh, validly signed assertion of TOKEN_CLIENT."""
    client_id = TOKEN_CLIENT.client_id
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": "http://localhost/auth/token",
        "exp": now + 120,
        "jti": str(uuid.uuid4()),
    }
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": jwt.encode(
            claims, TOKEN_KEY, algorithm="RS384", headers={"kid": "fuzz-1"}
        ),
    }
    if scope is not None:
        form["scope"] = scope
    operation = SCHEMA["/auth/token"]["POST"]
    return operation.Case(body=form, media_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize(
    "scope", [None, "", " ", "system/Observation.rs", "system/Observation.read"]
)
def test_a_token_is_issued_as_the_contract_says(scope):
    response = _token_case(scope).call_and_validate()
    assert response.status_code == 200
    granted = response.json()["scope"]
    assert granted == ((scope or "").strip() or "system/Observation.rs system/Bundle.r")


@pytest.mark.parametrize(
    "scope", ["system/Patient.rs", "system/Observation.cruds", 'user/"x"\\y é', "a" * 700]
)
def test_a_scope_refused_after_authentication_answers_the_contracts_oauth_error(scope):
    """invalid_scope comes only after the assertion is verified: no fuzzer case gets there.
    Its description may quote the scope; it stays in RFC 6749 §5.2's characters."""
    response = _token_case(scope).call_and_validate()
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_canary_an_oauth_error_off_contract_is_caught(monkeypatch):
    """application/json error bodies are validated against the OAuth error schema."""
    monkeypatch.setattr("api.auth.smart._description", lambda text: f'"{text}"')
    with pytest.raises(BaseExceptionGroup) as info:
        _token_case("system/Patient.rs").call_and_validate()
    assert info.group_contains(JsonSchemaError, match="Response violates schema")
