"""Durable storage of assessments and their audit trail (SQLAlchemy 2 + Alembic).

``database`` creates the engine (SQLite in WAL mode or PostgreSQL) and runs the
migrations; ``models`` declares the tables; ``repository`` is the only code
that reads or writes them; ``records`` turns one triage into what is stored.
"""

from __future__ import annotations

from api.storage.database import (
    StorageUnavailableError,
    default_database_url,
    make_engine,
    migrate,
)
from api.storage.repository import DuplicateKeyError, Store

__all__ = [
    "DuplicateKeyError",
    "StorageUnavailableError",
    "Store",
    "default_database_url",
    "make_engine",
    "migrate",
]
