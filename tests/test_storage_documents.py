"""Stored documents are compressed on disk and read back byte for byte (issue 10).

What is checked is what lies in the database (read with plain SQL, past the
column type) and what a client reads back through the API, on a fresh SQLite
file and on a real PostgreSQL database (``storage_support``); rows written
before compression existed must stay readable.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from storage_support import app_on_each_backend  # noqa: F401 (the app fixture: both backends)
from test_storage_api import REQUEST  # the stored-triage request of the storage tests

from api import create_app
from api.config import EXTENSION
from api.storage import documents
from api.storage.database import SQLITE_PAGE_SIZE
from api.storage.documents import ZSTD_MAGIC, pack, unpack

DOCUMENTS = ("request_json", "result_json", "bundle_json", "provenance_json")


def raw(app: Flask, sql: str, **params: Any) -> Any:
    """One row as the database holds it (plain SQL: no column type decodes it)."""
    engine = app.extensions[EXTENSION].store.engine
    with engine.connect() as connection:
        return connection.execute(text(sql), params).one()


def test_documents_are_stored_compressed_and_read_back_byte_for_byte(app, client):
    response = client.post("/v1/triage", json=REQUEST)
    assert response.status_code == 200
    bundle_id = response.get_json()["id"]
    row = raw(
        app,
        "SELECT request_json, result_json, bundle_json, provenance_json"
        " FROM assessment WHERE id = :id",
        id=bundle_id,
    )
    for name, stored in zip(DOCUMENTS, row, strict=True):
        assert bytes(stored)[:4] == ZSTD_MAGIC, name
    assert len(row.bundle_json) * 3 < len(response.data)  # the Bundle shrinks at least 3×
    assert unpack(bytes(row.bundle_json)) == response.data
    assert orjson.loads(unpack(bytes(row.request_json))) == REQUEST
    read = client.get(f"/fhir/Bundle/{bundle_id}")
    assert read.status_code == 200
    assert read.data == response.data


def test_audit_event_bodies_are_stored_compressed_and_searchable(app, client):
    response = client.post("/v1/triage", json=REQUEST)
    bundle_id = response.get_json()["id"]
    body = raw(app, "SELECT body FROM audit_event WHERE entity_id = :id", id=bundle_id).body
    assert bytes(body)[:4] == ZSTD_MAGIC
    found = client.get("/fhir/AuditEvent", query_string={"entity": f"Bundle/{bundle_id}"})
    assert found.status_code == 200
    events = [entry["resource"] for entry in found.get_json()["entry"]]
    assert events
    assert all(event["resourceType"] == "AuditEvent" for event in events)
    assert orjson.loads(unpack(bytes(body))) in events


def test_a_row_stored_before_compression_reads_as_it_was(app, client):
    """Rows written uncompressed (before this change) are served unchanged: no migration."""
    response = client.post("/v1/triage", json=REQUEST)
    bundle = response.get_json()
    # Another byte form of the same Bundle, stored plainly.
    legacy = orjson.dumps(bundle, option=orjson.OPT_INDENT_2)
    assert legacy != response.data
    engine = app.extensions[EXTENSION].store.engine
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE assessment SET bundle_json = :doc WHERE id = :id"),
            {"doc": legacy, "id": bundle["id"]},
        )
    read = client.get(f"/fhir/Bundle/{bundle['id']}")
    assert read.status_code == 200
    assert read.data == legacy
    level = bundle["entry"][1]["resource"]
    assert client.get(f"/fhir/Observation/{level['id']}").get_json() is not None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_pack_then_unpack_is_the_identity(document: bytes) -> None:
    packed = pack(document)
    assert packed[:4] == ZSTD_MAGIC
    assert unpack(packed) == document


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    )
)
def test_plain_json_is_never_mistaken_for_a_compressed_frame(value: Any) -> None:
    document = orjson.dumps(value)
    assert unpack(document) == document


def test_pooled_compressors_serve_concurrent_threads_each_their_own_document() -> None:
    """Threads packing and unpacking at once each get their own document back, and the
    pool keeps no more (de)compressors than were in use at once."""
    threads, rounds = 8, 200
    # Other tests' threads (16 concurrent appends compress on their own thread) leave
    # theirs in the pool: start from an empty one.
    documents._COMPRESSORS.clear()
    documents._DECOMPRESSORS.clear()
    start = threading.Barrier(threads)
    failures: list[str] = []

    def work(n: int) -> None:
        start.wait()
        for i in range(rounds):
            document = orjson.dumps({"thread": n, "round": i, "text": "x" * (n * 97 + i)})
            if unpack(pack(document)) != document:
                failures.append(f"thread {n} round {i}")

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    assert 1 <= len(documents._COMPRESSORS) <= threads
    assert 1 <= len(documents._DECOMPRESSORS) <= threads


def test_a_new_sqlite_file_uses_small_pages_and_an_old_one_keeps_its_own(tmp_path: Path):
    fresh = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"})
    assert fresh.test_client().post("/v1/triage", json=REQUEST).status_code == 200
    with sqlite3.connect(tmp_path / "new.db") as connection:
        assert connection.execute("PRAGMA page_size").fetchone()[0] == SQLITE_PAGE_SIZE
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as connection:  # a file made with SQLite's default pages
        connection.execute("PRAGMA page_size=4096")
        connection.execute("PRAGMA journal_mode=WAL")
    existing = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{old}"})
    client = existing.test_client()
    response = client.post("/v1/triage", json=REQUEST)
    assert response.status_code == 200
    assert client.get(f"/fhir/Bundle/{response.get_json()['id']}").data == response.data
    with sqlite3.connect(old) as connection:
        assert connection.execute("PRAGMA page_size").fetchone()[0] == 4096


def test_the_group_commit_compresses_the_declared_columns_once() -> None:
    """The plain-sqlite3 writer packs exactly the columns the model declares compressed,
    and a second call leaves them as they are (a frame packed twice would be stored)."""
    from api.storage.group_commit import (  # noqa: PLC0415 (the writer's internals)
        _ASSESSMENT_COLUMNS,
        _AUDIT_COLUMNS,
        Append,
    )

    assessment = tuple(
        b'{"doc": "%s"}' % name.encode() if name.endswith("_json") else name
        for name in _ASSESSMENT_COLUMNS
    )
    audit = tuple(b'{"audit": 1}' if name == "body" else name for name in _AUDIT_COLUMNS)
    job = Append(assessment, [], [], [audit], None)
    job.compress()
    packed = (job.assessment, list(job.audits))
    job.compress()
    assert (job.assessment, job.audits) == packed
    assert job.assessment is not None
    for name, before, after in zip(_ASSESSMENT_COLUMNS, assessment, job.assessment, strict=True):
        if name.endswith("_json"):
            assert after[:4] == ZSTD_MAGIC
            assert unpack(after) == before
        else:
            assert after == before, name
    body = _AUDIT_COLUMNS.index("body")
    assert unpack(job.audits[0][body]) == b'{"audit": 1}'
    assert job.audits[0][:body] == audit[:body]
