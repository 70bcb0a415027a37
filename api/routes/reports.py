"""The clinician report page, ``GET /reports/{bundle id}?expires=&signature=`` (issue 14).

A browser opens it from the signed link the API hands out (``Link`` header,
``Bundle.link``); no API key. The view only asks the service and renders the
Jinja2 template (autoescaped). Everything under ``/reports/`` that is not a
valid link — altered, expired, unknown id, malformed path — is the same 404
page, which names nothing of what was asked.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, render_template, request
from flask.blueprints import BlueprintSetupState
from werkzeug.routing import PathConverter

from api.http import app_state, exchange, page_response
from api.services.reports import ReportNotFoundError, open_report

blueprint = Blueprint("reports", __name__)


class AnyPathConverter(PathConverter):
    """A path that may hold any character, a newline too (werkzeug's ``path`` stops at one).

    Without it a malformed id such as ``%0A`` fell through to the API's JSON 404
    instead of the page's HTML 404 (found by the contract fuzzer).
    """

    regex = "[^/][\\s\\S]*?"


@blueprint.record_once
def _install_converter(state: BlueprintSetupState) -> None:
    state.app.url_map.converters.setdefault("any_path", AnyPathConverter)


def _not_found() -> Response:
    html = render_template("report_not_found.html")
    return page_response(html, frame_ancestors=app_state().settings.frame_ancestors, status=404)


@blueprint.get("/reports/<fhir_id:bundle_id>")
def report(bundle_id: str) -> Response:
    """One assessment's report, when the link verifies."""
    state = app_state()
    try:
        view = open_report(
            state.store,
            state.links,
            exchange(),
            bundle_id,
            expires=request.args.get("expires"),
            signature=request.args.get("signature"),
            now=int(time.time()),
            client_active=state.clients.is_active,
            ehr_registered=lambda ehr_id: state.cds.by_id(ehr_id) is not None,
            holder=request.args.get("holder"),
            holder_tenant=state.clients.active_tenant,
        )
    except ReportNotFoundError:
        return _not_found()
    html = render_template("report.html", report=view)
    return page_response(html, frame_ancestors=state.settings.frame_ancestors)


@blueprint.get("/reports/", defaults={"rest": ""})
@blueprint.get("/reports/<any_path:rest>")
def no_report(rest: str) -> Response:  # noqa: ARG001 (the path is never shown)
    """Any other path under /reports/: the same 404 page."""
    return _not_found()
