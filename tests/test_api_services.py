"""The use cases without Flask: what every caller (HTTP, $triage, later CDS Hooks) gets."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from strategies import requests

from api.fhir import FhirContext, FhirSettings
from api.services import (
    InvalidInputError,
    NotFoundError,
    published_resource,
    triage_intake,
    triage_questionnaire_response,
)
from triage import KNOWLEDGE_BASE_VERSION, evaluate

CONTEXT = FhirContext.build(FhirSettings())
REQUEST = {
    "patient": {"age_years": 12},
    "twitching": {"body_sites": ["neck"], "timing": "after_exercise", "duration_days": 1},
    "symptoms": {"headache": True, "loss_of_balance": True},
    "history": {"head_impact": True, "falls_last_7_days": 3},
}


def test_an_outcome_carries_what_storage_needs():
    outcome = triage_intake(REQUEST, context=CONTEXT, source="v1")
    assert outcome.source == "v1"
    assert outcome.request == REQUEST
    assert outcome.result == evaluate(REQUEST)
    assert outcome.knowledge_base_version == KNOWLEDGE_BASE_VERSION
    assert outcome.received <= outcome.issued
    assert outcome.received.tzinfo is not None
    bundle = outcome.bundle
    assert bundle["type"] == "collection"
    assert bundle["timestamp"].startswith(outcome.issued.strftime("%Y-%m-%dT%H:%M:%S"))
    level = bundle["entry"][1]["resource"]["valueCodeableConcept"]["coding"][0]["code"]
    assert level == outcome.result.level.code


def test_transaction_bundles_come_from_the_same_service():
    outcome = triage_intake(REQUEST, context=CONTEXT, bundle_type="transaction")
    assert outcome.bundle["type"] == "transaction"
    assert {e["request"]["method"] for e in outcome.bundle["entry"]} == {"POST"}


def test_invalid_fields_are_coded_issues_at_their_json_paths():
    bad = {**REQUEST, "history": {"medications": [{"class": "nope"}]}, "symptoms": {"x": 1}}
    with pytest.raises(InvalidInputError) as caught:
        triage_intake(bad, context=CONTEXT)
    found = {(issue.code, issue.expression) for issue in caught.value.issues}
    assert ("code-invalid", ("history.medications[0].class",)) in found
    assert ("invalid", ("symptoms.x",)) in found


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(requests())
def test_fhir_triage_of_the_emitted_questionnaire_response_gives_the_same_result(request):
    first = triage_intake(request, context=CONTEXT)
    qr = orjson.loads(orjson.dumps(first.bundle["entry"][0]["resource"]))
    again = triage_questionnaire_response(qr, context=CONTEXT)
    assert again.source == "fhir"
    assert again.result == first.result
    # An empty section ({}) leaves no item, so it comes back omitted: both mean unknown.
    assert again.request == {key: value for key, value in first.request.items() if value != {}}


def test_questionnaire_response_errors_name_the_item():
    qr = {"resourceType": "QuestionnaireResponse", "status": "completed", "item": []}
    with pytest.raises(InvalidInputError) as caught:
        triage_questionnaire_response(qr, context=CONTEXT)
    # Every problem is reported: the missing questionnaire first, then each required
    # item that no answer gives, named by FHIRPath and linkId.
    first, *items = caught.value.issues
    assert first.code == "required"
    assert first.expression == ("QuestionnaireResponse.questionnaire",)
    assert items
    assert all(issue.code == "required" for issue in items)
    assert all(issue.diagnostics.startswith("linkId ") for issue in items)


def test_published_resources_and_not_found():
    body = published_resource(CONTEXT, "Questionnaire", "twitch-triage-intake", "4.0")
    assert orjson.loads(body)["resourceType"] == "Questionnaire"
    with pytest.raises(NotFoundError):
        published_resource(CONTEXT, "Questionnaire", "other", "4.0")
