"""The ``twitch-triage clients`` contract on a fresh instance, and serve's safety checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import anonymous
from conftest import create_app as keyed_create_app

import api
from api.auth.clients import ClientError, create_client
from api.auth.jwks import loopback_host
from api.auth.keys import secret_hash
from api.cli import main
from api.config import EXTENSION

REPO = Path(__file__).resolve().parents[1]


def cli(tmp_path: Path, *argv: str, grace: str = "3600") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "TWITCH_TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path}/fresh.sqlite3",
        "TWITCH_TRIAGE_KEY_GRACE_SECONDS": grace,
    }
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "clients", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def status(tmp_path: Path, key: str) -> int:
    """The status of a search with ``key`` against the CLI's database."""
    app = api.create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/fresh.sqlite3"})
    return (
        anonymous(app)
        .get("/fhir/Observation", headers={"Authorization": f"Bearer {key}"})
        .status_code
    )


def test_create_list_rotate_revoke_on_a_fresh_instance(tmp_path):
    created = cli(
        tmp_path, "create", "--tenant", "acme", "--label", "EHR", "--scope", "system/Observation.rs"
    )
    assert created.returncode == 0, created.stderr
    (line,) = created.stdout.splitlines()
    printed = json.loads(line)
    assert printed["tenant"] == "acme"
    assert printed["api_key"].startswith("tt_")
    assert len(printed["api_key"]) >= 43
    assert printed["scopes"] == ["system/Observation.rs"]
    database = (tmp_path / "fresh.sqlite3").read_bytes()
    assert printed["api_key"].encode() not in database  # only its hash is stored
    assert secret_hash(printed["api_key"]).encode() in database
    assert status(tmp_path, printed["api_key"]) == 200

    listed = [json.loads(row) for row in cli(tmp_path, "list").stdout.splitlines()]
    # (status() added the test harness's own client of the local tenant.)
    assert [(c["client_id"], c["revoked"]) for c in listed if c["tenant"] == "acme"] == [
        (printed["client_id"], False)
    ]
    assert all("api_key" not in c for c in listed)

    rotated = json.loads(cli(tmp_path, "rotate", printed["client_id"]).stdout)
    assert rotated["api_key"] != printed["api_key"]
    assert status(tmp_path, rotated["api_key"]) == 200
    assert status(tmp_path, printed["api_key"]) == 200  # inside the grace period

    assert cli(tmp_path, "revoke", printed["client_id"]).returncode == 0
    assert status(tmp_path, rotated["api_key"]) == 401
    assert status(tmp_path, printed["api_key"]) == 401
    again = cli(tmp_path, "revoke", printed["client_id"])
    assert again.returncode == 1
    assert "no active client" in again.stderr


def test_rotation_without_grace_retires_the_old_key_at_once(tmp_path):
    printed = json.loads(cli(tmp_path, "create", "--tenant", "acme").stdout)
    rotated = json.loads(cli(tmp_path, "rotate", printed["client_id"], grace="0").stdout)
    assert status(tmp_path, printed["api_key"]) == 401
    assert status(tmp_path, rotated["api_key"]) == 200


def test_bad_scopes_and_jwks_are_refused(tmp_path):
    bad_scope = cli(tmp_path, "create", "--tenant", "acme", "--scope", "patient/*.read")
    assert bad_scope.returncode == 1
    assert "SMART v2" in bad_scope.stderr
    jwks = tmp_path / "jwks.json"
    jwks.write_text("[]")
    assert cli(tmp_path, "create", "--tenant", "acme", "--jwks-file", str(jwks)).returncode == 1
    both = cli(tmp_path, "create", "--tenant", "a", "--jwks-file", "x", "--jwks-url", "https://x")
    assert both.returncode == 2  # argparse: mutually exclusive


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://keys.partner.example/jwks.json", True),
        ("http://127.0.0.1:8080/jwks.json", True),
        ("http://localhost/jwks.json", True),
        ("http://keys.partner.example/jwks.json", False),
        ("http://10.0.0.5/jwks.json", False),
        ("ftp://keys.partner.example/jwks.json", False),
        ("https:///jwks.json", False),
    ],
)
def test_a_jwks_url_must_be_https_or_this_machine(app, url, accepted):
    """Whoever can change what a plain-http JWKS URL answers can mint tokens as the
    client (the authorization review registered ``http://example.com/jwks.json``)."""
    clients = app.extensions[EXTENSION].clients
    if accepted:
        assert create_client(clients, tenant="smart", jwks_url=url).client_id
    else:
        with pytest.raises(ClientError, match="https URL"):
            create_client(clients, tenant="smart", jwks_url=url)


def test_serve_refuses_a_public_address_without_tls(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--host", "0.0.0.0"], environ={})  # noqa: S104 (the address refused)
    assert exit_info.value.code == 2
    assert "TWITCH_TRIAGE_TLS_TERMINATED" in capsys.readouterr().err


def test_loopback_addresses():
    assert all(loopback_host(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(loopback_host(h) for h in ("0.0.0.0", "10.0.0.1", "example.org", "::"))  # noqa: S104


def test_the_local_key_file_is_written_once_with_mode_0600(tmp_path):
    from api.auth.bootstrap import ensure_local_client  # noqa: PLC0415

    app = keyed_create_app({"TESTING": True, "LOCAL_KEY_FILE": str(tmp_path / "key")})
    written = ensure_local_client(app)
    assert written == tmp_path / "key"
    assert written.stat().st_mode & 0o777 == 0o600
    key = written.read_text().strip()
    assert ensure_local_client(app) is None  # the key still works: nothing new
    assert written.read_text().strip() == key
    response = anonymous(app).get("/fhir/Observation", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
