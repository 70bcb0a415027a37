"""Group commit in gevent workers: concurrent writes share a transaction, none is lost.

Each test runs a real gevent-patched Python process (as gunicorn's gevent worker
is) against a real SQLite file or PostgreSQL database: many greenlets store
triages at once through the service layer; every one that returned is read back
with identical bytes, fewer transactions than writes were committed, and a
duplicate idempotency key fails that write alone (409), not its group.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import VALID_REQUEST

WORKER = r"""
from gevent import monkey
monkey.patch_all()  # what gunicorn's gevent worker does first

import json, sys
import gevent
from sqlalchemy import event
from api import create_app
from api.config import EXTENSION
from api.services.assessments import Recording, stored_triage
from api.services.errors import IdempotencyConflictError
from api.services.triage import triage_intake
from api.storage.assessments import Exchange

url, payload, count = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
app = create_app({"DATABASE_URL": url})
state = app.extensions[EXTENSION]
commits = []
event.listen(state.store.engine, "commit", lambda conn: commits.append(1))


def one(n, key=None):
    recording = Recording(
        store=state.store,
        keep=True,
        exchange=Exchange(request_id=f"r-{n}", client_address=None, software_version="t",
                          tenant="t", client_id="c"),
        canonical_base=state.fhir.canonical_base,
        idempotency_key=key,
    )
    try:
        stored = stored_triage(
            lambda: triage_intake(payload, context=state.fhir), recording=recording,
            source="v1/triage", fhir_version="4.0", bundle_type="collection", payload=payload,
        )
    except IdempotencyConflictError:
        return {"n": n, "conflict": True}
    return {"n": n, "id": stored.bundle_id, "body": stored.body.decode()}


jobs = [gevent.spawn(one, n) for n in range(count)]
jobs += [gevent.spawn(one, count + k, "same-key") for k in range(2)]
gevent.joinall(jobs, raise_error=True)
answers = [job.value for job in jobs]
commits_during = len(commits)
read = {}
for answer in answers:
    if "id" in answer:
        stored = state.store.assessment(answer["id"], tenant="t")
        read[answer["id"]] = None if stored is None else bytes(stored.bundle_json).decode()
print(json.dumps({"answers": answers, "commits": commits_during, "read": read}))
"""

COUNT = 24


def run_worker(url: str, payload: dict[str, object]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", WORKER, url, json.dumps(payload), str(COUNT)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_concurrent_writes_share_commits_and_all_are_durable(database_url: str) -> None:

    result = run_worker(database_url, VALID_REQUEST)
    answers = result["answers"]
    stored = [a for a in answers if "id" in a]
    conflicts = [a for a in answers if a.get("conflict")]
    # Every plain write and exactly one of the two same-key writes were stored.
    assert len(stored) == COUNT + 1
    assert len(conflicts) == 1
    assert len({a["id"] for a in stored}) == len(stored)
    for answer in stored:
        assert result["read"][answer["id"]] == answer["body"], "read back differs from the answer"
    # Grouped: fewer transactions than writes (the conflict's group is retried alone).
    assert result["commits"] < len(stored)
