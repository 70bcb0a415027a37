"""The identity edge: CORS preflight, authentication, scopes, rate limits, headers.

``install`` adds one ``before_request`` hook (after the request id is set) and
one ``after_request`` hook. Order for every request: a CORS preflight is
answered (or refused) first; a public endpoint goes on; otherwise the bearer
credential must name an active client (401), a granted scope must cover the
endpoint (403) and the client must be within its rate limit (429). A CDS Hooks
call authenticates with its EHR's JWT instead, and the EHR must be within the
same rate limit (429), counted apart. The principal is kept in ``g.principal``
for the audit and the tenant filters.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import time
from collections.abc import Mapping

from flask import Flask, Response, current_app, g, request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import MethodNotAllowed

from api.auth import ehr
from api.auth.clients import Principal, identify, identify_credential, now_us
from api.auth.scopes import PUBLIC_ENDPOINTS, permits, required_scope, scope_text
from api.config import Settings, app_state
from api.errors import CorsRefusedError, ForbiddenError, ThrottledError, UnauthorizedError
from api.serving.config import ServingSettings, parse_networks

logger = logging.getLogger("api.auth")

#: Headers a browser partner app may send and read (CORS).
CORS_REQUEST_HEADERS = (
    "Authorization, Content-Type, Accept, Idempotency-Key, X-Request-ID, If-None-Match"
)
CORS_EXPOSED_HEADERS = (
    "Location, Content-Location, ETag, Last-Modified, X-Request-ID, Retry-After, "
    "RateLimit, RateLimit-Policy, WWW-Authenticate, Link"
)
CORS_MAX_AGE = "600"
#: Browser pages whose signed link is the credential (no API key; issue 14): the
#: clinician report, and the intake page with its submission and thank-you page.
LINK_PAGES = ("/reports/", "/intake/")
#: Endpoints whose answers never carry patient data (they may be cached).
_CACHEABLE = PUBLIC_ENDPOINTS - {"auth.token"}
#: Extension key of the rate limiter on the app.
LIMITER = "twitch_triage_limiter"
#: Rate-limit counters of CDS Hooks EHRs are keyed "ehr:<id>" (API clients: their id).
EHR_RATE_KEY_PREFIX = "ehr:"
#: Counter keys of anonymous refusals by client address (apart from clients' counters).
ANONYMOUS_AUDIT_KEY_PREFIX = "anonymous-audit:"
#: Counter keys of SMART token requests by client address, and of refused ones by client
#: id (:mod:`api.auth.smart`), apart from the API's counters.
SMART_ADDRESS_KEY_PREFIX = "smart-address:"
SMART_FAILURE_KEY_PREFIX = "smart-failures:"


class SweptMemoryStorage(MemoryStorage):
    """``limits``' memory storage, its expired keys swept inline at most once a second.

    The library's own storage starts a ``threading.Timer`` on almost every hit to
    sweep expired keys (a thread, or under gevent a greenlet, per request: measured
    in the issue 9 profile). Reads never depend on the sweep (``get`` drops an
    expired counter itself), so sweeping inline, rarely, keeps memory bounded
    without a thread per request. The name is the library's mangled hook, and
    ``tests/test_auth_limits.py`` fails if a hit starts a thread again.
    """

    _next_sweep = 0.0

    def __init__(self) -> None:
        super().__init__()
        self.timer.cancel()  # the sweep the constructor scheduled; ours runs inline

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 (the library's hook)
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + 1.0
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: The variable gunicorn's ``forwarded_allow_ips`` is read from (api/serving/config.py).
FORWARDED_ALLOW_IPS = "TWITCH_TRIAGE_FORWARDED_ALLOW_IPS"


def trusted_proxies(environ: Mapping[str, str]) -> tuple[IpNetwork, ...]:
    """The networks of the proxy in front, as ``serve`` trusts them for
    ``X-Forwarded-Proto`` (the same variable and default)."""
    text = environ.get(FORWARDED_ALLOW_IPS, "") or ServingSettings().forwarded_allow_ips
    return tuple(
        ipaddress.ip_network(item, strict=False)
        for item in parse_networks(FORWARDED_ALLOW_IPS, text).split(",")
    )


def client_address(proxies: tuple[IpNetwork, ...]) -> str:
    """The address a per-address counter is keyed by: the connection's peer, or, when
    the peer is a trusted proxy, the last ``X-Forwarded-For`` entry (the one that proxy
    wrote; deploy/nginx overwrites the header). Behind the proxy every peer is the
    proxy, so counting peers would let one caller use up everyone's budget."""
    peer = request.remote_addr or "-"
    forwarded = request.headers.get("X-Forwarded-For")
    if not forwarded or not proxies:
        return peer
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    if not any(address in network for network in proxies):
        return peer
    named = forwarded.rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(named))
    except ValueError:
        return peer  # not an address: the proxy's own counter


def _items(text: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(text)) if text else ()


def _counter_storage(url: str) -> Storage:
    return SweptMemoryStorage() if url.startswith("memory://") else storage_from_string(url)


class RateLimiter:
    """Per-client fixed-window counters (``limits``) in memory or Redis."""

    def __init__(self, settings: Settings) -> None:
        self.items: tuple[RateLimitItem, ...] = tuple(
            parse_many(settings.rate_limit) if settings.rate_limit else ()
        )
        self.anonymous_audit_items: tuple[RateLimitItem, ...] = tuple(
            parse_many(settings.anonymous_audit_limit) if settings.anonymous_audit_limit else ()
        )
        self.token_items = _items(settings.token_rate_limit)
        self.token_failure_items = _items(settings.token_failure_limit)
        self.storage = _counter_storage(settings.rate_limit_storage)
        #: The proxies whose ``X-Forwarded-For`` names the client (gunicorn's list), and
        #: only where a proxy in front is declared: without one, the default list
        #: (loopback) would let any local caller pick its own counter by that header.
        self.proxies = trusted_proxies(os.environ) if settings.tls_terminated else ()
        self.strategy = FixedWindowRateLimiter(self.storage)
        #: The ``RateLimit-Policy`` value: it names only the configured limits, so it is
        #: the same on every answer and is built once.
        self.policy = ", ".join(
            f'"l{index}";q={item.amount};w={item.get_expiry()}'
            for index, item in enumerate(self.items)
        )

    def admits_anonymous_audit(self, address: str) -> bool:
        """Count one anonymous refusal from ``address``; False once over its audit budget."""
        return all(
            self.strategy.hit(item, ANONYMOUS_AUDIT_KEY_PREFIX + address)
            for item in self.anonymous_audit_items
        )

    def over(self, items: tuple[RateLimitItem, ...], key: str, *, count: bool) -> int | None:
        """Seconds to wait when ``key`` is over one of ``items``, else None.

        ``count``: this request is counted (``hit``); else the counters are only read
        (``test``), for a limit on what happens later (a refused token request).
        """
        for item in items:
            admitted = self.strategy.hit(item, key) if count else self.strategy.test(item, key)
            if not admitted:
                reset, _ = self.strategy.get_window_stats(item, key)
                return max(1, math.ceil(reset - time.time()))
        return None

    def check(self, client_id: str) -> dict[str, str]:
        """Count one request; the RateLimit headers, or ThrottledError when over a limit."""
        headers: dict[str, str] = {}
        if not self.items:
            return headers
        states = []
        refused: tuple[RateLimitItem, int] | None = None
        storage = self.storage
        for index, item in enumerate(self.items):
            # FixedWindowRateLimiter.hit, then .get_window_stats: the same storage calls
            # in the same order, with the counter's key built once instead of three times.
            key = item.key_for(client_id)
            allowed = storage.incr(key, item.get_expiry(), amount=1) <= item.amount
            remaining = max(0, item.amount - storage.get(key))
            reset = storage.get_expiry(key)
            wait = max(1, math.ceil(reset - time.time()))
            states.append(f'"l{index}";r={remaining};t={wait}')
            if not allowed and refused is None:
                refused = (item, wait)
        headers["RateLimit-Policy"] = self.policy
        headers["RateLimit"] = ", ".join(states)
        if refused is not None:
            item, wait = refused
            headers["Retry-After"] = str(wait)
            raise ThrottledError(
                f"rate limit of {item.amount} requests per {item.get_expiry()} s reached; "
                f"retry after {wait} s",
                headers,
            )
        return headers


def _cors_preflight(origins: tuple[str, ...]) -> Response:
    origin = request.headers.get("Origin", "")
    if origin not in origins:
        raise CorsRefusedError(f"origin {origin[:100]!r} is not allowed to call this API")
    return Response(
        status=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": CORS_REQUEST_HEADERS,
            "Access-Control-Max-Age": CORS_MAX_AGE,
            "Vary": "Origin",
        },
    )


#: The CDS Hooks paths (discovery, services, feedback): EHRs, not API clients, call them.
CDS_PREFIX = "/cds-services"


def _authenticate() -> Response | None:
    """The before_request hook (see the module docstring for the order of checks)."""
    current = request._get_current_object()  # one proxy lookup, not one per attribute
    state = app_state()
    if current.method == "OPTIONS" and "Access-Control-Request-Method" in current.headers:
        return _cors_preflight(state.settings.cors_origins)
    if current.path.startswith(LINK_PAGES):
        return None  # the page verifies its signed link itself (api/services/links.py)
    endpoint = current.endpoint
    if endpoint in PUBLIC_ENDPOINTS or isinstance(current.routing_exception, MethodNotAllowed):
        return None  # a wrong method on a known path is a 405 for anyone: it reveals nothing
    if endpoint is None and current.path.startswith(CDS_PREFIX):
        # An unknown CDS service: 404 before any credential check. Its caller holds an
        # EHR's JWT, not an API key, so "the Authorization header must be 'Bearer <api
        # key>'" would send it looking for a broken token (discovery is public anyway).
        return None
    if endpoint in ehr.EHR_ENDPOINTS:  # CDS Hooks: the EHR's JWT, not an API key
        principal = g.principal = ehr.authenticate()
        # Counted apart from API clients (another table's ids), with the same limits.
        _count_request(EHR_RATE_KEY_PREFIX + principal.client_id)
        return None
    header = current.headers.get("Authorization")
    if header is None:
        raise UnauthorizedError("credentials are required: Authorization: Bearer <api key>")
    credential = _bearer(header)
    if credential is None:
        raise UnauthorizedError(
            "the Authorization header must be 'Bearer <api key or access token>'",
            "invalid_request",
        )
    principal, former = identify_credential(state.clients, credential, now_us())
    if principal is None:
        g.former_principal = former  # its refused attempt is audited under its tenant
        raise UnauthorizedError(
            "the credential is unknown, revoked, retired or expired", "invalid_token"
        )
    g.principal = principal
    needed = required_scope(endpoint or "", current.view_args or {})
    if needed is not None and not permits(principal.scopes, *needed):
        scope = scope_text(*needed)
        raise ForbiddenError(f"this client has no scope covering {scope}", scope)
    _count_request(principal.client_id)
    return None


def _bearer(header: str) -> str | None:
    """The credential of a well-formed ``Bearer <credential>`` header, else None."""
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or " " in credential or len(credential) > 512:
        return None
    return credential


def bearer_principal() -> Principal | None:
    """The active client the request's bearer credential names, or None; never refuses.

    For the audit of a refused request the gate let through unauthenticated (a 405 is
    one for anyone): an identified caller's attempt is audited under its tenant.
    """
    header = request.headers.get("Authorization")
    credential = None if header is None else _bearer(header)
    if credential is None:
        return None
    return identify(app_state().clients, credential, now_us())


def anonymous_audit_admitted() -> bool:
    """Whether this anonymous caller's refusal is audited (its address within budget).

    Counted in the rate limiter's storage (per process, or shared in Redis); when that
    storage fails the refusal is audited.
    """
    limiter: RateLimiter = current_app.extensions[LIMITER]
    if not limiter.anonymous_audit_items:
        return True
    try:
        return limiter.admits_anonymous_audit(client_address(limiter.proxies))
    except Exception:
        logger.warning("anonymous audit budget not checked: counter storage unavailable")
        return True


def _count_request(caller: str) -> None:
    """One request of ``caller`` against the rate limits (ThrottledError over them)."""
    limiter: RateLimiter = current_app.extensions[LIMITER]
    try:
        g.rate_headers = limiter.check(caller)
    except ThrottledError:
        raise
    except Exception:
        logger.warning("rate limit not checked: counter storage unavailable", exc_info=True)


def _headers(response: Response) -> Response:
    """nosniff everywhere, no-store on patient data, CORS and RateLimit headers."""
    current = request._get_current_object()  # one proxy lookup, not one per attribute
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    if current.endpoint not in _CACHEABLE:
        headers["Cache-Control"] = "no-store"
    rate_headers = g.get("rate_headers")
    if rate_headers:
        for name, value in rate_headers.items():
            headers.setdefault(name, value)
    origins = app_state().settings.cors_origins
    if origins:
        # The answer depends on Origin whenever CORS is on, also for a request without
        # one: a shared cache must not hand a CORS-less copy to an allowed origin.
        response.vary.add("Origin")
        origin = current.headers.get("Origin")
        if origin and origin in origins:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Expose-Headers"] = CORS_EXPOSED_HEADERS
    return response


def current_principal() -> Principal | None:
    """The authenticated caller of this request (None on public endpoints)."""
    return g.get("principal")


def install(app: Flask) -> None:
    """The identity hooks and the rate limiter (after the request-id hook)."""
    app.extensions[LIMITER] = RateLimiter(app_settings(app))
    app.before_request(_authenticate)
    app.after_request(_headers)


def app_settings(app: Flask) -> Settings:
    from api.config import EXTENSION  # noqa: PLC0415

    return app.extensions[EXTENSION].settings


__all__ = [
    "RateLimiter",
    "anonymous_audit_admitted",
    "bearer_principal",
    "current_principal",
    "install",
]
