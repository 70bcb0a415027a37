"""Signed browser links: only the unaltered, unexpired link for its purpose opens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import stat
from pathlib import Path
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.config import ConfigError, Settings
from api.services.links import INTAKE, REPORT, SECRET_FILE, LinkSigner, SignedLink, load_signer

SIGNER = LinkSigner(b"k" * 40)
NOW = 1_800_000_000


def test_a_fresh_link_opens_until_it_expires() -> None:
    link = SIGNER.sign(REPORT, "a1b2", NOW + 60)
    assert SIGNER.verify(REPORT, "a1b2", str(link.expires), link.signature, now=NOW)
    assert SIGNER.verify(REPORT, "a1b2", str(link.expires), link.signature, now=NOW + 59)
    assert not SIGNER.verify(REPORT, "a1b2", str(link.expires), link.signature, now=NOW + 60)
    assert link.query == f"expires={NOW + 60}&signature={link.signature}"


def test_a_link_is_bound_to_its_purpose_subject_and_secret() -> None:
    link = SIGNER.sign(REPORT, "a1b2", NOW + 60)
    expires = str(link.expires)
    assert not SIGNER.verify(INTAKE, "a1b2", expires, link.signature, now=NOW)
    assert not SIGNER.verify(REPORT, "a1b3", expires, link.signature, now=NOW)
    assert not SIGNER.verify(REPORT, "a1b2", str(NOW + 61), link.signature, now=NOW)
    other = LinkSigner(b"j" * 40)
    assert not other.verify(REPORT, "a1b2", expires, link.signature, now=NOW)
    with pytest.raises(ValueError, match="purpose"):
        SIGNER.sign("admin", "a1b2", NOW)


@given(expires=st.one_of(st.none(), st.integers(), st.text(max_size=30)), signature=st.text())
def test_any_altered_query_is_refused_never_raises(expires: object, signature: str) -> None:
    genuine = SIGNER.sign(REPORT, "a1b2", NOW + 60)
    if expires == str(genuine.expires) and signature == genuine.signature:
        return
    assert SIGNER.verify(REPORT, "a1b2", expires, signature, now=NOW) is False


@given(
    secret=st.binary(min_size=1, max_size=200),
    purpose=st.sampled_from([REPORT, INTAKE]),
    subject=st.text(max_size=80),
    expires=st.integers(min_value=0, max_value=10**12),
)
def test_a_signature_is_the_hmac_sha256_of_purpose_subject_and_expiry(
    secret: bytes, purpose: str, subject: str, expires: int
) -> None:
    """Signing reuses one keyed HMAC per signer; every MAC is still the plain HMAC."""
    signer = LinkSigner(secret)
    message = f"{purpose}\n{subject}\n{expires}".encode()
    expected = hmac.new(secret, message, hashlib.sha256).digest()
    for _ in range(2):  # the keyed state is copied, never consumed
        link = signer.sign(purpose, subject, expires)
        assert base64.urlsafe_b64decode(link.signature + "=") == expected


@given(expires=st.integers(), signature=st.text())
def test_a_query_is_what_urlencode_gives(expires: int, signature: str) -> None:
    link = SignedLink("a1b2", expires, signature)
    assert link.query == urlencode({"expires": expires, "signature": signature})


def test_the_embedded_secret_is_made_once_private_and_reused(tmp_path: Path) -> None:
    first = load_signer("", str(tmp_path))
    path = tmp_path / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_signer("", str(tmp_path)) == first
    assert load_signer("x" * 32, str(tmp_path)) != first


def test_a_short_configured_secret_stops_start_up() -> None:
    with pytest.raises(ConfigError, match="LINK_SECRET"):
        Settings.load(environ={"TWITCH_TRIAGE_LINK_SECRET": "short"})


#: str.isdigit() holds for each: superscripts, Arabic-Indic and fullwidth digits of NOW + 60.
OTHER_DIGITS = ["¹", "²³", "١٨٠٠٠٠٠٠٦٠", "１８００００００６０", "1800000060\u00b9"]


@pytest.mark.parametrize("expires", OTHER_DIGITS)
def test_an_expiry_in_other_digits_is_refused_not_an_error(expires: str) -> None:
    """str.isdigit() holds for these; the link must still just not open (never a 500)."""
    genuine = SIGNER.sign(REPORT, "a1b2", NOW + 60)
    assert SIGNER.verify(REPORT, "a1b2", expires, genuine.signature, now=NOW) is False


@pytest.mark.parametrize("expires", ["0" + str(NOW + 60), "000" + str(NOW + 60)])
def test_an_expiry_spelt_with_leading_zeros_is_an_altered_link(expires: str) -> None:
    """The link signed ``expires=N``; ``expires=0N`` is another spelling, so an altered
    link, and must not open (int() made both the same number under the same MAC)."""
    genuine = SIGNER.sign(REPORT, "a1b2", NOW + 60)
    assert SIGNER.verify(REPORT, "a1b2", expires, genuine.signature, now=NOW) is False
    intake = SIGNER.sign(INTAKE, "a1b2", NOW + 60)
    assert SIGNER.verify(INTAKE, "a1b2", expires, intake.signature, now=NOW) is False
