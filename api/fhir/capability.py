"""What this server can do, in FHIR terms: the CapabilityStatement and ``$triage``.

``GET /fhir/metadata`` answers :func:`build_capability_statement`; the
``$triage`` operation it lists is defined by :func:`build_triage_operation`,
served at ``GET /fhir/OperationDefinition/{TRIAGE_OPERATION_ID}``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from api.fhir import codesystems as cs
from api.fhir._tables import Json, esc, narrative, published
from api.fhir.search import DEFAULT_COUNT, MAX_COUNT, SEARCH_PARAMETERS, parameter_doc
from api.fhir.versions import R4
from triage import KNOWLEDGE_BASE_VERSION

CAPABILITY_ID = "twitch-triage"
TRIAGE_OPERATION_ID = "QuestionnaireResponse-triage"

#: Resource types served by id (``GET /fhir/{type}/{id}``), all read-only.
READABLE_TYPES = ("Questionnaire", "CodeSystem", "ValueSet", "OperationDefinition")


def software_version() -> str:
    """The installed package version (the API, not the knowledge base)."""
    try:
        return version("twitch-triage")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"


def operation_definition_url(canonical_base: str) -> str:
    return f"{canonical_base.rstrip('/')}/OperationDefinition/{TRIAGE_OPERATION_ID}"


def capability_statement_url(canonical_base: str) -> str:
    return f"{canonical_base.rstrip('/')}/CapabilityStatement/{CAPABILITY_ID}"


def build_triage_operation(canonical_base: str, *, date: str) -> Json:
    """The OperationDefinition of ``POST QuestionnaireResponse/$triage`` (type level)."""
    questionnaire = cs.questionnaire_canonical(canonical_base, KNOWLEDGE_BASE_VERSION)
    return {
        "resourceType": "OperationDefinition",
        "id": TRIAGE_OPERATION_ID,
        "text": narrative(
            "<p><b>$triage</b> on QuestionnaireResponse (type level): triage the answers to "
            f"the intake Questionnaire {esc(questionnaire)} and return the result Bundle.</p>"
            "<table><thead><tr><th>Parameter</th><th>Use</th><th>Card.</th><th>Type</th></tr>"
            "</thead><tbody>"
            "<tr><td>resource</td><td>in</td><td>1..1</td><td>QuestionnaireResponse</td></tr>"
            "<tr><td>return</td><td>out</td><td>1..1</td><td>Bundle</td></tr>"
            "</tbody></table>"
        ),
        **published(
            operation_definition_url(canonical_base),
            version=KNOWLEDGE_BASE_VERSION,
            name="Triage",
            title="Triage a completed intake QuestionnaireResponse",
            date=date,
        ),
        "kind": "operation",
        "description": (
            "Triages one person from a QuestionnaireResponse that answers the intake "
            f"Questionnaire `{questionnaire}` and returns the same Bundle as "
            "`POST /v1/triage` would for the same answers. The body is the "
            "QuestionnaireResponse itself (FHIR R4, `application/fhir+json`) or a Parameters "
            "resource with it as parameter `resource`; the result is the Bundle itself."
        ),
        "affectsState": False,
        "code": "triage",
        "comment": (
            "Query parameter `_bundle=transaction` returns a transaction Bundle (POST "
            "entries, `urn:uuid` fullUrls) to forward to a FHIR server as is; the default "
            "is `collection`. Errors are OperationOutcomes: 422 with one issue per "
            "offending item, `expression` = the FHIRPath of the item "
            "(`QuestionnaireResponse.item[3].answer[0]`) and its linkId in `diagnostics`."
        ),
        "resource": ["QuestionnaireResponse"],
        "system": False,
        "type": True,
        "instance": False,
        "parameter": [
            {
                "name": "resource",
                "use": "in",
                "min": 1,
                "max": "1",
                "documentation": "The completed intake QuestionnaireResponse (FHIR R4). Its "
                f"`questionnaire` must be `{questionnaire}` (or the same URL without version).",
                "type": "QuestionnaireResponse",
            },
            {
                "name": "return",
                "use": "out",
                "min": 1,
                "max": "1",
                "documentation": "The triage result: a Bundle of type collection (or "
                "transaction on request) laid out as PROTOCOL.md §9 says.",
                "type": "Bundle",
            },
        ],
    }


#: Stored resources (issue 10): type → interactions, besides search where declared.
STORED_INTERACTIONS: dict[str, tuple[str, ...]] = {
    "Bundle": ("read", "delete"),
    "Observation": ("read", "search-type"),
    "Provenance": ("read",),
    "AuditEvent": ("read", "search-type"),
}
_STORED_DOCS = {
    "Bundle": "Every triage result Bundle as sent (its id names it in the triage response's "
    "Location). delete erases the assessment with its resources and Provenance.",
    "Observation": "Each Observation of a stored Bundle, read alone (references as Type/id).",
    "Provenance": "The Provenance of a stored assessment; its id is the Bundle's id.",
    "AuditEvent": "The audit trail (IHE BALP style): one per create, read, search, delete "
    "and failed attempt.",
}
_PARAMETER_TYPES = {"reference": "reference", "token": "token", "date": "date"}


def _search_params(resource_type: str) -> list[Json]:
    return [
        {
            "name": name,
            "type": _PARAMETER_TYPES[kind],
            "documentation": parameter_doc(resource_type, name),
        }
        for name, (kind, _) in SEARCH_PARAMETERS.get(resource_type, {}).items()
    ]


def _stored_resource(resource_type: str, interactions: tuple[str, ...]) -> Json:
    entry: Json = {
        "type": resource_type,
        "documentation": _STORED_DOCS.get(resource_type, ""),
        "interaction": [{"code": code} for code in interactions],
        "versioning": "versioned",
        "readHistory": False,
        "updateCreate": False,
        # If-None-Match (the ETag) and If-Modified-Since (Last-Modified) both answer 304.
        "conditionalRead": "full-support",
        "conditionalDelete": "not-supported",
    }
    params = _search_params(resource_type)
    if params:
        entry["documentation"] += SEARCH_DOCS
        entry["searchParam"] = params
    return entry


SEARCH_DOCS = (
    f" Search: `_count` (default {DEFAULT_COUNT}, at most {MAX_COUNT}), newest first, "
    "`next`/`previous` links; an unknown parameter or modifier is a 400. Also by POST to "
    "`_search` with the parameters in an application/x-www-form-urlencoded body."
)


#: SMART on FHIR security (issue 11): Backend Services tokens or API keys, both Bearer.
SECURITY: Json = {
    "cors": True,
    "service": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "SMART-on-FHIR",
                    "display": "SMART-on-FHIR",
                }
            ],
            "text": "OAuth2 using SMART Backend Services (client_credentials with a signed "
            "JWT assertion, RS384 or ES384), or an API key; both as Authorization: Bearer",
        }
    ],
    # No SMART oauth-uris extension: its definition requires an ``authorize`` endpoint,
    # which Backend Services has none of (a validator reports the missing slice as an
    # error); SMART App Launch 2 names the endpoints in /.well-known/smart-configuration.
    "description": "Every interaction except metadata and the published definitions needs "
    "Authorization: Bearer <API key or access token>; scopes are SMART v2 "
    "(system/<Type>.<cruds>); each client sees only its tenant's stored data. The token "
    "endpoint is named in /.well-known/smart-configuration.",
}


def build_capability_statement(canonical_base: str, *, date: str) -> Json:
    """The R4 CapabilityStatement of this server (kind ``instance``)."""
    software = software_version()
    read = [{"code": "read"}]
    resources: list[Json] = [
        {
            "type": resource_type,
            "interaction": read,
            "versioning": "no-version",
            "readHistory": False,
            "updateCreate": False,
        }
        for resource_type in READABLE_TYPES
    ]
    resources.extend(
        _stored_resource(resource_type, interactions)
        for resource_type, interactions in STORED_INTERACTIONS.items()
    )
    resources.append(
        {
            **_stored_resource("QuestionnaireResponse", ("read", "search-type")),
            "documentation": "Each QuestionnaireResponse of a stored Bundle, read alone."
            + SEARCH_DOCS,
            "operation": [
                {
                    "name": "triage",
                    "definition": operation_definition_url(canonical_base),
                    "documentation": "Triage one completed intake QuestionnaireResponse.",
                }
            ],
        }
    )
    rows = "".join(
        f"<tr><td>{esc(r['type'])}</td><td>"
        + esc(", ".join([i["code"] for i in r.get("interaction", [])] or ["$triage"]))
        + "</td></tr>"
        for r in resources
    )
    return {
        "resourceType": "CapabilityStatement",
        "id": CAPABILITY_ID,
        "text": narrative(
            f"<p><b>twitch-triage {esc(software)}</b> FHIR R4 server (JSON only).</p>"
            "<table><thead><tr><th>Resource</th><th>Interactions</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        ),
        **published(
            capability_statement_url(canonical_base),
            version=software,
            name="TwitchTriage",
            title="twitch-triage FHIR interface",
            date=date,
        ),
        "description": (
            "Triage of muscle twitching around exercise. Read the intake Questionnaire and "
            "the product terminology, post a completed QuestionnaireResponse to "
            "`QuestionnaireResponse/$triage`. R5 on request "
            "(`Accept: application/fhir+json; fhirVersion=5.0`)."
        ),
        "kind": "instance",
        "software": {"name": "twitch-triage", "version": software},
        "implementation": {"description": "twitch-triage FHIR interface"},
        "fhirVersion": R4.release,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Read-only terminology and Questionnaire, the $triage operation, and "
                    "read/search/delete of the stored assessments. Outside searches unknown "
                    "query parameters are ignored; `_format` is honoured like Accept."
                ),
                "security": SECURITY,
                "resource": resources,
            }
        ],
    }
