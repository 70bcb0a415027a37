"""Shared fixtures for the API tests: an app per test and its test client.

Every app the tests create (``create_app`` as imported from :mod:`api`, the
``app`` fixture alike) gets a client of the ``local`` tenant holding every
scope, and its test client sends that client's key by default
(``Authorization`` in ``environ_base``), so tests written before partner
identity keep their assertions. :func:`anonymous` is a test client without it.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from storage_support import database_url, postgres_url  # noqa: F401 (shared fixtures)
from strategies import requests
from werkzeug.test import TestResponse

import api
from api.auth.clients import create_client
from api.config import EXTENSION

_create_app = api.create_app


class KeyedClient(FlaskClient):
    """A test client whose requests carry ``app.config["TEST_API_KEY"]`` by default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        key = self.application.config.get("TEST_API_KEY")
        if key:
            self.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"


def create_app(config: Any = None, **kwargs: Any) -> Flask:
    """``api.create_app``, plus a ``local`` client whose key the test client sends."""
    app = _create_app(config, **kwargs)
    created = create_client(app.extensions[EXTENSION].clients, tenant="local", label="pytest")
    app.config["TEST_API_KEY"] = created.api_key
    app.config["TEST_CLIENT_ID"] = created.client_id
    app.test_client_class = KeyedClient
    return app


# No per-example time limit for property tests: hypothesis's default 200 ms deadline
# measures the machine's load, not the code (a two-core CI runner, other suites beside),
# and failed here once on a loaded machine for a test that passes in 20 ms. Speed is
# measured by the benchmark (bench/), not by tests.
hypothesis_settings.register_profile("suite", deadline=None)
hypothesis_settings.load_profile("suite")

# Test modules import create_app from api after this conftest: they get the keyed one.
api.create_app = create_app  # type: ignore[assignment]


def anonymous(app: Flask) -> FlaskClient:
    """A test client that sends no credentials."""
    return FlaskClient(app, app.response_class)


_SUITE_STORE: list[str] = []


def pytest_configure() -> None:
    """One SQLite store per test process (xdist worker), unless the caller names one.

    No rate limit unless a test sets one: property tests send thousands of
    requests a minute from one client (or one address, to the token endpoint).
    """
    if "TWITCH_TRIAGE_DATABASE_URL" not in os.environ:
        folder = tempfile.mkdtemp(prefix="twitch-triage-tests-")
        _SUITE_STORE.append(folder)
        os.environ["TWITCH_TRIAGE_DATABASE_URL"] = f"sqlite:///{folder}/store.sqlite3"
    os.environ.setdefault("TWITCH_TRIAGE_RATE_LIMIT", "")
    # Likewise the SMART token endpoint's limits (tests/test_auth_token_hostile.py sets them).
    os.environ.setdefault("TWITCH_TRIAGE_TOKEN_RATE_LIMIT", "")
    os.environ.setdefault("TWITCH_TRIAGE_TOKEN_FAILURE_LIMIT", "")


def pytest_unconfigure() -> None:
    """Remove the store this process created (servers the tests started are gone by now)."""
    for folder in _SUITE_STORE:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("TWITCH_TRIAGE_DATABASE_URL", None)


#: A small valid request (PROTOCOL.md §3) for tests that need one to pass.
VALID_REQUEST: dict[str, Any] = {
    "patient": {"age_years": 30},
    "twitching": {"body_sites": ["calf"]},
}


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Flask:
    """A fresh app with default settings, isolated from the caller's environment."""
    for name in ("TWITCH_TRIAGE_MAX_BODY_BYTES", "TWITCH_TRIAGE_CANONICAL_BASE"):
        monkeypatch.delenv(name, raising=False)
    return create_app({"TESTING": True})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def post_triage(client: FlaskClient) -> Callable[..., TestResponse]:
    """POST raw bytes (or a JSON-encodable value) to /v1/triage."""

    def post(
        body: bytes | Any,
        *,
        content_type: str | None = "application/json",
        headers: dict[str, str] | None = None,
    ) -> TestResponse:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        all_headers = dict(headers or {})
        if content_type is not None:
            all_headers["Content-Type"] = content_type
        return client.post("/v1/triage", data=data, headers=all_headers)

    return post


#: Drawn values are copied where they are placed: a shared [] or {} edited by a later
#: corruption would change this list itself (hypothesis: FlakyStrategyDefinition).
_WRONG = st.sampled_from([None, True, 1, 1.5, "x", "", [], {}, ["calf"], [None], {"class": 1}])


@st.composite
def mutated_requests(draw: st.DrawFn) -> Any:
    """A valid request with a few random corruptions (wrong values, unknown keys, deletions)."""
    # A copy: the corruptions below edit it in place, and a drawn value may share
    # objects with the strategy's own (hypothesis then sees generation change).
    request = copy.deepcopy(draw(requests()))
    for _ in range(draw(st.integers(0, 4))):
        node: Any = request
        while isinstance(node, dict | list) and node and draw(st.booleans()):
            key = draw(st.sampled_from(list(node) if isinstance(node, dict) else range(len(node))))
            if not isinstance(node[key], dict | list):
                break
            node = node[key]
        action = draw(st.sampled_from(["set", "unknown", "delete"]))
        if isinstance(node, dict) and node and action != "unknown":
            key = draw(st.sampled_from(sorted(node)))
            if action == "delete":
                del node[key]
            else:
                node[key] = copy.deepcopy(draw(_WRONG))
        elif isinstance(node, dict):
            node[draw(st.sampled_from(["zzz", "_schema", "confsion", "class"]))] = 1
        elif isinstance(node, list) and node:
            node[draw(st.integers(0, len(node) - 1))] = copy.deepcopy(draw(_WRONG))
    return request
