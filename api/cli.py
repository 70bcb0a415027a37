"""``twitch-triage serve``: run the API under gunicorn (a production WSGI server).

gunicorn is driven programmatically (``BaseApplication``) so the command needs
no config file and takes the same typed settings as the app. The app is
created once in the master and forked (``preload_app``): schemas, knowledge
base and FHIR tables are built once, and a bad setting fails before binding.
The serving model (gevent workers with bounded reads, JSON logs, metrics) is
:mod:`api.serving.gunicorn_conf`, shared with plain ``gunicorn`` runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication

from api.auth.jwks import loopback_host
from api.config import ConfigError
from api.serving.config import MODELS, ServingSettings
from api.serving.gunicorn_conf import gunicorn_options as serving_options
from api.serving.gunicorn_conf import prepare_metrics_dir

if TYPE_CHECKING:
    from api.storage.repository import AuditRow, Purged

_DEFAULTS = ServingSettings()
DEFAULT_HOST = _DEFAULTS.host
DEFAULT_PORT = _DEFAULTS.port
DEFAULT_WORKERS = _DEFAULTS.workers
DEFAULT_MODEL = _DEFAULTS.model


class GunicornServer(BaseApplication):
    """A gunicorn application serving one already-created WSGI app."""

    def __init__(self, app: Callable[..., Any], options: Mapping[str, Any]) -> None:
        self.application = app
        self.options = dict(options)
        super().__init__()

    def load_config(self) -> None:
        if self.cfg is None:  # pragma: no cover (BaseApplication sets it first)
            raise RuntimeError("gunicorn configuration is not initialised")
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Callable[..., Any]:
        return self.application


def gunicorn_options(
    host: str, port: int, workers: int, model: str = DEFAULT_MODEL
) -> dict[str, Any]:
    """The gunicorn settings ``serve`` runs with (the benchmark's echo app uses them too)."""
    settings = ServingSettings.load(
        {"host": host, "port": port, "workers": workers, "model": model}
    )
    return serving_options(settings)


def _parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twitch-triage", description="Post-exercise twitching triage API (FHIR R4)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve the API with gunicorn",
        description="Serve the API with gunicorn (gevent workers, bounded reads). Flags "
        "override TWITCH_TRIAGE_HOST, _PORT, _WORKERS, _CONNECTIONS and _MODEL; "
        "TWITCH_TRIAGE_HEADER_TIMEOUT, _BODY_TIMEOUT, _METRICS_PORT and _METRICS_HOST "
        "configure the server, TWITCH_TRIAGE_MAX_BODY_BYTES, _CANONICAL_BASE and the storage "
        "settings (TWITCH_TRIAGE_DATABASE_URL …) the app; the store is created and migrated "
        "on start.",
    )

    def option(name: str, help_text: str) -> None:
        default = environ.get(f"TWITCH_TRIAGE_{name.upper()}", str(getattr(_DEFAULTS, name)))
        serve.add_argument(f"--{name}", default=default, help=help_text)

    option("host", "bind address (default 127.0.0.1)")
    option("port", "port (default 8000)")
    option("workers", "worker processes (default 2)")
    option("connections", "open connections per worker (default 1000)")
    option(
        "model",
        f"{' or '.join(MODELS)} (default gevent; sync only behind a buffering proxy, "
        "with TWITCH_TRIAGE_TLS_TERMINATED=true)",
    )
    commands.add_parser(
        "purge",
        help="delete assessments and audit events older than their retention period",
        description="Delete the assessments issued more than TWITCH_TRIAGE_RETENTION_DAYS "
        "days ago (with their resources and Provenance) and the AuditEvents recorded more "
        "than TWITCH_TRIAGE_AUDIT_RETENTION_DAYS days ago, in the store named by "
        "TWITCH_TRIAGE_DATABASE_URL. A period of 0 keeps that kind for ever. Prints what "
        "was removed; run it daily (cron, a systemd timer).",
    )
    commands.add_parser(
        "migrate",
        help="create or upgrade the store's tables",
        description="Run the database migrations (serve also does this at start).",
    )
    _clients_parser(commands)
    _ehrs_parser(commands)
    return parser


def _clients_parser(commands: Any) -> None:
    """``clients create|rotate|revoke|list`` (the contract scripts rely on)."""
    clients = commands.add_parser(
        "clients",
        help="register, rotate, revoke and list partner clients",
        description="Partner clients and their tenants, in the store named by "
        "TWITCH_TRIAGE_DATABASE_URL (created and migrated if needed).",
    )
    actions = clients.add_subparsers(dest="action", required=True)
    create = actions.add_parser(
        "create", help="register a client; prints client_id, tenant and api_key as JSON"
    )
    create.add_argument(
        "--tenant",
        required=True,
        help="the partner organisation: an existing tenant, or a new one of ASCII letters, "
        "digits, '-', '_', '.' that looks like no existing tenant",
    )
    create.add_argument(
        "--label",
        default="",
        help="a name for the application (visible NFKC text; not a look-alike of another "
        "label of the tenant)",
    )
    create.add_argument(
        "--scope",
        action="append",
        default=[],
        help="a SMART v2 scope such as system/Observation.rs (repeatable; default system/*.cruds)",
    )
    jwks = create.add_mutually_exclusive_group()
    jwks.add_argument("--jwks-file", help="the client's public keys (JWKS JSON) for SMART")
    jwks.add_argument("--jwks-url", help="where the client publishes its JWKS")
    rotate = actions.add_parser(
        "rotate",
        help="issue a new key; the old one works for TWITCH_TRIAGE_KEY_GRACE_SECONDS more",
    )
    rotate.add_argument("client_id")
    revoke = actions.add_parser("revoke", help="revoke a client's keys and tokens now")
    revoke.add_argument("client_id")
    actions.add_parser("list", help="the registered clients (never their keys), as JSON lines")


def _ehrs_parser(commands: Any) -> None:
    """``ehrs register|list|remove`` (CDS Hooks; the contract scripts rely on)."""
    ehrs = commands.add_parser(
        "ehrs",
        help="register, list and remove EHRs that call the CDS Hooks service",
        description="EHRs (CDS clients) and the tenant each acts for, in the store named by "
        "TWITCH_TRIAGE_DATABASE_URL (created and migrated if needed).",
    )
    actions = ehrs.add_subparsers(dest="action", required=True)
    register = actions.add_parser(
        "register",
        help="allow an EHR's JWT issuer for a tenant; prints ehr_id, tenant and iss as JSON",
    )
    register.add_argument(
        "--tenant",
        required=True,
        help="the organisation the EHR acts for (the same rule as clients create --tenant)",
    )
    register.add_argument("--iss", required=True, help="the iss of the EHR's JWTs")
    keys = register.add_mutually_exclusive_group(required=True)
    keys.add_argument("--jwks-file", help="the EHR's public keys (a JWK Set JSON file)")
    keys.add_argument("--jku", help="the one URL the EHR publishes its JWK Set at")
    register.add_argument(
        "--fhir-server",
        action="append",
        default=[],
        metavar="URL",
        help="a FHIR base URL the EHR may name as fhirServer (repeatable; https, or http on "
        "loopback); the service fetches from no other. Registering again replaces the list",
    )
    actions.add_parser("list", help="the registered EHRs, as JSON lines")
    remove = actions.add_parser("remove", help="stop accepting an EHR's tokens now")
    remove.add_argument("--iss", required=True)


def _json_file(path: str | None, what: str) -> Any:
    """The JSON in the file at ``path`` (None without one); unreadable: a ClientError naming it.

    The ``ehrs`` and ``clients`` commands take a key set as a file alike.
    """
    from api.auth import clients as admin  # noqa: PLC0415

    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise admin.ClientError(f"cannot read the {what} file: {exc}") from None


def ehrs_command(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, Any] | list[Any]:
    """Run one ``ehrs`` action; what it prints."""
    from api import create_app  # noqa: PLC0415
    from api.auth import ehrs  # noqa: PLC0415
    from api.config import EXTENSION  # noqa: PLC0415

    state = create_app(environ=env).extensions[EXTENSION]
    if args.action == "register":
        jwks = _json_file(args.jwks_file, "JWK Set")
        record = ehrs.register_ehr(
            state.cds,
            tenant=args.tenant,
            iss=args.iss,
            jwks=jwks,
            jku=args.jku,
            fhir_servers=args.fhir_server,
        )
        return ehrs.describe_ehr(record)
    if args.action == "remove":
        removed = ehrs.remove_ehr(state.cds, args.iss)
        return {**ehrs.describe_ehr(removed), "removed": True}
    return [ehrs.describe_ehr(record) for record in state.cds.all()]


def clients_command(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, Any] | list[Any]:
    """Run one ``clients`` action; what it prints."""
    from api import create_app  # noqa: PLC0415
    from api.auth import clients as admin  # noqa: PLC0415
    from api.config import EXTENSION  # noqa: PLC0415

    state = create_app(environ=env).extensions[EXTENSION]
    if args.action == "create":
        jwks = _json_file(args.jwks_file, "JWKS")
        if args.jwks_file and not isinstance(jwks, dict):
            raise admin.ClientError("the JWKS file must hold a JSON object")
        created = admin.create_client(
            state.clients,
            tenant=args.tenant,
            label=args.label,
            scopes=args.scope,
            jwks=jwks,
            jwks_url=args.jwks_url,
        )
        return created.as_json()
    if args.action == "rotate":
        grace = state.settings.key_grace_seconds
        key = admin.rotate_client(state.clients, args.client_id, grace)
        record = state.clients.get(args.client_id)
        tenant = record.tenant if record else None
        return {
            "client_id": args.client_id,
            "tenant": tenant,
            "api_key": key,
            "previous_key_valid_seconds": grace,
        }
    if args.action == "revoke":
        admin.revoke_client(state.clients, args.client_id)
        return {"client_id": args.client_id, "revoked": True}
    return [admin.describe(record) for record in state.clients.all()]


def purge(environ: Mapping[str, str] | None = None, *, now_us: int | None = None) -> Purged:
    """Apply the retention settings once: the rows removed, by kind."""
    import time  # noqa: PLC0415

    from api import create_app  # noqa: PLC0415
    from api.config import EXTENSION  # noqa: PLC0415
    from api.storage.repository import Purged  # noqa: PLC0415

    app = create_app(environ=environ)
    state = app.extensions[EXTENSION]
    settings = state.settings
    now = time.time_ns() // 1000 if now_us is None else now_us
    day_us = 86_400 * 1_000_000
    if settings.retention_days == 0 and settings.audit_retention_days == 0:
        return Purged(0, 0, 0, 0, 0)
    # A period of 0 keeps for ever: a cut-off before any record.
    assessments_before = now - settings.retention_days * day_us if settings.retention_days else 0
    audit_before = (
        now - settings.audit_retention_days * day_us if settings.audit_retention_days else None
    )
    with state.store.unit_of_work() as work:
        purged = work.purge(assessments_before_us=assessments_before, audit_before_us=audit_before)
        if any(purged):  # a deletion of stored data is audited like any other, in its commit
            work.add_audit(_purge_audit(now))
    return purged


#: The requesting agent of a retention purge's AuditEvent (no API client runs it).
PURGE_AGENT = "operator: twitch-triage purge (retention)"


def _purge_audit(now_us: int) -> AuditRow:
    """The AuditEvent of one purge: a delete by the operator, visible to operators only."""
    from api.storage.assessments import (  # noqa: PLC0415
        Exchange,
        exchange_audit_row,
        software_version,
    )
    from api.storage.records import new_id  # noqa: PLC0415

    operator = Exchange(
        request_id=new_id(),
        client_address=None,
        software_version=software_version(),
        agent=PURGE_AGENT,
    )
    return exchange_audit_row(operator, "delete", 200, at_us=now_us)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``twitch-triage`` console script."""
    env = os.environ if environ is None else environ
    parser = _parser(env)
    args = parser.parse_args(argv)
    if args.command in ("purge", "migrate", "clients", "ehrs"):
        return _maintenance(parser, args, env)
    flags = {
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "connections": args.connections,
        "model": args.model,
    }
    try:
        settings = ServingSettings.load(flags, env)
        # Before the app (and prometheus_client) is imported: workers share the directory.
        metrics_dir = prepare_metrics_dir() if settings.metrics_port else None
        from api import create_app  # noqa: PLC0415 (parse flags before the heavy imports)

        app = create_app(environ=env)
        state = app.extensions["twitch_triage"]
        host = settings.host
        if not loopback_host(host) and not state.settings.tls_terminated:
            raise ConfigError(
                f"refusing to serve patient data on {host} without TLS: bind 127.0.0.1, or "
                "terminate TLS in a proxy and set TWITCH_TRIAGE_TLS_TERMINATED=true"
            )
        if settings.model == "sync" and not state.settings.tls_terminated:
            # A sync worker is held for as long as a client takes to send (two slow
            # clients starved the service, issue 12); only a buffering proxy in front
            # (deploy/nginx) makes it safe, and TLS_TERMINATED declares that proxy.
            raise ConfigError(
                "the sync model serves one connection per worker and must sit behind a "
                "buffering proxy (deploy/): set TWITCH_TRIAGE_TLS_TERMINATED=true to declare "
                "it, or use the default gevent model"
            )
        from api.auth.bootstrap import ensure_local_client  # noqa: PLC0415

        written = ensure_local_client(app)
        # No connection crosses a fork: the bootstrap's pooled connections stay here.
        state.store.engine.dispose()
        if written is not None:
            # A log line, not a print: under serve every line of output is JSON (issue 12).
            logging.getLogger("twitch_triage.serve").warning(
                "the local client's API key is in %s (mode 0600)", written
            )
    except ConfigError as exc:
        parser.error(str(exc))
    GunicornServer(app, serving_options(settings, metrics_dir=metrics_dir)).run()
    return 0


def _maintenance(
    parser: argparse.ArgumentParser, args: argparse.Namespace, env: Mapping[str, str]
) -> int:
    """``purge``, ``migrate`` and ``clients``: one pass over the store, its output."""
    from api.auth.clients import ClientError  # noqa: PLC0415
    from api.storage import StorageUnavailableError  # noqa: PLC0415

    command = args.command
    try:
        if command in ("clients", "ehrs"):
            result = (clients_command if command == "clients" else ehrs_command)(args, env)
            rows = result if isinstance(result, list) else [result]
            for row in rows:
                print(json.dumps(row))  # noqa: T201
        elif command == "purge":
            purged = purge(env)
            print(  # noqa: T201
                f"purged {purged.assessments} assessment(s) and {purged.audit_events} audit "
                f"event(s); with them {purged.intake_links} intake link(s), "
                f"{purged.cds_cards} CDS card(s) and {purged.cds_feedback} feedback entries"
            )
        else:
            from api import create_app  # noqa: PLC0415

            create_app(environ=env)
            print("the store is at the newest migration")  # noqa: T201
    except ConfigError as exc:
        parser.error(str(exc))
    except StorageUnavailableError as exc:
        print(f"the store is unavailable: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    except ClientError as exc:
        print(f"twitch-triage {command}: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
