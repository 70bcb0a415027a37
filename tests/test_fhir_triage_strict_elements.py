"""$triage refuses malformed FHIR even where the triage reads nothing (bad-input battery).

The Parameters wrapper is held to the R4 Parameters definition, and every element
of an item, an answer, a Coding, the subject Reference and an Extension to its
FHIR R4 JSON type, by one element table (``api/fhir/elements.py``): an unknown or
wrongly typed element is a 422 naming it, a must-understand one (a modifier) is
``not-supported``, never a 200 that silently drops it. What a real renderer sends
(LHC-Forms: ``display``, ``item.text``, ``system`` …) stays accepted and changes
nothing in the result.
"""

from __future__ import annotations

import copy
import datetime
import json
import re
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import create_app
from api.fhir.elements import COMPLEX, OBJECT, PRIMITIVES
from api.fhir.triage_input import PARAMETERS_ELEMENTS, PRIMITIVE_ELEMENTS
from tools.openapi import OPENAPI_PATH

FHIR = "application/fhir+json"
OP = "/fhir/QuestionnaireResponse/$triage"
APP = create_app({"TESTING": True})
_R = "QuestionnaireResponse"
_P = "Parameters.parameter[0]"
REQUEST = {
    "patient": {"reference": "Patient/p1", "age_years": 30},
    "activity": {"session_minutes": 60, "sessions_per_week": 3},
    "twitching": {"body_sites": ["calf"], "timing": "after_exercise"},
    "symptoms": {"headache": False, "confusion": True},
    "history": {"medications": [{"class": "statin", "days_since_start": 3}]},
}


def emitted() -> dict[str, Any]:
    """The QuestionnaireResponse the product itself answers (id, meta, narrative)."""
    response = APP.test_client().post("/v1/triage", json=REQUEST)
    assert response.status_code == 200, response.data[:300]
    return response.json["entry"][0]["resource"]


def _base() -> dict[str, Any]:
    qr = emitted()
    for key in ("id", "meta", "text"):
        qr.pop(key)
    return qr


BASE = _base()


def _qr() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def _at(qr: dict[str, Any], link_id: str) -> int:
    return next(i for i, item in enumerate(qr["item"]) if item["linkId"] == link_id)


TIMING = _at(BASE, "twitching.timing")
MED = _at(BASE, "history.medications")
CODING = f"{_R}.item[{TIMING}].answer[0].valueCoding"


def _wrapped(qr: dict[str, Any] | None = None, **parameter: Any) -> dict[str, Any]:
    resource = _qr() if qr is None else qr
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": resource, **parameter}],
    }


def _post(body: Any) -> Any:
    return APP.test_client().post(OP, data=json.dumps(body), content_type=FHIR)


def _refused(body: Any) -> list[tuple[str, str]]:
    response = _post(body)
    assert response.status_code == 422, response.data[:500]
    assert response.json["resourceType"] == "OperationOutcome"
    return [(i["code"], i["expression"][0]) for i in response.json["issue"]]


def _level(body: Any) -> list[Any]:
    """The triage's findings in a 200 (the Observations' codes and values)."""
    response = _post(body)
    assert response.status_code == 200, response.data[:500]
    return [
        (
            e["resource"]["code"],
            e["resource"].get("valueCodeableConcept"),
            e["resource"].get("component"),
        )
        for e in response.json["entry"]
        if e["resource"]["resourceType"] == "Observation"
    ]


# --- 1. the Parameters wrapper ----------------------------------------------------------

_MODIFIER = [{"url": "http://example.org/negate", "valueBoolean": True}]
_PARAMETERS_CASES = [
    (_wrapped(modifierExtension=_MODIFIER), ("not-supported", f"{_P}.modifierExtension")),
    (
        _wrapped() | {"implicitRules": "http://example.org/x"},
        ("not-supported", "Parameters.implicitRules"),
    ),
    (
        _wrapped() | {"modifierExtension": _MODIFIER},
        ("not-supported", "Parameters.modifierExtension"),
    ),
    (_wrapped(valueBoolean=False), ("invalid", f"{_P}.valueBoolean")),
    (_wrapped(part=[{"name": "x", "valueString": "y"}]), ("invalid", f"{_P}.part")),
    (_wrapped() | {"foo": 1}, ("invalid", "Parameters.foo")),
    (
        _wrapped() | {"text": {"status": "generated", "div": "<div/>"}},
        ("invalid", "Parameters.text"),
    ),
    (
        _wrapped() | {"extension": [{"url": "http://example.org/x"}]},
        ("invalid", "Parameters.extension"),
    ),
    (_wrapped() | {"language": 5}, ("value", "Parameters.language")),
    (_wrapped() | {"id": "a b"}, ("value", "Parameters.id")),
    (_wrapped() | {"meta": []}, ("value", "Parameters.meta")),
    (_wrapped(foo=1), ("invalid", f"{_P}.foo")),
    (_wrapped(id=5), ("value", f"{_P}.id")),
    (_wrapped(extension=[{"valueString": "x"}]), ("required", f"{_P}.extension[0].url")),
    (_wrapped(extension={"url": "http://example.org/x"}), ("value", f"{_P}.extension")),
]


@pytest.mark.parametrize(
    ("body", "expected"), _PARAMETERS_CASES, ids=[e[1] for _, e in _PARAMETERS_CASES]
)
def test_a_malformed_or_must_understand_parameters_wrapper_is_refused_by_name(body, expected):
    assert _refused(body) == [expected]


def test_every_problem_of_the_wrapper_is_reported_with_those_of_the_resource():
    qr = _qr()
    qr["status"] = "done"
    body = _wrapped(qr, valueBoolean=False, modifierExtension=_MODIFIER) | {
        "implicitRules": "x",
        "foo": 1,
    }
    assert _refused(body) == [
        ("not-supported", "Parameters.implicitRules"),
        ("invalid", "Parameters.foo"),
        ("not-supported", f"{_P}.modifierExtension"),
        ("invalid", f"{_P}.valueBoolean"),
        ("code-invalid", f"{_P}.resource.status"),
    ]


def test_a_well_formed_wrapper_with_every_r4_element_is_triaged_as_the_bare_resource():
    body = _wrapped(id="p0", extension=[{"url": "http://example.org/x", "valueString": "y"}]) | {
        "id": "params-1",
        "meta": {"profile": ["http://example.org/StructureDefinition/p"]},
        "language": "en-GB",
    }
    assert _level(body) == _level(_qr())


def test_the_published_parameters_schema_has_the_r4_elements_the_reader_takes():
    document = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    schema = document["components"]["schemas"]["TriageParameters"]
    assert schema["additionalProperties"] is False
    # implicitRules is a modifier; a primitive may carry its ``_name`` (extensions).
    extensions = {f"_{name}" for name in PRIMITIVE_ELEMENTS["Parameters"]}
    assert set(schema["properties"]) == PARAMETERS_ELEMENTS - {"implicitRules"} | extensions
    parameter = schema["properties"]["parameter"]["items"]
    assert parameter["additionalProperties"] is False
    row = COMPLEX["Parameters.parameter"]
    extensions = {f"_{name}" for name, element in row.items() if element.extensible}
    assert set(parameter["properties"]) == set(row) | {"resource"} | extensions


# --- 2. elements of items, answers, codings, the subject -------------------------------


def _set(path: tuple[Any, ...], key: str, value: Any) -> dict[str, Any]:
    qr = _qr()
    node: Any = qr
    for step in path:
        node = node[step]
    node[key] = value
    return qr


_CODING = ("item", TIMING, "answer", 0, "valueCoding")
_ITEM_CASES = [
    (_CODING, "foo", 1, ("invalid", f"{CODING}.foo")),
    (_CODING, "display", 5, ("value", f"{CODING}.display")),
    (_CODING, "display", "", ("value", f"{CODING}.display")),
    (_CODING, "version", 5, ("value", f"{CODING}.version")),
    (_CODING, "userSelected", "yes", ("value", f"{CODING}.userSelected")),
    (_CODING, "id", ["c"], ("value", f"{CODING}.id")),
    (_CODING, "modifierExtension", _MODIFIER, ("invalid", f"{CODING}.modifierExtension")),
    (_CODING, "extension", [{"url": "has space"}], ("value", f"{CODING}.extension[0].url")),
    (("item", 0), "text", 5, ("value", f"{_R}.item[0].text")),
    (("item", 0), "definition", 5, ("value", f"{_R}.item[0].definition")),
    (("item", 0), "definition", "not a uri", ("value", f"{_R}.item[0].definition")),
    (("item", 0), "id", 5, ("value", f"{_R}.item[0].id")),
    (
        ("item", 0),
        "extension",
        [{"url": "http://x", "foo": 1}],
        ("invalid", f"{_R}.item[0].extension[0].foo"),
    ),
    (("item", 0, "answer", 0), "id", True, ("value", f"{_R}.item[0].answer[0].id")),
    (("item", 0, "answer", 0), "extension", [], ("value", f"{_R}.item[0].answer[0].extension")),
    (("item", MED, "item", 0), "text", {}, ("value", f"{_R}.item[{MED}].item[0].text")),
    (("item", MED), "definition", 5, ("value", f"{_R}.item[{MED}].definition")),
    (("subject",), "display", 5, ("value", f"{_R}.subject.display")),
    (("subject",), "id", 5, ("value", f"{_R}.subject.id")),
    ((), "extension", [{"valueString": "no url"}], ("required", f"{_R}.extension[0].url")),
]


@pytest.mark.parametrize(
    ("path", "key", "value", "expected"),
    _ITEM_CASES,
    ids=[f"{c[3][1]}={c[2]!r}" for c in _ITEM_CASES],
)
def test_an_unknown_or_wrongly_typed_element_is_refused_by_name(path, key, value, expected):
    issues = _refused(_set(path, key, value))
    assert issues == [expected]


def test_an_item_issue_names_its_linkid_and_one_issue_per_item():
    qr = _set(_CODING, "display", 5)
    qr["item"][TIMING]["text"] = 5  # the same item: still one issue
    qr["item"][0]["id"] = 5
    response = _post(qr)
    assert response.status_code == 422
    issues = response.json["issue"]
    assert [i["expression"][0] for i in issues] == [f"{_R}.item[0].id", f"{_R}.item[{TIMING}].text"]
    assert issues[1]["diagnostics"].startswith("linkId twitching.timing: ")


def test_what_a_renderer_sends_is_accepted_and_changes_nothing():
    """LHC-Forms exports ``display``, ``item.text``, ``system``; also every other R4 element."""
    qr = _qr()
    extension = [{"url": "http://example.org/x", "valueCoding": {"code": "x"}}]
    for item in qr["item"]:
        item.update(id="i1", definition="http://example.org/q#x", extension=extension)
        for answer in item.get("answer", []):
            answer.update(id="a1", extension=extension)
            if "valueCoding" in answer:
                answer["valueCoding"].update(
                    display="Whatever it says", version="1.1", userSelected=True, id="c"
                )
    qr["subject"].update(display="Ann Example", id="s", extension=extension)
    qr["extension"] = extension
    assert _level(qr) == _level(_qr())


# --- every element of every row, for all values ----------------------------------------

#: A JSON value of each kind, to find one of the wrong kind for any element.
_JSON_VALUES = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.just([]),
    st.lists(st.integers(), min_size=1, max_size=2),
    st.just({}),
    st.text(max_size=5),
)


#: FHIR R4's own rules for the primitives, restated here as the oracle (datatypes.html
#: regexes; JSON has no empty strings). The product is stricter in three places, each
#: stated: a string has no C0/C1 control (but tab, CR, LF), a date must exist
#: (``_real_day``), and a language is a BCP 47 tag.
_R4_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_R4_DATE = _R4_YEAR + r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?"
_R4_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_R4_ZONE = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_R4_DAY = (
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])"
)


def _real_day(v: str) -> bool:
    """A full date (when there is one) that exists: no 30 February."""
    if len(v) < 10:
        return True
    try:
        datetime.date.fromisoformat(v[:10])
    except ValueError:
        return False
    return True


def _matches(pattern: str) -> Any:
    return lambda v: isinstance(v, str) and re.fullmatch(pattern, v) is not None


def _integer(minimum: int | None = None) -> Any:
    return lambda v: (
        isinstance(v, int) and not isinstance(v, bool) and (minimum is None or v >= minimum)
    )


_STRING = _matches(r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]+")
_URI = _matches(r"\S+")
_PRIMITIVE_RULES = {
    "string": _STRING,
    "markdown": _STRING,
    "uri": _URI,
    "url": _URI,
    "canonical": _URI,
    "oid": _matches(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+"),
    "uuid": _matches(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    "code": _matches(r"[^\s]+(\s[^\s]+)*"),
    "id": _matches(r"[A-Za-z0-9\-.]{1,64}"),
    "language": _matches(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*"),
    "base64Binary": _matches(r"(\s*([0-9a-zA-Z\+/=]){4}\s*)+"),
    "date": lambda v: _matches(_R4_DATE)(v) and _real_day(v),
    "dateTime": lambda v: (
        _matches(f"{_R4_DATE}|{_R4_DAY}T{_R4_TIME}{_R4_ZONE}")(v) and _real_day(v)
    ),
    "instant": lambda v: _matches(f"{_R4_DAY}T{_R4_TIME}{_R4_ZONE}")(v) and _real_day(v),
    "time": _matches(_R4_TIME),
    "xhtml": lambda v: isinstance(v, str) and v.lstrip().startswith("<div"),
    "boolean": lambda v: isinstance(v, bool),
    "integer": _integer(),
    "positiveInt": _integer(1),
    "unsignedInt": _integer(0),
    "decimal": lambda v: _integer()(v) or isinstance(v, float),
}


def _well_typed(type_name: str, value: Any) -> bool:
    rule = _PRIMITIVE_RULES.get(type_name)
    return isinstance(value, dict) if rule is None else rule(value)


#: (where in the QuestionnaireResponse, its row, the elements the reader reads itself).
_PLACES = [
    (_CODING, "Coding", CODING, {"code", "system"}),  # system: ours, or code-invalid
    (("item", 0), "QuestionnaireResponse.item", f"{_R}.item[0]", {"linkId"}),
    (
        ("item", 0, "answer", 0),
        "QuestionnaireResponse.item.answer",
        f"{_R}.item[0].answer[0]",
        set(),
    ),
    (("subject",), "Reference", f"{_R}.subject", {"reference", "type", "identifier"}),
]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(place=st.sampled_from(_PLACES), data=st.data())
def test_a_value_of_the_wrong_json_type_is_refused_wherever_it_is(place, data):
    path, row, where, read = place
    name = data.draw(st.sampled_from(sorted(set(COMPLEX[row]) - read)))
    element = COMPLEX[row][name]
    value = data.draw(_JSON_VALUES)
    if element.repeats:
        value = [value]
    members = value if element.repeats else [value]
    if element.type != OBJECT and all(_well_typed(element.type, v) for v in members):
        return  # a well-typed value: covered by the acceptance test above
    issues = _refused(_set(path, name, value))
    assert len(issues) == 1
    assert issues[0][1].startswith(f"{where}.{name}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(place=st.sampled_from(_PLACES), name=st.from_regex(r"[a-z][A-Za-z]{0,12}", fullmatch=True))
def test_an_unknown_element_name_is_refused_wherever_it_is(place, name):
    path, row, where, _ = place
    if name in COMPLEX[row] or name in ("answer", "item") or name.startswith("value"):
        return
    assert _refused(_set(path, name, "x")) == [("invalid", f"{where}.{name}")]


def test_the_oracle_knows_every_primitive_of_the_table():
    assert set(_PRIMITIVE_RULES) == set(PRIMITIVES)
