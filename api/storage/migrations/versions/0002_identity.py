"""Partner identity (issue 11): tenants, clients, SMART tokens; every row gets a tenant.

Rows stored before this migration belong to the ``local`` tenant (the embedded
default deployment had one caller).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the identity tables, tag audit events with a tenant, adopt old rows."""
    op.create_table(
        "tenant",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "api_client",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(128), sa.ForeignKey("tenant.name"), nullable=False),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("scopes", sa.String(1024), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("previous_key_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("previous_until_us", sa.BigInteger(), nullable=True),
        sa.Column("revoked_us", sa.BigInteger(), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("jwks_json", sa.LargeBinary(), nullable=True),
        sa.Column("jwks_url", sa.String(2048), nullable=True),
    )
    op.create_index("ix_api_client_tenant", "api_client", ["tenant"])
    op.create_table(
        "access_token",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), sa.ForeignKey("api_client.id"), nullable=False),
        sa.Column("scopes", sa.String(1024), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_access_token_client_id", "access_token", ["client_id"])
    op.create_index("ix_access_token_expires_us", "access_token", ["expires_us"])
    op.create_table(
        "used_assertion",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("jti", sa.String(255), primary_key=True),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_used_assertion_expires_us", "used_assertion", ["expires_us"])
    op.add_column("audit_event", sa.Column("tenant", sa.String(128), nullable=True))
    op.create_index("ix_audit_event_tenant", "audit_event", ["tenant"])
    op.create_index("ix_assessment_tenant", "assessment", ["tenant"])
    # Everything stored so far was stored by the one embedded caller: the local tenant.
    op.execute(
        sa.text("INSERT INTO tenant (name, created_us) VALUES ('local', :now)").bindparams(
            now=time.time_ns() // 1000
        )
    )
    op.execute("UPDATE assessment SET tenant = 'local' WHERE tenant IS NULL")
    op.execute("UPDATE audit_event SET tenant = 'local' WHERE tenant IS NULL")


def downgrade() -> None:
    """Drop the identity tables (only for tests of the migration itself)."""
    op.drop_index("ix_assessment_tenant", "assessment")
    op.drop_index("ix_audit_event_tenant", "audit_event")
    with op.batch_alter_table("audit_event") as batch:
        batch.drop_column("tenant")
    op.drop_table("used_assertion")
    op.drop_table("access_token")
    op.drop_table("api_client")
    op.drop_table("tenant")
