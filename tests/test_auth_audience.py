"""A token's ``aud`` is checked against a base URL the caller cannot choose.

Found by an authorization review: without ``TWITCH_TRIAGE_PUBLIC_BASE_URL`` the audience
followed the ``Host`` header, so a SMART client assertion and an EHR's CDS Hooks JWT
minted for another deployment (``staging…``) were accepted when the caller sent
``Host: staging…``: the replay ``aud`` exists to stop. Now the Host header counts only
when it names this machine as the connection sees it (a loopback name, or the local
address connected to); otherwise the public base URL must be set.
"""

from __future__ import annotations

import contextlib
import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cds_support import SERVICE, Ehr, hook_request, register
from conftest import anonymous, create_app
from flask import Flask
from test_auth_smart import ASSERTION_TYPE, RSA_KEY, assertion, jwks_of

from api.auth.audience import UNCHECKABLE, audience_base
from api.auth.clients import create_client
from api.config import EXTENSION

STAGING = "staging.twitch-triage.example"


def _smart_app(**config: Any) -> tuple[Flask, str]:
    app = create_app({"TESTING": True, **config})
    reader = create_client(
        app.extensions[EXTENSION].clients,
        tenant="smart",
        scopes=["system/Bundle.r"],
        jwks=jwks_of(RSA_KEY, "rsa-1", "RS384"),
    )
    return app, reader.client_id


def _token(app: Flask, client_id: str, aud: str, host: str) -> Any:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(client_id, aud=aud),
    }
    return anonymous(app).post("/auth/token", data=form, base_url=f"http://{host}")


def test_a_smart_assertion_for_another_host_is_refused_whatever_the_host_header():
    app, client_id = _smart_app()
    replayed = _token(app, client_id, f"http://{STAGING}/auth/token", STAGING)
    assert replayed.status_code == 401
    assert replayed.get_json()["error"] == "invalid_client"
    assert "TWITCH_TRIAGE_PUBLIC_BASE_URL" in replayed.get_json()["error_description"]
    # This machine by a loopback name still works without any setting (the README's
    # first command, tests, a local sidecar).
    for host in ("localhost", "127.0.0.1:8000", "[::1]:8000"):
        local = _token(app, client_id, f"http://{host}/auth/token", host)
        assert local.status_code == 200, (host, local.get_json())


def test_with_a_public_base_url_only_that_audience_is_accepted():
    app, client_id = _smart_app(PUBLIC_BASE_URL="https://triage.example")
    public = "https://triage.example/auth/token"
    assert _token(app, client_id, public, STAGING).status_code == 200
    assert _token(app, client_id, "http://localhost/auth/token", "localhost").status_code == 401


def test_an_ehr_jwt_for_another_host_is_refused_whatever_the_host_header():
    app = create_app({"TESTING": True})
    ehr = Ehr(f"https://ehr-{uuid.uuid4().hex[:8]}.example/fhir")
    register(app, ehr, "clinic-a")

    def called(host: str) -> Any:
        return anonymous(app).post(
            SERVICE,
            data=json.dumps(hook_request("p1", None)),
            content_type="application/json",
            headers={"Authorization": f"Bearer {ehr.token(f'http://{host}{SERVICE}')}"},
            base_url=f"http://{host}",
        )

    replayed = called(STAGING)
    assert replayed.status_code == 401
    assert UNCHECKABLE in replayed.get_json()["issue"][0]["diagnostics"]
    assert called("localhost").status_code == 200


@contextlib.contextmanager
def _connection_to(address: str) -> Iterator[socket.socket]:
    """The server side of a real TCP connection made to ``address`` on this machine."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind((address, 0))
        listener.listen(1)
        with socket.create_connection(listener.getsockname()[:2], timeout=5):
            accepted, _ = listener.accept()
            with accepted:
                yield accepted


def _local_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (none on an isolated sandbox)."""
    found = set()
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.add(str(info[4][0]))
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: only picks the route's address
        found.add(probe.getsockname()[0])
    return sorted(address for address in found if not address.startswith("127."))


@pytest.mark.parametrize("address", ["127.0.0.1", *_local_addresses()[:1]])
def test_the_host_header_counts_when_it_is_the_address_connected_to(address):
    """gunicorn hands the connection's socket to the app: a Host header naming the
    address the client really connected to is this server, whatever its name."""
    app = create_app({"TESTING": True})
    with _connection_to(address) as accepted:
        environ = {"gunicorn.socket": accepted}
        with app.test_request_context(
            "/auth/token", base_url=f"http://{address}:8000", environ_overrides=environ
        ):
            assert audience_base() == f"http://{address}:8000"
        with app.test_request_context(
            "/auth/token", base_url=f"http://{STAGING}:8000", environ_overrides=environ
        ):
            assert audience_base() is None
