"""The FHIR servers each registered EHR may name: the CDS service fetches from no other.

A hook request's ``fhirServer`` was fetched whatever it named, so any authenticated
EHR could make this server send requests (with the EHR's bearer token) to loopback
ports, cloud metadata addresses or internal hosts. ``cds_ehr.fhir_servers`` holds
the base URLs the operator registered for the EHR (a JSON array); NULL, as every
existing row starts, means none: such an EHR works with prefetch only until its
servers are registered.

Revision ID: 0006_ehr_fhir_servers
Revises: 0005_credential_epoch
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_ehr_fhir_servers"
down_revision = "0005_credential_epoch"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable column (existing EHRs: no registered server)."""
    op.add_column("cds_ehr", sa.Column("fhir_servers", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop it (only for tests of the migration itself; batch mode for SQLite)."""
    with op.batch_alter_table("cds_ehr") as batch:
        batch.drop_column("fhir_servers")
