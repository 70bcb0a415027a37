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
   registered ``jku``, kept as its Cache-Control says within 10 s to 5 minutes) whose
   ``kid`` the header names;
4. ``aud`` = the exact URL called (``TWITCH_TRIAGE_PUBLIC_BASE_URL``, or the
   request's host URL when it names this machine: :mod:`api.auth.audience`; plus the
   path), ``exp`` required and at most five minutes
   ahead, ``iat`` required, with 30 s of clock skew;
5. ``jti`` never seen before within its lifetime (kept in the database, so every
   node of a deployment refuses a replay).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.request import parse_http_list

import orjson
from flask import request

from api.auth.audience import UNCHECKABLE, audience_base
from api.auth.clients import Principal, now_us
from api.auth.jwks import public_signing_key
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
#: Longest time keys fetched from a registered ``jku`` are used: what the answer's
#: Cache-Control allows, never longer (and this when it says nothing).
JWKS_MAX_CACHE_SECONDS = 300
#: Shortest time they are used, whatever the answer says (``no-store``, ``no-cache``,
#: ``max-age=0``, an invalid ``max-age``): see :func:`jwks_lifetime`.
JWKS_MIN_CACHE_SECONDS = 10
#: The registered ``jku`` is fetched at most this often when a ``kid`` is not in the
#: cached set (the EHR may have rotated its keys), or after a fetch that failed.
JWKS_REFETCH_SECONDS = 5
#: Endpoints (blueprint.view) authenticated by the EHR's JWT instead of an API key.
EHR_ENDPOINTS = frozenset({"cds.service", "cds.feedback"})
#: RFC 9111 §1.2.2 ``delta-seconds`` (ASCII digits only; ``-1``, ``+5``, ``1.5`` are invalid).
_DELTA_SECONDS = re.compile("[0-9]+", re.ASCII)
#: §1.2.2: a greater ``delta-seconds`` is taken as 2^31.
_MAX_DELTA = 2**31


def _delta_seconds(value: str | None) -> int | None:
    """``value`` as RFC 9111 ``delta-seconds`` (at most 2^31); None when it is not one."""
    if value is None or not _DELTA_SECONDS.fullmatch(value):
        return None
    return _MAX_DELTA if len(value) > 10 else min(int(value), _MAX_DELTA)


def _directives(cache_control: str) -> dict[str, list[str | None]]:
    """The Cache-Control directives (RFC 9111 §5.2): name in lower case → each value given
    (None without ``=``), a quoted-string unquoted (recipients accept both forms)."""
    found: dict[str, list[str | None]] = {}
    for item in parse_http_list(cache_control):  # commas inside quoted strings kept
        name, equals, value = item.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name.strip():
            found.setdefault(name.strip().lower(), []).append(value if equals else None)
    return found


def jwks_lifetime(cache_control: str | None, age: str | None) -> float:
    """Seconds the keys of one JWKS answer may be used, from its ``Cache-Control`` and
    ``Age`` (RFC 9111), held between :data:`JWKS_MIN_CACHE_SECONDS` and
    :data:`JWKS_MAX_CACHE_SECONDS`.

    ``no-store`` and ``no-cache`` (any form: we never revalidate) ask for no reuse;
    ``max-age`` given twice or not as digits makes the answer stale (§4.2.1: "either
    the first occurrence should be used or the response should be considered stale";
    we take the stricter); a valid ``Age`` is subtracted (§4.2.3, current age). The
    ceiling keeps today's promise that a key the EHR removes stops working within five
    minutes. The floor is why an EHR can't ask for less: a JWKS server saying
    ``no-store`` (hostile, or a default of its framework) would otherwise make every
    CDS call wait on a fetch (up to the 3 s timeout) and send it a request per call;
    10 s bounds that to six fetches a minute per EHR (the unknown-``kid`` refetch is
    bounded separately), while a key the EHR withdraws under ``no-store`` still stops
    working within 10 s, well inside the five minutes a token it signed may live.
    """
    directives = _directives(cache_control or "")
    lifetime = JWKS_MAX_CACHE_SECONDS  # none given: our heuristic (RFC 9111 §4.2.2)
    if "no-store" in directives or "no-cache" in directives:
        lifetime = 0
    elif "max-age" in directives:
        values = directives["max-age"]
        lifetime = (_delta_seconds(values[0]) if len(values) == 1 else None) or 0
    current_age = _delta_seconds((age or "").split(",", 1)[0].strip())  # §5.1: first member
    lifetime -= current_age or 0  # an invalid Age is ignored (§5.1)
    return float(max(JWKS_MIN_CACHE_SECONDS, min(JWKS_MAX_CACHE_SECONDS, lifetime)))


@dataclass(frozen=True, slots=True)
class _Entry:
    #: When the URL was last fetched (on the cache's clock), whether it worked or not.
    fetched_at: float
    #: The keys are used until then (a failed fetch keeps the previous keys and their time).
    fresh_until: float
    jwks: dict[str, Any] | None
    #: Why the last fetch failed; None when it worked.
    failure: str | None = None


class _JwksCache:
    """Key sets fetched from registered ``jku`` URLs, each kept as long as its answer's
    Cache-Control allows (:func:`jwks_lifetime`).

    One fetch per URL at a time (callers wait for it and share its answer), and never
    more than one per :data:`JWKS_REFETCH_SECONDS` for a new ``kid`` or after a failure:
    whatever the JWKS server answers, it is asked at most once per 5 s. Keys past their
    lifetime are never used, even when the refetch fails. ``clock`` is monotonic seconds.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._fetching: dict[str, threading.Lock] = {}

    def get(self, url: str, *, fresh: bool = False) -> dict[str, Any]:
        """The key set at ``url``; ``fresh``: a ``kid`` was missing, fetch again if allowed."""
        with self._lock:
            single_flight = self._fetching.setdefault(url, threading.Lock())
        with single_flight:
            now = self.clock()
            with self._lock:
                entry = self._entries.get(url)
            if entry is not None:
                recent = now - entry.fetched_at < JWKS_REFETCH_SECONDS
                jwks = entry.jwks if now < entry.fresh_until else None
                if jwks is not None and (not fresh or recent):
                    return jwks
                if recent and entry.failure is not None:
                    raise _refused(entry.failure)
            return self._fetch(url, now, entry)

    def _fetch(self, url: str, now: float, entry: _Entry | None) -> dict[str, Any]:
        try:
            answer = fetch_json(url)
        except FetchError as exc:
            return self._failed(url, now, entry, f"the EHR's registered jku {exc}")
        jwks = answer.body
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            return self._failed(url, now, entry, "the EHR's registered jku holds no JWK Set")
        lifetime = jwks_lifetime(answer.headers.get("cache-control"), answer.headers.get("age"))
        with self._lock:  # ``now`` is before the request: its age is never underestimated
            self._entries[url] = _Entry(now, now + lifetime, jwks)
        return jwks

    def _failed(self, url: str, now: float, entry: _Entry | None, reason: str) -> NoReturn:
        """Remember the failure (no new fetch for 5 s); keys still fresh stay usable."""
        kept = (entry.fresh_until, entry.jwks) if entry is not None else (now, None)
        with self._lock:
            self._entries[url] = _Entry(now, kept[0], kept[1], reason)
        raise _refused(reason)


JWKS_CACHE = _JwksCache()


def _refused(reason: str) -> UnauthorizedError:
    return UnauthorizedError(f"the EHR's JWT was refused: {reason}", "invalid_token")


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
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    for entry in keys if isinstance(keys, list) else []:
        if isinstance(entry, dict) and entry.get("kid") == kid:
            found = public_signing_key(entry, alg)
            if found is not None:
                return found
    return None


__all__ = [
    "ALGORITHMS",
    "EHR_ENDPOINTS",
    "JWKS_CACHE",
    "authenticate",
    "called_url",
    "jwks_lifetime",
]
