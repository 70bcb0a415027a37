"""The shapes of CDS Hooks 2.0 bodies: a ``patient-view`` service request and feedback.

Checked field by field; every problem is one issue naming the field by its JSON
path (``context.patientId``, ``feedback[0].outcome``), all raised together as
InvalidCdsRequestError (400). Unknown fields are ignored: the specification
reserves ``extension`` and EHRs add their own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any
from urllib.parse import urlsplit

from api.fhir import Issue
from api.fhir.search import ID_TEXT
from api.services.errors import InvalidCdsRequestError
from schemas import IssueType, unsafe_values

HOOK = "patient-view"
#: The prefetch key of the discovery document's one template.
PREFETCH_KEY = "intake"
#: A FHIR id (the patient the chart is open on).
FHIR_ID = re.compile(ID_TEXT)
OUTCOMES = ("accepted", "overridden")
#: Most feedback entries one call may carry.
MAX_FEEDBACK = 100
_ABSENT = object()


@dataclass(frozen=True, slots=True)
class HookRequest:
    """A checked ``patient-view`` call."""

    hook_instance: str
    patient_id: str
    user_id: str | None
    fhir_server: str | None
    access_token: str | None
    #: True when ``prefetch.intake`` was sent (its value may be null: no intake exists).
    prefetched: bool
    prefetch: Any


@dataclass(frozen=True, slots=True)
class FeedbackEntry:
    """One checked feedback entry (``body`` is the entry as sent)."""

    card: str
    outcome: str
    outcome_us: int | None
    body: Mapping[str, Any]


class _Issues:
    def __init__(self) -> None:
        self.items: list[Issue] = []

    def add(self, code: IssueType, path: str, message: str) -> None:
        self.items.append(Issue(code, f"{path}: {message}", (path,)))

    def text(
        self,
        body: Mapping[str, Any],
        key: str,
        path: str,
        *,
        required: bool,
        max_length: int = 2048,
    ) -> str | None:
        value = body.get(key, _ABSENT)
        if value is _ABSENT or value is None:
            if required:
                self.add(IssueType.REQUIRED, path, "is required")
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > max_length:
            self.add(
                IssueType.VALUE,
                path,
                f"must be a non-empty string of at most {max_length} characters",
            )
            return None
        return value

    def unsafe(self, body: Mapping[str, Any], *, skip: frozenset[str] = frozenset()) -> None:
        """An issue for each control character or unpaired surrogate in ``body`` (keys
        too) and each integer beyond 64 bits: it is stored, logged and answered as JSON
        (a few named)."""
        for path, why in islice(unsafe_values(body, skip=skip), 10):
            self.add(IssueType.VALUE, path, why)

    def raise_if_any(self, summary: str) -> None:
        if self.items:
            raise InvalidCdsRequestError(self.items, summary)


def _http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)  # ValueError on an unbalanced "[" or "]" (IPv6 syntax)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.fragment


def parse_hook_request(body: Mapping[str, Any]) -> HookRequest:
    """The checked request; InvalidCdsRequestError (400) names every bad field."""
    issues = _Issues()
    # The prefetched intake is a QuestionnaireResponse: $triage checks it, field by field.
    issues.unsafe(body, skip=frozenset({"prefetch"}))
    hook = issues.text(body, "hook", "hook", required=True)
    if hook is not None and hook != HOOK:
        issues.add(IssueType.NOT_SUPPORTED, "hook", f"this service answers {HOOK!r} only")
    hook_instance = issues.text(body, "hookInstance", "hookInstance", required=True, max_length=255)
    fhir_server = issues.text(body, "fhirServer", "fhirServer", required=False)
    if fhir_server is not None and not _http_url(fhir_server):
        issues.add(IssueType.VALUE, "fhirServer", "must be an absolute http(s) URL")
        fhir_server = None
    access_token = _authorization(body, issues, has_server="fhirServer" in body)
    patient_id, user_id = _context(body, issues)
    prefetched, prefetch = False, None
    raw = body.get("prefetch", _ABSENT)
    if raw is not _ABSENT and raw is not None:
        if not isinstance(raw, dict):
            issues.add(IssueType.STRUCTURE, "prefetch", "must be an object")
        elif PREFETCH_KEY in raw:
            prefetched, prefetch = True, raw[PREFETCH_KEY]
            if prefetch is not None and not isinstance(prefetch, dict):
                issues.add(
                    IssueType.STRUCTURE,
                    f"prefetch.{PREFETCH_KEY}",
                    "must be a FHIR resource (an object) or null",
                )
    issues.raise_if_any("the CDS Hooks request is not well formed")
    # Both were checked above (an issue otherwise): narrowing for the type checker.
    assert hook_instance is not None  # noqa: S101
    assert patient_id is not None  # noqa: S101
    return HookRequest(
        hook_instance=hook_instance,
        patient_id=patient_id,
        user_id=user_id,
        fhir_server=fhir_server,
        access_token=access_token,
        prefetched=prefetched,
        prefetch=prefetch,
    )


def _authorization(body: Mapping[str, Any], issues: _Issues, *, has_server: bool) -> str | None:
    raw = body.get("fhirAuthorization", _ABSENT)
    if raw is _ABSENT or raw is None:
        return None
    if not isinstance(raw, dict):
        issues.add(IssueType.STRUCTURE, "fhirAuthorization", "must be an object")
        return None
    token = issues.text(raw, "access_token", "fhirAuthorization.access_token", required=True)
    if token is not None and (len(token) > 4096 or any(c.isspace() for c in token)):
        issues.add(IssueType.VALUE, "fhirAuthorization.access_token", "is not a bearer token")
        token = None
    token_type = issues.text(raw, "token_type", "fhirAuthorization.token_type", required=True)
    if token_type is not None and token_type.lower() != "bearer":
        issues.add(IssueType.VALUE, "fhirAuthorization.token_type", "must be Bearer")
    expires = raw.get("expires_in")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int)):
        issues.add(IssueType.VALUE, "fhirAuthorization.expires_in", "must be an integer")
    for key in ("scope", "subject", "patient"):
        if key in raw:
            issues.text(raw, key, f"fhirAuthorization.{key}", required=False)
    if not has_server:  # cds-r-2: authorization details need a FHIR server to be used on
        issues.add(IssueType.REQUIRED, "fhirServer", "is required with fhirAuthorization")
    return token


def _context(body: Mapping[str, Any], issues: _Issues) -> tuple[str | None, str | None]:
    context = body.get("context", _ABSENT)
    if context is _ABSENT or context is None:
        issues.add(IssueType.REQUIRED, "context", "is required")
        return None, None
    if not isinstance(context, dict):
        issues.add(IssueType.STRUCTURE, "context", "must be an object")
        return None, None
    patient_id = issues.text(context, "patientId", "context.patientId", required=True)
    if patient_id is not None and not FHIR_ID.fullmatch(patient_id):
        issues.add(IssueType.VALUE, "context.patientId", "must be a FHIR id (Patient/<this>)")
        patient_id = None
    user_id = issues.text(context, "userId", "context.userId", required=False)
    if "encounterId" in context:
        issues.text(context, "encounterId", "context.encounterId", required=False)
    return patient_id, user_id


def parse_timestamp(value: str) -> int | None:
    """An ISO 8601 date-time in microseconds since the epoch (no zone = UTC); None if not."""
    if len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


def parse_feedback(body: Mapping[str, Any]) -> list[FeedbackEntry]:
    """The checked entries of a feedback body; InvalidCdsRequestError names every bad field.

    Tolerant of what EHRs send: one bare entry instead of ``{"feedback": [...]}``,
    ``acceptedSuggestions`` absent on ``accepted`` (our cards carry no suggestions),
    an ``overrideReason`` with a ``reason`` Coding, a ``userComment``, both or
    neither, ``outcomeTimestamp`` with any zone offset or none (UTC), or missing.
    """
    issues = _Issues()
    issues.unsafe(body)
    raw = body.get("feedback", _ABSENT)
    if raw is _ABSENT and "card" in body:
        raw, prefix = [dict(body)], "feedback"
    else:
        prefix = "feedback"
    if raw is _ABSENT or raw is None:
        issues.add(IssueType.REQUIRED, prefix, "is required (an array of feedback entries)")
        issues.raise_if_any("the feedback is not well formed")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_FEEDBACK:
        issues.add(IssueType.STRUCTURE, prefix, f"must be an array of 1 to {MAX_FEEDBACK} entries")
        issues.raise_if_any("the feedback is not well formed")
    entries = []
    for index, entry in enumerate(raw):
        path = f"{prefix}[{index}]"
        if not isinstance(entry, dict):
            issues.add(IssueType.STRUCTURE, path, "must be an object")
            continue
        card = issues.text(entry, "card", f"{path}.card", required=True)
        if card is not None and len(card) > 64:
            issues.add(IssueType.VALUE, f"{path}.card", "is not a card uuid of this service")
            card = None
        outcome = issues.text(entry, "outcome", f"{path}.outcome", required=True)
        if outcome is not None and outcome not in OUTCOMES:
            issues.add(IssueType.CODE_INVALID, f"{path}.outcome", "must be accepted or overridden")
            outcome = None
        _check_entry(entry, path, issues)
        stamp = issues.text(entry, "outcomeTimestamp", f"{path}.outcomeTimestamp", required=False)
        outcome_us = None
        if stamp is not None:
            outcome_us = parse_timestamp(stamp)
            if outcome_us is None:
                issues.add(
                    IssueType.VALUE, f"{path}.outcomeTimestamp", "must be an ISO 8601 date-time"
                )
        if card is not None and outcome is not None:
            entries.append(FeedbackEntry(card, outcome, outcome_us, entry))
    issues.raise_if_any("the feedback is not well formed")
    return entries


def _check_entry(entry: Mapping[str, Any], path: str, issues: _Issues) -> None:
    """The optional parts: accepted suggestions and the override reason."""
    accepted = entry.get("acceptedSuggestions")
    if accepted is not None:
        if not isinstance(accepted, list):
            issues.add(IssueType.STRUCTURE, f"{path}.acceptedSuggestions", "must be an array")
        else:
            for index, item in enumerate(accepted):
                where = f"{path}.acceptedSuggestions[{index}]"
                if not isinstance(item, dict):
                    issues.add(IssueType.STRUCTURE, where, "must be an object with an id")
                else:
                    issues.text(item, "id", f"{where}.id", required=True)
    reason = entry.get("overrideReason")
    if reason is None:
        return
    where = f"{path}.overrideReason"
    if not isinstance(reason, dict):
        issues.add(IssueType.STRUCTURE, where, "must be an object")
        return
    issues.text(reason, "userComment", f"{where}.userComment", required=False)
    coding = reason.get("reason")
    if coding is None:
        return
    if not isinstance(coding, dict):
        issues.add(IssueType.STRUCTURE, f"{where}.reason", "must be a Coding (an object)")
        return
    for key in ("system", "code", "display"):
        issues.text(coding, key, f"{where}.reason.{key}", required=False)


__all__ = [
    "HOOK",
    "PREFETCH_KEY",
    "FeedbackEntry",
    "HookRequest",
    "parse_feedback",
    "parse_hook_request",
    "parse_timestamp",
]
