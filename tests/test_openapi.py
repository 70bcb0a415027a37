"""openapi.yaml is generated from the code, valid OpenAPI 3.1, and complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import mutated_requests
from hypothesis import HealthCheck, given, settings
from marshmallow import ValidationError
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from schemas import load_triage_request
from schemas.fields import TEXT_PATTERN
from tools.openapi import OPENAPI_PATH, build_spec, render_yaml
from triage.vocabulary import ITEMS, SECTIONS, Kind

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return build_spec()


def test_committed_openapi_yaml_is_up_to_date():
    assert OPENAPI_PATH == REPO / "openapi.yaml"
    committed = OPENAPI_PATH.read_text(encoding="utf-8")
    assert committed == render_yaml(), "openapi.yaml is stale: run python -m tools.openapi --write"


def test_packaged_copy_is_the_committed_file():
    assert (REPO / "api" / "openapi.yaml").read_bytes() == OPENAPI_PATH.read_bytes()


def test_committed_document_is_valid_openapi_3_1():
    document = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_endpoint_is_described(spec):
    assert set(spec["paths"]) == {
        "/v1/triage",
        "/v1/intake-links",  # issue 14; tests/test_intake_links.py exercises it
        "/healthz",
        "/openapi.yaml",
        # The FHIR interface (tests/test_fhir_interop_contract.py checks them).
        "/fhir/metadata",
        "/fhir/Questionnaire/{id}",
        "/fhir/CodeSystem/{id}",
        "/fhir/ValueSet/{id}",
        "/fhir/OperationDefinition/{id}",
        "/fhir/QuestionnaireResponse/$triage",
        # Stored assessments (issue 10; tests/test_storage_*.py exercise them).
        "/fhir/Bundle/{id}",
        "/fhir/QuestionnaireResponse/{id}",
        "/fhir/Observation/{id}",
        "/fhir/Provenance/{id}",
        "/fhir/AuditEvent/{id}",
        "/fhir/Observation",
        "/fhir/QuestionnaireResponse",
        "/fhir/AuditEvent",
        # The clinician report page (issue 14; tests/test_report_page.py).
        "/reports/{id}",
        # CDS Hooks (issue 13; tests/test_cds_hooks.py validates against these schemas).
        "/cds-services",
        "/cds-services/twitch-triage",
        "/cds-services/twitch-triage/feedback",
    }
    responses = spec["paths"]["/v1/triage"]["post"]["responses"]
    assert set(responses) == {
        "200", "400", "401", "403", "405", "406", "409", "413", "414", "415", "417", "422",
        "429", "431", "500", "503",
    }  # fmt: skip
    for status, response in responses.items():
        (media,) = response["content"]
        assert media == "application/fhir+json"
        expected = "Bundle" if status == "200" else "OperationOutcome"
        assert response["content"][media]["schema"]["$ref"].endswith(f"/{expected}")


def _property(spec: dict[str, Any], link_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(JSON schema of the item, schema of the object holding it)."""
    schemas = spec["components"]["schemas"]
    parts = link_id.split(".")
    holder = schemas["TriageRequest"]
    for part in parts[:-1]:
        ref = holder["properties"][part]
        if "anyOf" in ref:
            ref = ref["anyOf"][0]
        if "items" in ref:
            ref = ref["items"]
        holder = schemas[ref["$ref"].rsplit("/", 1)[1]]
    return holder["properties"][parts[-1]], holder


@pytest.mark.parametrize("link_id", sorted(ITEMS))
def test_every_vocabulary_item_is_in_the_request_schema(spec, link_id):
    item = ITEMS[link_id]
    prop, holder = _property(spec, link_id)
    assert holder["additionalProperties"] is False
    assert (item.name in holder.get("required", [])) is item.required
    types = prop.get("type")
    nullable = isinstance(types, list) and "null" in types
    assert nullable is not item.required
    if item.is_numeric:
        assert (prop["minimum"], prop["maximum"]) == (item.minimum, item.maximum)
        assert "integer" in types if item.kind is Kind.INTEGER else "number" in types
    if item.kind is Kind.CODE:
        assert [v for v in prop["enum"] if v is not None] == [c.code for c in item.codes]
    if item.kind is Kind.CODES:
        assert prop["items"]["enum"] == [c.code for c in item.codes]
        assert prop.get("uniqueItems", False) is item.unique
        assert prop.get("minItems") == item.min_items
        assert prop.get("maxItems") == item.max_items
    if item.kind in (Kind.STRING, Kind.REFERENCE):
        assert prop["minLength"] == 1
        assert prop["maxLength"] == item.max_length
        assert prop["pattern"] == (item.pattern or TEXT_PATTERN)
    if item.kind is Kind.BOOLEAN:
        assert types == ["boolean", "null"]
    assert prop["x-link-id"] == link_id


def test_required_sections(spec):
    request = spec["components"]["schemas"]["TriageRequest"]
    assert request["required"] == [s.name for s in SECTIONS if s.required]


def test_bundle_layout_is_documented(spec):
    bundle = spec["components"]["schemas"]["Bundle"]
    assert bundle["properties"]["resourceType"] == {"const": "Bundle"}
    assert bundle["properties"]["type"] == {"enum": ["collection", "transaction"]}
    for topic in ("advice", "unanswered", "knowledge-base version"):
        assert topic in bundle["description"]


def test_error_codes_of_422_are_listed(spec):
    description = spec["paths"]["/v1/triage"]["post"]["responses"]["422"]["description"]
    for code in ("required", "value", "code-invalid", "invalid"):
        assert f"`{code}`" in description


# --- the published JSON Schema and the loader agree ------------------------------------------


@pytest.fixture(scope="module")
def request_validator() -> OAS31Validator:
    document = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    schema = {"$ref": "#/components/schemas/TriageRequest", "components": document["components"]}
    return OAS31Validator(schema)


def _loads(request: Any) -> bool:
    try:
        load_triage_request(request)
    except ValidationError:
        return False
    return True


def test_the_documented_example_is_valid_both_ways(request_validator, spec):
    content = spec["paths"]["/v1/triage"]["post"]["requestBody"]["content"]
    example = content["application/json"]["example"]
    assert request_validator.is_valid(example)
    assert _loads(example)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_requests())
def test_openapi_schema_accepts_exactly_what_the_api_loads(request_validator, request):
    # Partners validating against openapi.yaml get the API's answer (lone surrogates
    # aside, which JSON Schema cannot express and the generator never produces).
    assert request_validator.is_valid(request) is _loads(request)
