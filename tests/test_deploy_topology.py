"""The multi-node recipe of ``deploy/``, run on loopback as an operator would run it.

nginx (Debian's binary, unprivileged, TLS with a certificate made here) renders
``deploy/nginx/twitch-triage.conf.template`` exactly as the README's envsubst
command does, in front of two API nodes (``twitch-triage serve``, gevent
workers) whose environment is ``deploy/node.env.example`` with the machine
addresses replaced, on one PostgreSQL and one Redis. The store is migrated
once (``twitch-triage migrate``) and the partners registered with
``twitch-triage clients create`` before any node starts. The test proves:

* a triage through nginx (TLS) is stored once, by one node, and the *other*
  node reads it back byte for byte (nginx too); ``Location`` names https and
  the public host, so the nodes believe nginx's ``X-Forwarded-Proto``;
* ``X-Request-Id``: a client's sane id goes through to the node, its answer,
  its logs and the AuditEvent; an absent or insane one is replaced by nginx's;
* rate limits are shared through Redis by both nodes (issue 11's live test):
  the limit counts hits on either node, then both nodes and nginx answer 429;
* nginx's own errors (oversized header 431, long URI 414, body one byte over the
  API's limit 413, unparseable request 400, no node left 502) are FHIR
  OperationOutcomes with the request id, and a body of exactly the limit passes;
* nginx's access log is JSON with the request id and never a query string.

Marked ``server``. PostgreSQL and Redis come from ``.ci/run``
(``TWITCH_TRIAGE_TEST_POSTGRESQL_URL``, ``TWITCH_TRIAGE_TEST_REDIS_URL``) or are
started privately; anything missing skips locally and fails in CI. Bounded:
every socket has a timeout, every process is stopped however the test ends.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fhir.resources.operationoutcome import OperationOutcome
from storage_support import create_database

from api.config import ENV_PREFIX, Settings
from api.serving.config import ServingSettings
from bench.http import ServerProcess, api_argv, free_port, request, running
from tests.support.conformance import narrative_problems
from tests.support.rawhttp import HOST, connection, parse_head, read_until_close

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
TEMPLATE = DEPLOY / "nginx" / "twitch-triage.conf.template"
VARIABLES = DEPLOY / "nginx" / "variables"
ERRORS = DEPLOY / "nginx" / "errors"
NODE_ENV = DEPLOY / "node.env.example"
PROXY_ENV = DEPLOY / "proxy.env.example"

#: The issue code of each error nginx answers itself (deploy/nginx/errors).
NGINX_ERRORS = {
    400: "structure",
    404: "not-found",
    408: "timeout",
    413: "too-costly",
    414: "too-costly",
    431: "too-costly",
    500: "exception",
    501: "not-supported",
    502: "transient",
    503: "transient",
    504: "timeout",
}
#: The partners' rate limit in this test (the recipe's 600/minute would take long to use up).
LIMIT = 12
VALID = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}
NGINX_ID = re.compile(r"[0-9a-f]{32}")  # nginx's own $request_id


# --- the recipe's files -------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= and ``set -a; . file`` read them."""
    values = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f"{path.name}: {line!r}"
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), f"{path.name}: {line!r}"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[name] = value
    return values


def template_variables() -> list[str]:
    """The names deploy/nginx/variables hands to envsubst (``$NAME`` each)."""
    return [item.lstrip("$") for item in VARIABLES.read_text(encoding="ascii").split()]


def render(values: Mapping[str, str]) -> str:
    """What ``envsubst "$(cat variables)" < template`` writes: only those names replaced."""
    text = TEMPLATE.read_text(encoding="utf-8")
    for name in template_variables():
        text = re.sub(r"\$(\{" + name + r"\}|" + name + r"(?![A-Za-z0-9_]))",
                      lambda _match, n=name: values[n], text)  # fmt: skip
    return text


def test_the_node_environment_file_names_only_real_settings():
    """A misspelt variable in the recipe would be silently ignored by the node."""
    known = {ENV_PREFIX + field.name.upper() for cls in (Settings, ServingSettings)
             for field in fields(cls)}  # fmt: skip
    node = read_env_file(NODE_ENV)
    assert set(node) <= known, set(node) - known
    # Parsed as strictly as a node parses them at start-up (ConfigError otherwise).
    settings = Settings.load(environ=node)
    serving = ServingSettings.load(environ=node)
    assert settings.tls_terminated
    assert settings.rate_limit_storage.startswith("redis://")
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert len(settings.link_secret) >= 32
    assert settings.public_base_url.startswith("https://")
    assert serving.model == "gevent"
    assert serving.forwarded_allow_ips != "127.0.0.1,::1"  # the proxy's address, set


def test_the_template_renders_completely_and_as_envsubst_does():
    values = {**read_env_file(NODE_ENV), **read_env_file(PROXY_ENV)}
    assert set(template_variables()) <= set(values)
    rendered = render(values)
    assert "${" not in rendered  # nothing of the recipe left unreplaced
    assert f"client_max_body_size {values['TWITCH_TRIAGE_MAX_BODY_BYTES']};" in rendered
    # Every other $name is nginx's and survives.
    assert "$triage_request_id" in rendered
    assert "$http_x_request_id" in rendered
    envsubst = shutil.which("envsubst")
    if envsubst is None:
        return  # the Python rendering above is the check; envsubst comes with gettext-base
    done = subprocess.run(
        [envsubst, VARIABLES.read_text(encoding="ascii").strip()],
        input=TEMPLATE.read_text(encoding="utf-8"),
        env={**values, "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert done.stdout == rendered


@pytest.mark.parametrize("status", sorted(NGINX_ERRORS))
def test_every_nginx_error_page_is_a_valid_operation_outcome(status):
    page = ERRORS / f"{status}.json"
    outcome = json.loads(page.read_text(encoding="utf-8"))
    OperationOutcome.model_validate(outcome)  # R4 structure (fhir.resources)
    assert [issue["code"] for issue in outcome["issue"]] == [NGINX_ERRORS[status]]
    assert outcome["issue"][0]["severity"] == "error"
    assert not narrative_problems(outcome["text"]["div"])
    assert f"error_page {status} " in TEMPLATE.read_text() or status == 431
    assert {path.stem for path in ERRORS.glob("*.json")} == {str(s) for s in NGINX_ERRORS}


# --- the topology -------------------------------------------------------------------------------


def unavailable(what: str) -> None:
    """Fail in CI (the topology must never go untested there), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI")
    pytest.skip(f"{what} is not available (set CI=1 to make this a failure)")


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files): what the client trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "twitch-triage topology test")])
    now = dt.datetime.now(dt.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


MAIN_CONF = """\
# The test's nginx.conf: what Debian's /etc/nginx/nginx.conf gives the site, with
# every path in the test's directory (nginx runs unprivileged, in the foreground).
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log notice;
events {{ worker_connections 512; }}
http {{
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/twitch-triage.conf;
}}
"""


class Nginx:
    """nginx in the foreground in its own session, as ``nobody`` when the test runs as root."""

    def __init__(self, binary: str, prefix: Path, port: int, tls: ssl.SSLContext) -> None:
        self.binary = binary
        self.prefix = prefix
        self.port = port
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        conf = self.prefix / "nginx.conf"
        as_nobody = {}
        if os.geteuid() == 0:
            # Unprivileged like any service user; it owns its directory and nothing else.
            for path in [self.prefix, *self.prefix.rglob("*")]:
                shutil.chown(path, "nobody", "nogroup")
            as_nobody = {"user": "nobody", "group": "nogroup", "extra_groups": []}
        log = (self.prefix / "stdout.log").open("wb")
        self.process = subprocess.Popen(
            [self.binary, "-p", str(self.prefix), "-c", str(conf), "-e", "stderr"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            **as_nobody,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited {self.process.returncode}: {self.logs()}")
            with contextlib.suppress(OSError):
                if self.request("GET", "/healthz")[0] == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"nginx did not answer /healthz within {timeout} s: {self.logs()}")

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPSConnection(HOST, self.port, context=self.tls, timeout=10)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            answer = conn.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            conn.close()

    def access_lines(self) -> list[dict]:
        text = (self.prefix / "access.log").read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")
            for path in (self.prefix / "stdout.log", self.prefix / "error.log")
            if path.exists()
        )

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # only the session this object started
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@dataclass
class Topology:
    nginx: Nginx
    nodes: list[ServerProcess]
    partner_key: str
    throttled_key: str
    env: dict[str, str]

    def node_with(self, needle: str, seconds: float = 5.0) -> list[ServerProcess]:
        """The nodes whose log holds ``needle`` (access lines follow the answer: wait)."""
        deadline = time.monotonic() + seconds
        while True:
            found = [node for node in self.nodes if needle in node.log_text()]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


def redis_or_private(stack: contextlib.ExitStack, directory: Path) -> str:
    given = os.environ.get("TWITCH_TRIAGE_TEST_REDIS_URL")
    if given:
        return given
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server (apt-get install redis-server)")
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def stop() -> None:
        server.terminate()
        server.wait(10)

    stack.callback(stop)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return f"redis://{HOST}:{port}/0"
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def cli(env: Mapping[str, str], *argv: str) -> str:
    """``twitch-triage …`` (the console script's main) with the node's environment."""
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", *argv],
        cwd=ROOT, env=dict(env), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def topology(postgres_url: str) -> Iterator[Topology]:
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if binary is None:
        unavailable("nginx (apt-get install nginx)")
    with contextlib.ExitStack() as stack:
        prefix = Path(tempfile.mkdtemp(prefix="twitch-triage-nginx-"))
        stack.callback(shutil.rmtree, prefix, ignore_errors=True)
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="topology-")))
        redis_url = redis_or_private(stack, work)
        cert, key = self_signed(prefix)
        nginx_port = free_port()
        node_ports = [free_port(), free_port()]

        # The recipe's node file, with this machine's addresses and services.
        node_env = read_env_file(NODE_ENV)
        node_env.update(
            {
                "TWITCH_TRIAGE_HOST": HOST,
                "TWITCH_TRIAGE_FORWARDED_ALLOW_IPS": HOST,  # nginx connects from loopback
                "TWITCH_TRIAGE_PUBLIC_BASE_URL": f"https://{HOST}:{nginx_port}",
                "TWITCH_TRIAGE_DATABASE_URL": create_database(postgres_url),
                "TWITCH_TRIAGE_RATE_LIMIT_STORAGE": redis_url,
                "TWITCH_TRIAGE_RATE_LIMIT": f"{LIMIT}/minute",
                "TWITCH_TRIAGE_LINK_SECRET": secrets.token_urlsafe(48),
                "TWITCH_TRIAGE_METRICS_PORT": "0",
                "TWITCH_TRIAGE_METRICS_HOST": HOST,
                "TWITCH_TRIAGE_LOCAL_KEY_FILE": str(work / "local-api-key"),
            }
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)},
            **node_env,
            "PYTHONPATH": str(ROOT),
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        # Once, before any node: migrate, then register the partners (README).
        assert "newest migration" in cli(env, "migrate")
        partner = json.loads(cli(env, "clients", "create", "--tenant", "partner-a"))
        throttled = json.loads(cli(env, "clients", "create", "--tenant", "partner-b"))

        nodes = []
        with pytest.MonkeyPatch.context() as patch:
            for name in list(os.environ):
                if name.startswith(ENV_PREFIX) or name == "PROMETHEUS_MULTIPROC_DIR":
                    patch.delenv(name)
            for name, value in node_env.items():
                patch.setenv(name, value)
            workers = int(node_env["TWITCH_TRIAGE_WORKERS"])
            for index, port in enumerate(node_ports):
                argv = api_argv(port, workers=workers)
                nodes.append(stack.enter_context(running(f"node-{index}", argv, port)))

        # The recipe's nginx site, rendered for loopback (proxy.env with local values).
        proxy_env = read_env_file(PROXY_ENV)
        proxy_env.update(
            {
                "TRIAGE_NODES": " ".join(
                    f"server {HOST}:{port} max_fails=1 fail_timeout=10s;" for port in node_ports
                ),
                "TRIAGE_LISTEN": f"{HOST}:{nginx_port}",
                "TRIAGE_SERVER_NAME": HOST,
                "TRIAGE_TLS_CERTIFICATE": str(cert),
                "TRIAGE_TLS_CERTIFICATE_KEY": str(key),
                "TRIAGE_ACCESS_LOG": str(prefix / "access.log"),
                "TRIAGE_ERRORS_DIR": str(prefix / "errors"),
            }
        )
        shutil.copytree(ERRORS, prefix / "errors")  # install -m 0644 errors/*.json (README)
        (prefix / "twitch-triage.conf").write_text(render({**node_env, **proxy_env}))
        (prefix / "nginx.conf").write_text(MAIN_CONF.format(prefix=prefix))
        tls = ssl.create_default_context(cafile=str(cert))
        nginx = Nginx(binary, prefix, nginx_port, tls)
        stack.callback(nginx.stop)
        nginx.start()
        yield Topology(nginx, nodes, partner["api_key"], throttled["api_key"], env)


def bearer(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def outcome_of(status: int, headers: Mapping[str, str], body: bytes, code: str) -> dict:
    assert headers["content-type"].startswith("application/fhir+json"), (status, headers, body)
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome", outcome
    assert [issue["code"] for issue in outcome["issue"]] == [code], outcome
    return outcome


def lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def triage_is_stored_once_and_read_through_the_other_node(topology: Topology) -> str:
    """POST through nginx; the node that did not store it reads it back byte for byte."""
    nginx, key = topology.nginx, topology.partner_key
    sent_id = "topology-triage-0001"
    status, headers, stored = nginx.request(
        "POST", "/v1/triage", body=json.dumps(VALID).encode(),
        headers=bearer(key, **{"Content-Type": "application/json", "X-Request-Id": sent_id}),
    )  # fmt: skip
    assert status == 200, stored
    assert headers["x-request-id"] == sent_id
    assert "max-age=" in headers["strict-transport-security"]
    bundle_id = json.loads(stored)["id"]
    # https and the public host: the node believed nginx's X-Forwarded-Proto and Host.
    assert headers["location"] == f"https://{HOST}:{nginx.port}/fhir/Bundle/{bundle_id}"
    (served_by,) = topology.node_with(sent_id)  # one node handled it, once
    (other,) = [node for node in topology.nodes if node is not served_by]
    status, _, read = request(other.port, "GET", f"/fhir/Bundle/{bundle_id}", headers=bearer(key))
    assert (status, read) == (200, stored)  # byte for byte, from the other node
    status, _, read = nginx.request("GET", f"/fhir/Bundle/{bundle_id}", headers=bearer(key))
    assert (status, read) == (200, stored)

    # The client's request id reached the stored AuditEvent, through nginx.
    status, _, found = nginx.request(
        "GET", f"/fhir/AuditEvent?entity=Bundle/{bundle_id}", headers=bearer(key)
    )
    assert status == 200, found
    ids = {entity["what"]["identifier"]["value"]
           for entry in json.loads(found).get("entry", [])
           for entity in entry["resource"]["entity"]
           if "identifier" in entity.get("what", {})}  # fmt: skip
    assert sent_id in ids, ids
    return sent_id


def nginx_makes_the_request_id_when_the_client_has_none(topology: Topology) -> None:
    for sent in ({}, {"X-Request-Id": "bad id, with spaces"}):
        status, headers, _ = topology.nginx.request("GET", "/healthz", headers=sent)
        assert status == 200
        made = headers["x-request-id"]
        assert NGINX_ID.fullmatch(made), made  # nginx's $request_id, kept by the node
        assert len(topology.node_with(made)) == 1


def rate_limits_are_shared_by_both_nodes(topology: Topology) -> None:
    """Issue 11 live: one Redis counter per client for every node."""
    limited = bearer(topology.throttled_key)
    remaining = []
    for index in range(LIMIT):
        node = topology.nodes[index % 2]
        status, headers, body = request(node.port, "GET", "/fhir/Observation", headers=limited)
        assert status == 200, body
        remaining.append(int(lower(headers)["ratelimit"].split(";r=")[1].split(";")[0]))
    assert remaining == list(range(LIMIT - 1, -1, -1))  # one counter for both nodes
    for node in topology.nodes:
        status, headers, body = request(node.port, "GET", "/fhir/Observation", headers=limited)
        assert status == 429
        outcome_of(status, lower(headers), body, "throttled")
    status, headers, body = topology.nginx.request("GET", "/fhir/Observation", headers=limited)
    assert status == 429  # the node's answer, passed through unchanged
    outcome_of(status, headers, body, "throttled")
    assert 1 <= int(headers["retry-after"]) <= 60
    # Another partner is not affected.
    status, _, _ = topology.nginx.request(
        "GET", "/fhir/Observation", headers=bearer(topology.partner_key)
    )
    assert status == 200


def refused_by_nginx(
    topology: Topology, answer: tuple[int, dict[str, str], bytes], code: int, sent_id: str | None
) -> None:
    """nginx's own error: an OperationOutcome with the request id, and no node saw it.

    ``sent_id`` None: nginx refused before it read the client's X-Request-Id (a request
    line too long), so the id is nginx's own.
    """
    status, headers, body = answer
    assert status == code, (status, body)
    outcome_of(status, headers, body, NGINX_ERRORS[code])
    request_id = headers["x-request-id"]
    if sent_id is None:
        assert NGINX_ID.fullmatch(request_id), request_id
    else:
        assert request_id == sent_id
    assert not topology.node_with(request_id, seconds=0.5)


def chunked_post(topology: Topology, payload: bytes, request_id: str) -> tuple[int, dict, bytes]:
    """A chunked upload through nginx (raw TLS socket: http.client would send a length)."""
    head = (f"POST /v1/triage HTTP/1.1\r\nHost: {HOST}:{topology.nginx.port}\r\n"
            f"Authorization: Bearer {topology.partner_key}\r\n"
            f"Content-Type: application/json\r\nX-Request-Id: {request_id}\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()  # fmt: skip
    chunks = [payload[i : i + 4096] for i in range(0, len(payload), 4096)]
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"
    with connection(topology.nginx.port, tls=topology.nginx.tls) as sock:
        sock.sendall(head + body)
        raw = read_until_close(sock)
    head_bytes, _, answer = raw.partition(b"\r\n\r\n")
    status, headers = parse_head(head_bytes)
    return status, headers, answer


def nginx_errors_are_operation_outcomes(topology: Topology) -> None:
    nginx, key = topology.nginx, topology.partner_key
    big_header = bearer(key, **{"X-Request-Id": "topology-431-0001", "X-Big": "a" * 9000})
    answer = nginx.request("GET", "/healthz", headers=big_header)
    refused_by_nginx(topology, answer, 431, "topology-431-0001")
    long_uri = "/fhir/Observation?subject=" + "x" * 9000
    answer = nginx.request("GET", long_uri, headers={"X-Request-Id": "topology-414-0001"})
    refused_by_nginx(topology, answer, 414, None)

    # The body limit is the API's: exactly the limit passes nginx and the node, one more
    # byte is nginx's 413, whether the length is declared or the body chunked.
    limit = int(topology.env["TWITCH_TRIAGE_MAX_BODY_BYTES"])
    text = json.dumps(VALID).encode()
    exact = text[:-1] + b" " * (limit - len(text)) + b"}"  # valid JSON of exactly the limit
    assert len(exact) == limit
    sent = bearer(key, **{"Content-Type": "application/json", "X-Request-Id": "topology-413-01"})
    answer = nginx.request("POST", "/v1/triage", body=exact + b" ", headers=sent)
    refused_by_nginx(topology, answer, 413, "topology-413-01")
    sent["X-Request-Id"] = "topology-64k-0001"
    status, _, body = nginx.request("POST", "/v1/triage", body=exact, headers=sent)
    assert status == 200, body
    assert len(topology.node_with("topology-64k-0001")) == 1
    assert chunked_post(topology, exact, "topology-chunk-ok-01")[0] == 200
    answer = chunked_post(topology, exact + b" ", "topology-chunk-413-1")
    refused_by_nginx(topology, answer, 413, "topology-chunk-413-1")

    # The error pages themselves are internal: asked for directly, nginx's 404, not HTML.
    answer = nginx.request("GET", "/__twitch_triage_errors/400.json",
                           headers={"X-Request-Id": "topology-404-0001"})  # fmt: skip
    refused_by_nginx(topology, answer, 404, "topology-404-0001")
    with connection(nginx.port, tls=nginx.tls) as sock:
        sock.sendall(f"POST /v1/triage HTTP/1.1\r\nHost: {HOST}\r\n"
                     "X-Request-Id: topology-501-0001\r\nTransfer-Encoding: gzip\r\n"
                     "Connection: close\r\n\r\n".encode())  # fmt: skip
        head, _, body = read_until_close(sock).partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    refused_by_nginx(topology, (status, headers, body), 501, "topology-501-0001")

    with connection(nginx.port, tls=nginx.tls) as sock:
        sock.sendall(b"NOT HTTP AT ALL\x01\r\n\r\n")
        head, _, body = read_until_close(sock).partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    refused_by_nginx(topology, (status, headers, body), 400, None)


def access_log_has_ids_and_no_query(topology: Topology, sent_id: str) -> None:
    nginx = topology.nginx
    path = "/fhir/Observation?subject=Patient/Qzzyx-secret"
    sent = bearer(topology.partner_key, **{"X-Request-Id": "topology-query-01"})
    assert nginx.request("GET", path, headers=sent)[0] == 200
    deadline = time.monotonic() + 5  # nginx writes the line once the answer is sent
    while "topology-query-01" not in (text := (nginx.prefix / "access.log").read_text()):
        assert time.monotonic() < deadline, text
        time.sleep(0.05)
    lines = nginx.access_lines()
    (query_line,) = [line for line in lines if line["request_id"] == "topology-query-01"]
    assert query_line["path"] == "/fhir/Observation"
    assert query_line["node"].startswith(f"{HOST}:")  # which node answered
    assert any(line["request_id"] == sent_id and line["status"] == 200 for line in lines)
    assert any(line["request_id"] == "topology-431-0001" and line["status"] == 431
               for line in lines)  # fmt: skip
    # A path is client text: logged as sent only where it is fixed parts and our UUIDs.
    paths = {
        "/fhir/Patient/Qzzyx-Jane-Doe": "<unmatched>",
        "/fhir/Observation%3Fsubject%3DPatient%2FQzzyx": "<unmatched>",
        "/fhir/CodeSystem/Qzzyx-cs": "/fhir/CodeSystem/<id>",
        "/intake/Qzzyx-link": "/intake/<link>",
    }
    for number, target in enumerate(paths):
        sent = bearer(topology.partner_key, **{"X-Request-Id": f"topology-path-{number:02d}"})
        assert nginx.request("GET", target, headers=sent)[0] in (400, 404)
    deadline = time.monotonic() + 5
    while f"topology-path-{len(paths) - 1:02d}" not in (nginx.prefix / "access.log").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    logged = {line["request_id"]: line["path"] for line in nginx.access_lines()}
    for number, expected in enumerate(paths.values()):
        assert logged[f"topology-path-{number:02d}"] == expected
    bundle_reads = [p for p in logged.values() if p.startswith("/fhir/Bundle/")]
    assert bundle_reads  # the triage read through the other node: our UUID, kept
    assert all(re.fullmatch(r"/fhir/Bundle/[0-9a-f-]{36}", p) for p in bundle_reads)
    text = (nginx.prefix / "access.log").read_text()
    assert "Qzzyx" not in text
    assert topology.partner_key not in text


@pytest.mark.server
def test_nginx_two_nodes_one_postgresql_one_redis(topology: Topology):
    sent_id = triage_is_stored_once_and_read_through_the_other_node(topology)
    nginx_makes_the_request_id_when_the_client_has_none(topology)
    rate_limits_are_shared_by_both_nodes(topology)
    nginx_errors_are_operation_outcomes(topology)
    access_log_has_ids_and_no_query(topology, sent_id)

    # No node left: nginx's 502 is an OperationOutcome too.
    for node in topology.nodes:
        node.stop()
    answer = topology.nginx.request("GET", "/healthz", headers={"X-Request-Id": "topology-502-01"})
    status, headers, body = answer
    assert status == 502
    outcome_of(status, headers, body, "transient")
    assert headers["x-request-id"] == "topology-502-01"
