"""The schema mirrors triage.vocabulary exactly, and loads what it should.

Every test here is generated from the vocabulary, so a field added there is
checked (present, typed, bounded) without editing this file.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import mutated_requests
from hypothesis import HealthCheck, given, settings
from marshmallow import ValidationError, fields
from strategies import requests

from schemas import REQUEST_SCHEMA, StrictSchema, field_issues, load_triage_request
from schemas.fields import (
    StrictBoolean,
    StrictCode,
    StrictCodeList,
    StrictDecimal,
    StrictInteger,
    StrictNested,
    StrictObjectList,
    StrictString,
)
from triage.vocabulary import ITEMS, SECTIONS, Item, Kind

FIELD_CLASS = {
    Kind.BOOLEAN: StrictBoolean,
    Kind.INTEGER: StrictInteger,
    Kind.DECIMAL: StrictDecimal,
    Kind.CODE: StrictCode,
    Kind.CODES: StrictCodeList,
    Kind.STRING: StrictString,
    Kind.REFERENCE: StrictString,
    Kind.GROUP: StrictObjectList,
}
BASE: dict[str, Any] = {"patient": {"age_years": 30}, "twitching": {"body_sites": ["calf"]}}


def schema_field(link_id: str) -> fields.Field:
    """The loaded field for a vocabulary path (KeyError if the schema lacks it)."""
    parts = link_id.split(".")
    schema = REQUEST_SCHEMA
    for part in parts[:-1]:
        field = schema.fields[part]
        schema = field.inner.schema if isinstance(field, StrictObjectList) else field.schema
    return schema.fields[parts[-1]]


def schema_paths(schema: StrictSchema, prefix: str = "") -> Iterator[str]:
    for name, field in schema.fields.items():
        path = f"{prefix}{name}"
        if isinstance(field, StrictNested):
            yield from schema_paths(field.schema, f"{path}.")
        elif isinstance(field, StrictObjectList):
            yield path
            yield from schema_paths(field.inner.schema, f"{path}.")
        else:
            yield path


# --- the schema is the vocabulary ----------------------------------------------------------


def test_schema_has_exactly_the_vocabulary_items():
    assert sorted(schema_paths(REQUEST_SCHEMA)) == sorted(ITEMS)


def test_sections_are_nested_objects_with_the_vocabulary_required_flag():
    for section in SECTIONS:
        field = REQUEST_SCHEMA.fields[section.name]
        assert isinstance(field, StrictNested)
        assert field.required is section.required
        assert field.allow_none is not section.required


@pytest.mark.parametrize("link_id", sorted(ITEMS))
def test_each_item_has_its_kind_and_constraints(link_id):
    item = ITEMS[link_id]
    field = schema_field(link_id)
    assert type(field) is FIELD_CLASS[item.kind]
    assert field.required is item.required
    if item.is_numeric:
        assert (field.minimum, field.maximum) == (item.minimum, item.maximum)
    if item.kind is Kind.CODE:
        assert field.choices == tuple(c.code for c in item.codes)
    if item.kind is Kind.CODES:
        assert field.inner.choices == tuple(c.code for c in item.codes)
        assert (field.min_items, field.max_items, field.unique) == (
            item.min_items,
            item.max_items,
            item.unique,
        )
    if item.kind is Kind.GROUP:
        assert (field.min_items, field.max_items) == (item.min_items, item.max_items)
    if item.kind in (Kind.STRING, Kind.REFERENCE):
        assert (field.max_length, field.pattern) == (item.max_length, item.pattern)


# --- boundaries, generated from the vocabulary --------------------------------------------------


def request_with(item: Item, value: Any) -> dict[str, Any]:
    """BASE with ``value`` at the item's place (group children inside one medication)."""
    request = copy.deepcopy(BASE)
    parts = item.link_id.split(".")
    if len(parts) == 3:  # a group child: history.medications.<name>
        member = {"class": "other", parts[2]: value}
        request.setdefault(parts[0], {})[parts[1]] = [member]
        return request
    if len(parts) == 1:
        request[parts[0]] = value
    else:
        request.setdefault(parts[0], {})[parts[1]] = value
    return request


def error_path(item: Item, suffix: str = "") -> str:
    parts = item.link_id.split(".")
    if len(parts) == 3:
        return f"{parts[0]}.{parts[1]}[0].{parts[2]}{suffix}"
    return item.link_id + suffix


def problems(request: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        load_triage_request(request)
    return {i.path: i.code for i in field_issues(info.value.messages)}


NUMERIC = [i for i in ITEMS.values() if i.is_numeric]
CODED = [i for i in ITEMS.values() if i.kind is Kind.CODE]
TEXT = [i for i in ITEMS.values() if i.kind is Kind.STRING]
BOOLEAN = [i for i in ITEMS.values() if i.kind is Kind.BOOLEAN]


@pytest.mark.parametrize("item", NUMERIC, ids=lambda i: i.link_id)
def test_numeric_ranges_are_inclusive_and_enforced(item):
    assert item.minimum is not None
    assert item.maximum is not None
    step = 1 if item.kind is Kind.INTEGER else 0.001
    for inside in (item.minimum, item.maximum):
        value = int(inside) if item.kind is Kind.INTEGER else inside
        load_triage_request(request_with(item, value))
    for outside in (item.minimum - step, item.maximum + step):
        value = int(outside) if item.kind is Kind.INTEGER else outside
        assert problems(request_with(item, value)) == {error_path(item): "value"}


@pytest.mark.parametrize("item", CODED, ids=lambda i: i.link_id)
def test_every_code_is_accepted_and_others_are_code_invalid(item):
    for code in item.codes:
        load_triage_request(request_with(item, code.code))
    assert problems(request_with(item, "not_a_code")) == {error_path(item): "code-invalid"}


@pytest.mark.parametrize("item", TEXT, ids=lambda i: i.link_id)
def test_text_length_limit(item):
    assert item.max_length is not None
    load_triage_request(request_with(item, "x" * item.max_length))
    assert problems(request_with(item, "x" * (item.max_length + 1))) == {error_path(item): "value"}


@pytest.mark.parametrize("item", BOOLEAN, ids=lambda i: i.link_id)
def test_every_yes_no_item_is_tri_state(item):
    for value in (True, False):
        load_triage_request(request_with(item, value))
    assert problems(request_with(item, 1)) == {error_path(item): "value"}


# --- property tests ------------------------------------------------------------------------------


def without_nulls(value: Any) -> Any:
    """The documented load rule: null (unknown) object members are dropped."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def integers_as_floats(request: dict[str, Any]) -> dict[str, Any]:
    """The same request with every integer answer sent as an integral float (3 → 3.0)."""
    out = copy.deepcopy(request)
    for link_id, item in ITEMS.items():
        if item.kind is not Kind.INTEGER:
            continue
        parts = link_id.split(".")
        containers: list[dict[str, Any]] = []
        if len(parts) == 1:
            containers = [out]
        elif len(parts) == 2 and isinstance(out.get(parts[0]), dict):
            containers = [out[parts[0]]]
        elif len(parts) == 3 and isinstance(out.get(parts[0]), dict):
            containers = list(out[parts[0]].get(parts[1]) or [])
        for container in containers:
            if isinstance(container.get(parts[-1]), int):
                container[parts[-1]] = float(container[parts[-1]])
    return out


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_any_valid_request_loads_to_itself_minus_nulls(request):
    assert load_triage_request(request) == without_nulls(request)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_integral_floats_load_as_the_same_integers(request):
    loaded = load_triage_request(integers_as_floats(request))
    assert loaded == without_nulls(request)
    assert loaded["patient"]["age_years"].__class__ is int


# --- the fast path gives marshmallow's results -------------------------------------------------


@contextlib.contextmanager
def stock_marshmallow_loop() -> Iterator[None]:
    StrictSchema.fast_path = False
    try:
        yield
    finally:
        StrictSchema.fast_path = True


def outcome(request: Any) -> tuple[str, Any]:
    try:
        return "ok", load_triage_request(request)
    except ValidationError as exc:
        return "error", field_issues(exc.messages)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_requests())
def test_fast_path_matches_marshmallows_own_loop(request):
    fast = outcome(copy.deepcopy(request))
    with stock_marshmallow_loop():
        stock = outcome(copy.deepcopy(request))
    assert fast == stock
