"""The HTTP edge shared by every FHIR endpoint: negotiate, read the body, answer.

Views declare what they read with :func:`fhir_endpoint` and receive a
:class:`Call`; they hold no negotiation or body-reading code of their own. Order
of checks, for every endpoint alike: Accept or ``_format`` (406), ``_bundle``
(400, triage endpoints only), Content-Type (415), size (413), JSON (400). Other
query parameters are ignored, as FHIR servers do.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Response, g, request
from werkzeug.http import parse_options_header

from api.config import AppState, app_state
from api.errors import UnsupportedMediaTypeError
from api.jsonbody import parse_json_object, read_body
from api.negotiation import negotiate_request, require_fhir_json_content_type
from api.pages import page_response
from api.responses import fhir_content_type, fhir_response
from api.services.assessments import stored_triage
from api.services.outcome import Outcome, Source

#: A Content-Type check: returns None or raises UnsupportedMediaTypeError.
ContentTypeCheck = Callable[[str | None], None]


@dataclass(frozen=True, slots=True)
class Call:
    """One negotiated request, as a view sees it."""

    state: AppState
    fhir_version: str
    bundle_type: str
    #: The decoded JSON object body (empty for endpoints without a body).
    payload: Mapping[str, Any]


_NO_BODY: Mapping[str, Any] = {}


def fhir_endpoint(
    *, body: ContentTypeCheck | None = None, bundle: bool = False
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Decorate a view ``view(call, **url_args)`` answering FHIR.

    ``body``: the Content-Type check of an endpoint that reads a JSON object body
    (read at most ``max_body_bytes``, strictly decoded); ``bundle``: whether the
    endpoint answers a Bundle whose type ``_bundle`` selects.
    """

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(view)
        def endpoint(**url_args: Any) -> Response:
            fhir_version, bundle_type = negotiate_request(request, bundle=bundle)
            state = app_state()
            payload = _NO_BODY
            if body is not None:
                body(request.headers.get("Content-Type"))
                # A FHIR body's refusal names its member as a FHIRPath (api.jsonbody).
                payload = parse_json_object(
                    read_body(request, state.settings.max_body_bytes),
                    fhir=body is require_fhir_json_content_type,
                )
            return view(Call(state, fhir_version, bundle_type, payload), **url_args)

        return endpoint

    return decorate


FORM = "application/x-www-form-urlencoded"


def form_body(call: Call) -> bytes:
    """The ``application/x-www-form-urlencoded`` body of a POST search (FHIR http.html).

    Read like every body (at most ``max_body_bytes``, no content coding); another
    Content-Type, or a charset other than UTF-8, is a 415 naming ``http.Content-Type``.
    """
    content_type = request.headers.get("Content-Type")
    media_type, params = parse_options_header(content_type or "")
    charset = params.pop("charset", "utf-8")
    if media_type.lower() != FORM or params or charset.lower() != "utf-8":
        shown = repr(content_type[:100]) if content_type else "none"
        raise UnsupportedMediaTypeError(
            f"a search by POST takes Content-Type {FORM} (charset=utf-8 at most), got {shown}"
        )
    return read_body(request, call.state.settings.max_body_bytes)


def resource_response(resource: Mapping[str, Any], call: Call) -> Response:
    """A FHIR resource (a dict) in the negotiated version."""
    return fhir_response(resource, fhir_version=call.fhir_version)


def bytes_response(body: bytes, call: Call) -> Response:
    """A prebuilt FHIR resource (JSON bytes) in the negotiated version."""
    return Response(body, content_type=fhir_content_type(call.fhir_version))


# The storage edge (request ids, audit hooks, stored answers) is part of this edge.
from api.storage_http import (  # noqa: E402 (after Call: it imports nothing from here)
    VERSION_ETAG,
    audited,
    audits_failures,
    conditional_response,
    exchange,
    recording,
    report_link_header,
    stored_response,
)

__all__ = [
    "VERSION_ETAG",
    "Call",
    "app_state",
    "audited",
    "audits_failures",
    "bytes_response",
    "conditional_response",
    "exchange",
    "fhir_endpoint",
    "form_body",
    "page_response",
    "recording",
    "report_link_header",
    "resource_response",
    "stored_response",
    "stored_triage_response",
]


def stored_triage_response(call: Call, *, source: Source, run: Callable[[], Outcome]) -> Response:
    """Run one triage use case, store it and answer the stored Bundle (both triage views).

    The Outcome is kept on ``flask.g``, where the metrics count the level issued; a
    replayed idempotent request does not run, so it is not counted twice.
    """

    def run_and_keep() -> Outcome:
        g.triage_outcome = outcome = run()
        return outcome

    stored = stored_triage(
        run_and_keep,
        recording=recording(call.state),
        source=source,
        fhir_version=call.fhir_version,
        bundle_type=call.bundle_type,
        payload=call.payload,
    )
    return stored_response(stored, call.fhir_version)
