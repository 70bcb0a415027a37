"""The CDS Hooks discovery document and the card of one triage (CDS Hooks 2.0).

Pure functions of the result, the answers and the deployment's URLs. A card
holds no ``null`` and no empty string, list or object (the specification
forbids them): optional parts are left out when there is nothing to say.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from api.fhir import codesystems as cs
from api.fhir.questionnaire_response import NO_GATES, asked_again_texts
from api.services.cds.markdown import escape_markdown
from api.services.cds.request import HOOK, PREFETCH_KEY
from triage import Level, TriageResult
from triage import wording as words
from triage.knowledge_base import KNOWLEDGE_BASE_VERSION

SERVICE_ID = "twitch-triage"
PROTOCOL_VERSION = "1.1"
#: The summary must be under 140 characters (CDS Hooks: "<140-character summary").
SUMMARY_LIMIT = 139
#: Card indicator per level: the two emergency levels are critical.
INDICATORS: Mapping[Level, str] = {
    Level.EMERGENCY_AMBULANCE: "critical",
    Level.EMERGENCY: "critical",
    Level.CONSULTATION_24: "warning",
    Level.CONSULTATION: "info",
    Level.SELF_CARE: "info",
}


def prefetch_template(canonical_base: str) -> str:
    """The newest completed intake of the patient in context (one, newest first)."""
    questionnaire = cs.questionnaire_url(canonical_base)
    return (
        f"QuestionnaireResponse?patient={{{{context.patientId}}}}&questionnaire={questionnaire}"
        "&status=completed&_sort=-authored&_count=1"
    )


def discovery_document(canonical_base: str) -> dict[str, Any]:
    """``GET /cds-services``: the one service, its hook and prefetch template."""
    return {
        "services": [
            {
                "hook": HOOK,
                "title": "Twitching triage",
                "description": (
                    "Triage of involuntary muscle twitching, tics, spasms or cramps around "
                    "exercise from the patient's newest completed twitch-triage intake "
                    f"(protocol {PROTOCOL_VERSION}): the level, the red flags, the questions "
                    "still to ask and the advice. Decision support: it does not diagnose."
                ),
                "id": SERVICE_ID,
                "prefetch": {PREFETCH_KEY: prefetch_template(canonical_base)},
                "usageRequirements": (
                    "The EHR is registered with `twitch-triage ehrs register` and signs every "
                    "call with a JWT (RS384 or ES384, aud = the URL called, exp at most 5 "
                    "minutes ahead, a fresh jti). The intake QuestionnaireResponse answers "
                    f"{cs.questionnaire_url(canonical_base)} and names the patient in context "
                    "as subject (Patient/<patientId>). Without prefetch, fhirServer and "
                    "fhirAuthorization must let the service read QuestionnaireResponse; "
                    "fhirServer must be a FHIR server registered for the EHR "
                    "(ehrs register --fhir-server): no other is ever contacted."
                ),
            }
        ]
    }


@dataclass(frozen=True, slots=True)
class CardLinks:
    """Where a card may send the clinician (None: not available)."""

    report_url: str | None
    intake_app_url: str | None
    #: Base URL of this deployment (for ``source.url``).
    base_url: str


def summary(result: TriageResult) -> str:
    """The level and the most urgent red flag, under 140 characters."""
    level = result.level.display
    text = f"{level}: {result.rules[0].display}" if result.rules else f"{level}: no red flag found"
    if len(text) > SUMMARY_LIMIT:
        text = text[: SUMMARY_LIMIT - 1].rstrip() + "…"
    return text


def _section(title: str, lines: Sequence[str]) -> list[str]:
    return [f"**{escape_markdown(title, own=True)}**", "", *(f"- {line}" for line in lines), ""]


#: QuestionnaireResponse statuses of a finished intake; any other is said on the card.
FINISHED = frozenset(("completed", "amended"))


def _origin(authored: str | None, status: Any) -> list[str]:
    """When the intake was made, and whether it was finished.

    An unfinished intake (the prefetch asks for ``status=completed``, an EHR may still
    send another) is triaged as it stands, unanswered = unknown, but never called
    completed.
    """
    finished = status in FINISHED
    origin = [] if finished else [f"**not finished** (status {escape_markdown(str(status)[:40])})"]
    if authored:
        origin.append(f"{'completed' if finished else 'last saved'} {escape_markdown(authored)}")
    return origin


def detail(
    result: TriageResult,
    request: Mapping[str, Any],
    authored: str | None,
    status: Any = "completed",
    gates: Mapping[str, bool] = NO_GATES,
) -> str:
    """GitHub-flavoured markdown: level, red flags, questions still to ask, advice.

    Every piece of text, ours and the intake's, is escaped (:mod:`.markdown`).
    """
    esc = escape_markdown  # request text (and anything derived from it)

    def own(text: str) -> str:
        return escape_markdown(text, own=True)

    level = result.level
    parts = [f"**{own(level.display)}**: {own(level.meaning)}", ""]
    origin = _origin(authored, status)
    respondent = request.get("respondent")
    if isinstance(respondent, str):
        shown = words.answer_text("respondent", respondent)
        origin.append(f"answers given by: {own(shown)}")
    if origin:
        parts += [f"Intake {', '.join(origin)}.", ""]
    if result.rules:
        lines = []
        for rule in result.rules:
            line = f"**{own(rule.display)}** ({own(rule.level.display)}). {own(rule.rationale)}"
            known = [answer for answer in rule.evidence if not answer.is_unknown]
            if known:
                shown = "; ".join(esc(words.evidence_text(answer)) for answer in known)
                line += f" Answers: {shown}."
            line += f" Source: {own(rule.source)}."
            lines.append(line)
        parts += _section("Red flags, most urgent first", lines)
    if result.decisive:
        lines = []
        asked_again = asked_again_texts(request, gates)
        for question in result.decisive:
            line = (
                f"{own(words.question(question.link_id))} "
                f"{own(words.decisive_condition(question.link_id, question.answer))} → "
                f"{own(question.level.display)}"
            )
            if question.level > level:
                line += " (more urgent than now)"
            if question.link_id in asked_again:
                line += f" ({own(asked_again[question.link_id])})"
            lines.append(line)
        parts += _section("Questions still to ask (each unknown answer could matter)", lines)
    if result.advice:
        parts += _section("Advice", [own(advice.text) for advice in result.advice])
    activity = request.get("activity")
    activity_type = activity.get("type") if isinstance(activity, Mapping) else None
    if isinstance(activity_type, str) and activity_type.strip():
        parts += [f"**{own(words.label('activity.type'))}**: {esc(activity_type)}", ""]
    notes = request.get("notes")
    if isinstance(notes, str) and notes.strip():
        parts += [f"**Notes from the intake**: {esc(notes)}", ""]
    parts.append(
        "*Decision support from twitch-triage: it does not diagnose and never overrides "
        "clinical judgement.*"
    )
    return "\n".join(parts)


def card(
    result: TriageResult,
    request: Mapping[str, Any],
    *,
    uuid: str,
    authored: str | None,
    canonical_base: str,
    links: CardLinks,
    status: Any = "completed",
    gates: Mapping[str, bool] = NO_GATES,
) -> dict[str, Any]:
    """The one card of a triage (CDS Hooks 2.0 Card).

    No ``suggestions``: feedback refuses every accepted suggestion id
    (``request.OFFERED_SUGGESTIONS``); a card that offers some must store their ids.
    """
    level = result.level
    source = {
        "label": f"twitch-triage, protocol {PROTOCOL_VERSION} "
        f"(knowledge base {KNOWLEDGE_BASE_VERSION})",
        "url": f"{links.base_url}/fhir/CodeSystem/{cs.RED_FLAG_RULE}",
        "topic": {
            "system": cs.codesystem_url(canonical_base, cs.TRIAGE_LEVEL),
            "code": level.code,
            "display": level.display,
        },
    }
    body: dict[str, Any] = {
        "uuid": uuid,
        "summary": summary(result),
        "indicator": INDICATORS[level],
        "detail": detail(result, request, authored, status, gates),
        "source": source,
    }
    card_links = []
    if links.report_url:
        card_links.append(
            {"label": "Open the clinician report", "url": links.report_url, "type": "absolute"}
        )
    if links.intake_app_url:
        card_links.append(
            {"label": "Open the twitch-triage intake", "url": links.intake_app_url, "type": "smart"}
        )
    if card_links:
        body["links"] = card_links
    return body


__all__ = [
    "INDICATORS",
    "SERVICE_ID",
    "CardLinks",
    "card",
    "detail",
    "discovery_document",
    "prefetch_template",
    "summary",
]
