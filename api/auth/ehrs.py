"""EHR registration for CDS Hooks (the ``twitch-triage ehrs`` commands). Flask-free.

An EHR is its JWT issuer (``iss``), the tenant its calls act for, and its public
keys: a JWK Set file (copied into the store) or the one ``jku`` URL its tokens may
name. Only public RSA or P-384 EC signing keys are accepted: a private key in the
file is refused (it would mean the EHR's secret left the EHR). Its ``fhir_servers``
are the only FHIR base URLs the CDS service fetches an intake from for it
(:mod:`api.services.cds.servers`).
"""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Sequence
from typing import Any

import orjson

from api.auth.clients import (
    ClientError,
    check_inline_jwks,
    check_tenant,
    invisible_character,
    now_us,
)
from api.auth.jwks import https_or_loopback
from api.services.cds.servers import MAX_SERVERS, fhir_base
from api.storage.cds import CdsStore, EhrRecord, RegistrationConflictError
from api.storage.clients import ConfusableNameError, confusable_with, shown, tenant_names


def _check_jwks(jwks: Any) -> bytes:
    return check_inline_jwks(jwks)  # the rule SMART clients' key sets follow


def _check_jku(url: str) -> str:
    if https_or_loopback(url):
        return url
    raise ClientError("--jku must be an https URL (http only on a loopback address)")


def _check_iss(iss: str, existing: list[str]) -> str:
    """An issuer as registered: 1 to 512 visible characters, already in NFKC form (it is
    compared with the token's ``iss`` exactly, so it is never rewritten), and not a
    look-alike of another registered issuer (the same one again re-keys it)."""
    if not iss.strip() or len(iss) > 512:
        raise ClientError("--iss must be 1 to 512 characters")
    other = confusable_with(iss, existing)
    if other is not None:
        raise ClientError(str(ConfusableNameError("issuer", iss, other)))
    hidden = invisible_character(iss)
    if hidden is not None or iss != iss.strip():
        what = hidden or "a space around it"
        raise ClientError(f"--iss {shown(iss)} holds an invisible character ({what})")
    if unicodedata.normalize("NFKC", iss) != iss:
        plain = unicodedata.normalize("NFKC", iss)
        raise ClientError(f"--iss {shown(iss)} is not in NFKC form; write it {shown(plain)}")
    return iss


def _check_fhir_servers(urls: Sequence[str]) -> tuple[str, ...]:
    """The normalised FHIR base URLs (duplicates once, in order); ClientError naming the bad one.

    The same transport rule as ``--jku`` (the EHR's token goes there): https, or http
    only on a loopback address.
    """
    servers: list[str] = []
    for url in urls:
        try:
            server = fhir_base(url)
        except ValueError as exc:
            raise ClientError(f"--fhir-server {url[:80]!r} {exc}") from None
        if not https_or_loopback(server):
            raise ClientError(
                f"--fhir-server {url[:80]!r} must be an https URL (http only on a loopback address)"
            )
        if server not in servers:
            servers.append(server)
    if len(servers) > MAX_SERVERS:
        raise ClientError(f"at most {MAX_SERVERS} --fhir-server URLs per EHR")
    return tuple(servers)


def register_ehr(
    cds: CdsStore,
    *,
    tenant: str,
    iss: str,
    jwks: Any = None,
    jku: str | None = None,
    fhir_servers: Sequence[str] = (),
) -> EhrRecord:
    """Register (or re-key) an EHR issuer for a tenant; ClientError when it cannot be.

    Registering again replaces the keys and the FHIR servers (none given: none kept).
    """
    if (jwks is None) == (jku is None):
        raise ClientError("give exactly one of --jwks-file and --jku")
    record = EhrRecord(
        id="ehr_" + secrets.token_hex(12),
        tenant=check_tenant(tenant, tenant_names(cds.store)),
        iss=_check_iss(iss, [known.iss for known in cds.all()]),
        jwks_json=None if jwks is None else _check_jwks(jwks),
        jku=None if jku is None else _check_jku(jku),
        created_us=now_us(),
        fhir_servers=_check_fhir_servers(fhir_servers),
    )
    try:
        return cds.register(record)  # the tenant is checked again in its transaction
    except (RegistrationConflictError, ConfusableNameError) as exc:
        raise ClientError(str(exc)) from None


def remove_ehr(cds: CdsStore, iss: str) -> EhrRecord:
    removed = cds.remove(iss)
    if removed is None:
        raise ClientError(f"no registered EHR with iss {iss!r}")
    return removed


def describe_ehr(record: EhrRecord) -> dict[str, object]:
    """An EHR as ``ehrs list`` prints it."""
    described: dict[str, object] = {"ehr_id": record.id, "tenant": record.tenant, "iss": record.iss}
    if record.jwks_json is not None:
        kids = [key.get("kid") for key in orjson.loads(record.jwks_json)["keys"]]
        described["jwks"] = {"kids": kids}
    if record.jku is not None:
        described["jku"] = record.jku
    described["fhir_servers"] = list(record.fhir_servers)
    return described


__all__ = ["describe_ehr", "register_ehr", "remove_ehr"]
