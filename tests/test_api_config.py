"""Typed settings from the environment, the app factory's overrides and the CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from api import create_app
from api.cli import GunicornServer, _parser, gunicorn_options, main
from api.config import ConfigError, Settings


def test_defaults():
    settings = Settings.load(environ={})
    assert settings.max_body_bytes == 65536
    assert settings.canonical_base == "https://twitch-triage.org/fhir"


def test_environment_then_overrides():
    env = {
        "TWITCH_TRIAGE_MAX_BODY_BYTES": " 1024 ",
        "TWITCH_TRIAGE_CANONICAL_BASE": "https://x.example/fhir/",
    }
    assert Settings.load(environ=env) == Settings(1024, "https://x.example/fhir")
    assert Settings.load({"max_body_bytes": 10}, environ=env).max_body_bytes == 10
    assert Settings.load({"MAX_BODY_BYTES": "20"}, environ=env).max_body_bytes == 20


@pytest.mark.parametrize("raw", ["64k", "-1", "0", "1e5", "1.0", "", "0x10", "١٢", True, 2.0])
def test_bad_integers_are_refused_with_the_variable_named(raw):
    env = {"TWITCH_TRIAGE_MAX_BODY_BYTES": raw} if isinstance(raw, str) else {}
    overrides = {} if isinstance(raw, str) else {"MAX_BODY_BYTES": raw}
    with pytest.raises(ConfigError) as info:
        Settings.load(overrides, environ=env)
    assert "MAX_BODY_BYTES" in str(info.value)


@pytest.mark.parametrize(
    "raw", ["ftp://x.example", "twitch-triage.org/fhir", "https://", "https://x/fhir?q=1", ""]
)
def test_bad_canonical_base_is_refused(raw):
    with pytest.raises(ConfigError, match="TWITCH_TRIAGE_CANONICAL_BASE"):
        Settings.load(environ={"TWITCH_TRIAGE_CANONICAL_BASE": raw})


def test_create_app_fails_fast_on_a_bad_environment(monkeypatch):
    monkeypatch.setenv("TWITCH_TRIAGE_MAX_BODY_BYTES", "lots")
    with pytest.raises(ConfigError):
        create_app()


def test_create_app_passes_other_keys_to_flask(monkeypatch):
    monkeypatch.delenv("TWITCH_TRIAGE_MAX_BODY_BYTES", raising=False)
    app = create_app({"TESTING": True, "MAX_BODY_BYTES": 100})
    assert app.config["TESTING"] is True
    # One byte above the API's limit: read_body probes one byte past it (see create_app).
    assert app.config["MAX_CONTENT_LENGTH"] == 101
    assert "MAX_BODY_BYTES" not in app.config


# --- the serve command --------------------------------------------------------------------


def test_serve_defaults_to_loopback_port_8000_two_gevent_workers():
    args = _parser({}).parse_args(["serve"])
    assert (args.host, args.port, args.workers) == ("127.0.0.1", "8000", "2")
    options = gunicorn_options("127.0.0.1", 8000, 2)
    assert options["bind"] == "127.0.0.1:8000"
    assert options["workers"] == 2
    # Issue 12: sync workers are starved by slow clients; gevent with bounded reads.
    assert options["worker_class"] == "api.serving.worker.TriageGeventWorker"
    assert 0 < options["keepalive"] <= 30


def test_serve_reads_environment_and_flags_win():
    env = {"TWITCH_TRIAGE_HOST": "0.0.0.0", "TWITCH_TRIAGE_PORT": "9000"}  # noqa: S104
    args = _parser(env).parse_args(["serve", "--port", "9100", "--workers", "4"])
    assert (args.host, args.port, args.workers) == ("0.0.0.0", "9100", "4")  # noqa: S104


def test_gunicorn_application_takes_our_options():
    def wsgi(environ: object, start_response: object) -> list[bytes]:
        del environ, start_response
        return []

    server = GunicornServer(wsgi, gunicorn_options("127.0.0.1", 8123, 3))
    assert server.cfg.bind == ["127.0.0.1:8123"]
    assert server.cfg.workers == 3
    assert server.cfg.preload_app is True
    assert server.load() is wsgi


@pytest.mark.parametrize("argv", [["serve", "--port", "http"], ["serve", "--workers", "0"]])
def test_serve_rejects_bad_numbers_before_starting(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv, environ={})
    assert info.value.code == 2
    assert "must be" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_runs_gunicorn_for_real(tmp_path):
    """`twitch-triage serve` answers over TCP (the README's run command)."""
    port = _free_port()
    repo = Path(__file__).resolve().parents[1]
    key_file = tmp_path / "local-api-key"
    env = {
        **os.environ,
        "PYTHONPATH": str(repo),
        "TWITCH_TRIAGE_PORT": str(port),
        "TWITCH_TRIAGE_LOCAL_KEY_FILE": str(key_file),
    }
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--workers", "1"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert json.loads(r.read())["status"] == "ok"
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError((tmp_path / "server.log").read_text()) from None
                time.sleep(0.1)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/triage",
            data=b'{"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}',
            headers={
                "Content-Type": "application/json",
                # serve wrote the local client's key, readable by its owner only (issue 11)
                "Authorization": f"Bearer {key_file.read_text().strip()}",
            },
        )
        assert key_file.stat().st_mode & 0o777 == 0o600
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            assert response.headers["Content-Type"] == "application/fhir+json; fhirVersion=4.0"
            assert json.loads(response.read())["resourceType"] == "Bundle"
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
