"""The body of ``POST /v1/intake-links``: which patient, how long, what the browser shows.

Strict like the triage request (unknown keys, wrong types and out-of-range values
are errors naming the field; ``null`` means "not given"). The patient is named
only as ``Patient/<id>``, the one form a triage result carries (the same pattern
as the request's ``patient.reference``), so the submission is filed under exactly
that patient.
"""

from __future__ import annotations

from typing import Any, ClassVar

from marshmallow import ValidationError, fields

from schemas.fields import StrictCode, StrictInteger, StrictString
from schemas.issues import InvalidRequestError, field_issues
from schemas.request import StrictSchema
from triage.vocabulary import ITEMS

#: What the browser shows after a submission: the signed clinician report, or a
#: thank-you page that shows no result (patient-facing use).
SHOW_CHOICES = ("report", "thank-you")
#: Default and bounds of a link's validity, in seconds (5 minutes to 30 days).
DEFAULT_EXPIRES_IN = 3 * 86400
MIN_EXPIRES_IN = 300
MAX_EXPIRES_IN = 30 * 86400

_REFERENCE = ITEMS["patient.reference"]


class IntakeLinkPatientSchema(StrictSchema):
    """Whose answers these are."""

    fast_path: ClassVar[bool] = False

    reference = StrictString(
        required=True,
        max_length=_REFERENCE.max_length,
        pattern=_REFERENCE.pattern,
        metadata={
            "title": "FHIR Patient reference",
            "description": "Patient/<id>: the submitted answers and their triage result "
            "are filed under this patient; a QuestionnaireResponse naming another "
            "subject is refused.",
        },
    )


class IntakeLinkRequestSchema(StrictSchema):
    """``POST /v1/intake-links`` body; every field is optional."""

    fast_path: ClassVar[bool] = False

    patient = fields.Nested(
        IntakeLinkPatientSchema,
        allow_none=True,
        metadata={"description": "The patient the answers belong to; omitted = none named."},
    )
    expires_in = StrictInteger(
        minimum=MIN_EXPIRES_IN,
        maximum=MAX_EXPIRES_IN,
        metadata={
            "description": "Seconds the link stays usable, "
            f"{MIN_EXPIRES_IN} to {MAX_EXPIRES_IN}; omitted = {DEFAULT_EXPIRES_IN} (3 days)."
        },
    )
    show = StrictCode(
        choices=SHOW_CHOICES,
        metadata={
            "description": "After the submission the browser shows the clinician report "
            "(`report`, the default) or a thank-you page without any result "
            "(`thank-you`, for patient-facing use)."
        },
    )


INTAKE_LINK_SCHEMA = IntakeLinkRequestSchema()


def validate_intake_link(data: Any) -> dict[str, Any]:
    """The loaded body with its defaults, or InvalidRequestError (one issue per field)."""
    if not isinstance(data, dict):
        raise InvalidRequestError(field_issues({"_schema": [StrictSchema.error_messages["type"]]}))
    try:
        loaded = INTAKE_LINK_SCHEMA.load(data)
    except ValidationError as exc:
        raise InvalidRequestError(field_issues(exc.messages)) from None
    patient = loaded.get("patient") or {}
    return {
        "patient_reference": patient.get("reference"),
        "expires_in": loaded.get("expires_in", DEFAULT_EXPIRES_IN),
        "show": loaded.get("show", "report"),
    }


__all__ = [
    "DEFAULT_EXPIRES_IN",
    "INTAKE_LINK_SCHEMA",
    "MAX_EXPIRES_IN",
    "MIN_EXPIRES_IN",
    "SHOW_CHOICES",
    "IntakeLinkRequestSchema",
    "validate_intake_link",
]
