"""The Alembic migrations create exactly the models' tables, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import exc, inspect, text

from api.storage.cds import CdsStore, EhrRecord
from api.storage.database import (
    _alembic_config,
    current_revision,
    head_revision,
    make_engine,
    migrate,
)
from api.storage.models import Base
from api.storage.repository import Store


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


def test_ehrs_registered_before_0006_may_name_no_fhir_server(database_url):
    """An EHR of an older database keeps working, and starts with no FHIR server (the
    service then fetches nothing for it); registering again sets its list; 0006 goes
    back down."""
    engine = make_engine(database_url)
    with engine.connect() as connection:
        command.upgrade(_alembic_config(connection), "0005_credential_epoch")
        connection.execute(text("INSERT INTO tenant (name, created_us) VALUES ('t', 1)"))
        connection.execute(
            text(
                "INSERT INTO cds_ehr (id, tenant, iss, jku, created_us) "
                "VALUES ('ehr_old', 't', 'https://old.example', 'https://old.example/k', 1)"
            )
        )
        connection.commit()
    migrate(engine)
    cds = CdsStore(Store(engine))
    old = cds.by_iss("https://old.example")
    assert old is not None
    assert old.fhir_servers == ()
    assert cds.by_id("ehr_old") == old
    servers = ("https://old.example/fhir", "https://old.example/fhir2")
    again = cds.register(EhrRecord("ehr_new", "t", old.iss, None, old.jku, 2, fhir_servers=servers))
    assert again.id == "ehr_old"  # the same EHR, re-registered
    assert cds.by_id("ehr_old") == again
    assert again.fhir_servers == servers
    with engine.connect() as connection:
        command.downgrade(_alembic_config(connection), "0005_credential_epoch")
        connection.commit()
    columns = {column["name"] for column in inspect(engine).get_columns("cds_ehr")}
    assert "fhir_servers" not in columns
    assert "jku" in columns
    engine.dispose()


def test_0007_indexes_what_erasure_looks_up_and_goes_back_down(database_url):
    """Erasure finds an assessment's intake link and CDS feedback by ``assessment_id``:
    0007 indexes both on a database that has rows, and its downgrade drops them."""
    engine = make_engine(database_url)
    with engine.connect() as connection:
        command.upgrade(_alembic_config(connection), "0006_ehr_fhir_servers")
        connection.execute(text("INSERT INTO tenant (name, created_us) VALUES ('t', 1)"))
        connection.execute(
            text(
                "INSERT INTO intake_link (id, tenant, client, show, created_us, expires_us, "
                "used_us, assessment_id) VALUES ('l', 't', 'c', 'report', 1, 2, 1, 'a')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO cds_feedback (id, tenant, card_uuid, assessment_id, outcome, "
                "outcome_us, received_us, body_json) VALUES ('f', 't', 'c', 'a', 'accepted', "
                "1, 1, :body)"
            ),
            {"body": b"{}"},
        )
        connection.commit()
    migrate(engine)
    assert current_revision(engine) == head_revision()

    def indexed(table: str) -> dict[str, list[str | None]]:
        return {i["name"]: i["column_names"] for i in inspect(engine).get_indexes(table)}

    assert indexed("intake_link")["ix_intake_link_assessment_id"] == ["assessment_id"]
    assert indexed("cds_feedback")["ix_cds_feedback_assessment_id"] == ["assessment_id"]
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM intake_link")).scalar_one() == 1
        command.downgrade(_alembic_config(connection), "0006_ehr_fhir_servers")
        connection.commit()
    assert "ix_intake_link_assessment_id" not in indexed("intake_link")
    assert "ix_cds_feedback_assessment_id" not in indexed("cds_feedback")
    engine.dispose()
