"""Every conformance resource the server publishes, built once per deployment.

Questionnaire, CapabilityStatement, OperationDefinition, and a CodeSystem plus a
ValueSet per product code system: all static for a given canonical base and
knowledge-base version, so the app builds and serialises them (R4 and R5) once at
start-up (:class:`api.fhir.context.FhirContext`) and serves the bytes. The
resources are frozen (:mod:`api.fhir.frozen`). Nothing here runs on the
``POST /v1/triage`` path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from api.fhir import codesystems as cs
from api.fhir._tables import Json
from api.fhir.capability import (
    CAPABILITY_ID,
    TRIAGE_OPERATION_ID,
    build_capability_statement,
    build_triage_operation,
)
from api.fhir.frozen import freeze
from api.fhir.questionnaire import build_questionnaire
from api.fhir.terminology import build_codesystem, build_valueset
from api.fhir.versions import DEFAULT_FHIR_VERSION, FHIR_VERSIONS, R4, R5, to_r5

#: ``date`` of the published resources: when their content last changed. Bump it
#: with the vocabulary, knowledge base or interface (a stable value keeps caches valid).
PUBLICATION_DATE = "2026-11-21"

Key = tuple[str, str]  # (resourceType, id)


@dataclass(frozen=True, slots=True)
class Catalog:
    """Published resources by (type, id) and FHIR version, as dicts and as JSON bytes."""

    resources: Mapping[str, Mapping[Key, Json]]
    bodies: Mapping[str, Mapping[Key, bytes]]

    def get(
        self, resource_type: str, resource_id: str, fhir_version: str = DEFAULT_FHIR_VERSION
    ) -> Json | None:
        return self.resources[fhir_version].get((resource_type, resource_id))

    def body(
        self, resource_type: str, resource_id: str, fhir_version: str = DEFAULT_FHIR_VERSION
    ) -> bytes | None:
        return self.bodies[fhir_version].get((resource_type, resource_id))

    def ids(self, resource_type: str) -> list[str]:
        """Ids of one resource type, in publication order."""
        return [rid for (rtype, rid) in self.resources[R4.mime] if rtype == resource_type]


def r4_resources(canonical_base: str) -> list[Json]:
    """The R4 resources in publication order (metadata first)."""
    date = PUBLICATION_DATE
    out = [
        build_capability_statement(canonical_base, date=date),
        build_triage_operation(canonical_base, date=date),
        build_questionnaire(canonical_base, date=date),
    ]
    specs = cs.product_codesystems()
    out.extend(build_codesystem(spec, canonical_base, date=date) for spec in specs)
    out.extend(build_valueset(spec, canonical_base, date=date) for spec in specs)
    return out


def catalog(canonical_base: str) -> Catalog:
    """Build the catalog for a canonical base (~4 ms; the app keeps the one it serves)."""
    r4 = {(r["resourceType"], r["id"]): r for r in r4_resources(canonical_base)}
    by_version = freeze({R4.mime: r4, R5.mime: {key: to_r5(r) for key, r in r4.items()}})
    if set(by_version) != set(FHIR_VERSIONS):  # pragma: no cover - a new version
        raise RuntimeError("the catalog must cover every supported FHIR version")
    bodies = {
        version: {key: orjson.dumps(r) for key, r in resources.items()}
        for version, resources in by_version.items()
    }
    return Catalog(by_version, bodies)


__all__ = ["CAPABILITY_ID", "PUBLICATION_DATE", "TRIAGE_OPERATION_ID", "Catalog", "catalog"]
