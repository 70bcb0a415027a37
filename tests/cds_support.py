"""Helpers for the CDS Hooks tests: EHR keys, signed JWTs, registered EHRs, calls.

Keys are generated with ``cryptography``; tokens are signed with PyJWT exactly as
an EHR would (CDS Hooks "Trusting CDS Clients"): header alg/kid/typ, claims
iss/aud/exp/iat/jti.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from flask.testing import FlaskClient

from api.auth.ehrs import register_ehr
from api.config import EXTENSION
from api.fhir import codesystems as cs
from triage import KNOWLEDGE_BASE_VERSION

SERVICE = "/cds-services/twitch-triage"
FEEDBACK = SERVICE + "/feedback"
HOST = "http://localhost"
#: The tenant the CDS tests register their EHR for.
TENANT = "clinic-a"
QUESTIONNAIRE = cs.questionnaire_canonical(cs.DEFAULT_CANONICAL_BASE, KNOWLEDGE_BASE_VERSION)


@dataclass
class Ehr:
    """An EHR's signing key pair and issuer."""

    iss: str
    alg: str = "ES384"
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    private: Any = None

    def __post_init__(self) -> None:
        if self.private is None:
            self.private = (
                ec.generate_private_key(ec.SECP384R1())
                if self.alg == "ES384"
                else rsa.generate_private_key(public_exponent=65537, key_size=2048)
            )

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set (what ``ehrs register --jwks-file`` reads)."""
        algorithms = jwt.algorithms
        algorithm = algorithms.ECAlgorithm if self.alg == "ES384" else algorithms.RSAAlgorithm
        public = json.loads(algorithm.to_jwk(self.private.public_key()))
        public.update({"kid": self.kid, "use": "sig", "alg": self.alg})
        return {"keys": [public]}

    def token(
        self,
        aud: str,
        *,
        claims: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        headers: dict[str, Any] | None = None,
        key: Any = None,
        alg: str | None = None,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.iss,
            "aud": aud,
            "exp": now + 120,
            "iat": now,
            "jti": str(uuid.uuid4()),
        }
        payload.update(claims or {})
        for name in drop:
            payload.pop(name, None)
        return jwt.encode(
            payload,
            key if key is not None else self.private,
            algorithm=alg or self.alg,
            headers={"kid": self.kid, "typ": "JWT", **(headers or {})},
        )


def register(
    app: Flask,
    ehr: Ehr,
    tenant: str,
    *,
    jku: str | None = None,
    fhir_servers: tuple[str, ...] = (),
) -> str:
    """Register ``ehr`` for ``tenant`` (inline JWKS, or its jku) with the FHIR servers it
    may name (again: replaces them); the EHR's id."""
    cds = app.extensions[EXTENSION].cds
    record = register_ehr(
        cds,
        tenant=tenant,
        iss=ehr.iss,
        jwks=None if jku else ehr.jwks(),
        jku=jku,
        fhir_servers=fhir_servers,
    )
    return record.id


@pytest.fixture(name="ehr")
def registered_ehr(app: Flask) -> Ehr:
    """A new EHR registered for ``TENANT`` (inline JWK Set, no FHIR server)."""
    found = Ehr(f"https://ehr-{uuid.uuid4().hex[:8]}.example/fhir")
    register(app, found, TENANT)
    return found


def hook_request(
    patient_id: str, intake: Any = None, *, prefetch: bool = True, **extra: Any
) -> dict[str, Any]:
    """A ``patient-view`` request, with ``intake`` as ``prefetch.intake`` when asked."""
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"patientId": patient_id, "userId": "Practitioner/example"},
    }
    if prefetch:
        body["prefetch"] = {"intake": intake}
    body.update(extra)
    return body


def call(
    client: FlaskClient,
    ehr: Ehr,
    body: Any,
    *,
    path: str = SERVICE,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """POST ``body`` to a CDS endpoint with a fresh JWT for exactly that URL."""
    bearer = token if token is not None else ehr.token(HOST + path)
    return client.post(
        path,
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {bearer}", **(headers or {})},
    )


def intake_for(client: FlaskClient, request: dict[str, Any], patient_id: str) -> dict[str, Any]:
    """The intake QuestionnaireResponse of ``request`` (as /v1/triage renders it), for a patient.

    The subject names the patient; the ``patient.reference`` answer, when the request
    has one, is made the same (a QuestionnaireResponse names one patient).
    """
    answer = json.loads(json.dumps(request))
    answer.setdefault("patient", {})
    answer["patient"]["reference"] = f"Patient/{patient_id}"
    response = client.post("/v1/triage", json=answer)
    assert response.status_code == 200, response.data[:500]
    qr = response.json["entry"][0]["resource"]
    qr["subject"] = {"reference": f"Patient/{patient_id}"}
    qr["authored"] = "2026-11-27T10:00:00Z"
    return qr


def searchset(*resources: dict[str, Any]) -> dict[str, Any]:
    """What an EHR's FHIR server answers to the intake search: these resources, matched."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }


def authorized(server: str, token: str) -> dict[str, Any]:
    """The ``fhirServer`` and ``fhirAuthorization`` an EHR sends for the service to fetch."""
    return {
        "fhirServer": server,
        "fhirAuthorization": {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/QuestionnaireResponse.read",
            "subject": "twitch-triage",
        },
    }


class LoopbackServer:
    """A real HTTP server on 127.0.0.1 in a thread: answers ``routes`` and records calls.

    ``routes`` maps a path (without query) to (status, headers, JSON body or bytes).
    Each request is recorded as (path with query, Authorization header); ``delay`` seconds
    pass before each answer (a slow server).
    """

    def __init__(
        self, routes: dict[str, tuple[int, dict[str, str], Any]], *, delay: float = 0.0
    ) -> None:
        self.routes = routes
        self.delay = delay
        self.calls: list[tuple[str, str | None]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.calls.append((self.path, self.headers.get("Authorization")))
                time.sleep(outer.delay)
                route = outer.routes.get(self.path.split("?", 1)[0])
                status, headers, body = route if route is not None else (404, {}, {"no": 1})
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


#: When the clinician acted on a card, in the tests' feedback (an RFC 3339 instant).
ACTED_AT = "2026-11-27T12:00:00Z"


def feedback_entry(card: str, outcome: str = "overridden", **extra: Any) -> dict[str, Any]:
    """One CDS Hooks 2.0 feedback entry on ``card``, of the shape the specification allows
    unless ``extra`` says not: ``outcomeTimestamp`` given; ``accepted`` names a suggestion
    accepted (a value None in ``extra`` drops that member). ``overridden`` by default: our
    cards offer no suggestions, so the service refuses every ``accepted`` entry (its
    suggestion id is none of the card's)."""
    entry: dict[str, Any] = {"card": card, "outcome": outcome, "outcomeTimestamp": ACTED_AT}
    if outcome == "accepted":
        entry["acceptedSuggestions"] = [{"id": str(uuid.uuid4())}]
    entry.update(extra)
    return {key: value for key, value in entry.items() if value is not None}


class ManualClock:
    """A monotonic clock the test moves (seconds); the JWKS cache reads it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(name="jwks_clock")
def jwks_clock_fixture(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """A new, empty JWKS cache for the test, on a clock it moves by hand (no sleeping)."""
    from api.auth import ehr as ehr_auth  # noqa: PLC0415 (only the tests that use it)

    clock = ManualClock()
    monkeypatch.setattr(ehr_auth, "JWKS_CACHE", ehr_auth._JwksCache(clock=clock))
    return clock


def wait_healthy(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Return once ``twitch-triage serve`` at ``base`` answers /healthz (30 s at most)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as answer:  # noqa: S310
                assert answer.status == 200
            return
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise AssertionError(log.read_text()) from None
            time.sleep(0.1)


def simultaneous_statuses(
    make_request: Callable[[], urllib.request.Request], count: int = 8
) -> list[int]:
    """The statuses of ``count`` requests (each made by ``make_request``) sent at the same
    moment: every thread waits at one barrier before it sends."""
    start = threading.Barrier(count)
    statuses: list[int] = []

    def one() -> None:
        request = make_request()
        start.wait()
        with urllib.request.urlopen(request, timeout=15) as answer:  # noqa: S310 (loopback)
            statuses.append(answer.status)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    return statuses


@dataclass(frozen=True)
class Product:
    """``twitch-triage`` as an operator runs it, in ``folder``: its CLI and its server."""

    folder: Path
    base: str
    env: dict[str, str]

    @classmethod
    def at(cls, folder: Path) -> Product:
        """A fresh instance on a free loopback port (SQLite and key file in ``folder``)."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
            "TWITCH_TRIAGE_PORT": str(port),
            "TWITCH_TRIAGE_DATABASE_URL": f"sqlite:///{folder / 'store.db'}",
            "TWITCH_TRIAGE_LOCAL_KEY_FILE": str(folder / "local-api-key"),
            "TWITCH_TRIAGE_PUBLIC_BASE_URL": base,
        }
        return cls(folder, base, env)

    def cli(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        """One ``python -m api.cli`` command (it must succeed)."""
        return subprocess.run(
            [sys.executable, "-m", "api.cli", *args],
            env=self.env,
            cwd=self.folder,
            check=True,
            capture_output=True,
            timeout=60,
        )

    @contextlib.contextmanager
    def serving(self, workers: int = 1) -> Iterator[Path]:
        """``serve --workers N`` until the block ends; yields its log file."""
        log_path = self.folder / "server.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "serve", "--workers", str(workers)],
                env=self.env,
                cwd=self.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_healthy(self.base, server, log_path)
                yield log_path
            finally:
                server.terminate()
                server.wait(timeout=10)
