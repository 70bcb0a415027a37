"""Raw HTTP/1.1 over a socket, for what an HTTP client library will not send.

Truncated bodies, garbage request lines, oversized heads, slow clients: the
serving tests (``test_serving_http``, ``test_server_resilience``) and the
deployment test (``test_deploy_topology``, over TLS to nginx) write bytes
themselves and read the answer with these helpers. Every socket has a timeout.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator

HOST = "127.0.0.1"


@contextlib.contextmanager
def connection(
    port: int, timeout: float = 5.0, *, tls: ssl.SSLContext | None = None, host: str = HOST
) -> Iterator[socket.socket]:
    """A connected socket (TLS-wrapped when ``tls`` is given), closed afterwards."""
    sock: socket.socket = socket.create_connection((host, port), timeout=timeout)
    try:
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=host)
        yield sock
    finally:
        sock.close()


def read_until_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (for requests that ask it to close)."""
    chunks = []
    # A reset or a TLS peer that closes without close_notify still ends the answer.
    with contextlib.suppress(ConnectionResetError, ssl.SSLEOFError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status and headers (names lower-cased) of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def read_one_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response (Content-Length framed), or what came before the server closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


__all__ = ["HOST", "connection", "parse_head", "read_one_response", "read_until_close"]
