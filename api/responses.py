"""Building FHIR JSON responses (shared by results and errors).

orjson serialises a Bundle several times faster than the stdlib encoder and
emits compact UTF-8 directly, so the hot path never goes through Flask's JSON
provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from flask import Response

from api.fhir.versions import DEFAULT_FHIR_VERSION, FHIR_JSON


def fhir_content_type(fhir_version: str = DEFAULT_FHIR_VERSION) -> str:
    """``application/fhir+json; fhirVersion=4.0`` (FHIR http.html#version-parameter)."""
    return f"{FHIR_JSON}; fhirVersion={fhir_version}"


def fhir_response(
    resource: Mapping[str, Any],
    status: int = 200,
    *,
    fhir_version: str = DEFAULT_FHIR_VERSION,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A response carrying one FHIR resource as JSON."""
    return Response(
        orjson.dumps(resource),
        status=status,
        headers=dict(headers or {}),
        content_type=fhir_content_type(fhir_version),
    )
