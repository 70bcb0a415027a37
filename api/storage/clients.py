"""Tenants, API clients, SMART access tokens and used assertion ids (issue 11).

Only hashes of keys and tokens are stored: a stolen database holds nothing a
caller can present. The lookups go by the SHA-256 of the presented secret
(an indexed equality on a hash of a 256-bit random value, so the lookup's
timing says nothing useful about the secret), and the hash found is compared
again in constant time.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy import exc as sa_exc

from api.storage.models import AccessToken, ApiClient, Tenant, UsedAssertion
from api.storage.repository import Store


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


class KeyCache:
    """Recent API-key lookups of this process, each kept at most ``seconds``.

    Why: the lookup was one database read per request (~0.3 ms of a ~2.3 ms
    triage). What it means for revocation and rotation: a lookup is reused for
    at most ``seconds`` after it was read, so a key revoked or rotated by another
    process (the CLI, another worker, another node) stops working on every node
    within ``seconds`` (plus the grace period of a rotation); the
    :class:`ClientStore` that revokes or rotates drops the client's entries at
    once, so there it stops immediately. Only keys that named a client are kept
    (an unknown key is looked up every time, so a new client works at once), and
    the retiring key's grace period is checked against the clock on every request.
    ``seconds`` 0 turns the cache off.
    """

    def __init__(self, seconds: float, entries: int = KEY_CACHE_ENTRIES) -> None:
        self.seconds = seconds
        self.entries = entries
        self._found: dict[str, tuple[float, ClientRecord]] = {}
        self._lock = threading.Lock()
        #: Bumped by :meth:`forget`: a lookup read before a change is not kept after it.
        self.generation = 0

    def get(self, key_hash: str) -> ClientRecord | None:
        hit = self._found.get(key_hash)
        if hit is None:
            return None
        if time.monotonic() >= hit[0]:
            self._found.pop(key_hash, None)
            return None
        return hit[1]

    def put(self, key_hash: str, record: ClientRecord, read_at: float, generation: int) -> None:
        """Keep ``record`` until ``seconds`` after ``read_at`` (taken before the read).

        ``generation`` is :attr:`generation` as it was before the read: when this
        process revoked or rotated a client since, the read may predate the change
        and is not kept.
        """
        if self.seconds <= 0:
            return
        with self._lock:
            if generation != self.generation:
                return
            if len(self._found) >= self.entries:
                self._found.clear()  # rare (more live keys than entries): start over
            self._found[key_hash] = (read_at + self.seconds, record)

    def forget(self, client_id: str) -> None:
        """Drop every lookup that named ``client_id`` (after this process changed it)."""
        with self._lock:
            self.generation += 1
            for key_hash, (_, record) in list(self._found.items()):
                if record.id == client_id:
                    self._found.pop(key_hash, None)


#: The key lookup, built once (building the expression cost more than running it).
_BY_KEY_HASH = select(*_COLUMNS).where(
    or_(
        ApiClient.key_hash == bindparam("key_hash"),
        ApiClient.previous_key_hash == bindparam("key_hash"),
    )
)


class ClientStore:
    """Reads and writes of the identity tables, over the assessment store's engine."""

    def __init__(self, store: Store, *, key_cache_seconds: float = KEY_CACHE_SECONDS) -> None:
        self.store = store
        self.keys = KeyCache(key_cache_seconds)

    def create(self, record: ClientRecord) -> None:
        """Insert a client, creating its tenant on first use."""
        with self.store.unit_of_work() as work:
            connection = work._connection
            known = connection.execute(
                select(Tenant.name).where(Tenant.name == record.tenant)
            ).first()
            if known is None:
                connection.execute(
                    insert(Tenant), [{"name": record.tenant, "created_us": record.created_us}]
                )
            values = {column.key: getattr(record, column.key) for column in _COLUMNS}
            connection.execute(insert(ApiClient), [values])

    def get(self, client_id: str) -> ClientRecord | None:
        with self.store._reading() as connection:
            row = connection.execute(select(*_COLUMNS).where(ApiClient.id == client_id)).first()
        return None if row is None else ClientRecord(*row)

    def is_active(self, client_id: str) -> bool:
        """Whether the client exists and is not revoked (read now, not from the cache)."""
        record = self.get(client_id)
        return record is not None and record.revoked_us is None

    def all(self) -> list[ClientRecord]:
        with self.store._reading() as connection:
            rows = connection.execute(select(*_COLUMNS).order_by(ApiClient.created_us))
            return [ClientRecord(*row) for row in rows]

    def by_key_hash(self, key_hash: str) -> ClientRecord | None:
        """The client whose current or retiring key hashes to ``key_hash``.

        Served from :class:`KeyCache` when this process read it less than its
        ``seconds`` ago (see there for what that means for revocation).
        """
        cached = self.keys.get(key_hash)
        if cached is not None:
            return cached
        read_at, generation = time.monotonic(), self.keys.generation
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
        self.keys.put(key_hash, record, read_at, generation)
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
        self.keys.forget(client_id)
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
        self.keys.forget(client_id)
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


__all__ = ["KEY_CACHE_SECONDS", "ClientRecord", "ClientStore", "KeyCache"]
