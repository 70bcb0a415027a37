"""Latency of a CDS Hooks service call with prefetch, through gunicorn (issue 13).

Usage::

    python -m bench.cds                       # 5 rounds x 100 calls per variant
    python -m bench.cds --rounds 3 --calls 50 --connections 4
    python -m bench.cds --smoke               # 1 round of 10 calls

One ``twitch-triage serve`` (the settings of ``serve``: 2 gevent workers,
preloaded app) on loopback with a fresh SQLite store; an EHR registered with
``twitch-triage ehrs register`` (an ES384 key made here). Every shared example is
turned into its intake QuestionnaireResponse (through ``POST /v1/triage``), then
each round calls, interleaved so drifting machine load hits all alike:

- ``cds``: ``POST /cds-services/twitch-triage`` with ``prefetch.intake`` (JWT check
  and jti store, triage, storage of the assessment, card, card row);
- ``cds-null``: the same with ``prefetch.intake: null`` (JWT and jti only, no card);
- ``triage``: ``POST /fhir/QuestionnaireResponse/$triage`` with the same intake and
  the API key (the same triage and storage, no CDS).

JWTs are minted before each round (minting is the EHR's cost, not the service's).
Reported per variant: p50, p90, p99 and mean latency in ms over all calls, the
spread of the per-round p50s, and the ratio cds/triage of the p50s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from bench.http import (
    API_KEYS,
    ROOT,
    api_argv,
    free_port,
    load_example,
    percentile,
    request,
    running,
)

EXAMPLES = sorted(
    path.stem for path in (ROOT.parent / "shared/protocol/examples-1.1").glob("*.json")
)
SERVICE = "/cds-services/twitch-triage"
TRIAGE = "/fhir/QuestionnaireResponse/$triage"
ISS = "https://bench-ehr.example/fhir"
KID = "bench-key"


def _register(private: Any, env: dict[str, str], folder: str) -> None:
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    public.update({"kid": KID, "alg": "ES384", "use": "sig"})
    keys = Path(folder) / "jwks.json"
    keys.write_text(json.dumps({"keys": [public]}), encoding="utf-8")
    argv = [sys.executable, "-m", "api.cli", "ehrs", "register", "--tenant", "bench",
            "--iss", ISS, "--jwks-file", str(keys)]  # fmt: skip
    subprocess.run(argv, env=env, cwd=ROOT, check=True, capture_output=True, timeout=120)


def _intakes(port: int) -> list[dict[str, Any]]:
    intakes = []
    for index, name in enumerate(EXAMPLES):
        body = json.loads(json.dumps(load_example(name)["request"]))
        patient = f"bench-{index}"
        body.setdefault("patient", {})["reference"] = f"Patient/{patient}"
        status, _, answer = request(
            port, "POST", "/v1/triage", body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        if status != 200:
            raise RuntimeError(f"/v1/triage answered {status} for {name}")
        qr = json.loads(answer)["entry"][0]["resource"]
        qr["subject"] = {"reference": f"Patient/{patient}"}
        intakes.append({"patient": patient, "qr": qr})
    return intakes


def _hook(patient: str, intake: Any) -> bytes:
    return json.dumps(
        {
            "hook": "patient-view",
            "hookInstance": str(uuid.uuid4()),
            "context": {"patientId": patient, "userId": "Practitioner/bench"},
            "prefetch": {"intake": intake},
        }
    ).encode()


def _token(private: Any, port: int) -> str:
    now = int(time.time())
    claims = {"iss": ISS, "aud": f"http://127.0.0.1:{port}{SERVICE}", "exp": now + 280,
              "iat": now, "jti": str(uuid.uuid4())}  # fmt: skip
    return jwt.encode(claims, private, algorithm="ES384", headers={"kid": KID, "typ": "JWT"})


Call = tuple[str, bytes, dict[str, str], int]


def _calls(
    private: Any, port: int, intakes: list[dict[str, Any]], variant: str, count: int
) -> list[Call]:
    """(path, body, headers) for ``count`` calls of one variant, tokens minted now."""
    prepared: list[Call] = []
    for index in range(count):
        intake = intakes[index % len(intakes)]
        if variant == "triage":
            headers = {"Content-Type": "application/fhir+json"}
            prepared.append((TRIAGE, json.dumps(intake["qr"]).encode(), headers, 200))
            continue
        headers = {"Content-Type": "application/json",
                   "Authorization": f"Bearer {_token(private, port)}"}  # fmt: skip
        value = intake["qr"] if variant == "cds" else None
        prepared.append((SERVICE, _hook(intake["patient"], value), headers, 200))
    return prepared


def _run(port: int, prepared: list[Call], connections: int) -> list[float]:
    """Latencies in ms; calls shared among ``connections`` threads, one request each."""
    latencies: list[float] = []
    lock = threading.Lock()
    queue = list(prepared)
    failures: list[str] = []

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                path, body, headers, expected = queue.pop()
            started = time.perf_counter()
            status, _, answer = request(port, "POST", path, body=body, headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if status != expected:
                    failures.append(f"{path} {status} {answer[:200]!r}")
                latencies.append(elapsed)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    if failures:
        raise RuntimeError(f"{len(failures)} call(s) failed, first: {failures[0]}")
    return latencies


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cds", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=100, help="calls per variant per round")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.calls = 1, 10
    variants = ("cds", "cds-null", "triage")
    with tempfile.TemporaryDirectory(prefix="bench-cds-") as folder:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TWITCH_TRIAGE_DATABASE_URL": f"sqlite:///{folder}/bench.sqlite3",
            "TWITCH_TRIAGE_RATE_LIMIT": "",
        }
        saved = {
            k: os.environ.get(k) for k in ("TWITCH_TRIAGE_DATABASE_URL", "TWITCH_TRIAGE_RATE_LIMIT")
        }
        os.environ.update({k: env[k] for k in saved})
        try:
            private = ec.generate_private_key(ec.SECP384R1())
            _register(private, env, folder)
            port = free_port()
            with running("api", api_argv(port), port):
                if port not in API_KEYS:
                    raise RuntimeError("the server wrote no local API key")
                intakes = _intakes(port)
                for variant in variants:  # warm-up
                    _run(port, _calls(private, port, intakes, variant, 10), 1)
                all_ms: dict[str, list[float]] = {v: [] for v in variants}
                round_p50: dict[str, list[float]] = {v: [] for v in variants}
                for _ in range(args.rounds):
                    for variant in variants:
                        calls = _calls(private, port, intakes, variant, args.calls)
                        ms = sorted(_run(port, calls, args.connections))
                        all_ms[variant] += ms
                        round_p50[variant].append(percentile(ms, 50))
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    report: dict[str, Any] = {
        "rounds": args.rounds,
        "calls_per_round": args.calls,
        "connections": args.connections,
        "examples": len(EXAMPLES),
    }
    for variant in variants:
        ms = sorted(all_ms[variant])
        report[variant] = {
            "p50_ms": round(percentile(ms, 50), 2),
            "p90_ms": round(percentile(ms, 90), 2),
            "p99_ms": round(percentile(ms, 99), 2),
            "mean_ms": round(statistics.fmean(ms), 2),
            "round_p50_ms": [round(value, 2) for value in round_p50[variant]],
        }
    report["ratio_cds_to_triage_p50"] = round(
        report["cds"]["p50_ms"] / report["triage"]["p50_ms"], 2
    )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
