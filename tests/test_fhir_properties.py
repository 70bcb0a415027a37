"""Properties of the Bundle over generated valid requests (the engine's own strategy).

Every request the API can accept must give a Bundle that validates, keeps the
PROTOCOL.md §9 layout, and whose QuestionnaireResponse means the same request:
triaging it again gives the same level, rules and next questions (what issue 4's
``$triage`` relies on).
"""

from __future__ import annotations

import orjson
from fhir.resources.R4B.bundle import Bundle
from hypothesis import HealthCheck, given, settings
from strategies import requests

from api.fhir import FhirSettings, questionnaire_response_to_request, render_triage_bundle
from api.fhir import codesystems as cs
from tests.support.conformance import bundle_problems
from triage import evaluate

SETTINGS = FhirSettings()
BASE = cs.DEFAULT_CANONICAL_BASE


def _wire(request):
    bundle = render_triage_bundle(request, evaluate(request), settings=SETTINGS)
    return orjson.loads(orjson.dumps(bundle))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_layout_holds_and_questionnaire_response_means_the_same_request(request):
    bundle = _wire(request)
    assert bundle_problems(bundle, canonical_base=BASE) == []
    back = questionnaire_response_to_request(bundle["entry"][0]["resource"], canonical_base=BASE)
    before, after = evaluate(request), evaluate(back)
    assert after == before


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_generated_bundles_validate_against_r4b(request):
    Bundle.model_validate(_wire(request))
