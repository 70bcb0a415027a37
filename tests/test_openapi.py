"""openapi.yaml is generated from the code, valid OpenAPI 3.1, and complete."""

from __future__ import annotations

import re
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
        "/fhir/Observation/_search",  # the same searches by POST (form body)
        "/fhir/QuestionnaireResponse/_search",
        "/fhir/AuditEvent/_search",
        # The clinician report page (issue 14; tests/test_report_page.py).
        "/reports/{id}",
        # CDS Hooks (issue 13; tests/test_cds_hooks.py validates against these schemas).
        "/cds-services",
        "/cds-services/twitch-triage",
        "/cds-services/twitch-triage/feedback",
        # SMART Backend Services (tests/test_auth_smart.py; fuzzed like the rest).
        "/.well-known/smart-configuration",
        "/auth/token",
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


#: Routes of the app that are not API operations, so not in the contract, and why.
NOT_IN_CONTRACT: dict[tuple[str, str], str] = {
    ("get", "/fhir/.well-known/smart-configuration"): "the same view and document as "
    "GET /.well-known/smart-configuration, served again at the FHIR base where SMART "
    "discovery looks; described once, and that operation's description names this path",
    ("get", "/intake/<link_id>"): "the intake page (HTML for a browser), opened with a "
    "signed link made by POST /v1/intake-links, which is in the contract",
    ("post", "/intake/<link_id>"): "the intake page's own form submission (the page's "
    "script posts it; the signed link is the credential)",
    ("get", "/intake/thank-you"): "the page a browser lands on after an intake submission",
    ("get", "/reports/"): "the report page's 404 for a link without an id (HTML)",
    ("get", "/reports/<any_path:rest>"): "the report page's 404 for a malformed link (HTML)",
    ("get", "/static/<path:filename>"): "the CSS, JS and icons of the HTML pages",
}


def _contract_paths(rule: str) -> list[str]:
    """The contract's path(s) for a Flask rule: ``any(...)`` expanded, ids as ``{id}``."""
    path = re.sub(r"<fhir_id:[a-z_]+>|<resource_id>", "{id}", rule)
    found = re.search(r"<any\(([^)]*)\):[a-z_]+>", path)
    if found is None:
        return [path]
    names = found.group(1).split(", ")
    return [path[: found.start()] + name + path[found.end() :] for name in names]


def test_every_route_is_in_the_contract_or_says_why_not(spec):
    """A route added without its contract (or a listed exception gone stale) fails here."""
    from conftest import create_app  # noqa: PLC0415 (the app of the test suite)

    app = create_app({"TESTING": True})
    documented = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    undocumented: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths = {(method.lower(), path) for path in _contract_paths(rule.rule)}
            if not paths <= documented:
                undocumented.add((method.lower(), rule.rule))
    assert undocumented == set(NOT_IN_CONTRACT)
    for method, rule in NOT_IN_CONTRACT:
        assert (method, rule) not in documented


def test_smart_operations_are_public_and_answer_oauth_errors(spec):
    discovery = spec["paths"]["/.well-known/smart-configuration"]["get"]
    assert discovery["security"] == []
    assert "/fhir/.well-known/smart-configuration" in discovery["description"]
    token = spec["paths"]["/auth/token"]["post"]
    assert token["security"] == []
    assert list(token["requestBody"]["content"]) == ["application/x-www-form-urlencoded"]
    schemas = spec["components"]["schemas"]
    form = schemas["TokenRequest"]
    assert form["required"] == ["grant_type", "client_assertion_type", "client_assertion"]
    assert "scope" in form["properties"]  # optional: the registered scopes are the default
    assert "RFC 6749 §3.3" in token["description"]
    assert "not an OperationOutcome" in token["description"]
    responses = token["responses"]
    assert set(responses) == {
        "200", "400", "401", "405", "413", "414", "417", "429", "431", "500", "503",
    }  # fmt: skip
    for status in ("200", "400", "401", "429"):
        headers = responses[status]["headers"]
        assert headers["Cache-Control"]["schema"]["const"] == "no-store"
        assert headers["Pragma"]["schema"]["const"] == "no-cache"
    for status, codes in (
        ("400", {"invalid_request", "invalid_scope"}),
        ("401", {"invalid_client"}),
        ("429", {"invalid_request"}),  # a §5.2 code: none names rate limiting
    ):
        oauth = responses[status]["content"]["application/json"]["schema"]["$ref"]
        error = schemas[oauth.rsplit("/", 1)[1]]["properties"]["error"]["enum"]
        assert set(codes) <= set(error)
        assert set(error) <= {  # RFC 6749 §5.2
            "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
            "unsupported_grant_type", "invalid_scope",
        }  # fmt: skip
    assert responses["401"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/OAuthError401"
    )
    assert responses["429"]["headers"]["Retry-After"]["required"] is True
    # What the HTTP layer answers before the token logic is the API's usual OperationOutcome.
    for status in ("405", "413", "500", "503"):
        assert list(responses[status]["content"]) == ["application/fhir+json"]


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
