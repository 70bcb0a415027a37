"""The FHIR IssueType codes of the whole product, in one enum.

Request validation (422), the HTTP error table and the FHIR ``$triage`` reader
all name their issues with these members, so a code the OpenAPI contract lists
is a code some part of the product can emit, and vice versa.
"""

from __future__ import annotations

import enum


class IssueType(enum.StrEnum):
    """The FHIR R4 IssueType codes this product uses (http://hl7.org/fhir/issue-type)."""

    STRUCTURE = "structure"
    REQUIRED = "required"
    VALUE = "value"
    CODE_INVALID = "code-invalid"
    INVALID = "invalid"
    TOO_COSTLY = "too-costly"
    NOT_SUPPORTED = "not-supported"
    NOT_FOUND = "not-found"
    PROCESSING = "processing"
    EXCEPTION = "exception"
    # Storage (issue 10): database unavailable (503), Idempotency-Key in use (409) or
    # reused for another request (422).
    TRANSIENT = "transient"
    CONFLICT = "conflict"
    BUSINESS_RULE = "business-rule"
    # Partner identity (issue 11): credentials missing or bad (401), scope missing (403),
    # rate limit reached (429).
    LOGIN = "login"
    FORBIDDEN = "forbidden"
    THROTTLED = "throttled"


#: The codes a request validation error (422, one per field) can carry.
VALIDATION_CODES: tuple[IssueType, ...] = (
    IssueType.REQUIRED,
    IssueType.VALUE,
    IssueType.CODE_INVALID,
    IssueType.INVALID,
)
