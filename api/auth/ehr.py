"""CDS Hooks "Trusting CDS Clients": the EHR's signed JWT on every service and feedback call.

The token is checked in this order, each failure a 401 (``invalid_token``) that
says what was wrong but never echoes the token or a claim's value:

1. ``Authorization: Bearer <JWT>``; header ``alg`` RS384 or ES384 only (``none``
   and every HMAC are refused before any key is looked at), a ``kid``, ``typ``
   ``JWT`` when given;
2. ``iss`` registered (``twitch-triage ehrs register``): the issuer names the
   tenant. A ``jku`` in the header must equal the issuer's registered one; no
   other URL is ever fetched;
3. the signature, by the key of the registered JWKS (inline, or fetched from the
   registered ``jku``, kept as its Cache-Control says within 10 s to 5 minutes:
   :mod:`api.auth.jwks_cache`, shared with SMART clients' JWKS URLs) whose
   ``kid`` the header names;
4. ``aud`` = the exact URL called (``TWITCH_TRIAGE_PUBLIC_BASE_URL``, or the
   request's host URL when it names this machine: :mod:`api.auth.audience`; plus the
   path), ``exp`` required and at most five minutes
   ahead, ``iat`` required, with 30 s of clock skew;
5. ``jti`` never seen before within its lifetime (kept in the database, so every
   node of a deployment refuses a replay).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from flask import request

from api.auth.audience import UNCHECKABLE, audience_base
from api.auth.clients import Principal, now_us
from api.auth.jwks import keys_named, public_signing_key
from api.auth.jwks_cache import (
    JWKS_MAX_CACHE_SECONDS,
    JWKS_MIN_CACHE_SECONDS,
    JWKS_REFETCH_SECONDS,
    JwksCache,
    KeySetUnavailableError,
    jwks_lifetime,
)
from api.auth.keys import malformed_date_claim, plain_claim
from api.config import app_state
from api.errors import UnauthorizedError
from api.services.cds.fetch import FetchError, fetch_json
from api.storage.cds import EhrRecord

#: The algorithms CDS Hooks recommends; nothing else is accepted.
ALGORITHMS = ("RS384", "ES384")
#: Latest ``exp`` accepted, from now.
MAX_LIFETIME_SECONDS = 300
LEEWAY_SECONDS = 30
MAX_TOKEN_CHARS = 16384
#: Endpoints (blueprint.view) authenticated by the EHR's JWT instead of an API key.
EHR_ENDPOINTS = frozenset({"cds.service", "cds.feedback"})


def _refused(reason: str) -> UnauthorizedError:
    return UnauthorizedError(f"the EHR's JWT was refused: {reason}", "invalid_token")


def _load_jku(url: str) -> tuple[dict[str, Any], Mapping[str, str]]:
    """The JWK Set at an EHR's registered ``jku`` (:func:`fetch_json`: 3 s, 1 MiB,
    same-origin redirects only) and the answer's header fields."""
    try:
        answer = fetch_json(url)
    except FetchError as exc:
        raise KeySetUnavailableError(f"the EHR's registered jku {exc}") from None
    jwks = answer.body
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise KeySetUnavailableError("the EHR's registered jku holds no JWK Set")
    return jwks, answer.headers


class _JwksCache(JwksCache):
    """The key sets of registered ``jku`` URLs (:class:`api.auth.jwks_cache.JwksCache`);
    a failure is the EHR JWT's 401 ``invalid_token`` naming the ``jku``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(_load_jku, _refused, clock=clock)


JWKS_CACHE = _JwksCache()


def called_url() -> str:
    """The exact URL of this call, as the EHR must name it in ``aud``."""
    base = audience_base()
    if base is None:
        raise _refused(UNCHECKABLE)
    return f"{base}{request.path}"


def _token() -> str:
    """The bearer credential of the Authorization header (401 when there is none)."""
    header_value = request.headers.get("Authorization")
    if header_value is None:
        raise UnauthorizedError("credentials are required: Authorization: Bearer <EHR JWT>")
    scheme, _, token = header_value.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token or len(token) > MAX_TOKEN_CHARS:
        raise UnauthorizedError(
            "the Authorization header must be 'Bearer <JWT signed by the EHR>'", "invalid_request"
        )
    return token


def _registered(token: str) -> tuple[dict[str, Any], EhrRecord]:
    """(the token's header, the registered EHR its ``iss`` names), before any key is used."""
    import jwt  # noqa: PLC0415 (lazily, as api/auth/smart.py: gevent patches ssl first)

    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise _refused("it is not a JWT") from None
    if header.get("alg") not in ALGORITHMS:
        raise _refused("it must be signed RS384 or ES384 (never none or HMAC)")
    kid = header.get("kid")
    if not plain_claim(kid, 255):
        raise _refused("its header names no kid (a string of 1 to 255 plain characters)")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
        raise _refused("its header typ must be JWT")
    iss = unverified.get("iss")
    ehr = app_state().cds.by_iss(iss) if plain_claim(iss, 512) else None
    if ehr is None:
        raise _refused("its iss is not a registered EHR")
    jku = header.get("jku")
    if jku is not None and jku != ehr.jku:
        raise _refused("its jku is not the URL registered for this EHR")
    return header, ehr


def authenticate() -> Principal:
    """The EHR calling (its id, its tenant, no scopes), or UnauthorizedError (401)."""
    import jwt  # noqa: PLC0415 (see _registered)

    token = _token()
    header, ehr = _registered(token)
    key = _key(ehr, header["alg"], header["kid"])
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[header["alg"]],
            audience=called_url(),
            issuer=ehr.iss,
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "aud", "exp", "iat", "jti"]},
        )
    except jwt.InvalidAudienceError:
        raise _refused("its aud is not the URL called") from None
    except jwt.ExpiredSignatureError:
        raise _refused("it has expired") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _refused(f"it has no {exc.claim} claim") from None
    except jwt.InvalidSignatureError:
        raise _refused("its signature does not verify with the EHR's registered key") from None
    except jwt.PyJWTError as exc:
        raise _refused(type(exc).__name__) from None
    malformed = malformed_date_claim(claims)
    if malformed is not None:
        raise _refused(f"its {malformed} must be a number of seconds (a JSON number)")
    now = now_us()
    expires_us = int(claims["exp"]) * 1_000_000
    if expires_us > now + (MAX_LIFETIME_SECONDS + LEEWAY_SECONDS) * 1_000_000:
        raise _refused(f"its exp is more than {MAX_LIFETIME_SECONDS} s ahead")
    jti = claims["jti"]
    if not plain_claim(jti, 255):
        raise _refused("its jti must be a string of 1 to 255 plain characters")
    if not app_state().cds.use_jti(ehr.id, jti, expires_us + LEEWAY_SECONDS * 1_000_000, now):
        raise _refused("its jti was used before")
    return Principal(client_id=ehr.id, tenant=ehr.tenant, scopes=())


def _key(ehr: EhrRecord, alg: str, kid: str) -> Any:
    """The public key of the EHR's JWKS with this ``kid`` and the algorithm's key type."""
    if ehr.jwks_json is not None:
        found = _find(orjson.loads(ehr.jwks_json), alg, kid)
    elif ehr.jku is not None:
        found = _find(JWKS_CACHE.get(ehr.jku), alg, kid)
        if found is None:  # the EHR may have rotated its keys: look once more
            found = _find(JWKS_CACHE.get(ehr.jku, fresh=True), alg, kid)
    else:
        found = None
    if found is None:
        raise _refused("no key of the EHR's registered JWK Set has its kid and algorithm")
    return found


def _find(jwks: dict[str, Any], alg: str, kid: str) -> Any:
    """The key with ``kid`` that verifies ``alg``; a private, symmetric or too short one is
    never used (:func:`api.auth.jwks.public_signing_key`): the token is then refused."""
    for entry in keys_named(jwks, kid):
        found = public_signing_key(entry, alg)
        if found is not None:
            return found
    return None


__all__ = [
    "ALGORITHMS",
    "EHR_ENDPOINTS",
    "JWKS_CACHE",
    "JWKS_MAX_CACHE_SECONDS",
    "JWKS_MIN_CACHE_SECONDS",
    "JWKS_REFETCH_SECONDS",
    "authenticate",
    "called_url",
    "jwks_lifetime",
]
