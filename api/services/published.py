"""Reading the published conformance resources (Questionnaire, CodeSystem, ...)."""

from __future__ import annotations

from api.fhir import FhirContext, Issue
from api.fhir.capability import CAPABILITY_ID, READABLE_TYPES
from api.services.errors import NotFoundError
from schemas import IssueType


def capability_statement(context: FhirContext, fhir_version: str) -> bytes:
    """The serialised CapabilityStatement (``GET /fhir/metadata``)."""
    return published_resource(context, "CapabilityStatement", CAPABILITY_ID, fhir_version)


def published_resource(
    context: FhirContext, resource_type: str, resource_id: str, fhir_version: str
) -> bytes:
    """The serialised resource in ``fhir_version``, or NotFoundError."""
    body = context.catalog.body(resource_type, resource_id, fhir_version)
    if body is None:
        message = f"no {resource_type} with id {resource_id[:64]!r}"
        raise NotFoundError([Issue(IssueType.NOT_FOUND, message)], message)
    return body


__all__ = ["READABLE_TYPES", "capability_statement", "published_resource"]
