"""The embedded SQLite store is private to its owner: it holds patient data and the trail.

Found by an authorization review: ``db.sqlite3`` and its ``-wal``/``-shm`` files were
created 0644 (world-readable) under the usual umask, while the key file was 0600.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import VALID_REQUEST

import api


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The umask most systems start services with (022: files 0644 by default)."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _triage_once(database: Path) -> None:
    app = api.create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{database}"})
    response = app.test_client().post("/v1/triage", json=VALID_REQUEST)
    assert response.status_code == 200, response.get_data(as_text=True)


def test_a_new_store_and_its_wal_files_are_readable_by_their_owner_only(tmp_path):
    folder = tmp_path / "instance" / "data"
    database = folder / "store.sqlite3"
    _triage_once(database)
    files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
    assert all(file.exists() for file in files)
    assert {file.name: _mode(file) for file in files} == {file.name: 0o600 for file in files}
    assert _mode(folder) == 0o700


def test_an_existing_world_readable_store_loses_the_worlds_access(tmp_path):
    database = tmp_path / "store.sqlite3"
    sqlite3.connect(database).close()
    database.chmod(0o644)
    _triage_once(database)
    assert _mode(database) == 0o640  # the group's access is the operator's choice
    wal = Path(f"{database}-wal")
    assert wal.exists()
    assert not _mode(wal) & 0o007
