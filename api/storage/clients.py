"""Tenants, API clients, SMART access tokens and used assertion ids (issue 11).

Only hashes of keys and tokens are stored: a stolen database holds nothing a
caller can present. The lookups go by the SHA-256 of the presented secret
(an indexed equality on a hash of a 256-bit random value, so the lookup's
timing says nothing useful about the secret), and the hash found is compared
again in constant time.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, insert, or_, select, update
from sqlalchemy import exc as sa_exc

from api.storage.database import native_lock
from api.storage.models import AccessToken, ApiClient, CredentialEpoch, Tenant, UsedAssertion
from api.storage.repository import Store

#: Unicode categories never kept in a name's skeleton: controls, format characters
#: (zero-width, bidi controls), surrogates, private use, unassigned, line separators.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def name_skeleton(name: str) -> str:
    """What a reader sees of a tenant, client label or issuer: NFKC, case folded (twice,
    as Unicode's NFKC_Casefold does), without invisible characters, with every run of
    spaces one plain space. Two names with one skeleton cannot be told apart in an audit
    log or a CLI listing (``ＡCME``, ``acme`` and ``ACME`` are one)."""
    once = unicodedata.normalize("NFKC", name).casefold()
    folded = unicodedata.normalize("NFKC", once).casefold()
    kept = []
    for char in folded:
        category = unicodedata.category(char)
        if category not in INVISIBLE_CATEGORIES:
            kept.append(" " if category == "Zs" else char)
    return " ".join("".join(kept).split())


def confusable_with(name: str, existing: Iterable[str]) -> str | None:
    """The first of ``existing`` that looks like ``name`` without being it, or None."""
    skeleton = name_skeleton(name)
    for other in existing:
        if other != name and name_skeleton(other) == skeleton:
            return other
    return None


def shown(name: str) -> str:
    """``name`` quoted for an operator, with its escapes when it is not plain ASCII (a
    look-alike is then told apart by its code points)."""
    return repr(name) if name.isascii() else f"{name!r} (that is {name!a})"


class ConfusableNameError(ValueError):
    """A new name looks like one already stored (:func:`name_skeleton`)."""

    def __init__(self, what: str, name: str, existing: str) -> None:
        super().__init__(
            f"{what} {shown(name)} looks like the existing {what} {shown(existing)} (names are "
            f"compared ignoring case, width, compatibility forms and invisible characters): "
            f"use {shown(existing)} itself, or a name that reads differently"
        )
        self.existing = existing


def ensure_tenant(connection: Connection, name: str, created_us: int) -> None:
    """Create tenant ``name`` unless it exists, in the caller's transaction;
    ConfusableNameError when another tenant looks like it (existing rows stay as
    they are: only a new name is refused)."""
    names = connection.execute(select(Tenant.name)).scalars().all()
    if name in names:
        return
    existing = confusable_with(name, names)
    if existing is not None:
        raise ConfusableNameError("tenant", name, existing)
    connection.execute(insert(Tenant), [{"name": name, "created_us": created_us}])


def tenant_names(store: Store) -> list[str]:
    """Every tenant's name (a deployment has few)."""
    with store._reading() as connection:
        return list(connection.execute(select(Tenant.name)).scalars())


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A client as stored (never its key)."""

    id: str
    tenant: str
    label: str
    scopes: str
    key_hash: str
    previous_key_hash: str | None
    previous_until_us: int | None
    revoked_us: int | None
    created_us: int
    jwks_json: bytes | None
    jwks_url: str | None


_COLUMNS = (
    ApiClient.id,
    ApiClient.tenant,
    ApiClient.label,
    ApiClient.scopes,
    ApiClient.key_hash,
    ApiClient.previous_key_hash,
    ApiClient.previous_until_us,
    ApiClient.revoked_us,
    ApiClient.created_us,
    ApiClient.jwks_json,
    ApiClient.jwks_url,
)


#: Default seconds a process keeps an API-key lookup (``TWITCH_TRIAGE_KEY_CACHE_SECONDS``).
KEY_CACHE_SECONDS = 5
#: Most key lookups a process keeps (only keys that named a client are kept).
KEY_CACHE_ENTRIES = 1024

_EPOCH = select(CredentialEpoch.value).where(CredentialEpoch.id == 1)
_EPOCH_SQL = "SELECT value FROM credential_epoch WHERE id = 1"
#: Revocation and rotation add one to the epoch in their own transaction.
_BUMP_EPOCH = (
    update(CredentialEpoch).where(CredentialEpoch.id == 1).values(value=CredentialEpoch.value + 1)
)


class CredentialEpochReader:
    """The current credential epoch (:class:`api.storage.models.CredentialEpoch`).

    Read on every authenticated request, so it must cost little: on a SQLite file
    through a plain ``sqlite3`` connection of this process (~6 µs, against ~90 µs
    through the engine's pool); on PostgreSQL through the engine (one round trip).
    None when it cannot be read (a database not migrated yet, a locked or absent
    file): then no cached lookup is used.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        url = engine.url
        database = url.database if url.get_backend_name() == "sqlite" else None
        #: The SQLite file, or None when the engine is read instead.
        self._path = database if database and database != ":memory:" else None
        self._lock = native_lock()  # the connection is shared by threads and greenlets
        self._pid = -1
        self._connection: sqlite3.Connection | None = None

    def read(self) -> int | None:
        if self._path is None:
            return self._read_engine()
        with self._lock:
            try:
                row = self._sqlite().execute(_EPOCH_SQL).fetchone()
            except sqlite3.Error:
                self._connection = None  # reopened on the next read
                return None
        return None if row is None else int(row[0])

    def _sqlite(self) -> sqlite3.Connection:
        # A connection is never used, nor closed, in a process it was not opened in:
        # closing it in a forked child would drop the parent's SQLite file locks.
        if self._connection is None or self._pid != os.getpid():
            connection = sqlite3.connect(
                self._path or "", timeout=1.0, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA query_only=1")
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    def _read_engine(self) -> int | None:
        with contextlib.suppress(sa_exc.SQLAlchemyError), self._engine.connect() as connection:
            value = connection.execute(_EPOCH).scalar()
            return None if value is None else int(value)
        return None


class KeyCache:
    """Recent API-key lookups of this process, each kept while the credentials are unchanged.

    Why: the lookup was one database read per request (~0.3 ms of a ~2.3 ms
    triage). A lookup is reused only while the credential epoch is the one it was
    read under: revoking or rotating any client (here, in another worker, with the
    CLI, on another node) changes the epoch in the same transaction, so the next
    request of every process reads the key again and a revoked key stops working
    at once everywhere. A lookup is also dropped ``seconds`` after it was read
    (``seconds`` 0 turns the cache off). Only keys that named a client are kept
    (an unknown key is looked up every time, so a new client works at once), and
    the retiring key's grace period is checked against the clock on every request.
    """

    def __init__(self, seconds: float, entries: int = KEY_CACHE_ENTRIES) -> None:
        self.seconds = seconds
        self.entries = entries
        self._found: dict[str, tuple[float, int, ClientRecord]] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str, epoch: int) -> ClientRecord | None:
        """The lookup of ``key_hash`` if it was read under ``epoch`` and is fresh."""
        hit = self._found.get(key_hash)
        if hit is None:
            return None
        expires, read_epoch, record = hit
        if read_epoch != epoch or time.monotonic() >= expires:
            self._found.pop(key_hash, None)
            return None
        return record

    def put(self, key_hash: str, record: ClientRecord, read_at: float, epoch: int) -> None:
        """Keep ``record``, read after ``read_at`` under ``epoch`` (both taken before the read).

        A change committed between the epoch read and the lookup makes the record
        newer than its epoch says: it is then merely read again on the next request.
        """
        if self.seconds <= 0:
            return
        with self._lock:
            if len(self._found) >= self.entries:
                self._found.clear()  # rare (more live keys than entries): start over
            self._found[key_hash] = (read_at + self.seconds, epoch, record)


#: The key lookup, built once (building the expression cost more than running it).
_BY_KEY_HASH = select(*_COLUMNS).where(
    or_(
        ApiClient.key_hash == bindparam("key_hash"),
        ApiClient.previous_key_hash == bindparam("key_hash"),
    )
)


def _labels(tenant: str) -> Any:
    return select(ApiClient.label).where(ApiClient.tenant == tenant, ApiClient.revoked_us.is_(None))


class ClientStore:
    """Reads and writes of the identity tables, over the assessment store's engine."""

    def __init__(self, store: Store, *, key_cache_seconds: float = KEY_CACHE_SECONDS) -> None:
        self.store = store
        self.keys = KeyCache(key_cache_seconds)
        self.epoch = CredentialEpochReader(store.engine)

    def create(self, record: ClientRecord) -> None:
        """Insert a client, creating its tenant on first use; ConfusableNameError when
        the tenant, or the label among the tenant's active clients, looks like another."""
        with self.store.unit_of_work() as work:
            connection = work._connection
            ensure_tenant(connection, record.tenant, record.created_us)
            if record.label:
                labels = connection.execute(_labels(record.tenant)).scalars()
                existing = confusable_with(record.label, labels)
                if existing is not None:
                    raise ConfusableNameError("client label", record.label, existing)
            values = {column.key: getattr(record, column.key) for column in _COLUMNS}
            connection.execute(insert(ApiClient), [values])

    def labels(self, tenant: str) -> list[str]:
        """The labels of the tenant's active clients."""
        with self.store._reading() as connection:
            return list(connection.execute(_labels(tenant)).scalars())

    def get(self, client_id: str) -> ClientRecord | None:
        with self.store._reading() as connection:
            row = connection.execute(select(*_COLUMNS).where(ApiClient.id == client_id)).first()
        return None if row is None else ClientRecord(*row)

    def is_active(self, client_id: str) -> bool:
        """Whether the client exists and is not revoked (read now, not from the cache)."""
        record = self.get(client_id)
        return record is not None and record.revoked_us is None

    def active_tenant(self, client_id: str) -> str | None:
        """The tenant of an active (not revoked) client; None for any other id."""
        record = self.get(client_id)
        return record.tenant if record is not None and record.revoked_us is None else None

    def all(self) -> list[ClientRecord]:
        with self.store._reading() as connection:
            rows = connection.execute(select(*_COLUMNS).order_by(ApiClient.created_us))
            return [ClientRecord(*row) for row in rows]

    def by_key_hash(self, key_hash: str) -> ClientRecord | None:
        """The client whose current or retiring key hashes to ``key_hash``.

        Served from :class:`KeyCache` while no client was revoked or rotated since
        this process read it (see there).
        """
        epoch = self.epoch.read() if self.keys.seconds > 0 else None
        if epoch is not None:
            cached = self.keys.get(key_hash, epoch)
            if cached is not None:
                return cached
        read_at = time.monotonic()
        with self.store._reading() as connection:
            row = connection.execute(_BY_KEY_HASH, {"key_hash": key_hash}).first()
        if row is None:
            return None
        record = ClientRecord(*row)
        current = hmac.compare_digest(record.key_hash, key_hash)
        retiring = record.previous_key_hash is not None and hmac.compare_digest(
            record.previous_key_hash, key_hash
        )
        if not (current or retiring):
            return None
        if epoch is not None:
            self.keys.put(key_hash, record, read_at, epoch)
        return record

    def rotate(self, client_id: str, new_hash: str, until_us: int) -> bool:
        """Make ``new_hash`` the key; the current one retires at ``until_us``."""
        with self.store.unit_of_work() as work:
            connection = work._connection
            row = connection.execute(
                select(ApiClient.key_hash).where(
                    ApiClient.id == client_id, ApiClient.revoked_us.is_(None)
                )
            ).first()
            if row is None:
                return False
            connection.execute(
                update(ApiClient)
                .where(ApiClient.id == client_id)
                .values(key_hash=new_hash, previous_key_hash=row[0], previous_until_us=until_us)
            )
            connection.execute(_BUMP_EPOCH)
        return True

    def revoke(self, client_id: str, now_us: int) -> bool:
        """Revoke a client now: its keys and its access tokens stop working."""
        with self.store.unit_of_work() as work:
            connection = work._connection
            done = connection.execute(
                update(ApiClient)
                .where(ApiClient.id == client_id, ApiClient.revoked_us.is_(None))
                .values(revoked_us=now_us)
            ).rowcount
            connection.execute(delete(AccessToken).where(AccessToken.client_id == client_id))
            if done:
                connection.execute(_BUMP_EPOCH)
        return bool(done)

    def tenant_has_client(self, tenant: str) -> bool:
        with self.store._reading() as connection:
            row = connection.execute(
                select(ApiClient.id).where(
                    ApiClient.tenant == tenant, ApiClient.revoked_us.is_(None)
                )
            ).first()
        return row is not None

    # --- SMART Backend Services ------------------------------------------------------

    def use_assertion(self, client_id: str, jti: str, expires_us: int, now_us: int) -> bool:
        """Record a client assertion's ``jti``; False when it was used before."""
        try:
            with self.store.unit_of_work() as work:
                connection = work._connection
                connection.execute(delete(UsedAssertion).where(UsedAssertion.expires_us < now_us))
                connection.execute(
                    insert(UsedAssertion),
                    [{"client_id": client_id, "jti": jti, "expires_us": expires_us}],
                )
        except sa_exc.IntegrityError:
            return False
        return True

    def add_token(self, token_hash: str, client_id: str, scopes: str, expires_us: int) -> None:
        with self.store.unit_of_work() as work:
            connection = work._connection
            connection.execute(
                delete(AccessToken).where(AccessToken.expires_us < expires_us - 3_600_000_000)
            )
            connection.execute(
                insert(AccessToken),
                [
                    {
                        "token_hash": token_hash,
                        "client_id": client_id,
                        "scopes": scopes,
                        "expires_us": expires_us,
                    }
                ],
            )

    def by_token_hash(self, token_hash: str) -> tuple[ClientRecord, str, int] | None:
        """(client, granted scopes, expiry) of an access token."""
        stmt = (
            select(*_COLUMNS, AccessToken.scopes, AccessToken.expires_us, AccessToken.token_hash)
            .join(AccessToken, AccessToken.client_id == ApiClient.id)
            .where(AccessToken.token_hash == token_hash)
        )
        with self.store._reading() as connection:
            row = connection.execute(stmt).first()
        if row is None or not hmac.compare_digest(row[-1], token_hash):
            return None
        return ClientRecord(*row[: len(_COLUMNS)]), row[-3], row[-2]


__all__ = [
    "KEY_CACHE_SECONDS",
    "ClientRecord",
    "ClientStore",
    "ConfusableNameError",
    "CredentialEpochReader",
    "KeyCache",
    "confusable_with",
    "ensure_tenant",
    "name_skeleton",
    "shown",
    "tenant_names",
]
