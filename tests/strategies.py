"""Hypothesis strategies for valid requests, generated from the vocabulary.

Built from ``triage.vocabulary`` so that a new field is generated without
touching the tests. Numbers are drawn near the protocol's thresholds as well as
across their whole range, so boundary behaviour is exercised.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from triage.vocabulary import SECTIONS, TOP_LEVEL_ITEMS, Item, Kind

#: Thresholds used by the knowledge base; numbers are drawn around them.
_INTERESTING = (
    0, 1, 3, 4, 5, 6, 7, 10, 14, 15, 17, 18, 32, 35, 40, 48, 60, 90, 91, 100, 180, 240, 365,
    400, 2.9, 3.0, 3.9, 4.0, 4.5, 31.9, 34.9, 39.9, 49, 38, 39, 37.9, 38.9, 38.0, 39.0,
    101, 399, 401, 1199, 1200,
)  # fmt: skip

BOOLEAN_ITEMS = tuple(
    item.link_id for section in SECTIONS for item in section.items if item.kind is Kind.BOOLEAN
)


def _number(item: Item) -> st.SearchStrategy[Any]:
    low, high = item.minimum, item.maximum
    assert low is not None
    assert high is not None
    near = [v for v in _INTERESTING if low <= v <= high]
    if item.kind is Kind.INTEGER:
        near = [int(v) for v in near if float(v).is_integer()]
        return (
            st.sampled_from(near) | st.integers(int(low), int(high))
            if near
            else st.integers(int(low), int(high))
        )
    finite = st.floats(low, high, allow_nan=False, allow_infinity=False)
    return st.sampled_from(near) | finite if near else finite


def _text(max_length: int) -> st.SearchStrategy[str]:
    alphabet = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
    return st.text(alphabet, min_size=1, max_size=min(max_length, 40))


def value_for(item: Item) -> st.SearchStrategy[Any]:
    """A valid (non-null) answer for one item."""
    if item.kind is Kind.BOOLEAN:
        return st.booleans()
    if item.is_numeric:
        return _number(item)
    if item.kind is Kind.CODE:
        return st.sampled_from([c.code for c in item.codes])
    if item.kind is Kind.CODES:
        return st.lists(
            st.sampled_from([c.code for c in item.codes]),
            min_size=item.min_items or 0,
            max_size=min(item.max_items or 4, 4),
            unique=True,
        )
    if item.kind is Kind.REFERENCE:
        return st.from_regex(r"\APatient/[A-Za-z0-9\-.]{1,64}\Z")
    if item.kind is Kind.STRING:
        return _text(item.max_length or 80)
    if item.kind is Kind.GROUP:
        return st.lists(_object(item.children), max_size=3)
    raise AssertionError(item.kind)


def _object(items: tuple[Item, ...]) -> st.SearchStrategy[dict[str, Any]]:
    required = {item.name: value_for(item) for item in items if item.required}
    optional = {item.name: st.none() | value_for(item) for item in items if not item.required}
    return st.fixed_dictionaries(required, optional=optional)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """A request that satisfies the schema; optional parts omitted, null or given."""
    request: dict[str, Any] = {}
    for section in SECTIONS:
        body = _object(section.items)
        if section.required:
            request[section.name] = draw(body)
        else:
            choice = draw(st.sampled_from(("omit", "null", "give")))
            if choice == "null":
                request[section.name] = None
            elif choice == "give":
                request[section.name] = draw(body)
    for item in TOP_LEVEL_ITEMS:
        choice = draw(st.sampled_from(("omit", "null", "give")))
        if choice == "null":
            request[item.name] = None
        elif choice == "give":
            request[item.name] = draw(value_for(item))
    return request
