"""The request schema, generated from :mod:`triage.vocabulary`.

Nothing here names a request field: every section becomes a nested schema and
every :class:`~triage.vocabulary.Item` becomes one strict field chosen by its
:class:`~triage.vocabulary.Kind`, with the item's range, codes, lengths and
list limits. A field added to the vocabulary is therefore validated, documented
in ``openapi.yaml`` and tested without touching this package.

The schema instance is built once at import (marshmallow resolves and copies
fields at construction, which is the expensive part) and is safe to share:
``load`` keeps no state on the instance.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from marshmallow import RAISE, Schema, ValidationError, fields

from schemas.fields import (
    INVALID,
    VALUE,
    CodedMessage,
    StrictBoolean,
    StrictCode,
    StrictCodeList,
    StrictDecimal,
    StrictField,
    StrictInteger,
    StrictNested,
    StrictObjectList,
    StrictString,
)
from schemas.loader import KeyIndex, load_object
from triage.vocabulary import SECTIONS, TOP_LEVEL_ITEMS, Item, Kind, Section


class StrictSchema(Schema):
    """Base of every request object: unknown keys raise, errors carry codes."""

    class Meta:
        unknown = RAISE
        register = False

    error_messages: ClassVar[dict[str, str]] = {  # type: ignore[misc]
        "unknown": CodedMessage("is not a field of the request vocabulary", INVALID),
        "type": CodedMessage("must be a JSON object", VALUE),
    }

    #: Set to False to load through marshmallow's own ``Schema.load`` (tests compare both).
    fast_path: ClassVar[bool] = True

    @functools.cached_property
    def key_index(self) -> KeyIndex:
        """Load fields by JSON key, for :func:`schemas.loader.load_object`; built once."""
        return KeyIndex.of(self)


def _metadata(item: Item) -> dict[str, Any]:
    """Documentation for ``openapi.yaml`` (read by apispec, never by ``load``)."""
    notes = [item.definition] if item.definition else []
    if item.unit is not None:
        notes.append(f"Unit: {item.unit.display} (UCUM {item.unit.code}).")
    if item.default is not None:
        notes.append(f"Omitted means {item.default}.")
    meta: dict[str, Any] = {"title": item.text, "x_link_id": item.link_id}
    if notes:
        meta["description"] = " ".join(notes)
    return meta


def _code_field(item: Item, **kwargs: Any) -> StrictCode:
    return StrictCode(choices=[code.code for code in item.codes], **kwargs)


def field_for(item: Item) -> StrictField:
    """The strict field that validates one vocabulary item."""
    common: dict[str, Any] = {"required": item.required, "metadata": _metadata(item)}
    match item.kind:
        case Kind.BOOLEAN:
            return StrictBoolean(**common)
        case Kind.INTEGER:
            return StrictInteger(minimum=item.minimum, maximum=item.maximum, **common)
        case Kind.DECIMAL:
            return StrictDecimal(minimum=item.minimum, maximum=item.maximum, **common)
        case Kind.CODE:
            return _code_field(item, **common)
        case Kind.CODES:
            return StrictCodeList(
                _code_field(item, required=True),  # a list member is never null
                min_items=item.min_items,
                max_items=item.max_items,
                unique=item.unique,
                **common,
            )
        case Kind.STRING | Kind.REFERENCE:
            return StrictString(max_length=item.max_length, pattern=item.pattern, **common)
        case Kind.GROUP:
            member = schema_class(
                _group_schema_name(item), item.children, description=f"One of {item.text}."
            )
            return StrictObjectList(
                fields.Nested(member),
                min_items=item.min_items,
                max_items=item.max_items,
                **common,
            )
    raise ValueError(f"no field for kind {item.kind!r} of {item.link_id}")  # pragma: no cover


def _group_schema_name(item: Item) -> str:
    # history.medications -> Medication (one object of the list)
    return item.name.removesuffix("s").capitalize()


def schema_class(
    name: str,
    items: tuple[Item, ...],
    *,
    description: str,
    extra: dict[str, fields.Field] | None = None,
) -> type[StrictSchema]:
    """A :class:`StrictSchema` subclass with one field per item (and ``extra``)."""
    attrs: dict[str, fields.Field] = dict(extra or {})
    attrs.update({item.name: field_for(item) for item in items})
    cls = StrictSchema.from_dict(attrs, name=f"{name}Schema")
    cls.Meta.description = description  # read by apispec for openapi.yaml
    return cls


def _section_field(section: Section) -> StrictNested:
    nested = schema_class(
        f"{section.name.capitalize()}Section", section.items, description=section.text
    )
    return StrictNested(
        nested,
        required=section.required,
        metadata={"description": section.text, "x_link_id": section.name},
    )


TriageRequestSchema: type[StrictSchema] = schema_class(
    "TriageRequest",
    TOP_LEVEL_ITEMS,
    description=(
        "A triage request in the vocabulary of PROTOCOL.md §3. Unknown keys are rejected at "
        "every level; an omitted or null optional field or section means unknown (a null "
        "answer is not recorded: it leaves no QuestionnaireResponse item); no type coercion "
        "(an integral number such as 3.0 is accepted as the integer 3); a given list is "
        "complete ([] means none)."
    ),
    extra={section.name: _section_field(section) for section in SECTIONS},
)


def _warm(schema: StrictSchema) -> None:
    """Build the lazily created nested schemas and key indexes now, not per worker."""
    schema.key_index  # noqa: B018 (builds the cached index now)
    for field in schema.fields.values():
        if isinstance(field, StrictNested):
            _warm(field.schema)
        elif isinstance(field, StrictObjectList):
            _warm(field.inner.schema)


#: The one shared instance used by the API (built once; ``load`` is stateless).
REQUEST_SCHEMA: StrictSchema = TriageRequestSchema()
_warm(REQUEST_SCHEMA)


def allowed_keys() -> dict[str, tuple[str, ...]]:
    """The permitted keys of every object, by vocabulary path of the object.

    Used for "did you mean" hints; ``""`` is the top level.
    """
    keys: dict[str, tuple[str, ...]] = {
        "": tuple(s.name for s in SECTIONS) + tuple(i.name for i in TOP_LEVEL_ITEMS)
    }
    for section in SECTIONS:
        keys[section.name] = tuple(i.name for i in section.items)
        for item in section.items:
            if item.children:
                keys[item.link_id] = tuple(child.name for child in item.children)
    return keys


def load_triage_request(data: Any) -> dict[str, Any]:
    """Validate and load a decoded JSON request.

    Returns a plain nested dict in the request's JSON shape holding only the
    answers given: omitted and null optional fields and sections are absent,
    no default is injected, integral floats of integer fields become ``int``.
    Raises :class:`marshmallow.ValidationError` whose messages are
    :class:`~schemas.fields.CodedMessage` (see :func:`schemas.issues.field_issues`).
    """
    if not isinstance(data, dict):
        raise ValidationError({"_schema": [StrictSchema.error_messages["type"]]})
    return load_object(REQUEST_SCHEMA, data)
