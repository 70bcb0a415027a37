"""GET a JSON document from another system (an EHR's FHIR server, a JWKS URL), safely.

A short timeout, a size cap, and redirects followed only within the same origin
(scheme, host and port): a FHIR server or key URL that redirects elsewhere is
refused, so a bearer token is never sent to a host it was not issued for.
stdlib ``urllib`` (cooperative under the gevent worker, which patches sockets).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from schemas import numbers

#: Seconds to wait for the other system (CDS Hooks asks for answers in about 500 ms).
TIMEOUT_SECONDS = 3.0
#: Largest document read (a searchset of one QuestionnaireResponse is a few KiB).
MAX_BYTES = 1 << 20


class FetchError(Exception):
    """The document could not be had; the message names why (never a credential)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise FetchError("answered JSON with a duplicate key in one object")
    return dict(pairs)


def _check_unique_keys(data: bytes) -> None:
    """FetchError when an object of ``data`` (JSON orjson accepted) repeats a key.

    orjson keeps the last of duplicate keys silently: ``{"entry": [intake], "entry": []}``
    would read as a search that found nothing. RFC 8259 leaves duplicates to the reader;
    FHIR JSON allows none.
    """
    try:
        json.loads(data, object_pairs_hook=_unique_keys)
    except RecursionError:  # orjson's depth limit is 1024, the stdlib's stack may be less
        raise FetchError("answered JSON nested too deeply") from None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to the origin of the first request."""

    def __init__(self, origin: tuple[str, str]) -> None:
        self.origin = origin

    def redirect_request(  # noqa: PLR0917 (urllib's own signature)
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Any:
        if _origin(newurl) != self.origin:
            raise FetchError(f"redirected to another host (HTTP {code}); not followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@dataclass(frozen=True, slots=True)
class Fetched:
    """A JSON document and the response's header fields (names in lower case; a field
    sent on several lines is one value, its lines joined by ", " as RFC 9110 §5.3 allows)."""

    body: Any
    headers: Mapping[str, str]


def header_fields(message: Any) -> dict[str, str]:
    """An answer's header fields (an ``http.client.HTTPMessage``): names in lower case, a
    field sent on several lines one value, its lines joined by ", " (RFC 9110 §5.3)."""
    return {name.lower(): ", ".join(message.get_all(name) or ()) for name in set(message.keys())}


def fetch_json(
    url: str,
    *,
    bearer: str | None = None,
    accept: str = "application/json",
    timeout: float = TIMEOUT_SECONDS,
    unique_keys: bool = False,
) -> Fetched:
    """The decoded JSON at ``url`` and the answer's headers (a cache reads Cache-Control);
    FetchError on any failure (status, size, JSON, time; with ``unique_keys``, a key
    repeated in one object)."""
    origin = _origin(url)
    if origin[0] not in ("http", "https") or not origin[1]:
        raise FetchError("not an http(s) URL")
    opener = urllib.request.build_opener(_SameOriginRedirects(origin))
    request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310 (http(s) only)
    if bearer is not None:
        request.add_header("Authorization", f"Bearer {bearer}")  # same origin only
    try:
        with opener.open(request, timeout=timeout) as answer:
            data = answer.read(MAX_BYTES + 1)
            headers = header_fields(answer.headers)
    except urllib.error.HTTPError as exc:
        raise FetchError(f"answered HTTP {exc.code}") from None
    except FetchError:
        raise
    except (OSError, ValueError) as exc:  # refused, timed out, TLS, malformed URL
        raise FetchError(f"could not be reached ({type(exc).__name__})") from None
    if len(data) > MAX_BYTES:
        raise FetchError(f"answered more than {MAX_BYTES} bytes")
    try:
        body = numbers.loads(data)  # a long number keeps its side of every threshold
    except orjson.JSONDecodeError:
        raise FetchError("did not answer JSON") from None
    except RecursionError:  # a long number sends it through the stdlib decoder
        raise FetchError("answered JSON nested too deeply") from None
    if unique_keys:
        _check_unique_keys(data)
    return Fetched(body, headers)


def get_json(
    url: str,
    *,
    bearer: str | None = None,
    accept: str = "application/json",
    timeout: float = TIMEOUT_SECONDS,
    unique_keys: bool = False,
) -> Any:
    """The decoded JSON at ``url``; FetchError on any failure (status, size, JSON, time)."""
    return fetch_json(
        url, bearer=bearer, accept=accept, timeout=timeout, unique_keys=unique_keys
    ).body


__all__ = [
    "MAX_BYTES",
    "TIMEOUT_SECONDS",
    "FetchError",
    "Fetched",
    "fetch_json",
    "get_json",
    "header_fields",
]
