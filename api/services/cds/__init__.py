"""CDS Hooks 2.0 (issue 13): discovery, the ``patient-view`` service, feedback.

``request`` checks the bodies, ``cards`` builds the discovery document and the
card, ``markdown`` escapes request text for a card's detail, ``servers`` spells the
FHIR servers an EHR may name (only registered ones are read), ``fetch`` reads from
an EHR's FHIR server, ``searchset`` reads the intake out of a prefetch or search
answer (strictly), ``service`` holds the use cases. No Flask.
"""

from api.services.cds.cards import SERVICE_ID, discovery_document
from api.services.cds.fetch import FetchError, get_json
from api.services.cds.searchset import SearchAnswer, read_search_answer
from api.services.cds.service import (
    CdsAnswer,
    CdsContext,
    CdsTrail,
    audit_service_call,
    call_service,
    fetch_from_ehr,
    record_feedback,
)

__all__ = [
    "SERVICE_ID",
    "CdsAnswer",
    "CdsContext",
    "CdsTrail",
    "FetchError",
    "SearchAnswer",
    "audit_service_call",
    "call_service",
    "discovery_document",
    "fetch_from_ehr",
    "get_json",
    "read_search_answer",
    "record_feedback",
]
