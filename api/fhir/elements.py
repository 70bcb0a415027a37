"""FHIR R4 JSON shapes of the elements ``$triage`` takes but does not read, as one table.

The triage reads a few elements (``linkId``, ``answer``, ``valueCoding.code`` …);
the others of the same objects (``item.text``, ``valueCoding.display``, an
``extension``, the Parameters wrapper) carry no meaning for it, but a malformed or
unknown one is still refused, never silently dropped: a strict FHIR server
refuses it, and a misspelt element may be an answer that got lost. So each
complex type or backbone element is a row of :data:`COMPLEX` (element name →
:class:`Element`), each primitive a row of :data:`PRIMITIVES` (FHIR R4 JSON: its
JSON type, and the regex the spec gives it), and one walker,
:func:`element_problems`, checks any object against its row. The ``$triage``
request schema (``tools/fhir_contract.py``) is generated from the same table, so
the contract stays exact.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from api.fhir.search import ID_TEXT


@dataclass(frozen=True, slots=True)
class Primitive:
    """A FHIR primitive in JSON: a JSON type and, for strings, the spec's regex."""

    json_type: str  # "string" or "boolean"
    pattern: str | None = None


#: Whitespace spelt out: ``\s`` differs between regex engines (Python's includes
#: U+001C–U+001F and U+0085, ECMA's and Rust's do not), and the published schema must
#: refuse exactly what this reader refuses. These are the characters Python's
#: ``str.isspace`` knows.
WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_TOKEN = f"[^{WHITESPACE}]+"
#: FHIR R4 primitives (datatypes.html). JSON has no empty strings (json.html), so a
#: string is at least one character; ``uri`` is ``\S*`` made non-empty, ``code``
#: ``[^\s]+(\s[^\s]+)*``, with the whitespace above.
PRIMITIVES: dict[str, Primitive] = {
    "string": Primitive("string"),
    "uri": Primitive("string", _TOKEN),
    "code": Primitive("string", f"{_TOKEN}(?:[{WHITESPACE}]{_TOKEN})*"),
    "id": Primitive("string", ID_TEXT),
    "boolean": Primitive("boolean"),
}
#: An object whose content is not ours to check (a nested resource, an Extension's
#: own sub-extensions): only its JSON shape is.
OBJECT = "object"


@dataclass(frozen=True, slots=True)
class Element:
    """One element of a complex type: its type (a primitive, a row of COMPLEX, OBJECT)."""

    type: str
    repeats: bool = False
    required: bool = False


_ID = Element("string")  # Element.id is a string in R4, not an id
_EXTENSIONS = Element("Extension", repeats=True)

#: Complex types and backbone elements, element name → Element. ``value[x]`` of an
#: Extension is any ``value`` + type name (:data:`OPEN_VALUES`); modifierExtension is
#: in no row: the callers that may meet one refuse it as not understood.
COMPLEX: dict[str, dict[str, Element]] = {
    "Extension": {
        "id": _ID,
        "extension": Element(OBJECT, repeats=True),
        "url": Element("uri", required=True),
    },
    "Coding": {
        "id": _ID,
        "extension": _EXTENSIONS,
        "system": Element("uri"),
        "version": Element("string"),
        "code": Element("code"),
        "display": Element("string"),
        "userSelected": Element("boolean"),
    },
    "Reference": {
        "id": _ID,
        "extension": _EXTENSIONS,
        "reference": Element("string"),
        "type": Element("uri"),
        "identifier": Element(OBJECT),
        "display": Element("string"),
    },
    # QuestionnaireResponse.item and .item.answer: ``answer``, ``item`` and value[x]
    # are read (and checked) by the reader itself.
    "QuestionnaireResponse.item": {
        "id": _ID,
        "extension": _EXTENSIONS,
        "linkId": Element("string", required=True),
        "definition": Element("uri"),
        "text": Element("string"),
    },
    "QuestionnaireResponse.item.answer": {"id": _ID, "extension": _EXTENSIONS},
    # Parameters.parameter: value[x], resource and part are the caller's (inv-1).
    "Parameters.parameter": {
        "id": _ID,
        "extension": _EXTENSIONS,
        "name": Element("string", required=True),
    },
}
#: Types whose object may carry any one ``value[x]``.
OPEN_VALUES = frozenset({"Extension"})
VALUE_KEY = re.compile(r"value[A-Z][A-Za-z0-9]*")
_COMPILED = {name: re.compile(p.pattern) for name, p in PRIMITIVES.items() if p.pattern is not None}


class Fault(NamedTuple):
    """One problem: a message, the FHIRPath of the offending element, a FHIR IssueType."""

    message: str
    expression: str
    code: str


def _shown(value: object) -> str:
    return repr(value)[:40] if not isinstance(value, str) else repr(value[:40])


def _value_faults(value: Any, type_name: str, expr: str, name: str) -> Iterator[Fault]:
    primitive = PRIMITIVES.get(type_name)
    if primitive is not None:
        if primitive.json_type == "boolean":
            ok = isinstance(value, bool)
        else:
            pattern = _COMPILED.get(type_name)
            ok = (
                isinstance(value, str)
                and value != ""
                and (pattern is None or pattern.fullmatch(value) is not None)
            )
        if not ok:
            yield Fault(f"{name} must be a FHIR {type_name}, got {_shown(value)}", expr, "value")
        return
    if not isinstance(value, Mapping):
        what = "a JSON object" if type_name == OBJECT else f"a {type_name} object"
        yield Fault(f"{name} must be {what}", expr, "value")
        return
    if type_name in COMPLEX:
        yield from element_problems(value, type_name, expr)


def element_problems(
    node: Mapping[str, Any],
    type_name: str,
    expr: str,
    *,
    read: frozenset[str] = frozenset(),
    what: str | None = None,
) -> Iterator[Fault]:
    """Every problem of ``node`` as a ``type_name`` (a row of COMPLEX), in key order.

    Keys in ``read`` are the caller's: it reads and checks them itself. Unknown
    elements are ``invalid``; a wrong JSON type or pattern, a missing required
    element ``value``/``required``. ``what`` names the object in messages (its type
    by default).
    """
    what = what or type_name
    elements = COMPLEX[type_name]
    for key, value in node.items():
        if key in read:
            continue
        where = f"{expr}.{key}" if str(key).isidentifier() else expr
        element = elements.get(key)
        if element is None:
            if type_name in OPEN_VALUES and VALUE_KEY.fullmatch(str(key)):
                continue
            yield Fault(f"unknown element {str(key)[:40]!r} in {what}", where, "invalid")
        elif element.repeats:
            if not (isinstance(value, list) and value):
                yield Fault(f"{key} must be a non-empty array", where, "value")
                continue
            for i, member in enumerate(value):
                yield from _value_faults(member, element.type, f"{where}[{i}]", key)
        else:
            yield from _value_faults(value, element.type, where, key)
    for key, element in elements.items():
        if element.required and key not in node and key not in read:
            yield Fault(f"{key} is required in {what}", f"{expr}.{key}", "required")
