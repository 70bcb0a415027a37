"""The bad-input catalogue: every kind of hostile or broken request, through HTTP.

One organised list (PROTOCOL.md §3 strictness, §9 error codes). Each entry
asserts the exact status, that the body is a FHIR OperationOutcome served as
``application/fhir+json`` with a parseable XHTML narrative, the issue code,
and where the problem is: the JSON path in ``expression`` (422) or the reason
in ``diagnostics`` (400, 413, 415). Nothing may crash (5xx).

The vocabulary-wide entries (every numeric bound just outside, every code
list, every text field) are generated from :mod:`triage.vocabulary`, so a new
item is covered without editing this file.

Unit-level twins live in ``test_api_jsonbody.py`` (the decoder),
``test_schema_strictness.py`` (the schema) and ``test_api_errors.py`` (one test
per row of the error table); this file is the complete HTTP-level list. The
same nasty bodies over a real socket against gunicorn are in
``test_server_resilience.py``.

Markup and non-Latin text in free-text fields is *valid* input: the last
section checks it is accepted and escaped in every narrative of the Bundle.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from tests.support.conformance import narrative_problems
from triage.vocabulary import ITEMS, Item, Kind

FHIR_JSON = "application/fhir+json; fhirVersion=4.0"
XHTML = "{http://www.w3.org/1999/xhtml}"
LIMIT = 65536  # the default TWITCH_TRIAGE_MAX_BODY_BYTES

BASE: dict[str, Any] = {
    "patient": {"age_years": 30},
    "twitching": {"body_sites": ["calf"]},
}


def encode(value: Any, *, ascii_only: bool = True) -> bytes:
    """JSON bytes; non-ASCII as \\u escapes (so lone surrogates stay escapes) or raw UTF-8."""
    return json.dumps(value, ensure_ascii=ascii_only).encode()


def with_value(path: str, value: Any) -> dict[str, Any]:
    """BASE with one JSON path set; ``a.b[1].c`` creates sections and list members.

    Missing list members before the target are filled with a valid medication.
    """
    request = copy.deepcopy(BASE)
    parts: list[Any] = [
        int(part[1:-1]) if part.startswith("[") else part
        for part in path.replace("[", ".[").split(".")
    ]
    node: Any = request
    for key, following in zip(parts, [*parts[1:], None], strict=True):
        if isinstance(node, list):
            while len(node) <= key:
                node.append({"class": "other"})
        if following is None:
            node[key] = value
        elif isinstance(node, list):
            node = node[key]
        else:
            node = node.setdefault(key, [] if isinstance(following, int) else {})
    return request


def outcome(response: TestResponse, status: int, code: str) -> dict[str, Any]:
    """Assert an OperationOutcome with ``status`` whose every issue has ``code``."""
    assert response.status_code == status, response.data[:500]
    assert response.headers["Content-Type"] == FHIR_JSON
    body = json.loads(response.data)
    assert body["resourceType"] == "OperationOutcome"
    root = ET.fromstring(body["text"]["div"])  # noqa: S314 - our own output, well-formed XHTML
    assert root.tag == f"{XHTML}div"
    assert body["issue"]
    for issue in body["issue"]:
        assert issue["severity"] == "error"
        assert issue["code"] == code, body
        assert issue["diagnostics"]
    return body


@dataclass(frozen=True)
class Bad:
    """One catalogue entry: a raw body and what the API must answer."""

    body: bytes
    status: int
    code: str
    #: 422: the JSON path in ``expression`` (exactly one issue); else None.
    path: str | None = None
    #: A substring the diagnostics must contain (the reason, in words).
    needle: str | None = None
    content_type: str | None = "application/json"
    accept: str | None = None
    #: 415/406: the HTTP header the issue names (``http.<name>`` in ``expression``).
    header: str | None = None
    content_encoding: str | None = None
    #: 400: the JSON path of the offending member in ``expression``; None: the body as a
    #: whole, and no ``expression``.
    member: str | None = None


def structure(body: bytes, needle: str, member: str | None = None) -> Bad:
    return Bad(body, 400, "structure", needle=needle, member=member)


def field(path: str, value: Any, code: str = "value", needle: str | None = None) -> Bad:
    return Bad(encode(with_value(path, value)), 422, code, path=path, needle=needle)


def at(bad: Bad, path: str) -> Bad:
    """The same request, but the issue is reported at ``path`` (a list member)."""
    return Bad(bad.body, bad.status, bad.code, path, bad.needle)


VALID_BYTES = encode(BASE)

# --- 400 structure: not one strict JSON object ---------------------------------------------

MALFORMED = {
    "truncated-object": structure(VALID_BYTES[:-1], "not valid JSON"),
    "truncated-mid-string": structure(
        b'{"patient": {"age_years": 30}, "notes": "abc', "not valid", "notes"
    ),
    "truncated-after-colon": structure(b'{"patient":', "not valid JSON", "patient"),
    "trailing-comma": structure(b'{"patient": {"age_years": 30},}', "not valid JSON"),
    "single-quotes": structure(b"{'patient': {}}", "not valid JSON"),
    "unquoted-key": structure(b"{patient: {}}", "not valid JSON"),
    "two-objects": structure(VALID_BYTES + VALID_BYTES, "not valid JSON"),
    "comment": structure(b'{"patient": {"age_years": 30} /* x */}', "not valid JSON"),
    "python-literal": structure(
        b'{"symptoms": {"headache": True}}', "not valid JSON", "symptoms.headache"
    ),
    "raw-control-char-in-string": structure(b'{"notes": "a\x01b"}', "not valid JSON", "notes"),
    "raw-newline-in-string": structure(b'{"notes": "a\nb"}', "not valid JSON", "notes"),
    "empty": structure(b"", "empty"),
    "whitespace-only": structure(b" \r\n\t ", "empty"),
    "array": structure(b"[]", "array"),
    "array-of-the-request": structure(b"[" + VALID_BYTES + b"]", "array"),
    "string": structure(b'"patient"', "scalar"),
    "number": structure(b"42", "scalar"),
    "null": structure(b"null", "scalar"),
    "true": structure(b"true", "scalar"),
    "nan": structure(b'{"patient": {"age_years": NaN}}', "NaN", "patient.age_years"),
    "infinity": structure(
        b'{"twitching": {"episode_minutes": Infinity}}', "Infinity", "twitching.episode_minutes"
    ),
    "minus-infinity": structure(
        b'{"twitching": {"episode_minutes": -Infinity}}', "Infinity", "twitching.episode_minutes"
    ),
    "1e400": structure(b'{"body_temperature_c": 1e400}', "overflows", "body_temperature_c"),
    "minus-1e400": structure(b'{"body_temperature_c": -1e400}', "overflows", "body_temperature_c"),
    "invalid-utf8": structure(b'{"notes": "caf\xe9"}', "not valid UTF-8", "notes"),
    "invalid-utf8-overlong": structure(b'{"notes": "\xc0\xaf"}', "not valid UTF-8", "notes"),
    "invalid-utf8-raw-surrogate": structure(
        b'{"notes": "\xed\xa0\x80"}', "not valid UTF-8", "notes"
    ),
    "utf16-body": structure(VALID_BYTES.decode().encode("utf-16"), "not valid UTF-8"),
    "utf8-bom": structure(b"\xef\xbb\xbf" + VALID_BYTES, "byte order mark"),
    "duplicate-key-top": structure(
        b'{"patient": {"age_years": 30}, "patient": {"age_years": 31}, '
        b'"twitching": {"body_sites": ["calf"]}}',
        "duplicate key",
        "patient",
    ),
    "duplicate-key-nested": structure(
        b'{"patient": {"age_years": 30, "age_years": 31}, "twitching": {"body_sites": ["calf"]}}',
        "duplicate key",
        "patient.age_years",
    ),
    "duplicate-key-in-list-member": structure(
        b'{"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}, '
        b'"history": {"medications": [{"class": "statin", "class": "other"}]}}',
        "duplicate key",
        "history.medications[0].class",
    ),
    "duplicate-key-with-colon-in-value": structure(
        b'{"notes": "10:30", "notes": "11:00"}', "duplicate key", "notes"
    ),
    # Too deep: the first container past 64 levels (the body itself is level 1).
    "deep-arrays-10000": structure(
        b'{"notes": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        "nested deeper than 64",
        "notes" + "[0]" * 63,
    ),
    "deep-objects-10000": structure(
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "nested deeper", ".".join(["a"] * 64)
    ),
    "deep-arrays-65": structure(
        b'{"notes": ' + b"[" * 65 + b"]" * 65 + b"}", "nested deeper", "notes" + "[0]" * 63
    ),
}

# --- 415 not-supported: the Content-Type -------------------------------------------------------

CONTENT_TYPES = {
    f"content-type-{name}": Bad(
        VALID_BYTES, 415, "not-supported", None, needle, content_type, header="Content-Type"
    )
    for name, content_type, needle in [
        ("missing", None, "got none"),
        ("empty", "", "got none"),
        ("text-plain", "text/plain", "text/plain"),
        ("form", "application/x-www-form-urlencoded", "x-www-form-urlencoded"),
        ("multipart", "multipart/form-data; boundary=x", "multipart/form-data"),
        ("fhir-json", "application/fhir+json", "application/fhir+json"),
        ("xml", "application/xml", "application/xml"),
        ("json-prefix", "application/jsonx", "application/jsonx"),
        ("charset-latin1", "application/json; charset=latin-1", "charset=utf-8"),
        ("extra-parameter", "application/json; profile=x", "charset=utf-8"),
    ]
}

# --- 415 not-supported: a content coding the API does not decode (RFC 9110 §8.4.1) -----------

CONTENT_ENCODINGS = {
    f"content-encoding-{name}": Bad(
        body,
        415,
        "not-supported",
        None,
        "Content-Encoding",
        header="Content-Encoding",
        content_encoding=coding,
    )
    for name, coding, body in [
        ("gzip-declared-plain-body", "gzip", VALID_BYTES),  # was answered 200
        ("gzip-real-body", "gzip", gzip.compress(VALID_BYTES)),  # was "not valid UTF-8"
        ("br", "br", VALID_BYTES),
        ("deflate", "deflate", VALID_BYTES),
    ]
}

# --- 406 not-supported: an Accept header that rules out FHIR JSON ------------------------------

ACCEPT = {
    f"accept-{name}": Bad(
        VALID_BYTES, 406, "not-supported", None, "Accept", accept=accept, header="Accept"
    )
    for name, accept in [
        ("html", "text/html"),
        ("fhir-xml", "application/fhir+xml"),
        ("unknown-fhir-version", "application/fhir+json; fhirVersion=3.0"),
        ("json-refused", "application/json;q=0, */*;q=0"),
    ]
}

# --- 422: unknown fields, wrong types, enums, lists, strings -------------------------------------

UNKNOWN_FIELDS = {
    f"unknown-{name}": Bad(
        encode(request), 422, "invalid", path, "is not a field of the request vocabulary"
    )
    for name, path, request in [
        ("top", "sympotms", {**BASE, "sympotms": {}}),
        ("top-null-value", "extra", {**BASE, "extra": None}),
        ("patient", "patient.name", with_value("patient.name", "Ann")),
        ("activity", "activity.sport", with_value("activity.sport", "running")),
        ("twitching", "twitching.sites", with_value("twitching.sites", ["calf"])),
        ("symptoms", "symptoms.confsion", with_value("symptoms.confsion", True)),
        ("history", "history.medication", with_value("history.medication", [])),
        (
            "medications",
            "history.medications[1].dose",
            with_value("history.medications[1].dose", 2),
        ),
        ("odd-key", '["a.b c"]', {**BASE, "a.b c": 1}),
        ("empty-key", '[""]', {**BASE, "": 1}),
    ]
}

WRONG_TYPES = {
    "string-for-integer": field("patient.age_years", "30", needle="must be an integer"),
    "string-for-number": field("twitching.hours_after_exercise", "2.5", needle="must be a number"),
    "bool-for-integer": field("patient.age_years", True, needle="not boolean"),
    "bool-for-number": field("body_temperature_c", False, needle="not boolean"),
    "fraction-for-integer": field("twitching.duration_days", 2.5, needle="whole number"),
    # Beyond 64 bits the strict decoder reads the integer exactly; it is reported as sent.
    "huge-integer": field("patient.age_years", 10**30, needle=f"from 0 to 120, not {10**30}"),
    "huge-negative-integer": field(
        "history.falls_last_7_days", -(10**30), needle=f"not {-(10**30)}"
    ),
    "number-for-bool": field("symptoms.headache", 1, needle="true, false or null"),
    "string-for-bool": field("symptoms.headache", "true", needle="true, false or null"),
    "number-for-code": field("patient.sex", 1, needle="string code"),
    "number-for-string": field("notes", 5, needle="must be a string"),
    "list-for-string": field("activity.type", ["running"], needle="must be a string"),
    "object-for-code-list": field("twitching.body_sites", {"calf": True}, needle="must be a list"),
    "string-for-code-list": field("history.conditions", "asthma", needle="must be a list"),
    "object-for-object-list": field("history.medications", {"class": "statin"}, needle="list"),
    "list-for-section": field("symptoms", [], needle="must be a JSON object"),
    "list-for-required-section": field("patient", [{"age_years": 30}], needle="JSON object"),
    "string-for-section": field("history", "none", needle="must be a JSON object"),
    "list-for-list-member": field("history.medications[0]", ["statin"], needle="JSON object"),
    "null-in-code-list": at(
        field("twitching.body_sites", ["calf", None]), "twitching.body_sites[1]"
    ),
    "null-in-object-list": at(field("history.medications", [None]), "history.medications[0]"),
    "null-required-field": field("patient.age_years", None, "required", "is required"),
    "null-required-section": field("twitching", None, "required", "is required"),
}

LISTS = {
    "body-sites-empty": field("twitching.body_sites", [], needle="at least 1"),
    "body-sites-duplicate": at(
        field("twitching.body_sites", ["calf", "thigh", "calf"], needle="repeats"),
        "twitching.body_sites[2]",
    ),
    "body-sites-too-many": field("twitching.body_sites", ["calf"] * 15, needle="at most 14"),
    "conditions-duplicate": at(
        field("history.conditions", ["asthma", "asthma"], needle="repeats"),
        "history.conditions[1]",
    ),
    "medications-too-many": field(
        "history.medications", [{"class": "other"}] * 21, needle="at most 20"
    ),
    "medication-without-class": at(
        field("history.medications", [{"days_since_start": 2}], "required", "is required"),
        "history.medications[0].class",
    ),
}

STRINGS = {
    "notes-too-long": field("notes", "x" * 2001, needle="at most 2000 characters, not 2001"),
    "notes-too-long-non-latin": field("notes", "抽" * 2001, needle="at most 2000"),
    "activity-type-too-long": field("activity.type", "r" * 81, needle="at most 80"),
    "reference-pattern": field("patient.reference", "Patient/<x>", needle="must match"),
    "reference-other-type": field("patient.reference", "Practitioner/1", needle="must match"),
    "lone-high-surrogate": field("notes", "a\ud800b", needle="unpaired surrogate"),
    "lone-low-surrogate": field("notes", "\udfff", needle="unpaired surrogate"),
    "nul": field("notes", "a\x00b", needle="control character (U+0000)"),
    "bell": field("activity.type", "run\x07", needle="control character (U+0007)"),
    "escape": field("notes", "\x1b[31mred", needle="control character (U+001B)"),
    "delete": field("notes", "a\x7f", needle="control character (U+007F)"),
    "c1-control": field("notes", "a\x85", needle="control character (U+0085)"),
}


def _text_items() -> list[Item]:
    return [i for i in ITEMS.values() if i.kind in (Kind.STRING, Kind.REFERENCE)]


def _json_path(link_id: str) -> str:
    """Vocabulary link id → JSON path of the first list member (medications[0])."""
    return link_id.replace("history.medications.", "history.medications[0].")


EMPTY_STRINGS = {
    f"empty-string-{item.link_id}": field(_json_path(item.link_id), "", needle="must not be empty")
    for item in _text_items()
}

ENUMS: dict[str, Bad] = {}
for _item in ITEMS.values():
    _path = _json_path(_item.link_id)
    if _item.kind is Kind.CODE:
        ENUMS[f"unknown-code-{_item.link_id}"] = field(_path, "unheard-of", "code-invalid")
        _first = _item.codes[0].code
        ENUMS[f"code-case-{_item.link_id}"] = field(_path, _first.upper(), "code-invalid")
    elif _item.kind is Kind.CODES:
        _first = _item.codes[0].code
        ENUMS[f"unknown-code-{_item.link_id}"] = at(
            field(_path, [_first, "unheard-of"], "code-invalid", "is not a known code"),
            f"{_path}[1]",
        )


def _outside(item: Item) -> list[tuple[str, float]]:
    low, high = item.minimum, item.maximum
    assert low is not None
    assert high is not None
    if item.kind is Kind.INTEGER:
        return [("below", int(low) - 1), ("above", int(high) + 1)]
    # The nearest doubles outside the range: exact bounds, not "about".
    return [("below", math.nextafter(low, -math.inf)), ("above", math.nextafter(high, math.inf))]


OUT_OF_RANGE = {
    f"{side}-{item.link_id}": field(_json_path(item.link_id), value, needle="must be from")
    for item in ITEMS.values()
    if item.is_numeric
    for side, value in _outside(item)
}

CATALOGUE: dict[str, Bad] = {
    **MALFORMED,
    **CONTENT_TYPES,
    **ACCEPT,
    **CONTENT_ENCODINGS,
    **UNKNOWN_FIELDS,
    **WRONG_TYPES,
    **LISTS,
    **STRINGS,
    **EMPTY_STRINGS,
    **ENUMS,
    **OUT_OF_RANGE,
}


def test_the_catalogue_covers_every_numeric_code_and_text_item():
    numeric = [i for i in ITEMS.values() if i.is_numeric]
    coded = [i for i in ITEMS.values() if i.kind in (Kind.CODE, Kind.CODES)]
    assert len(OUT_OF_RANGE) == 2 * len(numeric) >= 2 * 15
    assert len([k for k in ENUMS if k.startswith("unknown-code-")]) == len(coded)
    assert len(EMPTY_STRINGS) == len(_text_items()) >= 3


@pytest.mark.parametrize("bad", CATALOGUE.values(), ids=CATALOGUE.keys())
def test_bad_input_gets_a_4xx_operation_outcome_naming_the_problem(client, bad):
    headers = {} if bad.content_type is None else {"Content-Type": bad.content_type}
    if bad.accept is not None:
        headers["Accept"] = bad.accept
    if bad.content_encoding is not None:
        headers["Content-Encoding"] = bad.content_encoding
    response = client.post("/v1/triage", data=bad.body, headers=headers)
    body = outcome(response, bad.status, bad.code)
    if bad.path is not None:
        (issue,) = body["issue"]
        assert issue["expression"] == [bad.path]
        assert issue["diagnostics"].startswith(f"{bad.path}: ")
    elif bad.header is not None:  # the HTTP header at fault, as OperationOutcome names it
        (issue,) = body["issue"]
        assert issue["expression"] == [f"http.{bad.header}"]
    elif bad.member is not None:  # a 400 names the offending member of the body
        (issue,) = body["issue"]
        assert issue["expression"] == [bad.member]
    else:
        assert all("expression" not in issue for issue in body["issue"])
    if bad.needle is not None:
        assert bad.needle in body["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    "item", [i for i in ITEMS.values() if i.is_numeric], ids=lambda i: i.link_id
)
def test_every_numeric_bound_itself_is_accepted(post_triage, item):
    """The other side of OUT_OF_RANGE: the bounds are inclusive, to the last bit."""
    for bound in (item.minimum, item.maximum):
        value = int(bound) if item.kind is Kind.INTEGER else bound
        response = post_triage(with_value(_json_path(item.link_id), value))
        assert response.status_code == 200, response.data[:300]


def test_many_problems_at_once_give_one_issue_each(post_triage):
    request = with_value("patient.age_years", 121)
    request["patient"]["sex"] = "woman"
    request["symptoms"] = {"headache": "yes", "confsion": True}
    request["notes"] = ""
    response = post_triage(request)
    assert response.status_code == 422
    assert response.headers["Content-Type"] == FHIR_JSON
    body = json.loads(response.data)
    assert {i["expression"][0]: i["code"] for i in body["issue"]} == {
        "notes": "value",
        "patient.age_years": "value",
        "patient.sex": "code-invalid",
        "symptoms.confsion": "invalid",
        "symptoms.headache": "value",
    }


# --- 413 too-costly: huge bodies, however they are sent ------------------------------------------


def huge_body() -> bytes:
    """Valid JSON, one field too long, and over the 64 KiB limit as a whole."""
    return encode({**BASE, "notes": "x" * (LIMIT + 10)})


def test_huge_body_with_a_true_content_length(client):
    response = client.post("/v1/triage", data=huge_body(), content_type="application/json")
    body = outcome(response, 413, "too-costly")
    assert f"limit of {LIMIT} bytes" in body["issue"][0]["diagnostics"]


def test_huge_body_with_an_understated_content_length_is_read_only_as_declared(client):
    """A client claiming 40 bytes gets its first 40 bytes parsed: truncated JSON, 400."""
    response = client.post(
        "/v1/triage",
        data=huge_body(),
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": "40"},
    )
    outcome(response, 400, "structure")


def test_small_body_with_an_overstated_content_length_is_refused_unread(client):
    response = client.post(
        "/v1/triage",
        data=VALID_BYTES,
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": str(LIMIT + 1)},
    )
    outcome(response, 413, "too-costly")


def test_huge_chunked_body_without_content_length(client):
    response = client.post(
        "/v1/triage",
        input_stream=io.BytesIO(huge_body()),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    outcome(response, 413, "too-costly")


def test_a_body_just_under_the_limit_is_read_and_validated(post_triage):
    raw = encode({**BASE, "notes": "x" * 2001})
    raw += b" " * (LIMIT - len(raw))
    assert len(raw) == LIMIT
    body = outcome(post_triage(raw), 422, "value")
    assert body["issue"][0]["expression"] == ["notes"]


# --- markup and non-Latin text are valid input, escaped everywhere ------------------------------

FREE_TEXT = {
    "script": "<script>alert(1)</script>",
    "attribute-breakout": '"><img src=x onerror=alert(1)>',
    "svg-onload": "<svg/onload=alert(1)>",
    "entity": "&lt;b&gt; &amp; &#x3C;script&#x3E;",
    "cdata-comment": "]]><!-- --><![CDATA[x]]>",
    "javascript-url": '<a href="javascript:alert(1)">x</a>',
    "arabic": "ارتعاش في ربلة الساق بعد الجري",
    "cjk": "跑步后小腿抽搐 ふくらはぎの痙攣 종아리 경련",
    "emoji": "🏃‍♀️💪🔥 twitch 🦵",
    "tab-newlines": "line 1\tcol\nline 2\r\nline 3",
    "quotes-and-backslash": 'it\'s "fine" \\ ok',
}
DANGEROUS_TAGS = {"script", "img", "svg", "a", "iframe", "object", "embed", "style", "link"}


def narratives(bundle: dict[str, Any]) -> list[tuple[str, ET.Element]]:
    found = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if "text" in resource:
            div = resource["text"]["div"]
            assert narrative_problems(div) == [], (resource["resourceType"], div)
            found.append((resource["resourceType"], ET.fromstring(div)))  # noqa: S314 - our own
    return found


@pytest.mark.parametrize("version", ["4.0", "5.0"])
@pytest.mark.parametrize("text", FREE_TEXT.values(), ids=FREE_TEXT.keys())
def test_markup_and_non_latin_text_is_accepted_and_escaped_in_every_narrative(
    post_triage, text, version
):
    request = copy.deepcopy(BASE)
    request["notes"] = text
    request["activity"] = {"type": text[:80]}
    request["symptoms"] = {"muscle_cramps": True}
    response = post_triage(
        encode(request, ascii_only=False),  # raw UTF-8 on the wire
        headers={"Accept": f"application/fhir+json; fhirVersion={version}"},
    )
    assert response.status_code == 200, response.data[:300]
    bundle = json.loads(response.data)
    divs = narratives(bundle)
    assert len(divs) == len(bundle["entry"])  # every resource has a narrative
    for resource_type, root in divs:
        assert root.tag == f"{XHTML}div", resource_type
        for element in root.iter():
            tag = element.tag.removeprefix(XHTML)
            assert tag not in DANGEROUS_TAGS, (resource_type, tag)
            assert not any(name.lower().startswith("on") for name in element.attrib)
            assert not any("javascript:" in value for value in element.attrib.values())
    (answers,) = [root for kind, root in divs if kind == "QuestionnaireResponse"]
    shown = "".join(answers.itertext())
    for line in text.splitlines():
        assert line.strip() in shown  # shown to the clinician as text, not dropped
    (qr,) = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "QuestionnaireResponse"
    ]
    (notes,) = [item for item in qr["item"] if item["linkId"] == "notes"]
    assert notes["answer"] == [{"valueString": text}]  # kept verbatim in the record


# --- client text copied into an OperationOutcome -------------------------------------------

#: Characters FHIR strings and XML cannot hold (C0 but tab/LF/CR, DEL, C1, non-characters).
UNSAFE_IN_XML = [chr(c) for c in (*range(0x20), 0x7F, 0x85, 0x9F, 0xFFFE, 0xFFFF)]
UNSAFE_IN_XML = [c for c in UNSAFE_IN_XML if c not in "\t\n\r"]


def _assert_clean_outcome(body: dict[str, Any]) -> None:
    assert body["resourceType"] == "OperationOutcome"
    assert narrative_problems(body["text"]["div"]) == []
    for issue in body["issue"]:
        for text in [issue["diagnostics"], *issue.get("expression", [])]:
            assert not any(c in text for c in UNSAFE_IN_XML), text


@given(
    name=st.text(min_size=1, max_size=12).map(lambda s: f"x{s}"),
    bad=st.sampled_from(UNSAFE_IN_XML),
)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_a_control_character_in_a_link_id_is_shown_escaped_never_raw(app, name, bad):
    """The linkId is named in diagnostics (§9); copied raw, a control character made the
    narrative ill-formed XML and the FHIR string illegal (found by a conformance review)."""
    qr = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "item": [{"linkId": name + bad, "answer": [{"valueBoolean": True}]}],
    }
    response = app.test_client().post(
        "/fhir/QuestionnaireResponse/$triage",
        data=json.dumps(qr),
        content_type="application/fhir+json",
    )
    assert response.status_code == 422, response.data[:300]
    body = response.get_json()
    _assert_clean_outcome(body)
    assert any(ascii(bad)[1:-1] in i["diagnostics"] for i in body["issue"])  # shown, escaped


@pytest.mark.parametrize("bad", ["\x01", "\x7f", "\x85"], ids=["x01", "x7f", "x85"])
def test_a_control_character_in_a_search_parameter_name_is_shown_escaped(app, bad):
    response = app.test_client().get(f"/fhir/Observation?http.{quote(bad)}x=1")
    assert response.status_code == 400, response.data[:300]
    _assert_clean_outcome(response.get_json())
