"""Strict JSON decoding of request bodies (api/jsonbody.py)."""

from __future__ import annotations

import io
import json
import math
from decimal import Context, Decimal
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_api_triage import BASE, codes, fired_rules, level_observation

from api.errors import MalformedBodyError, PayloadTooLargeError
from api.jsonbody import MAX_DEPTH, _strict_decode, parse_json_object, read_body
from schemas import numbers

LEVEL_SYSTEM = f"{BASE}/CodeSystem/triage-level"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"  \n\t ", "empty"),
        (b'{"a": 1', "not valid JSON"),
        (b'{"a": tru}', "not valid JSON"),
        (b'{"a": 1} {"b": 2}', "not valid JSON"),
        (b'{"a": 1,}', "not valid JSON"),
        (b"{'a': 1}", "not valid JSON"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
        (b'\xef\xbb\xbf{"a": 1}', "not valid JSON"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": Infinity}', "Infinity"),
        (b'{"a": -Infinity}', "Infinity"),
        (b'{"a": 1e400}', "overflows"),
        (b'{"a": -1e400}', "overflows"),
        (b'{"a": 1, "a": 1}', "duplicate key"),
        (b'{"a": {"b": [{"c": 1, "d": 2, "c": 3}]}}', "duplicate key"),
        (b'{"a": "x:y", "a": 2}', "duplicate key"),
        (b'{"a": "\x01"}', "not valid JSON"),
        (b"[]", "array"),
        (b'"text"', "scalar"),
        (b"3", "scalar"),
        (b"null", "scalar"),
        (b'{"a": ' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}", "nested deeper"),
        (b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested deeper"),
    ],
)
def test_bodies_that_are_not_one_strict_object_are_rejected(body, reason):
    with pytest.raises(MalformedBodyError) as info:
        parse_json_object(body)
    assert reason in info.value.diagnostics


def test_a_colon_inside_a_string_takes_the_strict_path_and_keeps_the_value():
    body = b'{"notes": "at 10:30", "a": {"b": "x:y:z"}}'
    assert parse_json_object(body) == {"notes": "at 10:30", "a": {"b": "x:y:z"}}


def test_lone_surrogate_escapes_decode_for_the_schema_to_reject():
    # orjson refuses them; the stdlib decides and the schema reports the field (422).
    assert parse_json_object(b'{"notes": "\\ud800"}') == {"notes": "\ud800"}


def test_integral_and_fractional_numbers_keep_their_json_types():
    assert parse_json_object(b'{"a": 3, "b": 3.0, "c": -0, "d": 1e2}') == {
        "a": 3,
        "b": 3.0,
        "c": 0,
        "d": 100.0,
    }
    assert type(parse_json_object(b'{"b": 3.0}')["b"]) is float


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_keys = st.text(max_size=8)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=20,
)


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass")


@given(st.dictionaries(_keys, _json, max_size=6))
def test_any_duplicate_free_object_round_trips(value):
    try:
        body = _encode(value)
        body.decode("utf-8")
    except UnicodeDecodeError:  # lone surrogates written raw are not UTF-8: 400 is right
        with pytest.raises(MalformedBodyError):
            parse_json_object(_encode(value))
        return
    assert parse_json_object(body) == value


@given(st.dictionaries(_keys, _json, min_size=1, max_size=6), st.data())
def test_a_repeated_key_anywhere_is_rejected(value, data):
    key = data.draw(st.sampled_from(sorted(value)))
    repeated = json.dumps(key) + ": " + json.dumps(value[key]) + ", "
    body = ("{" + repeated + json.dumps(value)[1:]).encode("utf-8", "surrogatepass")
    with pytest.raises(MalformedBodyError):
        parse_json_object(body)


@given(_json)
def test_fast_and_strict_decoders_agree_whenever_orjson_accepts(value):
    body = json.dumps(value).encode()  # ASCII escapes: valid UTF-8 always
    try:
        fast = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    strict = _strict_decode(body)
    assert json.dumps(fast, sort_keys=True) == json.dumps(strict, sort_keys=True)
    if isinstance(strict, float):
        assert math.isfinite(strict)


# --- reading the body -------------------------------------------------------------------


class _TrickleStream(io.RawIOBase):
    """A stream that returns at most 7 bytes per read, like a slow socket."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(size, 7) if size >= 0 else 7)


def _request(data: bytes, content_length: int | None) -> Any:
    return SimpleNamespace(content_length=content_length, stream=_TrickleStream(data), headers={})


def test_read_body_reassembles_short_reads():
    data = b'{"patient": {"age_years": 30}}'
    assert read_body(_request(data, None), limit=100) == data


def test_read_body_refuses_a_declared_length_over_the_limit_without_reading():
    request = _request(b"x" * 10, content_length=101)
    with pytest.raises(PayloadTooLargeError):
        read_body(request, limit=100)
    assert request.stream.read(100) == b"x" * 7  # nothing was consumed


def test_read_body_caps_an_undeclared_stream():
    with pytest.raises(PayloadTooLargeError):
        read_body(_request(b"x" * 101, None), limit=100)
    assert read_body(_request(b"x" * 100, None), limit=100) == b"x" * 100


def test_read_body_reads_a_declared_body_through_short_reads():
    data = b'{"patient": {"age_years": 30}, "episode": {}}'
    assert read_body(_request(data, len(data)), limit=100) == data


def test_read_body_takes_exactly_the_declared_length():
    """The body ends at its Content-Length: nothing after it is read as part of it."""
    request = _request(b'{"a": 1}' + b"trailing", content_length=8)
    assert read_body(request, limit=100) == b'{"a": 1}'
    assert request.stream.read(100) == b"trailin"  # left for the server, not consumed


def test_read_body_of_a_declared_empty_body_reads_nothing():
    request = _request(b"xyz", content_length=0)
    assert read_body(request, limit=100) == b""
    assert request.stream.read(100) == b"xyz"


# --- numbers longer than a float holds ---------------------------------------------------


@given(
    threshold=st.decimals(min_value=0, max_value=300, places=2),
    digits=st.integers(16, 30),
    above=st.booleans(),
    tail=st.sampled_from(["", ', "b": "x"']),
)
def test_a_long_number_stays_on_its_side_of_every_short_threshold(threshold, digits, above, tail):
    """31.99999999999999999 is below 32 even though its nearest float is 32.0: the value
    decoded compares with any short threshold as the written number does."""
    step = Decimal(1).scaleb(-digits)
    exact = Context(prec=80)  # the default 28 digits would round the step away
    written = exact.add(threshold, step) if above else exact.subtract(threshold, step)
    if written < 0:
        return
    body = ('{"v": ' + format(written, "f") + tail + "}").encode()
    value = parse_json_object(body)["v"]
    assert (value > float(threshold)) is above
    assert (value < float(threshold)) is not above


@given(
    significand=st.decimals(min_value=Decimal("0.001"), max_value=Decimal("999"), places=3),
    exponent=st.integers(min_value=-2000, max_value=-330),
    negative=st.booleans(),
)
def test_a_non_zero_number_too_small_for_a_float_is_never_zero(significand, exponent, negative):
    """``1e-400`` read as 0.0 became age 0 (an integer field took it) and ``-1e-400`` an
    hours value of -0.0 within range (the bad-input battery): it reads as the smallest
    float on its side of zero, so a whole-number field and a range check refuse it, and
    the same holds for JSON fetched from an EHR (``schemas.numbers.loads``)."""
    literal = f"{'-' if negative else ''}{significand}e{exponent}"
    for value in (
        parse_json_object(f'{{"v": {literal}}}'.encode())["v"],
        numbers.loads(f'{{"v": {literal}}}'.encode())["v"],
    ):
        assert value != 0.0
        assert (value < 0) is negative
        assert abs(value) == math.nextafter(0.0, 1.0)


@pytest.mark.parametrize("literal", ["0e-400", "-0.000e-999", "0.0"])
def test_a_zero_written_with_any_exponent_is_zero(literal):
    assert parse_json_object(f'{{"v": {literal}}}'.encode())["v"] == 0.0


@pytest.mark.parametrize(
    "literal", ["0.1", "37.5", "0.30000000000000004", "31.999999999999996", "1e-7", "3.2e1"]
)
def test_a_number_written_as_its_float_is_that_float(literal):
    assert parse_json_object(f'{{"v": {literal}}}'.encode())["v"] == float(literal)


@pytest.mark.parametrize(
    ("field", "literal", "level", "rule"),
    [
        (
            "body_temperature_c",
            "31.99999999999999999",
            "emergency_ambulance",
            "RF-SEVERE-HYPOTHERMIA",
        ),
        ("blood_glucose_mmol_l", "2.99999999999999999", "emergency", "RF-HYPOGLYCAEMIA"),
    ],
)
def test_a_measurement_a_hair_below_a_threshold_is_triaged_below_it(
    client, field, literal, level, rule
):
    body = (
        '{"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}, '
        f'"{field}": {literal}}}'
    ).encode()
    response = client.post("/v1/triage", data=body, content_type="application/json")
    assert response.status_code == 200, response.data[:400]
    bundle = response.get_json()
    level_codes = codes(level_observation(bundle)["valueCodeableConcept"], LEVEL_SYSTEM)
    assert level_codes == [level]
    assert rule in fired_rules(bundle)
