"""The in-process cache of API-key lookups and what it promises about revocation.

Two apps on one database (a SQLite file, a real PostgreSQL) stand for two nodes
(or a node and the ``clients`` CLI): a key revoked or rotated on either stops
working on both at once, because each cached lookup is used only under the
credential epoch it was read under. Database reads are counted with a real
SQLAlchemy cursor event on the real engine. ``test_serving_revocation.py`` checks
the same against gunicorn workers and the CLI.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import VALID_REQUEST, anonymous, create_app
from flask import Flask
from sqlalchemy import event, text

from api.auth.clients import create_client, revoke_client, rotate_client
from api.config import EXTENSION

#: The TTL of the TTL test; the other nodes keep a lookup a minute, so that only the
#: credential epoch can explain a key refused right after a change elsewhere.
CACHE_SECONDS = 1
LONG_CACHE_SECONDS = 60


def node(url: str, cache_seconds: int) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "DATABASE_URL": url,
            "KEY_CACHE_SECONDS": cache_seconds,
            "RATE_LIMIT": "",
        }
    )


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path / 'shared.sqlite3'}"


def status(app: Flask, key: str) -> int:
    """Status of an authenticated read that needs no stored data (a search)."""
    response = anonymous(app).get(
        "/fhir/QuestionnaireResponse", headers={"Authorization": f"Bearer {key}"}
    )
    return response.status_code


@contextlib.contextmanager
def client_reads(app: Flask) -> Iterator[list[str]]:
    """Collects every statement the app's engine runs against the api_client table."""
    seen: list[str] = []
    engine = app.extensions[EXTENSION].store.engine

    def listener(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM api_client" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listener)


@pytest.fixture
def nodes(database_url: str) -> tuple[Flask, Flask]:
    """Two apps on one fresh database, SQLite and PostgreSQL."""
    return node(database_url, LONG_CACHE_SECONDS), node(database_url, LONG_CACHE_SECONDS)


def wait_for_401(app: Flask, key: str, bound: float) -> float:
    """Seconds until ``key`` is refused on ``app``; fails past ``bound`` (+ slack)."""
    started = time.monotonic()
    while True:
        # When the request was made, not when its answer came: on a loaded machine one
        # request can take a second, and it was judged by the time it was made.
        asked = time.monotonic() - started
        if status(app, key) == 401:
            return asked
        assert asked < bound + 0.5, f"still accepted {asked:.2f} s after the change"
        time.sleep(0.05)


def test_a_cached_key_is_not_read_again(tmp_path: Path) -> None:
    first = node(sqlite_url(tmp_path), CACHE_SECONDS)
    key = create_client(first.extensions[EXTENSION].clients, tenant="t").api_key
    with client_reads(first) as seen:
        assert status(first, key) == 200
        assert len(seen) == 1
        for _ in range(5):
            assert status(first, key) == 200
        assert len(seen) == 1, "the lookup was read from the database again inside the TTL"
        time.sleep(CACHE_SECONDS + 0.1)
        assert status(first, key) == 200
        assert len(seen) == 2, "the lookup outlived its TTL"


def test_revocation_is_immediate_on_every_node(nodes: tuple[Flask, Flask]) -> None:
    first, second = nodes
    key = create_client(first.extensions[EXTENSION].clients, tenant="t").api_key
    assert status(first, key) == 200
    assert status(second, key) == 200  # both nodes now hold the lookup
    assert status(second, key) == 200
    revoke_client(first.extensions[EXTENSION].clients, _client_id(first, key))
    assert status(first, key) == 401  # the revoking node
    assert status(second, key) == 401  # and the other one, inside its cache's TTL


def test_rotation_retires_the_old_key_on_every_node_at_once(nodes: tuple[Flask, Flask]) -> None:
    first, second = nodes
    clients = first.extensions[EXTENSION].clients
    created = create_client(clients, tenant="t")
    assert status(second, created.api_key) == 200
    new_key = rotate_client(clients, created.client_id, grace_seconds=0)
    assert status(first, created.api_key) == 401
    assert status(second, created.api_key) == 401
    assert status(second, new_key) == 200  # a new key is never refused by the cache


def test_a_change_to_another_client_makes_every_node_read_again(
    nodes: tuple[Flask, Flask],
) -> None:
    """The epoch is one for all clients: another client's revocation costs one re-read."""
    first, second = nodes
    clients = first.extensions[EXTENSION].clients
    kept = create_client(clients, tenant="t").api_key
    revoked = create_client(clients, tenant="t")
    assert status(second, kept) == 200
    with client_reads(second) as seen:
        assert status(second, kept) == 200
        assert seen == []  # cached
        revoke_client(clients, revoked.client_id)
        assert status(second, kept) == 200
        assert len(seen) == 1  # read again once, then cached under the new epoch
        assert status(second, kept) == 200
        assert len(seen) == 1


def test_the_grace_period_ends_on_time_even_when_cached(tmp_path: Path) -> None:
    app = node(sqlite_url(tmp_path), 60)
    clients = app.extensions[EXTENSION].clients
    created = create_client(clients, tenant="t")
    rotate_client(clients, created.client_id, grace_seconds=1)
    assert status(app, created.api_key) == 200  # cached for 60 s, retiring in 1 s
    wait_for_401(app, created.api_key, 1)


def test_cache_off_means_every_request_reads_the_key(tmp_path: Path) -> None:
    first, second = node(sqlite_url(tmp_path), 0), node(sqlite_url(tmp_path), 0)
    key = create_client(first.extensions[EXTENSION].clients, tenant="t").api_key
    assert status(second, key) == 200
    with client_reads(second) as seen:
        assert status(second, key) == 200
        assert status(second, key) == 200
        assert len(seen) == 2
    revoke_client(first.extensions[EXTENSION].clients, _client_id(first, key))
    assert status(second, key) == 401


def test_without_a_readable_epoch_nothing_is_cached(nodes: tuple[Flask, Flask]) -> None:
    """A database whose epoch row is gone (never so after a migration): every request
    reads the key, so a revocation can never be missed."""
    first, _ = nodes
    key = create_client(first.extensions[EXTENSION].clients, tenant="t").api_key
    with first.extensions[EXTENSION].store.engine.begin() as connection:
        connection.execute(text("DELETE FROM credential_epoch"))
    with client_reads(first) as seen:
        for _ in range(3):
            assert status(first, key) == 200
        assert len(seen) == 3


def test_unknown_keys_are_never_cached(nodes: tuple[Flask, Flask]) -> None:
    """A refused key is looked up every time, so nothing is learned or kept from it."""
    first, _ = nodes
    with client_reads(first) as seen:
        for _ in range(3):
            assert status(first, "tt_not-a-key") == 401
        assert len(seen) == 3


def test_a_triage_with_a_cached_key_still_works(nodes: tuple[Flask, Flask]) -> None:
    first, _ = nodes
    key = create_client(first.extensions[EXTENSION].clients, tenant="t").api_key
    for _ in range(2):
        response = anonymous(first).post(
            "/v1/triage", json=VALID_REQUEST, headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 200


def _client_id(app: Flask, key: str) -> str:
    from api.auth.keys import secret_hash  # noqa: PLC0415

    record = app.extensions[EXTENSION].clients.by_key_hash(secret_hash(key))
    assert record is not None
    return record.id
