"""The base URL a token's ``aud`` is checked against (SMART assertions, EHR JWTs).

RFC 7523 §3: the ``aud`` of a client assertion identifies the authorization server;
CDS Hooks: the EHR's JWT names the service URL called. Both exist so that a token made
for another server cannot be replayed here. The ``Host`` header is the caller's to
choose, so an audience taken from it accepts a token minted for any host the caller
names (an authorization review replayed a staging deployment's assertion with
``Host: staging…``). The audience is therefore ``TWITCH_TRIAGE_PUBLIC_BASE_URL`` when
set; without it, the request's host URL only when its host is this machine as seen by
the connection: a loopback name, or the local IP address the client connected to.
A DNS name is never trusted from the header: set the public base URL.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import request

from api.auth.jwks import loopback_host
from api.config import app_state

#: Why an audience cannot be checked (said in the refusal, so the operator knows the fix).
UNCHECKABLE = (
    "this server cannot check a token's aud: TWITCH_TRIAGE_PUBLIC_BASE_URL is not set "
    "and the Host header names neither a loopback name nor the address connected to"
)


def _connected_address() -> str | None:
    """The local IP address of this connection (gunicorn hands the socket over)."""
    sock = request.environ.get("gunicorn.socket")
    if sock is None:
        return None
    try:
        return str(sock.getsockname()[0])
    except (OSError, IndexError, TypeError):
        return None


def audience_base() -> str | None:
    """The base URL tokens must name, or None when it cannot be known (see the module)."""
    configured: str = app_state().settings.public_base_url
    if configured:
        return configured
    hostname = urlsplit(f"//{request.host}").hostname
    if loopback_host(hostname) or (hostname is not None and hostname == _connected_address()):
        return request.host_url.rstrip("/")
    return None


__all__ = ["UNCHECKABLE", "audience_base"]
