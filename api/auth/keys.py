"""API keys and access tokens: random, prefixed, stored only as SHA-256 hashes.

A key is ``tt_`` + ``secrets.token_urlsafe(32)`` (256 bits of entropy): with
that much entropy an unsalted SHA-256 is as good as a slow password hash (no
guessing is feasible), and it lets a request find its client with one indexed
lookup. The prefixes make a leaked key recognisable by secret scanners.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
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
