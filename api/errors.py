"""Every error the API returns, as a FHIR OperationOutcome (PROTOCOL.md §9).

One table (:data:`ERROR_TABLE`) maps each exception class (the HTTP layer's own
:class:`ApiError` s, the services' domain errors, werkzeug's) to its HTTP status
and FHIR IssueType; one function (:func:`register_error_handlers`) installs the
handlers, so no view builds an error response itself and Flask never answers
with its HTML error page. Unexpected exceptions become a 500 that names only an
incident id; the traceback goes to the server log.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from flask import Flask, Response, current_app, g, has_request_context, request
from werkzeug import exceptions as http
from werkzeug.http import HTTP_STATUS_CODES

from api.fhir.outcome import MAX_ISSUES, Issue, operation_outcome
from api.fhir.versions import DEFAULT_FHIR_VERSION
from api.responses import fhir_response
from api.services.errors import (
    IdempotencyConflictError,
    IdempotencyKeyReusedError,
    InvalidCdsRequestError,
    InvalidInputError,
    InvalidSearchError,
    NotFoundError,
    PreconditionFailedError,
    ServiceError,
    VersionNotServedError,
)
from api.serving.logs import loggable_method, loggable_request_path
from schemas import IssueType

logger = logging.getLogger("api.errors")


class ApiError(Exception):
    """A request the API refuses. Status and issue type come from ERROR_TABLE.

    ``EXPRESSION`` names the offending part of the HTTP request, as OperationOutcome
    does for HTTP headers and parameters (``http.<name>``); a raise site may name
    another (``_format`` instead of Accept). Empty: the body as a whole.
    """

    EXPRESSION: tuple[str, ...] = ()

    def __init__(self, diagnostics: str, expression: tuple[str, ...] | None = None) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.expression = self.EXPRESSION if expression is None else expression

    def issues(self) -> list[Issue]:
        _, code = lookup(self)
        return [Issue(code, self.diagnostics, self.expression)]

    def headers(self) -> dict[str, str]:
        return {}


class MalformedBodyError(ApiError):
    """The body is not one strict JSON object (malformed, NaN, duplicate keys ...)."""


class UnsupportedMediaTypeError(ApiError):
    """The request Content-Type is not ``application/json`` (charset utf-8 at most), or
    the body has a content coding (``Content-Encoding``) the API does not decode."""

    EXPRESSION = ("http.Content-Type",)


class PayloadTooLargeError(ApiError):
    """The body is over the configured limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than the limit of {limit} bytes")
        self.limit = limit


class NotAcceptableError(ApiError):
    """The Accept header (or ``_format``) rules out every FHIR JSON representation we produce."""

    EXPRESSION = ("http.Accept",)


class ServiceUnavailableError(ApiError):
    """The store cannot be used now (database down or locked): retry after a pause."""

    #: Seconds a client should wait before retrying (``Retry-After``).
    RETRY_AFTER = 5

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.RETRY_AFTER)}


class InvalidParameterError(ApiError):
    """A query parameter we interpret has a value we do not support (``_bundle``)."""

    def __init__(self, name: str, diagnostics: str) -> None:
        # OperationOutcome convention for HTTP parameters: "http." + the parameter name.
        super().__init__(diagnostics, (f"http.{name}",))
        self.name = name


#: Realm named in ``WWW-Authenticate`` (RFC 6750).
REALM = "twitch-triage"


class UnauthorizedError(ApiError):
    """No credentials, or credentials that name no active client (401 + WWW-Authenticate).

    ``error`` is the RFC 6750 code (``invalid_request`` for a malformed header,
    ``invalid_token`` for an unknown, revoked, retired or expired credential);
    None when no credentials were sent at all.
    """

    EXPRESSION = ("http.Authorization",)

    def __init__(self, diagnostics: str, error: str | None = None) -> None:
        super().__init__(diagnostics)
        self.error = error

    def headers(self) -> dict[str, str]:
        challenge = f'Bearer realm="{REALM}"'
        if self.error is not None:
            challenge += f', error="{self.error}"'
        return {"WWW-Authenticate": challenge}


class ForbiddenError(ApiError):
    """Authenticated, but no granted scope covers this endpoint (403)."""

    EXPRESSION = ("http.Authorization",)

    def __init__(self, diagnostics: str, scope: str) -> None:
        super().__init__(diagnostics)
        self.scope = scope

    def headers(self) -> dict[str, str]:
        return {
            "WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", '
            f'scope="{self.scope}"'
        }


class CorsRefusedError(ApiError):
    """A CORS preflight from an origin that is not on the allowlist (403)."""

    EXPRESSION = ("http.Origin",)


class ThrottledError(ApiError):
    """The client used up its rate limit (429 with Retry-After and RateLimit headers)."""

    def __init__(self, diagnostics: str, headers: dict[str, str]) -> None:
        super().__init__(diagnostics)
        self._headers = headers

    def headers(self) -> dict[str, str]:
        return dict(self._headers)


#: Exception class → (HTTP status, FHIR issue type). Looked up along the MRO, so
#: werkzeug's own exceptions (routing, Flask's MAX_CONTENT_LENGTH) fit in too.
ERROR_TABLE: dict[type[Exception], tuple[int, IssueType]] = {
    MalformedBodyError: (400, IssueType.STRUCTURE),
    PayloadTooLargeError: (413, IssueType.TOO_COSTLY),
    UnsupportedMediaTypeError: (415, IssueType.NOT_SUPPORTED),
    NotAcceptableError: (406, IssueType.NOT_SUPPORTED),
    # Service errors carry their own issues: per field or item, codes from the schema
    # (required, value, code-invalid, invalid) or the QuestionnaireResponse reader.
    InvalidInputError: (422, IssueType.INVALID),
    NotFoundError: (404, IssueType.NOT_FOUND),
    IdempotencyKeyReusedError: (422, IssueType.BUSINESS_RULE),
    IdempotencyConflictError: (409, IssueType.CONFLICT),
    ServiceUnavailableError: (503, IssueType.TRANSIENT),
    InvalidSearchError: (400, IssueType.VALUE),
    VersionNotServedError: (406, IssueType.NOT_SUPPORTED),
    # CDS Hooks (issue 13): a request of the wrong shape; data that cannot be had or used.
    InvalidCdsRequestError: (400, IssueType.STRUCTURE),
    PreconditionFailedError: (412, IssueType.PROCESSING),
    # Partner identity: who is calling and what it may do (issue 11).
    UnauthorizedError: (401, IssueType.LOGIN),
    ForbiddenError: (403, IssueType.FORBIDDEN),
    CorsRefusedError: (403, IssueType.FORBIDDEN),
    ThrottledError: (429, IssueType.THROTTLED),
    # The request line itself is wrong, before any body is read.
    InvalidParameterError: (400, IssueType.VALUE),
    http.BadRequest: (400, IssueType.STRUCTURE),
    http.NotFound: (404, IssueType.NOT_FOUND),
    http.MethodNotAllowed: (405, IssueType.NOT_SUPPORTED),
    http.NotAcceptable: (406, IssueType.NOT_SUPPORTED),
    http.RequestEntityTooLarge: (413, IssueType.TOO_COSTLY),
    http.UnsupportedMediaType: (415, IssueType.NOT_SUPPORTED),
    http.InternalServerError: (500, IssueType.EXCEPTION),
}


def lookup(exc: BaseException) -> tuple[int, IssueType]:
    """Status and issue type for an exception (most specific class wins)."""
    for cls in type(exc).__mro__:
        found = ERROR_TABLE.get(cls)
        if found is not None:
            return found
    if isinstance(exc, http.HTTPException) and exc.code is not None:
        generic = IssueType.PROCESSING if exc.code < 500 else IssueType.EXCEPTION
        return exc.code, generic
    return 500, IssueType.EXCEPTION


def error_response(
    status: int, issues: Iterable[Issue], headers: dict[str, str] | None = None
) -> Response:
    """The HTTP response for an error: an OperationOutcome in FHIR JSON.

    The OperationOutcome is the same in R4 and R5; its Content-Type names the
    version the request negotiated (``g.fhir_version``, set by api.media), R4 if
    negotiation did not happen or failed.
    """
    phrase = HTTP_STATUS_CODES.get(status, "Error")
    outcome = operation_outcome(issues, summary=f"The request was not processed: {phrase}.")
    version = g.get("fhir_version", DEFAULT_FHIR_VERSION) if has_request_context() else None
    return fhir_response(
        outcome, status, headers=headers, fhir_version=version or DEFAULT_FHIR_VERSION
    )


def _handle_api_error(exc: ApiError) -> Response:
    status, _ = lookup(exc)
    return error_response(status, exc.issues(), exc.headers())


def _handle_service_error(exc: ServiceError) -> Response:
    status, _ = lookup(exc)
    return error_response(status, exc.issues)


#: Client-facing texts for werkzeug errors (their own descriptions mention HTML forms).
_HTTP_DIAGNOSTICS: dict[int, str] = {
    404: "no resource at this path; see /openapi.yaml for the endpoints",
    405: "method not supported for this path",
    413: "request body is larger than the configured limit",
}


def _handle_http_exception(exc: http.HTTPException) -> Response:
    status, code = lookup(exc)
    if status >= 500:
        return _handle_unexpected(exc)
    diagnostics = _HTTP_DIAGNOSTICS.get(status) or (exc.description or exc.name)
    if status == 405:
        diagnostics = f"{request.method} is not supported for {request.path}"
    elif status == 413 and current_app.config.get("MAX_CONTENT_LENGTH"):
        # The API's limit; werkzeug's MAX_CONTENT_LENGTH is one byte above it (create_app).
        limit = current_app.config["MAX_CONTENT_LENGTH"] - 1
        diagnostics = f"request body is larger than the limit of {limit} bytes"
    headers = {key: value for key, value in exc.get_headers() if key.lower() != "content-type"}
    return error_response(status, [Issue(code, diagnostics)], headers)


def _handle_unexpected(exc: BaseException) -> Response:
    # The incident is the request id (api.serving), so the log line and X-Request-Id match.
    incident = (g.get("request_id") if has_request_context() else None) or uuid.uuid4().hex
    original = getattr(exc, "original_exception", None) or exc
    logger.error(
        "unhandled error, incident %s, on %s %s",
        incident,
        loggable_method(request.method),
        loggable_request_path(),  # never the path as sent: it can hold patient text
        exc_info=original,
    )
    issue = Issue(
        IssueType.EXCEPTION,
        f"an internal error occurred and the request was not processed (incident {incident})",
    )
    return error_response(500, [issue])


def register_error_handlers(app: Flask) -> None:
    """Install the only error handlers of the app (most specific first)."""
    app.register_error_handler(ApiError, _handle_api_error)
    app.register_error_handler(ServiceError, _handle_service_error)
    app.register_error_handler(http.HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)


__all__ = [
    "ERROR_TABLE",
    "MAX_ISSUES",
    "ApiError",
    "Issue",
    "IssueType",
    "register_error_handlers",
]
