"""A Bundle rendered as stored (``identified=True``) is byte for byte what ``identify`` made.

The triage renders its Bundle with ids and ``meta`` in place instead of copying every
entry afterwards; the JSON answered and stored must not change by one byte, for any
request, both Bundle types, with or without a patient reference.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import requests

from api.fhir import FhirContext, FhirSettings, as_transaction, render_triage_bundle
from api.storage.records import identify
from triage import evaluate

CONTEXT = FhirContext.build(FhirSettings())
NOW = datetime(2026, 11, 27, 21, 0, 0, 123456, tzinfo=UTC)


def _render(request: dict, *, identified: bool, bundle_type: str) -> dict:
    """The Bundle with the same ids and time every call, so two renders are comparable."""
    counter = itertools.count(1)
    bundle = render_triage_bundle(
        request,
        evaluate(request),
        settings=CONTEXT.settings,
        tables=CONTEXT.tables,
        now=NOW,
        new_id=lambda: f"00000000-0000-4000-8000-{next(counter):012x}",
        identified=identified,
    )
    return as_transaction(bundle) if bundle_type == "transaction" else bundle


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.sampled_from(("collection", "transaction")), st.booleans())
def test_identified_rendering_is_identify_of_the_plain_bundle(request, bundle_type, referenced):
    if referenced:
        request = {**request, "patient": {**(request.get("patient") or {}), "reference": "P/1"}}
    plain = _render(request, identified=False, bundle_type=bundle_type)
    plain_bytes = orjson.dumps(plain)
    expected = orjson.dumps(identify(plain, plain["timestamp"]))
    identified = _render(request, identified=True, bundle_type=bundle_type)
    assert orjson.dumps(identified) == expected
    assert identified["meta"] == {"versionId": "1", "lastUpdated": identified["timestamp"]}
    for entry in identified["entry"]:
        assert entry["fullUrl"] == f"urn:uuid:{entry['resource']['id']}"
    # Rendering with ids touched nothing the next plain Bundle shares.
    assert orjson.dumps(_render(request, identified=False, bundle_type=bundle_type)) == plain_bytes
