"""Initial tables: assessment, resource, resource_code, audit_event.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tables and the search indexes (subject, code, date)."""
    op.create_table(
        "assessment",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("received_us", sa.BigInteger(), nullable=False),
        sa.Column("issued_us", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("knowledge_base_version", sa.String(32), nullable=False),
        sa.Column("software_version", sa.String(32), nullable=False),
        sa.Column("fhir_version", sa.String(8), nullable=False),
        sa.Column("subject", sa.String(128), nullable=True),
        sa.Column("client", sa.String(128), nullable=True),
        sa.Column("tenant", sa.String(128), nullable=True),
        sa.Column("request_json", sa.LargeBinary(), nullable=False),
        sa.Column("result_json", sa.LargeBinary(), nullable=False),
        sa.Column("bundle_json", sa.LargeBinary(), nullable=False),
        sa.Column("provenance_json", sa.LargeBinary(), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True, unique=True),
        sa.Column("request_digest", sa.String(64), nullable=True),
    )
    op.create_index("ix_assessment_issued_us", "assessment", ["issued_us"])
    op.create_table(
        "resource",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column(
            "assessment_id",
            sa.String(64),
            sa.ForeignKey("assessment.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(128), nullable=True),
        sa.Column("date_us", sa.BigInteger(), nullable=False),
        sa.Column("last_updated_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_resource_assessment_id", "resource", ["assessment_id"])
    op.create_index(
        "ix_resource_type_subject_date", "resource", ["resource_type", "subject", "date_us"]
    )
    op.create_index("ix_resource_type_date", "resource", ["resource_type", "date_us"])
    op.create_index("ix_resource_type_updated", "resource", ["resource_type", "last_updated_us"])
    op.create_table(
        "resource_code",
        sa.Column(
            "resource_id",
            sa.String(64),
            sa.ForeignKey("resource.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("system", sa.String(255), primary_key=True),
        sa.Column("code", sa.String(128), primary_key=True),
    )
    op.create_index("ix_resource_code_code_system", "resource_code", ["code", "system"])
    op.create_table(
        "audit_event",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("recorded_us", sa.BigInteger(), nullable=False),
        sa.Column("subtype", sa.String(32), nullable=False),
        sa.Column("action", sa.String(1), nullable=False),
        sa.Column("outcome", sa.String(2), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=True),
        sa.Column("entity_id", sa.String(64), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_audit_event_recorded_us", "audit_event", ["recorded_us"])
    op.create_index("ix_audit_entity", "audit_event", ["entity_type", "entity_id"])


def downgrade() -> None:
    """Drop everything (only for tests of the migration itself)."""
    op.drop_table("audit_event")
    op.drop_table("resource_code")
    op.drop_table("resource")
    op.drop_table("assessment")
