"""SMART v2 system scopes and the one table of what each endpoint requires.

A scope is ``system/<ResourceType or *>.<permissions>``: permissions are the
SMART v2 letters ``c r u d s`` in that order (any subset), or ``*`` for all.
SMART v1's ``read`` and ``write`` are read as SMART 2 says a server that keeps
v1 compatibility should (``read`` = ``rs``, ``write`` = ``cud``, ``*`` = ``cruds``),
so a v1 client's ``system/Observation.read`` works as written.
An endpoint needs one (resource type, letter); a caller holding any scope
that covers it may call it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_SCOPE = re.compile(r"system/(\*|[A-Z][A-Za-z]{1,63})\.(\*|read|write|c?r?u?d?s?)")
ALL_PERMISSIONS = frozenset("cruds")
#: SMART v1 permissions in v2 letters (SMART 2.0, scopes: "v1 .read ⇒ v2 .rs").
V1_PERMISSIONS = {"read": frozenset("rs"), "write": frozenset("cud")}

#: The resource types a scope can name: the tenant's stored data (the published
#: definitions need no scope). A client registered for another type would hold a scope
#: that grants nothing, and read as if it did.
SCOPE_TYPES = ("Bundle", "QuestionnaireResponse", "Observation", "Provenance", "AuditEvent")

#: What a client gets when created without ``--scope``: everything of its own tenant.
DEFAULT_SCOPES = ("system/*.cruds",)

#: Endpoints anyone may call: liveness, the contract, capability and SMART discovery,
#: the published definitions, CDS Hooks discovery and the token endpoint (which
#: authenticates by its assertion).
PUBLIC_ENDPOINTS = frozenset(
    {
        "health.healthz",
        "health.openapi_yaml",
        "fhir.metadata",
        "fhir.read",
        "auth.smart_configuration",
        "auth.token",
        "cds.discovery",
        "static",
    }
)

#: Endpoint → (resource type, SMART v2 permission). ``None`` as the type: the
#: ``resource_type`` URL argument names it (entry reads and searches).
ENDPOINT_SCOPES: Mapping[str, tuple[str | None, str]] = {
    "triage.triage": ("Bundle", "c"),
    "fhir.triage_operation": ("QuestionnaireResponse", "c"),
    "store.read_bundle": ("Bundle", "r"),
    "store.read_entry": (None, "r"),
    "store.read_provenance": ("Provenance", "r"),
    "store.read_audit_event": ("AuditEvent", "r"),
    "store.search": (None, "s"),
    "store.search_form": (None, "s"),
    "store.delete_bundle": ("Bundle", "d"),
    # An intake link lets its holder submit one QuestionnaireResponse: $triage's scope.
    "intake.create_link": ("QuestionnaireResponse", "c"),
}


@dataclass(frozen=True, slots=True)
class Scope:
    """One parsed scope: a resource type (or ``*``) and its permissions."""

    resource_type: str
    permissions: frozenset[str]

    def covers(self, resource_type: str, permission: str) -> bool:
        return self.resource_type in ("*", resource_type) and permission in self.permissions


class ScopeError(ValueError):
    """A scope that is not SMART v2 system syntax."""


def parse_scope(text: str) -> Scope:
    match = _SCOPE.fullmatch(text)
    if match is None or match.group(2) == "":
        raise ScopeError(
            f"{text!r} is not a SMART v2 system scope (system/<Type|*>.<cruds letters|*>; "
            "v1 system/<Type|*>.<read|write> is read too)"
        )
    letters = match.group(2)
    if letters in V1_PERMISSIONS:
        return Scope(match.group(1), V1_PERMISSIONS[letters])
    return Scope(match.group(1), ALL_PERMISSIONS if letters == "*" else frozenset(letters))


def parse_scopes(texts: Iterable[str]) -> tuple[Scope, ...]:
    return tuple(parse_scope(text) for text in texts)


def permits(scopes: Iterable[Scope], resource_type: str, permission: str) -> bool:
    return any(scope.covers(resource_type, permission) for scope in scopes)


def required_scope(endpoint: str, view_args: Mapping[str, object]) -> tuple[str, str] | None:
    """(resource type, permission) an endpoint needs; None when it needs no scope."""
    needed = ENDPOINT_SCOPES.get(endpoint)
    if needed is None:
        return None
    resource_type, permission = needed
    if resource_type is None:
        resource_type = str(view_args.get("resource_type", ""))
    return resource_type, permission


def scope_text(resource_type: str, permission: str) -> str:
    return f"system/{resource_type}.{permission}"


__all__ = [
    "DEFAULT_SCOPES",
    "ENDPOINT_SCOPES",
    "PUBLIC_ENDPOINTS",
    "SCOPE_TYPES",
    "Scope",
    "ScopeError",
    "parse_scope",
    "parse_scopes",
    "permits",
    "required_scope",
    "scope_text",
]
