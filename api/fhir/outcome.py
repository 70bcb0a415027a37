"""The OperationOutcome resource (FHIR R4), pure: the HTTP layer picks the status.

Every error the product reports (HTTP errors, request validation, ``$triage``
items, later CDS Hooks) is a list of :class:`Issue` rendered here, so bounds on
size and the escaping of client text live in one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from markupsafe import escape

from api.fhir._tables import shown
from schemas import IssueType

#: An OperationOutcome never lists more issues than this (bounded error bodies).
MAX_ISSUES = 100
#: Longest diagnostics text; longer client-derived text is cut.
MAX_DIAGNOSTICS = 500


@dataclass(frozen=True, slots=True)
class Issue:
    """One OperationOutcome.issue; ``expression`` holds JSON paths or FHIRPaths."""

    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()


#: Control characters (C0 but tab, LF and CR; DEL; C1) and the XML non-characters.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")


def _visible(match: re.Match[str]) -> str:
    return ascii(match.group())[1:-1]  # \x01, \x7f, \ufffe: what Python's repr shows


def _clean(text: str) -> str:
    """Cap the length; make client text visible, encodable and legal in XML.

    A control character copied from a client's linkId or parameter name into
    ``diagnostics`` or ``expression`` is shown escaped (``\x01``): FHIR strings and the
    XHTML narrative cannot hold it (not well-formed XML). Lone surrogates likewise.
    """
    if len(text) > MAX_DIAGNOSTICS:
        text = text[: MAX_DIAGNOSTICS - 1] + "…"
    text = _CONTROL.sub(_visible, text)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def operation_outcome(issues: Iterable[Issue], *, summary: str) -> dict[str, object]:
    """An OperationOutcome with an escaped XHTML narrative listing every issue."""
    listed = list(issues)
    if len(listed) > MAX_ISSUES:
        extra = len(listed) - (MAX_ISSUES - 1)
        listed = [
            *listed[: MAX_ISSUES - 1],
            Issue(IssueType.TOO_COSTLY, f"{extra} further problems are not listed"),
        ]
    rendered = []
    rows = []
    for issue in listed:
        diagnostics = _clean(issue.diagnostics)
        expression = [_clean(e) for e in issue.expression]
        entry: dict[str, object] = {
            "severity": "error",
            "code": str(issue.code),
            "diagnostics": diagnostics,
        }
        if expression:
            entry["expression"] = expression
        rendered.append(entry)
        # Displayed: a bidi control echoed from the client is shown as its marker.
        rows.append(f"<li><b>{escape(str(issue.code))}</b>: {escape(shown(diagnostics))}</li>")
    div = (
        '<div xmlns="http://www.w3.org/1999/xhtml">'
        f"<p>{escape(summary)}</p><ul>{''.join(rows)}</ul></div>"
    )
    return {
        "resourceType": "OperationOutcome",
        "text": {"status": "generated", "div": div},
        "issue": rendered,
    }
