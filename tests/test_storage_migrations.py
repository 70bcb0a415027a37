"""The Alembic migrations create exactly the models' tables, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import exc, inspect, text

from api.storage.database import current_revision, head_revision, make_engine, migrate
from api.storage.models import Base


def test_migrated_schema_matches_the_models(database_url):
    engine = make_engine(database_url)
    assert current_revision(engine) is None
    migrate(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    engine.dispose()


def test_migrating_twice_and_concurrently_is_harmless(database_url):
    engines = [make_engine(database_url) for _ in range(3)]
    errors: list[BaseException] = []

    def run(engine):
        try:
            migrate(engine)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    migrate(engines[0])
    tables = set(inspect(engines[0]).get_table_names())
    assert {"assessment", "resource", "resource_code", "audit_event", "alembic_version"} <= tables
    for engine in engines:
        engine.dispose()


def test_search_indexes_exist(database_url):
    engine = make_engine(database_url)
    migrate(engine)
    indexes = {
        index["name"]: index["column_names"] for index in inspect(engine).get_indexes("resource")
    }
    assert indexes["ix_resource_type_subject_date"] == ["resource_type", "subject", "date_us"]
    codes = {i["name"]: i["column_names"] for i in inspect(engine).get_indexes("resource_code")}
    assert codes["ix_resource_code_code_system"] == ["code", "system"]
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/wal.sqlite3")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_an_engine_error_never_holds_the_statements_values(database_url):
    """A failed statement's text (what a logged traceback shows) names no bound value:
    values are subject ids, answers and search terms."""
    engine = make_engine(database_url)
    migrate(engine)
    subject = "Patient/LOGGED-NEVER-0042"
    with pytest.raises(exc.SQLAlchemyError) as raised, engine.begin() as connection:
        connection.execute(text("INSERT INTO no_such_table (x) VALUES (:x)"), {"x": subject})
    assert subject not in str(raised.value)
    assert "hidden" in str(raised.value)
    engine.dispose()
