"""A fhirVersion (or q) media-type parameter that names no value is refused, not read as R4.

werkzeug drops a parameter it cannot parse and keeps the last of a repeated one, so
``Accept: application/fhir+json; fhirVersion=`` used to answer R4 as if no version had
been asked for. FHIR's fhirVersion parameter names a version; RFC 9110 §5.6.6 writes a
parameter ``name=value`` (a token or a quoted string) and RFC 6838 §4.3 makes a repeated
one an error: such a range covers nothing (406 when nothing else does, ``http.Accept``),
and such a Content-Type is a 415 (``http.Content-Type``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome
from hypothesis import given
from hypothesis import strategies as st

from api.errors import NotAcceptableError, UnsupportedMediaTypeError
from api.negotiation import (
    negotiate_fhir_version,
    require_fhir_json_content_type,
    require_json_content_type,
)
from tests.support.conformance import narrative_problems

FHIR = "application/fhir+json"
TRIAGE = "/fhir/QuestionnaireResponse/$triage"

MALFORMED_VERSIONS = [
    "fhirVersion=",
    "fhirVersion",
    "fhirVersion= 4.0",
    "fhirVersion =4.0",
    "FHIRVERSION=",
    "fhirVersion=4.0; fhirVersion=4.0",
    "fhirVersion=4.0;fhirversion=5.0",
]


@pytest.mark.parametrize("parameter", MALFORMED_VERSIONS)
@pytest.mark.parametrize("media_type", [FHIR, "application/json", "*/*"])
def test_an_accept_range_with_a_malformed_fhir_version_covers_nothing(media_type, parameter):
    with pytest.raises(NotAcceptableError) as info:
        negotiate_fhir_version(f"{media_type}; {parameter}")
    assert info.value.expression == ("http.Accept",)
    assert "fhirVersion" in info.value.diagnostics or "fhirversion" in info.value.diagnostics


@pytest.mark.parametrize(
    ("accept", "version"),
    [
        # Another range still covers a version: it is chosen, as with an unknown version.
        (f"{FHIR}; fhirVersion=, application/json;q=0.5", "4.0"),
        (f"{FHIR}; fhirVersion=, {FHIR}; fhirVersion=5.0", "5.0"),
        # Well-formed spellings keep their meaning.
        (f'{FHIR}; fhirVersion="4.0"', "4.0"),
        (f'{FHIR}; fhirVersion="5.0"', "5.0"),
        (f"{FHIR}; fhirVersion=4.0.1", "4.0"),
        (f"{FHIR}; FHIRVERSION=5.0", "5.0"),
        (f"{FHIR};fhirVersion=5.0;q=0.5", "5.0"),
        # A quoted value of another parameter is not a fhirVersion parameter.
        (f'{FHIR}; profile="x; fhirVersion="', "4.0"),
    ],
)
def test_well_formed_ranges_are_read_as_before(accept, version):
    assert negotiate_fhir_version(accept) == version


@pytest.mark.parametrize(
    "accept",
    [f"{FHIR}; q=", f"{FHIR}; q=0; q=1", f"{FHIR}; q= 1", f"{FHIR}; q=abc", f"{FHIR}; q=2"],
)
def test_a_range_with_a_malformed_or_repeated_q_covers_nothing(accept):
    with pytest.raises(NotAcceptableError):
        negotiate_fhir_version(accept)


@given(
    version=st.sampled_from(["4.0", "5.0", "4.0.1", "5.0.0"]),
    before=st.sampled_from(["", " ", "\t"]),
    after=st.sampled_from(["", " ", "\t"]),
)
def test_a_version_is_read_only_when_written_name_equals_value(version, before, after):
    """``fhirVersion=5.0`` with optional space around the ``;`` is 5.0; any space around
    the ``=`` makes the parameter malformed and the range covers nothing, never R4."""
    accept = f"{FHIR};{before}fhirVersion={version}{after}"
    assert negotiate_fhir_version(accept) == version[:3]
    for spaced in (f"{FHIR}; fhirVersion ={version}", f"{FHIR}; fhirVersion= {version}"):
        with pytest.raises(NotAcceptableError):
            negotiate_fhir_version(spaced)


@pytest.mark.parametrize("parameter", MALFORMED_VERSIONS)
def test_a_content_type_with_a_malformed_fhir_version_is_415(parameter):
    for check, media_type in (
        (require_fhir_json_content_type, FHIR),
        (require_fhir_json_content_type, "application/json"),
        (require_json_content_type, "application/json"),
    ):
        with pytest.raises(UnsupportedMediaTypeError) as info:
            check(f"{media_type}; {parameter}")
        assert info.value.expression == ("http.Content-Type",)


def test_a_well_formed_content_type_is_read_as_before():
    for content_type in (
        f"{FHIR}; fhirVersion=4.0",
        f'{FHIR}; fhirVersion="4.0"',
        f"{FHIR}; charset=utf-8; fhirVersion=4.0.1",
        "application/json",
        FHIR,
    ):
        require_fhir_json_content_type(content_type)
    require_json_content_type("application/json; charset=utf-8")


def _outcome(response: Any, status: int, expression: str) -> dict[str, Any]:
    assert response.status_code == status, response.data[:500]
    body = json.loads(response.data)
    OperationOutcome.model_validate(body)
    assert narrative_problems(body["text"]["div"]) == []
    (issue,) = body["issue"]
    assert issue["code"] == "not-supported"
    assert issue["expression"] == [expression]
    return issue


@pytest.mark.parametrize("parameter", ["fhirVersion=", "fhirVersion=4.0; fhirVersion=4.0"])
def test_through_the_app_the_refusals_name_the_header(client, parameter):
    accept = {"Accept": f"{FHIR}; {parameter}"}
    _outcome(client.get("/fhir/metadata", headers=accept), 406, "http.Accept")
    _outcome(
        client.post("/v1/triage", data=b"{}", content_type="application/json", headers=accept),
        406,
        "http.Accept",
    )
    _outcome(
        client.post(TRIAGE, data=b"{}", content_type=f"{FHIR}; {parameter}"),
        415,
        "http.Content-Type",
    )
    _outcome(
        client.post("/v1/triage", data=b"{}", content_type=f"application/json; {parameter}"),
        415,
        "http.Content-Type",
    )
    # The same request without the broken parameter is served.
    assert client.get("/fhir/metadata", headers={"Accept": FHIR}).status_code == 200
