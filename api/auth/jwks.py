"""Public signing keys of SMART clients and EHRs: one rule for registration and use.

SMART Backend Services (client-confidential-asymmetric): the client "SHALL
register the public key", "each JWK SHALL represent an asymmetric key", ``kid``
unique in the set. RFC 7518 §3.3: RS384 needs an RSA key of 2048 bits or more.
ES384 is P-384 (§3.4). A private member (``d``, ``p`` …) or a symmetric key
(``k``) means a secret left its owner: refused at registration, and a key set
fetched from a URL that holds one is refused as a whole (the caller answers
``invalid_client`` / 401), never used, never a 500.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

#: JWK members that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4).
PRIVATE_MEMBERS = frozenset(("d", "p", "q", "dp", "dq", "qi", "oth", "k"))
#: RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used" with RS384.
MIN_RSA_BITS = 2048
#: The algorithm each accepted key type signs with (README: RS384 or ES384).
ALGORITHM_OF = {"RSA": "RS384", "EC": "ES384"}


class KeySetError(ValueError):
    """Why a JWK Set cannot be registered or used (names the offending key)."""


def _check_key(index: int, key: Any) -> Any:
    """The public key object of JWK ``key``, or :class:`KeySetError` saying what is wrong."""
    import jwt  # noqa: PLC0415 (PyJWT's crypto backend loads on first use)

    where = f"keys[{index}]"
    if not isinstance(key, dict):
        raise KeySetError(f"{where} is not a JSON object")
    if PRIVATE_MEMBERS & key.keys():
        raise KeySetError(f"{where} holds private or symmetric key material: refused")
    kty = key.get("kty")
    if kty not in ALGORITHM_OF:
        raise KeySetError(f"{where} must be an RSA or EC (P-384) public key, not {kty!r}")
    if not isinstance(key.get("kid"), str) or not key["kid"]:
        raise KeySetError(f"{where} needs a kid (a signed JWT names its key by kid)")
    if key.get("use") not in (None, "sig"):
        raise KeySetError(f"{where} is not a signing key (use {key.get('use')!r})")
    if key.get("alg") not in (None, ALGORITHM_OF[kty]):
        raise KeySetError(f"{where} is for {key.get('alg')!r}, not {ALGORITHM_OF[kty]}")
    if kty == "EC" and key.get("crv") != "P-384":
        raise KeySetError(f"{where} must be on curve P-384 (ES384), not {key.get('crv')!r}")
    try:
        public = jwt.PyJWK(key, algorithm=ALGORITHM_OF[kty]).key
    except jwt.PyJWTError as exc:
        raise KeySetError(f"{where} is not a usable {ALGORITHM_OF[kty]} key: {exc}") from None
    if kty == "RSA" and public.key_size < MIN_RSA_BITS:
        raise KeySetError(
            f"{where} is a {public.key_size}-bit RSA key: RS384 needs {MIN_RSA_BITS} bits or more"
        )
    return public


def public_signing_key(key: Any, algorithm: str) -> Any | None:
    """The key to verify an ``algorithm`` signature with, or None if ``key`` is not one we
    accept (private, symmetric, too short, another curve or algorithm).

    For key sets read at use time (a JWKS URL, a set stored before these checks): such
    a key is never used, and the caller refuses the token as it would an unknown kid.
    """
    if not isinstance(key, dict) or ALGORITHM_OF.get(key.get("kty")) != algorithm:
        return None
    try:
        return _check_key(0, key)
    except KeySetError:
        return None


def keys_named(jwks: Any, kid: str) -> list[dict[str, Any]]:
    """The JWKs of a key set (as read at use time: anything) whose ``kid`` is ``kid``."""
    entries = jwks.get("keys") if isinstance(jwks, dict) else None
    return [
        entry
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, dict) and entry.get("kid") == kid
    ]


def check_public_jwks(jwks: Any) -> None:
    """Raise :class:`KeySetError` unless ``jwks`` is a set of public signing keys we accept."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise KeySetError("a JWK Set is a JSON object with a non-empty 'keys' array")
    kids: set[str] = set()
    for index, key in enumerate(jwks["keys"]):
        _check_key(index, key)
        if key["kid"] in kids:
            raise KeySetError(f"keys[{index}] repeats kid {key['kid']!r}: a kid names one key")
        kids.add(key["kid"])


def loopback_host(host: str | None) -> bool:
    """Whether ``host`` names only this machine: ``localhost``, or an IP literal in
    127.0.0.0/8 or ``::1`` (with or without the brackets of a URL's authority)."""
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def https_or_loopback(url: str) -> bool:
    """Whether keys (or tokens) may travel to ``url``: https, or http on this machine only.

    Whoever can change what a plain-http key-set URL answers can sign as the client or
    EHR; loopback http stays allowed for tests and a local sidecar.
    """
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.netloc:
        return True
    return parts.scheme == "http" and loopback_host(parts.hostname)


__all__ = [
    "ALGORITHM_OF",
    "MIN_RSA_BITS",
    "PRIVATE_MEMBERS",
    "KeySetError",
    "check_public_jwks",
    "https_or_loopback",
    "keys_named",
    "loopback_host",
    "public_signing_key",
]
