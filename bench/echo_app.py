"""The throughput floor: a bare Flask app that parses a JSON body and echoes it.

``POST /echo`` does what every JSON endpoint must do at the least: read the
body, decode it with Flask's default JSON provider (``request.get_json()``,
the stdlib ``json`` module) and answer it re-encoded with ``jsonify``. The API
is measured against this under the same gunicorn settings
(:func:`api.cli.gunicorn_options`: the same serving model, preloaded app), so the ratio
says what validation, triage and FHIR rendering cost on top of the floor.

    python -m bench.echo_app --port 8001    # what bench.http starts
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from flask import Flask, Response, jsonify, request

from api.cli import DEFAULT_MODEL, DEFAULT_WORKERS, GunicornServer, gunicorn_options


def create_echo_app() -> Flask:
    app = Flask(__name__)

    @app.post("/echo")
    def echo() -> Response:
        return jsonify(request.get_json())

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.echo_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="serving model (gevent or sync)")
    args = parser.parse_args(argv)
    options = gunicorn_options(args.host, args.port, args.workers, args.model)
    GunicornServer(create_echo_app(), options).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
