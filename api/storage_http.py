"""The HTTP edge of storage: request ids, audit of failed attempts, 503, stored answers.

Re-exported by :mod:`api.http` (the edge the route modules use). ``install``
registers the request-id and audit hooks, the 503 handler for an unavailable
store and the ``fhir_id`` URL converter. Every failed attempt on patient data
leaves an AuditEvent: on the endpoints of :data:`AUDITED_FAILURES` (the triage
endpoints, the store's routes, CDS Hooks, the intake links and pages), and on the
data API surface (``/v1/…``, ``/fhir/…``) any other refusal of an identified caller,
a request no route matched included (:func:`unmatched_attempt`). The views write
their successes themselves (``g.audited``); an endpoint whose failure needs facts
only it knows (the link's tenant, what a CDS call fetched) registers an auditor
(:func:`audits_failures`).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from flask import Flask, Response, g, request
from werkzeug.http import http_date
from werkzeug.routing import BaseConverter
from werkzeug.sansio.utils import get_current_url

from api.auth.ehr import EHR_ENDPOINTS
from api.auth.http import anonymous_audit_admitted, bearer_principal
from api.auth.scopes import PUBLIC_ENDPOINTS
from api.config import app_state
from api.errors import InvalidParameterError, ServiceUnavailableError, error_response
from api.fhir.capability import READABLE_TYPES
from api.fhir.search import ID_TEXT
from api.responses import fhir_content_type
from api.services.assessments import Recording, StoredTriage
from api.services.reports import link_header, report_link
from api.serving.logs import loggable_method, loggable_request_path
from api.storage import StorageUnavailableError
from api.storage.assessments import (
    IDEMPOTENCY_KEY,
    Exchange,
    audit,
    software_version,
)

logger = logging.getLogger("api.storage")

#: Stored resources are immutable: version 1 for ever.
VERSION_ETAG = 'W/"1"'

#: Endpoints whose failed attempts are audited → the interaction attempted.
AUDITED_FAILURES = {
    "triage.triage": "create",
    "fhir.triage_operation": "create",
    "store.read_bundle": "read",
    "store.read_entry": "read",
    "store.read_provenance": "read",
    "store.read_audit_event": "read",
    "store.search": "search-type",
    "store.search_form": "search-type",
    "store.delete_bundle": "delete",
    "cds.service": "operation",  # every call, with or without a card (its auditor)
    "cds.feedback": "operation",
    "intake.create_link": "create",  # its successes and the intake pages audit themselves
    "intake.page": "read",  # the signed-link browser (its auditor names the link)
    "intake.submit": "create",
    # A refused SMART token request (forged, replayed, throttled): no patient data, but an
    # attempt on the credentials that reach it (anonymous: within its audit budget).
    "auth.token": "operation",
}

#: Writes the AuditEvent of a failed attempt on one endpoint, given the HTTP status.
FailureAuditor = Callable[[int], None]
#: Endpoints whose failed attempts need facts only they know (registered by their
#: route module with :func:`audits_failures`).
FAILURE_AUDITORS: dict[str, FailureAuditor] = {}

#: The data API: a refused attempt of an identified caller under these is audited,
#: whether or not a route matched.
DATA_SURFACE = ("/v1/", "/fhir/")
#: The published conformance resources under ``/fhir/`` (public, no patient data).
PUBLISHED = frozenset({"metadata", ".well-known", *READABLE_TYPES})
#: A resource type an AuditEvent may name: FHIR's spelling, within the audit column.
_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{0,31}")
_ID = re.compile(ID_TEXT)
#: The interaction a method attempts, when no route says which.
METHOD_INTERACTIONS = {
    "GET": "read",
    "HEAD": "read",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


@dataclass(frozen=True, slots=True)
class Attempt:
    """What a refused request on the data API attempted, as its AuditEvent names it."""

    interaction: str
    #: ``(type, id)`` only when both are valid (an id a converter refused is not named).
    entity: tuple[str, str] | None = None
    resource_type: str | None = None
    #: A type-level GET is a search: its query goes base64 into the AuditEvent.
    search: bool = False


def audits_failures(endpoint: str) -> Callable[[FailureAuditor], FailureAuditor]:
    """Register the auditor of ``endpoint``'s failed attempts (its route module does)."""

    def register(auditor: FailureAuditor) -> FailureAuditor:
        FAILURE_AUDITORS[endpoint] = auditor
        return auditor

    return register


def unmatched_attempt(method: str, path: str) -> Attempt | None:
    """What a request on the data API attempted; None off it or on a published resource.

    Pure (a function of the method and the decoded path), for requests no route
    matched or whose endpoint does not audit itself: ``/fhir/<Type>/<id>`` names the
    entity when type and id are valid, ``/fhir/<Type>`` is a search (GET) or a
    type-level interaction, ``$name`` an operation; the method gives the rest.
    """
    if not path.startswith(DATA_SURFACE) and path not in ("/v1", "/fhir"):
        return None
    interaction = METHOD_INTERACTIONS.get(method, "operation")
    if not path.startswith("/fhir/"):
        return Attempt(interaction)
    segments = path.removeprefix("/fhir/").split("/")
    if segments[0] in PUBLISHED:
        return None
    if segments[-1].startswith("$"):
        interaction = "operation"
    if not _RESOURCE_TYPE.fullmatch(segments[0]):
        return Attempt(interaction)
    resource_type = segments[0]
    if len(segments) == 1 or segments[1] == "":
        search = interaction == "read"
        return Attempt("search-type" if search else interaction, None, resource_type, search)
    entity = (resource_type, segments[1]) if _ID.fullmatch(segments[1]) else None
    return Attempt(interaction, entity, resource_type)


class FhirIdConverter(BaseConverter):
    """A FHIR id (``[A-Za-z0-9-.]{1,64}``): ``$triage`` and other operations never match."""

    regex = ID_TEXT


def exchange() -> Exchange:
    """The audit facts of the current request."""
    principal = g.get("principal") or g.get("former_principal")
    return Exchange(
        request_id=g.get("request_id") or str(uuid.uuid4()),
        client_address=request.remote_addr,
        software_version=software_version(),
        tenant=None if principal is None else principal.tenant,
        client_id=None if principal is None else principal.client_id,
    )


def recording(state: object) -> Recording:
    """How the triage of this request is kept (store, setting, audit facts, key)."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidParameterError(
            "Idempotency-Key", "Idempotency-Key must be 1 to 255 visible ASCII characters"
        )
    return Recording(
        store=state.store,  # type: ignore[attr-defined]
        keep=state.settings.store_assessments,  # type: ignore[attr-defined]
        exchange=exchange(),
        canonical_base=state.fhir.canonical_base,  # type: ignore[attr-defined]
        idempotency_key=key,
        report_link=report_url if state.settings.store_assessments else None,  # type: ignore[attr-defined]
    )


@lru_cache(maxsize=64)
def _host_base(scheme: str, host: str) -> str:
    return get_current_url(scheme, host).rstrip("/")


def host_base_url() -> str:
    """``request.host_url`` without its trailing slash, e.g. ``http://api.example:8000``.

    werkzeug rebuilds ``host_url`` for every request (an IRI round trip of the URL,
    ~15 µs); it is a pure function of the scheme and the (validated) host, which a
    partner sends alike on every call, so it is computed once per pair.
    """
    return _host_base(request.scheme, request.host)


def report_url(bundle_id: str) -> str:
    """A fresh signed link to the clinician report of a stored assessment (issue 14).

    Based at ``public_base_url`` when configured, else at the host the client used.
    """
    state = app_state()
    base = state.settings.public_base_url or host_base_url()
    # An API client holds the link it is handed; an EHR's (CDS Hooks) stays the issuer's.
    principal = None if request.endpoint in EHR_ENDPOINTS else g.get("principal")
    return report_link(
        state.links,
        base,
        bundle_id,
        now=int(time.time()),
        seconds=state.settings.report_link_seconds,
        holder=None if principal is None else principal.client_id,
    )


def report_link_header(bundle_id: str) -> dict[str, str]:
    """The ``Link`` header naming an assessment's report; none when storage is off."""
    if not app_state().settings.store_assessments:
        return {}
    return {"Link": link_header(report_url(bundle_id))}


def stored_response(stored: StoredTriage, fhir_version: str) -> Response:
    """The triage answer: the Bundle as stored, and where to read it again."""
    g.audited = True  # save_triage wrote the create AuditEvent with the assessment
    headers = {}
    if stored.stored:
        url = f"{host_base_url()}/fhir/Bundle/{stored.bundle_id}"
        headers = {"Location": url, "Content-Location": url, "ETag": VERSION_ETAG}
        if stored.report_url is not None:
            headers["Link"] = link_header(stored.report_url)
    return Response(stored.body, headers=headers, content_type=fhir_content_type(fhir_version))


def etag_matches(etag: str) -> bool:
    """``If-None-Match`` names ``etag`` (or ``*``)."""
    wanted = request.headers.get("If-None-Match")
    if not wanted:
        return False
    tags = {tag.strip() for tag in wanted.split(",")}
    return "*" in tags or etag in tags or etag.removeprefix("W/") in tags


def conditional_response(
    body: bytes, fhir_version: str, etag: str, last_updated_us: int | None = None
) -> Response:
    """The body with its ETag (and Last-Modified), or 304 when the client has it."""
    headers = {"ETag": etag}
    if last_updated_us is not None:
        headers["Last-Modified"] = http_date(last_updated_us / 1_000_000)
    if etag_matches(etag) or _not_modified_since(last_updated_us):
        return Response(status=304, headers=headers)
    return Response(body, headers=headers, content_type=fhir_content_type(fhir_version))


def _not_modified_since(last_updated_us: int | None) -> bool:
    """``If-Modified-Since`` is at or after the resource's last change (RFC 9110 §13.1.3).

    Ignored when ``If-None-Match`` is sent (the ETag decides) or the date is not an
    HTTP date. ``Last-Modified`` has whole seconds, ``meta.lastUpdated`` milliseconds:
    the comparison is in whole seconds, so a client sending back the ``Last-Modified``
    it was given gets its 304.
    """
    since = request.if_modified_since
    if last_updated_us is None or since is None or "If-None-Match" in request.headers:
        return False
    return last_updated_us // 1_000_000 <= int(since.timestamp())


def audited(entity: tuple[str, str] | None = None) -> None:
    """Mark the request's success as audited by the service; name what a failure touched."""
    if entity is not None:
        g.audit_entity = entity
    else:
        g.audited = True


def _request_id() -> None:
    """An id for an app without ``api.serving``, which otherwise sets it once."""
    if not g.get("request_id"):  # an app without api.serving (never in create_app)
        g.request_id = str(uuid.uuid4())


def _finish(response: Response) -> Response:
    """Name the request id, and audit a failed attempt on patient data."""
    request_id = g.get("request_id")
    if request_id:
        response.headers["X-Request-ID"] = request_id
    status = response.status_code
    if status < 400 or g.get("audited"):
        return response
    endpoint = request.endpoint or ""
    interaction = AUDITED_FAILURES.get(endpoint)
    attempt = None
    if interaction is None:
        attempt = _refused_attempt(endpoint, status)
        if attempt is None:
            return response
        interaction = attempt.interaction
    if status == 503:
        # The store is what failed: log the attempt (no PHI) instead of auditing it.
        logger.warning("unaudited %s attempt %s: store unavailable", interaction, request_id)
        return response
    if g.get("principal") is None and not anonymous_audit_admitted():
        _over_anonymous_budget(interaction)
        return response
    try:
        auditor = FAILURE_AUDITORS.get(endpoint)
        if auditor is not None:
            auditor(status)
        elif attempt is not None:
            audit(
                app_state().store,
                exchange(),
                interaction,
                status,
                entity=attempt.entity,
                query=request.query_string if attempt.search else None,
                resource_type=attempt.resource_type,
            )
        else:
            audit(
                app_state().store,
                exchange(),
                interaction,
                status,
                entity=g.get("audit_entity"),
                query=request.query_string if interaction == "search-type" else None,
                resource_type=(request.view_args or {}).get("resource_type"),
            )
    except StorageUnavailableError:
        logger.warning("unaudited failed %s attempt %s: store unavailable", interaction, request_id)
    return response


#: Per process: when the last "over the anonymous audit budget" warning was logged.
_budget_warned = [0.0]
#: Seconds between two such warnings of one process (a flood logs one line a minute).
BUDGET_WARNING_SECONDS = 60.0


def _over_anonymous_budget(interaction: str) -> None:
    """An anonymous refusal left unaudited: say so in the log, once a minute at most."""
    now = time.monotonic()
    if now - _budget_warned[0] >= BUDGET_WARNING_SECONDS:
        _budget_warned[0] = now
        logger.warning(
            "anonymous %s refusals over TWITCH_TRIAGE_ANONYMOUS_AUDIT_LIMIT: refused, "
            "not audited (this warning repeats at most once a minute)",
            interaction,
        )


def _refused_attempt(endpoint: str, status: int) -> Attempt | None:
    """The attempt to audit of a refusal on an endpoint not in AUDITED_FAILURES.

    Only on the data API, never on a public endpoint, and only for an identified
    caller: the gate's principal, or for a 405 (which the gate answers without
    authenticating) the client the bearer credential names. Anonymous refusals are
    not audited (nobody to audit them for; a flood of them would fill the trail);
    they are counted in ``twitch_triage_http_requests_total`` (route ``<unmatched>``
    when no route matched).
    """
    if endpoint in PUBLIC_ENDPOINTS:
        return None
    attempt = unmatched_attempt(request.method, request.path)
    if attempt is None:
        return None
    if g.get("principal") is None:
        if g.get("former_principal") is not None:
            return attempt  # a revoked, expired or retired credential of a known client
        if status != 405:
            return None
        try:
            principal = bearer_principal()
        except StorageUnavailableError:
            logger.warning("unaudited %s attempt: store unavailable", attempt.interaction)
            return None
        if principal is None:
            return None
        g.principal = principal
    return attempt


def _unavailable(exc: StorageUnavailableError) -> Response:
    logger.warning(
        "store unavailable (%s) on %s %s",
        exc,
        loggable_method(request.method),
        loggable_request_path(),  # never the path as sent: it can hold patient text
    )
    error = ServiceUnavailableError(
        "the assessment store is unavailable; nothing was stored, retry after a pause"
    )
    return error_response(503, error.issues(), error.headers())


def install(app: Flask) -> None:
    """The converter, the request-id and audit hooks and the 503 handler (before routes)."""
    app.url_map.converters["fhir_id"] = FhirIdConverter
    app.before_request(_request_id)
    app.after_request(_finish)
    app.register_error_handler(StorageUnavailableError, _unavailable)


__all__ = [
    "AUDITED_FAILURES",
    "VERSION_ETAG",
    "Attempt",
    "audited",
    "audits_failures",
    "conditional_response",
    "exchange",
    "host_base_url",
    "install",
    "recording",
    "report_link_header",
    "report_url",
    "stored_response",
    "unmatched_attempt",
]
