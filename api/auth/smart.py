"""SMART Backend Services: discovery and the client-credentials token endpoint.

``POST /auth/token`` takes ``grant_type=client_credentials`` with a JWT client
assertion (RFC 7523) signed RS384 or ES384 by a key in the client's registered
JWKS (inline, or fetched from its URL with a short timeout and kept as the answer's
Cache-Control says, within 10 s to 5 minutes: :mod:`api.auth.jwks_cache`, as for an
EHR's ``jku``; an unknown ``kid`` fetches it again, at most once per 5 s). The assertion's
``iss`` and ``sub`` are the client id, ``aud`` is this token URL, ``exp`` at
most five minutes ahead, and its ``jti`` is never accepted twice (kept in the
database until it expires, under a primary key of client id and ``jti``: every worker and
node of a deployment shares it, so a replay is refused everywhere, two copies at once
included). ``none`` and HMAC assertions are refused before
any key is looked at. The key is found as SMART's "client-confidential-asymmetric"
profile says: a ``jku`` header must be the client's registered JWKS URL, and
exactly one key must have the header's ``kid`` and the algorithm's key type.
Errors follow RFC 6749 §5.2 (OAuth JSON), as SMART clients expect from a token
endpoint; every answer carries ``Cache-Control: no-store`` and ``Pragma: no-cache``
(RFC 6749 §5.1).

Hostile callers are bounded before they cost a signature check: every request counts
against its client address (``TWITCH_TRIAGE_TOKEN_RATE_LIMIT``) before the form is read,
and a registered client whose assertions were refused (``invalid_client``) too often
(``TWITCH_TRIAGE_TOKEN_FAILURE_LIMIT``, counted per ``client_id``) is refused before its
key is looked up, until the window ends. The counters live where the API's do
(``TWITCH_TRIAGE_RATE_LIMIT_STORAGE``: per process, or Redis shared by every worker and
node). Over a limit the answer is 429 with ``Retry-After`` and the §5.2 error
``invalid_request`` (§5.2 has no code for rate limiting; ``invalid_request`` is one every
OAuth client parses, and the status and ``Retry-After`` say to come back later).
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Mapping
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, request
from limits import RateLimitItem

from api.auth.audience import UNCHECKABLE, audience_base
from api.auth.clients import now_us
from api.auth.http import (
    LIMITER,
    SMART_ADDRESS_KEY_PREFIX,
    SMART_FAILURE_KEY_PREFIX,
    RateLimiter,
    client_address,
)
from api.auth.jwks import keys_named, public_signing_key
from api.auth.jwks_cache import JwksCache, KeySetUnavailableError
from api.auth.keys import malformed_date_claim, new_access_token, plain_claim, secret_hash
from api.auth.scopes import ALL_PERMISSIONS, Scope, ScopeError, parse_scopes
from api.config import app_state
from api.services.cds.fetch import header_fields
from api.storage.clients import ClientRecord

blueprint = Blueprint("auth", __name__)
logger = logging.getLogger("api.auth")

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FORM_TYPE = "application/x-www-form-urlencoded"
#: Token request parameters this endpoint reads: each may be sent once (RFC 6749 §3.2).
PARAMETERS = ("grant_type", "client_assertion_type", "client_assertion", "client_id", "scope")
#: Token answers hold a credential: never stored by a cache (RFC 6749 §5.1).
NO_CACHE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
#: Signature algorithms SMART Backend Services names; nothing else is accepted.
ALGORITHMS = ("RS384", "ES384")
#: Lifetime of an access token (SMART recommends at most five minutes).
TOKEN_SECONDS = 300
#: Latest ``exp`` an assertion may carry, from now (SMART: at most five minutes).
ASSERTION_MAX_SECONDS = 300
#: Clock skew tolerated on ``exp``/``nbf``/``iat``.
LEEWAY_SECONDS = 30
JWKS_TIMEOUT_SECONDS = 3.0
JWKS_MAX_BYTES = 65536
#: Longest client assertion read (a JWS of a few claims is well under 2,000 characters).
ASSERTION_MAX_CHARS = 16384
#: SMART capabilities this server has (discovery): asymmetric client authentication only;
#: v1 scopes are read with SMART 2's meaning.
CAPABILITIES = ("client-confidential-asymmetric", "permission-v1", "permission-v2")
#: Longest ``error_description`` sent (it may quote the request's ``scope``).
DESCRIPTION_MAX_CHARS = 500
SCOPES_SUPPORTED = (
    "system/*.cruds",
    "system/Bundle.cruds",
    "system/QuestionnaireResponse.cruds",
    "system/Observation.rs",
    "system/Provenance.rs",
    "system/AuditEvent.rs",
)


class OAuthError(Exception):
    """A refused token request (RFC 6749 §5.2)."""

    def __init__(
        self, error: str, description: str, status: int = 400, retry_after: int | None = None
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        #: Seconds until a rate-limited caller may try again (429 only).
        self.retry_after = retry_after


def _throttle(items: tuple[RateLimitItem, ...], key: str, what: str, *, count: bool = True) -> None:
    """Raise the 429 OAuthError when ``key`` is over one of ``items``.

    When the counter storage (Redis) fails the request goes on, as the API's limits
    do: a token endpoint down with Redis would stop every SMART client.
    """
    if not items:
        return
    limiter: RateLimiter = current_app.extensions[LIMITER]
    try:
        wait = limiter.over(items, key, count=count)
    except Exception:
        logger.warning("token rate limit not checked: counter storage unavailable")
        return
    if wait is not None:
        raise OAuthError(
            "invalid_request", f"too many {what}; retry after {wait} s", 429, retry_after=wait
        )


def _count(items: tuple[RateLimitItem, ...], key: str) -> None:
    """Count one event against ``items`` (nothing is refused here)."""
    if not items:
        return
    try:
        _limiter().over(items, key, count=True)
    except Exception:
        logger.warning("refused token request not counted: counter storage unavailable")


def _limiter() -> RateLimiter:
    return current_app.extensions[LIMITER]


def token_url() -> str:
    """This token endpoint's URL as discovery announces it (the host called when no
    public base URL is set; :func:`audience` decides what an assertion may name)."""
    base = app_state().settings.public_base_url or request.host_url.rstrip("/")
    return f"{base}/auth/token"


def audience() -> str:
    """The ``aud`` an assertion must name; invalid_client when it cannot be known
    (:mod:`api.auth.audience`: never a Host header naming another server)."""
    base = audience_base()
    if base is None:
        raise OAuthError("invalid_client", UNCHECKABLE, 401)
    return f"{base}/auth/token"


@blueprint.get("/.well-known/smart-configuration")
@blueprint.get("/fhir/.well-known/smart-configuration")
def smart_configuration() -> Response:
    """SMART discovery: where to get a token and how to authenticate for it.

    Served at the FHIR base (``/fhir``) too: SMART requires the document at the FHIR
    base URL plus ``/.well-known/smart-configuration``. ``code_challenge_methods_supported``
    is REQUIRED by SMART 2 (``S256``, never ``plain``) even where, as here, no
    authorization-code flow exists; ``permission-v1``: v1 scopes (``.read``) are read.
    """
    body = {
        "token_endpoint": token_url(),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": list(SCOPES_SUPPORTED),
        "code_challenge_methods_supported": ["S256"],
        "capabilities": list(CAPABILITIES),
    }
    return Response(orjson.dumps(body), content_type="application/json")


@blueprint.post("/auth/token")
def token() -> Response:
    """Exchange a signed client assertion for a short-lived access token."""
    try:
        # Before the form is read: a flood from one address costs one counter each.
        limiter = _limiter()
        address = client_address(limiter.proxies)  # behind deploy/nginx: the real client
        _throttle(limiter.token_items, SMART_ADDRESS_KEY_PREFIX + address, "token requests")
        body = _issue()
    except OAuthError as exc:
        headers = dict(NO_CACHE)
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="twitch-triage"'
        if exc.retry_after is not None:
            headers["Retry-After"] = str(exc.retry_after)
        return Response(
            orjson.dumps({"error": exc.error, "error_description": _description(exc.description)}),
            status=exc.status,
            headers=headers,
            content_type="application/json",
        )
    return Response(orjson.dumps(body), headers=NO_CACHE, content_type="application/json")


def _description(text: str) -> str:
    """``text`` within the characters RFC 6749 §5.2 allows in ``error_description``
    (printable ASCII without ``"`` and ``\\``), and at most DESCRIPTION_MAX_CHARS long.

    The text may quote the request (a malformed ``scope``) or a PyJWT message, which
    puts claim names in double quotes; a strict OAuth client would reject either.
    """
    allowed = "".join(
        "'" if char == '"' else "/" if char == "\\" else char if " " <= char <= "~" else "?"
        for char in text
    )
    if len(allowed) > DESCRIPTION_MAX_CHARS:
        allowed = allowed[: DESCRIPTION_MAX_CHARS - 3] + "..."
    return allowed


def _form() -> Any:
    """The form of a token request (RFC 6749 §4.4.2, §3.2): url-encoded, each parameter
    once; missing ``grant_type`` is ``invalid_request``, another grant type
    ``unsupported_grant_type`` (§5.2)."""
    if request.mimetype != FORM_TYPE:
        raise OAuthError("invalid_request", f"the token request body must be {FORM_TYPE}")
    form = request.form
    for name in PARAMETERS:
        if len(form.getlist(name)) > 1:
            raise OAuthError("invalid_request", f"{name} is repeated")
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required (client_credentials)")
    if grant_type != "client_credentials":
        raise OAuthError("unsupported_grant_type", "grant_type must be client_credentials")
    return form


def _unverified(form: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(the client assertion, its header, its claims), read before any key is looked at:
    ``alg`` RS384 or ES384 only (never ``none`` or HMAC), ``typ`` ``JWT`` when given."""
    import jwt  # noqa: PLC0415 (see _verified_grant)

    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
    assertion = form.get("client_assertion", "")
    if not assertion:
        raise OAuthError("invalid_request", "client_assertion is required")
    if len(assertion) > ASSERTION_MAX_CHARS:
        what = f"client_assertion is longer than {ASSERTION_MAX_CHARS} characters"
        raise OAuthError("invalid_request", what)
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise OAuthError("invalid_client", "client_assertion is not a JWT", 401) from None
    if header.get("alg") not in ALGORITHMS:
        raise OAuthError("invalid_client", "client_assertion must be signed RS384 or ES384", 401)
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
        raise OAuthError("invalid_client", "client_assertion header typ must be JWT", 401)
    return assertion, header, claims


def _issue() -> dict[str, Any]:
    form = _form()
    assertion, header, claims = _unverified(form)
    client_id = claims.get("iss")
    named = form.get("client_id")
    if named is not None and named != client_id:  # SMART: client_id must match iss
        raise OAuthError("invalid_client", "client_id is not the client_assertion's iss", 401)
    state = app_state()
    client = state.clients.get(client_id) if plain_claim(client_id, 255) else None
    if client is None or client.revoked_us is not None:
        raise OAuthError("invalid_client", "unknown or revoked client", 401)
    # The client's refusals are counted, and over their limit it is refused before its
    # key is looked up or the signature checked (only registered ids get a counter).
    failures = _limiter().token_failure_items
    failure_key = SMART_FAILURE_KEY_PREFIX + client.id
    what = "refused token requests for this client"
    _throttle(failures, failure_key, what, count=False)
    try:
        return _verified_grant(form, assertion, header, client)
    except OAuthError as exc:
        # Failed authentication only: a verified client asking for a scope it does not
        # hold proved it holds the key (the address limit bounds it).
        if exc.error == "invalid_client":
            _count(failures, failure_key)  # the refusal itself is answered as it is
        raise


def _verified_grant(
    form: Any, assertion: str, header: dict[str, Any], client: ClientRecord
) -> dict[str, Any]:
    """The token answer for ``client``'s assertion once its signature and claims hold."""
    # Imported here, not at module load: the app is preloaded in the gunicorn master
    # before the gevent worker monkey-patches, and PyJWT binds names from ``ssl``.
    import jwt  # noqa: PLC0415

    state = app_state()
    key = _signing_key(client.jwks_json, client.jwks_url, header)
    try:
        verified = jwt.decode(
            assertion,
            key,
            algorithms=[header["alg"]],
            audience=audience(),
            issuer=client.id,
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "sub", "aud", "exp", "jti"]},
        )
    except jwt.PyJWTError as exc:
        raise OAuthError("invalid_client", f"client_assertion refused: {exc}", 401) from None
    malformed = malformed_date_claim(verified)
    if malformed is not None:
        what = f"client_assertion {malformed} must be a JSON number"
        raise OAuthError("invalid_client", what, 401)
    now = now_us()
    if verified["sub"] != client.id:
        raise OAuthError("invalid_client", "client_assertion sub must be the client id", 401)
    expires_us = int(verified["exp"]) * 1_000_000
    if expires_us > now + (ASSERTION_MAX_SECONDS + LEEWAY_SECONDS) * 1_000_000:
        raise OAuthError("invalid_client", "client_assertion exp is more than 5 minutes ahead", 401)
    jti = verified["jti"]
    if not plain_claim(jti, 255):
        raise OAuthError("invalid_client", "client_assertion jti must be plain text", 401)
    granted = _granted(client.scopes, form.get("scope", ""))
    # Kept past exp (plus leeway): an assertion replayed within its lifetime is refused.
    if not state.clients.use_assertion(
        client.id, jti, expires_us + LEEWAY_SECONDS * 1_000_000, now
    ):
        raise OAuthError("invalid_client", "client_assertion jti was used before", 401)
    access_token = new_access_token()
    state.clients.add_token(
        secret_hash(access_token), client.id, granted, now + TOKEN_SECONDS * 1_000_000
    )
    return {
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": TOKEN_SECONDS,
        "scope": granted,
    }


def _granted(client_scopes: str, requested: str) -> str:
    """The requested scopes when the client holds them; all of its scopes when none asked."""
    held = parse_scopes(client_scopes.split())
    if not requested.strip():
        return client_scopes
    try:
        wanted = parse_scopes(requested.split())
    except ScopeError as exc:
        raise OAuthError("invalid_scope", str(exc)) from None
    for scope in wanted:
        if not _holds(held, scope):
            raise OAuthError("invalid_scope", "a requested scope was not granted to this client")
    return " ".join(dict.fromkeys(requested.split()))  # each scope once, in asked order


def _holds(held: tuple[Scope, ...], wanted: Scope) -> bool:
    for letter in wanted.permissions or ALL_PERMISSIONS:
        if not any(
            h.resource_type in ("*", wanted.resource_type) and letter in h.permissions for h in held
        ):
            return False
    return True


def _signing_key(jwks_json: bytes | None, jwks_url: str | None, header: dict[str, Any]) -> Any:
    """The public key of the client's JWKS that the assertion's header names.

    SMART "client-confidential-asymmetric", Signature Verification: a ``jku`` that is
    not the registered JWKS URL fails; then the one key whose ``kid`` is the header's
    and whose ``kty`` fits the algorithm (none, or more than one: it fails).
    """
    kid = header.get("kid")
    if not plain_claim(kid, 255):
        raise OAuthError("invalid_client", "client_assertion header names no kid", 401)
    jku = header.get("jku")
    if jku is not None and (jwks_url is None or jku != jwks_url):
        raise OAuthError(
            "invalid_client", "client_assertion jku is not the client's registered JWKS URL", 401
        )
    family = "RSA" if header["alg"].startswith("RS") else "EC"
    if jwks_json is not None:
        candidates = _candidates(orjson.loads(jwks_json), kid, family)
    elif jwks_url is not None:
        candidates = _candidates(JWKS_CACHE.get(jwks_url), kid, family)
        if not candidates:  # SMART key rotation: a new kid is looked for once more
            candidates = _candidates(JWKS_CACHE.get(jwks_url, fresh=True), kid, family)
    else:
        raise OAuthError("invalid_client", "this client has no registered JWKS", 401)
    if len(candidates) != 1:
        what = "no key" if not candidates else "more than one key"
        raise OAuthError("invalid_client", f"{what} of the client's JWKS has its kid and type", 401)
    # A private, symmetric or too short key is never used (and never a 500).
    key = public_signing_key(candidates[0], header["alg"])
    if key is None:
        raise OAuthError(
            "invalid_client",
            "the client's key with this kid is not a public RS384/ES384 key of accepted size",
            401,
        )
    return key


def _candidates(jwks: Any, kid: str, family: str) -> list[dict[str, Any]]:
    """The keys of ``jwks`` with this ``kid`` and key type (``kty``)."""
    return [entry for entry in keys_named(jwks, kid) if entry.get("kty") == family]


def _load_jwks(url: str) -> tuple[dict[str, Any], Mapping[str, str]]:
    """The JSON object at a client's JWKS URL (3 s, at most 64 KiB) and the answer's
    header fields (names in lower case; a field on several lines joined by ", ")."""
    if not url.startswith(("https://", "http://")):
        raise KeySetUnavailableError("the client's JWKS URL is not http(s)")
    ask = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(ask, timeout=JWKS_TIMEOUT_SECONDS) as answer:  # noqa: S310
            data = answer.read(JWKS_MAX_BYTES + 1)
            headers = header_fields(answer.headers)
    except OSError:
        raise KeySetUnavailableError("the client's JWKS URL could not be read") from None
    if len(data) > JWKS_MAX_BYTES:
        raise KeySetUnavailableError("the client's JWKS is too large")
    try:
        jwks = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise KeySetUnavailableError("the client's JWKS is not JSON") from None
    if not isinstance(jwks, dict):
        raise KeySetUnavailableError("the client's JWKS is not a JSON object")
    return jwks, headers


def _refused_jwks(reason: str) -> OAuthError:
    return OAuthError("invalid_client", reason, 401)


#: Key sets of clients registered with ``--jwks-url``, per process and keyed by URL (a
#: client registered again with another URL simply uses the new one).
JWKS_CACHE = JwksCache(_load_jwks, _refused_jwks)


__all__ = ["ALGORITHMS", "TOKEN_SECONDS", "blueprint", "token_url"]
