"""The one place where marshmallow's errors become coded issues, one per offending field.

marshmallow reports errors as a tree mirroring the data (``{"history":
{"medications": {0: {"class": [msg]}}}}``). The API needs a flat list with a
JSON path per field and a FHIR issue type; the type comes from the
:class:`~schemas.fields.CodedMessage` the field raised, never from the text.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from marshmallow import ValidationError
from marshmallow.exceptions import SCHEMA

from schemas.codes import IssueType
from schemas.fields import INVALID, VALUE, unsafe_character
from schemas.request import allowed_keys, load_triage_request

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_SEGMENT = 80

Segment = str | int


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One offending field: its JSON path, FHIR issue type and what is wrong."""

    path: str
    code: IssueType
    message: str

    @property
    def diagnostics(self) -> str:
        where = self.path or "request body"
        return f"{where}: {self.message}"


def _key_segment(key: str) -> str:
    """A JSON key as a path segment; odd keys are quoted and ASCII-escaped.

    Keys come from the client, so they may hold dots, quotes, control
    characters or lone surrogates; quoting keeps the path unambiguous and
    always serialisable.
    """
    if _IDENTIFIER.fullmatch(key) and len(key) <= _MAX_SEGMENT:
        return f".{key}"
    quoted = json.dumps(key[:_MAX_SEGMENT], ensure_ascii=True)
    if len(key) > _MAX_SEGMENT:
        quoted = quoted[:-1] + '…"'
    return f"[{quoted}]"


def render_path(segments: tuple[Segment, ...]) -> str:
    """``("history", "medications", 0, "class")`` → ``history.medications[0].class``."""
    out = "".join(f"[{s}]" if isinstance(s, int) else _key_segment(s) for s in segments)
    return out.removeprefix(".")


#: JSON integers a store, orjson and PostgreSQL's bigint hold: 64 bits, signed.
_INT_RANGE = range(-(2**63), 2**63)


def unsafe_values(
    value: Any, segments: tuple[Segment, ...] = (), *, skip: frozenset[str] = frozenset()
) -> Iterator[tuple[str, str]]:
    """(path, why) of every key and string in ``value`` that :func:`unsafe_character`
    refuses, and every integer beyond 64 bits, depth first; top-level keys in ``skip``
    are not entered (a part checked elsewhere). For bodies no schema of ours walks
    (CDS Hooks calls): they end up in the database, logs and JSON like any other."""
    stack: list[tuple[Any, tuple[Segment, ...]]] = [(value, segments)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            why = unsafe_character(node)
            if why is not None:
                yield render_path(where) or "request body", why
        elif type(node) is int and node not in _INT_RANGE:
            yield render_path(where) or "request body", "is an integer beyond 64 bits"
        elif isinstance(node, dict):
            for key, child in reversed(list(node.items())):
                if not where and key in skip:
                    continue
                why = unsafe_character(key)
                if why is not None:
                    yield render_path((*where, key)), f"this key {why}"
                stack.append((child, (*where, key)))
        elif isinstance(node, list):
            stack.extend((child, (*where, i)) for i, child in reversed(list(enumerate(node))))


@cache
def _allowed() -> dict[str, tuple[str, ...]]:
    return allowed_keys()


def _suggestion(segments: tuple[Segment, ...]) -> str:
    """`` (did you mean 'confusion'?)`` for a misspelt key, else ``""``."""
    *parent, key = segments
    if not isinstance(key, str):
        return ""
    parent_id = ".".join(s for s in parent if isinstance(s, str))
    match = difflib.get_close_matches(key, _allowed().get(parent_id, ()), n=1, cutoff=0.75)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _walk(node: Any, segments: tuple[Segment, ...]) -> Iterator[tuple[tuple[Segment, ...], list]]:
    if isinstance(node, Mapping):
        for key, sub in node.items():
            if key == SCHEMA:
                # Object-level message (wrong type). An unknown key literally
                # named "_schema" also lands here; its INVALID code tells them apart.
                own = [m for m in _as_list(sub) if getattr(m, "code", None) != INVALID]
                unknown = [m for m in _as_list(sub) if getattr(m, "code", None) == INVALID]
                if own:
                    yield segments, own
                if unknown:
                    yield (*segments, SCHEMA), unknown
            else:
                yield from _walk(sub, (*segments, key))
    elif isinstance(node, list):
        messages = []
        for entry in node:
            if isinstance(entry, Mapping):
                yield from _walk(entry, segments)
            else:
                messages.append(entry)
        if messages:
            yield segments, messages
    else:
        yield segments, [node]


def _as_list(node: Any) -> list:
    return node if isinstance(node, list) else [node]


def _sort_key(segments: tuple[Segment, ...]) -> tuple[tuple[int, Segment], ...]:
    return tuple((0, s) if isinstance(s, int) else (1, s) for s in segments)


def field_issues(messages: Mapping[str, Any] | list[Any] | str) -> list[FieldIssue]:
    """One :class:`FieldIssue` per offending field, sorted by path.

    Sorting makes the order deterministic (marshmallow reports unknown keys in
    set order) and groups a section's problems together.
    """
    collected: dict[tuple[Segment, ...], list] = {}
    for segments, found in _walk(messages, ()):
        collected.setdefault(segments, []).extend(found)
    issues = []
    for segments in sorted(collected, key=_sort_key):
        found = collected[segments]
        code = getattr(found[0], "code", VALUE)
        text = "; ".join(dict.fromkeys(str(m) for m in found))
        if code == INVALID:
            text += _suggestion(segments)
        issues.append(FieldIssue(render_path(segments), code, text))
    return issues


class InvalidRequestError(ValueError):
    """A decoded body that does not fit the request vocabulary: one issue per field."""

    def __init__(self, issues: list[FieldIssue]) -> None:
        super().__init__(f"{len(issues)} field(s) of the request are not valid")
        self.issues = tuple(issues)


def validate_request(data: Any) -> dict[str, Any]:
    """The loaded request (see :func:`load_triage_request`), or InvalidRequestError.

    Callers outside ``schemas/`` use this and never see a marshmallow type.
    """
    try:
        return load_triage_request(data)
    except ValidationError as exc:
        raise InvalidRequestError(field_issues(exc.messages)) from None
