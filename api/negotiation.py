"""Content negotiation: which FHIR version and Bundle type a request gets back, and
which Content-Types a request body may have.

Each check is a pure function of one header value and is cached (the results are
immutable strings or None), since a partner sends the same headers on every call.
The views never call these: :func:`api.http.fhir_endpoint` does, once per request.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote_plus

from flask import g
from werkzeug.datastructures import MultiDict
from werkzeug.http import parse_accept_header, parse_list_header, parse_options_header
from werkzeug.wrappers import Request

from api.errors import InvalidParameterError, NotAcceptableError, UnsupportedMediaTypeError
from api.fhir.bundle import BUNDLE_TYPES
from api.fhir.versions import (
    DEFAULT_FHIR_VERSION,
    FHIR_JSON,
    FHIR_VERSION_ALIASES,
    FHIR_VERSIONS,
    R4,
    R5,
)

#: Media ranges that cover what we send, by specificity (higher = more specific).
_RANGES: dict[str, int] = {
    "*/*": 0,
    "application/*": 1,
    "application/json": 2,
    "application/fhir+json": 2,
}
_CACHE = 256

#: A quoted-string (RFC 9110 §5.6.4): blanked before a media range is split at ";".
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
#: A parameter value (RFC 9110 §5.6.6): a token, or a quoted-string (blanked to "").
_PARAMETER_VALUE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+|\"\"")


def malformed_parameter(media_type: str, names: frozenset[str]) -> str | None:
    """Why a parameter in ``names`` (lower case) of one media type or range is
    malformed, or None.

    werkzeug drops a parameter it cannot parse (``fhirVersion=``, ``fhirVersion``,
    ``fhirVersion= 4.0``) and keeps the last of a repeated one, so
    ``application/fhir+json; fhirVersion=`` read as no version at all: R4. RFC 9110
    §5.6.6 writes a parameter ``name=value`` with a value that is a token or a
    quoted-string, and RFC 6838 §4.3 makes a repeated parameter an error; FHIR
    (http.html, the fhirVersion parameter) names the version in it. A strict server
    does not guess a version from a parameter that names none.
    """
    blanked = _QUOTED.sub('""', media_type)
    seen: set[str] = set()
    for parameter in blanked.split(";")[1:]:
        name, equals, value = parameter.strip(" \t").partition("=")
        stripped = name.rstrip(" \t")
        key = stripped.lower()
        if key not in names:
            continue
        shown = stripped[:40]
        if key in seen:
            return f"the parameter {shown} is given more than once"
        seen.add(key)
        if not equals or stripped != name or not _PARAMETER_VALUE.fullmatch(value):
            return (
                f"the parameter {shown} names no value (write {shown}=<value>: a token or "
                "a quoted string, no spaces around =)"
            )
    return None


#: Accept parameters whose malformed spelling makes a range cover nothing.
_ACCEPT_PARAMETERS = frozenset({"fhirversion", "q"})
_FHIR_VERSION_PARAMETER = frozenset({"fhirversion"})


@lru_cache(maxsize=_CACHE)
def negotiate_fhir_version(accept: str | None) -> str:
    """The FHIR version to answer in ("4.0" or "5.0"), or NotAcceptableError.

    Each version we can produce gets the quality of the most specific Accept
    range that covers it (a range with a fhirVersion parameter covers only
    that version); the best quality wins, R4 on a tie. No Accept header, or
    one that covers JSON without naming a version, means R4. A range whose
    fhirVersion or q parameter is malformed (empty, repeated) covers nothing, as
    one with an unknown version or an invalid q does.
    """
    if accept is None or not accept.strip():
        return DEFAULT_FHIR_VERSION
    best: dict[str, tuple[int, float]] = {}
    refused: list[str] = []
    for media_range in parse_list_header(accept):
        why = malformed_parameter(media_range, _ACCEPT_PARAMETERS)
        if why is not None:
            refused.append(f"in {media_range[:60]!r} {why}")
            continue
        _versions_of(media_range, best)
    ranked = sorted(
        (
            (quality, version == DEFAULT_FHIR_VERSION, version)
            for version, (_, quality) in best.items()
        ),
        reverse=True,
    )
    if not ranked or ranked[0][0] <= 0:
        ignored = f"; a range covers nothing when {'; '.join(refused[:3])}" if refused else ""
        raise NotAcceptableError(
            "Accept header rules out application/fhir+json with fhirVersion 4.0 or 5.0, "
            f"the only representations of this resource (got {accept[:100]!r}){ignored}"
        )
    return ranked[0][2]


def _versions_of(media_range: str, best: dict[str, tuple[int, float]]) -> None:
    """Record in ``best`` the versions one Accept range covers, with its specificity."""
    for value, quality in parse_accept_header(media_range):
        media_type, params = parse_options_header(value)
        specificity = _RANGES.get(media_type.lower())
        if specificity is None:
            continue
        wanted = params.get("fhirversion")
        if wanted is None:
            versions: tuple[str, ...] = tuple(FHIR_VERSIONS)
        elif wanted in FHIR_VERSION_ALIASES:
            versions = (FHIR_VERSION_ALIASES[wanted],)
            specificity += 1
        else:
            continue
        for version in versions:
            if version not in best or specificity > best[version][0]:
                best[version] = (specificity, quality)


@lru_cache(maxsize=_CACHE)
def require_json_content_type(content_type: str | None) -> None:
    """Accept ``application/json`` with at most ``charset=utf-8``; else 415."""
    media_type, params = parse_options_header(content_type or "")
    if media_type.lower() != "application/json":
        shown = repr(content_type[:100]) if content_type else "none"
        raise UnsupportedMediaTypeError(f"Content-Type must be application/json, got {shown}")
    _refuse_malformed_version(content_type or "")
    extra = {key: value for key, value in params.items() if key != "charset"}
    charset = params.get("charset")
    if extra or (charset is not None and charset.lower() != "utf-8"):
        raise UnsupportedMediaTypeError(
            "Content-Type application/json accepts only the parameter charset=utf-8, "
            f"got {content_type[:100]!r}"
        )


#: ``_format`` values (FHIR http.html#mime-type) → the FHIR version they select. Exact
#: strings, so the documented enum is the whole truth; anything else is 406.
FORMATS: dict[str, str] = {
    "json": DEFAULT_FHIR_VERSION,
    "application/json": DEFAULT_FHIR_VERSION,
    FHIR_JSON: DEFAULT_FHIR_VERSION,
    f"{FHIR_JSON}; fhirVersion={R4.mime}": R4.mime,
    f"{FHIR_JSON}; fhirVersion={R5.mime}": R5.mime,
}


def _single(args: MultiDict[str, str], name: str, error: type[Exception]) -> str | None:
    """The one value of query parameter ``name`` (None when absent); twice raises ``error``."""
    values = args.getlist(name)
    if len(values) > 1:
        message = f"{name} is given more than once"
        raise (
            error(name, message)
            if error is InvalidParameterError
            else error(message, (f"http.{name}",))
        )
    return values[0] if values else None


def query_pairs(query: bytes) -> list[tuple[str, str]]:
    """The (name, value) pairs of a query string, percent-decoded as strict UTF-8.

    werkzeug's ``request.args`` turns bytes that are not UTF-8 (``code=%ff``) into
    U+FFFD, so a search for a malformed value quietly found nothing (200, total 0)
    instead of being refused; here such a value is a 400 naming its parameter.
    """
    try:
        text = query.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidParameterError(
            "query", "the query string must be ASCII (percent-encode other characters)"
        ) from None
    pairs = []
    for part in text.split("&"):
        if not part:
            continue
        raw_name, _, raw_value = part.partition("=")
        try:
            name = unquote_plus(raw_name, errors="strict")
        except UnicodeDecodeError:
            raise InvalidParameterError(
                "query", "a parameter name is not percent-encoded UTF-8"
            ) from None
        try:
            value = unquote_plus(raw_value, errors="strict")
        except UnicodeDecodeError:
            raise InvalidParameterError(
                name[:40], f"{name[:40]}: the value is not percent-encoded UTF-8"
            ) from None
        pairs.append((name, value))
    return pairs


def _format_version(fmt: str) -> str:
    # Exact match: an unencoded "+" arrives as a space and is refused, not guessed.
    found = FORMATS.get(fmt)
    if found is None:
        raise NotAcceptableError(
            f"_format must be one of {', '.join(FORMATS)}; got {fmt[:100]!r}", ("http._format",)
        )
    return found


def _bundle_type(value: str | None) -> str:
    if value is None:
        return "collection"
    if value not in BUNDLE_TYPES:
        raise InvalidParameterError(
            "_bundle", f"_bundle must be collection or transaction, got {value[:40]!r}"
        )
    return value


def negotiate_request(request: Request, *, bundle: bool = False) -> tuple[str, str]:
    """(FHIR version, Bundle type) of this request's answer.

    The version comes from ``_format`` if given (it wins over Accept, as in FHIR),
    else from Accept; the Bundle type from ``_bundle`` when ``bundle`` (the
    triage endpoints), else it is ``collection`` and ``_bundle`` is an ignored
    parameter like any other. A version other than R4 is also kept in
    ``g.fhir_version``, so an error response of the same request names it. The
    common case (no query string, R4) reads one header and writes nothing.
    """
    if not request.query_string:
        version = negotiate_fhir_version(request.headers.get("Accept"))
        bundle_type = "collection"
    else:
        args = request.args
        fmt = _single(args, "_format", NotAcceptableError)
        if fmt is None:
            version = negotiate_fhir_version(request.headers.get("Accept"))
        else:
            version = _format_version(fmt)
        bundle_type = (
            _bundle_type(_single(args, "_bundle", InvalidParameterError))
            if bundle
            else "collection"
        )
    if version != DEFAULT_FHIR_VERSION:
        g.fhir_version = version
    return version, bundle_type


#: fhirVersion values a ``$triage`` body may declare: the input is R4.
_R4_VERSIONS = frozenset(key for key, value in FHIR_VERSION_ALIASES.items() if value == R4.mime)


@lru_cache(maxsize=_CACHE)
def require_fhir_json_content_type(content_type: str | None) -> None:
    """``application/fhir+json`` or ``application/json``, optionally charset=utf-8 and
    fhirVersion=4.0 (``$triage`` reads R4 only); else 415."""
    media_type, params = parse_options_header(content_type or "")
    shown = repr(content_type[:100]) if content_type else "none"
    if media_type.lower() not in (FHIR_JSON, "application/json"):
        raise UnsupportedMediaTypeError(
            f"Content-Type must be application/fhir+json or application/json, got {shown}"
        )
    _refuse_malformed_version(content_type or "")
    charset = params.pop("charset", None)
    version = params.pop("fhirversion", None)
    if params or (charset is not None and charset.lower() != "utf-8"):
        raise UnsupportedMediaTypeError(
            "Content-Type accepts only the parameters charset=utf-8 and fhirVersion=4.0, "
            f"got {shown}"
        )
    if version is not None and version not in _R4_VERSIONS:
        raise UnsupportedMediaTypeError(f"the body must be FHIR R4 (fhirVersion=4.0), got {shown}")


def _refuse_malformed_version(content_type: str) -> None:
    """415 for a Content-Type whose fhirVersion parameter names no version (empty,
    repeated): werkzeug would drop it, and the body be read as R4 unasked."""
    why = malformed_parameter(content_type, _FHIR_VERSION_PARAMETER)
    if why is not None:
        raise UnsupportedMediaTypeError(f"Content-Type {content_type[:100]!r}: {why}")
