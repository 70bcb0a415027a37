"""Seed a store with many assessments, then time FHIR searches over it (issue 10).

    python -m bench.seed_store --count 100000 --database-url sqlite:////tmp/seed.sqlite3
    python -m bench.seed_store --count 100000 --database-url postgresql+psycopg://…/db

Assessments are real: the shared examples' requests (each under one of
``--patients`` patient references), evaluated and rendered as the API does,
issued at times spread over the last year, stored through the repository in
batches. Then each search runs ``--repeat`` times through the app (Flask test
client, so parsing, SQL, Bundle assembly and the audit write are all counted)
and the median, p95 and p99 are printed. ``--skip-seed`` times an existing store.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from api import create_app
from api.auth.clients import LOCAL_TENANT, create_client
from api.config import EXTENSION
from api.fhir import render_triage_bundle
from api.storage.assessments import software_version
from api.storage.records import TriageFacts, assessment_record, identify
from schemas import load_triage_request
from triage import evaluate

EXAMPLES = Path(__file__).resolve().parents[1] / ".." / "shared" / "protocol" / "examples-1.1"
SEED = 20261127
BATCH = 500


def _examples() -> list[dict]:
    files = sorted(EXAMPLES.resolve().glob("*.json"))
    if not files:
        raise SystemExit(f"no shared examples in {EXAMPLES.resolve()}")
    return [json.loads(f.read_text(encoding="utf-8"))["request"] for f in files]


def seed(app: object, count: int, patients: int) -> float:
    """Store ``count`` assessments; returns the seconds it took."""
    state = app.extensions[EXTENSION]  # type: ignore[attr-defined]
    rng = random.Random(SEED)
    requests = _examples()
    now = datetime.now(UTC)
    started = time.perf_counter()
    done = 0
    while done < count:
        records = []
        for _ in range(min(BATCH, count - done)):
            request = dict(rng.choice(requests))
            patient = dict(request.get("patient") or {})
            patient["reference"] = f"Patient/p-{rng.randrange(patients)}"
            request["patient"] = patient
            loaded = load_triage_request(request)
            result = evaluate(loaded)
            issued = now - timedelta(seconds=rng.randrange(365 * 86400))
            bundle = render_triage_bundle(
                loaded, result, settings=state.fhir.settings, tables=state.fhir.tables, now=issued
            )
            identified = identify(bundle, bundle["timestamp"])
            facts = TriageFacts(
                request=loaded,
                result=result,
                source="v1/triage",
                request_id="00000000-0000-4000-8000-000000000000",
                received_us=0,
                fhir_version="4.0",
                software_version=software_version(),
                canonical_base=state.fhir.canonical_base,
            )
            record = assessment_record(facts, identified, orjson.dumps(identified))
            records.append(dataclasses.replace(record, tenant=LOCAL_TENANT, client="seed"))
        with state.store.unit_of_work() as work:
            for record in records:
                work.add_assessment(record)
        done += len(records)
        if done % 10000 < BATCH:
            print(f"  {done} stored, {time.perf_counter() - started:.0f} s", flush=True)
    return time.perf_counter() - started


def percentile(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def time_searches(app: object, repeat: int) -> list[dict[str, object]]:
    """Each search ``repeat`` times as a client of the ``local`` tenant (the seeded rows')."""
    state = app.extensions[EXTENSION]  # type: ignore[attr-defined]
    key = create_client(state.clients, tenant=LOCAL_TENANT, label="bench.seed_store").api_key
    client = app.test_client()  # type: ignore[attr-defined]
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    recent = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%d")
    month = (datetime.now(UTC) - timedelta(days=40)).strftime("%Y-%m")
    queries = {
        "Observation by subject": "/fhir/Observation?subject=Patient/p-17",
        "Observation by subject and code": "/fhir/Observation?subject=Patient/p-17"
        "&code=http://loinc.org|11283-9",
        "Observation by code (many matches)": "/fhir/Observation?code=11283-9",
        "Observation by rule code and month": "/fhir/Observation?code=RF-SCREEN-INCOMPLETE"
        f"&date={month}",
        "Observation by a code nothing carries": "/fhir/Observation?code=no-such-code",
        "Observation by _lastUpdated (last week)": f"/fhir/Observation?_lastUpdated=ge{recent}",
        "QuestionnaireResponse by subject": "/fhir/QuestionnaireResponse?subject=Patient/p-17",
        "QuestionnaireResponse by authored (month)": "/fhir/QuestionnaireResponse"
        f"?authored={month}",
    }
    out = []
    for label, url in queries.items():
        first = client.get(url)
        if first.status_code != 200:
            raise SystemExit(f"{url}: {first.status_code} {first.get_data(as_text=True)[:300]}")
        page = first.get_json()
        next_url = next((k["url"] for k in page["link"] if k["relation"] == "next"), None)
        seconds = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.get(url)
            seconds.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        ordered = sorted(seconds)
        row = {
            "query": label,
            "total": page.get("total", "over 1000"),
            "page": len(page.get("entry", [])),
            "median_ms": statistics.median(ordered),
            "p95_ms": percentile(ordered, 0.95),
            "p99_ms": percentile(ordered, 0.99),
        }
        if next_url:
            started = time.perf_counter()
            client.get(next_url.removeprefix("http://localhost"))
            row["next_page_ms"] = (time.perf_counter() - started) * 1000
        out.append(row)
        print(
            f"  {label:44} total {row['total']!s:>9}  median {row['median_ms']:7.2f} ms  "
            f"p95 {row['p95_ms']:7.2f}  p99 {row['p99_ms']:7.2f}",
            flush=True,
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.seed_store", description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--skip-seed", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    app = create_app({"DATABASE_URL": args.database_url, "RATE_LIMIT": ""})
    counts = app.extensions[EXTENSION].store.counts()
    print(f"store {args.database_url.split('://')[0]}: {counts}")
    seconds = None
    if not args.skip_seed:
        print(f"seeding {args.count} assessments for {args.patients} patients")
        seconds = seed(app, args.count, args.patients)
        counts = app.extensions[EXTENSION].store.counts()
        print(f"seeded in {seconds:.0f} s: {counts}")
    print(f"search latency over {counts['assessment']} assessments ({args.repeat} runs each):")
    rows = time_searches(app, args.repeat)
    if args.json:
        print(json.dumps({"counts": counts, "seed_seconds": seconds, "searches": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
