"""FHIR search on stored resources: a strict parameter parser and the searchset Bundle.

Pure (no Flask, no database). :func:`parse_search` turns the query string into
a :class:`SearchQuery` or raises :class:`SearchError` (a 400 for the caller):
an unknown parameter, a modifier, an unsupported prefix, a malformed value or
an out-of-range ``_count`` is refused, as strict FHIR servers do, because a
parameter silently ignored returns *more* than the client asked for (someone
else's Observations). :func:`build_searchset` renders one page.

Semantics (FHIR R4 search.html): repeating a parameter ANDs its conditions,
a comma inside one value ORs them (tokens and references; a date takes one value,
and a comma list of dates is refused rather than read in part). Dates are ranges at
the precision given (``2026-11`` is the whole month, in UTC; a time needs its zone, as
FHIR's dateTime says, rather than a guess at the caller's); prefixes eq, ne,
gt, lt, ge, le, sa and eb. Tokens are ``code``, ``system|code`` or ``|code``.
References are ``Type/id`` (a bare id means the parameter's type). Paging is
keyset: ``_cursor`` is an opaque position in the stable order (newest first by
the sort key, then id), so a page never repeats or skips a resource when new
ones are stored meanwhile. It is signed (:class:`CursorSeal`: HMAC-SHA256 with the
deployment's link secret, over the tenant, the resource type and the query), so only
a cursor this server issued for this very search of this tenant is followed: a
forged or transplanted one is a 400 naming ``_cursor``.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode

from schemas import unsafe_character

#: Page size when ``_count`` is absent, and the largest accepted (published in metadata).
DEFAULT_COUNT = 20
MAX_COUNT = 100

ParamKind = Literal["reference", "token", "date"]

#: Token parameters whose codes R4 binds to a closed value set (required binding): any
#: other code is a malformed value (400), not a search that finds nothing.
CLOSED_CODES: dict[str, frozenset[str]] = {
    "action": frozenset({"C", "R", "U", "D", "E"}),  # AuditEventAction
    "outcome": frozenset({"0", "4", "8", "12"}),  # AuditEventOutcome
}

#: The code system of each AuditEvent token (R4: ``subtype`` is a Coding of
#: restful-interaction; ``action`` and ``outcome`` are ``code`` elements, whose system is
#: that of their required binding). ``system|code`` matches only in that system and
#: ``|code`` (explicitly no system) matches nothing: a search is never widened by a
#: system it ignores.
AUDIT_TOKEN_SYSTEMS: dict[str, str] = {
    "subtype": "http://hl7.org/fhir/restful-interaction",
    "action": "http://hl7.org/fhir/audit-event-action",
    "outcome": "http://hl7.org/fhir/audit-event-outcome",
}

#: Search parameters per resource type: name → (kind, target type of a reference).
SEARCH_PARAMETERS: dict[str, dict[str, tuple[ParamKind, str | None]]] = {
    "Observation": {
        "subject": ("reference", "Patient"),
        "code": ("token", None),
        "date": ("date", None),
        "_lastUpdated": ("date", None),
    },
    "QuestionnaireResponse": {
        "subject": ("reference", "Patient"),
        "authored": ("date", None),
        "_lastUpdated": ("date", None),
    },
    "AuditEvent": {
        "date": ("date", None),
        "subtype": ("token", None),
        "action": ("token", None),
        "outcome": ("token", None),
        "entity": ("reference", None),
    },
}

#: Search parameter descriptions for the CapabilityStatement and the contract.
PARAMETER_DOCS: dict[str, str] = {
    "subject": "the Patient reference the triage request gave (Patient/<id> or <id>)",
    "code": "a coding of Observation.code: code, system|code, |code or system|; comma = or",
    "date": "Observation.effectiveDateTime; prefixes eq ne gt lt ge le sa eb",
    "authored": "QuestionnaireResponse.authored; prefixes eq ne gt lt ge le sa eb",
    "_lastUpdated": "meta.lastUpdated; prefixes eq ne gt lt ge le sa eb",
    "subtype": "the restful interaction (create, read, search-type, delete, operation; "
    "update and patch for refused attempts); system http://hl7.org/fhir/restful-interaction",
    "action": "C, R, U, E or D; system http://hl7.org/fhir/audit-event-action",
    "outcome": "0 success, 4 refused request, 8 server failure; "
    "system http://hl7.org/fhir/audit-event-outcome",
    "entity": "what was touched (Bundle/<id>, Observation/<id>, Task/<intake link id>, "
    "Patient/<id> of a CDS Hooks call …)",
}

#: Documentation of a parameter that differs by resource type (else PARAMETER_DOCS).
TYPE_PARAMETER_DOCS: dict[tuple[str, str], str] = {
    ("AuditEvent", "date"): "AuditEvent.recorded; prefixes eq ne gt lt ge le sa eb",
}


def parameter_doc(resource_type: str, name: str) -> str:
    """What parameter ``name`` of ``resource_type`` searches, for metadata and the contract."""
    return TYPE_PARAMETER_DOCS.get((resource_type, name), PARAMETER_DOCS[name])


#: Parameters every search accepts besides its own (``_format`` is content negotiation).
CONTROL_PARAMETERS = ("_count", "_cursor", "_format")

_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")
#: A FHIR year (0001 to 9999).
YEAR_TEXT = "(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
#: A FHIR time zone: ``Z`` or an offset up to ±14:00.
ZONE_TEXT = r"(?:Z|[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_TIME = r"T(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?" + ZONE_TEXT
#: A day that exists (months' lengths, leap years), as FHIR writes it.
DAY_TEXT = f"(?:{YEAR_TEXT}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
#: Exactly the dates that exist (months' lengths, leap years), at any FHIR precision.
_DATE_TEXT = f"(?:{DAY_TEXT}(?:{_TIME})?|{YEAR_TEXT}-(?:0[1-9]|1[0-2])|{YEAR_TEXT})"
_DATE = re.compile(
    r"(?P<year>[0-9]{4})(?:-(?P<month>[0-9]{2})(?:-(?P<day>[0-9]{2})"
    r"(?:T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]{1,6}))?)?"
    r"(?P<zone>Z|[+-][0-9]{2}:[0-9]{2}))?)?)?"
)
#: A FHIR ``id``.
ID_TEXT = r"[A-Za-z0-9\-.]{1,64}"
_ID = re.compile(ID_TEXT)
_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
#: A token's system and code: anything but the separators, control characters (which
#: no code holds, and NUL cannot even be sent to PostgreSQL) and ``\``, FHIR's escape
#: (``a\,b`` is the one code ``a,b``): escapes are not read, so a value holding one is
#: refused rather than split at an escaped comma into codes nobody asked for.
_CODE_CHAR = r"[^,|\\\u0000-\u001F\u007F-\u009F]"
#: ``code``, ``system|code``, ``|code`` (no system) or ``system|`` (any code of it).
_CODING_TEXT = f"(?:(?:{_CODE_CHAR}*\\|)?{_CODE_CHAR}+|{_CODE_CHAR}+\\|)"
_MAX_US = 253_402_300_800_000_000  # 10000-01-01T00:00:00Z

#: The exact syntax of each kind of value (one or a comma list): the parser checks it
#: first, and the OpenAPI contract publishes it, so the two cannot disagree.
VALUE_PATTERNS: dict[str, str] = {
    "date": f"^(?:{'|'.join(_PREFIXES)})?{_DATE_TEXT}$",
    "token": f"^{_CODING_TEXT}(?:,{_CODING_TEXT})*$",
    "reference:Patient": f"^(?:Patient/)?{ID_TEXT}(?:,(?:Patient/)?{ID_TEXT})*$",
    "reference": f"^[A-Z][A-Za-z]{{1,63}}/{ID_TEXT}(?:,[A-Z][A-Za-z]{{1,63}}/{ID_TEXT})*$",
    "_count": "^0*(?:[0-9]{1,2}|100)$",  # 0 to MAX_COUNT
}


def value_pattern(kind: str, target: str | None, name: str | None = None) -> str:
    """The regular expression a value of this kind of parameter (``name``) must match."""
    closed = CLOSED_CODES.get(name or "")
    if closed is not None:  # a token whose codes are a closed value set
        one = f"(?:{_CODE_CHAR}*\\|)?(?:{'|'.join(sorted(closed))})"
        return f"^{one}(?:,{one})*$"
    return VALUE_PATTERNS[f"{kind}:{target}" if kind == "reference" and target else kind]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_VALUE = 1024


class SearchError(ValueError):
    """A search the server refuses (400); ``parameter`` names the query parameter."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True, slots=True)
class Token:
    """``system|code``; ``system`` None = any system, "" = no system; ``code`` None = any."""

    system: str | None
    code: str | None


@dataclass(frozen=True, slots=True)
class DateCondition:
    """A date parameter with its prefix; the value as the range [start_us, end_us)."""

    prefix: str
    start_us: int
    end_us: int


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the sort order: the page lies ``after`` or ``before`` it."""

    direction: Literal["after", "before"]
    sort_us: int
    id: str

    def encode(self) -> str:
        """The position as unsigned text (what :class:`CursorSeal` signs)."""
        raw = f"{self.direction[0]}|{self.sort_us}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


@dataclass(frozen=True, slots=True)
class CursorSeal:
    """Signs and opens the ``_cursor`` of one tenant's searches.

    The position alone cannot widen a search (the query's conditions and the tenant
    still filter every page), but an unsigned one is whatever a caller writes: a
    made-up position, or one lifted from another query or another tenant's link.
    The MAC (HMAC-SHA256 keyed with the deployment's link secret, 128 bits kept)
    covers the tenant, the resource type, the query's parameters except ``_count``
    (a client may change the page size while it walks) and the position, so only a
    cursor this server issued for this search is followed.
    """

    secret: bytes = field(repr=False)
    tenant: str
    #: HMAC-SHA256 keyed with ``secret``, fed the purpose and tenant: each MAC copies it
    #: (a page signs up to three links) instead of keying a new one.
    _keyed: hmac.HMAC = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keyed = hmac.new(self.secret, digestmod=hashlib.sha256)
        keyed.update(f"search-cursor\n{self.tenant}\n".encode())
        object.__setattr__(self, "_keyed", keyed)

    def _mac(self, resource_type: str, canonical: Sequence[tuple[str, str]], raw: str) -> str:
        # Sorted: the order of ANDed parameters changes nothing a cursor points into.
        scope = urlencode(sorted((name, value) for name, value in canonical if name != "_count"))
        mac = self._keyed.copy()
        mac.update(f"{resource_type}\n{scope}\n{raw}".encode())
        return _b64(mac.digest()[:16])

    def seal(self, query: SearchQuery, cursor: Cursor) -> str:
        """The ``_cursor`` value of a link to ``cursor`` in ``query``."""
        raw = cursor.encode()
        return f"{raw}.{self._mac(query.resource_type, query.canonical, raw)}"

    def open(self, resource_type: str, canonical: Sequence[tuple[str, str]], value: str) -> Cursor:
        """The cursor of a link this server issued for this search; SearchError else."""
        raw, dot, mac = value.partition(".")
        expected = self._mac(resource_type, canonical, raw)
        if not dot or not hmac.compare_digest(mac.encode("ascii", "replace"), expected.encode()):
            raise SearchError("_cursor", "_cursor is not a cursor this server issued")
        return decode_cursor(raw)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed search: every condition (each tuple is one occurrence, OR inside)."""

    resource_type: str
    references: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    tokens: dict[str, tuple[tuple[Token, ...], ...]] = field(default_factory=dict)
    dates: dict[str, tuple[DateCondition, ...]] = field(default_factory=dict)
    count: int = DEFAULT_COUNT
    cursor: Cursor | None = None
    #: The parameters as given, minus paging (for the links), in a canonical order.
    canonical: tuple[tuple[str, str], ...] = ()
    #: Signs the cursors of this search's links (None: no links with a cursor).
    seal: CursorSeal | None = field(default=None, repr=False, compare=False)


def _to_us(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def instant_us(text: str) -> int:
    """Microseconds since the epoch of a FHIR instant (``2026-11-27T14:00:00.123Z``)."""
    return _to_us(datetime.fromisoformat(text.replace("Z", "+00:00")))


def format_us(value: int) -> str:
    """The FHIR instant (UTC, milliseconds) of microseconds since the epoch."""
    moment = _EPOCH + timedelta(microseconds=value)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_date_range(name: str, text: str) -> tuple[int, int]:
    """A FHIR date/dateTime as [start, end) in µs, at the precision it is written in."""
    match = _DATE.fullmatch(text)
    if match is None:
        raise SearchError(name, f"{name}: {text[:40]!r} is not a FHIR date or dateTime")
    parts = match.groupdict()
    year = int(parts["year"])
    try:
        if parts["month"] is None:
            start = datetime(year, 1, 1, tzinfo=UTC)
            if year == 9999:
                return _to_us(start), _MAX_US
            end = datetime(year + 1, 1, 1, tzinfo=UTC)
        elif parts["day"] is None:
            month = int(parts["month"])
            start = datetime(year, month, 1, tzinfo=UTC)
            end = start + timedelta(days=calendar.monthrange(year, month)[1])
        elif parts["hour"] is None:
            start = datetime(year, int(parts["month"]), int(parts["day"]), tzinfo=UTC)
            end = start + timedelta(days=1)
        else:
            zone = parts["zone"]
            tz = UTC if zone == "Z" else datetime.strptime(zone, "%z").tzinfo
            fraction = parts["fraction"]
            start = datetime(
                year,
                int(parts["month"]),
                int(parts["day"]),
                int(parts["hour"]),
                int(parts["minute"]),
                int(parts["second"] or 0),
                int((fraction or "").ljust(6, "0") or 0),
                tzinfo=tz,
            )
            if fraction:
                step = timedelta(microseconds=10 ** (6 - len(fraction)))
            else:
                step = timedelta(seconds=1 if parts["second"] else 60)
            end = start + step
    except ValueError:
        raise SearchError(name, f"{name}: {text[:40]!r} is not a valid date") from None
    except OverflowError:  # the range ends after 9999-12-31
        return _to_us(start), _MAX_US
    return _to_us(start), _to_us(end)


def _date_condition(name: str, value: str) -> DateCondition:
    prefix = "eq"
    if len(value) >= 2 and value[:2].isalpha():
        prefix, value = value[:2], value[2:]
        if prefix not in _PREFIXES:
            raise SearchError(
                name, f"{name}: prefix {prefix!r} is not supported ({', '.join(_PREFIXES)})"
            )
    start, end = parse_date_range(name, value)
    return DateCondition(prefix, start, end)


def _token(name: str, value: str) -> Token:
    system, bar, code = value.rpartition("|")
    if not code:
        if bar and system:  # system|: any code of that system
            return Token(system, None)
        raise SearchError(name, f"{name}: a token needs a code")
    return Token(system if bar else None, code)


def _reference(name: str, value: str, target: str | None) -> str:
    if "/" in value:
        resource_type, _, resource_id = value.rpartition("/")
        if target is not None and resource_type != target:
            raise SearchError(name, f"{name}: only {target} references are searchable")
        if not _TYPE.fullmatch(resource_type):
            raise SearchError(name, f"{name}: {value[:80]!r} is not a Type/id reference")
    elif target is None:
        raise SearchError(name, f"{name}: give the reference as Type/id")
    else:
        resource_type, resource_id = target, value
    if not _ID.fullmatch(resource_id):
        raise SearchError(name, f"{name}: {resource_id[:80]!r} is not a FHIR id")
    return f"{resource_type}/{resource_id}"


def _count(value: str) -> int:
    if re.fullmatch(VALUE_PATTERNS["_count"], value) is None:
        raise SearchError("_count", "_count must be a whole number")
    count = int(value)
    if count > MAX_COUNT:
        raise SearchError("_count", f"_count must be at most {MAX_COUNT}")
    return count


def decode_cursor(value: str) -> Cursor:
    """The cursor of a next/previous link; anything else is a 400."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
        direction, sort_us, cursor_id = raw.split("|")
        sort = int(sort_us)
        # A stored time is a 64-bit integer: a bigger one was never issued (and the
        # database cannot even compare with it).
        if direction not in ("a", "b") or not _ID.fullmatch(cursor_id) or abs(sort) >= 2**63:
            raise ValueError(raw)
        return Cursor("after" if direction == "a" else "before", sort, cursor_id)
    except ValueError:
        raise SearchError("_cursor", "_cursor is not a cursor this server issued") from None


def _add_condition(
    name: str,
    *,
    kind: str,
    target: str | None,
    value: str,
    references: dict[str, list[tuple[str, ...]]],
    tokens: dict[str, list[tuple[Token, ...]]],
    dates: dict[str, list[DateCondition]],
) -> None:
    """Parse one occurrence of a parameter into its condition list."""
    if kind == "date":
        dates.setdefault(name, []).append(_date_condition(name, value))
    elif kind == "token":
        tokens.setdefault(name, []).append(tuple(_token(name, part) for part in value.split(",")))
    else:
        references.setdefault(name, []).append(
            tuple(_reference(name, part, target) for part in value.split(","))
        )


def _check_closed_codes(name: str, value: str) -> None:
    """SearchError when a code of a closed value set (:data:`CLOSED_CODES`) is not in it."""
    closed = CLOSED_CODES.get(name)
    if closed is None:
        return
    for coding in value.split(","):
        code = coding.rpartition("|")[2]
        if code not in closed:
            allowed = ", ".join(sorted(closed))
            raise SearchError(name, f"{name}: {code[:40]!r} is not one of {allowed}")


def parse_search(
    resource_type: str, pairs: Sequence[tuple[str, str]], *, seal: CursorSeal | None = None
) -> SearchQuery:
    """Parse the query string of ``GET /fhir/{resource_type}?…`` (strict).

    ``_cursor`` is opened with ``seal``; without one, any ``_cursor`` is refused.
    """
    known = SEARCH_PARAMETERS[resource_type]
    references: dict[str, list[tuple[str, ...]]] = {}
    tokens: dict[str, list[tuple[Token, ...]]] = {}
    dates: dict[str, list[DateCondition]] = {}
    canonical: list[tuple[str, str]] = []
    seen_control: set[str] = set()
    control: dict[str, str] = {}
    for name, value in pairs:
        if len(value) > _MAX_VALUE:
            raise SearchError(name[:40], f"{name[:40]}: value too long")
        # %00 and other control characters: PostgreSQL text cannot hold NUL (a 500).
        unsafe = unsafe_character(value)
        if unsafe is not None:
            raise SearchError(name[:40], f"{name[:40]}: the value {unsafe}")
        if name in CONTROL_PARAMETERS:
            if name in seen_control:
                raise SearchError(name, f"{name} may be given once")
            seen_control.add(name)
            control[name] = value
            continue
        if name not in known:
            shown = name[:40]
            if ":" in name and name.partition(":")[0] in known:
                raise SearchError(shown, f"modifier of {shown!r} is not supported")
            supported = ", ".join([*known, *CONTROL_PARAMETERS])
            raise SearchError(
                shown,
                f"unknown search parameter {shown!r} for {resource_type}; supported: {supported}",
            )
        if not value:
            raise SearchError(name, f"{name} needs a value")
        kind, target = known[name]
        if re.fullmatch(value_pattern(kind, target), value) is None:
            raise SearchError(name, f"{name}: {value[:80]!r} is not a valid {kind} value")
        _check_closed_codes(name, value)
        canonical.append((name, value))
        _add_condition(
            name,
            kind=kind,
            target=target,
            value=value,
            references=references,
            tokens=tokens,
            dates=dates,
        )
    count = _count(control["_count"]) if "_count" in control else DEFAULT_COUNT
    if "_count" in control:
        canonical.append(("_count", str(count)))
    cursor = None
    if "_cursor" in control:
        if seal is None:
            raise SearchError("_cursor", "_cursor is not a cursor this server issued")
        cursor = seal.open(resource_type, canonical, control["_cursor"])
    return SearchQuery(
        resource_type=resource_type,
        references={k: tuple(v) for k, v in references.items()},
        tokens={k: tuple(v) for k, v in tokens.items()},
        dates={k: tuple(v) for k, v in dates.items()},
        count=count,
        cursor=cursor,
        canonical=tuple(canonical),
        seal=seal,
    )


def page_url(base: str, query: SearchQuery, cursor: Cursor | None) -> str:
    """The URL of a page of ``query`` (``self`` when ``cursor`` is the query's own)."""
    params = list(query.canonical)
    if cursor is not None:
        if query.seal is None:
            raise ValueError("a link with a cursor needs the search's CursorSeal")
        params.append(("_cursor", query.seal.seal(query, cursor)))
    encoded = urlencode(params)
    return f"{base}/{query.resource_type}" + (f"?{encoded}" if encoded else "")


def build_searchset(
    *,
    bundle_id: str,
    base: str,
    query: SearchQuery,
    entries: Sequence[tuple[str, str, Any]],
    total: int | None,
    next_cursor: Cursor | None,
    previous_cursor: Cursor | None,
    now: str,
) -> dict[str, Any]:
    """One page of a search as a ``searchset`` Bundle (matches only, with links).

    ``entries`` are ``(resource type, id, resource)``; the resource may be any
    JSON value orjson serialises, e.g. an ``orjson.Fragment`` of stored bytes.
    """
    links = [{"relation": "self", "url": page_url(base, query, query.cursor)}]
    if next_cursor is not None:
        links.append({"relation": "next", "url": page_url(base, query, next_cursor)})
    if previous_cursor is not None:
        links.append({"relation": "previous", "url": page_url(base, query, previous_cursor)})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"lastUpdated": now},
        "type": "searchset",
        "link": links,
    }
    if total is not None:  # optional in FHIR; omitted when counting would be too costly
        bundle["total"] = total
    if entries:
        bundle["entry"] = [
            {
                "fullUrl": f"{base}/{resource_type}/{resource_id}",
                "resource": resource,
                "search": {"mode": "match"},
            }
            for resource_type, resource_id, resource in entries
        ]
    return bundle
