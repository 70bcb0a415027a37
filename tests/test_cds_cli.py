"""The ``twitch-triage ehrs`` contract on a fresh instance (issue 13).

``ehrs register --tenant NAME --iss ISS (--jwks-file FILE | --jku URL)`` is fixed:
scripts rely on it. The registered EHR's tokens then open the CDS service.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from cds_support import Ehr, call, hook_request

import api
from api.cli import main

REPO = Path(__file__).resolve().parents[1]


def ehrs(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "TWITCH_TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path}/fresh.sqlite3",
    }
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "ehrs", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ehrs_here(tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """The same command in this process (quicker): (exit status, stderr)."""
    env = {"TWITCH_TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path}/fresh.sqlite3"}
    try:
        status = main(["ehrs", *argv], environ=env)
    except SystemExit as exc:  # argparse
        status = int(exc.code or 0)
    return status, capsys.readouterr().err


def test_register_list_remove_on_a_fresh_instance(tmp_path):
    ehr = Ehr("https://ehr.example/fhir")
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(ehr.jwks()), encoding="utf-8")
    done = ehrs(
        tmp_path, "register", "--tenant", "clinic-a", "--iss", ehr.iss, "--jwks-file", str(keys)
    )
    assert done.returncode == 0, done.stderr
    registered = json.loads(done.stdout)
    assert registered["tenant"] == "clinic-a"
    assert registered["iss"] == ehr.iss
    assert registered["ehr_id"].startswith("ehr_")
    assert registered["jwks"] == {"kids": [ehr.kid]}
    # The EHR's tokens now open the service, for its tenant.
    app = api.create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/fresh.sqlite3"})
    assert call(app.test_client(), ehr, hook_request("p1", None)).status_code == 200
    # Registering again re-keys the same EHR (same id); another tenant cannot take the issuer.
    rotated = Ehr(ehr.iss)
    keys.write_text(json.dumps(rotated.jwks()), encoding="utf-8")
    again = ehrs(
        tmp_path, "register", "--tenant", "clinic-a", "--iss", ehr.iss, "--jwks-file", str(keys)
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["ehr_id"] == registered["ehr_id"]
    assert call(app.test_client(), ehr, hook_request("p1", None)).status_code == 401
    assert call(app.test_client(), rotated, hook_request("p1", None)).status_code == 200
    taken = ehrs(
        tmp_path, "register", "--tenant", "clinic-b", "--iss", ehr.iss, "--jwks-file", str(keys)
    )
    assert taken.returncode == 1
    assert "another tenant" in taken.stderr
    jku = ehrs(
        tmp_path,
        "register",
        "--tenant",
        "clinic-b",
        "--iss",
        "https://b.example",
        "--jku",
        "https://b.example/jwks",
    )
    assert jku.returncode == 0, jku.stderr
    listed = [json.loads(line) for line in ehrs(tmp_path, "list").stdout.splitlines()]
    assert [(row["iss"], row["tenant"]) for row in listed] == [
        (ehr.iss, "clinic-a"),
        ("https://b.example", "clinic-b"),
    ]
    assert listed[1]["jku"] == "https://b.example/jwks"
    removed = ehrs(tmp_path, "remove", "--iss", ehr.iss)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout)["removed"] is True
    assert call(app.test_client(), rotated, hook_request("p1", None)).status_code == 401
    assert ehrs(tmp_path, "remove", "--iss", ehr.iss).returncode == 1


def _private_jwk(ehr: Ehr) -> dict:
    private = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ehr.private))
    private["kid"] = ehr.kid
    return {"keys": [private]}


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda _ehr: {"keys": []}, "non-empty"),
        (lambda _ehr: {"nokeys": 1}, "non-empty"),
        (_private_jwk, "private"),
        (lambda _ehr: {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}, "private"),
        (
            lambda _ehr: {
                "keys": [{"kty": "EC", "kid": "x", "crv": "P-384", "x": "AA", "y": "AA"}]
            },
            "usable",
        ),
    ],
    ids=["empty", "no-keys", "private-key", "hmac-secret", "broken-key"],
)
def test_unusable_or_secret_keys_are_refused(tmp_path, make, needle):
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(make(Ehr("https://e.example"))), encoding="utf-8")
    done = ehrs(
        tmp_path,
        "register",
        "--tenant",
        "t",
        "--iss",
        "https://e.example",
        "--jwks-file",
        str(keys),
    )
    assert done.returncode == 1
    assert needle in done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--jku", "http://ehr.example/jwks"],  # plain http off this machine
        ["--jku", "ftp://ehr.example/jwks"],
        ["--jwks-file", "/nonexistent/jwks.json"],
    ],
)
def test_bad_key_sources_are_refused(tmp_path, argv):
    done = ehrs(tmp_path, "register", "--tenant", "t", "--iss", "https://e.example", *argv)
    assert done.returncode == 1
    assert "twitch-triage ehrs:" in done.stderr


def test_the_key_source_is_required_and_exclusive(tmp_path):
    assert ehrs(tmp_path, "register", "--tenant", "t", "--iss", "i").returncode == 2
    both = ehrs(
        tmp_path,
        "register",
        "--tenant",
        "t",
        "--iss",
        "i",
        "--jku",
        "https://a",
        "--jwks-file",
        "f",
    )
    assert both.returncode == 2
