"""The OpenAPI description of the CDS Hooks endpoints (issue 13), for ``tools.openapi``.

The schemas describe CDS Hooks 2.0 as this service sends and reads it: the
discovery document, the ``patient-view`` request, the response and its card,
the feedback body. They are plain JSON (``application/json``), not FHIR; errors
are OperationOutcomes like everywhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api.services.cds.cards import SERVICE_ID, SUMMARY_LIMIT

FHIR_JSON = "application/fhir+json"
JSON = "application/json"
Schema = dict[str, Any]
_TEXT: Schema = {"type": "string", "minLength": 1}
_URL: Schema = {"type": "string", "format": "uri"}
_CODING: Schema = {
    "type": "object",
    "properties": {"system": _URL, "code": _TEXT, "display": _TEXT},
}

SECURITY_SCHEME: Schema = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": 'CDS Hooks "Trusting CDS Clients": a JWT the EHR signs for every call '
    "(RS384 or ES384; never `none` or HMAC). Header: `alg`, `kid` (a key of the EHR's "
    "registered JWK Set), `typ` `JWT`, optionally `jku` (must equal the registered URL). "
    "Claims: `iss` (registered with `twitch-triage ehrs register --tenant NAME --iss ISS "
    "(--jwks-file FILE | --jku URL)`), `aud` = the exact URL called "
    "(TWITCH_TRIAGE_PUBLIC_BASE_URL or the host URL, plus the path), `exp` (at most 300 s "
    "ahead), `iat`, `jti` (never accepted twice). 30 s of clock skew are tolerated.",
}


def components() -> dict[str, Schema]:
    """The CDS Hooks schemas, by component name."""
    link: Schema = {
        "type": "object",
        "required": ["label", "url", "type"],
        "additionalProperties": False,
        "properties": {
            "label": _TEXT,
            "url": _URL,
            "type": {
                "enum": ["absolute", "smart"],
                "description": "`absolute`: the clinician report of this assessment, a signed "
                "link valid TWITCH_TRIAGE_REPORT_LINK_SECONDS. `smart`: the intake app "
                "(TWITCH_TRIAGE_CDS_INTAKE_APP_URL), when configured.",
            },
        },
    }
    return {
        "CdsDiscovery": {
            "type": "object",
            "required": ["services"],
            "additionalProperties": False,
            "properties": {
                "services": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": "#/components/schemas/CdsService"},
                }
            },
        },
        "CdsService": {
            "type": "object",
            "required": ["hook", "description", "id"],
            "additionalProperties": False,
            "properties": {
                "hook": {"const": "patient-view"},
                "title": _TEXT,
                "description": _TEXT,
                "id": {"const": SERVICE_ID},
                "prefetch": {
                    "type": "object",
                    "required": ["intake"],
                    "additionalProperties": False,
                    "properties": {
                        "intake": {
                            "type": "string",
                            "description": "The patient's newest completed intake "
                            "QuestionnaireResponse of this deployment's Questionnaire.",
                        }
                    },
                },
                "usageRequirements": _TEXT,
            },
        },
        "CdsRequest": {
            "type": "object",
            "description": "A `patient-view` call. Unknown members (`extension` …) are "
            "ignored. Without `prefetch.intake`, `fhirServer` and `fhirAuthorization` must "
            "let the service search QuestionnaireResponse itself (412 otherwise); the service "
            "fetches only from a FHIR server registered for the calling EHR (`twitch-triage "
            "ehrs register --fhir-server`), never from any other `fhirServer`.",
            "required": ["hook", "hookInstance", "context"],
            "properties": {
                "hook": {"const": "patient-view"},
                "hookInstance": {"type": "string", "minLength": 1, "maxLength": 255},
                "fhirServer": {
                    "type": "string",
                    "pattern": "^https?://",
                    "description": "The EHR's FHIR base URL. Fetched from only when it is one "
                    "registered for the calling EHR (a trailing slash, the case of the host "
                    "and a default port make no difference); any other is a 412 on "
                    "`fhirServer` and nothing is sent there.",
                },
                "fhirAuthorization": {
                    "type": "object",
                    "required": ["access_token", "token_type"],
                    "properties": {
                        "access_token": {"type": "string", "pattern": "^\\S{1,4096}$"},
                        "token_type": {"type": "string", "pattern": "^[Bb][Ee][Aa][Rr][Ee][Rr]$"},
                        "expires_in": {"type": "integer"},
                        "scope": _TEXT,
                        "subject": _TEXT,
                        "patient": _TEXT,
                    },
                },
                "context": {
                    "type": "object",
                    "required": ["patientId", "userId"],
                    "properties": {
                        "patientId": {"type": "string", "pattern": "^[A-Za-z0-9\\-.]{1,64}$"},
                        "userId": _TEXT,
                        "encounterId": _TEXT,
                    },
                },
                "prefetch": {
                    "type": "object",
                    "properties": {
                        "intake": {
                            "description": "A QuestionnaireResponse, a searchset Bundle (its "
                            "newest QuestionnaireResponse by `authored` is used) or null (no "
                            "intake: no card). An OperationOutcome, or a searchset with no "
                            "QuestionnaireResponse but an `error`/`fatal` OperationOutcome "
                            "entry, is a failed query: searched on `fhirServer`, else 412. "
                            "A malformed searchset (no `type` searchset, an unknown member, "
                            "an entry without `resource`, a `search.mode` other than match, "
                            "include, outcome, `total` above 0 with no match …) is a 412 "
                            "naming the element: only a well-formed searchset without a "
                            "matching QuestionnaireResponse is no intake. "
                            "Its `subject` must be `Patient/<context."
                            "patientId>` (or that on `fhirServer`), else 412.",
                            "type": ["object", "null"],
                        }
                    },
                },
            },
        },
        "CdsResponse": {
            "type": "object",
            "required": ["cards"],
            "additionalProperties": False,
            "properties": {
                "cards": {
                    "type": "array",
                    "maxItems": 1,
                    "description": "One card per call with an intake; `[]` without one.",
                    "items": {"$ref": "#/components/schemas/CdsCard"},
                }
            },
        },
        "CdsCard": {
            "type": "object",
            "required": ["uuid", "summary", "indicator", "detail", "source"],
            "additionalProperties": False,
            "properties": {
                "uuid": {"type": "string", "format": "uuid"},
                "summary": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": SUMMARY_LIMIT,
                    "description": "The level and the most urgent red flag.",
                },
                "indicator": {
                    "enum": ["info", "warning", "critical"],
                    "description": "`critical`: emergency_ambulance, emergency; `warning`: "
                    "consultation_24; `info`: consultation, self_care.",
                },
                "detail": {
                    "type": "string",
                    "minLength": 1,
                    "description": "GitHub-flavoured markdown: the level, the red flags most "
                    "urgent first with the answers behind them, the questions still to ask, "
                    "the advice; intake text (notes, activity) escaped.",
                },
                "source": {
                    "type": "object",
                    "required": ["label", "url", "topic"],
                    "additionalProperties": False,
                    "properties": {
                        "label": _TEXT,
                        "url": _URL,
                        "topic": {**_CODING, "required": ["system", "code", "display"]},
                    },
                },
                "links": {"type": "array", "minItems": 1, "items": link},
            },
        },
        "CdsFeedbackRequest": {
            "type": "object",
            "required": ["feedback"],
            "properties": {
                "feedback": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 100,
                    "items": {
                        "type": "object",
                        "description": "One CDS Hooks 2.0 Feedback: `acceptedSuggestions` "
                        "(one or more) is required when `outcome` is `accepted`. Each id must "
                        "be one of the card's suggestions; this service's cards offer none, "
                        "so any id is a 400 (`accepted` is always refused: report "
                        "`overridden`). `card` is matched whatever the case of its hex "
                        "digits.",
                        "required": ["card", "outcome", "outcomeTimestamp"],
                        "properties": {
                            "card": {"type": "string", "minLength": 1, "maxLength": 64},
                            "outcome": {"enum": ["accepted", "overridden"]},
                            "acceptedSuggestions": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["id"],
                                    "properties": {"id": _TEXT},
                                },
                            },
                            "overrideReason": {
                                "type": "object",
                                "properties": {
                                    "reason": {
                                        "type": "object",
                                        "required": ["system", "code"],
                                        "properties": {
                                            "system": _TEXT,
                                            "code": _TEXT,
                                            "display": _TEXT,
                                        },
                                    },
                                    "userComment": _TEXT,
                                },
                            },
                            "outcomeTimestamp": {
                                "type": "string",
                                "format": "date-time",
                                "maxLength": 64,
                                "description": "When the user acted on the card: an RFC 3339 "
                                "date-time (date, time to the second, `Z` or an offset), e.g. "
                                "`2026-11-27T12:00:00Z`; a date alone or a time without zone "
                                "is refused.",
                            },
                        },
                        "if": {
                            "required": ["outcome"],
                            "properties": {"outcome": {"const": "accepted"}},
                        },
                        "then": {
                            "required": ["acceptedSuggestions"],
                            "properties": {"acceptedSuggestions": {"minItems": 1}},
                        },
                    },
                }
            },
        },
        "CdsFeedbackResponse": {
            "type": "object",
            "required": ["stored"],
            "additionalProperties": False,
            "properties": {"stored": {"type": "integer", "minimum": 1}},
        },
    }


_CDS_ERRORS = {
    400: "The body is not one strict JSON object, or a member of the CDS Hooks request or "
    "feedback has the wrong shape (missing, wrong type, a hook other than patient-view); one "
    "issue per field, `expression` its JSON path (`context.patientId`, `feedback[0].outcome`).",
    401: "No EHR JWT, or one that is refused (see the `ehrJwt` security scheme); "
    "`WWW-Authenticate: Bearer` with `invalid_token`. The token is never echoed or logged.",
    404: "A feedback entry names a card this EHR's tenant was never given; one issue per "
    "entry (`feedback[1].card`); nothing is stored.",
    412: "The intake cannot be had or used: no `prefetch.intake` (or one reporting a failed "
    "query) and no `fhirServer` with `fhirAuthorization`; a `fhirServer` that is not one "
    "registered for the calling EHR "
    "(expression `fhirServer`; nothing is fetched from it; the operator registers servers "
    "with `twitch-triage ehrs register --fhir-server URL`); the EHR's FHIR server could not "
    "be read (its status, a redirect to another host, not JSON or a key repeated in one "
    "object, a timeout); a prefetch that "
    "is no QuestionnaireResponse or Bundle; a malformed searchset, prefetched or fetched "
    "(expression the element: `prefetch.intake.entry[0].resource`, `Bundle.total`); or an "
    "intake whose `subject` is not "
    "`Patient/<context.patientId>` (expression `prefetch.intake.subject.reference`): never "
    "triaged into another patient's chart.",
    422: "The intake QuestionnaireResponse cannot be triaged: exactly the `$triage` 422 "
    "(one issue per item, `expression` its FHIRPath).",
}


def _cds_error(status: int) -> Schema:
    return {
        "description": _CDS_ERRORS[status],
        "content": {FHIR_JSON: {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}},
    }


def cds_paths(error_response: Callable[[int], Schema]) -> dict[str, dict[str, Any]]:
    """The three CDS Hooks paths."""

    def errors(*statuses: int) -> dict[str, Schema]:
        return {
            str(status): _cds_error(status) if status in _CDS_ERRORS else error_response(status)
            for status in statuses
        }

    return {
        "/cds-services": {
            "get": {
                "operationId": "cdsDiscovery",
                "summary": "CDS Hooks discovery",
                "description": "The service `twitch-triage` on hook `patient-view`, with its "
                "prefetch template. Public: it holds no patient data.",
                "responses": {
                    "200": {
                        "description": "The discovery document (CDS Hooks 2.0).",
                        "content": {
                            JSON: {"schema": {"$ref": "#/components/schemas/CdsDiscovery"}}
                        },
                    },
                    **errors(405, 406),
                },
            }
        },
        f"/cds-services/{SERVICE_ID}": {
            "post": {
                "operationId": "cdsService",
                "summary": "CDS Hooks patient-view: triage the patient's newest intake",
                "description": "Triages the intake through the `$triage` use case, stores the "
                'assessment under the EHR\'s tenant and answers one card (or `{"cards": []}` '
                "when the patient has no intake). Every call, with a card, without one or "
                "refused, writes one AuditEvent `operation` under the EHR's tenant: the EHR "
                "the requesting agent, entity `Patient/<context.patientId>` (once valid), the "
                "search sent to the EHR's FHIR server (base64 in `entity.query`), the intake "
                "read there (absolute reference) and the assessment stored (`Bundle/<id>`, "
                "which has its own `create` AuditEvent).",
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": {"$ref": "#/components/schemas/CdsRequest"}}},
                },
                "responses": {
                    "200": {
                        "description": "The cards.",
                        "content": {JSON: {"schema": {"$ref": "#/components/schemas/CdsResponse"}}},
                    },
                    **errors(400, 401, 405, 406, 412, 413, 415, 422, 500, 503),
                },
            }
        },
        f"/cds-services/{SERVICE_ID}/feedback": {
            "post": {
                "operationId": "cdsFeedback",
                "summary": "CDS Hooks feedback: what the clinician did with cards",
                "description": "Stores each entry (accepted or overridden, the override "
                "reason and comment, accepted suggestions, when) with the card's assessment, "
                "and writes one AuditEvent (`operation`, entity `Bundle/<assessment>`) per "
                "entry. Each entry is held to CDS Hooks 2.0: `outcomeTimestamp` required (an "
                "RFC 3339 date-time with zone), `acceptedSuggestions` required for `accepted`, "
                "an `overrideReason.reason` Coding with `system` and `code`; every problem is "
                "one 400 issue. Also accepted: one bare entry instead of "
                '`{"feedback": [...]}`.',
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {"schema": {"$ref": "#/components/schemas/CdsFeedbackRequest"}}
                    },
                },
                "responses": {
                    "200": {
                        "description": "How many entries were stored.",
                        "content": {
                            JSON: {"schema": {"$ref": "#/components/schemas/CdsFeedbackResponse"}}
                        },
                    },
                    **errors(400, 401, 404, 405, 406, 413, 415, 500, 503),
                },
            }
        },
    }
