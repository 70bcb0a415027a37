"""Per-request hooks: request id in, request id out, metrics, body read failures.

Installed by ``create_app``; they run under any server (gunicorn, the test
client), so ids and metrics never depend on how the app is served.
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any

from flask import Flask, Response, g, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import ClientDisconnected

from api.errors import error_response
from api.fhir.outcome import Issue
from api.serving.logs import (
    LOGGED_PATH_ENVIRON,
    UNMATCHED,
    configure_app_logging,
    loggable_method,
    loggable_path,
)
from api.serving.requestid import REQUEST_ID_HEADER, accepted_request_id
from schemas import IssueType


def _metrics() -> ModuleType:
    """:mod:`api.serving.metrics`, imported on the first request, never at app creation.

    prometheus_client picks its multi-process storage when it is imported; the
    first request runs in a forked worker, after ``PROMETHEUS_MULTIPROC_DIR`` is set.
    """
    from api.serving import metrics  # noqa: PLC0415 (see above)

    return metrics


#: (method, route, status) → its request counter and latency histogram. ``labels()``
#: takes a lock and rebuilds the label tuple on every call; a labelled child never
#: changes once made (we never remove series), so each is looked up once per process.
#: Filled at request time, so in the forked worker, after the metrics module chose
#: its storage.
_REQUEST_SERIES: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def _request_series(method: str, route: str, status: str) -> tuple[Any, Any]:
    """The request counter and latency histogram children of one label set."""
    key = (method, route, status)
    series = _REQUEST_SERIES.get(key)
    if series is None:
        metrics = _metrics()
        series = (
            metrics.HTTP_REQUESTS.labels(method, route, status),
            metrics.HTTP_LATENCY.labels(method, route, status),
        )
        _REQUEST_SERIES[key] = series
    return series


#: (level, source) → its triage level counter (as :data:`_REQUEST_SERIES`).
_LEVEL_SERIES: dict[tuple[str, str], Any] = {}


def _level_series(level: str, source: str) -> Any:
    """The triage level counter child of one level and source endpoint."""
    series = _LEVEL_SERIES.get((level, source))
    if series is None:
        series = _LEVEL_SERIES[(level, source)] = _metrics().TRIAGE_LEVELS.labels(level, source)
    return series


def _begin() -> None:
    g.request_id = accepted_request_id(request.headers.get(REQUEST_ID_HEADER))
    g.request_started = time.perf_counter()


def _finish(response: Response) -> Response:
    request_id = g.get("request_id") or accepted_request_id(None)
    response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("request_started")
    rule = request.url_rule
    route = rule.rule if rule is not None else UNMATCHED
    # For gunicorn's access line (JsonGunicornLogger.access reads the same environ).
    request.environ[LOGGED_PATH_ENVIRON] = loggable_path(
        None if rule is None else rule.rule, request.view_args
    )
    # A standard method or "<other>": any token gunicorn accepts would be a new series.
    method = loggable_method(request.method)
    requests, latency = _request_series(method, route, str(response.status_code))
    requests.inc()
    if started is not None:
        latency.observe(time.perf_counter() - started)
    outcome = g.get("triage_outcome")
    if outcome is not None:
        _level_series(outcome.result.level.code, outcome.source).inc()
    return response


def _body_not_read(exc: Exception) -> Response:
    """The body could not be read: cut short (timeout, disconnect) or badly chunked.

    A client's mistake, so a 400 OperationOutcome, never a 500 with a traceback.
    werkzeug's input stream turns every socket error while reading the body (the
    worker's read timeout, a vanished client) into ``ClientDisconnected``, so a
    timeout elsewhere (a database, later) is never mistaken for the client's fault;
    gunicorn's chunked-body parser raises its ``ParseException`` s through it.
    """
    if isinstance(exc, ClientDisconnected):
        reason = "it ended or stalled before it was complete (shorter than its Content-Length?)"
    else:
        reason = f"the body's transfer encoding is malformed ({type(exc).__name__})"
    issue = Issue(IssueType.STRUCTURE, f"request body could not be read: {reason}")
    return error_response(400, [issue])


def install(app: Flask) -> None:
    """Hook request ids, metrics, JSON logs and body read errors into ``app``."""
    configure_app_logging()
    app.before_request(_begin)
    app.after_request(_finish)
    for exc_type in (ClientDisconnected, ParseException):
        app.register_error_handler(exc_type, _body_not_read)


__all__ = ["install"]
