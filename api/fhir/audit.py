"""AuditEvent in the style of IHE Basic Audit Log Patterns (BALP), FHIR R4.

One AuditEvent per RESTful interaction on patient data (create, read, search,
delete, a CDS Hooks call as ``operation``) and per failed attempt: type ``rest``,
subtype the interaction, action, recorded, outcome, the requesting agent (the API
client or EHR; a browser holding a signed link, with the client that issued the link
as a further agent), this service as the second agent and the source, and as entities
what was touched (a patient as a Person in the role Patient) and the request id.

No PHI: descriptions are fixed texts and HTTP status codes; the client is its
network address; what was touched is named by reference (``Bundle/<uuid>``),
and a search is recorded as its query, base64 in ``entity.query`` as BALP
prescribes, never in a description. Pure: no Flask, no database.
"""

from __future__ import annotations

import base64
import functools
import uuid
from dataclasses import dataclass
from typing import Any

from api.fhir._tables import esc, narrative
from api.fhir.frozen import freeze
from api.fhir.ids import CANONICAL_UUID

AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
#: Identifier system of the API clients (the ``client_id`` the CLI prints).
CLIENT_ID_SYSTEM = "https://twitch-triage.org/fhir/sid/client-id"
#: Identifier system of the request ids this service assigns or accepts.
REQUEST_ID_SYSTEM = "urn:ietf:rfc:3986"

#: restful-interaction code → (display, AuditEvent.action).
INTERACTIONS: dict[str, tuple[str, str]] = {
    "create": ("create", "C"),
    "read": ("read", "R"),
    "search-type": ("search-type", "E"),  # R4 displays these codes as they are
    "delete": ("delete", "D"),
    "operation": ("operation", "E"),
    # Only ever refused here (no route updates anything), but audited as attempted.
    "update": ("update", "U"),
    "patch": ("patch", "U"),
}

#: R4 AuditEventOutcome codes.
SUCCESS = "0"
MINOR_FAILURE = "4"
SERIOUS_FAILURE = "8"


def outcome_for_status(status: int) -> str:
    """0 for a success, 4 for a refused request (4xx), 8 for a server failure (5xx)."""
    if status < 400:
        return SUCCESS
    return MINOR_FAILURE if status < 500 else SERIOUS_FAILURE


@dataclass(frozen=True, slots=True)
class AuditFacts:
    """What one AuditEvent records; every field is free of PHI by construction."""

    id: str
    recorded: str
    interaction: str
    status: int
    request_id: str
    client_address: str | None
    software_version: str
    #: ``(resource type, id)`` of what was touched, when one resource was.
    entity: tuple[str, str] | None = None
    #: The query string of a search (recorded base64 in ``entity.query``).
    query: bytes | None = None
    #: The resource type searched (search-type) or operated on.
    resource_type: str | None = None
    #: The authenticated client (the requesting agent) and its tenant, when known.
    client_id: str | None = None
    tenant: str | None = None
    #: A requesting agent that is no API client (a signed report link), by its display.
    agent: str | None = None
    #: The API client that issued the link the requesting browser holds: a second agent,
    #: not the requestor (the partner answers for the link, the browser acted).
    issued_by: str | None = None
    #: Further resources the interaction touched, by reference (``Task/<link id>``, the
    #: assessment a CDS call stored, an intake read from the EHR's server by absolute URL).
    related: tuple[str, ...] = ()
    #: What ``query`` searched, when not this server's ``resource_type`` (the EHR's server).
    query_description: str | None = None


# The parts of every AuditEvent that never change: built once, frozen, shared (an
# AuditEvent is serialised right after it is built; a shared part cannot be edited).
_EVENT_TYPE = freeze({"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"})
_SUBTYPES = {
    code: freeze([{"system": RESTFUL_INTERACTION, "code": code, "display": display}])
    for code, (display, _) in INTERACTIONS.items()
}
_CLIENT_TYPE = freeze(
    {"coding": [{"system": DICOM, "code": "110153", "display": "Source Role ID"}]}
)
_UNIDENTIFIED_CLIENT = freeze({"display": "API client"})
_SERVER_TYPE = freeze(
    {"coding": [{"system": DICOM, "code": "110152", "display": "Destination Role ID"}]}
)
_SOURCE = freeze(
    {
        "observer": {"display": "twitch-triage"},
        "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
    }
)
_SYSTEM_OBJECT = freeze({"system": ENTITY_TYPE, "code": "2", "display": "System Object"})
_PERSON = freeze({"system": ENTITY_TYPE, "code": "1", "display": "Person"})
_PATIENT = freeze({"system": OBJECT_ROLE, "code": "1", "display": "Patient"})
_DOMAIN_RESOURCE = freeze({"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"})
_QUERY = freeze({"system": OBJECT_ROLE, "code": "24", "display": "Query"})


@functools.lru_cache(maxsize=8)
def _server(software_version: str) -> dict[str, Any]:
    """The second agent, this service (one software version per process)."""
    return freeze(
        {
            "type": _SERVER_TYPE,
            "who": {"display": f"twitch-triage {software_version}"},
            "requestor": False,
        }
    )


def build_audit_event(facts: AuditFacts) -> dict[str, Any]:
    """The R4 AuditEvent for ``facts`` (BALP: rest / interaction / outcome / agents)."""
    action = INTERACTIONS[facts.interaction][1]
    outcome = outcome_for_status(facts.status)
    if facts.client_id is not None:
        who: dict[str, Any] = {
            "identifier": {"system": CLIENT_ID_SYSTEM, "value": facts.client_id},
            "display": f"API client {facts.client_id} of tenant {facts.tenant}",
        }
    elif facts.agent is not None:
        who = {"display": facts.agent}
    else:
        who = _UNIDENTIFIED_CLIENT
    client: dict[str, Any] = {"type": _CLIENT_TYPE, "who": who, "requestor": True}
    if facts.client_address:
        client["network"] = {"address": facts.client_address[:64], "type": "2"}
    entities: list[dict[str, Any]] = []
    if facts.entity is not None:
        resource_type, resource_id = facts.entity
        entities.append(_entity(f"{resource_type}/{resource_id}"))
    entities.extend(_entity(reference) for reference in facts.related)
    if facts.query is not None:
        entities.append(
            {
                "type": _SYSTEM_OBJECT,
                "role": _QUERY,
                "description": facts.query_description
                or f"search of {facts.resource_type or 'resources'}",
                "query": base64.b64encode(facts.query).decode("ascii"),
            }
        )
    entities.append(
        {
            "what": {
                "identifier": {
                    "system": REQUEST_ID_SYSTEM,
                    "value": _request_id_value(facts.request_id),
                }
            },
            "type": _SYSTEM_OBJECT,
            "description": "request id",
        }
    )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": facts.id,
        "meta": {"versionId": "1", "lastUpdated": facts.recorded},
        "text": _narrative(facts, who["display"], outcome),
        "type": _EVENT_TYPE,
        "subtype": _SUBTYPES[facts.interaction],
        "action": action,
        "recorded": facts.recorded,
        "outcome": outcome,
        "agent": [client, _server(facts.software_version)],
        "source": _SOURCE,
        "entity": entities,
    }
    if facts.issued_by is not None:
        event["agent"] = [client, event["agent"][1], _issuer(facts.issued_by, facts.tenant)]
    if outcome != SUCCESS:
        event["outcomeDesc"] = f"HTTP {facts.status}"
    return event


def _entity(reference: str) -> dict[str, Any]:
    """An entity named by reference: a patient as a Person in the role Patient (BALP's
    patient entity), anything else a System Object in the role Domain Resource."""
    if reference.startswith("Patient/"):
        return {"what": {"reference": reference}, "type": _PERSON, "role": _PATIENT}
    return {"what": {"reference": reference}, "type": _SYSTEM_OBJECT, "role": _DOMAIN_RESOURCE}


def _issuer(client_id: str, tenant: str | None) -> dict[str, Any]:
    """The API client that issued a signed link: an agent, never the requestor. No
    ``type``: it neither sent this request (Source Role ID) nor received it."""
    return {
        "who": {
            "identifier": {"system": CLIENT_ID_SYSTEM, "value": client_id},
            "display": f"API client {client_id} of tenant {tenant}, which issued the link",
        },
        "requestor": False,
    }


_OUTCOME_WORDS = {SUCCESS: "success", MINOR_FAILURE: "refused", SERIOUS_FAILURE: "failed"}


def _narrative(facts: AuditFacts, agent: str, outcome: str) -> dict[str, str]:
    """One sentence a reviewer reads: which interaction, on what, by whom, how it ended.

    Only what the structured elements hold (a search's query stays base64 in
    ``entity.query``, never in text; a patient's id is not written out either); the
    agent's display is escaped.
    """
    what = ""
    if facts.entity is not None and facts.entity[0] != "Patient":
        what = f" of {facts.entity[0]}/{facts.entity[1]}"
    elif facts.entity is None and facts.query is not None:
        what = f" of {facts.resource_type or 'resources'}"
    return narrative(
        f"<p>{facts.interaction}{esc(what)} by {esc(agent)}: HTTP {facts.status} "
        f"({_OUTCOME_WORDS[outcome]}), recorded {facts.recorded}.</p>"
    )


def _request_id_value(request_id: str) -> str:
    """A UUID request id as ``urn:uuid:``; a caller's own id (``X-Request-Id``) as sent."""
    if CANONICAL_UUID.fullmatch(request_id):  # the ids this service assigns: no parsing
        return f"urn:uuid:{request_id}"
    try:
        return f"urn:uuid:{uuid.UUID(request_id)}"
    except ValueError:
        return request_id
