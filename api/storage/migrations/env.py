"""Alembic environment: run on the connection the caller hands over.

``api.storage.migrate`` puts an open connection in ``config.attributes``, so
migrations run programmatically (no alembic.ini, no URL in a file) and inside
the caller's lock; ``alembic`` on the command line is not needed.
"""

from __future__ import annotations

from alembic import context

from api.storage.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
