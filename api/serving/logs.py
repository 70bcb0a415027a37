"""One log format for the app and gunicorn: JSON lines, UTC ISO-8601 with offset.

Every line is one JSON object: ``time`` (``2026-11-27T15:42:31.123+00:00``),
``level``, ``logger``, ``message``, ``request_id`` (when there is one), ``pid``
and, for an exception, ``exception``. Access lines add ``method`` (a standard
method, else ``<other>``), ``path`` (the matched route, minted ids filled in, or
``<unmatched>``: never the path or query as sent, which can hold patient data),
``status``, ``duration_ms`` and ``client_id`` (None until partner identity exists;
set ``environ["twitch_triage.client_id"]``). gunicorn's line about a request it
refused names the refusal (``refusal``: its class, a fixed reason, ``status``),
never the refused text. No line ever holds a request body.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import ssl
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from flask import has_request_context, request
from gunicorn import glogging
from gunicorn.http import errors as http_errors

from api.fhir.ids import CANONICAL_UUID
from api.serving.requestid import REQUEST_ID_HEADER, current_request_id

#: WSGI environ key where identity (later) puts the authenticated client id.
CLIENT_ID_ENVIRON = "twitch_triage.client_id"
#: LogRecord attributes that are copied into the JSON line when present.
_EXTRA = ("request_id", "method", "path", "status", "duration_ms", "client_id", "refusal")


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


#: WSGI environ key where the app puts the path the access log shows (``api.serving.install``);
#: a client cannot set it (header keys are ``HTTP_*``). Absent: the request never reached a
#: route (gunicorn refused it, or no rule matched) and the line shows :data:`UNMATCHED`.
LOGGED_PATH_ENVIRON = "twitch_triage.logged_path"
#: The path of a request no route matched, in the access log and the metrics alike.
UNMATCHED = "<unmatched>"
#: Methods logged as sent; any other token (gunicorn accepts e.g. ``JANEDOE``) is client text.
KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT")
)
OTHER_METHOD = "<other>"
#: A variable part of a werkzeug rule: ``<name>``, ``<conv:name>``, ``<any(a, b):name>``.
_RULE_PART = re.compile(r"<(?:(?P<converter>[^<>:]+):)?(?P<name>[^<>:]+)>")
_ANY_CHOICES = re.compile(r"any\((?P<choices>[^()]*)\)")


def loggable_method(method: object) -> str:
    """The request method when it is a standard one, else :data:`OTHER_METHOD`."""
    return method if isinstance(method, str) and method in KNOWN_METHODS else OTHER_METHOD


def loggable_path(rule: str | None, view_args: Mapping[str, object] | None) -> str:
    """The path a log line may show for a request that ``rule`` matched (``None``: none did).

    Why not the path as sent: a path no route matched is any text a client wrote
    (``/fhir/Patient/Jane Doe``, an encoded query), and a matched one carries its
    variable parts as sent. So a variable part is shown only when it is an id this
    service minted (a UUID: ``/fhir/Bundle/<uuid>`` tells an operator which
    assessment) or one of the fixed choices of an ``any(...)`` rule (our own
    resource type names); any other value stays the rule's ``<name>``.
    """
    if rule is None:
        return UNMATCHED
    if "<" not in rule:
        return rule  # no variable part (most routes, the triage ones): nothing to decide
    values = view_args or {}

    def part(match: re.Match[str]) -> str:
        value = values.get(match["name"])
        if isinstance(value, str):
            if CANONICAL_UUID.fullmatch(value):
                return value
            choices = _ANY_CHOICES.fullmatch(match["converter"] or "")
            if choices is not None:
                allowed = {c.strip().strip("'\"") for c in choices["choices"].split(",")}
                if value in allowed:
                    return value
        return match[0]

    return _RULE_PART.sub(part, rule)


def loggable_request_path() -> str:
    """:func:`loggable_path` of the request being handled (for app lines that name it)."""
    if not has_request_context():
        return UNMATCHED
    rule = request.url_rule
    return loggable_path(None if rule is None else rule.rule, request.view_args)


#: gunicorn's refusals: status it answers and a fixed reason (gunicorn's ``handle_error``
#: table; ``tests/test_serving_log_privacy.py`` checks the status against the answer).
_REFUSALS: tuple[tuple[type[BaseException], int | None, str], ...] = (
    # The app's own bad response header (subclasses of the two header errors): a 500.
    (http_errors.InvalidResponseHeader, 500, "the app sent an invalid response header"),
    (http_errors.InvalidResponseHeaderName, 500, "the app sent an invalid response header"),
    (http_errors.InvalidRequestLine, 400, "malformed request line"),
    (http_errors.InvalidRequestMethod, 400, "invalid method"),
    (http_errors.InvalidHTTPVersion, 400, "invalid HTTP version"),
    (http_errors.InvalidHeaderName, 400, "invalid header name"),
    (http_errors.InvalidHeader, 400, "invalid header"),
    (http_errors.ObsoleteFolding, 400, "obsolete header line folding"),
    (http_errors.LimitRequestLine, 414, "request line too long"),
    (http_errors.LimitRequestHeaders, 431, "too many or too large header fields"),
    (http_errors.ExpectationFailed, 417, "unsupported expectation"),
    (http_errors.InvalidSchemeHeaders, 400, "contradictory scheme headers"),
    (http_errors.UnsupportedTransferCoding, 501, "unsupported transfer coding"),
    (http_errors.ConfigurationProblem, 500, "server configuration problem"),
    (http_errors.InvalidProxyLine, 400, "invalid PROXY protocol line"),
    (http_errors.InvalidProxyHeader, 400, "invalid PROXY protocol header"),
    (http_errors.ForbiddenProxyRequest, 403, "PROXY protocol from an address not allowed"),
    (http_errors.InvalidH2CPreface, 400, "invalid HTTP/2 preface"),
    (http_errors.InvalidChunkSize, 400, "invalid chunk size"),
    (http_errors.ChunkMissingTerminator, 400, "chunk without terminator"),
    (http_errors.InvalidChunkExtension, 400, "invalid chunk extension"),
    (http_errors.NoMoreData, None, "connection closed before the request was complete"),
    (http_errors.ParseException, None, "request not parsed"),
    (ssl.SSLError, 403, "TLS error"),
)
#: gunicorn's line for a request it refused ("Invalid request from ip=…: <the error's text>").
_REFUSED_PREFIX = "Invalid request from ip="
#: gunicorn's lines for a request it failed on, which name the URI (args: method, uri).
_URI_TEMPLATES = frozenset(("Error handling request %s %s", "Error handling request %s"))
#: A query string in any other line: from "?" to the end of the message.
_QUERY = re.compile(r"\?.*", re.DOTALL)


def _refusal(exc: BaseException | None) -> tuple[str, int | None, str] | None:
    """(class name, status, fixed reason) when ``exc`` is gunicorn refusing a request."""
    if exc is None:
        return None
    for kind, status, reason in _REFUSALS:
        if isinstance(exc, kind):
            return type(exc).__name__, status, reason
    return None


class RequestTextRedactor(logging.Filter):
    """Keeps every byte a client sent out of gunicorn's own error lines.

    gunicorn writes the line about a request it refuses itself, before any hook
    and whatever the worker class: ``"Invalid request from ip=…: " + str(exc)``,
    where the error's text is a slice of the request line or a header. A pattern
    cannot cut that text out reliably: split at spaces, the rest of a query became
    the "HTTP version"; a quote ended a match early. So the line is rebuilt from
    facts that hold no request text: the refusal's class (the exception being
    handled: gunicorn logs it inside its ``except`` block, so it is
    ``sys.exc_info()``), a fixed reason, the status gunicorn answers, the method
    when the parsed request is known and the method standard, and the peer address.
    Any line written while a refusal is handled is rebuilt so (gunicorn's
    debug lines echo the unread bytes too). Lines about a request it failed on
    name the method and ``<uri omitted>``; anything else loses what follows a ``?``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self._redact(record)
        except Exception:  # a filter that raises would break gunicorn's caller
            record.msg, record.args = "log line withheld: it could not be checked", ()
            record.exc_info, record.exc_text = None, None
        return True

    def _redact(self, record: logging.LogRecord) -> None:
        handled = record.exc_info[1] if record.exc_info else sys.exc_info()[1]
        refusal = _refusal(handled)
        if refusal is not None:
            self._rebuild_refusal(record, handled, *refusal)
        elif isinstance(record.msg, str) and record.msg in _URI_TEMPLATES:
            with_method = record.msg.count("%s") == 2 and isinstance(record.args, tuple)
            method = record.args[0] if with_method and record.args else None
            record.msg = "Error handling request %s %s"
            record.args = (loggable_method(method), "<uri omitted>")
        else:
            message = record.getMessage()
            if "?" in message:
                record.msg, record.args = _QUERY.sub("?<query omitted>", message), ()

    @staticmethod
    def _rebuild_refusal(
        record: logging.LogRecord,
        exc: BaseException | None,
        name: str,
        status: int | None,
        reason: str,
    ) -> None:
        message = record.getMessage()
        peer = "-"
        if message.startswith(_REFUSED_PREFIX):
            candidate = message[len(_REFUSED_PREFIX) :].split(": ", 1)[0]
            with contextlib.suppress(ValueError):
                peer = str(ipaddress.ip_address(candidate))
        parsed = getattr(exc, "req", None)  # InvalidHeader carries the request read so far
        method = loggable_method(getattr(parsed, "method", None))
        record.msg = "Invalid request from ip=%s: %s (%s)"
        record.args = (peer, name, reason)
        record.refusal = name
        record.status = status
        if method != OTHER_METHOD:
            record.method = method
        # The traceback of a refusal is gunicorn's parser, and its text is the request's.
        record.exc_info, record.exc_text = None, None


class JsonGunicornLogger(glogging.Logger):
    """gunicorn's logger with JSON lines for its error log and its access log."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        formatter = JsonFormatter()
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)
        self.error_log.addFilter(RequestTextRedactor())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """One line per request: method, path, status, duration, ids; no client text.

        The path is what the app put in ``environ[LOGGED_PATH_ENVIRON]`` (its matched
        rule, minted ids filled in: :func:`loggable_path`), never ``req.path``: only
        the app knows which rule matched, and gunicorn hands the access logger the
        very environ the app saw, so no second parse is needed. A request the app
        never routed (refused by gunicorn, or no rule matched) shows ``<unmatched>``.
        """
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
        method = loggable_method(getattr(req, "method", None))
        path = environ.get(LOGGED_PATH_ENVIRON)
        if not isinstance(path, str):
            path = UNMATCHED
        self.access_log.info(
            "%s %s %s",
            method,
            path,
            status,
            extra={
                "request_id": request_id,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(request_time.total_seconds() * 1000, 3),
                "client_id": environ.get(CLIENT_ID_ENVIRON),
            },
        )


__all__ = [
    "CLIENT_ID_ENVIRON",
    "KNOWN_METHODS",
    "LOGGED_PATH_ENVIRON",
    "UNMATCHED",
    "JsonFormatter",
    "JsonGunicornLogger",
    "RequestTextRedactor",
    "configure_app_logging",
    "loggable_method",
    "loggable_path",
    "loggable_request_path",
    "utc_timestamp",
]
