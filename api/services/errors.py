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


class IdempotencyKeyReusedError(ServiceError):
    """An ``Idempotency-Key`` already used for a different request (422)."""


class IdempotencyConflictError(ServiceError):
    """A request with the same ``Idempotency-Key`` is being stored right now (409)."""


class InvalidSearchError(ServiceError):
    """A search parameter the server refuses (400, expression ``http.<name>``)."""


class VersionNotServedError(ServiceError):
    """This resource type is not served in the negotiated FHIR version (406)."""


class InvalidCdsRequestError(ServiceError):
    """A CDS Hooks request or feedback body of the wrong shape (400, naming the field)."""


class PreconditionFailedError(ServiceError):
    """A CDS Hooks call whose data cannot be had or used (412, as the specification asks)."""
