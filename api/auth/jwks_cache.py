"""Key sets fetched from a registered URL, kept as their answer's Cache-Control says.

One cache rule for every JWKS this server fetches: an EHR's ``jku`` (CDS Hooks,
:mod:`api.auth.ehr`) and a SMART client's ``--jwks-url`` (:mod:`api.auth.smart`).
Why: without it, whoever knows a client id or an EHR's ``iss`` makes this server
fetch the partner's key set once per bogus token (an amplification, and a 3 s slow
path). Each caller brings its own fetch (its limits) and its own error (its status
and wording); the cache decides when to fetch and which keys may still be used.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.request import parse_http_list

#: Longest time keys fetched from a registered URL are used: what the answer's
#: Cache-Control allows, never longer (and this when it says nothing).
JWKS_MAX_CACHE_SECONDS = 300
#: Shortest time they are used, whatever the answer says (``no-store``, ``no-cache``,
#: ``max-age=0``, an invalid ``max-age``): see :func:`jwks_lifetime`.
JWKS_MIN_CACHE_SECONDS = 10
#: A registered URL is fetched at most this often when a ``kid`` is not in the cached
#: set (the partner may have rotated its keys), or after a fetch that failed.
JWKS_REFETCH_SECONDS = 5
#: RFC 9111 §1.2.2 ``delta-seconds`` (ASCII digits only; ``-1``, ``+5``, ``1.5`` are invalid).
_DELTA_SECONDS = re.compile("[0-9]+", re.ASCII)
#: §1.2.2: a greater ``delta-seconds`` is taken as 2^31.
_MAX_DELTA = 2**31


class KeySetUnavailableError(Exception):
    """A fetch of a key set failed; the message is the caller's own wording of why
    (it becomes the refusal, now and for the next :data:`JWKS_REFETCH_SECONDS`)."""


#: Fetches the key set at a URL: (the JSON object, the answer's header fields with
#: names in lower case). Raises :class:`KeySetUnavailableError` on any failure.
Loader = Callable[[str], tuple[dict[str, Any], Mapping[str, str]]]
#: Turns the reason a key set is unavailable into the exception the caller raises.
Refusal = Callable[[str], Exception]


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
    ceiling keeps the promise that a key the partner removes stops working within five
    minutes. The floor is why a partner can't ask for less: a JWKS server saying
    ``no-store`` (hostile, or a default of its framework) would otherwise make every
    call wait on a fetch (up to the 3 s timeout) and send it a request per call;
    10 s bounds that to six fetches a minute per URL (the unknown-``kid`` refetch is
    bounded separately), while a key withdrawn under ``no-store`` still stops
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


class JwksCache:
    """Key sets fetched from registered URLs (one process, keyed by URL), each kept as
    long as its answer's Cache-Control allows (:func:`jwks_lifetime`).

    One fetch per URL at a time (callers wait for it and share its answer), and never
    more than one per :data:`JWKS_REFETCH_SECONDS` for a new ``kid`` or after a failure:
    whatever the JWKS server answers, it is asked at most once per 5 s. Keys past their
    lifetime are never used, even when the refetch fails. ``clock`` is monotonic seconds.

    gevent: the instance is made when the app is preloaded, before the worker patches
    ``threading``; ``_lock`` is then an OS lock, so it is only ever held for a dict
    operation, never across a fetch (a greenlet waiting on it would block the worker's
    one thread, and with it the greenlet holding it). The per-URL lock held during the
    fetch is made at call time (``threading.Lock`` looked up then): a gevent lock in the
    worker, on which a waiting greenlet yields.
    """

    def __init__(
        self, load: Loader, refuse: Refusal, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.clock = clock
        self._load = load
        self._refuse = refuse
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
                    raise self._refuse(entry.failure)
            return self._fetch(url, now, entry)

    def _fetch(self, url: str, now: float, entry: _Entry | None) -> dict[str, Any]:
        try:
            jwks, headers = self._load(url)
        except KeySetUnavailableError as exc:
            return self._failed(url, now, entry, str(exc))
        lifetime = jwks_lifetime(headers.get("cache-control"), headers.get("age"))
        with self._lock:  # ``now`` is before the request: its age is never underestimated
            self._entries[url] = _Entry(now, now + lifetime, jwks)
        return jwks

    def _failed(self, url: str, now: float, entry: _Entry | None, reason: str) -> NoReturn:
        """Remember the failure (no new fetch for 5 s); keys still fresh stay usable."""
        kept = (entry.fresh_until, entry.jwks) if entry is not None else (now, None)
        with self._lock:
            self._entries[url] = _Entry(now, kept[0], kept[1], reason)
        raise self._refuse(reason)


__all__ = [
    "JWKS_MAX_CACHE_SECONDS",
    "JWKS_MIN_CACHE_SECONDS",
    "JWKS_REFETCH_SECONDS",
    "JwksCache",
    "KeySetUnavailableError",
    "Loader",
    "Refusal",
    "jwks_lifetime",
]
