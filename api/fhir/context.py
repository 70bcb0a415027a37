"""Everything the FHIR layer prebuilds for one deployment, in one object the app owns.

Built once in ``create_app`` from the deployment's settings and kept on the app
(``app.extensions``), not in module globals keyed by canonical base: two apps
with different bases (or, later, per-tenant settings) each hold their own, and
nothing is evicted or rebuilt under load.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.fhir._tables import Tables
from api.fhir.catalog import Catalog, catalog
from api.fhir.settings import FhirSettings


@dataclass(frozen=True, slots=True)
class FhirContext:
    """A deployment's FHIR settings, render fragments and published resources."""

    settings: FhirSettings
    tables: Tables
    catalog: Catalog

    @classmethod
    def build(cls, settings: FhirSettings) -> FhirContext:
        """Build every fragment and published resource for ``settings`` now."""
        return cls(settings, Tables(settings.canonical_base), catalog(settings.canonical_base))

    @property
    def canonical_base(self) -> str:
        return self.settings.canonical_base
