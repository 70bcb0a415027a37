"""Client administration (the ``twitch-triage clients`` commands) and request identification.

Flask-free: the CLI, the embedded default's bootstrap and the request hook
call these with a :class:`~api.storage.clients.ClientStore`.
"""

from __future__ import annotations

import string
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from api.auth.jwks import KeySetError, check_public_jwks, https_or_loopback
from api.auth.keys import ACCESS_TOKEN_PREFIX, new_api_key, new_client_id, secret_hash
from api.auth.scopes import DEFAULT_SCOPES, SCOPE_TYPES, Scope, parse_scopes
from api.storage.clients import (
    INVISIBLE_CATEGORIES,
    ClientRecord,
    ClientStore,
    ConfusableNameError,
    confusable_with,
    shown,
    tenant_names,
)

#: The tenant of the embedded default deployment (and of rows stored before tenants).
LOCAL_TENANT = "local"


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the client, its tenant (whose rows it sees) and its scopes."""

    client_id: str
    tenant: str
    scopes: tuple[Scope, ...]


@dataclass(frozen=True, slots=True)
class CreatedClient:
    """What ``clients create`` prints: the key appears here and nowhere else."""

    client_id: str
    tenant: str
    api_key: str
    label: str
    scopes: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "client_id": self.client_id,
            "tenant": self.tenant,
            "api_key": self.api_key,
            "label": self.label,
            "scopes": list(self.scopes),
        }


class ClientError(ValueError):
    """A client command that cannot be carried out (bad tenant name, unknown client ...)."""


#: Longest tenant name (its column) and client label.
NAME_MAX_CHARS = 128
#: What a new tenant name is made of: an identifier an operator can read and type.
TENANT_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_.")


def check_tenant(name: str, existing: Iterable[str]) -> str:
    """The tenant ``name`` names: an existing tenant exactly (old rows are kept as they
    are), or a new one of 1 to 128 ASCII letters, digits, '-', '_' or '.' that looks
    like no existing tenant (:func:`api.storage.clients.name_skeleton`: case, width,
    compatibility forms and invisible characters ignored).

    Why ASCII: ``ＡCME`` (full width), ``ACME`` with a zero-width space or a bidi
    control, and ``АСМЕ`` (Cyrillic) all print like ``ACME`` in an audit log or a CLI
    listing; a tenant is an identifier, and ASCII is the one script in which every
    distinct name reads differently once case is ignored.
    """
    value = name.strip()
    names = list(existing)
    if value in names:
        return value
    other = confusable_with(value, names)
    if other is not None:
        raise ClientError(str(ConfusableNameError("tenant", value, other)))
    if value and len(value) <= NAME_MAX_CHARS and set(value) <= TENANT_CHARACTERS:
        return value
    plain = unicodedata.normalize("NFKC", value)
    hint = f"; in plain characters that is {plain!r}" if plain != value and plain.isascii() else ""
    raise ClientError(
        f"tenant must be 1 to {NAME_MAX_CHARS} ASCII letters, digits, '-', '_' or '.', "
        f"got {shown(name)}{hint}"
    )


def invisible_character(text: str) -> str | None:
    """The first character of ``text`` a reader cannot see as itself (a control, format,
    unassigned or private-use character, or a space other than the plain one), as
    ``U+XXXX NAME``; None when there is none."""
    for char in text:
        category = unicodedata.category(char)
        if category in INVISIBLE_CATEGORIES or (category == "Zs" and char != " "):
            return f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed')}"
    return None


def check_label(label: str, existing: Iterable[str]) -> str:
    """A client label: empty, or at most 128 visible characters already in NFKC form
    that look like no other label of the tenant's active clients (the same label
    again is allowed: client ids tell such clients apart)."""
    value = label.strip()
    if not value:
        return value
    other = confusable_with(value, existing)
    if other is not None:
        raise ClientError(str(ConfusableNameError("client label", value, other)))
    if len(value) > NAME_MAX_CHARS:
        raise ClientError(f"--label must be at most {NAME_MAX_CHARS} characters")
    hidden = invisible_character(value)
    if hidden is not None:
        raise ClientError(f"--label {shown(label)} holds an invisible character ({hidden})")
    plain = unicodedata.normalize("NFKC", value)
    if plain != value:
        raise ClientError(f"--label {shown(label)} is not in NFKC form; write it {shown(plain)}")
    return value


#: Largest inline JWK Set registered: what a ``--jwks-url`` answer may hold. It is parsed
#: on every token request or CDS call of its client.
INLINE_JWKS_MAX_BYTES = 65536


def check_inline_jwks(jwks: Any) -> bytes:
    """The JWK Set as stored; ClientError when it breaks the key rule (public signing
    keys only, each with a kid: :func:`api.auth.jwks.check_public_jwks`) or is larger
    than a fetched one may be."""
    try:
        check_public_jwks(jwks)
    except KeySetError as exc:
        raise ClientError(str(exc)) from None
    stored = orjson.dumps(jwks)
    if len(stored) > INLINE_JWKS_MAX_BYTES:
        raise ClientError(f"the JWK Set is larger than {INLINE_JWKS_MAX_BYTES} bytes")
    return stored


def create_client(
    clients: ClientStore,
    *,
    tenant: str,
    label: str = "",
    scopes: Sequence[str] = (),
    jwks: dict[str, object] | None = None,
    jwks_url: str | None = None,
) -> CreatedClient:
    """Register a client (its tenant too, on first use) and return its new key."""
    chosen = tuple(dict.fromkeys(scopes)) or DEFAULT_SCOPES
    try:
        parsed = parse_scopes(chosen)
    except ValueError as exc:
        raise ClientError(str(exc)) from None
    for text, scope in zip(chosen, parsed, strict=True):
        if scope.resource_type != "*" and scope.resource_type not in SCOPE_TYPES:
            raise ClientError(
                f"{text!r} names a resource type this API does not hold; "
                f"use * or one of {', '.join(SCOPE_TYPES)}"
            )
    # The rule EHR registration applies too: public signing keys only, each with a kid
    # (the assertion names its key), RSA of 2048 bits or more, EC on P-384; bounded size.
    stored_jwks = None if jwks is None else check_inline_jwks(jwks)
    if jwks_url is not None and not https_or_loopback(jwks_url):
        raise ClientError("--jwks-url must be an https URL (http only on a loopback address)")
    tenant = check_tenant(tenant, tenant_names(clients.store))
    label = check_label(label, clients.labels(tenant))
    key = new_api_key()
    record = ClientRecord(
        id=new_client_id(),
        tenant=tenant,
        label=label,
        scopes=" ".join(chosen),
        key_hash=secret_hash(key),
        previous_key_hash=None,
        previous_until_us=None,
        revoked_us=None,
        created_us=now_us(),
        jwks_json=stored_jwks,
        jwks_url=jwks_url,
    )
    try:
        clients.create(record)  # the tenant and label are checked again in its transaction
    except ConfusableNameError as exc:
        raise ClientError(str(exc)) from None
    return CreatedClient(record.id, record.tenant, key, label, chosen)


def rotate_client(clients: ClientStore, client_id: str, grace_seconds: int) -> str:
    """A new key; the old one keeps working for ``grace_seconds``."""
    key = new_api_key()
    until = now_us() + grace_seconds * 1_000_000
    if not clients.rotate(client_id, secret_hash(key), until):
        raise ClientError(f"no active client {client_id!r}")
    return key


def revoke_client(clients: ClientStore, client_id: str) -> None:
    """Revoke now: the client's keys and access tokens stop working at once."""
    if not clients.revoke(client_id, now_us()):
        raise ClientError(f"no active client {client_id!r}")


def describe(record: ClientRecord) -> dict[str, object]:
    """A client as ``clients list`` prints it (never a key or hash)."""
    return {
        "client_id": record.id,
        "tenant": record.tenant,
        "label": record.label,
        "scopes": record.scopes.split(),
        "revoked": record.revoked_us is not None,
        "retiring_key_until_us": record.previous_until_us,
        "jwks": "inline" if record.jwks_json else ("url" if record.jwks_url else None),
    }


@lru_cache(maxsize=256)
def granted_scopes(text: str) -> tuple[Scope, ...]:
    """The scopes of a stored, space-separated grant; parsed once per distinct grant.

    Every authenticated request reads its client's grant; the parse is pure and a
    Scope immutable, and a deployment has few distinct grants.
    """
    return parse_scopes(text.split())


def identify(clients: ClientStore, credential: str, at_us: int) -> Principal | None:
    """The principal a bearer credential (API key or access token) names, or None."""
    return identify_credential(clients, credential, at_us)[0]


def identify_credential(
    clients: ClientStore, credential: str, at_us: int
) -> tuple[Principal | None, Principal | None]:
    """(the active principal the credential names, the client a refused one belongs to).

    One lookup for both. The second is set only when the credential is refused but
    known (revoked, expired, a retired key): it grants nothing (no scopes) and only
    files the refused attempt under the tenant whose credential was used, where a
    leaked or forgotten key shows up.
    """
    digest = secret_hash(credential)
    if credential.startswith(ACCESS_TOKEN_PREFIX):
        found = clients.by_token_hash(digest)
        if found is None:
            return None, None
        record, granted, expires_us = found
        if expires_us <= at_us or record.revoked_us is not None:
            return None, _former(record)
        return Principal(record.id, record.tenant, granted_scopes(granted)), None
    record = clients.by_key_hash(digest)
    if record is None:
        return None, None
    if record.revoked_us is not None:
        return None, _former(record)
    if record.key_hash != digest and (
        record.previous_until_us is None or record.previous_until_us <= at_us
    ):
        return None, _former(record)  # the retiring key, after its grace period
    return Principal(record.id, record.tenant, granted_scopes(record.scopes)), None


def _former(record: ClientRecord) -> Principal:
    return Principal(record.id, record.tenant, ())


__all__ = [
    "LOCAL_TENANT",
    "ClientError",
    "CreatedClient",
    "Principal",
    "check_label",
    "check_tenant",
    "create_client",
    "describe",
    "identify",
    "identify_credential",
    "invisible_character",
    "revoke_client",
    "rotate_client",
]
