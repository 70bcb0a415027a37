"""CDS Hooks (issue 13): registered EHRs, used JWT ids, cards and their feedback.

Revision ID: 0003_cds
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_cds"
# The identity migration's revision id is "0002" (its file is 0002_identity.py).
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the four CDS tables."""
    op.create_table(
        "cds_ehr",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(128), sa.ForeignKey("tenant.name"), nullable=False),
        sa.Column("iss", sa.String(512), nullable=False, unique=True),
        sa.Column("jwks_json", sa.LargeBinary(), nullable=True),
        sa.Column("jku", sa.String(2048), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_cds_ehr_tenant", "cds_ehr", ["tenant"])
    op.create_table(
        "cds_used_jti",
        sa.Column("ehr_id", sa.String(64), primary_key=True),
        sa.Column("jti", sa.String(255), primary_key=True),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_cds_used_jti_expires_us", "cds_used_jti", ["expires_us"])
    op.create_table(
        "cds_card",
        sa.Column("uuid", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("ehr_id", sa.String(64), nullable=False),
        sa.Column("assessment_id", sa.String(64), nullable=False),
        sa.Column("hook_instance", sa.String(255), nullable=False),
        sa.Column("indicator", sa.String(16), nullable=False),
        sa.Column("issued_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_cds_card_tenant", "cds_card", ["tenant"])
    op.create_index("ix_cds_card_assessment_id", "cds_card", ["assessment_id"])
    op.create_table(
        "cds_feedback",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("card_uuid", sa.String(64), nullable=False),
        sa.Column("assessment_id", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("outcome_us", sa.BigInteger(), nullable=False),
        sa.Column("received_us", sa.BigInteger(), nullable=False),
        sa.Column("body_json", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_cds_feedback_tenant", "cds_feedback", ["tenant"])
    op.create_index("ix_cds_feedback_card_uuid", "cds_feedback", ["card_uuid"])


def downgrade() -> None:
    """Drop the CDS tables (only for tests of the migration itself)."""
    op.drop_table("cds_feedback")
    op.drop_table("cds_card")
    op.drop_table("cds_used_jti")
    op.drop_table("cds_ehr")
