"""One log format for the app and gunicorn: JSON lines, UTC ISO-8601 with offset.

Every line is one JSON object: ``time`` (``2026-11-27T15:42:31.123+00:00``),
``level``, ``logger``, ``message``, ``request_id`` (when there is one), ``pid``
and, for an exception, ``exception``. Access lines add ``method``, ``path``
(never the query string: its values could be patient data), ``status``,
``duration_ms`` and ``client_id`` (None until partner identity exists; set
``environ["twitch_triage.client_id"]``). No line ever holds a request body.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
from gunicorn import glogging

from api.serving.requestid import REQUEST_ID_HEADER, current_request_id

#: WSGI environ key where identity (later) puts the authenticated client id.
CLIENT_ID_ENVIRON = "twitch_triage.client_id"
#: LogRecord attributes that are copied into the JSON line when present.
_EXTRA = ("request_id", "method", "path", "status", "duration_ms", "client_id")


def utc_timestamp(created: float) -> str:
    """ISO-8601 in UTC with an explicit offset and milliseconds."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """A LogRecord as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key in _EXTRA:
            value = record.__dict__.get(key)
            if value is not None:
                line[key] = value
        if "request_id" not in line:
            request_id = current_request_id()
            if request_id is not None:
                line["request_id"] = request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_app_logging() -> None:
    """JSON lines on stderr for our loggers, unless the host already configured logging.

    Called by ``create_app``, so ``gunicorn 'api:create_app()'`` without any
    configuration still writes timestamped, levelled lines.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    else:
        for handler in root.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.formatter is None:
                handler.setFormatter(JsonFormatter())


#: A query string inside a logged request line or URI: from "?" to the next space or quote.
_QUERY = re.compile(r"\?[^\s'\"]*")


class QueryStringRedactor(logging.Filter):
    """Cuts query strings out of gunicorn's own error lines.

    gunicorn logs a request line it refuses ("Invalid request from ip=…: Invalid
    Request Line 'GET /fhir/Observation?subject=Patient/123 …'") and the URI of a
    request its worker failed on; a query string holds search values (patient ids,
    codes) and the signatures of report and intake links. The path stays.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = _QUERY.sub("?<query omitted>", message), ()
        return True


class JsonGunicornLogger(glogging.Logger):
    """gunicorn's logger with JSON lines for its error log and its access log."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        formatter = JsonFormatter()
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)
        self.error_log.addFilter(QueryStringRedactor())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """One line per request: method, path, status, duration, ids; no query, no body."""
        if not self.access_log_enabled:
            return
        request_id = None
        for name, value in getattr(resp, "headers", None) or ():
            if name.lower() == REQUEST_ID_HEADER.lower():
                request_id = value
        status = getattr(resp, "status_code", None)
        if status is None and isinstance(getattr(resp, "status", None), str):
            # gunicorn's own error responses (handle_error) set only the status line.
            status = int(resp.status.split(None, 1)[0])
        self.access_log.info(
            "%s %s %s",
            req.method,
            req.path,
            status,
            extra={
                "request_id": request_id,
                "method": req.method,
                "path": req.path,
                "status": status,
                "duration_ms": round(request_time.total_seconds() * 1000, 3),
                "client_id": environ.get(CLIENT_ID_ENVIRON),
            },
        )


__all__ = [
    "CLIENT_ID_ENVIRON",
    "JsonFormatter",
    "JsonGunicornLogger",
    "QueryStringRedactor",
    "configure_app_logging",
    "utc_timestamp",
]
