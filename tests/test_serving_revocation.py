"""A key revoked or rotated with the ``clients`` CLI stops working at once in every
gunicorn worker of a running server, though each worker caches its key lookups.

The real thing: ``python -m api.cli serve`` (two gevent workers, a SQLite file, a
minute of key cache so that only the credential epoch can explain a refusal) and
the CLI in its own process on the same file, as an operator runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.http import api_argv, free_port, request, running

pytestmark = pytest.mark.server

REPO = Path(__file__).resolve().parents[1]
#: Enough requests that both workers serve (and cache) the key with near certainty.
REQUESTS = 24


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    env = {
        "TWITCH_TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path}/served.sqlite3",
        "TWITCH_TRIAGE_KEY_CACHE_SECONDS": "60",
        "TWITCH_TRIAGE_KEY_GRACE_SECONDS": "0",
        "TWITCH_TRIAGE_RATE_LIMIT": "",
    }
    port = free_port()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        with running("api", api_argv(port, workers=2), port):
            yield port, env


def cli(env: dict[str, str], *argv: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "clients", *argv],
        env={**os.environ, **env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout) if done.stdout.strip() else {}


def statuses(port: int, key: object) -> set[int]:
    headers = {"Authorization": f"Bearer {key}"}
    return {
        request(port, "GET", "/fhir/QuestionnaireResponse", headers=headers)[0]
        for _ in range(REQUESTS)
    }


def test_a_key_revoked_with_the_cli_is_refused_by_every_worker_at_once(served):
    port, env = served
    created = cli(env, "create", "--tenant", "acme")
    assert statuses(port, created["api_key"]) == {200}  # now cached in both workers
    cli(env, "revoke", str(created["client_id"]))
    assert statuses(port, created["api_key"]) == {401}


def test_a_key_rotated_with_the_cli_is_refused_by_every_worker_at_once(served):
    port, env = served
    created = cli(env, "create", "--tenant", "acme")
    assert statuses(port, created["api_key"]) == {200}
    rotated = cli(env, "rotate", str(created["client_id"]))  # grace 0 (see served)
    assert statuses(port, created["api_key"]) == {401}
    assert statuses(port, rotated["api_key"]) == {200}
