"""Every AuditEvent, Provenance, searchset Bundle and stored read validates (medplum, R4).

The same independent validator as ``test_fhir_validator.py`` (its ``medplum``
fixture: @medplum/core with the R4 definitions, skipped locally without Node,
failing in CI), plus the required-binding check of ``fhir_validator``.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
from cds_support import Ehr, LoopbackServer, call, hook_request, register
from conftest import anonymous
from fhir_validator.r4_bindings import binding_problems
from test_fhir_validator import EXPECTED_WARNING, medplum  # noqa: F401 (the shared fixture)

from api import create_app
from api.cli import purge
from api.storage.documents import unpack

#: A moment a year from now: every stored assessment is older than a day then.
NEXT_YEAR = (int(time.time()) + 365 * 86_400) * 1_000_000

REQUEST = {
    "patient": {"age_years": 12, "reference": "Patient/p-9"},
    "twitching": {"body_sites": ["neck"], "timing": "after_exercise", "duration_days": 1},
    "symptoms": {"headache": True, "loss_of_balance": True},
    "history": {"head_impact": True, "falls_last_7_days": 3},
}


@pytest.fixture(scope="module")
def stored_resources(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """label → resource: what the store's endpoints answer after a little traffic."""
    folder = tmp_path_factory.mktemp("validate")
    client = create_app(
        {"TESTING": True, "DATABASE_URL": f"sqlite:///{folder}/v.sqlite3"}
    ).test_client()
    out: dict[str, dict[str, Any]] = {}
    created = client.post("/v1/triage", json=REQUEST, headers={"Idempotency-Key": "k-1"})
    bundle = created.get_json()
    client.post("/v1/triage?_bundle=transaction", json=REQUEST)
    out["idempotency-422"] = client.post(
        "/v1/triage", json={**REQUEST, "notes": "x"}, headers={"Idempotency-Key": "k-1"}
    ).get_json()
    out["bundle-read"] = client.get(f"/fhir/Bundle/{bundle['id']}").get_json()
    for entry in bundle["entry"]:
        resource = entry["resource"]
        out[f"read/{resource['resourceType']}/{resource['id'][:8]}"] = client.get(
            f"/fhir/{resource['resourceType']}/{resource['id']}"
        ).get_json()
    out["provenance"] = client.get(f"/fhir/Provenance/{bundle['id']}").get_json()
    out["search/Observation"] = client.get("/fhir/Observation?subject=Patient/p-9").get_json()
    out["search/Observation-paged"] = client.get("/fhir/Observation?_count=1").get_json()
    out["search/QuestionnaireResponse"] = client.get("/fhir/QuestionnaireResponse").get_json()
    out["search/empty"] = client.get("/fhir/Observation?subject=Patient/none").get_json()
    out["search-400"] = client.get("/fhir/Observation?bogus=1").get_json()
    client.post("/v1/triage", json={"patient": {}})
    client.get("/fhir/Bundle/absent")
    out.update(_newer_audit_kinds(client, json.dumps(bundle["entry"][0]["resource"])))
    client.delete(f"/fhir/Bundle/{bundle['id']}")
    audits = client.get("/fhir/AuditEvent?_count=100").get_json()
    out["search/AuditEvent"] = audits
    for entry in audits["entry"]:
        event = entry["resource"]
        kind = f"{event['subtype'][0]['code']}-{event['outcome']}"
        out.setdefault(f"audit/{kind}", event)
    # A retention purge (operators' AuditEvent, no tenant: read from the store itself).
    url = f"sqlite:///{folder}/v.sqlite3"
    purge(
        {"TWITCH_TRIAGE_DATABASE_URL": url, "TWITCH_TRIAGE_RETENTION_DAYS": "1"}, now_us=NEXT_YEAR
    )
    with sqlite3.connect(folder / "v.sqlite3") as connection:
        (body,) = connection.execute(
            "SELECT body FROM audit_event WHERE tenant IS NULL AND subtype = 'delete'"
        ).fetchone()
    out["audit/purge"] = json.loads(unpack(body))
    return out


def _first_event(client: Any, query: str) -> dict[str, Any]:
    found = client.get(f"/fhir/AuditEvent?{query}").get_json()
    return found["entry"][0]["resource"]


def _newer_audit_kinds(client: Any, qr_json: str) -> dict[str, dict[str, Any]]:
    """The AuditEvents of refusals no route matched, an intake link's browser and a CDS
    Hooks call (its search on the EHR's FHIR server and the patient named)."""
    out: dict[str, dict[str, Any]] = {}
    client.put("/v1/triage", json={})
    out["audit/update-4"] = _first_event(client, "subtype=update")
    client.get("/fhir/Patient/p-9")
    out["audit/read-4-patient"] = _first_event(client, "entity=Patient/p-9&subtype=read")
    created = client.post("/v1/intake-links", json={"patient": {"reference": "Patient/p-9"}})
    link = created.get_json()
    parts = urlsplit(link["url"])
    browser = anonymous(client.application)
    browser.get(f"{parts.path}?{parts.query}")
    out["audit/intake-view"] = _first_event(client, f"entity=Task/{link['id']}&subtype=read")
    qr = json.loads(qr_json)
    for key in ("id", "meta", "subject"):
        qr.pop(key, None)
    submitted = browser.post(
        f"{parts.path}?{parts.query}", data=json.dumps(qr), content_type="application/fhir+json"
    )
    bundle_id = urlsplit(submitted.headers["Location"]).path.rsplit("/", 1)[1]
    out["audit/intake-create"] = _first_event(client, f"entity=Bundle/{bundle_id}&subtype=create")
    ehr = Ehr(f"https://ehr-{uuid.uuid4().hex[:8]}.example/fhir")
    empty = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    with LoopbackServer({"/fhir/QuestionnaireResponse": (200, {}, empty)}) as fhir:
        register(client.application, ehr, "local", fhir_servers=(fhir.url + "/fhir",))
        authorization = {"access_token": "t", "token_type": "Bearer", "expires_in": 60}
        body = hook_request(
            "p-9", prefetch=False, fhirServer=fhir.url + "/fhir", fhirAuthorization=authorization
        )
        assert call(client, ehr, body).status_code == 200
    out["audit/cds-operation"] = _first_event(client, "entity=Patient/p-9&subtype=operation")
    return out


def test_every_kind_of_resource_was_collected(stored_resources):
    audits = {label for label in stored_resources if label.startswith("audit/")}
    assert audits >= {
        "audit/create-0",
        "audit/create-4",
        "audit/read-0",
        "audit/read-4",
        "audit/search-type-0",
        "audit/search-type-4",
        "audit/delete-0",
        "audit/update-4",
        "audit/read-4-patient",
        "audit/intake-view",
        "audit/intake-create",
        "audit/cds-operation",
    }
    types = {r["resourceType"] for r in stored_resources.values()}
    assert types == {
        "AuditEvent",
        "Bundle",
        "Observation",
        "OperationOutcome",
        "Provenance",
        "QuestionnaireResponse",
    }


def test_medplum_finds_no_error_and_only_the_expected_warning(medplum, stored_resources):  # noqa: F811 (pytest fixture)
    results = medplum(list(stored_resources.items()))
    problems = {}
    for label, result in results.items():
        issues = [
            f"{', '.join(i.get('expression', []))}: {i.get('details', {}).get('text')}"
            for i in [*result["errors"], *result["warnings"]]
        ]
        issues = [text for text in issues if EXPECTED_WARNING not in text]
        if issues:
            problems[label] = issues
    assert problems == {}


def test_required_bindings_hold(stored_resources):
    problems = {label: binding_problems(r) for label, r in stored_resources.items()}
    assert {label: found for label, found in problems.items() if found} == {}


def test_searchset_links_are_absolute_and_entries_are_matches(stored_resources):
    page = stored_resources["search/Observation-paged"]
    relations = {link["relation"] for link in page["link"]}
    assert relations == {"self", "next"}
    assert all(link["url"].startswith("http://localhost/fhir/") for link in page["link"])
    assert json.dumps(page).count('"mode": "match"') == len(page["entry"]) == 1
