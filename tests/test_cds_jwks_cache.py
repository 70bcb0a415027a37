"""An EHR's JWKS (``jku``) is kept as long as its Cache-Control says, within bounds.

Review finding (session 9): the keys were kept five minutes whatever the answer said.
RFC 9111: ``max-age`` (§5.2.2.1), ``no-cache`` (§5.2.2.4), ``no-store`` (§5.2.2.5),
``Age`` (§5.1); bounds: at most 5 minutes, at least 10 s (``api.auth.jwks_cache.jwks_lifetime``).
A real JWKS server on loopback rotates its keys; the cache runs on a clock the test
moves, so each case shows the second the new key is picked up without sleeping.
"""

from __future__ import annotations

import itertools
import json
import threading
import urllib.request
import uuid
from pathlib import Path

import pytest
from cds_support import (
    SERVICE,
    TENANT,
    Ehr,
    LoopbackServer,
    ManualClock,
    Product,
    call,
    hook_request,
    jwks_clock_fixture,  # noqa: F401 (the jwks_clock fixture)
    register,
    simultaneous_statuses,
)
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from api.auth import ehr as ehr_auth
from api.auth.ehr import JWKS_MAX_CACHE_SECONDS, JWKS_MIN_CACHE_SECONDS, jwks_lifetime
from api.auth.jwks_cache import JWKS_REFETCH_SECONDS, JwksCache, KeySetUnavailableError


def _status(client: FlaskClient, ehr: Ehr) -> int:
    return call(client, ehr, hook_request("p-jwks", None)).status_code


@pytest.mark.parametrize(
    ("headers", "kept"),
    [
        ({}, 300),  # nothing said: five minutes, as before
        ({"Cache-Control": "max-age=60"}, 60),
        ({"Cache-Control": 'public, MAX-AGE="45"'}, 45),  # names in any case, quoted value
        ({"Cache-Control": "max-age=100", "Age": "70"}, 30),  # 70 s old when it came
        ({"Cache-Control": "max-age=3600"}, 300),  # never longer than five minutes
        ({"Cache-Control": "max-age=0"}, 10),  # never shorter than the floor
        ({"Cache-Control": "no-cache"}, 10),
        ({"Cache-Control": "no-store"}, 10),
        ({"Cache-Control": "max-age=120, no-cache"}, 10),  # the stricter directive
        ({"Cache-Control": "max-age=-5"}, 10),  # invalid: stale (RFC 9111 §4.2.1)
        ({"Cache-Control": "max-age=120, max-age=60"}, 10),  # given twice: stale
    ],
)
def test_a_re_keyed_jwks_is_picked_up_when_its_cache_control_says(
    app: Flask,
    client: FlaskClient,
    jwks_clock: ManualClock,
    headers: dict[str, str],
    kept: int,
) -> None:
    """The EHR re-keys under the same ``kid`` (so no unknown-kid refetch happens): the
    old key works, and the new one does not, exactly until the cached set expires."""
    old = Ehr(f"https://rekey-{uuid.uuid4().hex[:6]}.example")
    new = Ehr(old.iss, kid=old.kid)  # same kid, another key
    routes = {"/jwks": (200, headers, old.jwks())}
    with LoopbackServer(routes) as keys:
        register(app, old, TENANT, jku=keys.url + "/jwks")
        assert _status(client, old) == 200
        routes["/jwks"] = (200, headers, new.jwks())
        jwks_clock.advance(kept - 0.5)
        assert (_status(client, old), _status(client, new)) == (200, 401)
        assert len(keys.calls) == 1
        jwks_clock.advance(1)
        assert (_status(client, new), _status(client, old)) == (200, 401)
        assert len(keys.calls) == 2


def test_a_jwks_server_asking_for_no_caching_is_asked_once_per_10_s(
    app: Flask, client: FlaskClient, jwks_clock: ManualClock
) -> None:
    """``no-store`` on every answer (hostile, or a framework's default) cannot make every
    CDS call wait on a fetch."""
    ehr = Ehr(f"https://nostore-{uuid.uuid4().hex[:6]}.example")
    with LoopbackServer({"/jwks": (200, {"Cache-Control": "no-store"}, ehr.jwks())}) as keys:
        register(app, ehr, TENANT, jku=keys.url + "/jwks")
        assert [_status(client, ehr) for _ in range(10)] == [200] * 10
        jwks_clock.advance(JWKS_MIN_CACHE_SECONDS - 0.1)
        assert [_status(client, ehr) for _ in range(10)] == [200] * 10
        assert len(keys.calls) == 1
        jwks_clock.advance(0.2)
        assert _status(client, ehr) == 200
        assert len(keys.calls) == 2


def test_a_failing_jwks_server_is_asked_again_after_5_s_only(
    app: Flask, client: FlaskClient, jwks_clock: ManualClock
) -> None:
    ehr = Ehr(f"https://failing-{uuid.uuid4().hex[:6]}.example")
    routes = {"/jwks": (503, {}, {"down": True})}
    with LoopbackServer(routes) as keys:
        register(app, ehr, TENANT, jku=keys.url + "/jwks")
        assert [_status(client, ehr) for _ in range(10)] == [401] * 10
        assert len(keys.calls) == 1
        routes["/jwks"] = (200, {}, ehr.jwks())
        jwks_clock.advance(ehr_auth.JWKS_REFETCH_SECONDS - 0.1)
        assert _status(client, ehr) == 401
        jwks_clock.advance(0.1)
        assert _status(client, ehr) == 200
        assert len(keys.calls) == 2


def test_keys_past_their_lifetime_are_never_used_even_when_the_refetch_fails(
    app: Flask, client: FlaskClient, jwks_clock: ManualClock
) -> None:
    ehr = Ehr(f"https://expiring-{uuid.uuid4().hex[:6]}.example")
    stranger = Ehr(ehr.iss)  # a kid the set does not have: a refetch is tried
    routes = {"/jwks": (200, {"Cache-Control": "max-age=60"}, ehr.jwks())}
    with LoopbackServer(routes) as keys:
        register(app, ehr, TENANT, jku=keys.url + "/jwks")
        assert _status(client, ehr) == 200
        routes["/jwks"] = (500, {}, {"down": True})
        jwks_clock.advance(30)
        assert _status(client, stranger) == 401  # the refetch failed ...
        assert _status(client, ehr) == 200  # ... and the keys still fresh are kept
        assert len(keys.calls) == 2
        jwks_clock.advance(31)  # 61 s: the set has expired and the server is still down
        assert _status(client, ehr) == 401
        assert len(keys.calls) == 3


def test_callers_arriving_together_share_one_fetch() -> None:
    """One fetch per URL at a time: the others wait for it rather than fetch too."""
    ehr = Ehr(f"https://slow-{uuid.uuid4().hex[:6]}.example")
    cache = ehr_auth._JwksCache()
    with LoopbackServer({"/jwks": (200, {}, ehr.jwks())}, delay=0.3) as keys:
        start = threading.Barrier(8)
        found: list[object] = []

        def get() -> None:
            start.wait()
            found.append(cache.get(keys.url + "/jwks"))

        threads = [threading.Thread(target=get) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert found == [ehr.jwks()] * 8
    assert len(keys.calls) == 1


# --- the rule for every header (hypothesis) ------------------------------------------------------


@given(st.text(max_size=200), st.one_of(st.none(), st.text(max_size=40)))
def test_any_cache_control_gives_a_lifetime_within_the_bounds(header: str, age: str | None):
    assert JWKS_MIN_CACHE_SECONDS <= jwks_lifetime(header, age) <= JWKS_MAX_CACHE_SECONDS


@given(
    st.integers(0, 10**30), st.integers(0, 10**30), st.sampled_from(["", "private, ", "public,"])
)
def test_max_age_less_age_is_the_lifetime_clamped(max_age: int, age: int, before: str) -> None:
    """RFC 9111 §4.2: fresh while ``max-age`` exceeds the current age (§1.2.2: values
    past 2^31 are 2^31)."""
    remaining = min(max_age, 2**31) - min(age, 2**31)
    expected = max(JWKS_MIN_CACHE_SECONDS, min(JWKS_MAX_CACHE_SECONDS, remaining))
    assert jwks_lifetime(f"{before}max-age={max_age}", str(age)) == expected


class _RefusedError(Exception):
    """The caller's own refusal (each caller of the cache keeps its error type)."""


_ANSWERS = st.one_of(
    st.none(),  # the fetch fails
    st.tuples(
        st.sampled_from(["", "no-store", "no-cache", "max-age=0", "max-age=7", "max-age=60"]),
        st.sampled_from(["", "0", "5", "50"]),
    ),
)


@given(st.lists(st.tuples(st.floats(0, 20), st.booleans(), _ANSWERS), max_size=40))
def test_whatever_the_server_answers_it_is_asked_once_per_5_s_and_stale_keys_are_never_used(
    steps: list[tuple[float, bool, tuple[str, str] | None]],
) -> None:
    """The rule both callers (EHR ``jku``, SMART ``--jwks-url``) rely on, for any sequence
    of answers, waits and unknown-``kid`` lookups: two fetches of a URL are at least
    5 s apart, every key set handed out is within its answer's lifetime, and a failure is
    the caller's own error."""
    clock = ManualClock()
    loads: list[tuple[float, float]] = []  # (when, lifetime) of each successful fetch
    fetched_at: list[float] = []
    answer: list[tuple[str, str] | None] = [None]
    refusals: list[str] = []

    def load(_url: str) -> tuple[dict[str, object], dict[str, str]]:
        fetched_at.append(clock())
        if answer[0] is None:
            raise KeySetUnavailableError("down")
        cache_control, age = answer[0]
        loads.append((clock(), jwks_lifetime(cache_control, age)))
        return {"keys": [], "load": len(loads) - 1}, {"cache-control": cache_control, "age": age}

    cache = JwksCache(load, _RefusedError, clock=clock)
    for wait, fresh, served in steps:
        clock.advance(wait)
        answer[0] = served
        try:
            jwks = cache.get("https://keys.example/jwks", fresh=fresh)
        except _RefusedError as exc:
            refusals.append(str(exc))
            continue
        when, lifetime = loads[int(jwks["load"])]
        assert clock() < when + lifetime
    assert set(refusals) <= {"down"}
    gaps = [later - earlier for earlier, later in itertools.pairwise(fetched_at)]
    assert all(gap >= JWKS_REFETCH_SECONDS for gap in gaps)


def test_under_gunicorn_and_gevent_calls_arriving_together_share_one_fetch(tmp_path: Path):
    """The product as served: ``twitch-triage serve`` (gevent worker; the app preloaded
    before gevent patches ``threading``). Eight CDS calls at once while the JWKS server is
    slow: one fetch, every call answered (a lock that blocked the worker's one thread
    while a greenlet fetched would hang them all)."""
    ehr = Ehr(f"https://gevent-{uuid.uuid4().hex[:6]}.example")
    product = Product.at(tmp_path)
    base = product.base
    headers = {"Cache-Control": "max-age=60"}
    with LoopbackServer({"/jwks": (200, headers, ehr.jwks())}, delay=0.5) as keys:
        product.cli(
            "ehrs", "register", "--tenant", TENANT, "--iss", ehr.iss, "--jku", keys.url + "/jwks"
        )

        def one_call() -> urllib.request.Request:
            body = json.dumps(hook_request("p-gevent", None)).encode()
            return urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
                base + SERVICE,
                data=body,
                headers={
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {ehr.token(base + SERVICE)}",
                },
            )

        with product.serving() as log:
            statuses = simultaneous_statuses(one_call)
    assert statuses == [200] * 8, log.read_text()[-2000:]
    assert len(keys.calls) == 1
