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
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gunicorn.app.base import BaseApplication

from api.config import ConfigError
from api.serving.config import MODELS, ServingSettings
from api.serving.gunicorn_conf import gunicorn_options as serving_options
from api.serving.gunicorn_conf import prepare_metrics_dir

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
        "configure the server, TWITCH_TRIAGE_MAX_BODY_BYTES and _CANONICAL_BASE the app.",
    )

    def option(name: str, help_text: str) -> None:
        default = environ.get(f"TWITCH_TRIAGE_{name.upper()}", str(getattr(_DEFAULTS, name)))
        serve.add_argument(f"--{name}", default=default, help=help_text)

    option("host", "bind address (default 127.0.0.1)")
    option("port", "port (default 8000)")
    option("workers", "worker processes (default 2)")
    option("connections", "open connections per worker (default 1000)")
    option("model", f"{' or '.join(MODELS)} (default gevent; sync only behind a buffering proxy)")
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``twitch-triage`` console script."""
    env = os.environ if environ is None else environ
    parser = _parser(env)
    args = parser.parse_args(argv)
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

        app = create_app()
    except ConfigError as exc:
        parser.error(str(exc))
    GunicornServer(app, serving_options(settings, metrics_dir=metrics_dir)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
