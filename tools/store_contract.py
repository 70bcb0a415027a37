"""The OpenAPI description of the store's endpoints (used by ``python -m api.openapi``).

Parameter schemas are the parser's own patterns (:data:`api.fhir.search.VALUE_PATTERNS`),
so the contract fuzzing of ``tests/test_fuzz_contract.py`` checks both ways that the
documented syntax is exactly what is accepted. ``_cursor`` (opaque, server-issued) and
the ``Idempotency-Key`` / ``X-Request-ID`` headers are described in the text, not as
parameters: a fuzzer cannot forge a cursor, and a key reused with another body is a
documented 422, not a contract violation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api.fhir.search import (
    DEFAULT_COUNT,
    MAX_COUNT,
    SEARCH_PARAMETERS,
    VALUE_PATTERNS,
    parameter_doc,
    value_pattern,
)
from tools.fhir_contract import UNKNOWN_PARAMETERS

FHIR_JSON = "application/fhir+json"

Schema = dict[str, Any]

STORED_READS = ("Bundle", "QuestionnaireResponse", "Observation", "Provenance", "AuditEvent")

IDEMPOTENCY = (
    "**Storage.** Every successful triage is stored before it is answered: the Bundle and "
    "each entry carry an `id` and `meta` (`versionId` 1, `lastUpdated`), `Location` and "
    '`Content-Location` name `GET /fhir/Bundle/{id}`, `ETag` is `W/"1"` and `X-Request-Id` '
    "names the request (see the `X-Request-Id` parameter). With "
    "TWITCH_TRIAGE_STORE_ASSESSMENTS=false nothing is stored and there is no `Location`. "
    "**Idempotency-Key** (request header, 1-255 visible ASCII characters): a retry with the "
    "same key and the same request answers the stored Bundle again (same ids); keys are each "
    "API client's own (another client's same key, of any tenant, is another request, never a "
    "replay nor a conflict); the same key "
    "with another request is 422 (`business-rule`), and while the first is still being "
    "stored a duplicate gets 409 (`conflict`). 503 (`transient`, with `Retry-After`) when "
    "the store is unavailable: nothing was stored, retry later."
)

_ERRORS = {
    304: "Not modified: `If-None-Match` names the current ETag (no body).",
    409: "A request with this Idempotency-Key is being processed right now (`conflict`).",
    503: "The store (database) is unavailable; nothing was stored or read. `Retry-After` "
    "says when to retry; the service resumes by itself when the database does (`transient`).",
}


def error_texts() -> dict[int, str]:
    """Descriptions of the statuses the store adds to the error table."""
    return dict(_ERRORS)


def searchset_schema() -> Schema:
    """A page of search results."""
    return {
        "type": "object",
        "description": "A FHIR `searchset` Bundle: `total` matches (exact up to 1000; "
        "omitted when there are more), `link` self/next/previous "
        "(absolute URLs; follow them, the `_cursor` they carry is opaque), entries with "
        "absolute `fullUrl`, the resource and `search.mode` `match`. Newest first.",
        "required": ["resourceType", "type", "link"],
        "properties": {
            "resourceType": {"const": "Bundle"},
            "id": {"type": "string"},
            "type": {"const": "searchset"},
            "total": {"type": "integer", "minimum": 0},
            "link": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["relation", "url"],
                    "properties": {
                        "relation": {"enum": ["self", "next", "previous"]},
                        "url": {"type": "string"},
                    },
                },
            },
            "entry": {
                "type": "array",
                "maxItems": MAX_COUNT,
                "items": {
                    "type": "object",
                    "required": ["fullUrl", "resource", "search"],
                    "properties": {
                        "fullUrl": {"type": "string"},
                        "resource": {"type": "object", "required": ["resourceType", "id"]},
                        "search": {
                            "type": "object",
                            "properties": {"mode": {"const": "match"}},
                        },
                    },
                },
            },
        },
    }


def _stored_resource_schema(resource_type: str) -> Schema:
    return {
        "type": "object",
        "required": ["resourceType", "id", "meta"],
        "properties": {"resourceType": {"const": resource_type}, "id": {"type": "string"}},
    }


def components() -> dict[str, Schema]:
    out = {f"Stored{t}": _stored_resource_schema(t) for t in STORED_READS}
    out["SearchsetBundle"] = searchset_schema()
    return out


def _json(ref: str, description: str) -> Schema:
    return {
        "description": description,
        "content": {FHIR_JSON: {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def store_paths(
    error_response: Callable[[int], Schema],
    *,
    format_parameter: Schema,
    r4_format_parameter: Schema,
    negotiation: str,
) -> dict[str, dict[str, Any]]:
    """OpenAPI path items of the read, search and delete routes."""
    id_parameter = {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The resource id (FHIR id syntax).",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9\\-.]{1,64}$"},
    }
    errors = {str(s): error_response(s) for s in (404, 405, 406, 500, 503)}
    # Searches are strict: the sentence saying unknown parameters are ignored is not theirs.
    search_negotiation = negotiation.replace(f" {UNKNOWN_PARAMETERS}", "")

    def _format_for(resource_type: str) -> Schema:
        # AuditEvent is served in R4 only (R5 restructured it): a 5.0 request is a 406.
        return r4_format_parameter if resource_type == "AuditEvent" else format_parameter

    paths: dict[str, dict[str, Any]] = {}
    for resource_type in STORED_READS:
        paths[f"/fhir/{resource_type}/{{id}}"] = {
            "get": {
                "operationId": f"readStored{resource_type}",
                "summary": f"Read a stored {resource_type}",
                "description": (
                    f"FHIR read. {_READS[resource_type]} Stored resources never change: "
                    '`ETag` is `W/"1"`, `If-None-Match` with it (a list, or `*`) answers 304; '
                    "`Last-Modified` is `meta.lastUpdated` in whole seconds, and "
                    "`If-Modified-Since` at or after it answers 304 (ignored when "
                    "`If-None-Match` is sent). Every read, and every failed attempt, leaves "
                    "an AuditEvent.\n\n" + negotiation
                ),
                "parameters": [id_parameter, _format_for(resource_type)],
                "responses": {
                    "200": _json(f"Stored{resource_type}", f"The {resource_type}."),
                    **errors,
                },
            }
        }
    paths["/fhir/Bundle/{id}"]["delete"] = {
        "operationId": "deleteStoredBundle",
        "summary": "Erase an assessment",
        "description": "Deletes the assessment: its Bundle, every entry and its Provenance. "
        "The AuditEvents that name it stay (the deletion's own too). Later reads are 404.",
        "parameters": [id_parameter, format_parameter],
        "responses": {"204": {"description": "Deleted."}, **errors},
    }
    for resource_type, params in SEARCH_PARAMETERS.items():
        parameters = [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": parameter_doc(resource_type, name)
                + (
                    ". Repeat the parameter to AND conditions (a date takes one value: "
                    "a comma list is refused, 400)."
                    if kind == "date"
                    else ". Repeat the parameter to AND conditions; a comma ORs values."
                ),
                "schema": {
                    "type": "string",
                    "maxLength": 1024,
                    "pattern": value_pattern(kind, target, name),
                },
            }
            for name, (kind, target) in params.items()
        ]
        parameters.append(
            {
                "name": "_count",
                "in": "query",
                "required": False,
                "description": f"Page size, default {DEFAULT_COUNT}, at most {MAX_COUNT}; "
                "0 gives the total only.",
                "schema": {"type": "string", "pattern": VALUE_PATTERNS["_count"]},
            }
        )
        parameters.append(_format_for(resource_type))
        paths[f"/fhir/{resource_type}"] = {
            "get": {
                "operationId": f"search{resource_type}",
                "summary": f"Search stored {resource_type} resources",
                "description": (
                    "FHIR search (type level). Strict: an unknown parameter, a modifier, an "
                    "unsupported prefix, a malformed value or `_count` above "
                    f"{MAX_COUNT} is a 400 OperationOutcome (expression `http.<name>`). "
                    "Newest first (then by id), keyset paging: follow `next`/`previous`. "
                    "`ETag` hashes the page; `If-None-Match` answers 304 while it is "
                    "unchanged. Every search leaves an AuditEvent (its query base64 in "
                    "`entity.query`). The `_cursor` in the links is signed for this "
                    "search: a forged or altered one, or one from another search, is a 400 "
                    "naming `_cursor`.\n\n" + search_negotiation
                ),
                "parameters": parameters,
                "responses": {
                    "200": _json("SearchsetBundle", "One page of matches."),
                    "400": error_response(400),
                    **{k: v for k, v in errors.items() if k != "404"},
                },
            }
        }
        form_fields = {p["name"]: p["schema"] for p in parameters if p["name"] != "_format"}
        paths[f"/fhir/{resource_type}/_search"] = {
            "post": {
                "operationId": f"search{resource_type}ByPost",
                "summary": f"Search stored {resource_type} resources by POST",
                "description": (
                    "FHIR search by POST (http.html): the same parameters as "
                    f"`GET /fhir/{resource_type}`, sent as an "
                    "`application/x-www-form-urlencoded` body (the URL's parameters count "
                    "too: both are one search; `_format` goes in the URL only, in the body "
                    "it is a 400). The same strict checks, answer, links (GET URLs) and "
                    "AuditEvent; the `ETag` names the page but `If-None-Match` is not "
                    "answered with 304 on a POST. Another Content-Type is a 415.\n\n"
                    + search_negotiation
                ),
                "parameters": [_format_for(resource_type)],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "properties": form_fields,
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json("SearchsetBundle", "One page of matches."),
                    "400": error_response(400),
                    "413": error_response(413),
                    "415": error_response(415),
                    **{k: v for k, v in errors.items() if k != "404"},
                },
            }
        }
    return paths


_READS = {
    "Bundle": "The Bundle of a stored assessment, byte for byte as it was sent.",
    "QuestionnaireResponse": "The QuestionnaireResponse of a stored Bundle, alone "
    "(references rewritten from `urn:uuid:` to `Type/id`).",
    "Observation": "An Observation of a stored Bundle, alone (references rewritten from "
    "`urn:uuid:` to `Type/id`, so they resolve on this server).",
    "Provenance": "The Provenance of an assessment (id = the Bundle's id): target the "
    "Observations, entity the QuestionnaireResponse (role `source`), agent this software "
    "with its version and the knowledge-base version.",
    "AuditEvent": "One AuditEvent (IHE BALP style; no PHI).",
}
