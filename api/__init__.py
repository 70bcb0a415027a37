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

from api import pages, storage_http
from api.auth import http as auth_http
from api.auth import smart
from api.config import EXTENSION, AppState, Settings
from api.errors import register_error_handlers
from api.fhir import FhirContext, FhirSettings
from api.routes import cds, health, intake, reports, store, triage
from api.routes import fhir as fhir_routes
from api.services.links import load_signer
from api.serving.install import install as install_serving
from api.storage import Store, default_database_url, make_engine, migrate
from api.storage.cds import CdsStore
from api.storage.clients import ClientStore


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
    # werkzeug answers "//" in a path with a 308 HTML page whose Location is built
    # from the Host header; an unknown path is a 404 OperationOutcome like any other.
    app.url_map.merge_slashes = False
    app.config.update(
        {key: value for key, value in overrides.items() if key.upper() not in Settings.field_keys()}
    )
    # Defence in depth: werkzeug also refuses bodies over the limit while reading. Under
    # gunicorn (wsgi.input_terminated) werkzeug refuses any read once its limit is
    # reached, even when the body ended exactly there; read_body probes one byte past
    # the limit to tell "exactly the limit" (accepted) from "over" (413), so werkzeug's
    # limit is one byte above ours and read_body enforces ours exactly (issue 12).
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes + 1
    engine = make_engine(settings.database_url or default_database_url(app.instance_path))
    migrate(engine)
    # No connection crosses a fork: preloaded gunicorn workers open their own.
    engine.dispose()
    # Build the render fragments and published FHIR resources now, not on the first
    # request (preloaded gunicorn workers then share them copy-on-write).
    fhir = FhirContext.build(FhirSettings(canonical_base=settings.canonical_base))
    assessments = Store(engine)
    app.extensions[EXTENSION] = AppState(
        settings=settings,
        fhir=fhir,
        store=assessments,
        clients=ClientStore(assessments, key_cache_seconds=settings.key_cache_seconds),
        links=load_signer(settings.link_secret, app.instance_path),
        cds=CdsStore(assessments),
    )
    register_error_handlers(app)
    # Request ids, metrics, JSON logs, body read errors (api/serving, issue 12).
    install_serving(app)
    storage_http.install(app)  # the fhir_id converter first: the store's routes use it
    auth_http.install(app)  # after the request id: a refused request is audited with it
    app.register_blueprint(smart.blueprint)
    app.register_blueprint(triage.blueprint)
    app.register_blueprint(fhir_routes.blueprint)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(store.blueprint)
    app.register_blueprint(reports.blueprint)  # HTML pages (issue 14)
    app.register_blueprint(cds.blueprint)
    app.register_blueprint(intake.blueprint)
    pages.install(app)  # the pages' Jinja filter: bidi controls shown, not acting
    return app


__all__ = ["AppState", "Settings", "create_app"]
