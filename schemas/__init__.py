"""marshmallow schemas for the triage request, generated from the vocabulary."""

from schemas.fields import CodedMessage, ValidationCode
from schemas.issues import FieldIssue, field_issues
from schemas.request import REQUEST_SCHEMA, StrictSchema, TriageRequestSchema, load_triage_request

__all__ = [
    "REQUEST_SCHEMA",
    "CodedMessage",
    "FieldIssue",
    "StrictSchema",
    "TriageRequestSchema",
    "ValidationCode",
    "field_issues",
    "load_triage_request",
]
