"""The errors a use case raises; :mod:`api.errors` gives each its HTTP status.

They carry FHIR issues (:class:`api.fhir.Issue`) rather than text, so every
caller (HTTP, ``$triage``, later CDS Hooks) reports the same coded problems.
"""

from __future__ import annotations

from collections.abc import Sequence

from api.fhir import Issue


class ServiceError(Exception):
    """Base of every error a service raises on purpose."""

    def __init__(self, issues: Sequence[Issue], summary: str) -> None:
        super().__init__(summary)
        self.issues = tuple(issues)


class InvalidInputError(ServiceError):
    """The input cannot be triaged: one issue per offending field or item (422)."""


class NotFoundError(ServiceError):
    """No published resource has this type and id (404)."""
