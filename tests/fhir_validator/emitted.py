"""Every FHIR resource the API emits for the shared examples, collected over HTTP.

Labels are stable (they name tests): ``bundle/<example>/<collection|transaction>``,
``triage-op/<example>`` (the same answers through ``$triage``),
``published/<type>/<id>`` and ``outcome/<status>-<case>``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from unittest import mock

from flask.testing import FlaskClient

from api.fhir.catalog import catalog
from api.fhir.codesystems import DEFAULT_CANONICAL_BASE

Resource = dict[str, Any]
FHIR = "application/fhir+json"

#: Requests that end in an OperationOutcome: (label, method, path, kwargs for the client).
ERROR_REQUESTS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    (
        "400-malformed-json",
        "POST",
        "/v1/triage",
        {"data": b"{", "content_type": "application/json"},
    ),
    ("400-bundle-parameter", "POST", "/v1/triage?_bundle=searchset", {"json": {}}),
    ("404-unknown-path", "GET", "/nowhere", {}),
    ("404-unknown-codesystem", "GET", "/fhir/CodeSystem/nowhere", {}),
    ("405-wrong-method", "DELETE", "/v1/triage", {}),
    (
        "406-fhir-version",
        "GET",
        "/fhir/metadata",
        {"headers": {"Accept": f"{FHIR}; fhirVersion=3.0"}},
    ),
    (
        "413-too-large",
        "POST",
        "/v1/triage",
        {"data": b" " * 70000, "content_type": "application/json"},
    ),
    ("415-media-type", "POST", "/v1/triage", {"data": b"{}", "content_type": "text/plain"}),
    (
        "422-request",
        "POST",
        "/v1/triage",
        {"json": {"patient": {"age_years": 500}, "twitching": {"body_sites": ["tail"]}, "x": 1}},
    ),
    (
        "422-questionnaire-response",
        "POST",
        "/fhir/QuestionnaireResponse/$triage",
        {"data": json.dumps({"resourceType": "Patient"}), "content_type": FHIR},
    ),
)


def published(base: str = DEFAULT_CANONICAL_BASE) -> list[tuple[str, str]]:
    """(type, id) of every published conformance resource."""
    return list(catalog(base).resources["4.0"])


def _get(client: FlaskClient, path: str) -> Resource:
    response = client.get(path)
    assert response.status_code == 200, (path, response.data[:300])
    return json.loads(response.data)


def collect(client: FlaskClient, examples: list[tuple[str, dict[str, Any]]]) -> dict[str, Resource]:
    """Label → resource, for every top-level resource the API emits for the examples."""
    out: dict[str, Resource] = {}
    for name, case in examples:
        for bundle_type in ("collection", "transaction"):
            response = client.post(f"/v1/triage?_bundle={bundle_type}", json=case["request"])
            assert response.status_code == 200, (name, response.data[:300])
            bundle = json.loads(response.data)
            out[f"bundle/{name}/{bundle_type}"] = bundle
        qr = out[f"bundle/{name}/collection"]["entry"][0]["resource"]
        response = client.post(
            "/fhir/QuestionnaireResponse/$triage", data=json.dumps(qr), content_type=FHIR
        )
        assert response.status_code == 200, (name, response.data[:300])
        out[f"triage-op/{name}"] = json.loads(response.data)
    out["published/CapabilityStatement/metadata"] = _get(client, "/fhir/metadata")
    for resource_type, resource_id in published():
        if resource_type != "CapabilityStatement":
            out[f"published/{resource_type}/{resource_id}"] = _get(
                client, f"/fhir/{resource_type}/{resource_id}"
            )
    out.update(_stored(client, out[f"bundle/{examples[0][0]}/collection"]))
    for label, method, path, kwargs in ERROR_REQUESTS:
        response = client.open(path, method=method, **kwargs)
        assert response.status_code == int(label[:3]), (label, response.data[:300])
        out[f"outcome/{label}"] = json.loads(response.data)
    with mock.patch("api.services.triage.evaluate", side_effect=RuntimeError("boom")):
        response = client.post("/v1/triage", json=examples[0][1]["request"])
    assert response.status_code == 500
    out["outcome/500-internal"] = json.loads(response.data)
    return out


#: Labels of :func:`_stored`: reads of a stored triage, then searches (the AuditEvent
#: search last, so that it returns the AuditEvents of the reads and searches before it).
STORED_LABELS = (
    "stored/Bundle",
    "stored/QuestionnaireResponse",
    "stored/Observation",
    "stored/Provenance",
    "stored/AuditEvent",
    "search/Observation",
    "search/QuestionnaireResponse",
    "search/AuditEvent",
)


def _stored(client: FlaskClient, bundle: Resource) -> dict[str, Resource]:
    """What reading a stored triage back emits: its Bundle, its entries one by one, the
    Provenance and AuditEvents written with it, and searchsets (AuditEvents of a create,
    reads and searches included)."""
    out = {"stored/Bundle": _get(client, f"/fhir/Bundle/{bundle['id']}")}
    entries = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
    for resource_type in ("QuestionnaireResponse", "Observation"):
        resource_id = entries[resource_type]["id"]
        out[f"stored/{resource_type}"] = _get(client, f"/fhir/{resource_type}/{resource_id}")
    out["stored/Provenance"] = _get(client, f"/fhir/Provenance/{bundle['id']}")  # same id
    newest = _get(client, "/fhir/AuditEvent?_count=1")["entry"][0]["resource"]["id"]
    out["stored/AuditEvent"] = _get(client, f"/fhir/AuditEvent/{newest}")
    out["search/Observation"] = _get(client, "/fhir/Observation?_count=5")
    out["search/QuestionnaireResponse"] = _get(client, "/fhir/QuestionnaireResponse?_count=2")
    out["search/AuditEvent"] = _get(client, "/fhir/AuditEvent?_count=50")
    return out


def with_entries(resources: dict[str, Resource]) -> Iterator[tuple[str, Resource]]:
    """Each resource, then (for Bundles) each entry resource on its own."""
    for label, resource in resources.items():
        yield label, resource
        for index, entry in enumerate(resource.get("entry", [])):
            yield f"{label}/entry[{index}]", entry["resource"]


def labels(example_names: list[str]) -> list[str]:
    """The labels :func:`collect` returns, known before any request is made."""
    out = []
    for name in example_names:
        out += [f"bundle/{name}/collection", f"bundle/{name}/transaction", f"triage-op/{name}"]
    out.append("published/CapabilityStatement/metadata")
    out += [f"published/{t}/{i}" for t, i in published() if t != "CapabilityStatement"]
    out += STORED_LABELS
    out += [f"outcome/{label}" for label, *_ in ERROR_REQUESTS]
    out.append("outcome/500-internal")
    return out
