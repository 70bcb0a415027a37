"""What this server can do, in FHIR terms: the CapabilityStatement and ``$triage``.

``GET /fhir/metadata`` answers :func:`build_capability_statement`; the
``$triage`` operation it lists is defined by :func:`build_triage_operation`,
served at ``GET /fhir/OperationDefinition/{TRIAGE_OPERATION_ID}``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from api.fhir import codesystems as cs
from api.fhir._tables import Json, esc, narrative, published
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
    resources.append(
        {
            "type": "QuestionnaireResponse",
            "documentation": "Not stored: QuestionnaireResponses are only triaged.",
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
                    "Read-only terminology and Questionnaire, plus the $triage operation. "
                    "Unknown query parameters are ignored; `_format` is honoured like Accept."
                ),
                "resource": resources,
            }
        ],
    }
