"""The shortcuts of a stored triage's hot path give exactly what the long way gave.

The triage renders its Bundle with ids and ``meta`` in place instead of copying every
entry afterwards (``identify``); the JSON answered and stored must not change by one
byte, for any request, both Bundle types, with or without a patient reference. An
AuditEvent names a canonical UUID request id without parsing it, as parsing would.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import requests

from api.fhir import FhirContext, FhirSettings, as_transaction, render_triage_bundle
from api.fhir.audit import AuditFacts, build_audit_event
from api.storage.records import TriageFacts, assessment_record, identify
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


def _named_request_id(request_id: str) -> str:
    facts = AuditFacts(
        id="a",
        recorded="2026-11-27T21:00:00.123Z",
        interaction="create",
        status=200,
        request_id=request_id,
        client_address=None,
        software_version="1",
    )
    return build_audit_event(facts)["entity"][-1]["what"]["identifier"]["value"]


def _parsed(request_id: str) -> str:
    """What the AuditEvent named before the shortcut: the UUID parsed and printed."""
    try:
        return f"urn:uuid:{uuid.UUID(request_id)}"
    except ValueError:
        return request_id


@given(
    st.uuids().map(str)
    | st.uuids().map(lambda u: str(u).upper())
    | st.uuids().map(lambda u: u.hex)
    | st.uuids().map(lambda u: u.urn)
    | st.text(alphabet="0123456789abcdefABCDEF-{}", max_size=40)
    | st.text(max_size=40)
)
def test_a_request_id_is_named_as_parsing_it_would(request_id):
    assert _named_request_id(request_id) == _parsed(request_id)


def _codes_read_afresh(resource: dict) -> tuple[tuple[str, str], ...]:
    if resource["resourceType"] != "Observation":
        return ()
    return tuple(
        (coding.get("system", ""), coding["code"])
        for coding in resource["code"].get("coding", ())
        if "code" in coding
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_the_search_codes_of_a_record_are_those_of_its_observations(request):
    bundle = _render(request, identified=True, bundle_type="collection")
    facts = TriageFacts(
        request=request,
        result=evaluate(request),
        source="v1",
        request_id="r",
        received_us=0,
        fhir_version="4.0",
        software_version="1",
        canonical_base=CONTEXT.canonical_base,
    )
    body = orjson.dumps(bundle)
    for _ in range(2):  # the second time from the codes kept per shared fragment
        record = assessment_record(facts, bundle, body)
        assert [index.codes for index in record.resources] == [
            _codes_read_afresh(entry["resource"]) for entry in bundle["entry"]
        ]
