"""Content negotiation (Accept → FHIR version) and the request Content-Type rule."""

from __future__ import annotations

import json

import pytest
from conftest import VALID_REQUEST

from api.errors import NotAcceptableError, UnsupportedMediaTypeError
from api.negotiation import negotiate_fhir_version, require_json_content_type

FHIR = "application/fhir+json"


@pytest.mark.parametrize(
    ("accept", "version"),
    [
        (None, "4.0"),
        ("", "4.0"),
        ("*/*", "4.0"),
        ("application/*", "4.0"),
        ("application/json", "4.0"),
        ("application/fhir+json", "4.0"),
        ("Application/FHIR+JSON", "4.0"),
        ("application/fhir+json; fhirVersion=4.0", "4.0"),
        ("application/fhir+json; fhirversion=4.0.1", "4.0"),
        ("application/fhir+json; fhirVersion=5.0", "5.0"),
        ("application/json; fhirVersion=5.0", "5.0"),
        ("text/html, application/json;q=0.1", "4.0"),
        # q-values: the better-rated version wins, whatever the order.
        (f"{FHIR}; fhirVersion=4.0; q=0.4, {FHIR}; fhirVersion=5.0", "5.0"),
        (f"{FHIR}; fhirVersion=5.0; q=0.4, {FHIR}; fhirVersion=4.0", "4.0"),
        # An unsupported version next to a usable range is simply not chosen.
        ("application/fhir+json; fhirVersion=3.0, */*;q=0.2", "4.0"),
        # The more specific range decides a version's quality.
        ("application/fhir+json; fhirVersion=4.0; q=0, application/fhir+json", "5.0"),
    ],
)  # fmt: skip
def test_accept_selects_the_fhir_version(accept, version):
    assert negotiate_fhir_version(accept) == version


@pytest.mark.parametrize(
    "accept",
    [
        "text/html",
        "application/xml, text/*",
        "application/fhir+xml",
        "application/fhir+json; fhirVersion=3.0",
        "application/fhir+json; fhirVersion=6.0",
        "application/fhir+json; q=0",
        "application/fhir+json;q=0, */*",
        "*/*;q=0",
    ],
)
def test_accept_without_a_usable_representation_is_406(accept):
    with pytest.raises(NotAcceptableError):
        negotiate_fhir_version(accept)


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON; Charset=UTF-8"],
)
def test_json_content_types_are_accepted(content_type):
    require_json_content_type(content_type)


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "application/fhir+json",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
        "application/json; charset=utf-8; profile=x",
        "application/jsonx",
    ],
)
def test_other_content_types_are_415(content_type):
    with pytest.raises(UnsupportedMediaTypeError):
        require_json_content_type(content_type)


def test_r5_is_announced_in_the_response_content_type(post_triage):
    response = post_triage(
        VALID_REQUEST, headers={"Accept": "application/fhir+json; fhirVersion=5.0"}
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/fhir+json; fhirVersion=5.0"
    assert json.loads(response.data)["resourceType"] == "Bundle"


def test_missing_content_type_is_415_over_http(post_triage):
    response = post_triage(VALID_REQUEST, content_type=None)
    assert response.status_code == 415
    assert json.loads(response.data)["issue"][0]["code"] == "not-supported"


def test_accept_is_checked_before_the_body(post_triage):
    response = post_triage(b"not json", headers={"Accept": "text/html"})
    assert response.status_code == 406
