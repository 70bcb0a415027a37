"""marshmallow schemas for the triage request, generated from the vocabulary.

Outside this package, code calls :func:`validate_request` and handles
:class:`InvalidRequestError` (coded :class:`FieldIssue` s); marshmallow's own
types stay inside.
"""

from schemas.codes import VALIDATION_CODES, IssueType
from schemas.fields import CodedMessage, unsafe_character
from schemas.issues import (
    FieldIssue,
    InvalidRequestError,
    field_issues,
    unsafe_values,
    validate_request,
)
from schemas.request import REQUEST_SCHEMA, StrictSchema, TriageRequestSchema, load_triage_request

__all__ = [
    "REQUEST_SCHEMA",
    "VALIDATION_CODES",
    "CodedMessage",
    "FieldIssue",
    "InvalidRequestError",
    "IssueType",
    "StrictSchema",
    "TriageRequestSchema",
    "field_issues",
    "load_triage_request",
    "unsafe_character",
    "unsafe_values",
    "validate_request",
]
