"""Intake links (issue 14): one row per single-use, one-patient intake link.

Revision ID: 0003_intake
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_intake"
down_revision = "0003_cds"  # built beside 0003_cds; chained after it at merge
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the intake_link table."""
    op.create_table(
        "intake_link",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(128), sa.ForeignKey("tenant.name"), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(128), nullable=True),
        sa.Column("show", sa.String(16), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.Column("used_us", sa.BigInteger(), nullable=True),
        sa.Column("assessment_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_intake_link_tenant", "intake_link", ["tenant"])
    op.create_index("ix_intake_link_expires_us", "intake_link", ["expires_us"])


def downgrade() -> None:
    """Drop the intake_link table (only for tests of the migration itself)."""
    op.drop_index("ix_intake_link_expires_us", "intake_link")
    op.drop_index("ix_intake_link_tenant", "intake_link")
    op.drop_table("intake_link")
