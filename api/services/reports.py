"""The clinician report of one stored assessment, opened from a signed link (issue 14).

A browser holds no API key: the signed link (purpose ``REPORT``, subject = the
Bundle id) is the credential. The signature is checked *before* anything is
read; only then is the assessment read by id across tenants, and the read is
audited under the assessment's own tenant with the link as the agent. An
altered, expired or unknown link raises :class:`ReportNotFoundError`, which
the page answers with one 404 that names nothing.

What the page shows is built here as plain data (:class:`Report`), worded with
:mod:`triage.wording`: the result is rebuilt by re-running the engine on the
stored request when the stored knowledge-base version is the running one (and
the rebuilt result agrees with what was issued); otherwise, or on any
disagreement, the page shows the stored result as it was issued. No Flask here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson

from api.fhir.questionnaire_response import GATE_OF, gate_answers
from api.services.links import REPORT, LinkSigner
from api.services.outcome import CDS_HOOKS_SOURCE
from api.storage import Store
from api.storage.assessments import REPORT_RELATION, Exchange, audit
from triage import KNOWLEDGE_BASE_VERSION, evaluate, wording
from triage.engine import flatten
from triage.knowledge_base import ADVICE, FACTORS, RULES
from triage.result import (
    Answer,
    Level,
    Likelihood,
    TriageResult,
)
from triage.vocabulary import ITEMS, Kind, iter_items

#: Who opened a report, as the AuditEvent's requesting agent.
LINK_AGENT = "Signed clinician-report link (browser, no API key)"
#: The Bundle.link relation and the HTTP Link relation of the report: an HTML
#: rendering of the same assessment (IANA "alternate", valid in FHIR R4 and R5).
LINK_RELATION = REPORT_RELATION
#: PROTOCOL.md §1, the decision-support disclaimer every report carries.
DISCLAIMER = (
    "Decision support for clinicians and clinical partner apps. It triages people with "
    "involuntary muscle twitching, tics, spasms or cramps around exercise and sport; it "
    "does not diagnose, and it never overrides a clinician."
)
NOT_RECORDED = "Not recorded"

#: When to act, per level (PROTOCOL.md §2 meanings as a time frame).
TIME_FRAME: dict[Level, str] = {
    Level.EMERGENCY_AMBULANCE: "Now",
    Level.EMERGENCY: "Now",
    Level.CONSULTATION_24: "Within 24 hours (today or tomorrow)",
    Level.CONSULTATION: "Within days, not months",
    Level.SELF_CARE: "No appointment needed now; the safety net says when to escalate",
}
#: The advice that says what to do now at each level (its text heads the banner).
LEVEL_ADVICE: dict[Level, str] = {
    Level.EMERGENCY_AMBULANCE: "ADV-CALL-AMBULANCE",
    Level.EMERGENCY: "ADV-GO-TO-ED",
    Level.CONSULTATION_24: "ADV-SEE-WITHIN-24H",
    Level.CONSULTATION: "ADV-SEE-CLINICIAN",
}

#: The same advice worded for the person and their family, to hand over. The
#: clinician's text stays the reference: an advice without an entry here is
#: handed over in the clinician's words (never dropped).
PATIENT_ADVICE: dict[str, str] = {
    "ADV-CALL-AMBULANCE": "Call an ambulance now and stay with the person until help arrives.",
    "ADV-GO-TO-ED": "Go to a hospital emergency department now.",
    "ADV-SEE-WITHIN-24H": "See a doctor or nurse today or tomorrow.",
    "ADV-SEE-CLINICIAN": "Book an appointment with a doctor or nurse.",
    "ADV-CHECK-GLUCOSE": (
        "Check your blood sugar now. If it is below 4 mmol/L, take 15 g of sugar (for "
        "example a glass of fruit juice) and check again after 15 minutes. Low sugar can "
        "also come later, during the night."
    ),
    "ADV-COOL-NOW": ("Cool the person down at once, best in cold water, while you wait for help."),
    "ADV-STOP-TRAINING": "Do not train or compete until a doctor or nurse has seen you.",
    "ADV-NO-SAME-DAY-RETURN": (
        "Do not go back to sport on the day of the knock or fall. Signs can start hours or "
        "days later: if headache, dizziness, feeling sick, confusion, balance or eyesight "
        "problems appear, stop and get checked before going back."
    ),
    "ADV-DO-NOT-DRINK-MORE": "Do not drink more water until a doctor has checked you.",
    "ADV-HYDRATE": (
        "Drink when you are thirsty, not more. After heavy sweating a sports drink with "
        "salts helps."
    ),
    "ADV-REDUCE-LOAD": (
        "Make training sessions shorter, take real breaks, build up slowly and keep rest days."
    ),
    "ADV-WARM-UP-COOL-DOWN": (
        "Warm up before training and cool down after it; stretch, massage or use a foam roller."
    ),
    "ADV-NUTRITION": (
        "Eat foods rich in potassium, magnesium and calcium (bananas, nuts, dairy, green "
        "vegetables), and eat 1 to 3 hours before training."
    ),
    "ADV-CUT-STIMULANTS": (
        "Have less coffee, cola and alcohol. Children and teenagers should not have energy drinks."
    ),
    "ADV-STRESS-SLEEP": "Get enough sleep; relaxation and breathing exercises help with stress.",
    "ADV-MEDICATION-REVIEW": (
        "Talk to the doctor who prescribed your medicines. Do not stop a prescribed medicine "
        "on your own."
    ),
    "ADV-LABS": "Your doctor may arrange blood and urine tests.",
    "ADV-TIC-GUIDANCE": (
        "Tics often get worse when tired or excited. Try not to draw attention to them, and "
        "let the school know."
    ),
    "ADV-SAFETY-NET": (
        "Call an ambulance for: collapse or fainting during exercise, a fit or blank spell "
        "with jerking, chest pain or pressure, jaw or arm pain with exercise, trouble "
        "breathing or swallowing, confusion or being hard to wake, weakness of one side or a "
        "drooping face, or a neck stuck twisted or eyes forced upward. Get seen the same day "
        "for: new weakness, severe muscle pain or swelling, urine the colour of cola, feeling "
        "very hot or being sick in the heat, headache, being sick or swollen hands after long "
        "exercise (and drink no more water), or after any knock or fall: headache, being "
        "sick, dizziness, balance or eyesight problems (these can start days later). See a "
        "doctor or nurse if the twitching lasts more than 2 weeks (tics: if frequent, getting "
        "worse, painful or getting in the way), spreads, keeps coming back, disturbs sleep or "
        "gets in the way of daily life."
    ),
}
#: Variant clinician texts (a more specific text when a rule fired) → their hand-over text.
PATIENT_ADVICE_VARIANTS: dict[str, str] = {
    "Book an appointment with a clinician within 2 weeks.": (
        "Book an appointment with a doctor or nurse within 2 weeks."
    ),
}


class ReportNotFoundError(Exception):
    """The link is altered, expired or names no stored assessment (one 404, no details)."""


# --- links ---------------------------------------------------------------------------


def _subject(bundle_id: str, holder: str | None) -> str:
    """What a report link signs: the assessment, and the API client it was handed to
    (a space never occurs in a FHIR id, so the two cannot run together)."""
    return bundle_id if holder is None else f"{bundle_id} {holder}"


def report_link(
    signer: LinkSigner,
    base: str,
    bundle_id: str,
    *,
    now: int,
    seconds: int,
    holder: str | None = None,
) -> str:
    """The signed URL of an assessment's report, valid ``seconds`` from ``now``.

    ``holder``: the API client the link is handed to (the one that triaged, or one of
    the tenant's clients reading the assessment again). The link then lives as long as
    that client does: revoking it ends the links it was handed, and a link handed to
    another client of the tenant still opens after the filing client is revoked.
    Without a holder (CDS Hooks cards, intake pages) the assessment's issuer decides.
    """
    link = signer.sign(REPORT, _subject(bundle_id, holder), now + seconds)
    query = link.query if holder is None else f"{link.query}&holder={quote(holder, safe='')}"
    return f"{base}/reports/{quote(bundle_id, safe='')}?{query}"


def link_header(url: str) -> str:
    """The HTTP ``Link`` header value naming the report of an assessment."""
    return f'<{url}>; rel="{LINK_RELATION}"; type="text/html"'


# --- what the page shows -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Banner:
    """The urgency banner: level, time frame and what to do now."""

    code: str
    display: str
    meaning: str
    time_frame: str
    do_now: str
    #: Unknown screen items (RF-SCREEN-INCOMPLETE): the level may rise once they are asked.
    screen_unknown: int


@dataclass(frozen=True, slots=True)
class RedFlag:
    rule_id: str
    level_code: str
    level: str
    display: str
    rationale: str
    source: str
    condition: str | None
    triggers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Decisive:
    """An unknown screen item, asked as a question, and what one answer to it would do."""

    link_id: str
    question: str
    #: "If yes", "If the answer is 40 °C", "If the answer includes Anticoagulant"...
    condition: str | None
    level_code: str | None
    level: str | None
    #: Whether that answer would make the case more urgent than it is now.
    escalates: bool
    would_fire: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FactorLine:
    points: int
    label: str
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Factor:
    code: str
    display: str
    rationale: str
    points: int
    likelihood: str
    lines: tuple[FactorLine, ...]


@dataclass(frozen=True, slots=True)
class AdviceItem:
    code: str
    display: str
    clinician: str
    patient: str


@dataclass(frozen=True, slots=True)
class GivenAnswer:
    label: str
    answer: str


@dataclass(frozen=True, slots=True)
class Answers:
    """The request's answers, split as a clinician reads them."""

    yes: tuple[str, ...]
    no: tuple[str, ...]
    other: tuple[GivenAnswer, ...]
    #: Unknown items of the red-flag screen (labels), in screen order.
    unknown_screen: tuple[str, ...]
    #: Other yes/no questions nobody answered (not needed by the screen for this case).
    unknown_other: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the report page shows (free text escaped by the template, not here)."""

    assessment_id: str
    issued_utc: str
    issued_iso: str
    knowledge_base_version: str
    running_knowledge_base_version: str
    software_version: str
    #: True when the engine re-ran on the stored request (details and decisive questions).
    rebuilt: bool
    banner: Banner
    red_flags: tuple[RedFlag, ...]
    decisive: tuple[Decisive, ...]
    factors: tuple[Factor, ...]
    advice: tuple[AdviceItem, ...]
    answers: Answers
    respondent: str
    patient_reference: str | None
    age: str | None
    sex: str | None
    activity: str | None
    disclaimer: str = DISCLAIMER


# --- opening a report ------------------------------------------------------------------


def open_report(
    store: Store,
    signer: LinkSigner,
    exchange: Exchange,
    bundle_id: str,
    *,
    expires: object,
    signature: object,
    now: int,
    client_active: Callable[[str], bool],
    ehr_registered: Callable[[str], bool],
    holder: object = None,
    holder_tenant: Callable[[str], str | None] = lambda _client: None,
) -> Report:
    """The report of ``bundle_id`` if the link verifies; ReportNotFoundError otherwise.

    Whoever the assessment was issued to must still be able to act (``client_active``
    for an API client, ``ehr_registered`` for the EHR of a CDS Hooks call): revoking a
    client or removing an EHR ends the report links it was handed, as it ends its
    intake links, instead of leaving them open for the rest of their lifetime (a week
    by default). The signature is checked before the store is touched. A refused link is
    audited without a tenant or entity (operators see attempts; nothing from an
    unverified link is trusted); a read is audited under the assessment's tenant.
    """
    anonymous = dataclasses.replace(exchange, tenant=None, client_id=None, agent=LINK_AGENT)
    if holder is not None and not (isinstance(holder, str) and 0 < len(holder) <= 64):
        audit(store, anonymous, "read", 404)
        raise ReportNotFoundError
    subject = _subject(bundle_id, holder)
    if not signer.verify(REPORT, subject, expires, signature, now=now):
        audit(store, anonymous, "read", 404)
        raise ReportNotFoundError
    columns = store.assessment_columns(bundle_id)
    if holder is None:
        allowed = columns is not None and _issuer_active(columns, client_active, ehr_registered)
    else:  # the holder must still be an active client of the assessment's tenant
        allowed = columns is not None and holder_tenant(holder) == columns["tenant"]
    if columns is None or not allowed:
        audit(store, anonymous, "read", 404)
        raise ReportNotFoundError
    reader = dataclasses.replace(anonymous, tenant=columns["tenant"])
    audit(store, reader, "read", 200, entity=("Bundle", bundle_id))
    return build_report(columns)


def _issuer_active(
    columns: Mapping[str, Any],
    client_active: Callable[[str], bool],
    ehr_registered: Callable[[str], bool],
) -> bool:
    """Whether the client (or, for a CDS Hooks assessment, the EHR) an assessment was
    issued to may still act; an assessment of no client (stored before partner
    identity) has nobody to revoke."""
    client = columns["client"]
    if client is None:
        return True
    if columns["source"] == CDS_HOOKS_SOURCE:
        return ehr_registered(client)
    return client_active(client)


def build_report(columns: Mapping[str, Any]) -> Report:
    """The page of one stored assessment (its columns as :meth:`Store.assessment_columns`)."""
    request: dict[str, Any] = orjson.loads(columns["request_json"])
    summary: dict[str, Any] = orjson.loads(columns["result_json"])
    stored_version = columns["knowledge_base_version"]
    result = _rebuilt(request, summary) if stored_version == KNOWLEDGE_BASE_VERSION else None
    level = Level.from_code(summary["level"])
    issued = datetime.fromtimestamp(columns["issued_us"] / 1_000_000, tz=UTC)
    patient = request.get("patient") or {}
    activity = request.get("activity") or {}
    unanswered = tuple(summary["unanswered"])
    advice = _advice(result, summary)
    return Report(
        assessment_id=columns["id"],
        issued_utc=issued.strftime("%Y-%m-%d %H:%M:%S UTC"),
        issued_iso=issued.isoformat(timespec="seconds").replace("+00:00", "Z"),
        knowledge_base_version=stored_version,
        running_knowledge_base_version=KNOWLEDGE_BASE_VERSION,
        software_version=columns["software_version"],
        rebuilt=result is not None,
        banner=Banner(
            code=level.code,
            display=level.display,
            meaning=level.meaning,
            time_frame=_time_frame(level, advice),
            do_now=_do_now(level, advice),
            screen_unknown=len(unanswered),
        ),
        red_flags=_red_flags(result, summary),
        decisive=_decisive(result, unanswered, level),
        factors=_factors(result, summary),
        advice=advice,
        answers=_answers(request, unanswered, _stored_gates(columns["bundle_json"])),
        respondent=_respondent(request),
        patient_reference=patient.get("reference"),
        age=None
        if patient.get("age_years") is None
        else wording.answer_text("patient.age_years", patient["age_years"]),
        sex=None
        if patient.get("sex") is None
        else wording.answer_text("patient.sex", patient["sex"]),
        activity=activity.get("type"),
    )


def _rebuilt(request: Mapping[str, Any], summary: Mapping[str, Any]) -> TriageResult | None:
    """The engine's result for the stored request, if it agrees with what was issued.

    Same knowledge base, same request: the result must be the same. Should it
    ever differ, the page shows what was issued (the stored result), never a
    silently different answer.
    """
    result = evaluate(request)
    issued = (
        summary["level"],
        list(summary["rules"]),
        list(summary["advice"]),
        list(summary["unanswered"]),
        [[code, points] for code, points, _likelihood in summary["factors"]],
    )
    again = (
        result.level.code,
        list(result.rule_ids),
        list(result.advice_codes),
        list(result.unanswered),
        [[code, points] for code, points in result.factor_points],
    )
    return result if again == issued else None


def _time_frame(level: Level, advice: Sequence[AdviceItem]) -> str:
    if level is Level.CONSULTATION:
        for item in advice:
            if item.code == "ADV-SEE-CLINICIAN" and "within 2 weeks" in item.clinician:
                return "Within 2 weeks"
    return TIME_FRAME[level]


def _do_now(level: Level, advice: Sequence[AdviceItem]) -> str:
    code = LEVEL_ADVICE.get(level)
    for item in advice:
        if item.code == code:
            return item.clinician
    return level.meaning


_RULES = {rule.id: rule for rule in RULES}
_FACTORS = {factor.code: factor for factor in FACTORS}
_ADVICE = {advice.code: advice for advice in ADVICE}


def _evidence(answers: Sequence[Answer]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(wording.evidence_text(answer) for answer in answers))


def _red_flags(result: TriageResult | None, summary: Mapping[str, Any]) -> tuple[RedFlag, ...]:
    """Fired rules most urgent first (the engine's order: level, then table order)."""
    if result is not None:
        return tuple(
            RedFlag(
                rule_id=rule.rule_id,
                level_code=rule.level.code,
                level=rule.level.display,
                display=rule.display,
                rationale=rule.rationale,
                source=rule.source,
                condition=None if rule.condition is None else rule.condition.display,
                triggers=_evidence(rule.evidence),
            )
            for rule in result.rules
        )
    flags = []
    for rule_id in summary["rules"]:
        rule = _RULES.get(rule_id)
        if rule is None:  # a rule this knowledge base no longer has: shown by its id
            flags.append(RedFlag(rule_id, "", "", rule_id, "", "", None, ()))
            continue
        flags.append(
            RedFlag(
                rule_id=rule_id,
                level_code=rule.level.code,
                level=rule.level.display,
                display=rule.display,
                rationale=rule.rationale,
                source=rule.source,
                condition=None if rule.condition is None else rule.condition.display,
                triggers=(),
            )
        )
    return tuple(sorted(flags, key=lambda flag: -_level_rank(flag.level_code)))


def _level_rank(code: str) -> int:
    try:
        return int(Level.from_code(code))
    except KeyError:
        return int(Level.EMERGENCY_AMBULANCE) + 1  # unknown: never sorted below a known one


def _question_text(link_id: str) -> str:
    try:
        return wording.question(link_id)
    except KeyError:
        return link_id


def _decisive(
    result: TriageResult | None, unanswered: Sequence[str], level: Level
) -> tuple[Decisive, ...]:
    """Every unknown screen item as a question, with its decisive answer when known."""
    by_link = {question.link_id: question for question in (result.decisive if result else ())}
    out = []
    for link_id in [*unanswered, *(k for k in by_link if k not in unanswered)]:
        question = by_link.get(link_id)
        if question is None:
            out.append(Decisive(link_id, _question_text(link_id), None, None, None, False, ()))
            continue
        out.append(
            Decisive(
                link_id=link_id,
                question=_question_text(link_id),
                condition=wording.decisive_condition(question.link_id, question.answer),
                level_code=question.level.code,
                level=question.level.display,
                escalates=question.level > level,
                would_fire=tuple(
                    _RULES[rule_id].display if rule_id in _RULES else rule_id
                    for rule_id in question.rule_ids
                ),
            )
        )
    return tuple(out)


def _factors(result: TriageResult | None, summary: Mapping[str, Any]) -> tuple[Factor, ...]:
    if result is not None:
        return tuple(
            Factor(
                code=factor.code,
                display=factor.display,
                rationale=factor.rationale,
                points=factor.points,
                likelihood=factor.likelihood.value,
                lines=tuple(
                    FactorLine(point.points, point.label, _evidence(point.evidence))
                    for point in factor.breakdown
                ),
            )
            for factor in result.factors
        )
    factors = []
    for code, points, likelihood in summary["factors"]:
        known = _FACTORS.get(code)
        factors.append(
            Factor(
                code=code,
                display=known.display if known else code,
                rationale=known.rationale if known else "",
                points=points,
                likelihood=Likelihood(likelihood).value,
                lines=(),
            )
        )
    return tuple(factors)


def _patient_text(code: str, clinician: str) -> str:
    variant = PATIENT_ADVICE_VARIANTS.get(clinician)
    if variant is not None:
        return variant
    return PATIENT_ADVICE.get(code, clinician)


def _advice(result: TriageResult | None, summary: Mapping[str, Any]) -> tuple[AdviceItem, ...]:
    if result is not None:
        return tuple(
            AdviceItem(a.code, a.display, a.text, _patient_text(a.code, a.text))
            for a in result.advice
        )
    items = []
    for code in summary["advice"]:
        known = _ADVICE.get(code)
        text = known.text if known else code
        items.append(
            AdviceItem(code, known.display if known else code, text, _patient_text(code, text))
        )
    return tuple(items)


def _respondent(request: Mapping[str, Any]) -> str:
    value = request.get("respondent")
    return NOT_RECORDED if value is None else wording.answer_text("respondent", value)


#: Items shown elsewhere on the page (header, footer) rather than among the answers.
_SHOWN_ELSEWHERE = frozenset({"respondent", "patient.reference"})


def _stored_gates(bundle_json: bytes) -> dict[str, bool]:
    """The yes/no answers opening the lists, from the stored QuestionnaireResponse.

    A yes with nothing listed is not in the stored request (the list is unknown there):
    the Bundle's QuestionnaireResponse (its first entry) is where it is kept.
    """
    entries = orjson.loads(bundle_json).get("entry") or ()
    first = entries[0].get("resource", {}) if entries else {}
    return gate_answers(first) if first.get("resourceType") == "QuestionnaireResponse" else {}


def _answers(
    request: Mapping[str, Any], unanswered: Sequence[str], gates: Mapping[str, bool]
) -> Answers:
    """The answers; ``gates`` adds a list's yes/no where the list alone does not show it."""
    facts = flatten(request)
    yes: list[str] = []
    no: list[str] = []
    other: list[GivenAnswer] = []
    unknown_other: list[str] = []
    screen = set(unanswered)
    for item in iter_items(include_children=False):
        link_id = item.link_id
        if link_id in _SHOWN_ELSEWHERE:
            continue
        value = facts.get(link_id)
        label = _label(link_id)
        if item.kind is Kind.BOOLEAN:
            if value is True:
                yes.append(label)
            elif value is False:
                no.append(label)
            elif link_id not in screen:
                unknown_other.append(label)
        else:
            gate = GATE_OF.get(link_id)
            if gate is not None and (
                (note := wording.gate_note(gate, gates.get(gate), value)) is not None
            ):
                other.append(GivenAnswer(wording.label(gate), note))
            if value is not None:
                other.append(GivenAnswer(label, wording.answer_text(link_id, value)))
    return Answers(
        yes=tuple(yes),
        no=tuple(no),
        other=tuple(other),
        unknown_screen=tuple(_label(link_id) for link_id in unanswered),
        unknown_other=tuple(unknown_other),
    )


def _label(link_id: str) -> str:
    try:
        return wording.label(link_id)
    except KeyError:
        item = ITEMS.get(link_id)
        return item.text if item is not None else link_id


__all__ = [
    "DISCLAIMER",
    "LINK_AGENT",
    "LINK_RELATION",
    "PATIENT_ADVICE",
    "PATIENT_ADVICE_VARIANTS",
    "Report",
    "ReportNotFoundError",
    "build_report",
    "link_header",
    "open_report",
    "report_link",
]
