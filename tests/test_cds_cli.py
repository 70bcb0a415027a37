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
from cds_support import Ehr, LoopbackServer, call, hook_request

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


def test_fhir_servers_are_registered_listed_and_replaced(tmp_path):
    """``--fhir-server`` (repeatable) is normalised and listed; registering again replaces
    the list; the service then fetches from a registered server and no other."""
    ehr = Ehr("https://ehr.example/fhir")
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(ehr.jwks()), encoding="utf-8")
    base = ["register", "--tenant", "clinic-a", "--iss", ehr.iss, "--jwks-file", str(keys)]
    intake = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    with (
        LoopbackServer({"/fhir/QuestionnaireResponse": (200, {}, intake)}) as fhir,
        LoopbackServer({"/fhir/QuestionnaireResponse": (200, {}, intake)}) as other,
    ):
        done = ehrs(
            tmp_path,
            *base,
            "--fhir-server",
            fhir.url + "/fhir/",
            "--fhir-server",
            "HTTPS://EHR.Example:443/fhir",
            "--fhir-server",
            fhir.url + "/fhir",  # the same server again: kept once
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["fhir_servers"] == [
            fhir.url + "/fhir",
            "https://ehr.example/fhir",
        ]
        [listed] = [json.loads(line) for line in ehrs(tmp_path, "list").stdout.splitlines()]
        assert listed["fhir_servers"] == [fhir.url + "/fhir", "https://ehr.example/fhir"]

        app = api.create_app(
            {"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/fresh.sqlite3"}
        )

        def fetch_from(server: str) -> int:
            body = hook_request(
                "p1",
                prefetch=False,
                fhirServer=server,
                fhirAuthorization={
                    "access_token": "t0ken",
                    "token_type": "Bearer",
                    "expires_in": 60,
                    "scope": "patient/QuestionnaireResponse.read",
                    "subject": "twitch-triage",
                },
            )
            return call(app.test_client(), ehr, body).status_code

        assert fetch_from(fhir.url + "/fhir") == 200
        assert fetch_from(other.url + "/fhir") == 412
        assert (len(fhir.calls), other.calls) == (1, [])

        # Registering again replaces the list: the old server is refused, the new one used.
        again = ehrs(tmp_path, *base, "--fhir-server", other.url + "/fhir")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["fhir_servers"] == [other.url + "/fhir"]
        assert fetch_from(fhir.url + "/fhir") == 412
        assert fetch_from(other.url + "/fhir") == 200
        assert (len(fhir.calls), len(other.calls)) == (1, 1)

        # Without --fhir-server: none kept (prefetch only).
        bare = ehrs(tmp_path, *base)
        assert bare.returncode == 0, bare.stderr
        assert json.loads(bare.stdout)["fhir_servers"] == []
        assert fetch_from(other.url + "/fhir") == 412
        assert len(other.calls) == 1


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("http://ehr.example/fhir", "https"),  # plain http off this machine
        ("http://169.254.169.254/fhir", "https"),
        ("ftp://ehr.example/fhir", "http(s)"),
        ("https://ehr.example/fhir?tenant=a", "query"),
        ("https://ehr.example/fhir?", "query"),
        ("https://ehr.example/fhir#x", "fragment"),
        ("https://user:pw@ehr.example/fhir", "user info"),
        ("https:///fhir", "host"),
        ("https://ehr.example:99999/fhir", "port"),
        ("https://ehr.example/f hir", "blanks"),
        ("https://ehr.example/fhir\t", "blanks"),
        ("https://" + "a" * 2048 + ".example", "2048"),
    ],
)
def test_bad_fhir_servers_are_refused(tmp_path, capsys, url, needle):
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(Ehr("https://e.example").jwks()), encoding="utf-8")
    argv = ["register", "--tenant", "t", "--iss", "https://e.example", "--jwks-file", str(keys)]
    status, err = ehrs_here(tmp_path, capsys, *argv, "--fhir-server", url)
    assert status == 1
    assert "--fhir-server" in err
    assert needle in err
    env = {"TWITCH_TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path}/fresh.sqlite3"}
    assert main(["ehrs", "list"], environ=env) == 0
    assert capsys.readouterr().out == ""  # nothing was registered


def test_at_most_ten_fhir_servers(tmp_path, capsys):
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(Ehr("https://e.example").jwks()), encoding="utf-8")
    argv = ["register", "--tenant", "t", "--iss", "https://e.example", "--jwks-file", str(keys)]
    servers = [arg for n in range(11) for arg in ("--fhir-server", f"https://e.example/{n}")]
    status, err = ehrs_here(tmp_path, capsys, *argv, *servers)
    assert (status, "at most 10" in err) == (1, True)
    status, err = ehrs_here(tmp_path, capsys, *argv, *servers[:20])
    assert status == 0, err
