"""Anonymous refusals are audited within a per-address budget, then only refused.

Found by an authorization review: 200 requests without credentials (searches, forged
report links) in 1.8 s left 200 durable audit rows, kept for the audit retention period;
the rate limiter counts only identified callers. Every such row is an fsync'd write, so
an anonymous flood could fill the trail and the disk. ``ANONYMOUS_AUDIT_LIMIT`` bounds
what one address can make the store keep; identified callers are audited without limit.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from conftest import anonymous, create_app
from flask import Flask
from sqlalchemy import func, select

from api.config import EXTENSION
from api.storage.models import AuditRecord

BUDGET = 5


def _audit_rows(app: Flask) -> int:
    store = app.extensions[EXTENSION].store
    with store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(AuditRecord)).scalar_one()


def _app(tmp_path: Any, limit: str) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{tmp_path}/store.sqlite3",
            "ANONYMOUS_AUDIT_LIMIT": limit,
        }
    )


def _read_without_credentials(app: Flask, address: str) -> int:
    response = anonymous(app).get(
        f"/fhir/Bundle/{uuid.uuid4()}", environ_base={"REMOTE_ADDR": address}
    )
    return response.status_code


def test_one_address_fills_its_budget_then_is_refused_unaudited(tmp_path):
    app = _app(tmp_path, f"{BUDGET}/minute")
    before = _audit_rows(app)
    statuses = [_read_without_credentials(app, "203.0.113.7") for _ in range(3 * BUDGET)]
    assert statuses == [401] * (3 * BUDGET)  # refused alike, over the budget or not
    assert _audit_rows(app) - before == BUDGET
    # Another address has its own budget; an identified client is audited regardless.
    assert _read_without_credentials(app, "203.0.113.8") == 401
    assert _audit_rows(app) - before == BUDGET + 1
    client = app.test_client()
    for _ in range(2 * BUDGET):
        assert client.get(f"/fhir/Bundle/{uuid.uuid4()}").status_code == 404
    assert _audit_rows(app) - before == BUDGET + 1 + 2 * BUDGET


@pytest.mark.parametrize("limit", [""])
def test_without_a_budget_every_anonymous_refusal_is_audited(tmp_path, limit):
    app = _app(tmp_path, limit)
    before = _audit_rows(app)
    for _ in range(3 * BUDGET):
        assert _read_without_credentials(app, "203.0.113.7") == 401
    assert _audit_rows(app) - before == 3 * BUDGET


def test_a_bad_budget_is_refused_at_start(tmp_path):
    with pytest.raises(ValueError, match="ANONYMOUS_AUDIT_LIMIT"):
        _app(tmp_path, "lots")
