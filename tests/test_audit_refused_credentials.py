"""A refused credential of a known client is audited under that client's tenant.

Found by an authorization review: 20 requests with a revoked API key and 6 with a
revoked client's access token were all refused (401) but none appeared in the tenant's
AuditEvents; they were kept without a tenant ("API client"), seen by operators only.
That is exactly the signal that a key leaked, so the tenant must see it.
"""

from __future__ import annotations

import uuid
from typing import Any

from conftest import create_app
from flask import Flask

from api.auth.clients import create_client, revoke_client, rotate_client
from api.config import EXTENSION


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _tenant_events(app: Flask, key: str) -> list[dict[str, Any]]:
    page = app.test_client().get("/fhir/AuditEvent?_count=100", headers=_bearer(key))
    assert page.status_code == 200, page.data[:300]
    return [entry["resource"] for entry in page.get_json().get("entry", [])]


def _request_ids(events: list[dict[str, Any]]) -> set[str]:
    return {
        entity["what"]["identifier"]["value"].removeprefix("urn:uuid:")
        for event in events
        for entity in event["entity"]
        if entity.get("description") == "request id"
    }


def _client_ids(event: dict[str, Any]) -> set[str]:
    return {
        agent["who"]["identifier"]["value"]
        for agent in event["agent"]
        if "identifier" in agent.get("who", {})
    }


def test_a_revoked_and_a_retired_key_are_audited_under_their_tenant():
    app = create_app({"TESTING": True, "KEY_GRACE_SECONDS": 0})
    clients = app.extensions[EXTENSION].clients
    tenant = f"clinic-{uuid.uuid4().hex[:8]}"
    auditor = create_client(clients, tenant=tenant, label="auditor")
    leaked = create_client(clients, tenant=tenant, label="leaked")
    rotated = create_client(clients, tenant=tenant, label="rotated")
    rotate_client(clients, rotated.client_id, 0)  # the old key retires at once
    revoke_client(clients, leaked.client_id)
    bystander = create_client(clients, tenant=f"other-{uuid.uuid4().hex[:8]}")

    refused = {}
    for name, key in (("revoked", leaked.api_key), ("retired", rotated.api_key)):
        response = app.test_client().get(f"/fhir/Bundle/{uuid.uuid4()}", headers=_bearer(key))
        assert response.status_code == 401
        refused[name] = response.headers["X-Request-ID"]
    unknown = app.test_client().get(
        f"/fhir/Bundle/{uuid.uuid4()}", headers=_bearer("tt_" + "x" * 40)
    )
    assert unknown.status_code == 401

    events = _tenant_events(app, auditor.api_key)
    by_request = {rid: e for e in events for rid in _request_ids([e])}
    assert set(refused.values()) <= set(by_request)
    assert _client_ids(by_request[refused["revoked"]]) >= {leaked.client_id}
    assert _client_ids(by_request[refused["retired"]]) >= {rotated.client_id}
    for request_id in refused.values():
        assert by_request[request_id]["outcome"] != "0"
    assert unknown.headers["X-Request-ID"] not in by_request  # an unknown key names nobody
    assert not set(refused.values()) & _request_ids(_tenant_events(app, bystander.api_key))
