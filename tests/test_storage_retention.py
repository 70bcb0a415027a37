"""Retention (`twitch-triage purge`), migration command and the storage settings."""

from __future__ import annotations

import time

import orjson
import pytest
from sqlalchemy import insert, select, update

from api import create_app
from api.cli import PURGE_AGENT, main
from api.config import EXTENSION, ConfigError, Settings
from api.storage.models import Assessment, AuditRecord, CdsCard, CdsFeedback, IntakeLink

REQUEST = {
    "patient": {"age_years": 30, "reference": "Patient/r-1"},
    "twitching": {"body_sites": ["calf"]},
}
DAY_US = 86_400 * 1_000_000


def _age(app, bundle_id: str, days: int) -> None:
    """Make one stored assessment (and every AuditEvent) ``days`` older, in the database."""
    store = app.extensions[EXTENSION].store
    with store.engine.begin() as connection:
        connection.execute(
            update(Assessment)
            .where(Assessment.id == bundle_id)
            .values(issued_us=Assessment.issued_us - days * DAY_US)
        )
        connection.execute(
            update(AuditRecord).values(recorded_us=AuditRecord.recorded_us - days * DAY_US)
        )


def test_purge_deletes_only_what_is_older_than_the_retention(database_url, capsys):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    client = app.test_client()
    old = client.post("/v1/triage", json=REQUEST).get_json()
    new = client.post("/v1/triage", json=REQUEST).get_json()
    _age(app, old["id"], 40)
    env = {
        "TWITCH_TRIAGE_DATABASE_URL": database_url,
        "TWITCH_TRIAGE_RETENTION_DAYS": "30",
        "TWITCH_TRIAGE_AUDIT_RETENTION_DAYS": "0",
    }
    assert main(["purge"], env) == 0
    assert "purged 1 assessment(s) and 0 audit event(s)" in capsys.readouterr().out
    assert client.get(f"/fhir/Bundle/{old['id']}").status_code == 404
    assert client.get(f"/fhir/Provenance/{old['id']}").status_code == 404
    for entry in old["entry"]:
        resource = entry["resource"]
        assert client.get(f"/fhir/{resource['resourceType']}/{resource['id']}").status_code == 404
    assert client.get(f"/fhir/Bundle/{new['id']}").status_code == 200
    counts = app.extensions[EXTENSION].store.counts()
    assert counts["resource"] == len(new["entry"])
    audits_before = counts["audit_event"]
    assert audits_before > 0
    # Audit retention is separate: 30 days purges the aged AuditEvents, keeps today's.
    assert main(["purge"], {**env, "TWITCH_TRIAGE_AUDIT_RETENTION_DAYS": "30"}) == 0
    out = capsys.readouterr().out
    assert "purged 0 assessment(s)" in out
    remaining = app.extensions[EXTENSION].store.counts()["audit_event"]
    assert 0 < remaining < audits_before + 10


def test_purge_with_no_retention_keeps_everything(database_url, capsys):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    bundle = app.test_client().post("/v1/triage", json=REQUEST).get_json()
    _age(app, bundle["id"], 4000)
    assert main(["purge"], {"TWITCH_TRIAGE_DATABASE_URL": database_url}) == 0
    assert "purged 0 assessment(s) and 0 audit event(s)" in capsys.readouterr().out
    assert app.extensions[EXTENSION].store.counts()["assessment"] == 1


def test_migrate_command_creates_the_tables(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/m.sqlite3"
    assert main(["migrate"], {"TWITCH_TRIAGE_DATABASE_URL": url}) == 0
    assert "newest migration" in capsys.readouterr().out
    assert (tmp_path / "m.sqlite3").exists()


def test_purge_reports_an_unreachable_database(capsys):
    port_nobody_listens_on = 9  # discard: closed on loopback
    url = f"postgresql+psycopg://u@127.0.0.1:{port_nobody_listens_on}/none"
    assert main(["purge"], {"TWITCH_TRIAGE_DATABASE_URL": url}) == 1
    assert "unavailable" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("TWITCH_TRIAGE_DATABASE_URL", "mysql://x/y"),
        ("TWITCH_TRIAGE_DATABASE_URL", "sqlite:///:memory:"),
        ("TWITCH_TRIAGE_DATABASE_URL", "postgresql://no-driver/db"),
        ("TWITCH_TRIAGE_STORE_ASSESSMENTS", "maybe"),
        ("TWITCH_TRIAGE_RETENTION_DAYS", "-1"),
        ("TWITCH_TRIAGE_AUDIT_RETENTION_DAYS", "1e3"),
    ],
)
def test_bad_storage_settings_stop_start_up_naming_the_variable(name, raw):
    with pytest.raises(ConfigError, match=name):
        Settings.load(environ={name: raw})


def test_storage_settings_parse():
    settings = Settings.load(
        environ={
            "TWITCH_TRIAGE_DATABASE_URL": " postgresql+psycopg://u:p@h:5432/d ",
            "TWITCH_TRIAGE_STORE_ASSESSMENTS": "No",
            "TWITCH_TRIAGE_RETENTION_DAYS": "365",
        }
    )
    assert settings.database_url == "postgresql+psycopg://u:p@h:5432/d"
    assert settings.store_assessments is False
    assert settings.retention_days == 365
    assert settings.audit_retention_days == 0
    assert Settings.load(environ={}).database_url == ""


def test_default_store_is_a_sqlite_file_in_the_instance_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("TWITCH_TRIAGE_DATABASE_URL", raising=False)
    from api.storage.database import SQLITE_FILE, default_database_url  # noqa: PLC0415

    url = default_database_url(str(tmp_path / "instance"))
    assert url == f"sqlite+pysqlite:///{tmp_path / 'instance' / SQLITE_FILE}"
    assert (tmp_path / "instance").is_dir()
    app = create_app({"TESTING": True})
    assert app.extensions[EXTENSION].store.engine.url.database == str(
        __import__("pathlib").Path(app.instance_path) / SQLITE_FILE
    )


def test_purge_takes_the_rows_that_outlive_assessments_with_them(database_url, capsys):
    """Expired intake links (a patient reference) and CDS cards and feedback (a
    clinician's free text) older than the retention go too; newer ones stay."""
    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    store = app.extensions[EXTENSION].store
    now = time.time_ns() // 1000
    old, recent = now - 40 * DAY_US, now - DAY_US
    with store.engine.begin() as connection:
        for label, at in (("old", old), ("new", recent)):
            connection.execute(
                insert(IntakeLink).values(
                    id=f"link-{label}",
                    tenant="local",
                    client="c",
                    subject="Patient/r-1",
                    show="report",
                    created_us=at - DAY_US,
                    expires_us=at,
                )
            )
            connection.execute(
                insert(CdsCard).values(
                    uuid=f"card-{label}",
                    tenant="local",
                    ehr_id="e",
                    assessment_id=f"a-{label}",
                    hook_instance="h",
                    indicator="info",
                    issued_us=at,
                )
            )
            connection.execute(
                insert(CdsFeedback).values(
                    id=f"feedback-{label}",
                    tenant="local",
                    card_uuid=f"card-{label}",
                    assessment_id=f"a-{label}",
                    outcome="overridden",
                    outcome_us=at,
                    received_us=at,
                    body_json=b'{"overrideReason": {"userComment": "seen by the GP"}}',
                )
            )
    env = {"TWITCH_TRIAGE_DATABASE_URL": database_url, "TWITCH_TRIAGE_RETENTION_DAYS": "30"}
    assert main(["purge"], env) == 0
    out = capsys.readouterr().out
    assert "1 intake link(s), 1 CDS card(s) and 1 feedback entries" in out
    with store.engine.connect() as connection:
        for table, column in ((IntakeLink, "id"), (CdsCard, "uuid"), (CdsFeedback, "id")):
            kept = connection.execute(select(getattr(table, column))).scalars().all()
            assert [key.split("-")[-1] for key in kept] == ["new"], table


def test_a_purge_that_deletes_is_audited_for_operators(database_url, capsys):
    """Deleting stored data by retention leaves an AuditEvent (a delete by the operator,
    no tenant: no partner sees it); a purge that deletes nothing leaves none."""
    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    client = app.test_client()
    bundle = client.post("/v1/triage", json=REQUEST).get_json()
    store = app.extensions[EXTENSION].store
    env = {"TWITCH_TRIAGE_DATABASE_URL": database_url, "TWITCH_TRIAGE_RETENTION_DAYS": "30"}

    def operator_events() -> list[dict]:
        with store.engine.connect() as connection:
            rows = connection.execute(
                select(AuditRecord.body, AuditRecord.subtype, AuditRecord.action).where(
                    AuditRecord.tenant.is_(None), AuditRecord.subtype == "delete"
                )
            ).all()
        return [{"body": orjson.loads(body), "subtype": st, "action": ac} for body, st, ac in rows]

    assert main(["purge"], env) == 0  # nothing is old enough: nothing deleted, no event
    assert operator_events() == []
    _age(app, bundle["id"], 40)
    assert main(["purge"], env) == 0
    assert "purged 1 assessment(s)" in capsys.readouterr().out
    (event,) = operator_events()
    assert event["action"] == "D"
    assert event["body"]["agent"][0]["who"] == {"display": PURGE_AGENT}
    assert event["body"]["outcome"] == "0"
    assert "Patient" not in orjson.dumps(event["body"]).decode()  # no PHI in the event
