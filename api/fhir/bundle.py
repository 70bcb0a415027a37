"""The result Bundle (PROTOCOL.md §9), built as plain dicts for speed.

Entry order: the QuestionnaireResponse, the triage-level Observation, one
Observation per fired rule (most urgent first), one per reported factor (most
points first). References between entries use the ``urn:uuid`` fullUrls.

R4 and R5 differ in nothing this Bundle uses (Observation, QuestionnaireResponse
and Bundle elements and value types are the same), so ``fhir_version`` only
selects which version the caller announces; a future delta goes in
:func:`_adapt_version`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from api.fhir import codesystems as cs
from api.fhir._tables import RESPONDENT, Json, Tables
from api.fhir.ids import time_ordered_ids
from api.fhir.observations import MEDICATION_CLASS as _MED_CLASS
from api.fhir.observations import (
    OBSERVATION,
    Common,
    factor_observation,
    level_observation,
    rule_observation,
)
from api.fhir.questionnaire_response import (
    NO_GATES,
    QUESTIONNAIRE_RESPONSE,
    asked_again_notes,
    render_questionnaire_response,
)
from api.fhir.settings import FhirSettings
from api.fhir.versions import DEFAULT_FHIR_VERSION, FHIR_VERSIONS
from triage.result import TriageResult

#: Bundle types a triage result can be returned as (``?_bundle=``).
BUNDLE_TYPES = ("collection", "transaction")


def format_instant(now: datetime) -> str:
    """A FHIR instant with time zone (``Z`` for UTC), millisecond precision."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (FHIR instants carry a time zone)")
    text = now.isoformat(timespec="milliseconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _adapt_version(bundle: Json, fhir_version: str) -> Json:
    """Hook for R4/R5 differences; none exist in the elements this Bundle uses."""
    del fhir_version
    return bundle


def render_triage_bundle(
    request: Mapping[str, Any],
    result: TriageResult,
    *,
    settings: FhirSettings,
    fhir_version: str = DEFAULT_FHIR_VERSION,
    now: datetime | None = None,
    new_id: Callable[[], str] | None = None,
    tables: Tables | None = None,
    identified: bool = False,
    gates: Mapping[str, bool] = NO_GATES,
) -> dict[str, Any]:
    """The collection Bundle for a validated ``request`` and its ``result``.

    ``request`` is the JSON shape of PROTOCOL.md §3 (omitted/null = unknown).
    ``now`` (timezone-aware) and ``new_id`` (returns a UUID string) make output
    deterministic in tests. ``tables`` are the deployment's prebuilt fragments
    (the app passes its own; without them they are built for ``settings``, ~1 ms).
    The returned dict shares frozen fragments with other Bundles: serialize it, or
    ``copy.deepcopy`` it before changing it. ``identified`` renders it as stored: the
    Bundle with ``meta`` and every entry resource with its ``id`` (the uuid of its
    fullUrl) and ``meta`` after ``resourceType``, the same JSON as
    :func:`api.storage.records.identify` of the plain Bundle, without copying every entry.
    ``gates``: the yes/no answers opening the lists as a QuestionnaireResponse gave them
    (see :func:`render_questionnaire_response`), so a yes the request reads as unknown
    still shows in the result (its answers, and its next question).
    """
    if fhir_version not in FHIR_VERSIONS:
        supported = ", ".join(FHIR_VERSIONS)
        raise ValueError(f"unsupported fhirVersion {fhir_version!r}; supported: {supported}")
    if tables is None or tables.base != settings.canonical_base:
        tables = Tables(settings.canonical_base)
    t = tables
    rules = result.rules
    factors = result.factors
    count = 3 + len(rules) + len(factors)  # bundle id, QR, level, findings
    ids = [new_id() for _ in range(count)] if new_id is not None else time_ordered_ids(count)
    timestamp = format_instant(now if now is not None else datetime.now(UTC))

    patient = request.get("patient") or {}
    reference = patient.get("reference")
    subject = {"reference": reference} if reference else None
    version = result.knowledge_base_version
    respondent_html = t.respondent_html(request.get(RESPONDENT))

    meta = {"versionId": "1", "lastUpdated": timestamp} if identified else None

    def head(resource_type: Json, position: int) -> Json:
        """A resource's first elements: its type, and its id and meta when identified."""
        if meta is None:
            return resource_type
        return {**resource_type, "id": ids[position], "meta": meta}

    qr_url = f"urn:uuid:{ids[1]}"
    level_url = f"urn:uuid:{ids[2]}"
    common = Common(subject=subject, timestamp=timestamp, method=t.method(version), qr_url=qr_url)

    entries: list[Json] = [
        {
            "fullUrl": qr_url,
            "resource": render_questionnaire_response(
                request,
                t,
                questionnaire=f"{t.questionnaire_url}|{version}",
                authored=timestamp,
                subject=subject,
                respondent_html=respondent_html,
                head=head(QUESTIONNAIRE_RESPONSE, 1),
                gates=gates,
            ),
        },
        {},  # the level Observation, filled below once the findings exist
    ]
    members: list[Json] = []
    rule_lines: list[str] = []
    factor_rows: list[str] = []
    next_id = 3
    for rule in rules:
        url = f"urn:uuid:{ids[next_id]}"
        resource, line = rule_observation(t, rule, common, head(OBSERVATION, next_id))
        next_id += 1
        entries.append({"fullUrl": url, "resource": resource})
        members.append({"reference": url})
        rule_lines.append(line)
    for factor in factors:
        url = f"urn:uuid:{ids[next_id]}"
        resource, row = factor_observation(t, factor, common, head(OBSERVATION, next_id))
        next_id += 1
        entries.append({"fullUrl": url, "resource": resource})
        members.append({"reference": url})
        factor_rows.append(row)
    entries[1] = {
        "fullUrl": level_url,
        "resource": level_observation(
            t,
            result,
            common,
            members=members,
            rule_lines=rule_lines,
            factor_rows=factor_rows,
            respondent_html=respondent_html,
            head=head(OBSERVATION, 2),
            asked_again=asked_again_notes(request, gates) if gates else {},
        ),
    }
    bundle: Json = {"resourceType": "Bundle", "id": ids[0]}
    if meta is not None:
        bundle["meta"] = meta
    bundle["type"] = "collection"
    bundle["timestamp"] = timestamp
    bundle["entry"] = entries
    return _adapt_version(bundle, fhir_version)


def as_transaction(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """The same content as a ``transaction`` Bundle an EHR can POST to its FHIR server.

    Each entry becomes a ``POST`` to its resource type; the ``urn:uuid`` fullUrls
    stay, and since every reference between entries already uses them, the server
    rewrites them to the ids it assigns (FHIR transaction semantics). ``subject``
    (``Patient/<id>``) is left for the server to resolve. Builds new dicts: the
    input (which shares static fragments) is not modified.
    """
    transaction: dict[str, Any] = {"resourceType": "Bundle", "id": bundle["id"]}
    if "meta" in bundle:  # rendered as stored (``identified``)
        transaction["meta"] = bundle["meta"]
    transaction["type"] = "transaction"
    transaction["timestamp"] = bundle["timestamp"]
    transaction["entry"] = [
        {
            "fullUrl": entry["fullUrl"],
            "resource": entry["resource"],
            "request": {"method": "POST", "url": entry["resource"]["resourceType"]},
        }
        for entry in bundle["entry"]
    ]
    return transaction


TRANSACTION_DESCRIPTION = """\
With `_bundle=transaction` the same entries come as a Bundle of type `transaction`: each
entry keeps its `urn:uuid` fullUrl and resource and gets `request` = `POST` to its resource
type (`QuestionnaireResponse`, `Observation`). References between entries use the fullUrls,
so the receiving FHIR server rewrites them to the ids it assigns; `subject`
(`Patient/<id>`) must resolve on that server.
"""

LAYOUT_DESCRIPTION = f"""\
The response is a FHIR Bundle of type `collection` (R4, fhirVersion 4.0.1 by default;
R5 on request) whose entries have `urn:uuid` fullUrls and reference each other by them.
Entries, in order: **(1)** one `QuestionnaireResponse` (status `completed`, `questionnaire`
= `{{canonical base}}/Questionnaire/{cs.QUESTIONNAIRE_ID}|{{knowledge-base version}}`) with
one item per answer given, `linkId` = the vocabulary path (`symptoms.headache`), flat
except one `history.medications` group item per medication; an unknown answer has no
item. **`history.medications` and `history.conditions` follow the Questionnaire's yes/no
question that opens them** (`history.medications.any`, `history.conditions.any`): a list
given empty (`[]`, meaning "none") is that question answered `false` and no list item; a
non-empty list comes after `true`. So none and unknown stay distinct, and the response
conforms to the Questionnaire. On `$triage` the yes/no as given is kept: a `true` with
nothing listed (the list is unknown, so it is asked again) is that question answered `true`
and no list item, and a `false` beside listed members (which count) is answered `true`;
the narrative words both. **(2)** one triage-level `Observation` (`code` LOINC 11283-9 and
`{{canonical base}}/CodeSystem/{cs.TRIAGE_OBSERVATION}#triage-level`; `valueCodeableConcept`
= the level from CodeSystem `{cs.TRIAGE_LEVEL}`; `derivedFrom` the QuestionnaireResponse;
`hasMember` every finding). Its `component`s carry, in order, **the advice** (code
`{cs.TRIAGE_OBSERVATION}#advice`, value = the advice code from CodeSystem `{cs.ADVICE}`, its
`text` the advice), **the unanswered red-flag screen items** (code
`{cs.TRIAGE_OBSERVATION}#unanswered-screen-item`, value = the linkId as a coding of CodeSystem
`{cs.INTAKE_ITEM}`), **the decisive questions** (one per unknown screen item, in the same
order: `code` = `{cs.TRIAGE_OBSERVATION}#decisive-question` plus the item's linkId as an
`{cs.INTAKE_ITEM}` coding, `code.text` = the linkId; value[x] = the answer that would decide,
typed as evidence is: `valueBoolean` for a yes/no item, `valueCodeableConcept` for an enum value
or one listed value (for `history.medications` a code of
`{cs.item_codesystem_id(_MED_CLASS)}`; "none", an empty list, as
`{cs.TRIAGE_OBSERVATION}#none`), `valueInteger` or `valueQuantity` for a value at a rule's
threshold; `interpretation[0]` = the most urgent level that answer alone would give, from
CodeSystem `{cs.TRIAGE_LEVEL}` (it may be no more urgent than the current level), then one
`{cs.RED_FLAG_RULE}` code per rule it would newly fire; the answer is hypothetical, the item is
still unknown, and it never changes the level) and **the knowledge-base version** (code
`{cs.TRIAGE_OBSERVATION}#knowledge-base-version`, `valueString`). **(3)** one `Observation` per
fired red-flag rule, most urgent first (`code` = rule id from CodeSystem `{cs.RED_FLAG_RULE}`
plus SNOMED CT where mapped, `valueCodeableConcept` = the rule's level, `note` = rationale
and source), then **(4)** one per contributing factor (`code` = factor code from CodeSystem
`{cs.CONTRIBUTING_FACTOR}`, `valueCodeableConcept` = likelihood from CodeSystem
`{cs.LIKELIHOOD}`, a `{cs.TRIAGE_OBSERVATION}#points` component). **Evidence** on a finding is
one `component` per triggering answer: `code` = the linkId as an `{cs.INTAKE_ITEM}` coding
(`code.text` = its JSON path, e.g. `history.medications[1].class`), value as
`valueBoolean`, `valueInteger`, `valueQuantity` (decimals, UCUM), `valueCodeableConcept`
(codes) or `valueString`; an unknown screen answer has `dataAbsentReason` `unknown`
instead. Every Observation carries the knowledge-base version as `method` (CodeSystem
`{cs.KNOWLEDGE_BASE}`, code `{cs.KNOWLEDGE_BASE_CODE}`, `version`). Every product CodeSystem is at
`{{canonical base}}/CodeSystem/{{id}}` (default base `{cs.DEFAULT_CANONICAL_BASE}`);
enum answers use one CodeSystem per item, id = the linkId with `.` and `_` as `-`
(`twitching-body-sites`); `respondent` (who gave the answers) is a QuestionnaireResponse item
like any other (`valueCoding`). Each resource has a generated XHTML narrative written for
clinicians (red flags first; who answered; answers as question and answer; the next questions
as questions, each with "If yes → <level>"), in which all request text is escaped.
"""
