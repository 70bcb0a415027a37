"""Erasure (``DELETE /fhir/Bundle/{id}``) takes everything tied to the assessment (F7).

Its CDS cards and the feedback on them (a clinician's free text), the intake link
whose submission produced it (a patient reference): gone in the deletion's commit,
on SQLite and PostgreSQL alike, by the same code as the retention purge. Feedback
on a card of an erased assessment is refused like feedback on an unknown card.
Rows written while an erasure runs never outlive it (PostgreSQL: real concurrency).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from cds_support import (
    FEEDBACK,
    TENANT,
    Ehr,
    call,
    feedback_entry,
    hook_request,
    intake_for,
    registered_ehr,  # noqa: F401 (the ehr fixture)
)
from conftest import anonymous
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, insert, select, update
from storage_support import app_on_each_backend  # noqa: F401 (app on SQLite and PostgreSQL)

from api.auth.clients import create_client
from api.cli import main
from api.config import EXTENSION
from api.services.intake import REFUSED
from api.storage.cds import CardRecord, FeedbackRecord
from api.storage.intake_links import attach_assessment, find_link
from api.storage.models import Assessment, AuditRecord, CdsCard, CdsFeedback, IntakeLink

FHIR = "application/fhir+json"
COMMENT = "patient Jane Doe refused"
VALID = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}
DAY_US = 86_400 * 1_000_000


def _bearer(app: Flask, tenant: str = TENANT) -> dict[str, str]:
    key = create_client(app.extensions[EXTENSION].clients, tenant=tenant).api_key
    return {"Authorization": f"Bearer {key}"}


def _rows(app: Flask, table: Any, column: Any, value: str) -> int:
    with app.extensions[EXTENSION].store.engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(table).where(column == value)
        ).scalar_one()


def _card(client: FlaskClient, ehr: Ehr, patient: str) -> tuple[str, str]:
    """A card for a new stored assessment of ``patient``: (card uuid, Bundle id)."""
    intake = intake_for(client, VALID, patient)
    response = call(client, ehr, hook_request(patient, intake))
    assert response.status_code == 200, response.data[:800]
    card = response.json["cards"][0]
    return card["uuid"], urlsplit(card["links"][0]["url"]).path.removeprefix("/reports/")


def _overridden(card: str) -> dict[str, Any]:
    return {
        "feedback": [feedback_entry(card, "overridden", overrideReason={"userComment": COMMENT})]
    }


def _events(app: Flask, request_id: str) -> list[dict[str, Any]]:
    with app.extensions[EXTENSION].store.engine.connect() as connection:
        bodies = connection.execute(
            select(AuditRecord.body).where(AuditRecord.request_id == request_id)
        ).scalars()
        return [orjson.loads(body) for body in bodies]


def test_erasure_takes_the_cards_and_feedback_and_refuses_new_feedback(app, client, ehr):
    card, bundle_id = _card(client, ehr, "E1")
    kept_card, kept_bundle = _card(client, ehr, "E1-other")
    for uuid_ in (card, kept_card):
        assert call(client, ehr, _overridden(uuid_), path=FEEDBACK).json == {"stored": 1}
    headers = _bearer(app)
    assert anonymous(app).delete(f"/fhir/Bundle/{bundle_id}", headers=headers).status_code == 204
    assert anonymous(app).get(f"/fhir/Bundle/{bundle_id}", headers=headers).status_code == 404

    # No row of the erased assessment is left: not its card, not the clinician's comment.
    assert _rows(app, CdsCard, CdsCard.assessment_id, bundle_id) == 0
    assert _rows(app, CdsFeedback, CdsFeedback.assessment_id, bundle_id) == 0
    assert _rows(app, CdsFeedback, CdsFeedback.card_uuid, card) == 0
    with app.extensions[EXTENSION].store.engine.connect() as connection:
        comments = connection.execute(select(CdsFeedback.body_json)).scalars().all()
    assert [COMMENT in body.decode() for body in comments] == [True]  # the other one's
    # The other assessment of the same tenant keeps its card and feedback.
    assert _rows(app, CdsCard, CdsCard.assessment_id, kept_bundle) == 1
    assert _rows(app, CdsFeedback, CdsFeedback.card_uuid, kept_card) == 1

    # Feedback on the erased card: refused exactly as on a card never given out.
    refused = call(client, ehr, {"feedback": [feedback_entry(card)]}, path=FEEDBACK)
    never = str(uuid.uuid4())
    unknown = call(client, ehr, {"feedback": [feedback_entry(never)]}, path=FEEDBACK)
    assert refused.status_code == unknown.status_code == 404
    assert refused.content_type.startswith(FHIR)
    (issue,) = refused.json["issue"]
    assert issue["code"] == "not-found"
    assert issue["expression"] == ["feedback[0].card"]
    assert issue["diagnostics"].replace(card, never) == unknown.json["issue"][0]["diagnostics"]
    assert _rows(app, CdsFeedback, CdsFeedback.card_uuid, card) == 0
    # Audited as a refusal (outcome 4), naming no erased Bundle.
    (event,) = _events(app, refused.headers["X-Request-ID"])
    assert (event["subtype"][0]["code"], event["outcome"]) == ("operation", "4")
    assert bundle_id not in json.dumps(event)
    # Its AuditEvents stay (no patient data): create, feedback, delete, the refused read.
    trail = anonymous(app).get(f"/fhir/AuditEvent?entity=Bundle/{bundle_id}", headers=headers)
    kinds = sorted(e["resource"]["subtype"][0]["code"] for e in trail.json["entry"])
    assert kinds == ["create", "delete", "operation", "read"]


def _link(client: FlaskClient, patient: str) -> dict[str, Any]:
    created = client.post("/v1/intake-links", json={"patient": {"reference": patient}})
    assert created.status_code == 201, created.data[:500]
    return created.get_json()


def _submit(app: Flask, client: FlaskClient, link: dict[str, Any]) -> Any:
    answered = client.post("/v1/triage", json=VALID).get_json()["entry"][0]["resource"]
    for key in ("id", "meta", "subject"):
        answered.pop(key, None)
    parts = urlsplit(link["url"])
    return anonymous(app).post(
        f"{parts.path}?{parts.query}",
        data=json.dumps(answered),
        content_type=FHIR,
        headers={"Accept": FHIR},
    )


def test_erasure_deletes_the_used_intake_link_that_produced_it(app, client):
    link, other = _link(client, "Patient/E2"), _link(client, "Patient/E3")
    submitted = _submit(app, client, link)
    assert submitted.status_code == 303, submitted.data[:500]
    store = app.extensions[EXTENSION].store
    bundle_id = find_link(store, link["id"]).assessment_id
    assert bundle_id is not None
    assert client.delete(f"/fhir/Bundle/{bundle_id}").status_code == 204
    assert find_link(store, link["id"]) is None  # its patient reference went with it
    assert _rows(app, IntakeLink, IntakeLink.assessment_id, bundle_id) == 0
    # The link opens and accepts nothing, refused as a used (or forged) link is.
    parts = urlsplit(link["url"])
    page = anonymous(app).get(f"{parts.path}?{parts.query}", headers={"Accept": FHIR})
    assert page.status_code == 404
    again = _submit(app, client, link)
    assert again.status_code == 404
    assert again.get_json()["issue"][0]["diagnostics"] == REFUSED
    assert find_link(store, other["id"]) is not None  # another, unused link stays


def test_another_tenants_erasure_takes_nothing(app, client, ehr):
    card, bundle_id = _card(client, ehr, "E4")
    assert call(client, ehr, _overridden(card), path=FEEDBACK).status_code == 200
    # ``client`` is of the tenant "local"; the card's assessment is TENANT's.
    assert client.delete(f"/fhir/Bundle/{bundle_id}").status_code == 404
    assert _rows(app, CdsCard, CdsCard.uuid, card) == 1
    assert _rows(app, CdsFeedback, CdsFeedback.card_uuid, card) == 1


def _feedback_record(card: str, bundle_id: str) -> FeedbackRecord:
    now = time.time_ns() // 1000
    return FeedbackRecord(str(uuid.uuid4()), TENANT, card, bundle_id, "overridden", now, now, b"{}")


def test_rows_arriving_after_the_erasure_are_not_kept(app, client, ehr):
    """A card, feedback or link attachment written just after its assessment was erased
    (the request began before) is not kept: nothing outlives an erasure."""
    state = app.extensions[EXTENSION]
    card, bundle_id = _card(client, ehr, "E5")
    link = _link(client, "Patient/E5")
    assert _submit(app, client, link).status_code == 303
    state.store.write(lambda work: work.delete_assessment(bundle_id, tenant=TENANT))
    late = CardRecord(str(uuid.uuid4()), TENANT, "ehr", bundle_id, "h", "info", 1)
    assert state.cds.add_card(late) is False
    assert _rows(app, CdsCard, CdsCard.assessment_id, bundle_id) == 0
    assert state.cds.add_feedback([_feedback_record(card, bundle_id)]) == {card}
    assert _rows(app, CdsFeedback, CdsFeedback.assessment_id, bundle_id) == 0
    # The link's submission stored ``bundle_id``'s sibling; attaching an erased one
    # deletes the used link instead of naming the erased assessment.
    assert attach_assessment(state.store, link["id"], bundle_id) is False
    assert find_link(state.store, link["id"]) is None
    # With storage off no assessment exists, yet the card is kept for its feedback.
    unstored = CardRecord(str(uuid.uuid4()), TENANT, "ehr", str(uuid.uuid4()), "h", "info", 1)
    assert state.cds.add_card(unstored, stored=False) is True
    assert (
        state.cds.add_feedback([_feedback_record(unstored.uuid, unstored.assessment_id)]) == set()
    )


def test_purge_takes_everything_tied_to_a_purged_assessment(app, client, ehr, database_url, capsys):
    """A purged assessment's card, feedback and used intake link go with it, whatever
    their own times (the same code as erasure); what belongs to a kept one stays."""
    store = app.extensions[EXTENSION].store
    card, old = _card(client, ehr, "E6")
    kept_card, kept = _card(client, ehr, "E7")
    for uuid_ in (card, kept_card):
        assert call(client, ehr, _overridden(uuid_), path=FEEDBACK).status_code == 200
    now = time.time_ns() // 1000
    with store.engine.begin() as connection:
        connection.execute(
            update(Assessment)
            .where(Assessment.id == old)
            .values(issued_us=Assessment.issued_us - 40 * DAY_US)
        )
        connection.execute(
            insert(IntakeLink).values(
                id="link-used",
                tenant=TENANT,
                client="c",
                subject="Patient/E6",
                show="report",
                created_us=now,
                expires_us=now + DAY_US,  # not expired: goes because its assessment goes
                used_us=now,
                assessment_id=old,
            )
        )
    env = {"TWITCH_TRIAGE_DATABASE_URL": database_url, "TWITCH_TRIAGE_RETENTION_DAYS": "30"}
    assert main(["purge"], env) == 0
    out = capsys.readouterr().out
    assert "purged 1 assessment(s)" in out
    assert "1 intake link(s), 1 CDS card(s) and 1 feedback entries" in out
    assert _rows(app, IntakeLink, IntakeLink.assessment_id, old) == 0
    assert _rows(app, CdsCard, CdsCard.assessment_id, old) == 0
    assert _rows(app, CdsFeedback, CdsFeedback.assessment_id, old) == 0
    assert _rows(app, CdsCard, CdsCard.assessment_id, kept) == 1
    assert _rows(app, CdsFeedback, CdsFeedback.assessment_id, kept) == 1


def _held(statement: Any) -> bool:
    """Whether ``statement`` is a locking read (``FOR SHARE``; SQLite omits the clause)."""
    return getattr(statement, "_for_update_arg", None) is not None


@pytest.mark.parametrize("writer", ["feedback", "card", "link"])
def test_a_write_racing_an_erasure_never_outlives_it(app, client, ehr, writer):
    """Two real transactions: a feedback, card or link write that holds its rows when the
    erasure starts makes the erasure wait, and is then erased with the assessment."""
    state = app.extensions[EXTENSION]
    card, bundle_id = _card(client, ehr, "E8")
    with state.store.engine.begin() as connection:
        connection.execute(
            insert(IntakeLink).values(
                id="link-racing",
                tenant=TENANT,
                client="c",
                subject="Patient/E8",
                show="report",
                created_us=1,
                expires_us=time.time_ns() // 1000 + DAY_US,
                used_us=1,
            )
        )
    release, holding = threading.Event(), threading.Event()
    wrote: list[object] = []
    original = state.store.unit_of_work

    @contextlib.contextmanager
    def paused_unit_of_work() -> Iterator[Any]:
        """The writer's transaction, paused after its locking read until released."""
        with original() as work:
            real = work.connection.execute

            def execute(statement: Any, *args: Any, **kwargs: Any) -> Any:
                result = real(statement, *args, **kwargs)
                if _held(statement) and not holding.is_set():
                    rows = result.fetchall()  # read and held: now let the erasure start
                    holding.set()
                    assert release.wait(30)
                    return _Rows(rows)
                return result

            work.connection.execute = execute  # type: ignore[method-assign]
            yield work

    def write() -> None:
        if writer == "feedback":
            wrote.append(state.cds.add_feedback([_feedback_record(card, bundle_id)]))
        elif writer == "card":
            late = CardRecord(str(uuid.uuid4()), TENANT, "ehr", bundle_id, "h", "info", 1)
            wrote.append(state.cds.add_card(late))
        else:
            wrote.append(attach_assessment(state.store, "link-racing", bundle_id))

    state.store.unit_of_work = paused_unit_of_work  # type: ignore[method-assign]
    writing = threading.Thread(target=write)
    writing.start()
    assert holding.wait(30)
    state.store.unit_of_work = original  # type: ignore[method-assign]
    erased: list[bool] = []
    erasing = threading.Thread(
        target=lambda: erased.append(
            state.store.write(lambda work: work.delete_assessment(bundle_id, tenant=TENANT))
        )
    )
    erasing.start()
    erasing.join(1.0)
    assert erasing.is_alive()  # waits for the writer's transaction
    release.set()
    writing.join(30)
    erasing.join(30)
    assert erased == [True]
    assert wrote == ([set()] if writer == "feedback" else [True])
    assert _rows(app, CdsCard, CdsCard.assessment_id, bundle_id) == 0
    assert _rows(app, CdsFeedback, CdsFeedback.assessment_id, bundle_id) == 0
    assert _rows(app, IntakeLink, IntakeLink.assessment_id, bundle_id) == 0
    assert find_link(state.store, "link-racing") is None or writer != "link"


class _Rows:
    """A fetched result handed back in place of the live one (``scalars``, iteration)."""

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalars(self) -> Iterator[Any]:
        return iter([row[0] for row in self._rows])
