"""The triage-level Observation and one finding Observation per rule and factor.

Evidence (PROTOCOL.md §9) is one ``component`` per triggering answer: ``code`` is
the linkId as an ``intake-item`` coding (``text`` = the JSON path, which differs
from the linkId only for medication members), ``value[x]`` the answer. R4 has no
``component.valueDecimal``, so decimals travel as a UCUM ``valueQuantity``; an
unknown screen answer carries ``dataAbsentReason`` = ``unknown`` instead.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from api.fhir import codesystems as cs
from api.fhir._tables import Json, Tables, _bounded_put, esc, narrative
from api.fhir.frozen import freeze
from triage import wording
from triage.result import (
    Answer,
    DecisiveQuestion,
    FiredRule,
    GivenAdvice,
    ReportedFactor,
    TriageResult,
)
from triage.vocabulary import Kind

#: The class of a ``history.medications`` entry: what a deciding medication answer names.
MEDICATION_CLASS = "history.medications.class"

#: The first elements of an Observation. The Bundle passes its own ``head`` (also ``id``
#: and ``meta``) when it renders resources as stored, so nothing copies them afterwards.
OBSERVATION: Json = freeze({"resourceType": "Observation"})


class Common:
    """What every Observation of one Bundle shares (built once per Bundle)."""

    __slots__ = ("derived_from", "method", "subject", "timestamp")

    def __init__(self, *, subject: Json | None, timestamp: str, method: Json, qr_url: str) -> None:
        self.subject = subject
        self.timestamp = timestamp
        self.method = method
        self.derived_from = [{"reference": qr_url}]


def _evidence_value(t: Tables, link_id: str, kind: Kind | None, value: Any) -> tuple[str, Any]:
    """(value[x] element name, its value) of a known answer."""
    if value.__class__ is bool:
        return "valueBoolean", value
    if kind is Kind.INTEGER or (kind is None and value.__class__ is int):
        return "valueInteger", int(value)
    if kind is Kind.DECIMAL:
        quantity: Json = {"value": value}
        unit = t.quantity_unit.get(link_id)
        if unit is not None:
            quantity.update(unit)
        return "valueQuantity", quantity
    if kind is Kind.CODE or kind is Kind.CODES:
        coding = t.coding_for(link_id, str(value))
        return "valueCodeableConcept", {"coding": [coding], "text": coding.get("display", value)}
    return "valueString", str(value)


def evidence(t: Tables, answer: Answer) -> tuple[Json, str]:
    """(component, narrative text) for one triggering answer.

    The narrative shows the question and the answer as a clinician reads them
    (``wording.evidence_text``: "Session length: 120 minutes"), never the linkId.
    """
    link_id, value, path = answer.link_id, answer.value, answer.path
    cls = value.__class__
    # Everything but free text repeats across requests; the cache is bounded anyway.
    cacheable = cls is not str or link_id in t.code_coding
    if cacheable:
        key = (link_id, path, cls, value)
        hit = t.evidence_static.get(key)
        if hit is not None:
            return hit
    item = t.items.get(link_id)
    concept = t.intake_concept.get(link_id)
    if concept is None:  # not a vocabulary item: still a coded, well-formed component
        concept = {"coding": [{"system": t.intake_url, "code": link_id}], "text": path}
        label = esc(path)
    else:
        label = esc(wording.evidence_text(answer))
        if path != link_id:
            concept = {"coding": concept["coding"], "text": path}
    if value is None:  # an unknown screen item (RF-SCREEN-INCOMPLETE)
        component: Json = {"code": concept, "dataAbsentReason": t.data_absent_unknown}
    else:
        kind = item.kind if item is not None else None
        name, fhir_value = _evidence_value(t, link_id, kind, value)
        component = {"code": concept, name: fhir_value}
    result = (component, label)
    if cacheable:
        result = _bounded_put(t.evidence_static, key, result)
    return result


def _evidence_all(t: Tables, answers: Sequence[Answer]) -> tuple[list[Json], list[str]]:
    components: list[Json] = []
    labels: list[str] = []
    for answer in answers:
        component, label = evidence(t, answer)
        components.append(component)
        labels.append(label)
    return components, labels


def _condition_coding(condition: Any) -> Json:
    return {"system": condition.system, "code": condition.code, "display": condition.display}


def kb_html(t: Tables, text: str) -> str:
    """Escaped knowledge-base text (labels, rationales): a finite set, so memoized."""
    html = t.kb_html.get(text)
    if html is None:
        html = esc(text)
        html = _bounded_put(t.kb_html, text, html)
    return html


def _rule_static(t: Tables, rule: FiredRule) -> tuple[Json, list[Json], str, str]:
    """(code, note, narrative header, level-narrative line head): KB content, cached."""
    key = (rule.rule_id, rule.level, rule.display, rule.rationale, rule.source, rule.condition)
    hit = t.rule_code.get(key)
    if hit is not None:
        return hit
    codings = [{"system": t.rule_url, "code": rule.rule_id, "display": rule.display}]
    condition_html = ""
    if rule.condition is not None:
        codings.append(_condition_coding(rule.condition))
        condition_html = (
            f"<p>Suspected condition: {esc(rule.condition.display)} "
            f"(SNOMED CT {esc(rule.condition.code)})</p>"
        )
    code = {"coding": codings, "text": rule.display}
    note = [{"text": rule.rationale}, {"text": f"Source: {rule.source}"}]
    title = f"<b>{esc(rule.display)}</b> ({esc(rule.rule_id)}): {t.level_html[rule.level]}"
    header = (
        f"<p>Red flag: {title}</p>"
        f"<p>{esc(rule.rationale)}</p><p>Source: {esc(rule.source)}</p>{condition_html}"
    )
    result = (code, note, header, f"<li>{title}.")
    return _bounded_put(t.rule_code, key, result)


def _rule_text(t: Tables, rule: FiredRule) -> tuple[str, str, list[Json]]:
    """(narrative, level-narrative line, evidence components) of a fired rule."""
    _, _, header, line_head = _rule_static(t, rule)
    components, labels = _evidence_all(t, rule.evidence)
    if labels:
        answers_html = "".join(f"<li>{label}</li>" for label in labels)
        body = f"{header}<p>Answers behind this finding:</p><ul>{answers_html}</ul>"
        line = f"{line_head} Triggered by: {'; '.join(labels)}.</li>"
    else:
        body = header
        line = f"{line_head}</li>"
    return body, line, components


def _unknown_rule_text(t: Tables, rule: FiredRule) -> tuple[str, str, list[Json]]:
    """``_rule_text`` of a finding whose evidence is unknown answers only (the screen's).

    Its many items recur from request to request, and ``None`` equals only ``None``
    (unlike ``1`` and ``True``), so the finding itself keys the cache.
    """
    hit = t.unknown_rule_text.get(rule)
    if hit is None:
        hit = _bounded_put(t.unknown_rule_text, rule, _rule_text(t, rule))
    return hit


def rule_observation(
    t: Tables, rule: FiredRule, common: Common, head: Json = OBSERVATION
) -> tuple[Json, str]:
    """One fired rule as an Observation, and its line in the level narrative."""
    code, note, _, _ = _rule_static(t, rule)
    if rule.evidence and all(answer.value is None for answer in rule.evidence):
        body, line, components = _unknown_rule_text(t, rule)
    else:
        body, line, components = _rule_text(t, rule)
    resource: Json = {
        **head,
        "text": narrative(body),
        "status": "final",
        "category": t.category_rule,
        "code": code,
    }
    if common.subject is not None:
        resource["subject"] = common.subject
    resource["effectiveDateTime"] = common.timestamp
    resource["issued"] = common.timestamp
    resource["valueCodeableConcept"] = t.level_value[rule.level]
    resource["note"] = note
    resource["method"] = common.method
    resource["derivedFrom"] = common.derived_from
    if components:
        resource["component"] = components
    return resource, line


def _factor_static(t: Tables, factor: ReportedFactor) -> tuple[Json, list[Json], str, str]:
    """(code, note, narrative title, level-narrative row head): KB content, cached."""
    key = (factor.code, factor.display, factor.rationale, factor.condition)
    hit = t.factor_code.get(key)
    if hit is not None:
        return hit
    codings = [{"system": t.factor_url, "code": factor.code, "display": factor.display}]
    if factor.condition is not None:
        codings.append(_condition_coding(factor.condition))
    name = f"{esc(factor.display)} ({esc(factor.code)})"
    result = (
        {"coding": codings, "text": factor.display},
        [{"text": factor.rationale}],
        f"<p><b>Contributing factor: {esc(factor.display)}</b> ({esc(factor.code)})",
        f"<tr><td>{name}</td>",
    )
    return _bounded_put(t.factor_code, key, result)


_FACTOR_TABLE_HEAD = (
    "<table><thead><tr><th>Points</th><th>Finding</th><th>Answers</th></tr></thead><tbody>"
)


@functools.lru_cache(maxsize=64)
def _points_html(points: int) -> str:
    """The escaped total ("3 points"): a handful of totals recur, so each is worded once."""
    return esc(wording.count(points, "point"))


def factor_observation(
    t: Tables, factor: ReportedFactor, common: Common, head: Json = OBSERVATION
) -> tuple[Json, str]:
    """One reported factor as an Observation, and its row in the level narrative."""
    code, note, title, row_head = _factor_static(t, factor)
    components, _ = _evidence_all(t, factor.evidence)
    rows = []
    for point in factor.breakdown:
        _, labels = _evidence_all(t, point.evidence)
        rows.append(
            f"<tr><td>+{point.points}</td><td>{kb_html(t, point.label)}</td>"
            f"<td>{'; '.join(labels)}</td></tr>"
        )
    likelihood = factor.likelihood.value
    points = _points_html(factor.points)
    body = (
        f"{title}: {points}, likelihood {likelihood}.</p>"
        f"<p>{kb_html(t, factor.rationale)}</p>{_FACTOR_TABLE_HEAD}{''.join(rows)}</tbody></table>"
    )
    resource: Json = {
        **head,
        "text": narrative(body),
        "status": "final",
        "category": t.category_factor,
        "code": code,
    }
    if common.subject is not None:
        resource["subject"] = common.subject
    resource["effectiveDateTime"] = common.timestamp
    resource["issued"] = common.timestamp
    resource["valueCodeableConcept"] = t.likelihood_value[factor.likelihood]
    resource["note"] = note
    resource["method"] = common.method
    resource["derivedFrom"] = common.derived_from
    resource["component"] = [{"code": t.points_code, "valueInteger": factor.points}, *components]
    row = f"{row_head}<td>{factor.points}</td><td>{likelihood}</td></tr>"
    return resource, row


def _advice_component(t: Tables, advice: GivenAdvice) -> tuple[Json, str]:
    key = (advice.code, advice.display, advice.text)
    hit = t.advice_component.get(key)
    if hit is None:
        hit = (
            {
                "code": t.advice_code,
                "valueCodeableConcept": {
                    "coding": [
                        {"system": t.advice_url, "code": advice.code, "display": advice.display}
                    ],
                    "text": advice.text,
                },
            },
            f"<li><b>{esc(advice.display)}</b> ({esc(advice.code)}): {esc(advice.text)}</li>",
        )
        hit = _bounded_put(t.advice_component, key, hit)
    return hit


def _decisive_values(answer: Any) -> tuple[Any, ...] | None:
    """The listed values of a list answer (``()`` = none), or None for a single answer.

    The engine proposes a list as a tuple, a medication list as a tuple of
    ``{"class": ...}`` objects (PROTOCOL.md 1.1 §8: "for a list, one listed value").
    """
    if not isinstance(answer, tuple):
        return None
    return tuple(v.get("class") if isinstance(v, Mapping) else v for v in answer)


def _decisive_value(
    t: Tables, answer_id: str, kind: Kind | None, answer: Any
) -> tuple[str, Any, str]:
    """(value[x] name, value, escaped condition text) of a decisive answer."""
    values = _decisive_values(answer)
    if values is None:
        name, value = _evidence_value(t, answer_id, kind, answer)
        if answer.__class__ is bool:
            return name, value, "If yes" if answer else "If no"
        return name, value, f"If the answer is {esc(wording.answer_text(answer_id, answer))}"
    if not values:  # "none": nothing listed
        return "valueCodeableConcept", t.none_listed, "If none"
    codings = [t.coding_for(answer_id, str(v)) for v in values]
    shown = ", ".join(esc(wording.answer_text(answer_id, str(v))) for v in values)
    if len(codings) == 1:
        concept = {"coding": codings, "text": codings[0].get("display", values[0])}
        return "valueCodeableConcept", concept, f"If the answer includes {shown}"
    # Several listed values together: one CodeableConcept cannot hold them, so as text.
    return "valueString", ", ".join(map(str, values)), f"If the answer includes {shown}"


def _rule_concept(t: Tables, rule_id: str) -> Json:
    """A rule the published CodeSystem lacks (cannot happen with one knowledge base): coded."""
    return {"coding": [{"system": t.rule_url, "code": rule_id}]}


def decisive_component(t: Tables, question: DecisiveQuestion) -> tuple[Json, str]:
    """(component, narrative text) of one decisive question (PROTOCOL.md 1.1 §8)."""
    component, html, _ = _decisive_entry(t, question)
    return component, html


def _decisive_entry(t: Tables, question: DecisiveQuestion) -> tuple[Json, str, str]:
    """(component, narrative text, next-questions line) of one decisive question.

    ``code``: the ``decisive-question`` coding plus the item's linkId coding
    (``text`` = the linkId); ``value[x]``: the answer that would decide, typed as
    evidence is (a listed value as its coding, "none" as ``triage-observation#none``);
    ``interpretation``: first the level that answer alone would give, then each
    rule it would fire. Built from knowledge-base content and vocabulary only,
    so it is cached.
    """
    answer = question.answer
    key = (question.link_id, repr(answer), question.level, question.rule_ids)
    hit = t.decisive_static.get(key)
    if hit is not None:
        return hit
    link_id = question.link_id
    item = t.items.get(link_id)
    concept = t.intake_concept.get(link_id)
    if concept is not None:
        item_coding = concept["coding"][0]
    else:  # not a vocabulary item: still coded
        item_coding = {"system": t.intake_url, "code": link_id}
    # A medication list is answered by the class of the medication it would list.
    answer_id = MEDICATION_CLASS if item is not None and item.kind is Kind.GROUP else link_id
    answer_item = t.items.get(answer_id)
    kind = answer_item.kind if answer_item is not None else None
    name, value, condition_html = _decisive_value(t, answer_id, kind, answer)
    component: Json = {
        "code": {"coding": [t.decisive_coding, item_coding], "text": link_id},
        name: value,
        "interpretation": [
            t.level_value[question.level],
            *(t.rule_concept.get(code) or _rule_concept(t, code) for code in question.rule_ids),
        ],
    }
    html = f"{condition_html} → <b>{t.level_html[question.level]}</b>"
    result = (component, html, _question_line(t, link_id, html))
    return _bounded_put(t.decisive_static, key, result)


#: No answer given about a next question (the usual case).
NO_NOTES: Mapping[str, str] = freeze({})


def _next_questions(
    t: Tables, result: TriageResult, components: list[Json], asked_again: Mapping[str, str]
) -> list[str]:
    """Unknown screen items as questions, each with its decisive answer; adds components.

    ``asked_again``: linkId → an answer already given about it (escaped), shown after
    the question (a yes to "takes regular medicines" with none listed).
    """
    decisive: dict[str, str] = {}  # linkId -> its line, with the deciding answer
    decisive_components: list[Json] = []
    for question in result.decisive:
        component, _, line = _decisive_entry(t, question)
        decisive_components.append(component)
        decisive[question.link_id] = line
    lines: list[str] = []
    for link_id in result.unanswered:
        component = t.unanswered_component.get(link_id)
        if component is None:  # not a vocabulary item: still coded, shown as it is named
            component = {
                "code": t.unanswered_code,
                "valueCodeableConcept": {"coding": [{"system": t.intake_url, "code": link_id}]},
            }
        components.append(component)
        line = decisive.pop(link_id, None)
        if line is None:
            line = _question_line(t, link_id, None)
        note = asked_again.get(link_id)
        lines.append(line if note is None else f"{line.removesuffix('</li>')} ({note})</li>")
    # A decisive question is always an unknown screen item; should one not be, show it anyway.
    lines.extend(decisive.values())
    components.extend(decisive_components)
    return lines


def _question_line(t: Tables, link_id: str, decisive_html: str | None) -> str:
    question = t.question_html.get(link_id) or esc(link_id)
    if decisive_html is None:
        return f"<li>{question}</li>"
    return f"<li>{question} {decisive_html}</li>"


def level_observation(
    t: Tables,
    result: TriageResult,
    common: Common,
    *,
    members: list[Json],
    rule_lines: list[str],
    factor_rows: list[str],
    respondent_html: str,
    head: Json = OBSERVATION,
    asked_again: Mapping[str, str] = NO_NOTES,
) -> Json:
    """The one triage-level Observation: level, advice, next questions, KB version.

    ``respondent_html`` names who gave the answers (already escaped); ``asked_again``
    (escaped) what was answered about a next question that left it unknown.
    """
    level = result.level
    components: list[Json] = []
    advice_html: list[str] = []
    for advice in result.advice:
        component, line = _advice_component(t, advice)
        components.append(component)
        advice_html.append(line)
    unanswered_html = _next_questions(t, result, components, asked_again)
    version = result.knowledge_base_version
    components.append(t.kb_version_component(version))

    parts = [
        f"<p><b>Triage level: {t.level_html[level]}</b>. {t.level_meaning_html[level]}</p>",
        f"<p>Answers given by: {respondent_html}.</p>",
    ]
    if rule_lines:
        parts.append("<p><b>Red flags</b> (most urgent first)</p><ol>")
        parts.extend(rule_lines)
        parts.append("</ol>")
    else:
        parts.append("<p><b>Red flags</b>: none fired.</p>")
    if factor_rows:
        parts.append(
            "<p><b>Contributing factors</b></p><table><thead><tr><th>Factor</th>"
            "<th>Points</th><th>Likelihood</th></tr></thead><tbody>"
        )
        parts.extend(factor_rows)
        parts.append("</tbody></table>")
    if advice_html:
        parts.append("<p><b>Advice</b> (in order)</p><ol>")
        parts.extend(advice_html)
        parts.append("</ol>")
    if unanswered_html:
        parts.append(
            "<p><b>Next questions</b> (red-flag screen items still unknown; "
            "the answer that would decide, and the level it alone would give)</p><ul>"
        )
        parts.extend(unanswered_html)
        parts.append("</ul>")
    parts.append(f"<p>{esc(cs.KNOWLEDGE_BASE_DISPLAY)} version {esc(version)}.</p>")

    resource: Json = {
        **head,
        "text": narrative("".join(parts)),
        "status": "final",
        "category": t.category_level,
        "code": t.level_code,
    }
    if common.subject is not None:
        resource["subject"] = common.subject
    resource["effectiveDateTime"] = common.timestamp
    resource["issued"] = common.timestamp
    resource["valueCodeableConcept"] = t.level_value[level]
    resource["method"] = common.method
    if members:
        resource["hasMember"] = members
    resource["derivedFrom"] = common.derived_from
    resource["component"] = components
    return resource
