"""Scopes a client is registered for name types this API holds, each once.

Found by an authorization review: ``system/Foo.rs`` was accepted at registration and
granted in a token (a scope that grants nothing but reads as if it did), and a scope
asked for twice came back twice in the token answer.
"""

from __future__ import annotations

import pytest
from conftest import anonymous, create_app
from test_auth_smart import RSA_KEY, assertion, jwks_of, token_request

from api.auth.clients import ClientError, create_client
from api.auth.scopes import SCOPE_TYPES
from api.config import EXTENSION


@pytest.fixture(scope="module")
def app():
    return create_app({"TESTING": True})


def test_the_scope_types_are_the_stored_types_of_the_capability_statement(app):
    statement = anonymous(app).get("/fhir/metadata").get_json()
    declared = {entry["type"] for entry in statement["rest"][0]["resource"]}
    published = {"Questionnaire", "CodeSystem", "ValueSet", "OperationDefinition"}
    assert set(SCOPE_TYPES) == declared - published


@pytest.mark.parametrize(
    "scope", ["system/Foo.rs", "system/Patient.read", "system/Encounter.*", "system/Bundles.r"]
)
def test_a_scope_for_a_type_this_api_does_not_hold_is_refused(app, scope):
    with pytest.raises(ClientError, match="does not hold"):
        create_client(app.extensions[EXTENSION].clients, tenant="smart", scopes=[scope])


def test_registered_and_granted_scopes_are_each_named_once(app):
    clients = app.extensions[EXTENSION].clients
    created = create_client(
        clients,
        tenant="smart",
        scopes=["system/Bundle.r", "system/*.s", "system/Bundle.r"],
        jwks=jwks_of(RSA_KEY, "rsa-1", "RS384"),
    )
    assert created.scopes == ("system/Bundle.r", "system/*.s")
    answer = token_request(
        anonymous(app),
        assertion(created.client_id),
        scope="system/Bundle.r  system/Bundle.r system/*.s",
    )
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["scope"] == "system/Bundle.r system/*.s"
