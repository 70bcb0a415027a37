"""The OpenAPI description of SMART Backend Services (``api/auth/smart.py``), for ``tools.openapi``.

Two paths: discovery (``GET /.well-known/smart-configuration``) and the token
endpoint (``POST /auth/token``). The token endpoint speaks OAuth 2.0, not FHIR: its
request is a url-encoded form (RFC 6749 §4.4.2, RFC 7521 §4.2, RFC 7523 §2.2, SMART
App Launch STU 2.2 "Backend Services") and its refusals are OAuth JSON error bodies
(RFC 6749 §5.2), which SMART clients parse; only what the HTTP layer answers before
the view runs (a wrong method, a body too large or unreadable, an unexpected error,
the store down) is an OperationOutcome like everywhere else. The values come from
``api.auth.smart``'s constants, so the contract follows the code; the contract
fuzzing of ``tests/test_fuzz_contract.py`` checks every answer against it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api.auth.keys import ACCESS_TOKEN_PREFIX
from api.auth.smart import (
    ALGORITHMS,
    ASSERTION_MAX_CHARS,
    ASSERTION_MAX_SECONDS,
    ASSERTION_TYPE,
    CAPABILITIES,
    DESCRIPTION_MAX_CHARS,
    FORM_TYPE,
    LEEWAY_SECONDS,
    SCOPES_SUPPORTED,
    TOKEN_SECONDS,
)

FHIR_JSON = "application/fhir+json"
JSON = "application/json"
Schema = dict[str, Any]

#: One scope the token endpoint reads (``api.auth.scopes``): SMART v2 system scopes, the
#: letters ``cruds`` in order (at least one) or ``*``; v1 ``read``/``write`` too.
_SCOPE = r"system/(\*|[A-Z][A-Za-z]{1,63})\.(\*|read|write|cr?u?d?s?|ru?d?s?|ud?s?|ds?|s)"
#: The ``scope`` parameter: scopes separated by whitespace, or nothing (the default).
SCOPE_PATTERN = rf"^\s*({_SCOPE}(\s+{_SCOPE})*)?\s*$"
#: A JWS in compact serialization (RFC 7515 §7.1): three base64url parts.
JWS_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$"

#: ``error_description`` characters (RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E).
DESCRIPTION_PATTERN = r"^[ !#-\[\]-~]+$"
#: The OAuth error codes (RFC 6749 §5.2) this endpoint answers, by HTTP status.
OAUTH_ERRORS: dict[int, tuple[str, ...]] = {
    400: ("invalid_request", "unsupported_grant_type", "invalid_scope"),
    401: ("invalid_client",),
    # RFC 6749 §5.2 has no code for rate limiting: the status and Retry-After say it.
    429: ("invalid_request",),
}

_TOKEN_TEXT = (
    "SMART Backend Services (SMART App Launch STU 2.2): the client credentials grant "
    "(RFC 6749 §4.4) authenticated by a signed JWT client assertion (RFC 7523 §2.2, "
    "SMART `client-confidential-asymmetric`). Public: the assertion is the credential, "
    "so no API key and no scope are needed, and the call is not counted against "
    "TWITCH_TRIAGE_RATE_LIMIT (no `RateLimit` headers).\n\n"
    "**Limits of its own.** Every request counts against its client address "
    "(TWITCH_TRIAGE_TOKEN_RATE_LIMIT, before the form is read), and every refused "
    "authentication (`invalid_client`) of a registered client against its `client_id` "
    "(TWITCH_TRIAGE_TOKEN_FAILURE_LIMIT, when set; not set by default); a client over "
    "that limit is refused before its "
    "keys are looked at until the window ends. Over either limit the answer is 429, "
    "`invalid_request` (RFC 6749 §5.2 names no code for rate limiting) saying when to "
    "retry, with `Retry-After` in seconds. Counted where TWITCH_TRIAGE_RATE_LIMIT_STORAGE "
    "says (Redis: shared by every worker and node).\n\n"
    f"**The assertion.** Signed {' or '.join(ALGORITHMS)} (`none` and HMAC are refused "
    "before any key is looked at) by a key of the client's registered JWK Set (inline, or "
    "fetched from its URL). Header: `kid` naming exactly one key of the algorithm's key "
    "type; `jku`, if sent, the registered JWK Set URL; `typ`, if sent, `JWT`. Claims: "
    "`iss` = `sub` = the client id; `aud` = this token URL exactly as "
    "`GET /.well-known/smart-configuration` names it (`token_endpoint`: "
    "TWITCH_TRIAGE_PUBLIC_BASE_URL + `/auth/token` when set, else the host called); `exp` "
    f"at most {ASSERTION_MAX_SECONDS} s ahead; `jti` never used before (kept until the "
    f"assertion expires). {LEEWAY_SECONDS} s of clock skew are tolerated on `exp`, `nbf` "
    "and `iat`.\n\n"
    "**Scope.** SMART requires clients to send `scope`; the token carries the scopes asked "
    "for when the client holds them (else 400 `invalid_scope`). A missing or empty (or "
    "all-whitespace) `scope` is granted the client's registered scopes, the pre-defined "
    "default RFC 6749 §3.3 allows; the answer's `scope` always says what was granted.\n\n"
    "**Errors are OAuth, not FHIR.** Every refusal of the token request itself is "
    '`application/json` `{"error": …, "error_description": …}` (RFC 6749 §5.2), not an '
    "OperationOutcome: a body that is not `application/x-www-form-urlencoded` (any other "
    "Content-Type, or none, is 400 `invalid_request`, never 415), a missing `grant_type`, "
    "`client_assertion_type` or `client_assertion`, or a parameter sent twice is 400 "
    "`invalid_request`; another grant type 400 `unsupported_grant_type`; a scope that is "
    "malformed or not held 400 `invalid_scope`; every failure to authenticate the client "
    "(not a JWT, wrong algorithm, unknown or revoked client, no matching key, bad "
    "signature, wrong `aud`/`iss`/`sub`, expired or too far ahead, `jti` replayed, a "
    "`client_id` other than `iss`) 401 `invalid_client` with `WWW-Authenticate`. Checks "
    "run in this order: media type, repeated parameters, `grant_type`, "
    "`client_assertion_type`, `client_assertion`, the client, the signature and claims, "
    "`scope`, the `jti`. Every OAuth answer, token or error, carries `Cache-Control: "
    "no-store` and `Pragma: no-cache` (RFC 6749 §5.1). What the HTTP layer answers before "
    "the token logic runs is an OperationOutcome (`application/fhir+json`) as on every "
    "other path: a method other than POST (405; `Allow` names POST and OPTIONS), a body over "
    "TWITCH_TRIAGE_MAX_BODY_BYTES (413), a body that cannot be read (400: cut short of its "
    "`Content-Length`, or a malformed chunked encoding), the store unavailable (503) and "
    "an unexpected error (500)."
)

_DISCOVERY_TEXT = (
    "SMART discovery for Backend Services (SMART App Launch STU 2.2, "
    "`client-confidential-asymmetric` discovery requirements): where the token endpoint "
    "is and how to authenticate to it. Public, no patient data. The same document is "
    "served at the FHIR base, `/fhir/.well-known/smart-configuration`, where SMART clients "
    "look for it. `code_challenge_methods_supported` (`S256`) is required by SMART 2 even "
    "though no authorization-code flow exists here; `permission-v1`: v1 scopes (`.read`, "
    "`.write`) are read with SMART 2's meaning."
)


def _oauth_error(status: int) -> Schema:
    """An OAuth 2.0 error body (RFC 6749 §5.2) with the codes ``status`` carries."""
    return {
        "type": "object",
        "description": "OAuth 2.0 error response (RFC 6749 §5.2), not an OperationOutcome.",
        "required": ["error", "error_description"],
        "additionalProperties": False,
        "properties": {
            "error": {"type": "string", "enum": list(OAUTH_ERRORS[status])},
            "error_description": {
                "type": "string",
                "minLength": 1,
                "maxLength": DESCRIPTION_MAX_CHARS,
                "pattern": DESCRIPTION_PATTERN,
                "description": "Which check failed, for a developer; in the characters RFC "
                '6749 §5.2 allows (printable ASCII but `"` and `\\`).',
            },
        },
    }


def _no_cache(*, required: bool = True) -> dict[str, Schema]:
    """The RFC 6749 §5.1 headers of every OAuth answer (new dicts: no YAML anchors)."""
    return {
        "Cache-Control": {
            "description": "`no-store`: the answer holds a credential or is about one.",
            "required": True,
            "schema": {"type": "string", "const": "no-store"},
        },
        "Pragma": {
            "description": "`no-cache` (RFC 6749 §5.1)"
            + ("." if required else ", on the OAuth error (not on the OperationOutcome)."),
            "required": required,
            "schema": {"type": "string", "const": "no-cache"},
        },
    }


def _token_request() -> Schema:
    return {
        "type": "object",
        "description": "RFC 6749 §4.4.2 with the client assertion of RFC 7521 §4.2 / RFC "
        "7523 §2.2, as SMART Backend Services profiles it. Each parameter at most once; "
        "other parameters are ignored (RFC 6749 §3.2).",
        "required": ["grant_type", "client_assertion_type", "client_assertion"],
        "properties": {
            "grant_type": {
                "type": "string",
                "enum": ["client_credentials"],
                "description": "Fixed: `client_credentials`. Another value is 400 "
                "`unsupported_grant_type`; none is 400 `invalid_request`.",
            },
            "client_assertion_type": {
                "type": "string",
                "enum": [ASSERTION_TYPE],
                "description": f"Fixed: `{ASSERTION_TYPE}`.",
            },
            "client_assertion": {
                "type": "string",
                "minLength": 5,
                "maxLength": ASSERTION_MAX_CHARS,
                "pattern": JWS_PATTERN,
                "description": "The signed authentication JWT (JWS compact serialization; "
                "see the operation's description). Longer than "
                f"{ASSERTION_MAX_CHARS} characters is 400 `invalid_request`; one that "
                "cannot be verified is 401 `invalid_client`.",
            },
            "scope": {
                "type": "string",
                "pattern": SCOPE_PATTERN,
                "description": "SMART v2 system scopes separated by spaces "
                "(`system/Observation.rs system/Bundle.c`), each held by the client; v1 "
                "`.read`/`.write` are read as `.rs`/`.cud`. Missing or empty: the client's "
                "registered scopes (RFC 6749 §3.3 default).",
                "example": "system/Observation.rs",
            },
            "client_id": {
                "type": "string",
                "description": "Optional (RFC 7521 §4.2); when sent it must be the "
                "assertion's `iss`, else 401 `invalid_client`.",
            },
        },
    }


def _token_response() -> Schema:
    return {
        "type": "object",
        "description": "Access token response (RFC 6749 §5.1; SMART Backend Services).",
        "required": ["access_token", "token_type", "expires_in", "scope"],
        "additionalProperties": False,
        "properties": {
            "access_token": {
                "type": "string",
                "pattern": f"^{ACCESS_TOKEN_PREFIX}[A-Za-z0-9_-]{{43}}$",
                "description": "Send it as `Authorization: Bearer <access_token>`. "
                "Opaque to the client; revoking the client ends it at once.",
            },
            "token_type": {"type": "string", "const": "bearer"},
            "expires_in": {
                "type": "integer",
                "minimum": 1,
                "maximum": TOKEN_SECONDS,
                "description": f"Lifetime in seconds ({TOKEN_SECONDS}); no refresh token "
                "is issued: ask for a new token with a new assertion.",
            },
            "scope": {
                "type": "string",
                "description": "The scopes granted, separated by spaces: those asked for, "
                "or the client's registered scopes when none were asked for.",
            },
        },
    }


def _smart_configuration() -> Schema:
    def values(items: list[str] | tuple[str, ...], text: str) -> Schema:
        return {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "enum": list(items)},
            "description": text,
        }

    return {
        "type": "object",
        "description": "SMART configuration (SMART App Launch STU 2.2, "
        "`.well-known/smart-configuration`), the fields this server sends.",
        "required": [
            "token_endpoint",
            "token_endpoint_auth_methods_supported",
            "token_endpoint_auth_signing_alg_values_supported",
            "grant_types_supported",
            "scopes_supported",
            "code_challenge_methods_supported",
            "capabilities",
        ],
        "additionalProperties": False,
        "properties": {
            "token_endpoint": {
                "type": "string",
                "format": "uri",
                "pattern": "^https?://[^/]+(/.*)?/auth/token$",
                "description": "The token URL, also the `aud` of a client assertion: "
                "TWITCH_TRIAGE_PUBLIC_BASE_URL + `/auth/token` when set, else the URL of "
                "the host called.",
            },
            "token_endpoint_auth_methods_supported": values(
                ["private_key_jwt"], "Client authentication: a signed JWT assertion."
            ),
            "token_endpoint_auth_signing_alg_values_supported": values(
                ALGORITHMS, "Algorithms a client assertion may be signed with."
            ),
            "grant_types_supported": values(["client_credentials"], "Backend Services only."),
            "scopes_supported": values(SCOPES_SUPPORTED, "Scopes a client may be granted."),
            "code_challenge_methods_supported": values(["S256"], "Never `plain` (SMART 2)."),
            "capabilities": values(CAPABILITIES, "SMART capabilities."),
        },
    }


def components() -> dict[str, Schema]:
    """The SMART schemas, by component name."""
    return {
        "SmartConfiguration": _smart_configuration(),
        "TokenRequest": _token_request(),
        "TokenResponse": _token_response(),
        "OAuthError400": _oauth_error(400),
        "OAuthError401": _oauth_error(401),
        "OAuthError429": _oauth_error(429),
    }


def smart_paths(error_response: Callable[[int], Schema]) -> dict[str, dict[str, Any]]:
    """``GET /.well-known/smart-configuration`` and ``POST /auth/token``."""
    outcome = {FHIR_JSON: {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}}
    return {
        "/.well-known/smart-configuration": {
            "get": {
                "operationId": "smartConfiguration",
                "summary": "SMART discovery (token endpoint, algorithms, scopes)",
                "description": _DISCOVERY_TEXT,
                "responses": {
                    "200": {
                        "description": "The SMART configuration.",
                        "content": {
                            JSON: {"schema": {"$ref": "#/components/schemas/SmartConfiguration"}}
                        },
                    },
                    "405": error_response(405),
                },
            }
        },
        "/auth/token": {
            "post": {
                "operationId": "smartToken",
                "summary": "SMART Backend Services: a signed client assertion in, an access "
                "token out",
                "description": _TOKEN_TEXT,
                "requestBody": {
                    "required": True,
                    "content": {
                        FORM_TYPE: {
                            "schema": {"$ref": "#/components/schemas/TokenRequest"},
                            "example": {
                                "grant_type": "client_credentials",
                                "scope": "system/Observation.rs",
                                "client_assertion_type": ASSERTION_TYPE,
                                "client_assertion": "eyJhbGciOiJSUzM4NCIsImtpZCI6ImtleS0xIn0"
                                ".eyJpc3MiOiJDTElFTlRfSUQifQ.c2lnbmF0dXJl",
                            },
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "The access token.",
                        "headers": _no_cache(),
                        "content": {
                            JSON: {"schema": {"$ref": "#/components/schemas/TokenResponse"}}
                        },
                    },
                    "400": {
                        "description": "The token request is refused (OAuth `invalid_request`, "
                        "`unsupported_grant_type` or `invalid_scope`; see the operation's "
                        "description), or, as an OperationOutcome (issue code `structure`), "
                        "the body could not be read.",
                        "headers": _no_cache(required=False),
                        "content": {
                            JSON: {"schema": {"$ref": "#/components/schemas/OAuthError400"}},
                            **outcome,
                        },
                    },
                    "401": {
                        "description": "The client could not be authenticated: OAuth "
                        "`invalid_client`.",
                        "headers": {
                            **_no_cache(),
                            "WWW-Authenticate": {
                                "description": "Names the realm of the token endpoint.",
                                "required": True,
                                "schema": {
                                    "type": "string",
                                    "const": 'Bearer realm="twitch-triage"',
                                },
                            },
                        },
                        "content": {
                            JSON: {"schema": {"$ref": "#/components/schemas/OAuthError401"}}
                        },
                    },
                    "429": {
                        "description": "Too many token requests from this address, or too "
                        "many refused authentications of this client: OAuth `invalid_request`; "
                        "retry after `Retry-After` seconds.",
                        "headers": {
                            **_no_cache(),
                            "Retry-After": {
                                "description": "Seconds until the limit's window ends.",
                                "required": True,
                                "schema": {"type": "integer", "minimum": 1},
                            },
                        },
                        "content": {
                            JSON: {"schema": {"$ref": "#/components/schemas/OAuthError429"}}
                        },
                    },
                    **{str(status): error_response(status) for status in (405, 413, 500, 503)},
                },
            }
        },
    }


__all__ = ["OAUTH_ERRORS", "SCOPE_PATTERN", "components", "smart_paths"]
