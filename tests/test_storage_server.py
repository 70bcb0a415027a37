"""The store under a real gunicorn: nothing lost to kill -9, PostgreSQL outages, two nodes.

Marked ``server`` (they run in CI). Bounded: 2,000 POSTs per load test from 4
client threads, every socket with a timeout, every server and PostgreSQL
cluster stopped however the test ends.

* **Nothing lost**: while the load runs a thread kills a gunicorn worker with
  SIGKILL every 0.25 s (the master forks a new one). Afterwards every request
  that got a 200 reads back byte-identical at its ``Location``, and every
  stored assessment has all its resources (and no resource lacks its
  assessment). No request may get a 500.
* **PostgreSQL stopped mid-run**: 503 with ``Retry-After`` while it is down,
  never a 500, and 200s again once it is back, with no restart of the API.
* **Two API instances on one PostgreSQL**: what one stores, the other reads,
  searches and deletes.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from storage_support import create_database, private_postgres

from api.storage import Store, make_engine
from bench.http import ServerProcess, api_argv, free_port, request, running

pytestmark = pytest.mark.server

HEADERS = {"Content-Type": "application/json"}
LOAD_REQUESTS = 2000
OUTAGE_REQUESTS = 6000
CLIENTS = 4


def body_for(index: int) -> bytes:
    """Distinct requests (the patient differs) so a mix-up between them would show."""
    return orjson.dumps(
        {
            "patient": {"age_years": 10 + index % 60, "reference": f"Patient/load-{index}"},
            "twitching": {"body_sites": ["calf"], "duration_days": 1 + index % 30},
            "symptoms": {"headache": index % 3 == 0},
        }
    )


@contextlib.contextmanager
def serving(
    database_url: str, monkeypatch: pytest.MonkeyPatch, workers: int = 2
) -> Iterator[ServerProcess]:
    monkeypatch.setenv("TWITCH_TRIAGE_DATABASE_URL", database_url)
    port = free_port()
    with running("api", api_argv(port, workers), port) as server:
        yield server


def worker_pids(master: int) -> list[int]:
    path = Path(f"/proc/{master}/task/{master}/children")
    with contextlib.suppress(OSError):
        return [int(pid) for pid in path.read_text().split()]
    return []


class Load:
    """POSTs from several threads; records every outcome."""

    def __init__(self, port: int, total: int, stop: threading.Event | None = None) -> None:
        self.port = port
        self.total = total
        self.stop = stop or threading.Event()
        self.next = 0
        self.lock = threading.Lock()
        self.ok: dict[int, tuple[str, bytes]] = {}  # index → (location, body)
        self.statuses: Counter[int | str] = Counter()
        self.retry_after: set[str] = set()
        self.log: list[tuple[float, int | str]] = []

    def _take(self) -> int | None:
        with self.lock:
            if self.next >= self.total or self.stop.is_set():
                return None
            self.next += 1
            return self.next - 1

    def client(self) -> None:
        while (index := self._take()) is not None:
            try:
                status, headers, body = request(
                    self.port, "POST", "/v1/triage", body=body_for(index), headers=HEADERS
                )
            except (OSError, http.client.HTTPException) as exc:
                outcome: int | str = type(exc).__name__  # a killed worker drops its socket
                with self.lock:
                    self.statuses[outcome] += 1
                    self.log.append((time.monotonic(), outcome))
                continue
            with self.lock:
                self.statuses[status] += 1
                self.log.append((time.monotonic(), status))
                if status == 200:
                    self.ok[index] = (headers["Location"], body)
                elif status == 503:
                    self.retry_after.add(headers.get("Retry-After", ""))
            if status == 503:
                time.sleep(0.05)  # a client backs off (briefly: the test must stay short)

    def run(self, during: threading.Thread | None = None) -> None:
        threads = [threading.Thread(target=self.client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        if during is not None:
            during.start()
        for thread in threads:
            thread.join(300)
        if during is not None:
            during.join(60)


def assert_everything_readable(port: int, load: Load, database_url: str) -> None:
    """Every 200 is stored byte-identical; every 20th is also read back over HTTP."""
    engine = make_engine(database_url)
    store = Store(engine)
    for index, (location, body) in load.ok.items():
        bundle_id = location.rsplit("/", 1)[1]
        stored = store.assessment(bundle_id, tenant="local")  # the served key is local's
        assert stored is not None, (index, location)
        assert bytes(stored.bundle_json) == body, index
        subject = json.loads(body)["entry"][0]["resource"]["subject"]["reference"]
        assert subject == f"Patient/load-{index}"
        if index % 20 == 0:
            path = location.split("://", 1)[1].split("/", 1)[1]
            status, _, read = request(port, "GET", f"/{path}")
            assert (status, read) == (200, body), index
    engine.dispose()


def assert_no_partial_assessment(database_url: str) -> None:
    """Every assessment has one index row per Bundle entry; no orphan rows."""
    engine = make_engine(database_url)
    store = Store(engine)
    from sqlalchemy import func, select  # noqa: PLC0415

    from api.storage.models import Assessment, StoredResource  # noqa: PLC0415

    with engine.connect() as connection:
        per = dict(
            connection.execute(
                select(StoredResource.assessment_id, func.count()).group_by(
                    StoredResource.assessment_id
                )
            ).all()
        )
        bundles = connection.execute(select(Assessment.id, Assessment.bundle_json)).all()
    for assessment_id, bundle_json in bundles:
        assert per.get(assessment_id) == len(orjson.loads(bundle_json)["entry"]), assessment_id
    assert set(per) <= {a for a, _ in bundles}
    assert store.counts()["assessment"] == len(bundles)
    engine.dispose()


def nothing_lost(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with serving(database_url, monkeypatch, workers=3) as server:
        assert server.process is not None
        master = server.process.pid
        stop = threading.Event()
        kills = Counter[str]()

        def killer() -> None:
            while not stop.wait(0.25):
                pids = worker_pids(master)
                if pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pids[kills["n"] % len(pids)], signal.SIGKILL)
                        kills["n"] += 1

        load = Load(server.port, LOAD_REQUESTS)
        killing = threading.Thread(target=killer)
        killing.start()
        try:
            load.run()
        finally:
            stop.set()
            killing.join(10)
        assert kills["n"] >= 5, kills
        assert 500 not in load.statuses, load.statuses
        assert len(load.ok) >= LOAD_REQUESTS // 2, load.statuses
        assert set(load.statuses) <= {200, 503, "RemoteDisconnected", "ConnectionResetError",
                                      "BrokenPipeError", "ConnectionRefusedError",
                                      "IncompleteRead", "BadStatusLine"}, load.statuses  # fmt: skip
        assert_everything_readable(server.port, load, database_url)
    assert_no_partial_assessment(database_url)


def test_nothing_lost_when_workers_are_killed_sqlite(tmp_path, monkeypatch):
    nothing_lost(f"sqlite:///{tmp_path}/kill.sqlite3", monkeypatch)


def test_nothing_lost_when_workers_are_killed_postgresql(postgres_url, monkeypatch):
    nothing_lost(create_database(postgres_url), monkeypatch)


def test_postgresql_stopped_mid_run_gives_503_then_service_resumes(monkeypatch):
    with private_postgres() as pg:
        database_url = create_database(pg.url())
        with serving(database_url, monkeypatch) as server:
            # Time-bound, not count-bound: 2 s of service, 3 s down, 4 s after the restart
            # (at most OUTAGE_REQUESTS requests, however fast the machine).
            load = Load(server.port, OUTAGE_REQUESTS)
            marks: dict[str, float] = {}

            def outage() -> None:
                time.sleep(2.0)
                marks["down"] = time.monotonic()
                pg.stop("fast")
                time.sleep(3.0)
                pg.start()
                marks["up"] = time.monotonic()
                time.sleep(4.0)
                load.stop.set()

            load.run(during=threading.Thread(target=outage))
            assert "up" in marks
            assert 500 not in load.statuses, load.statuses
            assert load.statuses[503] > 0, load.statuses
            assert load.retry_after == {"5"}
            # Service came back by itself: the requests well after the restart all succeed.
            after = [status for at, status in load.log if at > marks["up"] + 2.0]
            assert after, "the load ended too soon after the restart"
            assert set(after) == {200}, Counter(after)
            # A read during an outage is a 503 too, and the store answers again now.
            assert_everything_readable(server.port, load, database_url)
            pg.stop("fast")
            some = next(iter(load.ok.values()))[0].split("://", 1)[1].split("/", 1)[1]
            status, headers, body = request(server.port, "GET", f"/{some}")
            assert status == 503
            assert headers["Retry-After"] == "5"
            assert json.loads(body)["issue"][0]["code"] == "transient"
            pg.start()
        assert_no_partial_assessment(database_url)


def test_two_api_instances_share_one_postgresql(postgres_url, monkeypatch):
    database_url = create_database(postgres_url)
    with serving(database_url, monkeypatch) as one, serving(database_url, monkeypatch) as two:
        patient = f"Patient/{uuid.uuid4().hex[:12]}"
        body = orjson.dumps({"patient": {"age_years": 40, "reference": patient},
                             "twitching": {"body_sites": ["calf"]}})  # fmt: skip
        status, headers, created = request(
            one.port, "POST", "/v1/triage", body=body, headers=HEADERS
        )
        assert status == 200
        bundle: dict[str, Any] = json.loads(created)
        status, _, read = request(two.port, "GET", f"/fhir/Bundle/{bundle['id']}")
        assert (status, read) == (200, created)
        status, _, found = request(two.port, "GET", f"/fhir/Observation?subject={patient}")
        assert status == 200
        ids = {e["resource"]["id"] for e in json.loads(found)["entry"]}
        assert ids == {
            e["resource"]["id"]
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "Observation"
        }
        assert request(two.port, "DELETE", f"/fhir/Bundle/{bundle['id']}")[0] == 204
        assert request(one.port, "GET", f"/fhir/Bundle/{bundle['id']}")[0] == 404
        assert headers["Location"].endswith(f"/fhir/Bundle/{bundle['id']}")
