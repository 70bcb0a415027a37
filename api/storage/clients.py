"""Tenants, API clients, SMART access tokens and used assertion ids (issue 11).

Only hashes of keys and tokens are stored: a stolen database holds nothing a
caller can present. The lookups go by the SHA-256 of the presented secret
(an indexed equality on a hash of a 256-bit random value, so the lookup's
timing says nothing useful about the secret), and the hash found is compared
again in constant time.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from sqlalchemy import delete, insert, or_, select, update
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


class ClientStore:
    """Reads and writes of the identity tables, over the assessment store's engine."""

    def __init__(self, store: Store) -> None:
        self.store = store

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

    def all(self) -> list[ClientRecord]:
        with self.store._reading() as connection:
            rows = connection.execute(select(*_COLUMNS).order_by(ApiClient.created_us))
            return [ClientRecord(*row) for row in rows]

    def by_key_hash(self, key_hash: str) -> ClientRecord | None:
        """The client whose current or retiring key hashes to ``key_hash``."""
        stmt = select(*_COLUMNS).where(
            or_(ApiClient.key_hash == key_hash, ApiClient.previous_key_hash == key_hash)
        )
        with self.store._reading() as connection:
            row = connection.execute(stmt).first()
        if row is None:
            return None
        record = ClientRecord(*row)
        current = hmac.compare_digest(record.key_hash, key_hash)
        retiring = record.previous_key_hash is not None and hmac.compare_digest(
            record.previous_key_hash, key_hash
        )
        return record if current or retiring else None

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


__all__ = ["ClientRecord", "ClientStore"]
