"""Typed configuration from environment variables, with safe defaults.

Read once in the app factory; a bad value stops start-up with a message that
names the variable, instead of surfacing later as a confusing request error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from flask import current_app

from api.fhir import FhirContext
from api.services.links import LinkSigner
from api.storage import Store
from api.storage.cds import CdsStore
from api.storage.clients import ClientStore

ENV_PREFIX = "TWITCH_TRIAGE_"
_DIGITS = re.compile(r"[0-9]{1,12}")


class ConfigError(ValueError):
    """A configuration value is missing its type or range; names the variable."""


def parse_int(name: str, raw: Any, *, minimum: int, maximum: int) -> int:
    """A strict integer: digits only (no sign, no '64k', no '1e5'), within range."""
    if isinstance(raw, bool):
        raise ConfigError(f"{name} must be an integer, got {raw!r}")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and _DIGITS.fullmatch(raw.strip()):
        value = int(raw.strip())
    else:
        raise ConfigError(f"{name} must be a whole number written in digits, got {raw!r}")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be from {minimum} to {maximum}, got {value}")
    return value


def parse_base_url(name: str, raw: Any) -> str:
    """An absolute http(s) URL without query or fragment; trailing '/' dropped."""
    if not isinstance(raw, str):
        raise ConfigError(f"{name} must be a URL string, got {raw!r}")
    value = raw.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            f"{name} must be an absolute http(s) URL without query or fragment, got {raw!r}"
        )
    return value


def parse_bool(name: str, raw: Any) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off); anything else is an error."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower() if isinstance(raw, str | int) else None
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def parse_database_url(name: str, raw: Any) -> str:
    """A SQLite (``sqlite+pysqlite:///path``) or PostgreSQL (``postgresql+psycopg://``) URL."""
    if not isinstance(raw, str):
        raise ConfigError(f"{name} must be a database URL string, got {raw!r}")
    value = raw.strip()
    if value == "":
        return value
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise ConfigError(
            f"{name} must start with sqlite:/// or postgresql+psycopg://, got scheme {scheme!r}"
        )
    if scheme.startswith("sqlite") and value.split("://", 1)[1] in ("", "/", "/:memory:"):
        raise ConfigError(f"{name} must name a SQLite file (workers share it), got {value!r}")
    return value


def parse_origins(name: str, raw: Any) -> tuple[str, ...]:
    """Comma-separated ``scheme://host[:port]`` origins (no path, no wildcard)."""
    items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
    origins = []
    for item in items:
        origin = str(item).strip().rstrip("/")
        if not origin:
            continue
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or "*" in origin:
            raise ConfigError(f"{name} must list origins like https://app.example, got {item!r}")
        origins.append(origin)
    return tuple(origins)


def parse_rate_limit(name: str, raw: Any) -> str:
    """A ``limits`` rate string ("600/minute;20/second"), or "" for no limit."""
    from limits import parse_many  # noqa: PLC0415 (only when a limit is configured)

    value = str(raw).strip()
    if value:
        try:
            parse_many(value)
        except ValueError:
            raise ConfigError(f"{name} must look like 600/minute;20/second, got {raw!r}") from None
    return value


def parse_limit_storage(name: str, raw: Any) -> str:
    value = str(raw).strip()
    if not value.startswith(("memory://", "redis://", "rediss://")):
        raise ConfigError(f"{name} must be memory:// or a redis:// URL, got {raw!r}")
    return value


def parse_secret(name: str, raw: Any) -> str:
    """A signing secret: "" (use the instance folder's) or at least 32 characters."""
    value = str(raw).strip()
    if value and len(value) < 32:
        raise ConfigError(f"{name} must be at least 32 characters long (or empty)")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the API reads from its environment."""

    #: Largest accepted request body in bytes (413 above it).
    max_body_bytes: int = 65536
    #: Base of the product's canonical URLs (CodeSystems, Questionnaire); not the host.
    canonical_base: str = "https://twitch-triage.org/fhir"
    #: SQLAlchemy URL of the store; "" = the SQLite file in the instance folder.
    database_url: str = ""
    #: False = "store nothing": triage works, nothing of the assessment is kept.
    store_assessments: bool = True
    #: Days an assessment is kept before ``twitch-triage purge`` removes it; 0 = forever.
    retention_days: int = 0
    #: Days an AuditEvent is kept before ``twitch-triage purge`` removes it; 0 = forever.
    audit_retention_days: int = 0
    #: Seconds a rotated API key keeps working after ``twitch-triage clients rotate``.
    key_grace_seconds: int = 86400
    #: Seconds each process may reuse an API-key lookup, and only while no client was
    #: revoked or rotated since (the credential epoch): revocation works everywhere at
    #: once; 0 = look up every request.
    key_cache_seconds: int = 5
    #: True when a proxy in front terminates TLS: only then may ``serve`` bind a
    #: non-loopback address (the API carries patient data).
    tls_terminated: bool = False
    #: Browser origins allowed by CORS (comma-separated); empty = none.
    cors_origins: tuple[str, ...] = ()
    #: Requests per client, in the ``limits`` notation ("600/minute;20/second"); "" = none.
    rate_limit: str = "600/minute"
    #: Refusals of anonymous callers audited per client address, in the ``limits``
    #: notation; beyond it they are refused alike but not audited (every audit row is a
    #: durable write, kept for ``audit_retention_days``: an anonymous flood must not fill
    #: the trail or the disk). "" = audit every one.
    anonymous_audit_limit: str = "120/minute"
    #: Where the rate-limit counters live: memory:// (one node) or redis://host:port.
    rate_limit_storage: str = "memory://"
    #: SMART token requests (``POST /auth/token``) per client address, in the ``limits``
    #: notation, counted before the request is read: each may cost a signature check and
    #: a JWKS lookup, and the caller is not yet identified. "" = no limit.
    token_rate_limit: str = "300/minute"  # noqa: S105 (a rate, not a secret)
    #: Token requests refused as ``invalid_client`` (failed authentication) per registered
    #: ``client_id`` (the assertion's ``iss``); once over it, that client's requests are
    #: refused before the signature is checked until the window ends (a distributed flood
    #: of forged assertions naming one client). "" = no limit, the default: anyone who
    #: knows a client id could otherwise lock that client out, and an assertion signed
    #: with an asymmetric key cannot be guessed (the per-address limit bounds the cost).
    token_failure_limit: str = ""
    #: File ``serve`` writes the embedded default's key to; "" = ``local-api-key`` in
    #: the instance folder.
    local_key_file: str = ""
    #: Secret (at least 32 characters) that signs report and intake links; "" = a random
    #: secret kept in ``link-secret`` in the instance folder. Every node of one
    #: deployment must share it (set it in multi-node deployments).
    link_secret: str = ""
    #: Seconds a signed clinician-report link stays valid.
    report_link_seconds: int = 7 * 86400
    #: Origins that may embed the product's HTML pages in a frame (CSP
    #: ``frame-ancestors``; EHRs embed reports); empty = no framing at all.
    frame_ancestors: tuple[str, ...] = ()
    #: Absolute URL clients reach this API at (``https://triage.example``), used in links
    #: handed to other systems (report links, CDS cards); "" = the request's own host URL.
    public_base_url: str = ""
    #: SMART launch URL of an intake app offered on CDS Hooks cards (a ``smart`` link);
    #: "" = no such link.
    cds_intake_app_url: str = ""

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Defaults, then ``TWITCH_TRIAGE_*`` variables, then ``overrides``.

        Override keys are the field names in any case (``MAX_BODY_BYTES`` or
        ``max_body_bytes``); other keys are ignored here (the app factory
        passes them to Flask's config).
        """
        env = os.environ if environ is None else environ
        raw: dict[str, tuple[str, Any]] = {}
        for field in fields(cls):
            var = ENV_PREFIX + field.name.upper()
            if var in env:
                raw[field.name] = (var, env[var])
        for key, value in (overrides or {}).items():
            name = key.lower()
            if name in {f.name for f in fields(cls)}:
                raw[name] = (f"config[{key!r}]", value)
        values = {name: _PARSERS[name](label, value) for name, (label, value) in raw.items()}
        return cls(**values)

    @classmethod
    def field_keys(cls) -> frozenset[str]:
        """Override keys that configure :class:`Settings` (upper case)."""
        return frozenset(f.name.upper() for f in fields(cls))


def _days(name: str, raw: Any) -> int:
    return parse_int(name, raw, minimum=0, maximum=36500)


#: Field → its parser (label, raw value) → typed value.
_PARSERS: dict[str, Any] = {
    "max_body_bytes": lambda label, value: parse_int(label, value, minimum=1, maximum=1 << 30),
    "canonical_base": parse_base_url,
    "database_url": parse_database_url,
    "store_assessments": parse_bool,
    "retention_days": _days,
    "audit_retention_days": _days,
    "key_grace_seconds": lambda label, value: parse_int(
        label, value, minimum=0, maximum=30 * 86400
    ),
    "key_cache_seconds": lambda label, value: parse_int(label, value, minimum=0, maximum=60),
    "tls_terminated": parse_bool,
    "cors_origins": parse_origins,
    "rate_limit": parse_rate_limit,
    "anonymous_audit_limit": parse_rate_limit,
    "rate_limit_storage": parse_limit_storage,
    "token_rate_limit": parse_rate_limit,
    "token_failure_limit": parse_rate_limit,
    "local_key_file": lambda _label, value: str(value).strip(),
    "link_secret": parse_secret,
    "report_link_seconds": lambda label, value: parse_int(
        label, value, minimum=60, maximum=90 * 86400
    ),
    "frame_ancestors": parse_origins,
    "public_base_url": lambda label, value: parse_base_url(label, value) if str(value) else "",
    "cds_intake_app_url": lambda label, value: parse_base_url(label, value) if str(value) else "",
}


#: Key of :class:`AppState` in ``app.extensions``.
EXTENSION = "twitch_triage"


@dataclass(frozen=True, slots=True)
class AppState:
    """Objects built once per app at start-up and read by the views.

    Per-deployment prebuilt resources live here, on the app, never in module
    globals: two apps (tests, later tenants) never share or evict each other's.
    """

    settings: Settings
    fhir: FhirContext
    #: The assessment and audit store (shared by every request of this app).
    store: Store
    #: Tenants, clients and SMART tokens (the same database).
    clients: ClientStore
    #: Signs and checks the browser links to reports and intake pages.
    links: LinkSigner
    #: Registered EHRs, used CDS JWT ids, cards and feedback (CDS Hooks, issue 13).
    cds: CdsStore


def app_state() -> AppState:
    """The :class:`AppState` of the app handling the current request."""
    return current_app.extensions[EXTENSION]
