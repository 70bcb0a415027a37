"""HTTP throughput of POST /v1/triage against a bare Flask JSON echo, side by side.

Usage::

    python -m bench.http                     # 5 rounds x 5 s each, wrk, 8 connections
    python -m bench.http --example swimmer-mild-tic --rounds 3 --seconds 3
    python -m bench.http --smoke             # 1 short round, Python load generator

Both servers run under gunicorn with the settings of ``twitch-triage serve``
(:func:`api.cli.gunicorn_options`: 2 sync workers, preloaded app) on
127.0.0.1 and a free port: the API (``python -m api.cli serve``) and the echo
app (:mod:`bench.echo_app`, Flask's default ``request.get_json()`` and
``jsonify``). Both get the same body, the ``request`` of one shared example
(``../shared/protocol/examples-1.1/NAME.json``, default
``runner-calf-fasciculation``); every request is evaluated afresh (the API
caches no results). Before loading, one request to each is checked (the API
answers the example's expected level, the echo answers the body back).

Every serving model of ``--models`` (default ``gevent,sync``: the new model of
``twitch-triage serve`` and the old one) gets its own echo and API server, all
running at once; load alternates echo, api of each model in turn for
``--rounds`` rounds of ``--seconds`` each, after a warm-up of each, so drifting
machine load hits every server alike. ``--baseline DIR`` adds, per model, an
API served from another checkout (``git archive <commit> | tar -x -C DIR``),
loaded in the same rounds right after the current one, to compare two versions
of the code under the same load (``base``; its ratio is printed beside).
The load generator is wrk (Debian: ``apt-get install -y wrk``)
with ``bench/post.lua``, whose ``done()`` prints the percentiles as JSON;
without wrk a bounded Python generator (``http.client``, one thread per
connection) stands in and says so. Reported: requests/s, p50 and p99 latency
per run, then medians across rounds and the ratio api/echo of the median
requests/s. The goal (issue 3): ratio >= 0.5 with the API's p99 < 25 ms at 8
connections; ``--check`` exits 1 when it is missed.

Bounded: every load run has a duration and a timeout, the servers listen on
loopback only and are stopped (SIGTERM, then SIGKILL of their process group)
however the run ends.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = ROOT.parent / "shared" / "protocol" / "examples-1.1"
DEFAULT_EXAMPLE = "runner-calf-fasciculation"
LUA_SCRIPT = Path(__file__).with_name("post.lua")
HOST = "127.0.0.1"
WORKERS = 2
#: Serving models (api.serving.config.MODELS): the default first, then the old one.
DEFAULT_MODEL = "gevent"
MODELS = ("gevent", "sync")
TARGET_RATIO = 0.5
TARGET_P99_MS = 25.0
WRK_INSTALL = "apt-get install -y wrk"
JSON_HEADERS = {"Content-Type": "application/json"}
#: Port → API key of the ``twitch-triage serve`` started there (read from the key file
#: it writes); :func:`request` sends it unless the caller sets Authorization.
API_KEYS: dict[int, str] = {}


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request on a fresh loopback connection: (status, headers, body)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    sent = dict(headers or {})
    if port in API_KEYS and "Authorization" not in sent:
        sent["Authorization"] = f"Bearer {API_KEYS[port]}"
    try:
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


class ServerProcess:
    """A gunicorn server started as a subprocess in its own process group.

    ``stop`` sends SIGTERM to the master (graceful), then SIGKILL to the whole
    group if it has not exited; the group id is the master's pid, so only what
    this object started is signalled.
    """

    def __init__(
        self, name: str, argv: Sequence[str], port: int, log: IO[bytes], root: Path = ROOT
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.log = log
        self.root = root  # the checkout whose code it serves
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_path: str = "/healthz", timeout: float = 30.0) -> ServerProcess:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(self.root), os.environ.get("PYTHONPATH", "")]),
        }
        serves_api = "api.cli" in self.argv
        key_file = Path(self.log.name).with_suffix(".key")
        if serves_api:  # where serve writes the local client's key (one file per server)
            env.setdefault("TWITCH_TRIAGE_LOCAL_KEY_FILE", str(key_file))
        self.process = subprocess.Popen(
            self.argv,
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_text()}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                if request(self.port, "GET", ready_path, timeout=1.0)[0] == 200:
                    key_path = Path(env.get("TWITCH_TRIAGE_LOCAL_KEY_FILE", key_file))
                    if serves_api and key_path.exists():
                        API_KEYS[self.port] = key_path.read_text(encoding="ascii").strip()
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{self.name} did not answer {ready_path} within {timeout} s:\n{self.log_text()}"
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)

    def log_text(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(encoding="utf-8", errors="replace")

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def api_argv(port: int, workers: int = WORKERS, model: str = DEFAULT_MODEL) -> list[str]:
    """``twitch-triage serve`` on loopback (the installed console script runs the same main)."""
    argv = [sys.executable, "-m", "api.cli", "serve", "--host", HOST, "--port", str(port),
            "--workers", str(workers), "--model", model]  # fmt: skip
    if model == "sync":
        # serve offers sync only behind a declared proxy; the benchmarks measure the
        # old model unprotected on loopback on purpose (it is what they compare with).
        return ["env", "TWITCH_TRIAGE_TLS_TERMINATED=true", *argv]
    return argv


def echo_argv(port: int, workers: int = WORKERS, model: str = DEFAULT_MODEL) -> list[str]:
    return [sys.executable, "-m", "bench.echo_app", "--host", HOST, "--port", str(port),
            "--workers", str(workers), "--model", model]  # fmt: skip


@contextlib.contextmanager
def running(
    name: str, argv: Sequence[str], port: int, root: Path = ROOT
) -> Iterator[ServerProcess]:
    """A started server whose log lives in a temporary file; always stopped."""
    with tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log") as log:
        server = ServerProcess(name, argv, port, log, root)
        try:
            yield server.start()
        finally:
            server.stop()
            API_KEYS.pop(port, None)
            Path(log.name).with_suffix(".key").unlink(missing_ok=True)


# --- load generation --------------------------------------------------------------------------


@dataclass
class Run:
    """One load run against one server."""

    target: str
    requests: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(self.errors.values())


def wrk_run(target: str, port: int, path: str, body_file: Path, args: argparse.Namespace) -> Run:
    cmd = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s",
        "--timeout", "5s", "-s", str(LUA_SCRIPT), f"http://{HOST}:{port}{path}",
    ]  # fmt: skip
    env = {
        **os.environ,
        "BENCH_BODY_FILE": str(body_file),
        "BENCH_CONTENT_TYPE": "application/json",
        "BENCH_API_KEY": API_KEYS.get(port, ""),
    }
    done = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=args.seconds + 30, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH_JSON ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(lines[-1].removeprefix("BENCH_JSON "))
    return Run(
        target=target,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        requests_per_s=data["requests_per_s"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors={k: v for k, v in data["errors"].items() if v},
    )


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted samples (what wrk reports too)."""
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def python_run(target: str, port: int, path: str, body: bytes, args: argparse.Namespace) -> Run:
    """A bounded stand-in for wrk: one thread per connection, each request on a new socket.

    gunicorn's sync workers close the connection after every response, so wrk
    reconnects per request as well. Much less precise than wrk (the client
    shares the GIL and the two cores), but enough for a smoke run.
    """
    deadline = time.monotonic() + args.seconds
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    headers = JSON_HEADERS

    def worker() -> None:
        mine: list[float] = []
        failed: dict[str, int] = {}
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                status, _, _ = request(port, "POST", path, body=body, headers=headers, timeout=5.0)
            except (OSError, http.client.HTTPException):
                failed["connect"] = failed.get("connect", 0) + 1
                continue
            if status >= 400:
                failed["status"] = failed.get("status", 0) + 1
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)
            for key, value in failed.items():
                errors[key] = errors.get(key, 0) + value

    started = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.seconds + 10)
    elapsed = time.monotonic() - started
    ordered = sorted(latencies)
    return Run(
        target=target,
        requests=len(ordered),
        seconds=elapsed,
        requests_per_s=len(ordered) / elapsed,
        p50_ms=percentile(ordered, 50) * 1000,
        p99_ms=percentile(ordered, 99) * 1000,
        errors=errors,
    )


# --- the comparison ----------------------------------------------------------------------------


def load_example(name: str) -> dict[str, Any]:
    path = EXAMPLES_DIR / f"{name}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in EXAMPLES_DIR.glob("*.json")))
        raise SystemExit(f"no example {name!r} in {EXAMPLES_DIR}; known: {known}")
    return json.loads(path.read_text(encoding="utf-8"))


def check_api(port: int, body: bytes, expected_level: str) -> None:
    """The API answers the example with a Bundle holding the expected triage level."""
    status, headers, raw = request(port, "POST", "/v1/triage", body=body, headers=JSON_HEADERS)
    if status != 200 or not headers.get("Content-Type", "").startswith("application/fhir+json"):
        raise RuntimeError(f"API answered {status} {headers.get('Content-Type')}: {raw[:300]!r}")
    bundle = json.loads(raw)
    levels = {
        coding["code"]
        for entry in bundle["entry"]
        for coding in entry["resource"].get("valueCodeableConcept", {}).get("coding", [])
        if coding.get("system", "").endswith("/CodeSystem/triage-level")
    }
    if levels != {expected_level}:
        raise RuntimeError(f"API answered level(s) {levels}, the example expects {expected_level}")


def check_echo(port: int, body: bytes) -> None:
    status, _, raw = request(port, "POST", "/echo", body=body, headers=JSON_HEADERS)
    if status != 200 or json.loads(raw) != json.loads(body):
        raise RuntimeError(f"echo answered {status}: {raw[:300]!r}")


def summarise(runs: list[Run]) -> dict[str, float]:
    return {
        "requests_per_s": statistics.median(r.requests_per_s for r in runs),
        "p50_ms": statistics.median(r.p50_ms for r in runs),
        "p99_ms": statistics.median(r.p99_ms for r in runs),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.http", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--example", default=DEFAULT_EXAMPLE, help="shared example name")
    parser.add_argument("--rounds", type=int, default=5, help="echo+api pairs (default 5)")
    parser.add_argument("--seconds", type=int, default=5, help="length of one run (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured seconds per server")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--loader", choices=["auto", "wrk", "python"], default="auto",
        help="auto = wrk when installed, else the Python generator",
    )  # fmt: skip
    parser.add_argument(
        "--nice", type=int, default=0, metavar="N",
        help="run servers and load generator at this niceness (e.g. -10 as root on a machine "
        "shared with other jobs: both servers alike get the CPU first)",
    )  # fmt: skip
    parser.add_argument(
        "--storage", choices=["sqlite", "off", "url"], default="sqlite",
        help="the API's store: sqlite = the embedded default (a fresh file), off = "
        "TWITCH_TRIAGE_STORE_ASSESSMENTS=false (AuditEvents only), url = --database-url",
    )  # fmt: skip
    parser.add_argument("--database-url", help="with --storage url (e.g. postgresql+psycopg://…)")
    parser.add_argument(
        "--store-dir", metavar="DIR",
        help="where the SQLite file of --storage sqlite/off goes (default: the temp dir); "
        "/dev/shm (tmpfs) takes the disk's fsync, and other jobs' I/O, out of the figures",
    )  # fmt: skip
    parser.add_argument(
        "--models", default=",".join(MODELS),
        help="serving models to measure, in order (default gevent,sync; --check judges the "
        "first)",
    )  # fmt: skip
    parser.add_argument(
        "--smoke", action="store_true", help="1 round of 1 s, Python loader, first model only"
    )
    parser.add_argument(
        "--baseline", type=Path, metavar="DIR",
        help="also serve the API from this checkout of other code (e.g. an older commit: "
        "git archive COMMIT | tar -x -C DIR), interleaved as target 'base'",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    parser.add_argument("--check", action="store_true", help="exit 1 if the goal is missed")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.models or any(m not in MODELS for m in args.models):
        parser.error(f"--models takes a comma-separated list of {', '.join(MODELS)}")
    if args.smoke:
        args.rounds, args.seconds, args.warmup, args.loader = 1, 1, 0, "python"
        args.models = args.models[:1]
    if args.baseline is not None and not (args.baseline / "api" / "cli.py").is_file():
        parser.error(f"--baseline {args.baseline}: no api/cli.py there")
    if (args.storage == "url") != bool(args.database_url):
        parser.error("--database-url goes with --storage url, and only with it")
    for name in ("rounds", "seconds", "connections", "threads"):
        if not 1 <= getattr(args, name) <= 3600:
            parser.error(f"--{name} must be from 1 to 3600")
    return args


def choose_loader(wanted: str) -> str:
    """``wrk`` or ``python``; ``auto`` falls back to Python (with the install hint)."""
    if wanted == "auto":
        if shutil.which("wrk"):
            return "wrk"
        print(f"wrk not found; install it with `{WRK_INSTALL}` (Debian). Falling back to the "
              "Python load generator, which is slower and less precise.")  # fmt: skip
        return "python"
    if wanted == "wrk" and not shutil.which("wrk"):
        raise SystemExit(f"wrk not found; install it with `{WRK_INSTALL}`")
    return wanted


def apply_niceness(nice: int) -> int:
    """Set this process's niceness (inherited by the servers and wrk); the one in force."""
    if nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        except PermissionError:
            print(f"cannot set niceness {nice} (needs root); running at the default")
    return os.getpriority(os.PRIO_PROCESS, 0)


STORE_VARIABLE = "TWITCH_TRIAGE_STORE_ASSESSMENTS"
RATE_VARIABLE = "TWITCH_TRIAGE_RATE_LIMIT"
#: A limit the load never reaches: the counters are exercised, nothing is refused.
BENCH_RATE_LIMIT = "100000000/minute"


def configure_storage(args: argparse.Namespace, folder: str) -> str:
    """Set the API server's store in the environment it inherits; a label for the report."""
    os.environ[STORE_VARIABLE] = "false" if args.storage == "off" else "true"
    os.environ[RATE_VARIABLE] = BENCH_RATE_LIMIT
    if args.storage == "url":
        os.environ["TWITCH_TRIAGE_DATABASE_URL"] = args.database_url
        return f"store {args.database_url.split('://', 1)[0]}"
    args.sqlite_folder = folder  # each API server gets its own file there (see measure)
    return "store sqlite" if args.storage == "sqlite" else "store off (AuditEvents only)"


def own_sqlite_store(args: argparse.Namespace, target: str, model: str) -> None:
    """Point the next API server started at a SQLite file of its own (embedded stores).

    A file per server: the baseline's code may not know the newer migrations, and each
    code creates its store as it would (its page size, its format).
    """
    folder = getattr(args, "sqlite_folder", None)
    if folder is not None and target != "echo":
        os.environ["TWITCH_TRIAGE_DATABASE_URL"] = f"sqlite:///{folder}/{target}-{model}.sqlite3"


def measure(
    models: Sequence[str], args: argparse.Namespace, loader: str, body: bytes, expected: str
) -> list[dict[str, Any]]:
    """Echo and API under every serving model, all running, rounds interleaved.

    Each round loads echo and API of the first model, then of the next ..., so a
    change of machine load during the run hits every model alike.
    """
    paths = {"echo": "/echo", "api": "/v1/triage", "base": "/v1/triage"}
    argvs = {"echo": echo_argv, "api": api_argv, "base": api_argv}
    roots = {"echo": ROOT, "api": ROOT, "base": args.baseline or ROOT}
    targets = ("echo", "api", "base") if args.baseline is not None else ("echo", "api")
    runs: dict[tuple[str, str], list[Run]] = {}
    servers: dict[tuple[str, str], ServerProcess] = {}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-http-"))
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        for model in models:
            for target in targets:
                port = free_port()
                own_sqlite_store(args, target, model)
                servers[model, target] = stack.enter_context(
                    running(
                        f"{target}-{model}", argvs[target](port, model=model), port, roots[target]
                    )
                )
                runs[model, target] = []
            check_echo(servers[model, "echo"].port, body)
            check_api(servers[model, "api"].port, body, expected)
            if "base" in targets:
                check_api(servers[model, "base"].port, body, expected)

        def load(key: tuple[str, str], seconds: int) -> Run:
            run_args = argparse.Namespace(**{**vars(args), "seconds": seconds})
            port, path = servers[key].port, paths[key[1]]
            if loader == "wrk":
                return wrk_run(key[1], port, path, body_file, run_args)
            return python_run(key[1], port, path, body, run_args)

        if args.warmup:
            for key in servers:
                load(key, args.warmup)
        print(f"{'round':>5} {'model':6} {'target':6} {'requests':>8} {'req/s':>9} "
              f"{'p50 ms':>8} {'p99 ms':>8} errors")  # fmt: skip
        for round_no in range(1, args.rounds + 1):
            for key in servers:
                run = load(key, args.seconds)
                runs[key].append(run)
                print(f"{round_no:5d} {key[0]:6} {key[1]:6} {run.requests:8d} "
                      f"{run.requests_per_s:9.1f} {run.p50_ms:8.2f} {run.p99_ms:8.2f} "
                      f"{run.errors or ''}")  # fmt: skip
        for (model, target), server in servers.items():
            if not server.alive():
                raise RuntimeError(
                    f"the {target} server ({model}) died during the run:\n{server.log_text()}"
                )
    results = []
    for model in models:
        sums = {target: summarise(runs[model, target]) for target in targets}
        echo_sum, api_sum = sums["echo"], sums["api"]
        ratio = api_sum["requests_per_s"] / echo_sum["requests_per_s"]
        failed = sum(run.failed for target in targets for run in runs[model, target])
        met = ratio >= TARGET_RATIO and api_sum["p99_ms"] < TARGET_P99_MS and not failed
        print(f"median of {args.rounds} round(s), model {model}:")
        for name, summary in sums.items():
            print(f"  {name:5} {summary['requests_per_s']:9.1f} req/s   p50 "
                  f"{summary['p50_ms']:6.2f} ms   p99 {summary['p99_ms']:6.2f} ms")  # fmt: skip
        verdict = "met" if met else "NOT met"
        print(f"  ratio api/echo {ratio:.3f} (goal >= {TARGET_RATIO}, api p99 < "
              f"{TARGET_P99_MS:g} ms): {verdict}; failed requests {failed}")  # fmt: skip
        result = {
            "model": model, "echo": echo_sum, "api": api_sum, "ratio": ratio,
            "failed": failed, "met": met,
            "runs": [asdict(run) for target in targets for run in runs[model, target]],
        }  # fmt: skip
        if "base" in sums:
            base_ratio = sums["base"]["requests_per_s"] / echo_sum["requests_per_s"]
            # Per round, api over base: the spread says how much the comparison is noise.
            per_round = [
                a.requests_per_s / b.requests_per_s
                for a, b in zip(runs[model, "api"], runs[model, "base"], strict=True)
            ]
            print(f"  ratio base/echo {base_ratio:.3f}; api/base per round "
                  + " ".join(f"{r:.3f}" for r in per_round)
                  + f" (median {statistics.median(per_round):.3f})")  # fmt: skip
            result |= {"base": sums["base"], "base_ratio": base_ratio, "api_over_base": per_round}
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    saved = {
        k: os.environ.get(k) for k in ("TWITCH_TRIAGE_DATABASE_URL", STORE_VARIABLE, RATE_VARIABLE)
    }
    store_dir = tempfile.TemporaryDirectory(prefix="bench-store-", dir=args.store_dir)
    try:
        return _main(args, configure_storage(args, store_dir.name))
    finally:
        for name, value in saved.items():  # leave the caller's environment as it was
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        store_dir.cleanup()


def _main(args: argparse.Namespace, storage: str) -> int:
    example = load_example(args.example)
    body = json.dumps(example["request"]).encode()
    loader = choose_loader(args.loader)
    niceness = apply_niceness(args.nice)
    load_before = os.getloadavg()
    print(
        f"example {args.example} ({len(body)} bytes), {args.rounds} round(s) x {args.seconds} s, "
        f"{args.connections} connections, loader {loader}"
        + (f" ({args.threads} threads)" if loader == "wrk" else "")
        + f", gunicorn {WORKERS} workers each, {storage}, models {', '.join(args.models)}, "
        f"niceness {niceness}; {os.cpu_count()} CPUs, "
        f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}"
    )
    results = measure(args.models, args, loader, body, example["expected"]["level"])
    load_after = os.getloadavg()
    by_model = ", ".join(f"{r['model']} {r['ratio']:.3f}" for r in results)
    print(f"ratio api/echo by serving model: {by_model}; load average after "
          f"{load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")  # fmt: skip
    first = results[0]
    failed = sum(r["failed"] for r in results)
    if args.json:
        print(json.dumps({
            "example": args.example, "loader": loader, "rounds": args.rounds, "storage": storage,
            "seconds": args.seconds, "connections": args.connections, "niceness": niceness,
            **first, "failed": failed,
            "by_model": {r["model"]: {k: r[k] for k in ("echo", "api", "ratio", "met")}
                         for r in results},
            "load_average": {"before": load_before, "after": load_after},
        }))  # fmt: skip
    if failed:
        return 2
    return 1 if args.check and not first["met"] else 0


if __name__ == "__main__":
    sys.exit(main())
