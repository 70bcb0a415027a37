"""The twitch-triage HTTP API: a Flask app factory (PROTOCOL.md §9).

``create_app`` reads typed settings once, builds the FHIR settings once and
registers one blueprint per resource family plus the single error module, so
every request path is: negotiate → read → decode → load → evaluate → render.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from api.config import EXTENSION, AppState, Settings
from api.errors import register_error_handlers
from api.fhir import FhirSettings
from api.fhir.catalog import catalog
from api.routes import fhir as fhir_routes
from api.routes import health, store, triage
from api.storage import Store, default_database_url, make_engine, migrate


def create_app(
    config: Mapping[str, Any] | None = None, *, environ: Mapping[str, str] | None = None
) -> Flask:
    """Build the app; ``config`` overrides environment settings and Flask config.

    Keys naming a :class:`~api.config.Settings` field (``MAX_BODY_BYTES``,
    ``CANONICAL_BASE``, any case) configure the API; any other key (for example
    ``TESTING``) goes to ``app.config`` unchanged. Raises
    :class:`~api.config.ConfigError` on a bad value.
    """
    overrides = dict(config or {})
    settings = Settings.load(overrides, environ)
    app = Flask(__name__)
    app.config.update(
        {key: value for key, value in overrides.items() if key.upper() not in Settings.field_keys()}
    )
    # Defence in depth: werkzeug also refuses bodies over the limit while reading.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    engine = make_engine(settings.database_url or default_database_url(app.instance_path))
    migrate(engine)
    # No connection crosses a fork: preloaded gunicorn workers open their own.
    engine.dispose()
    app.extensions[EXTENSION] = AppState(
        settings=settings,
        fhir_settings=FhirSettings(canonical_base=settings.canonical_base),
        store=Store(engine),
    )
    # Build the published FHIR resources now, not on the first request (and once per
    # canonical base, shared by preloaded gunicorn workers).
    catalog(settings.canonical_base)
    register_error_handlers(app)
    app.register_blueprint(triage.blueprint)
    app.register_blueprint(fhir_routes.blueprint)
    app.register_blueprint(health.blueprint)
    store.install(app)
    return app


__all__ = ["AppState", "Settings", "create_app"]
