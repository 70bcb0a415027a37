"""A credential epoch: revoking or rotating a client invalidates every process's key cache.

Each process kept an API-key lookup for up to ``TWITCH_TRIAGE_KEY_CACHE_SECONDS``,
so a key revoked by the ``clients`` CLI (or another worker, another node) kept
working there for up to five seconds. Revocation and rotation now add one to
this single row in the same transaction, and a cached lookup is used only while
the row still holds the value it was read under.

Revision ID: 0005_credential_epoch
Revises: 0004_audit_order
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_credential_epoch"
down_revision = "0004_audit_order"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the one-row table, starting at 0."""
    table = op.create_table(
        "credential_epoch",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(table, [{"id": 1, "value": 0}])


def downgrade() -> None:
    """Drop it (only for tests of the migration itself)."""
    op.drop_table("credential_epoch")
