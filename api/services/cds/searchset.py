"""The intake in a prefetch or in the EHR's search answer, read strictly (FHIR R4 Bundle).

A search answer the service cannot read with certainty is never "no intake": a
misspelt ``entry`` member, a ``search.mode`` of ``Match``, an entry without its
resource or a ``total`` of 1 with no entry would otherwise answer ``{"cards": []}``,
which the EHR shows as "nothing to report" (a silent miss). Such an answer is a 412
naming the offending element; only a well-formed ``searchset`` with no matching
QuestionnaireResponse (``total`` 0, no entry, or only ``include``/``outcome``
entries) is "no intake". Only the structure that decides *which* intake (or none) is
checked here; the intake chosen is checked field by field by ``$triage``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api.fhir import Issue
from api.services.errors import PreconditionFailedError
from schemas import IssueType

#: The members of an R4 Bundle (a Resource: no ``text``, ``extension``); ``_x`` holds
#: the id or extensions of the primitive ``x``.
BUNDLE_MEMBERS = frozenset(
    {
        "resourceType",
        "id",
        "_id",
        "meta",
        "implicitRules",
        "_implicitRules",
        "language",
        "_language",
        "identifier",
        "type",
        "_type",
        "timestamp",
        "_timestamp",
        "total",
        "_total",
        "link",
        "entry",
        "signature",
    }
)
#: The members of an R4 Bundle.entry.
ENTRY_MEMBERS = frozenset(
    {
        "id",
        "extension",
        "modifierExtension",
        "link",
        "fullUrl",
        "_fullUrl",
        "resource",
        "search",
        "request",
        "response",
    }
)
#: The members of an R4 Bundle.entry.search.
SEARCH_MEMBERS = frozenset(
    {"id", "extension", "modifierExtension", "mode", "_mode", "score", "_score"}
)
#: Bundle.entry.search.mode (R4 ``search-entry-mode``, codes are case-sensitive).
SEARCH_MODES = ("match", "include", "outcome")
#: OperationOutcome.issue.severity (R4 ``issue-severity``).
SEVERITIES = frozenset({"fatal", "error", "warning", "information"})
#: What makes a search answer a failed query rather than an empty one.
FAILED_SEVERITIES = frozenset({"fatal", "error"})
#: A FHIR resource type name (``questionnaireresponse`` is none).
RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{0,63}")
#: Most problems one 412 names (a hostile answer may have thousands of bad entries).
MAX_PROBLEMS = 10


@dataclass(frozen=True, slots=True)
class SearchAnswer:
    """What a prefetch or a search answer says about the patient's intake."""

    #: The newest matching QuestionnaireResponse; None: there is none (or the query failed).
    intake: dict[str, Any] | None
    #: The query failed: an OperationOutcome, or a searchset with no match but an
    #: ``error``/``fatal`` outcome (CDS Hooks: a client "SHOULD" report a failed prefetch
    #: with OperationOutcome(s); a service "SHOULD check any prefetched data for the
    #: existence of OperationOutcomes"). A failed search is not "no intake" either.
    failed: bool


class _Problems:
    """The 412 issues of one answer, each naming its element."""

    def __init__(self) -> None:
        self.items: list[Issue] = []

    def add(self, code: IssueType, path: str, message: str) -> None:
        self.items.append(Issue(code, f"{path}: {message}", (path,)))


def _precondition(message: str, expression: str) -> PreconditionFailedError:
    return PreconditionFailedError([Issue(IssueType.PROCESSING, message, (expression,))], message)


def authored_seconds(resource: Mapping[str, Any]) -> float:
    """``authored`` in seconds (no zone: UTC); unreadable or absent sorts first."""
    authored = resource.get("authored")
    if not isinstance(authored, str):
        return float("-inf")
    try:
        moment = datetime.fromisoformat(authored)
    except ValueError:
        return float("-inf")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def read_search_answer(value: Any, *, expression: str, inside: str) -> SearchAnswer:
    """The intake in ``value`` (a QuestionnaireResponse, an OperationOutcome or a
    ``searchset`` Bundle); PreconditionFailedError (412) for anything else.

    ``expression`` names the whole value in a 412 (``prefetch.intake``, ``fhirServer``);
    ``inside`` prefixes the paths of elements in it (``prefetch.intake``, ``Bundle``).
    Of several matches the newest by ``authored`` is the intake.
    """
    if not isinstance(value, dict):
        raise _precondition("is neither a QuestionnaireResponse nor a Bundle", expression)
    kind = value.get("resourceType")
    if kind == "OperationOutcome":
        return SearchAnswer(None, failed=True)
    if kind == "QuestionnaireResponse":
        return SearchAnswer(value, failed=False)
    if kind != "Bundle":
        raise _precondition(
            f"is a {str(kind)[:40]!r}, neither a QuestionnaireResponse nor a Bundle", expression
        )
    return _read_bundle(value, inside)


def _read_bundle(bundle: Mapping[str, Any], inside: str) -> SearchAnswer:
    """The intake in a searchset Bundle; every malformed element a 412 issue."""
    problems = _Problems()
    _bundle_members(bundle, inside, problems)
    total = bundle.get("total")
    if "total" in bundle and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
        problems.add(IssueType.VALUE, f"{inside}.total", "must be a non-negative integer")
        total = None
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        problems.add(IssueType.STRUCTURE, f"{inside}.entry", "must be an array of entries")
        entries = []
    matches: list[dict[str, Any]] = []
    failed = False
    for index, entry in enumerate(entries):
        role, resource = _entry(entry, f"{inside}.entry[{index}]", problems)
        if role == "match":
            matches.append(resource)
        elif role == "outcome":
            # Each outcome is checked, also after a failing one.
            failed = (
                _outcome_failed(resource, f"{inside}.entry[{index}].resource", problems) or failed
            )
        if len(problems.items) >= MAX_PROBLEMS:
            break
    if problems.items:
        raise PreconditionFailedError(
            problems.items[:MAX_PROBLEMS],
            "the search result is not a well-formed FHIR R4 searchset Bundle, so whether the "
            "patient has an intake is unknown",
        )
    if matches:
        return SearchAnswer(max(matches, key=authored_seconds), failed=False)
    if failed:
        return SearchAnswer(None, failed=True)
    if isinstance(total, int) and total > 0:
        raise _precondition(
            f"{inside}.total: says QuestionnaireResponses matched (above 0), but the answer "
            "holds no match entry: the intake is not in it",
            f"{inside}.total",
        )
    return SearchAnswer(None, failed=False)


def _unknown_members(
    element: Mapping[str, Any],
    members: frozenset[str],
    path: str,
    what: str,
    problems: _Problems,
) -> None:
    """A problem per member ``what`` does not have, and for a ``modifierExtension`` where
    ``what`` has one (a modifier this service does not understand)."""
    for key in element:
        if key not in members:
            problems.add(
                IssueType.STRUCTURE, f"{path}.{str(key)[:40]}", f"is not an element of {what}"
            )
    if "modifierExtension" in element and "modifierExtension" in members:
        problems.add(
            IssueType.NOT_SUPPORTED,
            f"{path}.modifierExtension",
            "is not understood by this service (a modifier element)",
        )


def _bundle_members(bundle: Mapping[str, Any], inside: str, problems: _Problems) -> None:
    """Every member an R4 Bundle has, ``type`` ``searchset``, no ``implicitRules``."""
    _unknown_members(bundle, BUNDLE_MEMBERS, inside, "a FHIR R4 Bundle", problems)
    if "implicitRules" in bundle:  # a modifier: rules this service does not know
        problems.add(
            IssueType.NOT_SUPPORTED,
            f"{inside}.implicitRules",
            "names rules this service does not understand (a modifier element)",
        )
    kind = bundle.get("type")
    if kind is None:
        problems.add(IssueType.REQUIRED, f"{inside}.type", "is required (searchset)")
    elif kind != "searchset":
        problems.add(
            IssueType.VALUE,
            f"{inside}.type",
            "must be searchset (the answer of the intake search)",
        )


def _entry(entry: Any, path: str, problems: _Problems) -> tuple[str | None, Any]:
    """(the entry's role: ``match``, ``include``, ``outcome``, or None when malformed, its
    resource). An entry without ``search.mode`` is what its resource says: a
    QuestionnaireResponse a match, an OperationOutcome an outcome, anything else an include."""
    if not isinstance(entry, dict):
        problems.add(IssueType.STRUCTURE, path, "must be an object (a Bundle entry)")
        return None, None
    before = len(problems.items)
    _unknown_members(entry, ENTRY_MEMBERS, path, "a FHIR R4 Bundle entry", problems)
    for key in ("request", "response"):
        if key in entry:
            problems.add(
                IssueType.STRUCTURE,
                f"{path}.{key}",
                "is prohibited in a searchset entry (FHIR R4 bdl-3, bdl-4)",
            )
    mode = _mode(entry, path, problems)
    resource = entry.get("resource")
    kind = _resource_type(resource, f"{path}.resource", problems)
    if len(problems.items) > before or kind is None:
        return None, None
    if mode is None:
        mode = {"QuestionnaireResponse": "match", "OperationOutcome": "outcome"}.get(
            kind, "include"
        )
    wanted = {"match": "QuestionnaireResponse", "outcome": "OperationOutcome"}.get(mode)
    if wanted is not None and kind != wanted:
        problems.add(
            IssueType.VALUE,
            f"{path}.resource.resourceType",
            f"must be {wanted} in an entry of search.mode {mode} (the intake search "
            "matches QuestionnaireResponses)",
        )
        return None, None
    return mode, resource


def _resource_type(resource: Any, path: str, problems: _Problems) -> str | None:
    """The entry's resource type name; None (and a problem) when it has none."""
    if resource is None:
        problems.add(IssueType.REQUIRED, path, "is required (the resource the entry holds)")
        return None
    if not isinstance(resource, dict):
        problems.add(IssueType.STRUCTURE, path, "must be a FHIR resource (an object)")
        return None
    kind = resource.get("resourceType")
    if not isinstance(kind, str) or not RESOURCE_TYPE.fullmatch(kind):
        problems.add(
            IssueType.REQUIRED if kind is None else IssueType.VALUE,
            f"{path}.resourceType",
            "is required: a FHIR resource type name (QuestionnaireResponse)",
        )
        return None
    return kind


def _mode(entry: Mapping[str, Any], path: str, problems: _Problems) -> str | None:
    """``search.mode`` when given (checked); None when the entry has no ``search.mode``."""
    search = entry.get("search")
    if search is None:
        if "search" in entry:  # JSON null: no FHIR element is ever null
            problems.add(IssueType.STRUCTURE, f"{path}.search", "must be an object, not null")
        return None
    if not isinstance(search, dict):
        problems.add(IssueType.STRUCTURE, f"{path}.search", "must be an object ({mode, score})")
        return None
    _unknown_members(
        search, SEARCH_MEMBERS, f"{path}.search", "a FHIR R4 Bundle entry search", problems
    )
    if "mode" not in search:
        return None
    mode = search["mode"]
    if not isinstance(mode, str) or mode not in SEARCH_MODES:
        problems.add(
            IssueType.CODE_INVALID,
            f"{path}.search.mode",
            "must be match, include or outcome (codes are case-sensitive)",
        )
        return None
    return mode


def _outcome_failed(resource: Mapping[str, Any], path: str, problems: _Problems) -> bool:
    """True when the OperationOutcome reports an ``error`` or ``fatal`` issue; its issues
    are checked (one or more, each with a known severity): they decide failed or empty."""
    issues = resource.get("issue")
    if not isinstance(issues, list) or not issues:
        problems.add(IssueType.REQUIRED, f"{path}.issue", "is required (one or more issues)")
        return False
    failed = False
    for index, issue in enumerate(issues):
        severity = issue.get("severity") if isinstance(issue, dict) else None
        if not isinstance(severity, str) or severity not in SEVERITIES:
            problems.add(
                IssueType.CODE_INVALID,
                f"{path}.issue[{index}].severity",
                "must be fatal, error, warning or information",
            )
        elif severity in FAILED_SEVERITIES:
            failed = True
    return failed


__all__ = ["SearchAnswer", "authored_seconds", "read_search_answer"]
