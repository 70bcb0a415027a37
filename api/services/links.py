"""Signed, expiring browser links: one assessment's report, one intake form.

A browser holds no API key, so the link itself is the credential: the resource
id, an expiry and an HMAC-SHA256 over both, bound to a purpose so a report
signature never opens an intake page (or the reverse). Verification is constant
time; an altered, expired or foreign link is indistinguishable from one that
never existed (the page answers 404 and leaks nothing).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote_plus

#: Purposes a link may be signed for.
REPORT = "report"
INTAKE = "intake"
_PURPOSES = frozenset({REPORT, INTAKE})

#: Name of the generated secret in the instance folder (embedded default).
SECRET_FILE = "link-secret"  # noqa: S105 (a file name, not a secret)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class SignedLink:
    """The parts of one signed link; ``query`` is what follows ``?`` in its URL."""

    subject: str
    expires: int
    signature: str

    @property
    def query(self) -> str:
        # What urlencode({"expires": …, "signature": …}) gives, without its generic walk.
        return f"expires={quote_plus(str(self.expires))}&signature={quote_plus(self.signature)}"


@dataclass(frozen=True, slots=True)
class LinkSigner:
    """Signs and checks links with one deployment secret."""

    secret: bytes
    #: HMAC-SHA256 keyed with ``secret`` and fed nothing yet: each MAC copies it
    #: instead of deriving the padded keys again (a triage signs a link per answer).
    _keyed: hmac.HMAC = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_keyed", hmac.new(self.secret, digestmod=hashlib.sha256))

    def _mac(self, purpose: str, subject: str, expires: int) -> str:
        if purpose not in _PURPOSES:
            raise ValueError(f"unknown link purpose {purpose!r}")
        mac = self._keyed.copy()
        mac.update(f"{purpose}\n{subject}\n{expires}".encode())
        return _b64(mac.digest())

    def sign(self, purpose: str, subject: str, expires: int) -> SignedLink:
        """A link to ``subject`` (an id) for ``purpose``, valid until ``expires`` (Unix s)."""
        return SignedLink(subject, expires, self._mac(purpose, subject, expires))

    def verify(
        self, purpose: str, subject: str, expires: object, signature: object, *, now: int
    ) -> bool:
        """True only for an unaltered, unexpired link to ``subject`` for ``purpose``.

        ``expires`` and ``signature`` come straight from the query string and may be
        anything (missing, not digits, huge): every such case is simply False.
        """
        if not isinstance(expires, str) or not isinstance(signature, str):
            return False
        # ASCII digits only: str.isdigit() also takes "¹" (int() then raises: a 500) and
        # other scripts' digits (another spelling of the expiry than the one signed).
        if not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
            return False
        # The signed spelling only: int() reads "0179…" as the signed "179…", so a link
        # altered with leading zeros would open under the genuine signature.
        if len(expires) > 1 and expires[0] == "0":
            return False
        if len(signature) > 64:
            return False
        expected = self._mac(purpose, subject, int(expires))
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            return False
        return int(expires) > now


def load_signer(configured: str, instance_path: str) -> LinkSigner:
    """The configured secret, else the instance folder's (created once, mode 0600).

    Several processes may start at once (gunicorn workers without preload): the
    file is created exclusively, and whoever loses the race reads the winner's.
    """
    if configured:
        return LinkSigner(configured.encode("utf-8"))
    path = Path(instance_path) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
    secret = ""
    for _attempt in range(50):  # the winner of the race may still be writing it
        secret = path.read_text(encoding="ascii").strip()
        if len(secret) >= 32:
            break
        time.sleep(0.02)
    if len(secret) < 32:
        raise RuntimeError(f"{path} holds no usable link secret; delete it to make a new one")
    return LinkSigner(secret.encode("utf-8"))


__all__ = ["INTAKE", "REPORT", "SECRET_FILE", "LinkSigner", "SignedLink", "load_signer"]
