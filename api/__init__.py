"""The twitch-triage HTTP API: a Flask app factory (PROTOCOL.md §9).

``create_app`` reads typed settings once, builds the deployment's FHIR context
(render fragments and published resources) once and keeps it on the app, and
registers one blueprint per resource family plus the single error module. Every
request path is: negotiate and read the body (:mod:`api.http`) → one service
call (:mod:`api.services`) → render the response. See ARCHITECTURE.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from api.config import EXTENSION, AppState, Settings
from api.errors import register_error_handlers
from api.fhir import FhirContext, FhirSettings
from api.routes import fhir as fhir_routes
from api.routes import health, triage
from api.serving.install import install as install_serving


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; ``config`` overrides environment settings and Flask config.

    Keys naming a :class:`~api.config.Settings` field (``MAX_BODY_BYTES``,
    ``CANONICAL_BASE``, any case) configure the API; any other key (for example
    ``TESTING``) goes to ``app.config`` unchanged. Raises
    :class:`~api.config.ConfigError` on a bad value.
    """
    overrides = dict(config or {})
    settings = Settings.load(overrides)
    app = Flask(__name__)
    app.config.update(
        {key: value for key, value in overrides.items() if key.upper() not in Settings.field_keys()}
    )
    # Defence in depth: werkzeug also refuses bodies over the limit while reading. Under
    # gunicorn (wsgi.input_terminated) werkzeug refuses any read once its limit is
    # reached, even when the body ended exactly there; read_body probes one byte past
    # the limit to tell "exactly the limit" (accepted) from "over" (413), so werkzeug's
    # limit is one byte above ours and read_body enforces ours exactly (issue 12).
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes + 1
    # Build the render fragments and published FHIR resources now, not on the first
    # request (preloaded gunicorn workers then share them copy-on-write).
    fhir = FhirContext.build(FhirSettings(canonical_base=settings.canonical_base))
    app.extensions[EXTENSION] = AppState(settings=settings, fhir=fhir)
    register_error_handlers(app)
    # Request ids, metrics, JSON logs, body read errors (api/serving, issue 12).
    install_serving(app)
    app.register_blueprint(triage.blueprint)
    app.register_blueprint(fhir_routes.blueprint)
    app.register_blueprint(health.blueprint)
    return app


__all__ = ["AppState", "Settings", "create_app"]
