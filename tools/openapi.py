"""Generate ``openapi.yaml`` (OpenAPI 3.1) from the marshmallow schemas.

    python -m tools.openapi            # print the document
    python -m tools.openapi --write    # rewrite openapi.yaml at the repository root
    python -m tools.openapi --check    # exit 1 when openapi.yaml is out of date

The request schema comes from :mod:`schemas` through apispec's
MarshmallowPlugin, the error codes from :data:`api.errors.ERROR_TABLE` and the
Bundle layout from :data:`api.fhir.LAYOUT_DESCRIPTION`, so the contract cannot
drift from the code (``tests/test_openapi.py`` fails when the committed file
differs). A development tool outside the served package: apispec and PyYAML are test
dependencies, and the running API serves the committed file.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import EXCLUDE, INCLUDE, fields

from api import fhir
from api.config import Settings
from api.errors import ERROR_TABLE, MAX_ISSUES
from api.fhir.versions import FHIR_JSON, FHIR_VERSION_ALIASES
from api.negotiation import FORMATS
from schemas import VALIDATION_CODES, IssueType, TriageRequestSchema, load_triage_request
from schemas.fields import (
    TEXT_PATTERN,
    StrictBoolean,
    StrictCode,
    StrictCodeList,
    StrictDecimal,
    StrictInteger,
    StrictObjectList,
    StrictString,
    _Ranged,
    _StrictList,
)
from schemas.intake_links import IntakeLinkRequestSchema
from tools import cds_contract, smart_contract, store_contract
from tools import fhir_contract as contract
from triage import evaluate

ROOT = Path(__file__).resolve().parents[1]
OPENAPI_PATH = ROOT / "openapi.yaml"

#: Shown in the spec as the request example; loaded at generation time so it stays valid.
EXAMPLE_REQUEST: dict[str, Any] = {
    "patient": {"reference": "Patient/example-12", "age_years": 12, "sex": "female"},
    "activity": {
        "type": "artistic roller skating",
        "intensity": "high",
        "session_minutes": 180,
        "rest_minutes_per_session": 5,
        "fluid_intake": "low",
    },
    "twitching": {
        "body_sites": ["neck", "face"],
        "timing": "after_exercise",
        "duration_days": 10,
        "suppressible": True,
    },
    "symptoms": {"confusion": False, "headache": None, "fatigue": True},
    "history": {"head_impact": False, "medications": [], "conditions": ["tic_disorder"]},
    "notes": "Twitches mostly in the evening after practice.",
}

_ERROR_TEXT: dict[int, str] = {
    400: "The body is not one strict JSON object: malformed or truncated JSON, invalid UTF-8, "
    "an empty body, NaN or Infinity, a number overflowing to infinity, a duplicate key in "
    "any object, nesting deeper than 64 levels, or a top level that is not an object "
    "(`expression` names the offending member where there is one: its JSON path, on "
    "$triage its FHIRPath); or the "
    "query parameter `_bundle` is not `collection` or `transaction` (issue code `value`, "
    "expression `http._bundle`); or, for a search, an unknown parameter, a modifier, a "
    "malformed value or `_count` over the maximum (expression `http.<name>`); or a "
    "malformed `Idempotency-Key` header.",
    401: "No credentials, a malformed `Authorization` header, or a credential that names no "
    "active client (unknown, revoked, retired after rotation, expired access token). "
    "`WWW-Authenticate: Bearer` says which (`invalid_request`, `invalid_token`).",
    403: "The credential is valid but none of its scopes covers this operation "
    "(`WWW-Authenticate` names the scope needed), or a CORS preflight from an origin "
    "that is not on TWITCH_TRIAGE_CORS_ORIGINS.",
    404: "No resource at this path, or no published or stored resource with this id "
    "(another tenant's id is answered exactly like an id that never existed).",
    405: "The method is not supported for this path (see the Allow header).",
    406: "The Accept header (or `_format`) rules out application/fhir+json with fhirVersion "
    "4.0 or 5.0 (a range whose fhirVersion or q parameter names no value or is repeated "
    "covers nothing).",
    413: "The body is larger than TWITCH_TRIAGE_MAX_BODY_BYTES (default 65536), by "
    "Content-Length or as read.",
    415: "The Content-Type is not one the operation reads: `application/json` for /v1/triage "
    "(the only parameter allowed is charset=utf-8); `application/fhir+json` or "
    "`application/json` for $triage (parameters: charset=utf-8, fhirVersion=4.0).",
    429: "The client used up its rate limit (TWITCH_TRIAGE_RATE_LIMIT); `Retry-After` says "
    "when to retry, `RateLimit-Policy` and `RateLimit` describe the quota.",
    422: "The JSON object does not fit the request vocabulary. One issue per offending "
    "field; `expression` holds its JSON path (`history.medications[0].class`, "
    "`twitching.body_sites[2]`, `symptoms.confsion`); or an `Idempotency-Key` reused with "
    "another request (`business-rule`); `code` is `required` (missing "
    "required field, or null for one), `code-invalid` (a string that is not one of the "
    "item's codes), `invalid` (an unknown field) or `value` (wrong JSON type, out of range, "
    "too long, empty, control character, unpaired surrogate, pattern mismatch, too few or "
    "too many items, duplicate list member, null inside a list). At most 100 issues are "
    "listed; when there are more, the last one (code `too-costly`) counts the rest.",
    500: "An unexpected error. The diagnostics name an incident id for the server log and "
    "nothing else.",
    **store_contract.error_texts(),
}

_TRIAGE_422 = (
    "The QuestionnaireResponse cannot be triaged. Every problem is reported, one issue per "
    "offending item or element: first the structural ones in document order, then the "
    "answers' values (checked on the items that could be read; a required item that could "
    "not be read is not reported twice). `expression` is the FHIRPath of the item "
    "(`QuestionnaireResponse.item[3].answer[0]`, `QuestionnaireResponse.item[7].item[0]` "
    "inside a medication, `Parameters.parameter[0].resource.item[3]` for a Parameters body) "
    "and `diagnostics` start with its linkId. Resource-level problems (not a "
    "QuestionnaireResponse, another `questionnaire`, a missing or unusable `status`, an "
    "unknown element, a malformed element the triage does not read (an `authored` that is "
    "no FHIR dateTime, an `id` or `language` of the wrong form, `meta` that is no object "
    "...), `modifierExtension`, a `subject` other than a relative "
    "`Patient/<id>` or naming another patient than the `patient.reference` answer) name "
    "the element (`QuestionnaireResponse.subject.reference`). `code` is `invalid` (unknown "
    "linkId or element, an item twice), `value` (wrong answer type, out of range, too "
    "long, a subject that cannot be carried or names another patient ...), "
    "`code-invalid` (a code or CodeSystem not of the item), `required` (a required item, "
    "`questionnaire`, `status` or `subject.reference` missing) or `not-supported` "
    "(modifierExtension, implicitRules). At most 100 issues are listed; when there are "
    "more, the last one (code `too-costly`) counts the rest."
)


def _issue_codes(status: int) -> list[str]:
    """The FHIR issue codes a status can carry, from the one error table."""
    if status == 422:  # per field, from the schema's coded messages
        return [code.value for code in VALIDATION_CODES]
    found = {code.value for (st, code) in ERROR_TABLE.values() if st == status}
    if status == 500:
        found.add(IssueType.EXCEPTION.value)
    return sorted(found)


def _vocabulary_properties(self: Any, field: fields.Field, **kwargs: Any) -> dict[str, Any]:
    """Ranges, lengths, codes and list limits of the strict fields (apispec hook)."""
    del self, kwargs
    out: dict[str, Any] = {}
    if isinstance(field, _Ranged):
        if field.minimum is not None:
            out["minimum"] = field.minimum
        if field.maximum is not None:
            out["maximum"] = field.maximum
    if isinstance(field, StrictString):
        out["minLength"] = 1
        if field.max_length is not None:
            out["maxLength"] = field.max_length
        out["pattern"] = field.pattern if field.pattern is not None else TEXT_PATTERN
    if isinstance(field, StrictCode):
        out["enum"] = [*field.choices, *([None] if field.allow_none else [])]
    if isinstance(field, _StrictList):
        if field.min_items is not None:
            out["minItems"] = field.min_items
        if field.max_items is not None:
            out["maxItems"] = field.max_items
        if field.unique:
            out["uniqueItems"] = True
    return out


def _operation_outcome_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "FHIR R4 OperationOutcome; every error of this API has this shape.",
        "required": ["resourceType", "text", "issue"],
        "additionalProperties": False,
        "properties": {
            "resourceType": {"const": "OperationOutcome"},
            "text": {
                "type": "object",
                "required": ["status", "div"],
                "additionalProperties": False,
                "properties": {
                    "status": {"const": "generated"},
                    "div": {
                        "type": "string",
                        "description": "XHTML summary (xmlns http://www.w3.org/1999/xhtml); "
                        "request text in it is escaped.",
                    },
                },
            },
            "issue": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_ISSUES,
                "items": {
                    "type": "object",
                    "required": ["severity", "code", "diagnostics"],
                    "additionalProperties": False,
                    "properties": {
                        "severity": {"const": "error"},
                        "code": {
                            "type": "string",
                            "enum": [code.value for code in IssueType],
                            "description": "FHIR IssueType (http://hl7.org/fhir/issue-type).",
                        },
                        "diagnostics": {"type": "string", "maxLength": 500},
                        "expression": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "JSON path of the offending request field; for "
                            "$triage the FHIRPath of the item; `http.<name>` for a query "
                            "parameter.",
                        },
                    },
                },
            },
        },
    }


def _bundle_schema() -> dict[str, Any]:
    resource_types = ["QuestionnaireResponse", "Observation"]
    return {
        "type": "object",
        "description": fhir.LAYOUT_DESCRIPTION + "\n" + fhir.TRANSACTION_DESCRIPTION,
        "required": ["resourceType", "type", "timestamp", "entry"],
        "properties": {
            "resourceType": {"const": "Bundle"},
            "id": {"type": "string"},
            "type": {"enum": ["collection", "transaction"]},
            "timestamp": {"type": "string", "format": "date-time"},
            "link": {
                "type": "array",
                "description": REPORT_LINK_TEXT,
                "items": {
                    "type": "object",
                    "required": ["relation", "url"],
                    "properties": {
                        "relation": {"const": "alternate"},
                        "url": {"type": "string", "format": "uri"},
                    },
                },
            },
            "entry": {
                "type": "array",
                "minItems": 2,
                "items": {
                    "type": "object",
                    "required": ["fullUrl", "resource"],
                    "properties": {
                        "fullUrl": {
                            "type": "string",
                            "pattern": "^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-"
                            "[0-9a-f]{4}-[0-9a-f]{12}$",
                        },
                        "resource": {
                            "type": "object",
                            "required": ["resourceType"],
                            "properties": {"resourceType": {"enum": resource_types}},
                        },
                        "request": {
                            "type": "object",
                            "description": "Transaction Bundles only.",
                            "required": ["method", "url"],
                            "properties": {
                                "method": {"const": "POST"},
                                "url": {"enum": resource_types},
                            },
                        },
                    },
                },
            },
        },
    }


REPORT_LINK_TEXT = (
    "**Clinician report** (issue 14). A stored assessment names the HTML report of "
    "the same assessment, relation `alternate`: `{base}/reports/{id}?expires=<unix "
    "seconds>&signature=<HMAC>`, where `{base}` is TWITCH_TRIAGE_PUBLIC_BASE_URL or the "
    "host the client called. The link is the credential (no API key): open it in a "
    "browser; it expires after TWITCH_TRIAGE_REPORT_LINK_SECONDS (default 7 days). "
    "`Bundle.link` holds the link issued with the Bundle (the stored Bundle never "
    "changes, so this one expires); the `Link` header of the triage answer and of every "
    "`GET /fhir/Bundle/{id}` carries a freshly signed one. With "
    "TWITCH_TRIAGE_STORE_ASSESSMENTS=false there is no report and no link."
)


def _link_header() -> dict[str, Any]:
    """The ``Link`` response header (a new dict each time: no YAML anchors)."""
    return {
        "description": "The clinician report of this stored assessment, freshly signed: "
        '`<{base}/reports/{id}?expires=…&signature=…>; rel="alternate"; type="text/html"` '
        "(see `GET /reports/{id}`). Absent when nothing is stored.",
        "schema": {"type": "string"},
    }


def _report_operation() -> dict[str, Any]:
    """``GET /reports/{id}``: the HTML report, opened with a signed link (no API key)."""

    def html() -> dict[str, Any]:
        return {"text/html": {"schema": {"type": "string"}}}

    return {
        "operationId": "clinicianReport",
        "summary": "The clinician report of one assessment (HTML, signed link)",
        "description": REPORT_LINK_TEXT
        + "\n\nA server-rendered page for people, not a FHIR resource: the level "
        "banner, red flags most urgent first with rationale, source and triggering "
        "answers, decisive questions, contributing factors, advice (clinician wording and "
        "a patient hand-over), the answers (yes / no / unknown), who answered, and a "
        "footer with ids, times, versions and the decision-support disclaimer. Printable "
        "(A4 or Letter). Headers: a Content-Security-Policy allowing only the product's "
        "own scripts and styles, `frame-ancestors` from TWITCH_TRIAGE_FRAME_ANCESTORS, "
        "`Cache-Control: no-store`, `Referrer-Policy: no-referrer`. Every read is "
        "audited (AuditEvent under the assessment's tenant, agent: the report link).",
        "parameters": [
            {
                "name": "id",
                "in": "path",
                "required": True,
                "description": "The assessment's Bundle id.",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9\\-.]{1,64}$"},
            },
            {
                "name": "expires",
                "in": "query",
                "required": True,
                "description": "Expiry of the link (Unix seconds), as signed.",
                "schema": {"type": "string"},
            },
            {
                "name": "signature",
                "in": "query",
                "required": True,
                "description": "HMAC-SHA256 of purpose, id and expiry (base64url).",
                "schema": {"type": "string"},
            },
        ],
        "responses": {
            "200": {"description": "The report page.", "content": html()},
            "404": {
                "description": "An altered, expired or unknown link: one HTML page that "
                "names nothing of the request (not an OperationOutcome: a browser reads it).",
                "content": html(),
            },
            "405": _error_response(405),
        },
    }


def _error_response(status: int) -> dict[str, Any]:
    codes = ", ".join(f"`{code}`" for code in _issue_codes(status))
    return {
        "description": f"{_ERROR_TEXT[status]} Issue code(s): {codes}.",
        "content": {FHIR_JSON: {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}},
    }


def _example_questionnaire_response() -> dict[str, Any]:
    """The QuestionnaireResponse /v1/triage renders for EXAMPLE_REQUEST (fixed time).

    Without its ``patient.reference`` item: the patient is in ``subject``, the one-source
    form the $triage request schema describes.
    """
    loaded = load_triage_request(EXAMPLE_REQUEST)
    bundle = fhir.render_triage_bundle(
        loaded,
        evaluate(loaded),
        settings=fhir.FhirSettings(),
        now=datetime(2026, 1, 1, tzinfo=UTC),
        new_id=lambda: "00000000-0000-4000-8000-000000000000",
    )
    qr = copy.deepcopy(bundle["entry"][0]["resource"])
    qr["item"] = [item for item in qr["item"] if item["linkId"] != "patient.reference"]
    return qr


def _version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def build_spec() -> dict[str, Any]:
    """The OpenAPI 3.1 document as a dict (deterministic)."""
    load_triage_request(EXAMPLE_REQUEST)  # the documented example must stay valid
    defaults = Settings()
    versions = ", ".join(sorted(set(FHIR_VERSION_ALIASES.values())))
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="twitch-triage",
        version=_version(),
        openapi_version="3.1.0",
        plugins=[plugin],
        info={
            "summary": "Triage of muscle twitching around exercise, answered in HL7 FHIR R4.",
            "description": (
                "Decision support for clinicians and clinical partner apps (PROTOCOL.md, "
                "protocol 1.1). "
                "It triages; it does not diagnose and never overrides a clinician.\n\n"
                "Every error is a FHIR OperationOutcome (`application/fhir+json; "
                "fhirVersion=4.0`), never an HTML page; an unknown path answers 404 "
                "with issue code `not-found`. Two exceptions, each described at its "
                "operation: the SMART token endpoint (`POST /auth/token`) refuses a token "
                "request with an OAuth 2.0 error body (RFC 6749 §5.2), as OAuth clients "
                "expect, and a page opened in a browser (`GET /reports/{id}`) answers "
                "an HTML page.\n\n"
                f"Configuration: `TWITCH_TRIAGE_MAX_BODY_BYTES` (default "
                f"{defaults.max_body_bytes}), `TWITCH_TRIAGE_CANONICAL_BASE` (default "
                f"`{defaults.canonical_base}`, the base of every product canonical URL, "
                "independent of the serving host)."
            ),
        },
    )
    converter = plugin.converter
    if converter is None:  # pragma: no cover (APISpec.__init__ initialises the plugin)
        raise RuntimeError("MarshmallowPlugin was not initialised")
    for cls, openapi_type in (
        (StrictBoolean, "boolean"),
        (StrictInteger, "integer"),
        (StrictDecimal, "number"),
        (StrictString, "string"),
        (StrictCode, "string"),
        (StrictCodeList, "array"),
        (StrictObjectList, "array"),
    ):
        converter.map_to_openapi_type(cls, openapi_type, None)
    converter.add_attribute_function(_vocabulary_properties)

    spec.components.schema("TriageRequest", schema=TriageRequestSchema)
    spec.components.schema("OperationOutcome", _operation_outcome_schema())
    spec.components.schema("Bundle", _bundle_schema())
    for name, schema in contract.fhir_components().items():
        spec.components.schema(name, schema)
    for name, schema in store_contract.components().items():
        spec.components.schema(name, schema)
    for name, schema in cds_contract.components().items():
        spec.components.schema(name, schema)
    for name, schema in smart_contract.components().items():
        spec.components.schema(name, schema)
    formats = list(FORMATS)
    negotiation = (
        "Content negotiation: no Accept, `*/*`, `application/*`, "
        "`application/json` or `application/fhir+json` answer FHIR R4 "
        "(`fhirVersion=4.0`); the `fhirVersion` media-type parameter selects "
        f"one of {versions} (`4.0.1` and `5.0.0` are accepted as aliases); "
        "q-values are honoured; anything else is 406, and so is an empty or repeated "
        "`fhirVersion` (`fhirVersion=` is no version, not R4). `_format` overrides Accept. The "
        "response Content-Type names the version: `application/fhir+json; "
        f"fhirVersion=4.0`. {contract.UNKNOWN_PARAMETERS}"
    )

    triage_errors = {
        str(status): _error_response(status)
        for status in (400, 405, 406, 409, 413, 415, 422, 500, 503)
    }
    spec.path(
        path="/v1/triage",
        operations={
            "post": {
                "operationId": "triage",
                "summary": "Triage one person",
                "description": (
                    "Validates the request strictly, evaluates the red-flag rules, factors, "
                    "advice and decisive questions of PROTOCOL.md (protocol 1.1) and answers a "
                    "FHIR collection Bundle (or, with `_bundle=transaction`, a transaction "
                    "Bundle); its narratives are written for clinicians.\n\n"
                    f"{negotiation}\n\n"
                    "Checks run in this order: Accept or `_format` (406), `_bundle` (400), "
                    "Content-Type (415), size (413), JSON (400), vocabulary (422).\n\n"
                    + store_contract.IDEMPOTENCY
                ),
                "parameters": [contract.BUNDLE_PARAMETER, contract.format_parameter(formats)],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/TriageRequest"},
                            "example": EXAMPLE_REQUEST,
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "The triage result as a FHIR collection Bundle.",
                        "headers": {"Link": _link_header()},
                        "content": {FHIR_JSON: {"schema": {"$ref": "#/components/schemas/Bundle"}}},
                    },
                    **triage_errors,
                },
            }
        },
    )
    spec.components.schema("IntakeLinkRequest", schema=IntakeLinkRequestSchema)
    spec.path(path="/v1/intake-links", operations=_intake_link_operations())
    triage_422 = {
        "description": _TRIAGE_422,
        "content": {FHIR_JSON: {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}},
    }
    for path, operations in contract.fhir_paths(
        _error_response,
        negotiation=negotiation,
        triage_422=triage_422,
        formats=formats,
        example_qr=_example_questionnaire_response(),
    ).items():
        if path == "/fhir/QuestionnaireResponse/$triage":
            post = operations["post"]
            post["description"] += "\n\n" + store_contract.IDEMPOTENCY
            post["responses"]["200"].setdefault("headers", {})["Link"] = _link_header()
            post["responses"].update({str(s): _error_response(s) for s in (409, 503)})
        spec.path(path=path, operations=operations)
    for path, operations in store_contract.store_paths(
        _error_response,
        format_parameter=contract.format_parameter(formats),
        r4_format_parameter=contract.format_parameter([f for f in formats if "5.0" not in f]),
        negotiation=negotiation,
    ).items():
        if path == "/fhir/Bundle/{id}":
            ok = operations["get"]["responses"]["200"]
            ok.setdefault("headers", {})["Link"] = _link_header()
        spec.path(path=path, operations=operations)
    spec.path(path="/reports/{id}", operations={"get": _report_operation()})
    for path, operations in cds_contract.cds_paths(_error_response).items():
        spec.path(path=path, operations=operations)
    for path, operations in smart_contract.smart_paths(_error_response).items():
        spec.path(path=path, operations=operations)
    spec.path(
        path="/healthz",
        operations={
            "get": {
                "operationId": "healthz",
                "summary": "Liveness",
                "responses": {
                    "200": {
                        "description": "The service is up.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["status", "knowledge_base_version"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "status": {"const": "ok"},
                                        "knowledge_base_version": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "405": _error_response(405),
                },
            }
        },
    )
    spec.path(
        path="/openapi.yaml",
        operations={
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 description of this API.",
                        # The body is YAML for an object (clients and schemathesis parse it),
                        # not a JSON string.
                        "content": {
                            "application/yaml": {
                                "schema": {
                                    "type": "object",
                                    "required": ["openapi", "info", "paths"],
                                }
                            }
                        },
                    },
                    "405": _error_response(405),
                },
            }
        },
    )
    document = spec.to_dict()
    _close_objects(document, converter.refs)
    _secure(document)
    _serving(document)
    return document


#: The request id rule of api/serving/requestid.py (and of the deploy/ nginx map).
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{8,64}$"
_REQUEST_ID_TEXT = (
    "Names the request in logs, in the AuditEvent and in the incident of a 500. A client's "
    "id of 8-64 characters of `A-Za-z0-9._:-` is kept; any other value, or none, is replaced "
    "by a new one (a UUID; behind the deploy/ nginx proxy, 32 hex digits)."
)
#: Errors the HTTP server (gunicorn) or the proxy (deploy/ nginx) answer before the app,
#: on any operation, as OperationOutcomes like the app's own.
_SERVER_ERRORS = {
    414: (
        "The request line is too long (gunicorn: over 4,094 bytes; the deploy/ nginx proxy: "
        "over 8 KiB), answered before the app.",
        ["too-costly"],
    ),
    417: (
        "An `Expect` header other than `100-continue`, answered before the app.",
        ["not-supported"],
    ),
    431: (
        "Too many header fields (over 100) or one too large (gunicorn: over 8,190 bytes; the "
        "deploy/ nginx proxy: over 8 KiB), answered before the app.",
        ["too-costly"],
    ),
}
_PROXY_413 = (
    " Behind the deploy/ nginx proxy the same limit is enforced there (`client_max_body_size`"
    " = TWITCH_TRIAGE_MAX_BODY_BYTES), for declared and chunked bodies alike."
)


def _serving(document: dict[str, Any]) -> None:
    """``X-Request-Id`` in and out of every operation; the errors answered before the app.

    Every response carries the header (api/serving/install.py and gunicorn's own error
    pages alike); 414, 417 and 431 can answer any operation, 413 any that takes a body.
    """
    components = document["components"]
    components["parameters"] = {
        **components.get("parameters", {}),
        "XRequestId": {
            "name": "X-Request-Id",
            "in": "header",
            "required": False,
            "description": _REQUEST_ID_TEXT,
            "schema": {"type": "string"},
        },
    }
    components["headers"] = {
        **components.get("headers", {}),
        "XRequestId": {
            "description": "The request's id: the client's when it was kept, else a new one.",
            "required": True,
            "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN},
        },
    }
    outcome = {FHIR_JSON: {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}}
    for operations in document["paths"].values():
        for operation in operations.values():
            parameters = operation.setdefault("parameters", [])
            parameters.append({"$ref": "#/components/parameters/XRequestId"})
            responses = operation["responses"]
            for status, (text, codes) in _SERVER_ERRORS.items():
                listed = ", ".join(f"`{code}`" for code in codes)
                responses[str(status)] = {
                    "description": f"{text} Issue code(s): {listed}.",
                    "content": copy.deepcopy(outcome),
                }
            if "requestBody" in operation:
                if "413" not in responses:
                    responses["413"] = _error_response(413)
                responses["413"]["description"] += _PROXY_413
            for response in responses.values():
                response.setdefault("headers", {})["X-Request-Id"] = {
                    "$ref": "#/components/headers/XRequestId"
                }
            operation["responses"] = dict(sorted(responses.items()))


_INTAKE_LINK_422 = (
    "A field of the body is not valid: one issue per offending field, `expression` its "
    "JSON path (`patient.reference`, `expires_in`, `show`); `code` is `required`, "
    "`code-invalid`, `invalid` (an unknown field) or `value`."
)


def _intake_link_operations() -> dict[str, Any]:
    """``POST /v1/intake-links``: a one-patient, single-use link to the intake page."""
    return {
        "post": {
            "operationId": "createIntakeLink",
            "summary": "Create a one-patient, single-use intake link",
            "description": (
                "For partners without a form of their own: the answer's `url` opens the "
                "product's intake page (the intake Questionnaire rendered with LHC-Forms, "
                "served by this API) in any browser, without an API key: the URL is "
                "signed (HMAC, `expires` and `signature` query parameters) and is the "
                "only credential. Submitting the page triages the QuestionnaireResponse "
                "exactly like `$triage` and stores it under the caller's tenant and, when "
                "given, `patient.reference` (a submission naming another subject is "
                "refused); the browser then shows the signed clinician report "
                "(`show: report`) or a thank-you page without any result "
                "(`show: thank-you`). The link works once: a second submission, an "
                "expired or an altered link is refused with a page (404) that does not "
                "say which. A submission the triage refuses (422) does not use the link "
                "up, so the form can be corrected and sent again. Checks run in this "
                "order: Accept (406), Content-Type (415), size (413), JSON (400), "
                "fields (422)."
            ),
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/IntakeLinkRequest"},
                        "example": {
                            "patient": {"reference": "Patient/example-12"},
                            "expires_in": 86400,
                            "show": "report",
                        },
                    }
                },
            },
            "responses": {
                "201": {
                    "description": "The link; `Location` repeats its URL.",
                    "headers": {
                        "Location": {
                            "description": "The intake page's signed URL.",
                            "schema": {"type": "string", "format": "uri"},
                        }
                    },
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["id", "url", "expires", "expires_unix", "show"],
                                "additionalProperties": False,
                                "properties": {
                                    "id": {"type": "string", "format": "uuid"},
                                    "url": {
                                        "type": "string",
                                        "format": "uri",
                                        "description": "{base}/intake/{id}?expires=&signature=; "
                                        "base is TWITCH_TRIAGE_PUBLIC_BASE_URL or the "
                                        "request's host URL.",
                                    },
                                    "expires": {"type": "string", "format": "date-time"},
                                    "expires_unix": {"type": "integer"},
                                    "show": {"enum": ["report", "thank-you"]},
                                    "patient": {
                                        "type": "object",
                                        "required": ["reference"],
                                        "additionalProperties": False,
                                        "properties": {"reference": {"type": "string"}},
                                    },
                                },
                            }
                        }
                    },
                },
                **{str(s): _error_response(s) for s in (400, 405, 406, 413, 415, 500, 503)},
                "422": {
                    "description": _INTAKE_LINK_422,
                    "content": {
                        FHIR_JSON: {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}
                    },
                },
            },
        }
    }


_SECURITY_TEXT = (
    "**Credentials.** Every operation except the public ones (`/healthz`, `/openapi.yaml`, "
    "`/fhir/metadata`, `/.well-known/smart-configuration`, `/auth/token` (its client "
    "assertion is the credential), `/cds-services` and the published "
    "definitions) and the pages opened with a signed link (`/reports/{id}`) "
    "needs `Authorization: Bearer <credential>`: an API key from `twitch-triage clients "
    "create`, or a SMART Backend Services access token from `POST /auth/token`. A client "
    "sees only its tenant's stored data. Answers carry `RateLimit-Policy` and `RateLimit`; "
    "over the limit, 429 with `Retry-After`."
)


def _route_map() -> Any:
    """The app's URL map, without building an app (no store, no settings)."""
    from flask import Flask  # noqa: PLC0415

    from api.auth import smart  # noqa: PLC0415
    from api.routes import cds, fhir, health, intake, reports, store, triage  # noqa: PLC0415
    from api.storage_http import FhirIdConverter  # noqa: PLC0415

    app = Flask("openapi")
    app.url_map.converters["fhir_id"] = FhirIdConverter
    blueprints = (
        triage.blueprint,
        fhir.blueprint,
        health.blueprint,
        store.blueprint,
        intake.blueprint,
        reports.blueprint,
        cds.blueprint,
    )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    app.register_blueprint(smart.blueprint)
    return app.url_map.bind("localhost")


def _secure(document: dict[str, Any]) -> None:
    """Security schemes, and per operation its requirement (from the one scope table)."""
    from api.auth.ehr import EHR_ENDPOINTS  # noqa: PLC0415
    from api.auth.http import LINK_PAGES  # noqa: PLC0415
    from api.auth.scopes import PUBLIC_ENDPOINTS, required_scope, scope_text  # noqa: PLC0415
    from api.auth.smart import SCOPES_SUPPORTED  # noqa: PLC0415

    document["components"]["securitySchemes"] = {
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key printed by `twitch-triage clients create` (`tt_…`).",
        },
        "smart": {
            "type": "oauth2",
            "description": "SMART Backend Services: POST /auth/token with "
            "grant_type=client_credentials and a client_assertion JWT (RS384 or ES384) "
            "signed with a key of the client's registered JWKS; the access token "
            "(`tta_…`) lives 300 s. Scopes are SMART v2 (`system/<Type|*>.<cruds>`); "
            "SMART v1 `.read`/`.write` are read as `.rs`/`.cud`.",
            "flows": {
                "clientCredentials": {
                    "tokenUrl": "/auth/token",
                    "scopes": {scope: f"SMART v2 scope {scope}" for scope in SCOPES_SUPPORTED},
                }
            },
        },
        "ehrJwt": cds_contract.SECURITY_SCHEME,
    }
    document["info"]["description"] += "\n\n" + _SECURITY_TEXT
    routes = _route_map()
    for path, operations in document["paths"].items():
        concrete = path.replace("{id}", "example-id")
        for method, operation in operations.items():
            endpoint, view_args = routes.match(concrete, method=method.upper())
            if endpoint in PUBLIC_ENDPOINTS or path.startswith(LINK_PAGES):
                operation["security"] = []  # public, or the signed link is the credential
                continue
            if endpoint in EHR_ENDPOINTS:  # CDS Hooks: the EHR's JWT, no API key or scope
                operation["security"] = [{"ehrJwt": []}]
                responses = operation["responses"]
                responses["429"] = _error_response(429)  # each EHR has its own counter
                operation["responses"] = dict(sorted(responses.items()))
                continue
            needed = required_scope(endpoint, view_args)
            scopes = [scope_text(*needed)] if needed else []
            operation["security"] = [{"apiKey": []}, {"smart": scopes}]
            responses = operation["responses"]
            for status in (401, 403, 429):
                responses[str(status)] = _error_response(status)
            operation["responses"] = dict(sorted(responses.items()))


def _close_objects(document: dict[str, Any], refs: dict[tuple[Any, ...], str]) -> None:
    """``additionalProperties: false`` on every schema whose unknown policy is RAISE.

    apispec emits it only for schemas without a Meta.description (an
    ``elif`` in ``OpenAPIConverter.schema2jsonschema``), and ours all have one.
    """
    components = document["components"]["schemas"]
    for key, name in refs.items():
        unknown = key[0]().unknown
        if unknown != EXCLUDE:
            components[name]["additionalProperties"] = unknown == INCLUDE


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line text so the long descriptions stay readable."""


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_representer)


def render_yaml() -> str:
    """The document as YAML text, exactly as committed in ``openapi.yaml``."""
    return yaml.dump(build_spec(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.openapi", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"rewrite {OPENAPI_PATH.name}")
    mode.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render_yaml()
    if args.write:
        OPENAPI_PATH.write_text(text, encoding="utf-8")
        return 0
    if args.check:
        current = OPENAPI_PATH.read_text(encoding="utf-8") if OPENAPI_PATH.exists() else ""
        if current != text:
            sys.stderr.write(f"{OPENAPI_PATH.name} is stale: run python -m tools.openapi --write\n")
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
