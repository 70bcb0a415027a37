"""The one table of FHIR versions, and R4 → R5 for the resources we publish.

Every other module reads versions from here: content negotiation (which
``fhirVersion`` values a client may ask for), the renderer (which ones it can
emit), the CapabilityStatement (the release it declares) and the catalog (one
serialised form per version).

We author everything in R4 (fhirVersion 4.0.1, PROTOCOL.md §9) and derive R5 by
the differences that touch the elements we use:

* ``Questionnaire.item.type``: R5 dropped ``choice`` and ``open-choice``; a
  question with a fixed option list is ``coding`` with ``answerConstraint``
  ``optionsOnly``.
* ``CapabilityStatement.fhirVersion``: ``5.0.0``.

Everything else we emit (Bundle, Observation, QuestionnaireResponse, CodeSystem,
ValueSet, OperationDefinition, OperationOutcome, the questionnaire extensions)
has the same shape in both versions; the tests check each against the
fhir.resources R5 models.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

#: The FHIR JSON media type (FHIR http.html#mime-type).
FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True, slots=True)
class FhirVersion:
    """One FHIR version we answer in: its ``fhirVersion`` MIME value and its release."""

    mime: str
    release: str


R4 = FhirVersion(mime="4.0", release="4.0.1")
R5 = FhirVersion(mime="5.0", release="5.0.0")

#: Every version we render, by ``fhirVersion`` MIME parameter (major.minor), R4 first.
FHIR_VERSIONS: MappingProxyType[str, FhirVersion] = MappingProxyType({R4.mime: R4, R5.mime: R5})
#: The version a response is in unless the client negotiated another.
DEFAULT_FHIR_VERSION = R4.mime
#: ``fhirVersion`` values a client may send → the version we render. Major.minor is the
#: spec's form; the full release is accepted as a courtesy.
FHIR_VERSION_ALIASES: MappingProxyType[str, str] = MappingProxyType(
    {alias: v.mime for v in FHIR_VERSIONS.values() for alias in (v.mime, v.release)}
)
#: Renderable versions by MIME value → release (kept for callers of the old name).
SUPPORTED_FHIR_VERSIONS: MappingProxyType[str, str] = MappingProxyType(
    {v.mime: v.release for v in FHIR_VERSIONS.values()}
)
R5_FHIR_VERSION = R5.release

Json = dict[str, Any]


def _questionnaire_item_r5(item: Json) -> Json:
    out = dict(item)
    if item["type"] in ("choice", "open-choice"):
        out["type"] = "coding"
        out["answerConstraint"] = "optionsOnly" if item["type"] == "choice" else "optionsOrString"
    if "item" in item:
        out["item"] = [_questionnaire_item_r5(child) for child in item["item"]]
    return out


def to_r5(resource: Json) -> Json:
    """The R5 form of an R4 resource we publish (a new dict; the input is not changed)."""
    resource_type = resource["resourceType"]
    if resource_type == "Questionnaire":
        return {**resource, "item": [_questionnaire_item_r5(i) for i in resource["item"]]}
    if resource_type == "CapabilityStatement":
        return {**resource, "fhirVersion": R5.release}
    return dict(resource)
