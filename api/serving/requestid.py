"""Request ids: a sane client ``X-Request-Id`` is kept, anything else replaced.

The id travels in ``flask.g.request_id`` (read it with :func:`current_request_id`,
e.g. for the future AuditEvent), in every log line written while the request is
handled, in the ``X-Request-Id`` response header and in the incident of a 500.
"""

from __future__ import annotations

import re
import uuid

from flask import g, has_request_context

REQUEST_ID_HEADER = "X-Request-Id"
#: What we accept from a client: short, and nothing that could forge a log line or a
#: header (no spaces, quotes, control characters). Anything else gets a fresh id.
_SANE = re.compile(r"[A-Za-z0-9._:-]{8,64}")  # 64: the stored request id column


def accepted_request_id(raw: str | None) -> str:
    """The client's id when it is sane, else a new random UUID (36 characters)."""
    if raw is not None and _SANE.fullmatch(raw):
        return raw
    return str(uuid.uuid4())


def current_request_id() -> str | None:
    """The id of the request being handled, or None outside a request."""
    if not has_request_context():
        return None
    return g.get("request_id")


__all__ = ["REQUEST_ID_HEADER", "accepted_request_id", "current_request_id"]
