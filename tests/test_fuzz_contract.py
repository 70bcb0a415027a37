"""Contract fuzzing: schemathesis drives the app from the committed openapi.yaml.

Every operation in ``openapi.yaml`` is called in-process through the WSGI app
(no server, no network) with schema-valid and schema-violating data, and every
response goes through ALL of schemathesis's checks: no 5xx, documented status
codes, content types and headers, responses valid against their schema (FHIR
JSON is ``application/fhir+json``, which schemathesis parses as JSON; the
canary test below proves it), schema-violating requests rejected with a 4xx,
schema-valid ones accepted, and the resource and auth checks (vacuous here:
no resources are created and there is no auth, but enabled so they start
working the day the contract grows them).

Bounded and reproducible for CI: a fixed seed, ``deterministic`` generation
(Hypothesis derandomised, no example database) and a capped number of
examples per operation; the coverage phase adds the boundary values of every
range, length and enum (about 1,000 requests for ``POST /v1/triage``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import ServerError
from schemathesis.openapi.checks import JsonSchemaError

from api import create_app
from api.services.assessments import StoredTriage
from tools.openapi import OPENAPI_PATH

#: Fuzzing-phase examples per operation (the coverage phase runs on top of these).
MAX_EXAMPLES = 300
SEED = 20251121

APP = create_app({"TESTING": True})

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        # Every call carries the test client's key (issue 11) as the contract's own bearer
        # scheme, so schemathesis knows it is explicit auth; its auth checks also call
        # without it and with a wrong one and expect the documented 401.
        "auth": {"openapi": {"apiKey": {"bearer": APP.config["TEST_API_KEY"]}}},
        "generation": {
            "mode": "all",  # positive and negative data
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            # No links between operations in openapi.yaml: nothing to chain.
            "stateful": {"enabled": False},
        },
        # Every check schemathesis has; none is disabled.
        "checks": {"enabled": True},
        "operations": [
            {
                # A schema-violating token request is refused as OAuth says (400, 401), or,
                # when an over-long field (`client_assertion` past its maxLength, in 4-byte
                # characters percent-encoded) takes the body past TWITCH_TRIAGE_MAX_BODY_BYTES,
                # by the documented 413 before any field is read. Nothing else.
                "include-path": "/auth/token",
                "checks": {"negative_data_rejection": {"expected-statuses": [400, 401, 413]}},
            }
        ],
    }
)

# The CDS Hooks POSTs answer only a JWT the EHR signs for each call (aud = the URL, a
# fresh jti, a registered key), which no fuzzer case carries: every call would be the
# documented 401. tests/test_cds_hooks.py validates their requests and responses against
# these same schemas; GET /cds-services (public) is fuzzed like the rest.
SCHEMA = schemathesis.openapi.from_path(OPENAPI_PATH, config=CONFIG).exclude(
    path_regex=r"^/cds-services/"
)
SCHEMA.app = APP


@SCHEMA.parametrize()
def test_every_operation_honours_the_contract(case):
    case.call_and_validate()


def test_every_schemathesis_check_is_enabled():
    """A check added by a schemathesis upgrade must not be silently skipped."""
    load_all_checks()
    config = SCHEMA.config.checks_config_for(operation=None, phase=None)
    names = CHECKS.get_all_names()
    assert "negative_data_rejection" in names
    assert "positive_data_acceptance" in names
    disabled = [name for name in names if not config.get_by_name(name=name).enabled]
    assert disabled == []


def test_every_operation_is_fuzzed():
    labels = {result.ok().label for result in SCHEMA.get_all_operations()}
    assert {"POST /v1/triage", "GET /healthz", "GET /openapi.yaml"} <= labels


VALID = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}


def _triage_case() -> Any:
    operation = SCHEMA["/v1/triage"]["POST"]
    return operation.Case(
        body=VALID,
        media_type="application/json",
        headers={"Authorization": f"Bearer {APP.config['TEST_API_KEY']}"},
    )


def test_a_valid_call_passes_every_check():
    response = _triage_case().call_and_validate()
    assert response.status_code == 200


@pytest.mark.parametrize(
    "broken",
    [
        {"resourceType": "Bundle", "type": "collection"},  # no entry, no timestamp
        {"resourceType": "Bundle", "type": "searchset", "timestamp": "x", "entry": []},
    ],
    ids=["missing-entry", "wrong-type"],
)
def test_canary_a_bundle_off_contract_is_caught(monkeypatch, broken):
    """application/fhir+json bodies really are validated as JSON against the schema."""
    # The body sent is what storage serialised (it gives the Bundle its ids), so break that.
    monkeypatch.setattr(
        "api.http.stored_triage",
        lambda *_a, **_k: StoredTriage(
            body=json.dumps(broken).encode(), bundle_id="x", stored=False
        ),
    )
    with pytest.raises(BaseExceptionGroup) as info:
        _triage_case().call_and_validate()
    assert info.group_contains(JsonSchemaError, match="Response violates schema")


def test_canary_a_server_error_is_caught(monkeypatch):
    def broken(_request: object) -> None:
        raise RuntimeError("engine failure")

    monkeypatch.setattr("api.services.triage.evaluate", broken)
    with pytest.raises(BaseExceptionGroup) as info:
        _triage_case().call_and_validate()
    assert info.group_contains(ServerError)
