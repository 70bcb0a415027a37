"""Every error the API returns, as a FHIR OperationOutcome (PROTOCOL.md §9).

One table (:data:`ERROR_TABLE`) maps each exception class to its HTTP status
and FHIR IssueType; one function (:func:`register_error_handlers`) installs
the handlers, so no view builds an error response itself and Flask never
answers with its HTML error page. Unexpected exceptions become a 500 that
names only an incident id; the traceback goes to the server log.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from flask import Flask, Response, current_app, g, has_request_context, request
from markupsafe import escape
from werkzeug import exceptions as http
from werkzeug.http import HTTP_STATUS_CODES

from api.responses import DEFAULT_FHIR_VERSION, fhir_response
from schemas import FieldIssue

logger = logging.getLogger("api.errors")

#: An OperationOutcome never lists more issues than this (bounded error bodies).
MAX_ISSUES = 100
#: Longest diagnostics text; longer client-derived text is cut.
MAX_DIAGNOSTICS = 500


class IssueType(enum.StrEnum):
    """The FHIR R4 IssueType codes this API uses (http://hl7.org/fhir/issue-type)."""

    STRUCTURE = "structure"
    REQUIRED = "required"
    VALUE = "value"
    CODE_INVALID = "code-invalid"
    INVALID = "invalid"
    TOO_COSTLY = "too-costly"
    NOT_SUPPORTED = "not-supported"
    NOT_FOUND = "not-found"
    PROCESSING = "processing"
    EXCEPTION = "exception"
    TRANSIENT = "transient"
    CONFLICT = "conflict"
    BUSINESS_RULE = "business-rule"


@dataclass(frozen=True, slots=True)
class Issue:
    """One OperationOutcome.issue; ``expression`` holds JSON paths into the request."""

    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()


class ApiError(Exception):
    """A request the API refuses. Status and issue type come from ERROR_TABLE."""

    def __init__(self, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics

    def issues(self) -> list[Issue]:
        _, code = lookup(self)
        return [Issue(code, self.diagnostics)]

    def headers(self) -> dict[str, str]:
        return {}


class MalformedBodyError(ApiError):
    """The body is not one strict JSON object (malformed, NaN, duplicate keys ...)."""


class UnsupportedMediaTypeError(ApiError):
    """The request Content-Type is not ``application/json`` (charset utf-8 at most)."""


class PayloadTooLargeError(ApiError):
    """The body is over the configured limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than the limit of {limit} bytes")
        self.limit = limit


class NotAcceptableError(ApiError):
    """The Accept header rules out every FHIR JSON representation we produce."""


class RequestValidationError(ApiError):
    """The JSON object does not fit the request vocabulary: one issue per field."""

    def __init__(self, field_issues: Sequence[FieldIssue]) -> None:
        super().__init__(f"{len(field_issues)} field(s) of the request are not valid")
        self.field_issues = tuple(field_issues)

    def issues(self) -> list[Issue]:
        return [Issue(str(fi.code), fi.diagnostics, (fi.path,)) for fi in self.field_issues]


class ResourceNotFoundError(ApiError):
    """No published resource of this type has this id (``GET /fhir/{type}/{id}``)."""


class InvalidParameterError(ApiError):
    """A query parameter we interpret has a value we do not support (``_bundle``)."""

    def __init__(self, name: str, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.name = name

    def issues(self) -> list[Issue]:
        _, code = lookup(self)
        # OperationOutcome convention for HTTP parameters: "http." + the parameter name.
        return [Issue(code, self.diagnostics, (f"http.{self.name}",))]


class QuestionnaireResponseInvalidError(ApiError):
    """A ``$triage`` QuestionnaireResponse that cannot be triaged: one issue per item.

    Each issue's expression is the FHIRPath of the offending item
    (``QuestionnaireResponse.item[3].answer[0]``); its diagnostics name the linkId.
    """

    def __init__(self, issues: Sequence[Issue]) -> None:
        super().__init__(f"{len(issues)} item(s) of the QuestionnaireResponse are not valid")
        self._issues = tuple(issues)

    def issues(self) -> list[Issue]:
        return list(self._issues)


class ServiceUnavailableError(ApiError):
    """The store cannot be used now (database down or locked): retry after a pause."""

    #: Seconds a client should wait before retrying (``Retry-After``).
    RETRY_AFTER = 5

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.RETRY_AFTER)}


class IdempotencyKeyReusedError(ApiError):
    """An ``Idempotency-Key`` already used for a different request (422)."""


class IdempotencyConflictError(ApiError):
    """A request with the same ``Idempotency-Key`` is being processed right now (409)."""


#: Exception class → (HTTP status, FHIR issue type). Looked up along the MRO, so
#: werkzeug's own exceptions (routing, Flask's MAX_CONTENT_LENGTH) fit in too.
ERROR_TABLE: dict[type[Exception], tuple[int, IssueType]] = {
    MalformedBodyError: (400, IssueType.STRUCTURE),
    PayloadTooLargeError: (413, IssueType.TOO_COSTLY),
    UnsupportedMediaTypeError: (415, IssueType.NOT_SUPPORTED),
    NotAcceptableError: (406, IssueType.NOT_SUPPORTED),
    # The per-field codes (required, value, code-invalid, invalid) come from the schema.
    RequestValidationError: (422, IssueType.INVALID),
    # Issue codes per item, as for RequestValidationError.
    QuestionnaireResponseInvalidError: (422, IssueType.INVALID),
    # The request line itself is wrong, before any body is read.
    InvalidParameterError: (400, IssueType.VALUE),
    ResourceNotFoundError: (404, IssueType.NOT_FOUND),
    ServiceUnavailableError: (503, IssueType.TRANSIENT),
    IdempotencyKeyReusedError: (422, IssueType.BUSINESS_RULE),
    IdempotencyConflictError: (409, IssueType.CONFLICT),
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


def _clean(text: str) -> str:
    """Cap the length and make the text encodable (no lone surrogates)."""
    if len(text) > MAX_DIAGNOSTICS:
        text = text[: MAX_DIAGNOSTICS - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def operation_outcome(issues: Iterable[Issue], *, summary: str) -> dict[str, object]:
    """An OperationOutcome with an escaped XHTML narrative listing every issue."""
    listed = list(issues)
    if len(listed) > MAX_ISSUES:
        extra = len(listed) - (MAX_ISSUES - 1)
        listed = [
            *listed[: MAX_ISSUES - 1],
            Issue(IssueType.TOO_COSTLY, f"{extra} further problems are not listed"),
        ]
    rendered = []
    rows = []
    for issue in listed:
        diagnostics = _clean(issue.diagnostics)
        expression = [_clean(e) for e in issue.expression]
        entry: dict[str, object] = {
            "severity": "error",
            "code": str(issue.code),
            "diagnostics": diagnostics,
        }
        if expression:
            entry["expression"] = expression
        rendered.append(entry)
        rows.append(f"<li><b>{escape(str(issue.code))}</b>: {escape(diagnostics)}</li>")
    div = (
        '<div xmlns="http://www.w3.org/1999/xhtml">'
        f"<p>{escape(summary)}</p><ul>{''.join(rows)}</ul></div>"
    )
    return {
        "resourceType": "OperationOutcome",
        "text": {"status": "generated", "div": div},
        "issue": rendered,
    }


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
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        diagnostics = f"request body is larger than the limit of {limit} bytes"
    headers = {key: value for key, value in exc.get_headers() if key.lower() != "content-type"}
    return error_response(status, [Issue(code, diagnostics)], headers)


def _handle_unexpected(exc: BaseException) -> Response:
    incident = uuid.uuid4().hex
    original = getattr(exc, "original_exception", None) or exc
    logger.error(
        "unhandled error, incident %s, on %s %s",
        incident,
        request.method,
        request.path,
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
    app.register_error_handler(http.HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
