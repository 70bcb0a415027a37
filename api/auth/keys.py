"""API keys and access tokens: random, prefixed, stored only as SHA-256 hashes.

A key is ``tt_`` + ``secrets.token_urlsafe(32)`` (256 bits of entropy): with
that much entropy an unsalted SHA-256 is as good as a slow password hash (no
guessing is feasible), and it lets a request find its client with one indexed
lookup. The prefixes make a leaked key recognisable by secret scanners.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from schemas import unsafe_character

API_KEY_PREFIX = "tt_"
ACCESS_TOKEN_PREFIX = "tta_"  # noqa: S105 (a public prefix, not a secret)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def new_access_token() -> str:
    return ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_client_id() -> str:
    return str(uuid.uuid4())


def secret_hash(secret: str) -> str:
    """SHA-256 (hex) of a key or token: what the store keeps and looks up."""
    return hashlib.sha256(secret.encode()).hexdigest()


__all__ = [
    "ACCESS_TOKEN_PREFIX",
    "API_KEY_PREFIX",
    "new_access_token",
    "new_api_key",
    "new_client_id",
    "secret_hash",
]


def plain_claim(value: Any, longest: int) -> bool:
    """A JWT claim fit to look up and store (``iss``, ``kid``, ``jti``): a string of 1 to
    ``longest`` characters, none a control character or an unpaired surrogate.

    Claims are read before the signature is checked, and PostgreSQL text and UTF-8
    cannot hold those characters: looked up as they were, they failed the request
    with a 500 instead of the 401 any unusable token gets.
    """
    return isinstance(value, str) and 1 <= len(value) <= longest and unsafe_character(value) is None


def malformed_date_claim(claims: Mapping[str, Any]) -> str | None:
    """The first of ``exp``, ``iat``, ``nbf`` present but not a JSON number, or None.

    RFC 7519 §2 makes these NumericDates (JSON numbers). PyJWT also takes a string
    of digits (it converts with ``int()``); no conforming signer makes one, so such
    a token is refused like any malformed one.
    """
    for name in ("exp", "iat", "nbf"):
        if name in claims:
            value = claims[name]
            if type(value) not in (int, float) or not math.isfinite(value):
                return name
    return None
