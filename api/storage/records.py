"""From one triage to what is stored: identities, the record, its Provenance and audits.

Pure functions (no Flask, no database) so the service layer can call them
wherever a triage completes: :func:`identify` gives the Bundle and each entry
an ``id`` and ``meta`` (the entry's id is the uuid of its ``urn:uuid``
fullUrl, so references inside the Bundle keep working);
:func:`assessment_record` builds the row with its search index and Provenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from api.fhir.audit import INTERACTIONS, AuditFacts, build_audit_event, outcome_for_status
from api.fhir.frozen import FrozenDict
from api.fhir.ids import time_ordered_id
from api.fhir.provenance import build_provenance
from api.fhir.search import instant_us
from api.storage.repository import (
    AssessmentRecord,
    AuditRow,
    ResourceIndex,
    scoped_idempotency_key,
)
from triage.result import Level, TriageResult

URN_UUID = "urn:uuid:"


def identify(bundle: Mapping[str, Any], issued: str) -> dict[str, Any]:
    """The Bundle with ``meta`` and every entry resource with ``id`` and ``meta``.

    Builds new dicts (the rendered Bundle shares static fragments); key order
    puts ``resourceType``, ``id`` and ``meta`` first as FHIR JSON usually does.
    """
    meta = {"versionId": "1", "lastUpdated": issued}
    entries = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        identified = {
            "resourceType": resource["resourceType"],
            "id": entry["fullUrl"].removeprefix(URN_UUID),
            "meta": meta,
        }
        identified.update(resource)
        entries.append({**entry, "resource": identified})
    return {
        "resourceType": "Bundle",
        "id": bundle["id"],
        "meta": meta,
        **{k: v for k, v in bundle.items() if k not in ("resourceType", "id", "meta", "entry")},
        "entry": entries,
    }


#: Level → its public code (``Level.code`` derives it from the name on every call).
_LEVEL_CODES = {level: level.code for level in Level}


def result_summary(result: TriageResult) -> bytes:
    """The engine's answer in short; the Bundle holds every detail."""
    return orjson.dumps(
        {
            "level": _LEVEL_CODES[result.level],
            "rules": [rule.rule_id for rule in result.rules],
            "factors": [[f.code, f.points, f.likelihood.value] for f in result.factors],
            "advice": [advice.code for advice in result.advice],
            "unanswered": result.unanswered,  # a tuple: a JSON array like a list
            "knowledge_base_version": result.knowledge_base_version,
        }
    )


@dataclass(frozen=True, slots=True)
class TriageFacts:
    """What the service knows about one successful triage besides its Bundle."""

    request: Mapping[str, Any]
    result: TriageResult
    source: str
    request_id: str
    received_us: int
    fhir_version: str
    software_version: str
    canonical_base: str
    idempotency_key: str | None = None
    request_digest: str | None = None


#: Search codes of the shared (frozen, hence unchanging) ``Observation.code`` fragments,
#: by identity; each entry keeps its fragment alive, so no other object takes its id.
_FRAGMENT_CODES: dict[int, tuple[Any, tuple[tuple[str, str], ...]]] = {}
_FRAGMENT_CODES_MAX = 4096


def _search_codes(concept: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """(system, code) of every coding of an ``Observation.code`` that has a code.

    Most concepts are the renderer's shared fragments (the level's, one per rule and
    factor), so their codes are read once; any other concept is read every time.
    """
    if type(concept) is FrozenDict:
        hit = _FRAGMENT_CODES.get(id(concept))
        if hit is not None and hit[0] is concept:
            return hit[1]
    codes = tuple(
        (coding.get("system", ""), coding["code"])
        for coding in concept.get("coding", ())
        if "code" in coding
    )
    if type(concept) is FrozenDict:
        if len(_FRAGMENT_CODES) >= _FRAGMENT_CODES_MAX:
            _FRAGMENT_CODES.clear()
        _FRAGMENT_CODES[id(concept)] = (concept, codes)
    return codes


def assessment_record(
    facts: TriageFacts,
    bundle: Mapping[str, Any],
    body: bytes,
    *,
    tenant: str | None = None,
    client: str | None = None,
) -> AssessmentRecord:
    """The row to store for an identified Bundle ``bundle`` sent as ``body``.

    ``tenant`` and ``client`` are the authenticated caller's (None: no credential).
    """
    issued = bundle["meta"]["lastUpdated"]
    issued_us = instant_us(issued)
    patient = facts.request.get("patient") or {}
    subject = patient.get("reference") or None
    resources = []
    observations = []
    questionnaire_response = ""
    for position, entry in enumerate(bundle["entry"]):
        resource = entry["resource"]
        resource_type = resource["resourceType"]
        resource_id = resource["id"]
        codes: tuple[tuple[str, str], ...] = ()
        if resource_type == "Observation":
            observations.append(resource_id)
            codes = _search_codes(resource["code"])
        else:
            questionnaire_response = resource_id
        # Positional (id, resource_type, position, subject, date_us, codes): one per entry.
        resources.append(
            ResourceIndex(resource_id, resource_type, position, subject, issued_us, codes)
        )
    version = facts.result.knowledge_base_version
    provenance = build_provenance(
        bundle_id=bundle["id"],
        recorded=issued,
        observation_ids=observations,
        questionnaire_response_id=questionnaire_response,
        software_version=facts.software_version,
        knowledge_base_version=version,
        canonical_base=facts.canonical_base,
    )
    return AssessmentRecord(
        id=bundle["id"],
        received_us=facts.received_us,
        issued_us=issued_us,
        source=facts.source,
        request_id=facts.request_id,
        knowledge_base_version=version,
        software_version=facts.software_version,
        fhir_version=facts.fhir_version,
        subject=subject,
        request_json=orjson.dumps(facts.request),
        result_json=result_summary(facts.result),
        bundle_json=body,
        provenance_json=orjson.dumps(provenance),
        resources=tuple(resources),
        idempotency_key=None
        if facts.idempotency_key is None
        else scoped_idempotency_key(tenant, client, facts.idempotency_key),
        request_digest=facts.request_digest,
        client=client,
        tenant=tenant,
    )


def audit_row(facts: AuditFacts) -> AuditRow:
    """The AuditEvent of ``facts`` with its search columns."""
    body = build_audit_event(facts)
    entity_type, entity_id = facts.entity if facts.entity is not None else (None, None)
    return AuditRow(
        id=facts.id,
        recorded_us=instant_us(facts.recorded),
        subtype=facts.interaction,
        action=INTERACTIONS[facts.interaction][1],
        outcome=outcome_for_status(facts.status),
        entity_type=entity_type,
        entity_id=entity_id,
        request_id=facts.request_id,
        body=orjson.dumps(body),
        tenant=facts.tenant,
    )


def new_id() -> str:
    """A stored row's id, time-ordered (see :mod:`api.fhir.ids`)."""
    return time_ordered_id()
