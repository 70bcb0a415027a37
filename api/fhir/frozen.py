"""Read-only JSON containers for fragments that many responses share.

The renderer builds every coding, CodeableConcept and prebuilt item once and puts
the same object into every Bundle (rendering must stay far below a millisecond).
Once storage assigns ids and ``meta``, one in-place edit of such a fragment would
corrupt every later response, so shared fragments are frozen: any mutation raises
``TypeError``. They stay ``dict``/``list`` subclasses, so orjson and ``json``
serialise them natively (no ``default`` hook, no speed cost) and they compare equal
to plain dicts and lists. ``copy.copy``/``copy.deepcopy`` return plain, mutable
copies: copy on write.
"""

from __future__ import annotations

import copy
from typing import Any, NoReturn


def _refuse(*args: Any, **kwargs: Any) -> NoReturn:
    del args, kwargs
    raise TypeError("shared FHIR fragment is read-only; copy.deepcopy it before changing it")


class FrozenDict(dict):  # type: ignore[type-arg]
    """A dict that refuses every mutation."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __copy__(self) -> dict[Any, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[Any, Any]:
        return {key: copy.deepcopy(value, memo) for key, value in self.items()}

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))


class FrozenList(list):  # type: ignore[type-arg]
    """A list that refuses every mutation."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = clear = extend = insert = pop = remove = reverse = sort = _refuse

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return [copy.deepcopy(value, memo) for value in self]

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (list(self),))


def freeze(value: Any) -> Any:
    """``value`` with every dict and list in it (also inside tuples) made read-only."""
    kind = type(value)
    if kind is dict or kind is FrozenDict:
        return FrozenDict({key: freeze(item) for key, item in value.items()})
    if kind is list or kind is FrozenList:
        return FrozenList(freeze(item) for item in value)
    if kind is tuple:
        return tuple(freeze(item) for item in value)
    return value
