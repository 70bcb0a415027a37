"""R4 → R5 for the conformance resources we publish (requested with ``fhirVersion=5.0``).

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

from api.fhir._tables import Json

R5_FHIR_VERSION = "5.0.0"


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
        return {**resource, "fhirVersion": R5_FHIR_VERSION}
    return dict(resource)
