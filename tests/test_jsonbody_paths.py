"""A refused JSON body names the offending member (api/jsonbody.py), on every JSON endpoint.

The decoders refuse a duplicate key, a number that overflows to infinity, NaN and
Infinity, nesting past the limit and malformed text; the 400 names where in
``expression``: the JSON path in the style of the 422s (``history.medications[0].class``)
or, for the FHIR bodies (``$triage``, intake submissions), the FHIRPath in the style of
the ``$triage`` reader (``QuestionnaireResponse.item[0].linkId``). Bodies are written
here as trees of (key, value) pairs, so a duplicate can be planted anywhere and its path
is known without asking the code under test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from cds_support import FEEDBACK, HOST, SERVICE, Ehr
from cds_support import registered_ehr as ehr  # noqa: F401 (the fixture)
from fhir.resources.R4B.operationoutcome import OperationOutcome
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.errors import MalformedBodyError
from api.jsonbody import MAX_DEPTH, parse_json_object
from schemas.issues import Segment, render_path
from tests.support.conformance import narrative_problems

# --- bodies as trees of pairs ------------------------------------------------------------


@dataclass(frozen=True)
class Obj:
    """A JSON object as its members in order (a duplicate key is possible)."""

    pairs: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Raw:
    """A literal written as it is (``1e400``, ``NaN``): not a value Python can dump."""

    text: str


def encode(node: Any) -> str:
    """The JSON text of a tree of Obj, lists, Raw and scalars (ASCII escapes only)."""
    if isinstance(node, Obj):
        return "{" + ", ".join(f"{json.dumps(k)}: {encode(v)}" for k, v in node.pairs) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(encode(v) for v in node) + "]"
    if isinstance(node, Raw):
        return node.text
    return json.dumps(node, allow_nan=False)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
#: Keys: element-like names mostly, and some that are no identifier (quoted in a JSON
#: path; they end a FHIRPath at the element holding them).
_keys = st.from_regex(r"[a-z][A-Za-z0-9_]{0,7}", fullmatch=True) | st.text(max_size=6)


def _objects(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Obj]:
    return st.dictionaries(_keys, values, max_size=4).map(lambda d: Obj(tuple(d.items())))


_trees = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=3) | _objects(inner), max_leaves=16
)

#: Literals every endpoint refuses; all of them name the member that holds them.
BAD_NUMBERS = ("1e400", "-1e999", "1E+400", "-0.5e99999", "NaN", "Infinity", "-Infinity")
#: Values that are no JSON (the decoder stops at their first character), and a string
#: with a byte that is not UTF-8 (``BADBYTE`` is replaced in the encoded body: no key or
#: string of these trees can hold it).
BROKEN_VALUES = ("tru", "nul", "-", ".5", "'x'", "+1", "BADBYTE")


def _containers(node: Any, path: tuple[Segment, ...] = ()) -> list[tuple[Segment, ...]]:
    """The path of every object and array in the tree, the root first."""
    found = []
    if isinstance(node, Obj):
        found.append(path)
        for key, value in node.pairs:
            found += _containers(value, (*path, key))
    elif isinstance(node, list):
        found.append(path)
        for i, value in enumerate(node):
            found += _containers(value, (*path, i))
    return found


def _replace(node: Any, path: tuple[Segment, ...], change: Callable[[Any], Any]) -> Any:
    """The tree with the container at ``path`` replaced by ``change(container)``."""
    if not path:
        return change(node)
    head, *rest = path
    if isinstance(node, Obj):
        return Obj(
            tuple((k, _replace(v, tuple(rest), change) if k == head else v) for k, v in node.pairs)
        )
    return [_replace(v, tuple(rest), change) if i == head else v for i, v in enumerate(node)]


@st.composite
def planted(
    draw: st.DrawFn, root: st.SearchStrategy[Obj], bad_values: tuple[str, ...] = BAD_NUMBERS
) -> tuple[str, tuple[Segment, ...]]:
    """(a body with exactly one refused thing in it, the path of the member holding it);
    ``bad_values``: the values planted when the thing is not a repeated key."""
    tree = draw(root)
    where = draw(st.sampled_from(_containers(tree)))
    target: Any = tree
    for segment in where:
        target = dict(target.pairs)[segment] if isinstance(target, Obj) else target[segment]
    duplicate = (
        bad_values is BAD_NUMBERS
        and isinstance(target, Obj)
        and target.pairs
        and draw(st.booleans())
    )
    if duplicate:
        # The key again, later in the same object, with any value.
        key = draw(st.sampled_from([k for k, _ in target.pairs]))
        value = draw(_scalars)
        first = [k for k, _ in target.pairs].index(key)
        at = draw(st.integers(first + 1, len(target.pairs)))

        def change(obj: Obj) -> Obj:
            return Obj((*obj.pairs[:at], (key, value), *obj.pairs[at:]))

        return encode(_replace(tree, where, change)), (*where, key)
    bad = Raw(draw(st.sampled_from(bad_values)))
    if isinstance(target, Obj):
        taken = {k for k, _ in target.pairs}
        key = draw(_keys.filter(lambda k: k not in taken))
        at = draw(st.integers(0, len(target.pairs)))

        def add(obj: Obj) -> Obj:
            return Obj((*obj.pairs[:at], (key, bad), *obj.pairs[at:]))

        return encode(_replace(tree, where, add)), (*where, key)
    at = draw(st.integers(0, len(target)))
    return encode(_replace(tree, where, lambda a: [*a[:at], bad, *a[at:]])), (*where, at)


def _bytes(body: str) -> bytes:
    return body.encode().replace(b"BADBYTE", b'"caf\xe9"')


@given(planted(_objects(_trees), BROKEN_VALUES))
def test_a_syntax_error_or_bad_byte_names_the_member_being_read(case):
    body, segments = case
    with pytest.raises(MalformedBodyError) as info:
        parse_json_object(_bytes(body))
    assert info.value.expression == (render_path(segments),), body


@given(st.integers(0, 3000), st.integers(0, 3000), st.sampled_from(BROKEN_VALUES))
def test_a_long_run_of_plain_members_is_counted_exactly(before, after, broken):
    """The walk of a broken body skips runs of plain scalars at once; indexes and keys
    after such a run are still exact."""
    members = ", ".join(["1", '"x, y"', "-2.5", "true", "null"][i % 5] for i in range(before))
    keys = ", ".join(f'"k{i}": "v:{i}"' for i in range(after))
    array = f"[{members}{', ' if before else ''}{broken}]"
    body = f'{{{keys}{", " if after else ""}"a": {{"b": {array}}}}}'
    with pytest.raises(MalformedBodyError) as info:
        parse_json_object(_bytes(body))
    assert info.value.expression == (f"a.b[{before}]",)


def fhir_path(root: str, segments: tuple[Segment, ...]) -> str:
    """The FHIRPath the ``$triage`` reader would give: root, element names and indexes,
    ending at the element that holds a key which is no element name."""
    path = root
    for segment in segments:
        if isinstance(segment, int):
            path += f"[{segment}]"
        elif segment.isidentifier():
            path += f".{segment}"
        else:
            break
    return path


def _fhir_root(resource_type: str) -> st.SearchStrategy[Obj]:
    no_type = st.dictionaries(_keys.filter(lambda k: k != "resourceType"), _trees, max_size=4)
    return no_type.map(lambda d: Obj((("resourceType", resource_type), *d.items())))


# --- the decoder -------------------------------------------------------------------------


@given(planted(_objects(_trees)))
def test_the_refusal_names_exactly_the_planted_member(case):
    body, segments = case
    with pytest.raises(MalformedBodyError) as info:
        parse_json_object(body.encode())
    assert info.value.expression == (render_path(segments),), body


@given(st.sampled_from(["QuestionnaireResponse", "Parameters"]).flatmap(
    lambda kind: st.tuples(st.just(kind), planted(_fhir_root(kind)))
))  # fmt: skip
def test_a_fhir_body_names_the_planted_member_as_a_fhirpath(case):
    kind, (body, segments) = case
    with pytest.raises(MalformedBodyError) as info:
        parse_json_object(body.encode(), fhir=True)
    assert info.value.expression == (fhir_path(kind, segments),), body


DEEP = "[" * MAX_DEPTH + "]" * MAX_DEPTH  # one level too deep inside any member


@pytest.mark.parametrize(
    ("body", "json_path", "fhir_expression", "reason"),
    [
        ('{"a": 1, "a": 2}', "a", "QuestionnaireResponse.a", "duplicate key"),
        (
            '{"symptoms": {"headache": true, "headache": false}}',
            "symptoms.headache",
            "QuestionnaireResponse.symptoms.headache",
            "duplicate key",
        ),
        (
            '{"history": {"medications": [{"class": 1e400}]}}',
            "history.medications[0].class",
            "QuestionnaireResponse.history.medications[0].class",
            "overflows",
        ),
        ('{"a": [1, NaN]}', "a[1]", "QuestionnaireResponse.a[1]", "NaN"),
        ('{"a b": {"c": 1, "c": 2}}', '["a b"].c', "QuestionnaireResponse", "duplicate key"),
        # The decoder's own order: a NaN read before the object with the repeat closes.
        ('{"x": {"a": 1, "a": 2, "b": NaN}}', "x.b", "QuestionnaireResponse.x.b", "NaN"),
        ('{"x": {"a": 1, "a": 2}, "b": NaN}', "x.a", "QuestionnaireResponse.x.a", "duplicate"),
        # Syntax: the member being read where the text breaks.
        ('{"a": tru}', "a", "QuestionnaireResponse.a", "not valid JSON"),
        ('{"a": {"b": [1,]}}', "a.b", "QuestionnaireResponse.a.b", "not valid JSON"),
        ('{"a" 1}', "a", "QuestionnaireResponse.a", "delimiter"),
        ('{"a": "x\x01"}', "a", "QuestionnaireResponse.a", "control character"),
        ('{"a": [{"b": "unterminated', "a[0].b", "QuestionnaireResponse.a[0].b", "Unterminated"),
        ('{"a": ' + DEEP + "}", "a" + "[0]" * (MAX_DEPTH - 1), None, "nested deeper"),
        (
            '{"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": '
            '{"resourceType": "QuestionnaireResponse", '
            '"item": [{"linkId": "a", "linkId": "b"}]}}]}',
            "parameter[0].resource.item[0].linkId",
            "Parameters.parameter[0].resource.item[0].linkId",
            "duplicate key",
        ),
    ],
)
def test_each_refusal_names_its_member(body, json_path, fhir_expression, reason):
    for fhir, expected in ((False, json_path), (True, fhir_expression)):
        with pytest.raises(MalformedBodyError) as info:
            parse_json_object(body.encode(), fhir=fhir)
        assert reason in info.value.diagnostics
        if expected is not None:
            assert info.value.expression == (expected,)


def test_a_body_nested_past_what_the_stdlib_decoder_can_recurse_names_the_member():
    body = '{"a": {"b": ' + "[" * 5000 + "]" * 5000 + "}}"
    with pytest.raises(MalformedBodyError) as info:
        parse_json_object(body.encode())
    assert info.value.expression == ("a.b" + "[0]" * (MAX_DEPTH - 2),)


@pytest.mark.parametrize("fhir", [False, True])
def test_a_refusal_before_a_nesting_too_deep_for_the_c_decoder_is_still_named(fhir):
    """The C decoder cannot read the whole body (RecursionError): the token walk finds
    the NaN the strict decoder met first."""
    body = '{"resourceType": "Parameters", "a": [1, NaN], "b": ' + "[" * 5000 + "]" * 5000 + "}"
    with pytest.raises(MalformedBodyError) as info:
        parse_json_object(body.encode(), fhir=fhir)
    assert "NaN" in info.value.diagnostics
    assert info.value.expression == ("Parameters.a[1]" if fhir else "a[1]",)


@pytest.mark.parametrize(
    ("body", "expression"),
    [
        (b'{"notes": "caf\xe9 au lait"}', ("notes",)),  # Latin-1 text in a value
        (b'{"a": [{"b": "\xff"}]}', ("a[0].b",)),
        (b'{"caf\xe9": 1}', ()),  # in a key: the member has no name to give
        (b'\xef\xbb\xbf{"a": 1}', ()),  # a byte order mark: the body as a whole
    ],
)
def test_a_bad_byte_names_the_string_it_is_in(body, expression):
    with pytest.raises(MalformedBodyError) as info:
        parse_json_object(body)
    assert info.value.expression == expression


@pytest.mark.parametrize(
    "body", [b"", b"[]", b"3", b'{"a": 1} {"b": 2}', b'{"a": 1,}', b'{"a": 1 "b": 2}']
)
def test_a_problem_of_the_body_as_a_whole_names_no_member(body):
    with pytest.raises(MalformedBodyError) as info:
        parse_json_object(body)
    assert info.value.expression == ()


# --- through every endpoint that reads a JSON body ---------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One JSON-body endpoint: how to post raw bytes to it, and the path style it uses."""

    name: str
    post: Callable[[FlaskClient, Ehr, bytes], Any]
    fhir_root: bool


def _plain(path: str, content_type: str = "application/json") -> Callable[..., Any]:
    def post(client: FlaskClient, _ehr: Ehr, body: bytes) -> Any:
        return client.post(path, data=body, content_type=content_type)

    return post


def _cds(path: str) -> Callable[..., Any]:
    def post(client: FlaskClient, caller: Ehr, body: bytes) -> Any:
        bearer = {"Authorization": f"Bearer {caller.token(HOST + path)}"}
        return client.post(path, data=body, content_type="application/json", headers=bearer)

    return post


def _intake_submit(client: FlaskClient, _ehr: Ehr, body: bytes) -> Any:
    """A submission to a real, valid intake link (the page posts FHIR JSON)."""
    created = client.post("/v1/intake-links", json={})
    assert created.status_code == 201, created.data[:300]
    parts = urlsplit(created.get_json()["url"])
    return client.post(
        f"{parts.path}?{parts.query}", data=body, content_type="application/fhir+json"
    )


ENDPOINTS = [
    Endpoint("/v1/triage", _plain("/v1/triage"), fhir_root=False),
    Endpoint("/v1/intake-links", _plain("/v1/intake-links"), fhir_root=False),
    Endpoint("CDS service", _cds(SERVICE), fhir_root=False),
    Endpoint("CDS feedback", _cds(FEEDBACK), fhir_root=False),
    Endpoint(
        "$triage",
        _plain("/fhir/QuestionnaireResponse/$triage", "application/fhir+json"),
        fhir_root=True,
    ),
    Endpoint("intake submission", _intake_submit, fhir_root=True),
]


def assert_valid_outcome(response: Any) -> dict[str, Any]:
    """A 400 ``structure`` OperationOutcome, valid R4 (fhir.resources R4B), with a
    well-formed narrative; its one issue."""
    assert response.status_code == 400, response.data[:500]
    assert response.headers["Content-Type"].startswith("application/fhir+json")
    body = json.loads(response.data)
    OperationOutcome.model_validate(body)
    assert narrative_problems(body["text"]["div"]) == []
    (issue,) = body["issue"]
    assert (issue["severity"], issue["code"]) == ("error", "structure")
    return issue


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_json_endpoint_names_the_planted_member(client, ehr, endpoint, data):  # noqa: F811
    if endpoint.fhir_root:
        kind = data.draw(st.sampled_from(["QuestionnaireResponse", "Parameters"]))
        body, segments = data.draw(planted(_fhir_root(kind)))
        expected = fhir_path(kind, segments)
    else:
        body, segments = data.draw(planted(_objects(_trees)))
        expected = render_path(segments)
    issue = assert_valid_outcome(endpoint.post(client, ehr, body.encode()))
    assert issue["expression"] == [expected], body


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_every_json_endpoint_names_no_member_for_the_body_as_a_whole(client, ehr, endpoint):  # noqa: F811
    issue = assert_valid_outcome(endpoint.post(client, ehr, b"[1, 2]"))
    assert "expression" not in issue
    assert "array" in issue["diagnostics"]
