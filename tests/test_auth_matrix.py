"""The authorization matrix: every operation of openapi.yaml against every bad credential.

For each operation the contract marks as secured: no credentials, a malformed
header, an unknown key, a revoked key, a rotated key after its grace period,
an expired access token → 401 (``login``, ``WWW-Authenticate: Bearer``); a
scope that covers nothing here → 403 (``forbidden``); the rotated key inside
its grace period passes authentication. Public operations answer without
credentials. Credentials are checked before anything else (body, Accept), so
one request per operation and case suffices.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from conftest import VALID_REQUEST, anonymous, create_app

from api.auth.clients import create_client, revoke_client, rotate_client
from api.auth.keys import new_access_token, secret_hash
from api.config import EXTENSION
from tools.openapi import OPENAPI_PATH

SPEC = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
OPERATIONS = [
    (path, method, operation)
    for path, operations in SPEC["paths"].items()
    for method, operation in operations.items()
]
SECURED = [(p, m) for p, m, op in OPERATIONS if op.get("security")]
#: Secured by an API key or SMART token (the CDS Hooks calls take the EHR's JWT instead).
KEYED = [(p, m) for p, m, op in OPERATIONS if any("apiKey" in r for r in op.get("security", []))]
PUBLIC = [(p, m) for p, m, op in OPERATIONS if op.get("security") == []]
MISSING_ID = "5d4b1e7e-0000-4000-8000-000000000000"


def concrete(path: str) -> str:
    return path.replace("{id}", MISSING_ID)


def call(client: Any, path: str, method: str, authorization: str | None) -> Any:
    headers = {} if authorization is None else {"Authorization": authorization}
    body = VALID_REQUEST if method == "post" else None
    return client.open(concrete(path), method=method.upper(), json=body, headers=headers)


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    """One app with a client per credential case."""
    app = create_app({"TESTING": True})
    clients = app.extensions[EXTENSION].clients
    revoked = create_client(clients, tenant="matrix")
    revoke_client(clients, revoked.client_id)
    retired = create_client(clients, tenant="matrix")
    rotate_client(clients, retired.client_id, grace_seconds=0)
    retiring = create_client(clients, tenant="matrix")
    rotate_client(clients, retiring.client_id, grace_seconds=3600)
    unscoped = create_client(
        clients, tenant="matrix", scopes=["system/Provenance.d"]
    )  # no endpoint
    expired = new_access_token()
    clients.add_token(secret_hash(expired), unscoped.client_id, "system/*.cruds", 1)
    return {
        "app": app,
        "revoked": revoked.api_key,
        "retired": retired.api_key,
        "retiring": retiring.api_key,
        "unscoped": unscoped.api_key,
        "expired": expired,
    }


def test_the_contract_secures_every_operation_but_the_public_ones():
    assert {p for p, _ in PUBLIC} == {
        "/healthz",
        "/openapi.yaml",
        "/fhir/metadata",
        "/fhir/Questionnaire/{id}",
        "/fhir/CodeSystem/{id}",
        "/fhir/ValueSet/{id}",
        "/fhir/OperationDefinition/{id}",
        # No API key: its signed link is the credential (issue 14; tests/test_report_page.py).
        "/reports/{id}",
        "/cds-services",
        # SMART Backend Services: discovery, and the token endpoint (its assertion is the
        # credential; tests/test_auth_smart.py).
        "/.well-known/smart-configuration",
        "/auth/token",
    }
    # With POST /v1/intake-links (issue 14) and the three searches by POST (…/_search).
    assert len(SECURED) == 17
    assert len(KEYED) == 15
    assert sorted(set(SECURED) - set(KEYED)) == [
        ("/cds-services/twitch-triage", "post"),
        ("/cds-services/twitch-triage/feedback", "post"),
    ]


def assert_outcome(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.data[:300])
    outcome = response.get_json(force=True)
    assert outcome["resourceType"] == "OperationOutcome"
    assert [issue["code"] for issue in outcome["issue"]] == [code]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


UNAUTHENTICATED = {
    "none": lambda _w: None,
    "basic scheme": lambda _w: "Basic dXNlcjpwYXNz",
    "bearer without credential": lambda _w: "Bearer",
    "two credentials": lambda _w: "Bearer tt_a tt_b",
    "unknown key": lambda _w: "Bearer tt_" + "x" * 43,
    "revoked key": lambda w: f"Bearer {w['revoked']}",
    "rotated key after its grace period": lambda w: f"Bearer {w['retired']}",
    "expired access token": lambda w: f"Bearer {w['expired']}",
}


@pytest.mark.parametrize("case", sorted(UNAUTHENTICATED))
@pytest.mark.parametrize(("path", "method"), SECURED)
def test_bad_credentials_are_401_login_with_a_challenge(world, path, method, case):
    response = call(anonymous(world["app"]), path, method, UNAUTHENTICATED[case](world))
    assert_outcome(response, 401, "login")
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="twitch-triage"')
    if case != "none":
        assert "error=" in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(("path", "method"), KEYED)
def test_a_missing_scope_is_403_forbidden(world, path, method):
    response = call(anonymous(world["app"]), path, method, f"Bearer {world['unscoped']}")
    assert_outcome(response, 403, "forbidden")
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    (requirement,) = [r["smart"] for r in SPEC["paths"][path][method]["security"] if "smart" in r]
    assert f'scope="{requirement[0]}"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(("path", "method"), KEYED)
def test_a_rotated_key_works_inside_its_grace_period(world, path, method):
    response = call(anonymous(world["app"]), path, method, f"Bearer {world['retiring']}")
    assert response.status_code not in (401, 403), response.data[:300]


#: Public operations whose empty request is refused by the operation itself, not the gate:
#: the token endpoint's OAuth invalid_request (no grant_type), never a 401 login.
EMPTY_REQUEST_STATUS = {("/auth/token", "post"): 400}


@pytest.mark.parametrize(("path", "method"), PUBLIC)
def test_public_operations_need_no_credentials(world, path, method):
    response = anonymous(world["app"]).open(concrete(path), method=method.upper())
    expected = (
        (EMPTY_REQUEST_STATUS[(path, method)],)
        if (path, method) in EMPTY_REQUEST_STATUS
        else (200, 404)
    )
    assert response.status_code in expected, response.data[:300]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "WWW-Authenticate" not in response.headers


def test_smart_discovery_is_public(world):
    response = anonymous(world["app"]).get("/.well-known/smart-configuration")
    assert response.status_code == 200
    body = response.get_json()
    assert body["token_endpoint"] == "http://localhost/auth/token"  # noqa: S105 (a URL)
    assert body["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert "client-confidential-asymmetric" in body["capabilities"]


def test_an_unknown_path_without_credentials_reveals_nothing(world):
    response = anonymous(world["app"]).get("/fhir/Patient/1")
    assert_outcome(response, 401, "login")


def test_a_wrong_method_is_405_for_anyone(world):
    response = anonymous(world["app"]).put("/v1/triage")
    assert_outcome(response, 405, "not-supported")
