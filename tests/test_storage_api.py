"""Every successful triage is stored, readable, audited and has its Provenance (issue 10).

Each test runs on a fresh SQLite file and on a fresh database of a real
PostgreSQL server (``storage_support``), through the Flask test client: what
is checked is what a client sees, and the rows behind it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import orjson
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from storage_support import app_on_each_backend  # noqa: F401 (the app fixture: both backends)

from api import create_app
from api.config import EXTENSION
from api.fhir.search import CLOSED_CODES
from api.storage import Store
from api.storage.repository import scoped_idempotency_key

REQUEST: dict[str, Any] = {
    "patient": {"age_years": 12, "reference": "Patient/p-1"},
    "twitching": {"body_sites": ["neck"], "timing": "after_exercise", "duration_days": 1},
    "symptoms": {"headache": True, "loss_of_balance": True},
    "history": {"head_impact": True, "falls_last_7_days": 3},
}


def store_of(app: Flask) -> Store:
    return app.extensions[EXTENSION].store


def triage(client: FlaskClient, body: Any = None, **headers: str) -> Any:
    response = client.post("/v1/triage", json=REQUEST if body is None else body, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def path_of(url: str) -> str:
    return url.removeprefix("http://localhost")


def test_triage_names_where_it_is_stored_and_reads_back_byte_identical(client):
    response = triage(client)
    bundle = response.get_json()
    assert bundle["meta"]["versionId"] == "1"
    assert bundle["meta"]["lastUpdated"] == bundle["timestamp"]
    location = response.headers["Location"]
    assert location == f"http://localhost/fhir/Bundle/{bundle['id']}"
    assert response.headers["Content-Location"] == location
    read = client.get(path_of(location))
    assert read.status_code == 200
    assert read.data == response.data
    assert read.headers["Content-Type"] == "application/fhir+json; fhirVersion=4.0"
    assert read.headers["ETag"] == 'W/"1"'
    assert read.headers["Last-Modified"].endswith(" GMT")  # an HTTP-date


def test_every_entry_has_the_id_of_its_full_url_and_reads_alone(client):
    bundle = triage(client).get_json()
    types = {e["fullUrl"]: e["resource"]["resourceType"] for e in bundle["entry"]}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"] == f"urn:uuid:{resource['id']}"
        assert resource["meta"] == bundle["meta"]
        read = client.get(f"/fhir/{resource['resourceType']}/{resource['id']}")
        assert read.status_code == 200
        alone = read.get_json()
        # Identical but for the Bundle-internal references, now Type/id on this server.
        text = json.dumps(resource)
        for full_url, resource_type in types.items():
            text = text.replace(f'"{full_url}"', f'"{resource_type}/{full_url[9:]}"')
        assert alone == json.loads(text)
        assert "urn:uuid:" not in read.get_data(as_text=True)


def test_references_of_a_read_observation_resolve_on_this_server(client):
    bundle = triage(client).get_json()
    level = bundle["entry"][1]["resource"]
    alone = client.get(f"/fhir/Observation/{level['id']}").get_json()
    for reference in [*alone["derivedFrom"], *alone["hasMember"]]:
        assert client.get(f"/fhir/{reference['reference']}").status_code == 200


def test_the_record_keeps_request_result_versions_times_and_request_id(app, client):
    response = triage(client, **{"X-Request-ID": "5b0c3a4e-9f7d-4d2a-8a51-0d6c2f1e7b11"})
    bundle = response.get_json()
    assert response.headers["X-Request-ID"] == "5b0c3a4e-9f7d-4d2a-8a51-0d6c2f1e7b11"
    row = store_of(app).assessment_columns(bundle["id"])
    assert row is not None
    assert row["request_id"] == "5b0c3a4e-9f7d-4d2a-8a51-0d6c2f1e7b11"
    assert orjson.loads(row["request_json"]) == REQUEST
    result = orjson.loads(row["result_json"])
    level = bundle["entry"][1]["resource"]["valueCodeableConcept"]["coding"][0]["code"]
    assert result["level"] == level
    assert "RF-CONCUSSION-SYMPTOMS" in result["rules"]
    assert row["knowledge_base_version"] == result["knowledge_base_version"]
    assert row["source"] == "v1"
    assert row["subject"] == "Patient/p-1"
    assert row["received_us"] // 1000 <= row["issued_us"] // 1000  # issued: ms precision
    assert bytes(row["bundle_json"]) == response.data
    assert row["client"] == app.config["TEST_CLIENT_ID"]  # the calling client (issue 11)
    assert row["tenant"] == "local"


def test_an_invalid_request_id_header_is_replaced(client):
    response = triage(client, **{"X-Request-ID": "not a uuid <script>"})
    assert len(response.headers["X-Request-ID"]) == 36
    assert "script" not in response.headers["X-Request-ID"]


def test_questionnaire_response_triage_is_stored_too(app, client):
    qr = client.get("/fhir/Questionnaire/twitch-triage-intake").get_json()
    version = qr["version"]
    body = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": f"{qr['url']}|{version}",
        "item": [
            {"linkId": "patient.age_years", "answer": [{"valueInteger": 30}]},
            {
                "linkId": "twitching.body_sites",
                "answer": [
                    {
                        "valueCoding": {
                            "system": "https://twitch-triage.org/fhir/CodeSystem/twitching-body-sites",
                            "code": "calf",
                        }
                    }
                ],
            },
        ],
    }
    response = client.post(
        "/fhir/QuestionnaireResponse/$triage",
        data=json.dumps(body),
        headers={"Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    bundle_id = response.get_json()["id"]
    assert client.get(f"/fhir/Bundle/{bundle_id}").data == response.data
    assert store_of(app).assessment_columns(bundle_id)["source"] == "fhir"


def test_a_transaction_bundle_is_stored_as_sent(client):
    response = client.post("/v1/triage?_bundle=transaction", json=REQUEST)
    assert response.status_code == 200
    bundle = response.get_json()
    assert bundle["type"] == "transaction"
    assert all(e["request"]["method"] == "POST" for e in bundle["entry"])
    assert client.get(f"/fhir/Bundle/{bundle['id']}").data == response.data
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert client.get(f"/fhir/{resource['resourceType']}/{resource['id']}").status_code == 200


def test_provenance_names_observations_answers_software_and_knowledge_base(client):
    bundle = triage(client).get_json()
    provenance = client.get(f"/fhir/Provenance/{bundle['id']}").get_json()
    observations = [
        f"Observation/{e['resource']['id']}"
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
    ]
    qr = bundle["entry"][0]["resource"]
    assert [t["reference"] for t in provenance["target"]] == observations
    assert provenance["entity"] == [
        {"role": "source", "what": {"reference": f"QuestionnaireResponse/{qr['id']}"}}
    ]
    kb_version = bundle["entry"][1]["resource"]["method"]["coding"][0]["version"]
    who = provenance["agent"][0]["who"]
    assert kb_version in who["display"]
    assert who["display"].startswith("twitch-triage ")
    assert provenance["recorded"] == bundle["timestamp"]


def test_unknown_ids_are_404_operation_outcomes(client):
    for path in (
        "/fhir/Bundle/nope",
        "/fhir/Observation/nope",
        "/fhir/QuestionnaireResponse/nope",
        "/fhir/Provenance/nope",
        "/fhir/AuditEvent/nope",
        "/fhir/Bundle/" + "x" * 80,
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["issue"][0]["code"] == "not-found"


def test_an_observation_id_is_not_a_questionnaire_response(client):
    bundle = triage(client).get_json()
    observation = bundle["entry"][1]["resource"]["id"]
    assert client.get(f"/fhir/QuestionnaireResponse/{observation}").status_code == 404


def test_read_honours_if_none_match(client):
    bundle_id = triage(client).get_json()["id"]
    response = client.get(f"/fhir/Bundle/{bundle_id}", headers={"If-None-Match": 'W/"1"'})
    assert response.status_code == 304
    assert response.data == b""


# --- audit ------------------------------------------------------------------------------


def audit_events(client: FlaskClient, query: str = "") -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    url = f"/fhir/AuditEvent?_count=100{query}"
    while url:
        page = client.get(url).get_json()
        events.extend(e["resource"] for e in page.get("entry", []))
        url = next((path_of(k["url"]) for k in page["link"] if k["relation"] == "next"), "")
    return events


def test_create_read_search_delete_and_failures_are_audited(client):
    response = triage(client)
    bundle_id = response.get_json()["id"]
    request_id = response.headers["X-Request-ID"]
    client.get(f"/fhir/Bundle/{bundle_id}")
    client.get("/fhir/Observation?subject=Patient/p-1")
    bad = client.post("/v1/triage", json={"patient": {}})
    assert bad.status_code == 422
    assert client.get("/fhir/Observation/absent").status_code == 404
    assert client.delete(f"/fhir/Bundle/{bundle_id}").status_code == 204
    events = audit_events(client)
    seen = {(e["subtype"][0]["code"], e["action"], e["outcome"]) for e in events}
    assert {
        ("create", "C", "0"),
        ("read", "R", "0"),
        ("search-type", "E", "0"),
        ("create", "C", "4"),
        ("read", "R", "4"),
        ("delete", "D", "0"),
    } <= seen
    create = next(e for e in events if e["subtype"][0]["code"] == "create" and e["outcome"] == "0")
    assert create["type"]["code"] == "rest"
    assert create["entity"][0]["what"]["reference"] == f"Bundle/{bundle_id}"
    assert create["entity"][-1]["what"]["identifier"]["value"] == f"urn:uuid:{request_id}"
    assert create["agent"][0]["requestor"] is True
    assert create["source"]["observer"]["display"] == "twitch-triage"
    # The deletion's AuditEvent (and the earlier ones) survive the deletion.
    entity = client.get(f"/fhir/AuditEvent?entity=Bundle/{bundle_id}&_count=100").get_json()
    assert {e["resource"]["subtype"][0]["code"] for e in entity["entry"]} >= {
        "create",
        "read",
        "delete",
    }


def test_search_audit_records_the_query_base64_not_in_a_description(client):
    client.get("/fhir/Observation?subject=Patient/p-1&_count=5")
    event = audit_events(client, "&subtype=search-type")[0]
    query = next(e for e in event["entity"] if "query" in e)
    assert base64.b64decode(query["query"]) == b"subject=Patient/p-1&_count=5"
    assert "p-1" not in json.dumps([e.get("description", "") for e in event["entity"]])


def test_no_phi_in_audit_events(client, caplog):
    private = "Zebra-Notes-7781 lives at 1 Main St"
    body = {**REQUEST, "notes": private}
    triage(client, body)
    client.post("/v1/triage", json={**body, "history": {"falls_last_7_days": -1}})
    events = audit_events(client)
    assert len(events) >= 2
    text = json.dumps(events)
    assert "Zebra" not in text
    assert "Main St" not in text
    assert "Zebra" not in caplog.text


def test_audit_events_are_read_by_id_and_searched_by_date_and_outcome(client):
    triage(client)
    client.post("/v1/triage", json={"patient": {}})
    failures = audit_events(client, "&outcome=4")
    assert failures
    assert all(e["outcome"] == "4" for e in failures)
    one = failures[0]
    assert client.get(f"/fhir/AuditEvent/{one['id']}").get_json() == one
    day = one["recorded"][:10]
    assert any(e["id"] == one["id"] for e in audit_events(client, f"&date={day}"))
    assert audit_events(client, "&date=lt2000-01-01") == []


# --- erasure and store nothing ----------------------------------------------------------


def test_delete_removes_the_assessment_and_every_resource(app, client):
    bundle = triage(client).get_json()
    other = triage(client).get_json()
    assert client.delete(f"/fhir/Bundle/{bundle['id']}").status_code == 204
    assert client.get(f"/fhir/Bundle/{bundle['id']}").status_code == 404
    assert client.get(f"/fhir/Provenance/{bundle['id']}").status_code == 404
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert client.get(f"/fhir/{resource['resourceType']}/{resource['id']}").status_code == 404
    assert client.delete(f"/fhir/Bundle/{bundle['id']}").status_code == 404
    # The other assessment is untouched, and no orphan rows remain.
    assert client.get(f"/fhir/Bundle/{other['id']}").status_code == 200
    counts = store_of(app).counts()
    assert counts["assessment"] == 1
    assert counts["resource"] == len(other["entry"])


def test_store_nothing_still_triages_and_keeps_no_assessment(database_url):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "STORE_ASSESSMENTS": "false"})
    client = app.test_client()
    response = triage(client)
    assert "Location" not in response.headers
    bundle = response.get_json()
    assert bundle["entry"][1]["resource"]["resourceType"] == "Observation"
    assert client.get(f"/fhir/Bundle/{bundle['id']}").status_code == 404
    assert (
        client.get(f"/fhir/Observation/{bundle['entry'][1]['resource']['id']}").status_code == 404
    )
    assert client.get("/fhir/Observation").get_json()["total"] == 0
    counts = store_of(app).counts()
    assert counts["assessment"] == counts["resource"] == counts["resource_code"] == 0
    assert counts["audit_event"] >= 1  # the AuditEvent holds no PHI and stays


# --- idempotency ------------------------------------------------------------------------


def test_a_retry_with_the_same_idempotency_key_returns_the_stored_response(app, client):
    first = triage(client, **{"Idempotency-Key": "order-42"})
    second = triage(client, **{"Idempotency-Key": "order-42"})
    assert second.data == first.data
    assert second.headers["Location"] == first.headers["Location"]
    assert store_of(app).counts()["assessment"] == 1


def test_the_key_is_stored_scoped_and_rows_stored_before_still_replay(app, client):
    """The column holds SHA-256 of tenant, client and key; a row stored with the
    tenant's digest or the bare key (before keys were scoped to the client) still
    answers its client's retry."""
    first = triage(client, **{"Idempotency-Key": "order-44"})
    bundle_id = first.get_json()["id"]
    engine = store_of(app).engine
    with engine.begin() as connection:
        stored, tenant, owner = connection.execute(
            text("SELECT idempotency_key, tenant, client FROM assessment WHERE id = :id"),
            {"id": bundle_id},
        ).one()
    assert owner is not None
    assert stored == scoped_idempotency_key(tenant, owner, "order-44")
    tenant_digest = hashlib.sha256(f"{tenant}\norder-44".encode()).hexdigest()
    for earlier in (f"sha256:{tenant_digest}", "order-44"):
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE assessment SET idempotency_key = :key WHERE id = :id"),
                {"key": earlier, "id": bundle_id},
            )
        again = triage(client, **{"Idempotency-Key": "order-44"})
        assert again.data == first.data, earlier
    assert store_of(app).counts()["assessment"] == 1


def test_the_same_key_with_another_body_is_422(client):
    triage(client, **{"Idempotency-Key": "order-43"})
    other = {**REQUEST, "patient": {"age_years": 13}}
    response = client.post("/v1/triage", json=other, headers={"Idempotency-Key": "order-43"})
    assert response.status_code == 422
    assert response.get_json()["issue"][0]["code"] == "business-rule"
    transaction = client.post(
        "/v1/triage?_bundle=transaction", json=REQUEST, headers={"Idempotency-Key": "order-43"}
    )
    assert transaction.status_code == 422


def test_a_malformed_idempotency_key_is_400(client):
    response = client.post("/v1/triage", json=REQUEST, headers={"Idempotency-Key": "a b"})
    assert response.status_code == 400


def test_without_a_key_every_post_is_a_new_assessment(app, client):
    assert triage(client).get_json()["id"] != triage(client).get_json()["id"]
    assert store_of(app).counts()["assessment"] == 2


# --- CapabilityStatement ----------------------------------------------------------------


def test_capability_statement_declares_what_the_store_serves(client):
    bundle = triage(client).get_json()
    statement = client.get("/fhir/metadata").get_json()
    by_type = {r["type"]: r for r in statement["rest"][0]["resource"]}
    samples = {"reference": "Patient/p-1", "token": "11283-9", "date": "ge2020-01-01"}
    ids = {
        "Bundle": bundle["id"],
        "Provenance": bundle["id"],
        "QuestionnaireResponse": bundle["entry"][0]["resource"]["id"],
        "Observation": bundle["entry"][1]["resource"]["id"],
    }
    checked = 0
    for resource_type, declared in by_type.items():
        codes = [i["code"] for i in declared.get("interaction", [])]
        if "search-type" in codes:
            for param in declared["searchParam"]:
                value = samples[param["type"]]
                if param["name"] == "entity":
                    value = f"Bundle/{bundle['id']}"
                if param["name"] in CLOSED_CODES:  # a code of its required value set
                    value = min(CLOSED_CODES[param["name"]])
                url = f"/fhir/{resource_type}?{param['name']}={value}"
                assert client.get(url).status_code == 200, url
                checked += 1
        if "read" in codes and resource_type in ids:
            assert client.get(f"/fhir/{resource_type}/{ids[resource_type]}").status_code == 200
            checked += 1
    assert "delete" in [i["code"] for i in by_type["Bundle"]["interaction"]]
    assert checked >= 14


def test_every_store_route_is_in_the_contract(app):
    from tools.openapi import build_spec  # noqa: PLC0415 (a development tool's import)

    spec = build_spec()
    routes: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("store."):
            path = rule.rule.replace("<fhir_id:resource_id>", "{id}")
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                if "<any(" in path:
                    names = path.split("<any(")[1].split(")")[0].split(", ")
                    tail = path.split(":resource_type>")[1]
                    routes |= {(method.lower(), f"/fhir/{n}{tail}") for n in names}
                else:
                    routes.add((method.lower(), path))
    documented = {
        (method, path)
        for path, operations in spec["paths"].items()
        for method in operations
        if path.split("/")[-1]
        in ("{id}", "Observation", "QuestionnaireResponse", "AuditEvent", "_search")
        and path.startswith("/fhir/")
        and not path.startswith(("/fhir/Questionnaire/", "/fhir/CodeSystem/", "/fhir/ValueSet/"))
        and not path.startswith("/fhir/OperationDefinition/")
    }
    assert routes == documented


def test_a_concurrent_duplicate_is_409_and_only_one_is_stored(tmp_path):
    """Two requests with one key, both past the replay check while a writer holds SQLite's
    lock: when it lets go one is stored, the other is told 409 (never a 500, never two)."""
    import sqlite3  # noqa: PLC0415
    import threading  # noqa: PLC0415
    import time  # noqa: PLC0415

    path = tmp_path / "dup.sqlite3"
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{path}"})
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock
    results: list[tuple[int, bytes]] = []

    def post() -> None:
        response = app.test_client().post(
            "/v1/triage", json=REQUEST, headers={"Idempotency-Key": "same-key"}
        )
        results.append((response.status_code, response.data))

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # both have found no stored response and wait for the lock
    blocker.execute("ROLLBACK")
    blocker.close()
    for thread in threads:
        thread.join(30)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 409]
    conflict = next(json.loads(body) for status, body in results if status == 409)
    assert conflict["issue"][0]["code"] == "conflict"
    assert store_of(app).counts()["assessment"] == 1
    # The retry after the conflict gets the stored response.
    stored = next(body for status, body in results if status == 200)
    assert triage(app.test_client(), **{"Idempotency-Key": "same-key"}).data == stored


def test_audit_events_are_r4_only_other_stored_resources_follow_negotiation(client):
    bundle_id = triage(client).get_json()["id"]
    r5 = {"Accept": "application/fhir+json; fhirVersion=5.0"}
    read = client.get(f"/fhir/Bundle/{bundle_id}", headers=r5)
    assert read.status_code == 200
    assert read.headers["Content-Type"] == "application/fhir+json; fhirVersion=5.0"
    refused = client.get("/fhir/AuditEvent", headers=r5)
    assert refused.status_code == 406
    assert refused.get_json()["issue"][0]["code"] == "not-supported"
