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
from datetime import UTC, datetime, timedelta, timezone
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
#: The suggestion ids this service's cards offer: none (``cards.card`` builds no
#: ``suggestions``), so an accepted suggestion id can never be one of ours. A card that
#: offers suggestions would have its ids stored with it and checked per card instead.
OFFERED_SUGGESTIONS: frozenset[str] = frozenset()
#: A UUID in its canonical 8-4-4-4-12 hex form; hex digits in either case (RFC 9562 §4).
UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", re.ASCII
)
_ABSENT = object()


@dataclass(frozen=True, slots=True)
class HookRequest:
    """A checked ``patient-view`` call."""

    hook_instance: str
    patient_id: str
    user_id: str
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
    #: ``outcomeTimestamp``, microseconds since the epoch.
    outcome_us: int
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
    assert user_id is not None  # noqa: S101
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
    # CDS Hooks 2.0 patient-view: userId REQUIRED (patientId too; encounterId optional).
    user_id = issues.text(context, "userId", "context.userId", required=True)
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


#: RFC 3339 §5.6 ``date-time`` (what CDS Hooks 2.0 profiles ``outcomeTimestamp`` on):
#: full date, ``T``, time with seconds, optional fraction, ``Z`` or ``±hh:mm``. ASCII
#: digits only; ``t`` and ``z`` in lower case too (RFC 3339 §5.6, note on ABNF case).
_INSTANT = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[Tt]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<off_hour>[0-9]{2}):(?P<off_minute>[0-9]{2}))",
    re.ASCII,
)
#: Longest ``outcomeTimestamp`` read (a fraction of 30 digits and an offset fit).
MAX_INSTANT_CHARS = 64


def parse_instant(value: str) -> int | None:
    """An RFC 3339 ``date-time`` (date, time and zone: an instant) in microseconds since
    the epoch; None for anything else: a date alone, no zone, no seconds, a day or hour
    out of range, a year outside 0001-9999 once in UTC.

    Stricter than :func:`parse_timestamp` (``datetime.fromisoformat`` reads a date alone
    or a time without zone, which name no instant). A leap second (``:60``) is read only
    at 23:59 UTC, as the last microsecond of that minute; a fraction beyond microseconds
    is cut off.
    """
    match = _INSTANT.fullmatch(value) if len(value) <= MAX_INSTANT_CHARS else None
    if match is None:
        return None
    part = {key: int(text) for key, text in match.groupdict().items() if text and text.isdigit()}
    if match["utc"] is None and (part["off_hour"] > 23 or part["off_minute"] > 59):
        return None
    offset = (
        timedelta(0)
        if match["utc"] is not None
        else (1 if match["sign"] == "+" else -1)
        * timedelta(hours=part["off_hour"], minutes=part["off_minute"])
    )
    second, leap = part["second"], part["second"] == 60
    if leap:
        second = 59
    microsecond = int((match["fraction"] or "0")[:6].ljust(6, "0"))
    try:
        local = datetime(
            part["year"], part["month"], part["day"], part["hour"], part["minute"], second,
            microsecond, tzinfo=timezone(offset),
        )  # fmt: skip
        moment = local.astimezone(UTC)  # OverflowError past year 9999, before year 1
    except (ValueError, OverflowError):
        return None
    if leap:
        if (moment.hour, moment.minute) != (23, 59):
            return None
        moment = moment.replace(microsecond=999_999)
    return (moment - _EPOCH) // timedelta(microseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_feedback(body: Mapping[str, Any]) -> list[FeedbackEntry]:
    """The checked entries of a feedback body; InvalidCdsRequestError names every bad field.

    Each entry is held to CDS Hooks 2.0 "Feedback": ``card`` and ``outcome``
    (``accepted`` or ``overridden``) required; ``acceptedSuggestions`` required for
    ``accepted`` (one or more objects, each with an ``id``); ``overrideReason``
    optional, an object whose ``reason`` is a Coding (``code`` and ``system``
    required) and ``userComment`` a string; ``outcomeTimestamp`` required, an RFC
    3339 date-time (:func:`parse_instant`). Every problem of every entry is one issue.
    ``card`` is read as a UUID whatever the case of its hex digits (RFC 9562 §4);
    an accepted suggestion must be one the card offered (ours offer none).
    The one tolerance kept: a bare entry instead of ``{"feedback": [...]}``.
    """
    issues = _Issues()
    issues.unsafe(body)
    raw = body.get("feedback", _ABSENT)
    if raw is _ABSENT and "card" in body:
        raw = [dict(body)]
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
        if card is not None and UUID_TEXT.fullmatch(card):
            card = card.lower()  # our uuids are lower case; the hex digits' case is no part
        outcome = issues.text(entry, "outcome", f"{path}.outcome", required=True)
        if outcome is not None and outcome not in OUTCOMES:
            issues.add(IssueType.CODE_INVALID, f"{path}.outcome", "must be accepted or overridden")
            outcome = None
        _accepted_suggestions(entry, path, issues, accepted=outcome == "accepted")
        _override_reason(entry, path, issues)
        outcome_us = _outcome_timestamp(entry, path, issues)
        if card is not None and outcome is not None and outcome_us is not None:
            entries.append(FeedbackEntry(card, outcome, outcome_us, entry))
    issues.raise_if_any("the feedback is not well formed")
    return entries


def _outcome_timestamp(entry: Mapping[str, Any], path: str, issues: _Issues) -> int | None:
    """``outcomeTimestamp`` in microseconds: REQUIRED, an instant (date, time and zone)."""
    where = f"{path}.outcomeTimestamp"
    value = entry.get("outcomeTimestamp")
    if value is None:
        issues.add(IssueType.REQUIRED, where, "is required (when the user acted on the card)")
        return None
    moment = parse_instant(value) if isinstance(value, str) else None
    if moment is None:
        issues.add(
            IssueType.VALUE,
            where,
            "must be an ISO 8601 instant with date, time to the second and zone (RFC 3339 "
            "date-time, e.g. 2026-11-27T12:00:00Z)",
        )
    return moment


def _accepted_suggestions(
    entry: Mapping[str, Any], path: str, issues: _Issues, *, accepted: bool
) -> None:
    """``acceptedSuggestions``: required for ``accepted`` ("one or more of the user's
    AcceptedSuggestions"), each an object with the ``id`` of one of the card's
    suggestions: our cards carry none (:data:`OFFERED_SUGGESTIONS`), so any id is refused,
    and with it every ``accepted`` entry."""
    where = f"{path}.acceptedSuggestions"
    value = entry.get("acceptedSuggestions")
    if value is None:
        if accepted:
            issues.add(
                IssueType.REQUIRED,
                where,
                "is required when outcome is accepted (the suggestions accepted, each {id})",
            )
        return
    if not isinstance(value, list):
        issues.add(IssueType.STRUCTURE, where, "must be an array")
        return
    if accepted and not value:
        issues.add(IssueType.REQUIRED, where, "must name at least one suggestion when accepted")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            issues.add(IssueType.STRUCTURE, f"{where}[{index}]", "must be an object with an id")
            continue
        suggestion = issues.text(item, "id", f"{where}[{index}].id", required=True)
        if suggestion is not None and suggestion not in OFFERED_SUGGESTIONS:
            issues.add(
                IssueType.VALUE,
                f"{where}[{index}].id",
                "names no suggestion of the card: this service's cards offer none (CDS Hooks "
                "2.0: an accepted suggestion is one the card carried); report the card "
                "overridden instead",
            )


def _override_reason(entry: Mapping[str, Any], path: str, issues: _Issues) -> None:
    """``overrideReason``: an object, its ``reason`` a Coding (``code`` and ``system``
    REQUIRED, CDS Hooks 2.0 "Coding"; ``display`` optional), ``userComment`` a string."""
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
    for key in ("system", "code"):
        issues.text(coding, key, f"{where}.reason.{key}", required=True)
    issues.text(coding, "display", f"{where}.reason.display", required=False)


__all__ = [
    "HOOK",
    "PREFETCH_KEY",
    "FeedbackEntry",
    "HookRequest",
    "parse_feedback",
    "parse_hook_request",
    "parse_instant",
    "parse_timestamp",
]
