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

from api.http import app_state, exchange, page_response
from api.services.reports import ReportNotFoundError, open_report

blueprint = Blueprint("reports", __name__)


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
        )
    except ReportNotFoundError:
        return _not_found()
    html = render_template("report.html", report=view)
    return page_response(html, frame_ancestors=state.settings.frame_ancestors)


@blueprint.get("/reports/", defaults={"rest": ""})
@blueprint.get("/reports/<path:rest>")
def no_report(rest: str) -> Response:  # noqa: ARG001 (the path is never shown)
    """Any other path under /reports/: the same 404 page."""
    return _not_found()
