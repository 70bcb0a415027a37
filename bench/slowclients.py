"""Slow and idle clients against the served API: does a normal client still get answers?

Usage::

    python -m bench.slowclients                  # both models, 20 s each, 200 + 50 clients
    python -m bench.slowclients --models gevent --seconds 5 --slow 20 --idle 5   # quick

For each serving model (``gevent``, the default of ``twitch-triage serve``, then
the old ``sync``), the API is started on loopback and attacked by

- ``--slow`` slowloris connections (default 200): each sends a request line
  and then one header line every ``--interval`` seconds (default 2) and never
  finishes its head; a connection the server closes is opened again;
- ``--idle`` idle keep-alive connections (default 50): each makes one
  ``GET /healthz`` and then sends nothing; one the server closes is reopened;

while one normal client alternates ``GET /healthz`` and a triage ``POST`` on
fresh connections for ``--seconds`` (timeout ``--timeout`` s each; a timeout
counts as that long and as failed). Reported per model: p50/p99/max latency
of each and the failures; the goal is p99 < 1 s for both under the new model.

Bounded: connection counts are capped (1,000), every socket has a timeout,
everything runs on 127.0.0.1 and stops after the given seconds; the servers
are stopped however the run ends.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import socket
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.http import HOST, JSON_HEADERS, MODELS, api_argv, free_port, running

TRIAGE_BODY = json.dumps(
    {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}
).encode()
GOAL_P99_S = 1.0
MAX_CONNECTIONS = 1000


@dataclass
class Latencies:
    """Seconds per normal request, failures counted apart (and at the timeout)."""

    samples: list[float] = field(default_factory=list)
    failures: int = 0

    def summary(self) -> dict[str, float | int]:
        ordered = sorted(self.samples)
        if not ordered:
            return {"requests": 0, "failures": self.failures}
        rank = max(0, min(len(ordered) - 1, round(0.99 * len(ordered)) - 1))
        return {
            "requests": len(ordered),
            "failures": self.failures,
            "p50_s": round(statistics.median(ordered), 4),
            "p99_s": round(ordered[rank], 4),
            "max_s": round(ordered[-1], 4),
        }


class Attack:
    """Slowloris and idle keep-alive connections, kept open by one thread until stopped."""

    def __init__(self, port: int, slow: int, idle: int, interval: float) -> None:
        self.port = port
        self.slow = slow
        self.idle = idle
        self.interval = interval
        self.stop_event = threading.Event()
        self.reopened = 0
        self.thread = threading.Thread(target=self._run, name="attack", daemon=True)

    def _open_slow(self) -> socket.socket | None:
        with contextlib.suppress(OSError):
            sock = socket.create_connection((HOST, self.port), timeout=2.0)
            sock.sendall(b"POST /v1/triage HTTP/1.1\r\nHost: localhost\r\n")
            return sock
        return None

    def _open_idle(self) -> socket.socket | None:
        with contextlib.suppress(OSError):
            sock = socket.create_connection((HOST, self.port), timeout=2.0)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            sock.recv(65536)  # the answer; the connection then stays open, idle
            return sock
        return None

    def _tend_slow(self, slow: list[socket.socket | None]) -> None:
        """One more header line on each slowloris connection; reopen the closed ones."""
        for i, sock in enumerate(slow):
            if self.stop_event.is_set():
                return
            if sock is not None:
                try:
                    sock.sendall(b"X-Slow: %d\r\n" % i)
                    continue
                except OSError:
                    sock.close()
                    self.reopened += 1
            slow[i] = self._open_slow()

    @staticmethod
    def _closed(sock: socket.socket) -> bool:
        sock.setblocking(False)
        try:
            return sock.recv(1) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True
        finally:
            sock.setblocking(True)

    def _tend_idle(self, idle: list[socket.socket | None]) -> None:
        """Reopen the idle keep-alive connections the server closed."""
        for i, sock in enumerate(idle):
            if self.stop_event.is_set():
                return
            if sock is not None:
                if not self._closed(sock):
                    continue
                sock.close()
                self.reopened += 1
            idle[i] = self._open_idle()

    def _run(self) -> None:
        slow: list[socket.socket | None] = [None] * self.slow
        idle: list[socket.socket | None] = [None] * self.idle
        try:
            while not self.stop_event.is_set():
                self._tend_slow(slow)
                self._tend_idle(idle)
                self.stop_event.wait(self.interval)
        finally:
            for sock in slow + idle:
                if sock is not None:
                    sock.close()

    def __enter__(self) -> Attack:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(30)


def timed(port: int, method: str, path: str, body: bytes | None, timeout: float) -> float | None:
    """Seconds for one request on a fresh connection; None if it failed or was not 200."""
    started = time.monotonic()
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=JSON_HEADERS if body else {})
        response = conn.getresponse()
        response.read()
        ok = response.status == 200
    except (OSError, http.client.HTTPException):
        ok = False
    finally:
        conn.close()
    return time.monotonic() - started if ok else None


def measure(model: str, args: argparse.Namespace) -> dict[str, object]:
    port = free_port()
    health, triage = Latencies(), Latencies()
    with running(f"api-{model}", api_argv(port, model=model), port) as server:
        with Attack(port, args.slow, args.idle, args.interval) as attack:
            time.sleep(args.settle)  # let the attack take hold first
            deadline = time.monotonic() + args.seconds
            while time.monotonic() < deadline:
                for latencies, method, path, body in (
                    (health, "GET", "/healthz", None),
                    (triage, "POST", "/v1/triage", TRIAGE_BODY),
                ):
                    elapsed = timed(port, method, path, body, args.timeout)
                    if elapsed is None:
                        latencies.failures += 1
                        latencies.samples.append(args.timeout)
                    else:
                        latencies.samples.append(elapsed)
            reopened = attack.reopened
        alive = server.alive()
    result = {
        "model": model,
        "healthz": health.summary(),
        "triage": triage.summary(),
        "attack_connections_reopened": reopened,
        "server_alive": alive,
    }
    met = all(
        part["failures"] == 0 and part.get("p99_s", args.timeout) < GOAL_P99_S
        for part in (result["healthz"], result["triage"])  # type: ignore[union-attr]
    )
    result["goal_met"] = met
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.slowclients", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--models", default=",".join(MODELS), help="default gevent,sync")
    parser.add_argument("--slow", type=int, default=200, help="slowloris connections")
    parser.add_argument("--idle", type=int, default=50, help="idle keep-alive connections")
    parser.add_argument("--interval", type=float, default=2.0, help="s between header lines")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured s per model")
    parser.add_argument("--settle", type=float, default=3.0, help="s of attack before measuring")
    parser.add_argument("--timeout", type=float, default=5.0, help="s per normal request")
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.models or any(m not in MODELS for m in args.models):
        parser.error(f"--models takes a comma-separated list of {', '.join(MODELS)}")
    if not 0 <= args.slow + args.idle <= MAX_CONNECTIONS:
        parser.error(f"at most {MAX_CONNECTIONS} attack connections")
    for name in ("interval", "seconds", "settle", "timeout"):
        if not 0 < getattr(args, name) <= 600:
            parser.error(f"--{name} must be from 0 to 600 s")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"{args.slow} slowloris + {args.idle} idle keep-alive connections, {args.seconds:g} s "
          f"per model, normal requests time out at {args.timeout:g} s")  # fmt: skip
    results = []
    for model in args.models:
        result = measure(model, args)
        results.append(result)
        print(f"model {model}: server alive {result['server_alive']}, attack connections "
              f"reopened {result['attack_connections_reopened']}, goal p99 < {GOAL_P99_S:g} s "
              f"{'met' if result['goal_met'] else 'NOT met'}")  # fmt: skip
        for part in ("healthz", "triage"):
            print(f"  {part:8} {result[part]}")
    if args.json:
        print(json.dumps({"results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
