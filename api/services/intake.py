"""Intake links (issue 14): a partner hands a parent a one-patient, single-use form link.

``create_intake_link`` (``POST /v1/intake-links``, authenticated) stores a link
for the caller's tenant and signs its URL (purpose INTAKE); the signed URL is the
only credential the browser holds. ``open_intake_link`` checks a link before the
page is served; ``submit_intake`` triages the posted QuestionnaireResponse with
THE SAME use cases as ``$triage`` (:func:`triage_questionnaire_response`, stored
by :func:`stored_triage`) under the link's tenant and patient.

Order of a submission, chosen so that a mistake costs nothing and a result is
never filed twice or under another patient: the signature, then the link row
(unused, unexpired), then the subject (forced from the link; another one is
refused), then the triage itself (an invalid form is a 422 and does NOT use the
link up, so the parent can correct it), then the claim (one conditional UPDATE:
of two concurrent submissions exactly one wins), then the store. If storing
fails, the claim is released. A refused link (altered, expired, unknown, used) is
one NotFoundError whose text says nothing about which it was. No Flask.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from api.fhir import FhirContext, Issue
from api.fhir.codesystems import QUESTIONNAIRE_ID
from api.fhir.versions import DEFAULT_FHIR_VERSION
from api.services.assessments import Recording, stored_triage
from api.services.errors import InvalidInputError, NotFoundError
from api.services.links import INTAKE, LinkSigner
from api.services.outcome import Outcome
from api.services.reports import report_link
from api.services.triage import triage_questionnaire_response
from api.storage import Store
from api.storage.assessments import Exchange, audit
from api.storage.intake_links import (
    IntakeLinkRow,
    add_link,
    attach_assessment,
    claim_link,
    find_link,
    release_link,
)
from schemas import InvalidRequestError, IssueType
from schemas.intake_links import validate_intake_link
from triage.result import Level

#: The AuditEvent entity type of an intake link: it is what SDC models as a Task
#: asking for a Questionnaire to be completed (the link has no FHIR read of its own).
AUDIT_TYPE = "Task"
#: Who acts on an intake page: the browser holding the signed link (the AuditEvent's
#: requesting agent; the API client that issued the link is named as a second agent).
LINK_AGENT = "Signed intake link (browser, no API key)"
#: The one text of every refused link: it must not tell expired from used or forged.
REFUSED = "this intake link cannot be used: it is not valid, has expired or was already used"
#: The errors the page and submission use cases audit before they raise them.
AUDITED_REFUSALS = (NotFoundError, InvalidInputError)
#: Where the browser goes after a patient-facing submission.
THANK_YOU_PATH = "/intake/thank-you"
#: A patient-facing page shows no result, except what must be done now: the answers of
#: an emergency level tell the person to act before anyone calls back (clinical safety
#: over the partner's "thank-you only"). The parameter is not signed: changed by hand it
#: only changes which warning the page shows, and reveals nothing.
URGENT_PARAMETER = "act"
URGENT_NOW = {Level.EMERGENCY_AMBULANCE: "ambulance", Level.EMERGENCY: "emergency"}
_QR = "QuestionnaireResponse"


@dataclass(frozen=True, slots=True)
class IntakeDeployment:
    """What the intake use cases need of the deployment (built by the view from AppState)."""

    store: Store
    signer: LinkSigner
    context: FhirContext
    #: False: "store nothing" (the submission is triaged, no report can be opened).
    keep: bool
    report_link_seconds: int
    #: Whether the API client that made a link may still act (not revoked): a link files
    #: its submission as that client, so revoking a client ends its links too.
    client_active: Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class CreatedIntakeLink:
    """The answer to ``POST /v1/intake-links``."""

    id: str
    url: str
    expires: int
    show: str
    patient_reference: str | None

    def as_json(self) -> dict[str, Any]:
        expires_at = datetime.fromtimestamp(self.expires, UTC).isoformat().replace("+00:00", "Z")
        body: dict[str, Any] = {
            "id": self.id,
            "url": self.url,
            "expires": expires_at,
            "expires_unix": self.expires,
            "show": self.show,
        }
        if self.patient_reference is not None:
            body["patient"] = {"reference": self.patient_reference}
        return body


@dataclass(frozen=True, slots=True)
class SubmittedIntake:
    """A stored submission: where the browser goes next, and the triage behind it."""

    location: str
    bundle_id: str
    outcome: Outcome | None


def intake_questionnaire(context: FhirContext) -> dict[str, Any]:
    """The product's own intake Questionnaire (R4), as the page renders it."""
    body = context.catalog.body("Questionnaire", QUESTIONNAIRE_ID)
    if body is None:  # pragma: no cover (the catalog always publishes it)
        raise RuntimeError("the intake Questionnaire is not published")
    return orjson.loads(body)


def intake_url(signer: LinkSigner, base: str, link_id: str, expires: int) -> str:
    """``{base}/intake/{id}?expires=&signature=`` signed for INTAKE."""
    return f"{base}/intake/{link_id}?{signer.sign(INTAKE, link_id, expires).query}"


def _refused() -> NotFoundError:
    return NotFoundError([Issue(IssueType.NOT_FOUND, REFUSED)], REFUSED)


def create_intake_link(
    deployment: IntakeDeployment,
    exchange: Exchange,
    payload: Any,
    *,
    base: str,
    now_s: int,
) -> CreatedIntakeLink:
    """Store and sign a new link for the caller's tenant (audited as a Task create)."""
    if exchange.tenant is None or exchange.client_id is None:
        raise RuntimeError("an intake link without an authenticated client")
    try:
        loaded = validate_intake_link(payload)
    except InvalidRequestError as exc:
        raise InvalidInputError(
            [Issue(issue.code, issue.diagnostics, (issue.path,)) for issue in exc.issues],
            str(exc),
        ) from None
    link_id = str(uuid.uuid4())
    expires = now_s + loaded["expires_in"]
    add_link(
        deployment.store,
        IntakeLinkRow(
            id=link_id,
            tenant=exchange.tenant,
            client=exchange.client_id,
            subject=loaded["patient_reference"],
            show=loaded["show"],
            created_us=now_s * 1_000_000,
            expires_us=expires * 1_000_000,
        ),
    )
    audit(deployment.store, exchange, "create", 201, entity=(AUDIT_TYPE, link_id))
    return CreatedIntakeLink(
        id=link_id,
        url=intake_url(deployment.signer, base, link_id, expires),
        expires=expires,
        show=loaded["show"],
        patient_reference=loaded["patient_reference"],
    )


def _usable_link(
    deployment: IntakeDeployment,
    exchange: Exchange,
    action: str,
    *,
    link_id: str,
    expires: object,
    signature: object,
    now_s: int,
) -> IntakeLinkRow:
    """The link's row when the signature holds, it is unused and unexpired, and the
    client that made it is not revoked.

    Otherwise the refusal (NotFoundError), audited as a 404 ``action`` first: the
    page and its submission refuse alike, and no refusal goes unrecorded.
    """
    row = _verified_link(
        deployment, link_id=link_id, expires=expires, signature=signature, now_s=now_s
    )
    if row is not None:
        return row
    audit(deployment.store, _unverified(exchange), action, 404)
    raise _refused()


def _verified_link(
    deployment: IntakeDeployment, *, link_id: str, expires: object, signature: object, now_s: int
) -> IntakeLinkRow | None:
    """The link's row when it may be used (see :func:`_usable_link`), else None."""
    if not deployment.signer.verify(INTAKE, link_id, expires, signature, now=now_s):
        return None  # checked before the store is touched: the id is the signer's
    row = find_link(deployment.store, link_id)
    if (
        row is not None
        and row.used_us is None
        and row.expires_us > now_s * 1_000_000
        and deployment.client_active(row.client)
    ):
        return row
    return None


def _unverified(exchange: Exchange) -> Exchange:
    """The audit facts of a browser whose link was refused: no tenant, no client, no
    entity (nothing of an unverified link is trusted; operators see the attempt)."""
    return dataclasses.replace(exchange, tenant=None, client_id=None, agent=LINK_AGENT)


def _as_link(exchange: Exchange, row: IntakeLinkRow) -> Exchange:
    """The audit facts of a browser holding a valid link: the browser is the requestor,
    under the link's tenant; the client that issued the link is a second agent, and the
    link (``Task/<id>``) is named on every event."""
    return dataclasses.replace(
        exchange,
        tenant=row.tenant,
        client_id=None,
        agent=LINK_AGENT,
        issued_by=row.client,
        via=(AUDIT_TYPE, row.id),
    )


def audit_failed_intake(
    deployment: IntakeDeployment,
    exchange: Exchange,
    action: str,
    status: int,
    *,
    link_id: str,
    expires: object,
    signature: object,
    now_s: int,
) -> None:
    """Audit a page view or submission that failed outside the use cases.

    A body the HTTP edge refused (400 malformed JSON, 413 too large, 415 wrong type) or
    a server failure: under the link's tenant, naming ``Task/<id>``, when the link may
    be used; otherwise as a refused link is (no tenant, no entity).
    """
    row = _verified_link(
        deployment, link_id=link_id, expires=expires, signature=signature, now_s=now_s
    )
    if row is None:
        audit(deployment.store, _unverified(exchange), action, status)
    else:
        audit(
            deployment.store, _as_link(exchange, row), action, status, entity=(AUDIT_TYPE, row.id)
        )


def open_intake_link(
    deployment: IntakeDeployment,
    exchange: Exchange,
    *,
    link_id: str,
    expires: object,
    signature: object,
    now_s: int,
) -> IntakeLinkRow:
    """The link behind an intake page (audited as a Task read); NotFoundError otherwise."""
    row = _usable_link(
        deployment,
        exchange,
        "read",
        link_id=link_id,
        expires=expires,
        signature=signature,
        now_s=now_s,
    )
    audit(deployment.store, _as_link(exchange, row), "read", 200, entity=(AUDIT_TYPE, row.id))
    return row


def _subject_issue(message: str, expression: str) -> InvalidInputError:
    return InvalidInputError([Issue(IssueType.VALUE, message, (expression,))], message)


def forced_subject(body: Mapping[str, Any], subject: str | None) -> dict[str, Any]:
    """The QuestionnaireResponse with its subject set from the link; a different one refused.

    The link decides the patient, never the browser: a posted ``subject`` must be the
    link's (and with no patient on the link, none may be posted), and with no patient
    on the link a ``patient.reference`` answer is refused too. With a patient on the
    link, the ``$triage`` reader checks that any ``patient.reference`` answer agrees.
    """
    if body.get("resourceType") != _QR:
        raise _subject_issue("the intake page posts a QuestionnaireResponse", f"{_QR}.resourceType")
    forced = dict(body)
    sent = body.get("subject")
    if sent is not None:
        reference = sent.get("reference") if isinstance(sent, Mapping) else None
        if subject is None or reference != subject:
            raise _subject_issue(
                "the subject differs from the patient this intake link was made for; "
                "leave subject out (the link names the patient)",
                f"{_QR}.subject",
            )
    if subject is not None:
        forced["subject"] = {"reference": subject}
        return forced
    items = body.get("item")
    for index, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, Mapping) and item.get("linkId") == "patient.reference":
            raise _subject_issue(
                "this intake link names no patient, so no patient reference may be answered",
                f"{_QR}.item[{index}]",
            )
    return forced


def submit_intake(
    deployment: IntakeDeployment,
    exchange: Exchange,
    *,
    link_id: str,
    expires: object,
    signature: object,
    body: Mapping[str, Any],
    base: str,
    now_s: int,
) -> SubmittedIntake:
    """Triage and store one submission of an intake link (see the module docstring).

    The refusals it raises (:data:`AUDITED_REFUSALS`: a refused link, a form the triage
    refuses) are audited first; the view marks the request audited when it sees one.
    """
    row = _usable_link(
        deployment,
        exchange,
        "create",
        link_id=link_id,
        expires=expires,
        signature=signature,
        now_s=now_s,
    )
    as_link = _as_link(exchange, row)
    try:
        outcome = triage_questionnaire_response(
            forced_subject(body, row.subject),
            context=deployment.context,
            fhir_version=DEFAULT_FHIR_VERSION,
            bundle_type="collection",
        )
    except InvalidInputError:
        audit(deployment.store, as_link, "create", 422, entity=(AUDIT_TYPE, row.id))
        raise
    claimed_us = now_s * 1_000_000
    if not claim_link(deployment.store, row.id, now_us=claimed_us):
        audit(deployment.store, as_link, "create", 404, entity=(AUDIT_TYPE, row.id))
        raise _refused()

    def signed_report(bundle_id: str) -> str:
        return report_link(
            deployment.signer,
            base,
            bundle_id,
            now=now_s,
            seconds=deployment.report_link_seconds,
        )

    try:
        stored = stored_triage(
            lambda: outcome,
            recording=Recording(
                store=deployment.store,
                keep=deployment.keep,
                exchange=as_link,
                canonical_base=deployment.context.canonical_base,
                # The Bundle announces its report like every stored triage (Bundle.link).
                report_link=signed_report if deployment.keep else None,
            ),
            source="fhir",
            fhir_version=DEFAULT_FHIR_VERSION,
            bundle_type="collection",
            payload=body,
        )
    except BaseException:
        release_link(deployment.store, row.id, claimed_us=claimed_us)
        raise
    if stored.stored:
        attach_assessment(deployment.store, row.id, stored.bundle_id)
    if row.show == "report" and stored.report_url is not None:
        location = stored.report_url
    else:  # patient-facing, or "store nothing" (no report to open)
        location = f"{base}{THANK_YOU_PATH}"
        urgent = URGENT_NOW.get(outcome.result.level)
        if urgent is not None:
            location = f"{location}?{URGENT_PARAMETER}={urgent}"
    return SubmittedIntake(location=location, bundle_id=stored.bundle_id, outcome=outcome)


__all__ = [
    "AUDITED_REFUSALS",
    "AUDIT_TYPE",
    "LINK_AGENT",
    "REFUSED",
    "THANK_YOU_PATH",
    "URGENT_NOW",
    "URGENT_PARAMETER",
    "CreatedIntakeLink",
    "IntakeDeployment",
    "SubmittedIntake",
    "audit_failed_intake",
    "create_intake_link",
    "forced_subject",
    "intake_questionnaire",
    "intake_url",
    "open_intake_link",
    "submit_intake",
]
