"""Tenant isolation: another tenant's id is a 404 indistinguishable from a missing one.

A hypothesis state machine drives two tenants creating, reading, searching and
deleting assessments; after every step no response carries the other
tenant's data, and each tenant sees exactly its own live assessments.
"""

from __future__ import annotations

import uuid
from typing import Any

from conftest import VALID_REQUEST, anonymous, create_app
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from api.auth.clients import create_client
from api.config import EXTENSION

TENANTS = ("north", "south")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def without_id(response: Any, resource_id: str) -> bytes:
    """The body with the requested id blanked (the 404's text names the id asked for)."""
    return response.data.replace(resource_id.encode(), b"ID")


def agent_of(entry: dict[str, Any]) -> str:
    return entry["resource"]["agent"][0]["who"]["identifier"]["value"]


def test_another_tenants_ids_answer_exactly_like_missing_ones():
    app = create_app({"TESTING": True})
    clients = app.extensions[EXTENSION].clients
    owner_client = create_client(clients, tenant="owner")
    other_client = create_client(clients, tenant="other")
    owner, other = bearer(owner_client.api_key), bearer(other_client.api_key)
    client = anonymous(app)
    created = client.post("/v1/triage", json=VALID_REQUEST, headers=owner)
    assert created.status_code == 200
    bundle = created.get_json()
    ids = {"Bundle": bundle["id"], "Provenance": bundle["id"]}
    for entry in bundle["entry"]:
        ids.setdefault(entry["resource"]["resourceType"], entry["resource"]["id"])
    for resource_type, resource_id in ids.items():
        path = f"/fhir/{resource_type}/{resource_id}"
        assert client.get(path, headers=owner).status_code == 200
        foreign = client.get(path, headers=other)
        missing_id = str(uuid.uuid4())
        missing = client.get(f"/fhir/{resource_type}/{missing_id}", headers=other)
        assert foreign.status_code == missing.status_code == 404
        assert without_id(foreign, resource_id) == without_id(missing, missing_id)
        assert {k for k, _ in foreign.headers} == {k for k, _ in missing.headers}
    # The owner's create AuditEvent is invisible to the other tenant, by id and by search.
    audit = client.get("/fhir/AuditEvent", headers=owner).get_json()
    event_id = audit["entry"][0]["resource"]["id"]
    agents = {agent_of(entry) for entry in audit["entry"]}
    assert agents == {owner_client.client_id}  # the AuditEvent agent is the calling client
    assert client.get(f"/fhir/AuditEvent/{event_id}", headers=other).status_code == 404
    searched = client.get("/fhir/AuditEvent?entity=Bundle/" + bundle["id"], headers=other)
    # Only the other tenant's own (failed) attempts on that id, never the owner's events.
    assert {agent_of(entry) for entry in searched.get_json()["entry"]} == {other_client.client_id}
    assert all(e["resource"]["outcome"] == "4" for e in searched.get_json()["entry"])
    # Deleting another tenant's assessment is a 404 and deletes nothing.
    foreign_delete = client.delete(f"/fhir/Bundle/{bundle['id']}", headers=other)
    assert foreign_delete.status_code == 404
    assert client.get(f"/fhir/Bundle/{bundle['id']}", headers=owner).status_code == 200


def test_an_idempotency_key_is_the_tenants_own():
    """Two tenants sending the same key each get their own assessment, and each
    tenant's retry replays its own: no replay across tenants, and no 409 that would
    tell one tenant that another used the key."""
    app = create_app({"TESTING": True})
    clients = app.extensions[EXTENSION].clients
    owner = bearer(create_client(clients, tenant="owner").api_key)
    other = bearer(create_client(clients, tenant="other").api_key)
    key = {"Idempotency-Key": "order-1"}  # a guessable key, as partners may use
    client = anonymous(app)
    first = client.post("/v1/triage", json=VALID_REQUEST, headers={**owner, **key})
    other_body = {**VALID_REQUEST, "patient": {"age_years": 61, "reference": "Patient/o-1"}}
    second = client.post("/v1/triage", json=other_body, headers={**other, **key})
    assert first.status_code == 200
    assert second.status_code == 200, second.get_data(as_text=True)
    assert second.get_json()["id"] != first.get_json()["id"]
    assert first.get_json()["id"].encode() not in second.data
    again_owner = client.post("/v1/triage", json=VALID_REQUEST, headers={**owner, **key})
    again_other = client.post("/v1/triage", json=other_body, headers={**other, **key})
    assert again_owner.data == first.data
    assert again_other.data == second.data
    changed = client.post("/v1/triage", json=other_body | {"notes": "x"}, headers={**owner, **key})
    assert changed.status_code == 422  # the owner's key with another body
    assert changed.get_json()["issue"][0]["expression"] == ["http.Idempotency-Key"]


def test_an_idempotency_key_is_the_clients_own_within_a_tenant():
    """Two clients of one tenant sending the same key each get their own assessment:
    a client never receives another client's stored Bundle (nor its report link)
    through a key, even with the identical body, and learns nothing of the other's
    key from a 409 or a 422."""
    app = create_app({"TESTING": True})
    clients = app.extensions[EXTENSION].clients
    reader = bearer(create_client(clients, tenant="clinic").api_key)
    writer = bearer(create_client(clients, tenant="clinic", scopes=("system/Bundle.c",)).api_key)
    key = {"Idempotency-Key": "visit-7"}
    client = anonymous(app)
    first = client.post("/v1/triage", json=VALID_REQUEST, headers={**reader, **key})
    second = client.post("/v1/triage", json=VALID_REQUEST, headers={**writer, **key})
    assert first.status_code == second.status_code == 200, second.get_data(as_text=True)
    assert second.get_json()["id"] != first.get_json()["id"]
    assert first.get_json()["id"].encode() not in second.data
    changed = client.post(
        "/v1/triage", json=VALID_REQUEST | {"notes": "x"}, headers={**writer, **key}
    )
    assert changed.status_code == 422  # its own key with another body, as for any client
    assert client.post("/v1/triage", json=VALID_REQUEST, headers={**reader, **key}).data == (
        first.data
    )
    assert client.post("/v1/triage", json=VALID_REQUEST, headers={**writer, **key}).data == (
        second.data
    )


class TwoTenants(RuleBasedStateMachine):
    """Two tenants create, read, search and delete; each sees only its own."""

    assessments = Bundle("assessments")

    def __init__(self) -> None:
        super().__init__()
        self.app = create_app({"TESTING": True})
        clients = self.app.extensions[EXTENSION].clients
        suffix = uuid.uuid4().hex[:8]  # tenants of earlier examples share the database
        created = {
            tenant: create_client(clients, tenant=f"{tenant}-{suffix}") for tenant in TENANTS
        }
        self.headers = {tenant: bearer(c.api_key) for tenant, c in created.items()}
        self.client_ids = {tenant: c.client_id for tenant, c in created.items()}
        self.client = anonymous(self.app)
        self.owner: dict[str, str] = {}
        self.live: set[str] = set()
        self.subjects: dict[str, str] = {}

    @rule(target=assessments, tenant=st.sampled_from(TENANTS))
    def create(self, tenant: str) -> str:
        subject = f"Patient/{uuid.uuid4().hex[:12]}"
        body = {**VALID_REQUEST, "patient": {"age_years": 30, "reference": subject}}
        response = self.client.post("/v1/triage", json=body, headers=self.headers[tenant])
        assert response.status_code == 200
        bundle_id = response.get_json()["id"]
        self.owner[bundle_id] = tenant
        self.live.add(bundle_id)
        self.subjects[bundle_id] = subject
        return bundle_id

    @rule(bundle_id=assessments, tenant=st.sampled_from(TENANTS))
    def read(self, bundle_id: str, tenant: str) -> None:
        response = self.client.get(f"/fhir/Bundle/{bundle_id}", headers=self.headers[tenant])
        visible = self.owner[bundle_id] == tenant and bundle_id in self.live
        assert response.status_code == (200 if visible else 404)

    @rule(bundle_id=assessments, tenant=st.sampled_from(TENANTS))
    def search(self, bundle_id: str, tenant: str) -> None:
        subject = self.subjects[bundle_id]
        response = self.client.get(
            f"/fhir/Observation?subject={subject}", headers=self.headers[tenant]
        )
        assert response.status_code == 200
        found = response.get_json().get("entry", [])
        visible = self.owner[bundle_id] == tenant and bundle_id in self.live
        assert bool(found) == visible
        for entry in found:
            assert entry["resource"]["subject"]["reference"] == subject

    @rule(bundle_id=assessments, tenant=st.sampled_from(TENANTS))
    def delete(self, bundle_id: str, tenant: str) -> None:
        response = self.client.delete(f"/fhir/Bundle/{bundle_id}", headers=self.headers[tenant])
        if self.owner[bundle_id] == tenant and bundle_id in self.live:
            assert response.status_code == 204
            self.live.discard(bundle_id)
        else:
            assert response.status_code == 404

    @invariant()
    def no_tenant_sees_the_others_audit(self) -> None:
        for tenant, headers in self.headers.items():
            page = self.client.get("/fhir/AuditEvent?_count=100", headers=headers).get_json()
            for entry in page.get("entry", []):
                assert agent_of(entry) == self.client_ids[tenant]


TwoTenants.TestCase.settings = settings(
    max_examples=15,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_two_tenants_never_see_each_other = TwoTenants.TestCase
