"""How a JSON number is read: on the side of every threshold its written value is on.

``31.99999999999999999`` (below 32) reads as the float 32.0, and ``32.0 < 32`` is
false: RF-SEVERE-HYPOTHERMIA would miss a temperature below its threshold. Every
threshold is a short decimal (at most 15 significant digits, which any float holds
exactly as text). When a longer literal reads as the float of a short decimal, the
next float on the literal's side of that decimal is taken instead; no other short
decimal is that close, so the value compares with every threshold as the written one
does (and a fraction written where an integer belongs stays a fraction). A literal
whose float is not short already does. A literal too small for any float
(``1e-400``) is not zero either: it reads as the smallest float on its side of zero,
so an integer field refuses it and a range check sees its sign.

One rule for every JSON the triage reads: request bodies (``api.jsonbody``) and an
intake the CDS service fetches from an EHR's FHIR server (:func:`loads`).
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

import orjson

#: A literal of at most this many characters has at most 15 significant digits.
_EXACT_CHARS = 16
#: A run of digits and points long enough to be a number of 16 or more significant
#: digits (or a long id in a string: reading it again costs little), or an exponent of
#: three digits or more (a literal that may underflow to zero). orjson reads
#: integers up to 64 bits exactly and larger ones as floats, so only a body with a
#: float needs the search (~9 µs on a 1 KB body).
LONG_NUMBER = re.compile(rb"[0-9.]{16,}|[eE]-?0*[0-9]{3,}")
#: A non-zero digit of a number's significand (before any exponent).
_NONZERO = re.compile(r"[1-9]")
#: Any decimal of this many significant digits reads back from its float unchanged.
_DOUBLE_DIGITS = 15


def on_its_side(text: str, value: float) -> float:
    """``value`` (``float(text)``), or the next float on the written value's side."""
    if value == 0.0 and _NONZERO.search(text.partition("e")[0].partition("E")[0]):
        return math.nextafter(0.0, -math.inf if text.startswith("-") else math.inf)
    if len(text) <= _EXACT_CHARS or not _short(value):
        return value
    written, short = Decimal(text), Decimal(repr(value))
    if written > short:
        return math.nextafter(value, math.inf)
    if written < short:
        return math.nextafter(value, -math.inf)
    return value


def _short(number: float) -> bool:
    """Whether a float is the float of a decimal of at most 15 significant digits."""
    return len(Decimal(repr(number)).normalize().as_tuple().digits) <= _DOUBLE_DIGITS


def _float(text: str) -> float:
    return on_its_side(text, float(text))


def loads(data: bytes) -> Any:
    """JSON as orjson reads it (its errors, ``orjson.JSONDecodeError``), with every long
    number read by :func:`on_its_side` and long integers exactly."""
    value = orjson.loads(data)
    if LONG_NUMBER.search(data) is None:
        return value
    return json.loads(data, parse_float=_float)


__all__ = ["LONG_NUMBER", "loads", "on_its_side"]
