"""Tenant, client-label and issuer names an operator cannot confuse (session 10).

``clients create --tenant ＡCME`` (full width) and ``--tenant ACME`` made two tenants
that print alike in an audit log or a CLI listing; so did names differing by case,
compatibility forms, zero-width characters or bidi controls. Now a new name whose
skeleton (NFKC, case folded, invisible characters dropped) is an existing name's is
refused naming the existing one, whatever the variation (hypothesis), in the CLI and
in the storage transaction; old rows stay usable as they are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from cds_support import Ehr
from conftest import create_app
from hypothesis import given
from hypothesis import strategies as st

from api.auth.clients import ClientError, create_client
from api.auth.ehrs import register_ehr
from api.auth.keys import new_client_id
from api.config import EXTENSION
from api.storage.clients import ClientRecord, ConfusableNameError, name_skeleton

REPO = Path(__file__).resolve().parents[1]

#: Characters a reader does not see: zero-width, word joiner, BOM, soft hyphen, bidi.
INVISIBLE = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u202e", "\u2066")


class State:
    """The app's stores, with a short repr (hypothesis prints its arguments)."""

    def __init__(self, app_state: Any) -> None:
        self.clients = app_state.clients
        self.cds = app_state.cds

    def __repr__(self) -> str:
        return "State()"


@pytest.fixture(scope="module")
def state() -> State:
    return State(create_app({"TESTING": True}).extensions[EXTENSION])


def _unique(stem: str) -> str:
    """A fresh name (the suite's store is shared): ``stem`` and random letters."""
    return f"t{stem}-{uuid.uuid4().hex[:12]}"


def _flip_case(name: str, index: int) -> str:
    letters = [i for i, char in enumerate(name) if char.isalpha()]
    i = letters[index % len(letters)]
    return name[:i] + name[i].swapcase() + name[i + 1 :]


def _full_width(name: str, index: int) -> str:
    """One character in its full-width form (the ideographic space for a space)."""
    i = index % len(name)
    form = "\u3000" if name[i] == " " else chr(ord(name[i]) + 0xFEE0)
    return name[:i] + form + name[i + 1 :]


def _compatibility(name: str, index: int) -> str:
    """One character replaced by a compatibility form NFKC maps back to it (a
    mathematical bold letter or digit; full width for punctuation)."""
    i = index % len(name)
    char = name[i]
    if "a" <= char <= "z":
        form = chr(0x1D41A + ord(char) - ord("a"))
    elif "A" <= char <= "Z":
        form = chr(0x1D400 + ord(char) - ord("A"))
    elif char.isdigit():
        form = chr(0x1D7CE + int(char))
    else:
        return _full_width(name, i)
    return name[:i] + form + name[i + 1 :]


def _invisible(name: str, index: int, which: int) -> str:
    i = index % (len(name) + 1)
    return name[:i] + INVISIBLE[which % len(INVISIBLE)] + name[i:]


@st.composite
def look_alikes(draw: st.DrawFn, name: str) -> str:
    """``name`` changed by one to three of: case, width, compatibility form, an
    invisible character; never ``name`` itself."""
    variant = name
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(("case", "width", "compatibility", "invisible")))
        index = draw(st.integers(0, 200))
        if kind == "case":
            variant = _flip_case(variant, index)
        elif kind == "width" and variant[index % len(variant)].isascii():
            variant = _full_width(variant, index)
        elif kind == "compatibility" and variant[index % len(variant)].isascii():
            variant = _compatibility(variant, index)
        else:
            variant = _invisible(variant, index, draw(st.integers(0, 50)))
    if variant == name:  # two case flips undid each other
        variant = _invisible(variant, 0, 0)
    return variant


STEMS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@given(stem=STEMS.filter(lambda text: len(text) <= 40), data=st.data())
def test_a_look_alike_of_an_existing_tenant_is_refused_naming_it(state, stem, data):
    tenant = _unique(stem)
    assert create_client(state.clients, tenant=tenant).tenant == tenant
    variant = data.draw(look_alikes(tenant))
    with pytest.raises(ClientError) as refused:
        create_client(state.clients, tenant=variant)
    assert f"looks like the existing tenant {tenant!r}" in str(refused.value)
    with pytest.raises(ClientError) as by_ehr:
        register_ehr(
            state.cds, tenant=variant, iss=_unique("https://ehr/"), jku="https://k.example/j"
        )
    assert f"existing tenant {tenant!r}" in str(by_ehr.value)
    # The name itself is the same tenant, and a name that reads differently is another.
    assert create_client(state.clients, tenant=tenant).tenant == tenant
    assert create_client(state.clients, tenant=tenant + "x").tenant == tenant + "x"


@given(data=st.data())
def test_a_look_alike_label_in_one_tenant_is_refused_and_the_same_label_is_not(state, data):
    tenant = _unique("labels")
    words = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ 0123456789", max_size=60)
    label = " ".join(f"App {data.draw(words)}".split())
    create_client(state.clients, tenant=tenant, label=label)
    assert create_client(state.clients, tenant=tenant, label=label).label == label
    variant = data.draw(look_alikes(label))
    with pytest.raises(ClientError) as refused:
        create_client(state.clients, tenant=tenant, label=variant)
    assert f"existing client label {label!r}" in str(refused.value)
    # Labels are compared within a tenant: another tenant may use the variant's reading.
    other = _unique("labels")
    plain = name_skeleton(variant)
    assert create_client(state.clients, tenant=other, label=plain).label == plain


@given(data=st.data())
def test_a_look_alike_issuer_is_refused_and_the_same_issuer_re_keys(state, data):
    tenant = _unique("issuers")
    iss = f"https://{uuid.uuid4().hex[:10]}.example/Fhir"
    first = register_ehr(state.cds, tenant=tenant, iss=iss, jku="https://k.example/j")
    again = register_ehr(state.cds, tenant=tenant, iss=iss, jku="https://k.example/other")
    assert again.id == first.id
    variant = data.draw(look_alikes(iss))
    with pytest.raises(ClientError) as refused:
        register_ehr(state.cds, tenant=tenant, iss=variant, jku="https://k.example/j")
    assert f"existing issuer {iss!r}" in str(refused.value)


def test_new_tenants_are_ascii_identifiers_and_the_refusal_shows_code_points(state):
    for name in ("", " ", "a b", "x" * 129, "acme\u202egro", "клиника", "a/b", "é"):
        with pytest.raises(ClientError) as refused:
            create_client(state.clients, tenant=name)
        message = str(refused.value)
        assert "ASCII letters, digits" in message
        assert all(char.isprintable() for char in message), message  # no bidi control
    with pytest.raises(ClientError) as full_width:
        create_client(state.clients, tenant="ＮＥＷ-" + uuid.uuid4().hex[:8])
    assert "in plain characters that is 'NEW-" in str(full_width.value)
    assert "\\uff2e" in str(full_width.value)  # the code points, for the operator


def test_labels_are_visible_nfkc_text(state):
    tenant = _unique("nfkc")
    with pytest.raises(ClientError, match="not in NFKC form; write it 'EHR one'"):
        create_client(state.clients, tenant=tenant, label="ＥＨＲ ｏｎｅ")
    for label in ("EHR\u200bone", "EHR\u202eeno", "EHR\x07", "EHR\u00a0one", "x" * 129):
        with pytest.raises(ClientError) as refused:
            create_client(state.clients, tenant=tenant, label=label)
        assert all(char.isprintable() for char in str(refused.value))
    assert create_client(state.clients, tenant=tenant, label="Café 1").label == "Café 1"


def test_old_rows_stay_usable_and_new_look_alikes_of_them_are_refused(state):
    """A tenant stored before the rule (full width here) keeps working by its exact
    name; a new look-alike of it is refused, the message spelling its code points."""
    legacy = "ＡＣＭＥ" + uuid.uuid4().hex[:6]
    state.clients.create(_record(legacy))  # as an older version stored it
    assert create_client(state.clients, tenant=legacy).tenant == legacy
    with pytest.raises(ClientError) as refused:
        create_client(state.clients, tenant=name_skeleton(legacy).upper())
    assert f"existing tenant {legacy!r} (that is {legacy!a})" in str(refused.value)


def _record(tenant: str, label: str = "") -> ClientRecord:
    return ClientRecord(
        id=new_client_id(),
        tenant=tenant,
        label=label,
        scopes="system/*.cruds",
        key_hash=uuid.uuid4().hex,
        previous_key_hash=None,
        previous_until_us=None,
        revoked_us=None,
        created_us=0,
        jwks_json=None,
        jwks_url=None,
    )


def test_the_storage_transaction_refuses_a_look_alike_created_behind_the_check(state):
    """Two operators at once: the check before the write passed for both; the write of
    the second finds the first's tenant (or label) in its own transaction."""
    tenant = _unique("race")
    state.clients.create(_record(tenant, "Billing"))
    with pytest.raises(ConfusableNameError):
        state.clients.create(_record(tenant.upper()))
    with pytest.raises(ConfusableNameError):
        state.clients.create(_record(tenant, "BILLING"))
    ehr = Ehr(f"https://{uuid.uuid4().hex[:8]}.example")
    with pytest.raises(ClientError, match="existing tenant"):
        register_ehr(state.cds, tenant=tenant.upper(), iss=ehr.iss, jwks=ehr.jwks())


def _cli(database: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "TWITCH_TRIAGE_DATABASE_URL": f"sqlite:///{database}",
    }
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_refuses_a_full_width_tenant_naming_the_existing_one(tmp_path):
    database = tmp_path / "names.sqlite3"
    assert _cli(database, "clients", "create", "--tenant", "ACME").returncode == 0
    refused = _cli(database, "clients", "create", "--tenant", "ＡCME")
    assert refused.returncode == 1
    assert "twitch-triage clients: tenant 'ＡCME' (that is '\\uff21CME')" in refused.stderr
    assert "looks like the existing tenant 'ACME'" in refused.stderr
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(Ehr("https://ehr.example").jwks()))
    by_ehr = _cli(
        database, "ehrs", "register", "--tenant", "acme", "--iss", "https://ehr.example",
        "--jwks-file", str(keys),
    )  # fmt: skip
    assert by_ehr.returncode == 1
    assert "existing tenant 'ACME'" in by_ehr.stderr
    listed = _cli(database, "clients", "list")
    tenants = {json.loads(line)["tenant"] for line in listed.stdout.splitlines()}
    assert tenants == {"ACME"}


def test_an_inline_jwks_larger_than_a_fetched_one_may_be_is_refused(state):
    """Parsed on every token request or CDS call of its client: at most 64 KiB, as a
    ``--jwks-url`` answer."""
    from test_auth_smart import RSA_KEY, jwks_of  # noqa: PLC0415

    key = jwks_of(RSA_KEY, "rsa-1", "RS384")["keys"][0]
    huge = {"keys": [{**key, "kid": f"k{i}"} for i in range(200)]}
    with pytest.raises(ClientError, match="larger than 65536 bytes"):
        create_client(state.clients, tenant=_unique("jwks"), jwks=huge)
    ehr = Ehr(f"https://{uuid.uuid4().hex[:8]}.example")
    with pytest.raises(ClientError, match="larger than 65536 bytes"):
        register_ehr(state.cds, tenant=_unique("jwks"), iss=ehr.iss, jwks=huge)
    assert create_client(state.clients, tenant=_unique("jwks"), jwks={"keys": [key]}).client_id
