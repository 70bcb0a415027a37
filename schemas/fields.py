"""Strict marshmallow fields for the request vocabulary (PROTOCOL.md §3).

Why custom fields: marshmallow's stock fields coerce ("3" → 3, 1 → True), run
validators through generic ``And`` chains and produce plain English messages.
Here every check is inline (one type test, one range test) so a load stays
cheap, nothing is coerced, and every error message is a :class:`CodedMessage`:
a ``str`` that also carries the FHIR issue type (:class:`schemas.codes.IssueType`),
so the API maps errors to OperationOutcome codes structurally instead of parsing English.

Null handling: an optional field sent as ``null`` means *unknown*, exactly like
an omitted field, and is **dropped** from the loaded dict. The loaded request
therefore only holds answers that were given (``null`` never reaches the
engine or the record). ``null`` inside a list is an error.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from marshmallow import Schema, ValidationError, fields, missing

from schemas.codes import IssueType
from schemas.loader import load_object


class CodedMessage(str):
    """An error message that knows its FHIR issue type.

    marshmallow stores field and schema messages as given (``ErrorStore`` copies
    only lists and dicts), so the code survives from the field to the API.
    """

    __slots__ = ("code",)
    code: IssueType

    def __new__(cls, text: str, code: IssueType) -> CodedMessage:
        obj = super().__new__(cls, text)
        obj.code = code
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        # Schema instances deepcopy their fields (and so these messages).
        return (CodedMessage, (str(self), self.code))


REQUIRED = IssueType.REQUIRED
VALUE = IssueType.VALUE
CODE_INVALID = IssueType.CODE_INVALID
INVALID = IssueType.INVALID

#: Unicode category Cc except tab, line feed and carriage return, as a regex class body.
_CONTROL = r"\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F"
#: Free text as JSON Schema states it (openapi.yaml); lone surrogates are refused too,
#: which a JSON Schema pattern cannot express.
TEXT_PATTERN = f"^[^{_CONTROL}]*$"
#: Control characters and every surrogate code point (a lone surrogate cannot be
#: encoded as UTF-8 later).
_BAD_CHAR = re.compile(rf"[{_CONTROL}\ud800-\udfff]")
_SHOW_LIMIT = 40


def unsafe_character(text: str) -> str | None:
    """Why ``text`` cannot be kept or shown as it is, or None.

    A control character (tab, LF and CR allowed: FHIR's rule for strings) or an
    unpaired surrogate, which UTF-8, PostgreSQL text and the FHIR JSON we answer
    cannot hold; the message names it and where it is, never the text itself.
    """
    bad = _BAD_CHAR.search(text)
    if bad is None:
        return None
    char = ord(bad.group())
    what = "an unpaired surrogate" if 0xD800 <= char <= 0xDFFF else "a control character"
    return f"contains {what} (U+{char:04X}) at position {bad.start()}"


def show(value: Any) -> str:
    """A short, ASCII-only JSON rendering of a request value for a message.

    ASCII escaping keeps lone surrogates and control characters out of the
    diagnostics; the cap keeps a 60 KiB string out of the error body.
    """
    try:
        text = json.dumps(value, ensure_ascii=True, allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    if len(text) > _SHOW_LIMIT:
        text = text[: _SHOW_LIMIT - 1] + "…"
    return text


def number(value: float | None) -> str:
    """A bound as a clinician writes it (``0`` not ``0.0``)."""
    if value is None:
        return "?"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _json_type(value: Any) -> str:
    """The JSON type name of a Python value decoded from JSON."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


class StrictField(fields.Field):
    """Base of every vocabulary field: coded errors, null = unknown, no hooks.

    ``deserialize`` is overridden so an omitted or null optional value returns
    ``missing`` (marshmallow then leaves the key out of the result) and a
    present value goes straight to the inline checks of ``_check``.
    """

    default_error_messages: ClassVar[dict[str, str]] = {
        "required": CodedMessage("is required but was omitted or null", REQUIRED),
    }

    def __init__(self, *, required: bool = False, **kwargs: Any) -> None:
        # Not cooperative on purpose: list and nested subclasses call their
        # marshmallow base directly, which ends in Field.__init__ too.
        fields.Field.__init__(self, required=required, allow_none=not required, **kwargs)

    def make_error(self, key: str, **kwargs: Any) -> ValidationError:
        """Like marshmallow's, but the formatted text keeps the message's code."""
        message = self.error_messages[key]
        code = getattr(message, "code", VALUE)
        return ValidationError(CodedMessage(str.format(message, **kwargs), code))

    def error(self, code: IssueType, text: str) -> ValidationError:
        """A coded error with a message built from the offending value."""
        return ValidationError(CodedMessage(text, code))

    def deserialize(
        self,
        value: Any,
        attr: str | None = None,
        data: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        if value is None or value is missing:
            if self.required:
                raise self.make_error("required")
            return missing
        del attr, data, kwargs  # the checks need only the value
        return self._check(value)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        del attr, data, kwargs
        return self._check(value)

    def _check(self, value: Any) -> Any:
        """Validate a non-null value and return it (or its canonical form)."""
        raise NotImplementedError


class StrictBoolean(StrictField):
    """A tri-state answer: exactly ``true`` or ``false`` (null = unknown)."""

    def _check(self, value: Any) -> bool:
        if value is True or value is False:
            return value
        raise self.error(VALUE, f"must be true, false or null, not {show(value)}")


class _Ranged(StrictField):
    def __init__(self, *, minimum: float | None, maximum: float | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.minimum = minimum
        self.maximum = maximum
        self._range_text = f"must be from {number(minimum)} to {number(maximum)}"

    def _in_range(self, value: float) -> None:
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            raise self.error(VALUE, f"{self._range_text}, not {show(value)}")


class StrictInteger(_Ranged):
    """A JSON number with an integral value; ``3.0`` loads as ``3``."""

    def _check(self, value: Any) -> int:
        kind = type(value)
        if kind is float:
            if not value.is_integer():
                raise self.error(VALUE, f"must be a whole number, not {show(value)}")
            # Range first: a huge integer that the decoder read as a float (1e30) is
            # reported as sent, not as int(1e30) = 1000000000000000019884624838656.
            self._in_range(value)
            return int(value)
        if kind is not int:
            raise self.error(VALUE, f"must be an integer, not {_json_type(value)} {show(value)}")
        self._in_range(value)
        return value


class StrictDecimal(_Ranged):
    """Any finite JSON number (int or float kept as sent); never a bool or string."""

    def _check(self, value: Any) -> float:
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                raise self.error(VALUE, f"must be a finite number, not {show(value)}")
        elif kind is not int:
            raise self.error(VALUE, f"must be a number, not {_json_type(value)} {show(value)}")
        self._in_range(value)
        return value


class StrictString(StrictField):
    """Non-empty text without control characters (tab, LF, CR allowed)."""

    def __init__(
        self, *, max_length: int | None, pattern: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.max_length = max_length
        self.pattern = pattern
        self._regex = re.compile(pattern) if pattern else None

    def _check(self, value: Any) -> str:
        if type(value) is not str:
            raise self.error(VALUE, f"must be a string, not {_json_type(value)} {show(value)}")
        if not value:
            raise self.error(VALUE, "must not be empty")
        if self.max_length is not None and len(value) > self.max_length:
            raise self.error(
                VALUE, f"must be at most {self.max_length} characters, not {len(value)}"
            )
        unsafe = unsafe_character(value)
        if unsafe is not None:
            raise self.error(VALUE, unsafe)
        if self._regex is not None and self._regex.fullmatch(value) is None:
            raise self.error(VALUE, f"must match {self.pattern}, not {show(value)}")
        return value


class StrictCode(StrictField):
    """One value of a closed list, matched exactly (no case folding)."""

    def __init__(self, *, choices: Iterable[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.choices: tuple[str, ...] = tuple(choices)
        self._choice_set = frozenset(self.choices)
        listed = ", ".join(self.choices)
        self._choices_text = f"must be one of {listed}"

    def _check(self, value: Any) -> str:
        if type(value) is not str:
            raise self.error(VALUE, f"must be a string code, not {_json_type(value)} {show(value)}")
        if value in self._choice_set:
            return value
        raise self.error(CODE_INVALID, f"{show(value)} is not a known code; {self._choices_text}")


class _StrictList(StrictField, fields.List):
    """Shared list checks: a JSON array, within min/max items, no null members."""

    def __init__(
        self,
        inner: fields.Field,
        *,
        min_items: int | None,
        max_items: int | None,
        unique: bool = False,
        **kwargs: Any,
    ) -> None:
        required = bool(kwargs.pop("required", False))
        fields.List.__init__(self, inner, required=required, allow_none=not required, **kwargs)
        self.min_items = min_items
        self.max_items = max_items
        self.unique = unique

    def _check_shape(self, value: Any) -> list[Any]:
        if type(value) is not list:
            raise self.error(VALUE, f"must be a list, not {_json_type(value)} {show(value)}")
        count = len(value)
        if self.min_items is not None and count < self.min_items:
            raise self.error(VALUE, f"must have at least {self.min_items} item(s), not {count}")
        if self.max_items is not None and count > self.max_items:
            raise self.error(VALUE, f"must have at most {self.max_items} items, not {count}")
        return value

    def _null_member(self) -> list[CodedMessage]:
        return [CodedMessage("must not be null inside a list", VALUE)]


class StrictCodeList(_StrictList):
    """A list of codes; members checked by the inner :class:`StrictCode`."""

    inner: StrictCode

    def _check(self, value: Any) -> list[str]:
        members = self._check_shape(value)
        inner = self.inner
        errors: dict[int, list[CodedMessage]] = {}
        seen: dict[str, int] = {}
        for index, member in enumerate(members):
            if member is None:
                errors[index] = self._null_member()
                continue
            try:
                inner._check(member)
            except ValidationError as exc:
                errors[index] = exc.messages  # type: ignore[assignment]
                continue
            if self.unique:
                first = seen.setdefault(member, index)
                if first != index:
                    errors[index] = [
                        CodedMessage(f"repeats {show(member)} already given at [{first}]", VALUE)
                    ]
        if errors:
            raise ValidationError(errors)  # type: ignore[arg-type]
        return list(members)


class StrictObjectList(_StrictList):
    """A list of objects (``history.medications``) loaded by a nested schema."""

    inner: fields.Nested

    def _check(self, value: Any) -> list[dict[str, Any]]:
        members = self._check_shape(value)
        schema: Schema = self.inner.schema
        errors: dict[int, Any] = {}
        loaded: list[dict[str, Any]] = []
        for index, member in enumerate(members):
            if member is None:
                errors[index] = self._null_member()
                continue
            try:
                loaded.append(load_object(schema, member))
            except ValidationError as exc:
                errors[index] = exc.messages
        if errors:
            raise ValidationError(errors)
        return loaded


class StrictNested(StrictField, fields.Nested):
    """A request section (``patient``, ``symptoms`` ...); null = omitted."""

    def __init__(self, nested: type[Schema], *, required: bool = False, **kwargs: Any) -> None:
        fields.Nested.__init__(self, nested, required=required, allow_none=not required, **kwargs)

    def _check(self, value: Any) -> dict[str, Any]:
        return load_object(self.schema, value)
