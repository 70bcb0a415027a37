"""Configuration of the FHIR layer (the app builds one from its config)."""

from __future__ import annotations

from dataclasses import dataclass

from api.fhir.codesystems import DEFAULT_CANONICAL_BASE, normalize_base


@dataclass(frozen=True, slots=True)
class FhirSettings:
    """Where product canonicals live; independent of the serving host (PROTOCOL.md §9)."""

    canonical_base: str = DEFAULT_CANONICAL_BASE

    def __post_init__(self) -> None:
        object.__setattr__(self, "canonical_base", normalize_base(self.canonical_base))
