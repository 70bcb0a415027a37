"""The FHIR servers an EHR may name as ``fhirServer``: one spelling for registration and calls.

The service fetches an intake only from a FHIR base URL the operator registered for the
calling EHR (``twitch-triage ehrs register --fhir-server URL``); anything else a hook
request names is never contacted, so an EHR cannot make this server send requests (and
its bearer token) to loopback ports, metadata addresses or internal hosts. Registration
and the check compare the same normal form (:func:`fhir_base`), so a trailing slash or
the case of the host makes no difference, and nothing ambiguous (user info, a query, a
fragment, blanks) is ever accepted. No Flask.
"""

from __future__ import annotations

from urllib.parse import urlsplit

#: Longest FHIR base URL accepted (registered or named by a request).
MAX_URL_LENGTH = 2048
#: Most FHIR servers one EHR may have registered.
MAX_SERVERS = 10

_DEFAULT_PORTS = {"http": 80, "https": 443}

#: How an operator lets an EHR's ``fhirServer`` be used (named in the 412).
REGISTER_HINT = "twitch-triage ehrs register --tenant T --iss ISS ... --fhir-server URL"


def fhir_base(url: str) -> str:
    """The normal form of a FHIR base URL; ValueError naming why there is none.

    ``scheme://host[:port]/path``: scheme and host lower-cased, the default port
    dropped, no trailing slash. Refused: not http(s), no host, user info, a query
    or fragment (even an empty one), blanks or control or non-ASCII characters,
    more than :data:`MAX_URL_LENGTH` characters.
    """
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"is longer than {MAX_URL_LENGTH} characters")
    if not url.isascii() or any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise ValueError("holds blanks, control or non-ASCII characters")
    if "?" in url or "#" in url:
        raise ValueError("must not have a query or fragment")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("must be an http(s) URL")
    if "@" in parts.netloc:
        raise ValueError("must not hold user info (user:password@)")
    host = parts.hostname
    if not host:
        raise ValueError("names no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


__all__ = ["MAX_SERVERS", "MAX_URL_LENGTH", "REGISTER_HINT", "fhir_base"]
