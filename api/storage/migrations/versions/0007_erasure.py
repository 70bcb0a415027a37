"""Indexes for erasure: the rows tied to an assessment are found by its id.

Erasing an assessment (``DELETE /fhir/Bundle/{id}``) also deletes the intake link
whose submission produced it and the CDS feedback on its cards
(:func:`api.storage.repository.remove_assessments`). Both are looked up by
``assessment_id``, which had no index: every erasure would read the whole table.

Revision ID: 0007_erasure
Revises: 0006_ehr_fhir_servers
"""

from __future__ import annotations

from alembic import op

revision = "0007_erasure"
down_revision = "0006_ehr_fhir_servers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index ``assessment_id`` of the intake links and of the CDS feedback."""
    op.create_index("ix_intake_link_assessment_id", "intake_link", ["assessment_id"])
    op.create_index("ix_cds_feedback_assessment_id", "cds_feedback", ["assessment_id"])


def downgrade() -> None:
    """Drop both (only for tests of the migration itself)."""
    op.drop_index("ix_cds_feedback_assessment_id", "cds_feedback")
    op.drop_index("ix_intake_link_assessment_id", "intake_link")
