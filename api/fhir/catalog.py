"""Every conformance resource the server publishes, built once per canonical base.

Questionnaire, CapabilityStatement, OperationDefinition, and a CodeSystem plus a
ValueSet per product code system: all static for a given canonical base and
knowledge-base version, so they are built and serialised (R4 and R5) on first
use and served as bytes. Nothing here runs on the ``POST /v1/triage`` path.
"""

from __future__ import annotations

import functools
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
from api.fhir.questionnaire import build_questionnaire
from api.fhir.settings import SUPPORTED_FHIR_VERSIONS
from api.fhir.terminology import build_codesystem, build_valueset
from api.fhir.versions import to_r5

#: ``date`` of the published resources: when their content last changed. Bump it
#: with the vocabulary, knowledge base or interface (a stable value keeps caches valid).
PUBLICATION_DATE = "2026-11-21"

Key = tuple[str, str]  # (resourceType, id)


@dataclass(frozen=True, slots=True)
class Catalog:
    """Published resources by (type, id) and FHIR version, as dicts and as JSON bytes."""

    resources: dict[str, dict[Key, Json]]
    bodies: dict[str, dict[Key, bytes]]

    def get(self, resource_type: str, resource_id: str, fhir_version: str = "4.0") -> Json | None:
        return self.resources[fhir_version].get((resource_type, resource_id))

    def body(self, resource_type: str, resource_id: str, fhir_version: str = "4.0") -> bytes | None:
        return self.bodies[fhir_version].get((resource_type, resource_id))

    def ids(self, resource_type: str) -> list[str]:
        """Ids of one resource type, in publication order."""
        return [rid for (rtype, rid) in self.resources["4.0"] if rtype == resource_type]


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


@functools.lru_cache(maxsize=16)
def catalog(canonical_base: str) -> Catalog:
    """The catalog for a canonical base (built on first use, then shared)."""
    r4 = {(r["resourceType"], r["id"]): r for r in r4_resources(canonical_base)}
    by_version = {"4.0": r4, "5.0": {key: to_r5(r) for key, r in r4.items()}}
    if set(by_version) != set(SUPPORTED_FHIR_VERSIONS):  # pragma: no cover - a new version
        raise RuntimeError("the catalog must cover every supported FHIR version")
    bodies = {
        version: {key: orjson.dumps(r) for key, r in resources.items()}
        for version, resources in by_version.items()
    }
    return Catalog(by_version, bodies)


__all__ = ["CAPABILITY_ID", "PUBLICATION_DATE", "TRIAGE_OPERATION_ID", "Catalog", "catalog"]
