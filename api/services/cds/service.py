"""CDS Hooks use cases: answer a ``patient-view`` call with a card; keep the feedback.

The triage itself is ``$triage``'s: :func:`api.services.triage_questionnaire_response`
run by :func:`api.services.assessments.stored_triage`, so the assessment is stored
(Bundle, Provenance, create AuditEvent) under the EHR's tenant exactly as the
other triage endpoints store theirs. No Flask: the view passes what it knows.
"""

from __future__ import annotations

import copy
import dataclasses
import time
import uuid
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

from api.fhir import FhirContext, Issue
from api.fhir import codesystems as cs
from api.fhir.versions import DEFAULT_FHIR_VERSION
from api.services.assessments import Recording, StoredTriage, stored_triage
from api.services.cds.cards import CardLinks, card
from api.services.cds.fetch import FetchError, get_json
from api.services.cds.request import (
    FHIR_ID,
    PREFETCH_KEY,
    FeedbackEntry,
    HookRequest,
    parse_feedback,
    parse_hook_request,
    parse_timestamp,
)
from api.services.cds.searchset import read_search_answer
from api.services.cds.servers import REGISTER_HINT, fhir_base
from api.services.errors import (
    IdempotencyKeyReusedError,
    InvalidCdsRequestError,
    NotFoundError,
    PreconditionFailedError,
)
from api.services.links import LinkSigner
from api.services.outcome import Outcome
from api.services.reports import report_link
from api.services.triage import triage_questionnaire_response
from api.storage.assessments import Exchange, audit
from api.storage.cds import CardRecord, CdsStore, FeedbackRecord
from schemas import IssueType

#: Prefix of the idempotency key a hook call's assessment is stored under.
HOOK_INSTANCE_KEY = "cds-hook-instance:"

#: Fetches the intake search from the EHR's FHIR server: (url, bearer token) → JSON.
Fetcher = Callable[[str, str], Any]
#: How the AuditEvent of a service call describes the search sent to the EHR's server.
EHR_SEARCH = "search of QuestionnaireResponse on the EHR's FHIR server"


@dataclass(slots=True)
class CdsTrail:
    """What one service call touched, noted as the call goes and audited when it ends,
    with a card, without one or refused alike (ids and references only)."""

    #: The patient in context (``context.patientId``, once it is a valid FHIR id).
    patient_id: str | None = None
    #: The search sent, with the EHR's token, to its FHIR server (the full URL).
    fetched: str | None = None
    #: The intake triaged, by absolute reference on the EHR's FHIR server, when known.
    intake: str | None = None
    #: The assessment stored for the card.
    bundle_id: str | None = None


def audit_service_call(store: Any, exchange: Exchange, trail: CdsTrail, status: int) -> None:
    """The one ``operation`` AuditEvent of a service call (the EHR the requesting agent).

    Indexed by the patient in context (``entity=Patient/<id>``); names the search sent
    to the EHR's server (base64 in ``entity.query``), the intake read by reference and
    the assessment stored. Its ``create`` AuditEvent is written with the assessment.
    """
    related = tuple(
        reference
        for reference in (
            trail.intake,
            None if trail.bundle_id is None else f"Bundle/{trail.bundle_id}",
        )
        if reference is not None
    )
    audit(
        store,
        exchange,
        "operation",
        status,
        entity=None if trail.patient_id is None else ("Patient", trail.patient_id),
        related=related,
        query=None if trail.fetched is None else trail.fetched.encode(),
        query_description=None if trail.fetched is None else EHR_SEARCH,
        resource_type=None if trail.fetched is None else "QuestionnaireResponse",
    )


def fetch_from_ehr(url: str, token: str) -> Any:
    """The default fetcher: a GET with the EHR's token (:func:`get_json`); a key repeated
    in one object is refused (which of two ``entry`` members is the answer is unknown)."""
    return get_json(url, bearer=token, accept="application/fhir+json", unique_keys=True)


@dataclass(frozen=True, slots=True)
class CdsContext:
    """What a service call needs besides the request body."""

    fhir: FhirContext
    recording: Recording
    cds: CdsStore
    signer: LinkSigner
    #: Base URL clients reach this deployment at (report links, ``source.url``).
    base_url: str
    report_link_seconds: int
    intake_app_url: str
    #: The registered EHR making the call (its id; its tenant is the recording's).
    ehr_id: str
    fetch: Fetcher = fetch_from_ehr
    #: Noted as the call goes; the view keeps it to audit a call that fails.
    trail: CdsTrail = field(default_factory=CdsTrail)


@dataclass(frozen=True, slots=True)
class CdsAnswer:
    """A service call's JSON body, and the triage behind it (None: no intake)."""

    body: dict[str, Any]
    outcome: Outcome | None


def _precondition(message: str, expression: str) -> PreconditionFailedError:
    return PreconditionFailedError([Issue(IssueType.PROCESSING, message, (expression,))], message)


def _base_or_none(url: str | None) -> str | None:
    """``url`` as :func:`fhir_base` spells it; None when it is none or not a usable base."""
    if url is None:
        return None
    try:
        return fhir_base(url)
    except ValueError:
        return None


def _same_patient(intake: dict[str, Any], hook: HookRequest, expression: str) -> dict[str, Any]:
    """The intake, its ``subject`` checked against ``context.patientId`` (412 otherwise).

    Results filed under the wrong patient are worse than no result: the subject must
    be ``Patient/<patientId>``, relative, or absolute on the request's ``fhirServer``
    (the bases compared in their normal form; then made relative, as ``$triage``
    needs it).
    """
    where = f"{expression}.subject.reference"
    subject = intake.get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    wanted = f"Patient/{hook.patient_id}"
    if not isinstance(reference, str):
        raise _precondition(
            "the intake names no subject, so it cannot be tied to the patient in context", where
        )
    if reference == wanted:
        return intake
    server = _base_or_none(hook.fhir_server)
    suffix = f"/{wanted}"
    on_server = reference.endswith(suffix) and (
        _base_or_none(reference.removesuffix(suffix)) == server
    )
    if server is not None and on_server:
        relative = copy.deepcopy(intake)
        relative["subject"]["reference"] = wanted
        return relative
    raise _precondition(
        "the intake's subject is not the patient in context (context.patientId); it is not "
        "triaged into this patient's chart",
        where,
    )


def _registered_server(fhir_server: str, ctx: CdsContext) -> str:
    """The request's ``fhirServer`` as registered for the calling EHR; 412 when it is not.

    Nothing is fetched from a server the operator did not register for this EHR: else
    any EHR could make this server send requests, and the EHR's token, anywhere
    (loopback ports, metadata addresses, internal hosts, another EHR's server). An EHR
    without registered servers gets the 412 whenever it relies on ``fhirServer``.
    """
    server = _base_or_none(fhir_server)
    ehr = ctx.cds.by_id(ctx.ehr_id)
    if server is None or ehr is None or server not in ehr.fhir_servers:
        raise _precondition(
            "fhirServer is not a FHIR server registered for this EHR, so the intake is not "
            "fetched from it: send the intake as prefetch.intake, or have the operator register "
            f"its base URL ({REGISTER_HINT}; registering again replaces the list)",
            "fhirServer",
        )
    return server


def _intake(hook: HookRequest, ctx: CdsContext) -> tuple[dict[str, Any] | None, str]:
    """(the intake or None, the expression naming where it came from).

    A prefetch that reports a failed query (an OperationOutcome) is not "no intake":
    the search is run on the EHR's server instead, or the call is a 412. A malformed
    prefetch or search answer is a 412 naming its element (:mod:`.searchset`).
    """
    where = f"prefetch.{PREFETCH_KEY}"
    if hook.prefetched:
        if hook.prefetch is None:  # the EHR's search found nothing: no intake
            return None, where
        answer = read_search_answer(hook.prefetch, expression=where, inside=where)
        if not answer.failed:  # else the client's query failed: ask its server
            ctx.trail.intake = _on_server(_base_or_none(hook.fhir_server), answer.intake)
            return answer.intake, where
    if hook.fhir_server is None or hook.access_token is None:
        raise _precondition(
            f"prefetch.{PREFETCH_KEY} is absent or reports a failed query (an "
            "OperationOutcome), and no fhirServer with fhirAuthorization was given: the "
            "intake cannot be obtained",
            where,
        )
    server = _registered_server(hook.fhir_server, ctx)
    query = urlencode(
        {
            "patient": hook.patient_id,
            "questionnaire": cs.questionnaire_url(ctx.fhir.canonical_base),
            "status": "completed",
            "_sort": "-authored",
            "_count": "1",
        }
    )
    url = f"{server}/QuestionnaireResponse?{query}"
    ctx.trail.fetched = url  # sent with the EHR's token: audited, whatever comes back
    try:
        found = ctx.fetch(url, hook.access_token)
    except FetchError as exc:
        raise _precondition(f"the EHR's FHIR server {exc}", "fhirServer") from None
    # JSON null is no search answer (a prefetch of null is; a server never answers one).
    answer = read_search_answer(found, expression="fhirServer", inside="Bundle")
    if answer.failed:
        raise _precondition("the EHR's FHIR server answered an OperationOutcome", "fhirServer")
    ctx.trail.intake = _on_server(server, answer.intake)
    return answer.intake, "QuestionnaireResponse"


def _on_server(server: str | None, intake: Mapping[str, Any] | None) -> str | None:
    """The intake's absolute reference on the EHR's FHIR server, when both are known.

    Absolute: a relative ``QuestionnaireResponse/<id>`` in our AuditEvent would name
    one of this server's own resources.
    """
    resource_id = None if intake is None else intake.get("id")
    if server is None or not isinstance(resource_id, str) or not FHIR_ID.fullmatch(resource_id):
        return None
    return f"{server}/QuestionnaireResponse/{resource_id}"


def call_service(payload: Mapping[str, Any], ctx: CdsContext) -> CdsAnswer:
    """Answer one ``patient-view`` call: ``{"cards": [card]}``, or ``{"cards": []}``.

    No intake (prefetch ``null``, an empty search): no card. The intake of another
    patient: 412. Not triageable: the ``$triage`` 422. Else the card, its assessment
    stored and the card's uuid tied to it (for feedback).
    """
    hook = parse_hook_request(payload)
    ctx.trail.patient_id = hook.patient_id
    intake, expression = _intake(hook, ctx)
    if intake is None:
        _audit(ctx, 200)
        return CdsAnswer({"cards": []}, None)
    intake = _same_patient(intake, hook, expression)
    kept: list[Outcome] = []

    def run() -> Outcome:
        outcome = triage_questionnaire_response(intake, context=ctx.fhir)
        outcome = dataclasses.replace(outcome, source="cds-hooks")
        kept.append(outcome)
        return outcome

    # The hook call's id keys its assessment: a call the EHR sends again (its answer
    # lost, a timeout) is answered from the assessment stored the first time, never
    # stored twice. hookInstance is a UUID per call (CDS Hooks 2.0), so one key of
    # the tenant's (Idempotency-Key) namespace per call, apart from the API's keys.
    recording = dataclasses.replace(
        ctx.recording, idempotency_key=f"{HOOK_INSTANCE_KEY}{hook.hook_instance}"
    )

    def store(recording: Recording) -> StoredTriage:
        return stored_triage(
            run,
            recording=recording,
            source="cds-hooks",
            fhir_version=DEFAULT_FHIR_VERSION,  # CDS Hooks carries FHIR R4
            bundle_type="collection",
            payload=intake,
        )

    try:
        stored = store(recording)
    except IdempotencyKeyReusedError:
        # The same hookInstance with another intake: not a resent call but a new one
        # (an EHR reusing ids). Triaged and stored on its own: a card is never withheld.
        recording = dataclasses.replace(recording, idempotency_key=None)
        stored = store(recording)
    if stored.stored:
        ctx.trail.bundle_id = stored.bundle_id
    # A replayed call did not run the triage: run it again for the card (the engine is
    # deterministic; the stored assessment and its Bundle are the first call's).
    outcome = kept[0] if kept else run()
    report_url = None
    now = int(time.time())
    if stored.stored:
        report_url = report_link(
            ctx.signer, ctx.base_url, stored.bundle_id, now=now, seconds=ctx.report_link_seconds
        )
    card_uuid = str(uuid.uuid4())
    # Shown on the card only when it is a date-time: $triage ignores authored (it stamps
    # its own), so anything else would reach the EHR's screen as it was sent.
    authored = intake.get("authored")
    if not isinstance(authored, str) or parse_timestamp(authored) is None:
        authored = None
    body = card(
        outcome.result,
        outcome.request,
        uuid=card_uuid,
        authored=authored,
        status=intake.get("status"),
        gates=outcome.gates,
        canonical_base=ctx.fhir.canonical_base,
        links=CardLinks(
            report_url=report_url,
            intake_app_url=ctx.intake_app_url or None,
            base_url=ctx.base_url,
        ),
    )
    tenant = recording.exchange.tenant
    if tenant is None:  # the JWT gate always sets one; never store a card for nobody
        raise RuntimeError("a CDS call without an authenticated tenant")
    # Not kept when the assessment was erased meanwhile: feedback on it is then refused.
    ctx.cds.add_card(
        CardRecord(
            uuid=card_uuid,
            tenant=tenant,
            ehr_id=ctx.ehr_id,
            assessment_id=stored.bundle_id,
            hook_instance=hook.hook_instance,
            indicator=body["indicator"],
            issued_us=time.time_ns() // 1000,
        ),
        stored=stored.stored,
    )
    _audit(ctx, 200)
    return CdsAnswer({"cards": [body]}, outcome)


def _unknown_cards(entries: Sequence[FeedbackEntry], known: Container[str]) -> NotFoundError:
    """The 404 naming each entry whose card this tenant does not have (any more)."""
    return NotFoundError(
        [
            Issue(
                IssueType.NOT_FOUND,
                f"feedback[{index}].card: no card {entry.card[:64]!r} was given to this "
                "EHR's tenant",
                (f"feedback[{index}].card",),
            )
            for index, entry in enumerate(entries)
            if entry.card not in known
        ],
        "unknown card",
    )


def _audit(ctx: CdsContext, status: int) -> None:
    audit_service_call(ctx.recording.store, ctx.recording.exchange, ctx.trail, status)


def record_feedback(
    payload: Mapping[str, Any], *, cds: CdsStore, exchange: Exchange, store: Any
) -> int:
    """Store feedback about this tenant's cards (all entries or none) and audit each.

    A card uuid this tenant was never given (or another tenant's, or one whose
    assessment was erased, which took its cards) is a 404 naming it, audited as a
    refusal. Each stored entry's AuditEvent is an ``operation`` on the card's
    assessment Bundle.
    """
    tenant = exchange.tenant
    if tenant is None:
        raise RuntimeError("feedback without an authenticated tenant")
    entries = parse_feedback(payload)
    cards = cds.cards([entry.card for entry in entries], tenant=tenant)
    if any(entry.card not in cards for entry in entries):
        raise _unknown_cards(entries, cards)
    received = time.time_ns() // 1000
    records = [
        FeedbackRecord(
            id=str(uuid.uuid4()),
            tenant=tenant,
            card_uuid=entry.card,
            assessment_id=cards[entry.card].assessment_id,
            outcome=entry.outcome,
            outcome_us=entry.outcome_us,
            received_us=received,
            body_json=orjson.dumps(entry.body),
        )
        for entry in entries
    ]
    missing = cds.add_feedback(records)
    if missing:  # erased since it was looked up: nothing was stored
        raise _unknown_cards(entries, cards.keys() - missing)
    for record in records:
        audit(store, exchange, "operation", 200, entity=("Bundle", record.assessment_id))
    return len(records)


__all__ = [
    "EHR_SEARCH",
    "CdsAnswer",
    "CdsContext",
    "CdsTrail",
    "Fetcher",
    "InvalidCdsRequestError",
    "audit_service_call",
    "call_service",
    "fetch_from_ehr",
    "record_feedback",
]
