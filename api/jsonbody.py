"""Read and decode a request body as strict JSON (PROTOCOL.md §3 and §9).

Strict means: UTF-8 only (no BOM), no NaN/Infinity literals, no number that
overflows to infinity, no duplicate key in any object, bounded nesting, and a
JSON object at the top. Every violation raises :class:`MalformedBodyError`
(400 ``structure``); a body over the limit raises :class:`PayloadTooLargeError`.

Speed: orjson decodes an example body in ~2 µs against ~7 µs for the stdlib
decoder with the hooks strictness needs. orjson already rejects NaN,
Infinity, overflowing numbers, invalid UTF-8 and lone surrogates, but keeps
the last of duplicate keys silently. The fast path proves there were none
without a second parse: every key is followed by exactly one structural
colon, so ``body.count(b":") == keys in the decoded tree`` holds only when no
key was dropped and no string contains a colon. Whenever orjson fails or the
proof does not hold, the stdlib strict decoder decides, and produces the
error message; the two agree on every body both accept (tested).

Where: a refusal names the offending member in ``expression`` when there is one
(``history.medications[0].class``; a duplicate key names the member itself; a FHIR
body its FHIRPath, ``QuestionnaireResponse.item[0].linkId``). The decoders do not
say where they stopped, so only once a body has been refused does
:func:`_locate` read it a second time, tracking the path, in step with the
stdlib decoder; the accepted path never pays for it. That read is mostly the C
decoder's (a tree that keeps repeated keys and marks refused literals; whole
values skipped before a syntax error), so a refused example body costs some tens
of microseconds more, a hostile 64 KiB one a few times the strict decode.

A number of 16 or more significant digits can stand for a value its float
misplaces across a threshold (``31.99999999999999999`` reads as 32.0): a body
with a run of 16 digits or points goes to the strict decoder, which keeps such
a number on its side of every short decimal (:func:`schemas.numbers.on_its_side`)
and reads long integers exactly.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from json.decoder import scanstring
from json.scanner import NUMBER_RE, make_scanner
from typing import Any, Literal

import orjson
from werkzeug.wrappers import Request

from api.errors import MalformedBodyError, PayloadTooLargeError, UnsupportedMediaTypeError
from api.fhir.questionnaire_response import QR
from schemas.issues import Segment, render_path
from schemas.numbers import LONG_NUMBER, on_its_side

#: Deeper than any valid request (4) by a wide margin; bounds every later walk.
MAX_DEPTH = 64
_CHUNK = 65536


def read_body(request: Request, limit: int) -> bytes:
    """The raw body, never reading more than ``limit + 1`` bytes.

    The declared Content-Length is checked first so an oversized upload is
    refused before it is read; the read itself is capped too, for chunked
    bodies (no Content-Length) and for clients that under-declare.
    """
    coding = request.headers.get("Content-Encoding", "").strip().lower()
    if coding not in ("", "identity"):
        # RFC 9110 §8.4.1: a coding the server does not decode may be refused with 415;
        # reading the bytes as they are would misreport a gzip body as bad UTF-8, and
        # accept a plain body whose header says otherwise.
        raise UnsupportedMediaTypeError(
            f"Content-Encoding {coding[:40]!r} is not supported: send the body uncompressed",
            ("http.Content-Encoding",),
        )
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLargeError(limit)
    stream = request.stream
    # A declared body ends at its length (the stream is cut there: werkzeug's
    # LimitedStream, gunicorn's length reader), so reading stops once it is all in
    # instead of asking for the end as well; otherwise read to the end, one byte past
    # the limit at most.
    wanted = limit + 1 if declared is None else declared
    chunks: list[bytes] = []
    total = 0
    while total < wanted:
        chunk = stream.read(min(_CHUNK, wanted - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise PayloadTooLargeError(limit)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _shape(value: Any) -> tuple[int, int, bool]:
    """(number of object keys, nesting depth, whether a float is in it) of a decoded
    value, iteratively."""
    keys = 0
    deepest = 0
    floats = False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if type(node) is dict:
            keys += len(node)
            children: Any = node.values()
        else:
            children = node
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif kind is float:
                floats = True
    return keys, deepest, floats


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RejectedError(f"duplicate key {json.dumps(key[:40])} in one object")
            seen.add(key)
    return obj


def _constant(name: str) -> Any:
    raise _RejectedError(f"{name} is not a JSON number; NaN and Infinity are not accepted")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _RejectedError(f"number {text[:40]} is too large (it overflows to infinity)")
    return on_its_side(text, value)


class _RejectedError(ValueError):
    """Raised inside the stdlib decoder hooks; carries the client-facing reason."""


#: Python refuses to convert integer strings longer than this (``sys.get_int_max_str_digits``).
_INT_DIGITS = 4300


def _int(text: str) -> int | float:
    """An integer; beyond Python's conversion limit, ±infinity instead of a ValueError.

    The exact value of a 5,000-digit integer does not matter (every vocabulary range
    rejects it); reading it as infinity lets the schema reject it by field name (422)
    instead of the conversion failing with a 500.
    """
    if len(text) - text.startswith("-") > _INT_DIGITS:
        return -math.inf if text.startswith("-") else math.inf
    return int(text)


_STRICT = json.JSONDecoder(
    object_pairs_hook=_pairs, parse_constant=_constant, parse_float=_float, parse_int=_int
)


def _strict_decode(body: bytes, *, fhir: bool = False) -> Any:
    """The authoritative (slower) decoder; raises MalformedBodyError with the reason and,
    where there is one, the offending member (``fhir``: as a FHIRPath)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The first bad byte is one U+FFFD at the length of the valid prefix.
        at = len(body[: exc.start].decode("utf-8"))
        raise MalformedBodyError(
            f"body is not valid UTF-8 (byte 0x{body[exc.start]:02x} at offset {exc.start})",
            _where(body.decode("utf-8", "replace"), "byte", fhir, at),
        ) from None
    if text.startswith("\ufeff"):
        raise MalformedBodyError(
            "body is not valid JSON: it starts with a UTF-8 byte order mark (BOM), "
            "which JSON forbids"
        )
    try:
        return _STRICT.decode(text)
    except _RejectedError as exc:
        raise MalformedBodyError(
            f"body is not acceptable JSON: {exc}", _where(text, "rejected", fhir)
        ) from None
    except json.JSONDecodeError as exc:
        raise MalformedBodyError(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            _where(text, "syntax", fhir, exc.pos),
        ) from None
    except RecursionError:
        raise MalformedBodyError(
            f"body is nested deeper than {MAX_DEPTH} levels", _where(text, "depth", fhir)
        ) from None


def parse_json_object(body: bytes, *, fhir: bool = False) -> dict[str, Any]:
    """Decode a request body that must be one strict JSON object.

    ``fhir``: the body is a FHIR resource, so a refusal names its member as a FHIRPath
    rooted at the resource type, as the ``$triage`` reader does.
    """
    if not body.strip():
        raise MalformedBodyError("body is empty; expected a JSON object")
    try:
        value = orjson.loads(body)
        trusted = True
    except orjson.JSONDecodeError:
        value = _strict_decode(body, fhir=fhir)
        trusted = False
    if type(value) is not dict:
        kind = "an array" if type(value) is list else "a JSON scalar"
        raise MalformedBodyError(f"body is {kind}; expected a JSON object")
    keys, depth, floats = _shape(value)
    if trusted and (body.count(b":") != keys or (floats and LONG_NUMBER.search(body) is not None)):
        # A duplicate key, or just a colon inside a string; or a number orjson may have
        # rounded across a threshold (see schemas.numbers): the strict decoder decides.
        value = _strict_decode(body, fhir=fhir)
    if depth > MAX_DEPTH:
        raise MalformedBodyError(
            f"body is nested deeper than {MAX_DEPTH} levels",
            _where(body.decode("utf-8", "replace"), "depth", fhir),
        )
    return value


# --- where a refused body went wrong (the error path only) --------------------------------

#: What :func:`_locate` looks for: the first refusal of the strict decoder's hooks
#: (NaN/Infinity, an overflowing number, a duplicate key), the first container nested
#: deeper than MAX_DEPTH, the member at the decoder's syntax error, or at a bad byte.
Want = Literal["rejected", "depth", "syntax", "byte"]

_WHITESPACE = re.compile(r"[ \t\n\r]*")
#: A scalar the strict decoder always takes: a number too short to overflow, a literal,
#: a string without escapes; followed by a delimiter, so no longer token is cut.
_PLAIN = r'(?:-?(?:0|[1-9][0-9]{0,299})(?:\.[0-9]+)?|true|false|null|"[^"\\\x00-\x1f]*")'
_SCALAR = _PLAIN + r"(?=[ \t\n\r]*[,\]}])"
_ELEMENT = re.compile(rf"[ \t\n\r]*,[ \t\n\r]*{_SCALAR}")
#: One element of a run already matched (the run is exactly a sequence of them).
_COUNTED = re.compile(rf"[ \t\n\r]*,[ \t\n\r]*{_PLAIN}")
#: Runs of such members after a first one, which a syntax error's or a bad byte's
#: walk skips in one regex call (a long array of numbers is read at C speed).
_RUNS = {
    True: re.compile(rf"(?:{_ELEMENT.pattern})*"),
    False: re.compile(
        rf'(?:[ \t\n\r]*,[ \t\n\r]*"[^"\\\x00-\x1f]*"[ \t\n\r]*:[ \t\n\r]*{_SCALAR})*'
    ),
}
_LITERALS = ("null", "true", "false")
_CONSTANTS = ("NaN", "Infinity", "-Infinity")
#: A FHIR resource type (the root of a FHIRPath); anything else in ``resourceType``
#: roots the path at the resource the FHIR endpoints read.
_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
_MAX_ELEMENT = 64


@dataclass(slots=True)
class _Frame:
    """An open object or array: its path, its keys so far (an object's)."""

    segments: tuple[Segment, ...]
    array: bool
    keys: set[str] = field(default_factory=set)
    length: int = 0
    duplicate: str | None = None


class _Stop(Exception):  # noqa: N818 - control flow inside _Locator, never raised out
    """Ends the walk: the answer is known, or the text cannot be read further."""


@dataclass(slots=True)
class _Locator:
    """One iterative walk of a JSON text that keeps the path of what it reads.

    It reads as the stdlib decoder does and reports in the same order (a NaN when it is
    read, a duplicate key when its object closes, as ``_pairs`` sees it), so the place
    it finds is the one the decoder's error is about. Iterative, so any nesting is read;
    it stops at the place, so a FHIR body's ``resourceType`` is known if it came first.
    """

    text: str
    want: Want
    at: int = -1
    found: tuple[Segment, ...] | None = None
    resource_type: str | None = None
    stack: list[_Frame] = field(default_factory=list)

    def find(self, kind: Want, segments: tuple[Segment, ...]) -> None:
        if kind == self.want:
            self.found = segments
            raise _Stop

    def broken(self, pos: int, segments: tuple[Segment, ...]) -> _Stop:
        """The text cannot be read at ``pos`` (in ``segments``, if that is the place)."""
        if self.want in ("syntax", "byte") and pos == self.at:
            self.found = segments
        return _Stop()

    def ws(self, pos: int) -> int:
        return _WHITESPACE.match(self.text, pos).end()  # type: ignore[union-attr] # always matches

    def string(self, pos: int, broken_at: tuple[Segment, ...]) -> tuple[str, int]:
        """The string starting at ``pos`` (a quote) and the position after it; what is
        broken inside it is at ``broken_at``."""
        try:
            value, end = scanstring(self.text, pos + 1, True)
        except json.JSONDecodeError as exc:
            raise self.broken(exc.pos, broken_at) from None
        if self.want == "byte" and pos < self.at < end:  # the bad byte is in this string
            self.found = broken_at
            raise _Stop
        return value, end

    def key(self, pos: int, frame: _Frame) -> tuple[int, tuple[Segment, ...]]:
        """Read ``"key":`` of an object member; the position of its value and its path."""
        text = self.text
        if pos >= len(text) or text[pos] != '"':
            raise self.broken(pos, frame.segments)
        key, end = self.string(pos, frame.segments)
        if key in frame.keys and frame.duplicate is None:
            frame.duplicate = key
        frame.keys.add(key)
        member = _child(frame.segments, key)
        end = self.ws(end)
        if end >= len(text) or text[end] != ":":
            raise self.broken(end, member)
        return self.ws(end + 1), member

    def run(self) -> None:
        text, stack = self.text, self.stack
        pos = self.ws(0)
        segments: tuple[Segment, ...] | None = ()
        while True:
            while segments is not None:  # a container opened: read its first member
                pos, segments = self.value(pos, segments)
            # After a value: close what ends here, then go to the next member.
            while segments is None:
                pos = self.ws(pos)
                if not stack:
                    if pos != len(text):
                        raise self.broken(pos, ())  # extra data after the body
                    return
                frame = stack[-1]
                if self.at >= 0:
                    pos = self.skip(pos, frame)
                if text.startswith(",", pos):
                    pos = self.ws(pos + 1)
                    frame.length += 1
                    if not frame.array:
                        pos, segments = self.key(pos, frame)
                    elif text.startswith("]", pos):
                        raise self.broken(pos, frame.segments)  # a trailing comma
                    else:
                        segments = _child(frame.segments, frame.length)
                elif text.startswith("]" if frame.array else "}", pos):
                    pos += 1
                    self.close()
                else:
                    raise self.broken(pos, frame.segments)

    def skip(self, pos: int, frame: _Frame) -> int:
        """Past a run of plain scalar members that ends before the place (``at``)."""
        run = _RUNS[frame.array].match(self.text, pos, self.at)
        if run is None or run.end() == pos:
            return pos
        if frame.array:
            frame.length += len(_COUNTED.findall(run.group()))
        return run.end()

    def close(self) -> None:
        frame = self.stack.pop()
        if frame.duplicate is not None:
            self.find("rejected", _child(frame.segments, frame.duplicate))

    def container(
        self, pos: int, segments: tuple[Segment, ...], *, array: bool
    ) -> tuple[int, tuple[Segment, ...] | None]:
        """Open the object or array at ``pos`` (see :meth:`value`); one that ends before
        the place (``at``) is skipped whole, by the C decoder."""
        text = self.text
        if 0 < len(self.stack) < MAX_DEPTH and self.at >= 0:
            end = _end_of_value(text, pos)
            if 0 <= end <= self.at:
                return end, None
        if len(self.stack) >= MAX_DEPTH:
            self.find("depth", segments)
        frame = _Frame(segments, array=array)
        self.stack.append(frame)
        pos = self.ws(pos + 1)
        if text.startswith("]" if array else "}", pos):
            self.close()
            return pos + 1, None
        if array:
            return pos, _child(segments, 0)
        return self.key(pos, frame)

    def value(
        self, pos: int, segments: tuple[Segment, ...]
    ) -> tuple[int, tuple[Segment, ...] | None]:
        """Read the value at ``pos``: (the position after it, None), or, for a container
        with members, (the position of its first member's value, that member's path)."""
        text = self.text
        char = text[pos : pos + 1]
        if char in ("{", "["):
            return self.container(pos, segments, array=char == "[")
        if char == '"':
            value, end = self.string(pos, segments)
            if segments == ("resourceType",) and self.resource_type is None:
                self.resource_type = value
            return end, None
        for literal in _LITERALS:
            if text.startswith(literal, pos):
                return pos + len(literal), None
        number = NUMBER_RE.match(text, pos)
        if number is not None:
            _, fraction, exponent = number.groups()
            if (fraction or exponent) and math.isinf(float(number.group())):
                self.find("rejected", segments)
            return number.end(), None
        for constant in _CONSTANTS:
            if text.startswith(constant, pos):
                self.find("rejected", segments)
                return pos + len(constant), None
        raise self.broken(pos, segments)


class _Members(list[tuple[str, Any]]):
    """An object as its (key, value) members, a repeated key kept."""


#: A literal the strict decoder refuses (NaN, Infinity, a number overflowing to infinity).
_REFUSED = object()


def _refused_float(text: str) -> object:
    return _REFUSED if math.isinf(float(text)) else 0.0


#: The stdlib decoder, refusing nothing: objects keep every member, refused literals
#: are marked, numbers are not converted (only their place matters here).
_TRACKING = json.JSONDecoder(
    object_pairs_hook=_Members,
    parse_constant=lambda _: _REFUSED,
    parse_float=_refused_float,
    parse_int=lambda _: 0,
)


_SCAN_ONCE = make_scanner(_TRACKING)


def _end_of_value(text: str, pos: int) -> int:
    """Where the JSON value at ``pos`` ends, read by the C decoder; -1 if it cannot be."""
    try:
        return _SCAN_ONCE(text, pos)[1]
    except (ValueError, StopIteration, RecursionError):
        return -1


def _child(segments: tuple[Segment, ...], segment: Segment) -> tuple[Segment, ...]:
    """The path of a member; past MAX_DEPTH, the path of the container at the limit
    (a path that grows with the nesting would make a deep body cost its square)."""
    return (*segments, segment) if len(segments) <= MAX_DEPTH else segments


def _in_tree(tree: Any, want: Want) -> tuple[Segment, ...] | None:
    """The first refused literal or repeated key (``rejected``), or the first container
    past MAX_DEPTH (``depth``), of a tree :data:`_TRACKING` decoded, in the order the
    strict decoder meets them: literals in document order, a repeat when its object
    closes."""
    rejected = want == "rejected"
    stack: list[tuple[Any, tuple[Segment, ...], int, bool]] = [(tree, (), 1, False)]
    while stack:
        node, path, depth, closing = stack.pop()
        if closing:
            seen: set[str] = set()
            for key, _ in node:
                if key in seen:
                    return _child(path, key)
                seen.add(key)
            continue
        if node is _REFUSED or (depth > MAX_DEPTH and not rejected):
            return path
        if type(node) is _Members:
            if rejected:
                stack.append((node, path, depth, True))  # after its members
            members: list[tuple[Segment, Any]] = list(node)
        else:
            members = list(enumerate(node))
        for segment, value in reversed(members):
            if value is _REFUSED or type(value) in (_Members, list):
                stack.append((value, _child(path, segment), depth + 1, False))
    return None


def _locate(text: str, want: Want, at: int = -1) -> tuple[tuple[Segment, ...] | None, str | None]:
    """(path of what ``want`` names, or None when unsure; the body's ``resourceType``).

    A refused literal, a repeated key or too deep a nesting: the C decoder reads the
    whole text into a tree that keeps them, and a walk finds the first. A syntax error,
    a bad byte, or a text nested past what the C decoder recurses: :class:`_Locator`
    reads it up to the place.
    """
    if want in ("rejected", "depth"):
        try:
            tree = _TRACKING.decode(text)
        except (ValueError, RecursionError):
            pass  # broken after the place, or nested too deep for the C decoder
        else:
            resource_type = None
            if type(tree) is _Members:
                types = [v for k, v in tree if k == "resourceType" and isinstance(v, str)]
                resource_type = types[0] if types else None
            return _in_tree(tree, want), resource_type
    locator = _Locator(text, want, at)
    try:
        locator.run()
    except _Stop:
        pass
    except RecursionError:  # not expected (iterative): no place rather than a 500
        return None, None
    return locator.found, locator.resource_type


def _where(text: str, want: Want, fhir: bool, at: int = -1) -> tuple[str, ...]:
    """The ``expression`` of a refusal: the offending member's path, or () for the body."""
    segments, resource_type = _locate(text, want, at)
    if not segments:
        return ()
    if not fhir:
        return (render_path(segments),)
    # As the $triage reader names elements: rooted at the resource type, and a key that
    # is no element name stops the path at the element holding it.
    root = QR
    if resource_type is not None and _RESOURCE_TYPE.fullmatch(resource_type):
        root = resource_type
    path = root
    for segment in segments:
        if isinstance(segment, int):
            path += f"[{segment}]"
        elif segment.isidentifier() and len(segment) <= _MAX_ELEMENT:
            path += f".{segment}"
        else:
            break
    return (path,)
