"""The gunicorn worker of ``twitch-triage serve``: gevent, bounded reads, FHIR errors.

Why gevent: the app is CPU-light per request (~1 ms) but a sync worker is held
for as long as a client takes to send, so two slow clients starved the service
(issue 12). A gevent worker waits for every connection cooperatively: a slow
or idle client costs one greenlet, not a worker. The waits are bounded: the
request line and headers (and an idle keep-alive connection's next request)
must arrive within ``header_timeout`` (gunicorn's ``keepalive``, which its
gevent worker applies to every request head), and each read of the body
within ``body_timeout`` (a socket timeout; the app answers 400). Connections are
closed after each answer unless ``keep_alive`` is set (see ``handle_request``).

gunicorn answers malformed HTTP itself (400, 414, 431, 417 ...) with an HTML
page written by ``gunicorn.util.write_error``, and offers no hook for it. This
worker replaces that one function in its own process with one that writes
the same status as a FHIR OperationOutcome, so the README's promise holds.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from http import HTTPStatus
from typing import Any

import orjson
from gunicorn import util
from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker

from api.fhir.outcome import Issue, operation_outcome
from api.fhir.versions import DEFAULT_FHIR_VERSION
from api.responses import fhir_content_type
from api.serving.config import ServingSettings
from api.serving.requestid import REQUEST_ID_HEADER, accepted_request_id
from schemas import IssueType

#: Issue type of each status gunicorn answers by itself.
_ISSUE_TYPES = {
    400: IssueType.STRUCTURE,
    403: IssueType.PROCESSING,
    414: IssueType.TOO_COSTLY,
    417: IssueType.NOT_SUPPORTED,
    431: IssueType.TOO_COSTLY,
    501: IssueType.NOT_SUPPORTED,
}


def operation_outcome_error(status_int: int, reason: str, mesg: str) -> bytes:
    """A complete HTTP/1.1 error response whose body is a FHIR OperationOutcome."""
    code = _ISSUE_TYPES.get(status_int, IssueType.EXCEPTION)
    # gunicorn keeps "Bad Request" as the reason of its 501 (an unsupported
    # Transfer-Encoding): the status line says what the status means.
    with contextlib.suppress(ValueError):
        reason = HTTPStatus(status_int).phrase
    if status_int >= 500 and status_int != HTTPStatus.NOT_IMPLEMENTED:
        # Never echo internals; gunicorn logged the details.
        diagnostics = "an internal error occurred and the request was not processed"
    else:  # a client error (501: what the client asked for is not supported)
        diagnostics = f"{reason}: {mesg}" if mesg else reason
    outcome = operation_outcome(
        [Issue(code, diagnostics[:500])], summary=f"The request was not processed: {reason}."
    )
    body = orjson.dumps(outcome)
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {fhir_content_type(DEFAULT_FHIR_VERSION)}\r\n"
        f"{REQUEST_ID_HEADER}: {accepted_request_id(None)}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def write_operation_outcome(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """Drop-in for ``gunicorn.util.write_error``."""
    util.write_nonblock(sock, operation_outcome_error(status_int, reason, mesg))


def install_error_writer() -> None:
    """Make gunicorn's own error answers OperationOutcomes (in this process)."""
    util.write_error = write_operation_outcome


def skip_unlogged_record_fields() -> None:
    """Stop every log record of this worker looking up facts no line of ours holds.

    The logging HOWTO's "Optimization" switches: the calling thread (under gevent
    every connection is a new greenlet, for which ``threading.current_thread()``
    builds a dummy Thread: ~20 µs per access line, measured), the
    multiprocessing process name and the caller's source line (a stack walk).
    :class:`api.serving.logs.JsonFormatter`, the format of every line this worker
    writes, uses none of them; the pid it logs is kept (``logProcesses``).
    """
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # the documented switch for the caller lookup


class TriageGeventWorker(GeventWorker):
    """gunicorn's gevent worker with a per-read body timeout and FHIR error pages."""

    def init_process(self) -> None:
        install_error_writer()
        skip_unlogged_record_fields()
        settings = ServingSettings.load()
        self.body_timeout = float(settings.body_timeout)
        self.keep_alive = bool(settings.keep_alive)
        super().init_process()

    def handle(self, listener: Any, client: socket.socket, addr: Any) -> None:
        # GeventWorker.handle makes the socket blocking; we bound each read instead.
        client.settimeout(self.body_timeout)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        AsyncWorker.handle(self, listener, client, addr)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> None:
        if not self.keep_alive:
            # Answer with "Connection: close". A kept-alive connection stays with the
            # worker that accepted it, so under load a worker holding more of them
            # serves them late (measured: p99 0.4-0.9 s against 35-100 ms when
            # closing, at the same throughput); a new connection goes to whichever
            # worker accepts first, as with the sync model.
            req.must_close = True
        super().handle_request(listener_name, req, sock, addr)


__all__ = [
    "TriageGeventWorker",
    "install_error_writer",
    "operation_outcome_error",
    "skip_unlogged_record_fields",
]
