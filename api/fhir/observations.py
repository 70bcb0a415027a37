"""The triage-level Observation and one finding Observation per rule and factor.

Evidence (PROTOCOL.md §9) is one ``component`` per triggering answer: ``code`` is
the linkId as an ``intake-item`` coding (``text`` = the JSON path, which differs
from the linkId only for medication members), ``value[x]`` the answer. R4 has no
``component.valueDecimal``, so decimals travel as a UCUM ``valueQuantity``; an
unknown screen answer carries ``dataAbsentReason`` = ``unknown`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from api.fhir import codesystems as cs
from api.fhir._tables import Json, Tables, _bounded_put, esc, narrative
from triage.result import Answer, FiredRule, GivenAdvice, ReportedFactor, TriageResult
from triage.vocabulary import Kind


class Common:
    """What every Observation of one Bundle shares (built once per Bundle)."""

    __slots__ = ("derived_from", "method", "subject", "timestamp")

    def __init__(self, *, subject: Json | None, timestamp: str, method: Json, qr_url: str) -> None:
        self.subject = subject
        self.timestamp = timestamp
        self.method = method
        self.derived_from = [{"reference": qr_url}]


def _number_html(t: Tables, link_id: str, value: Any) -> str:
    return f"{value}{t.unit_html.get(link_id, '')}"


def _evidence_value(t: Tables, link_id: str, kind: Kind | None, value: Any) -> tuple[str, Any, str]:
    """(value[x] element name, its value, narrative text) of a known answer."""
    if value.__class__ is bool:
        return "valueBoolean", value, "yes" if value else "no"
    if kind is Kind.INTEGER or (kind is None and value.__class__ is int):
        return "valueInteger", int(value), _number_html(t, link_id, int(value))
    if kind is Kind.DECIMAL:
        quantity: Json = {"value": value}
        unit = t.quantity_unit.get(link_id)
        if unit is not None:
            quantity.update(unit)
        return "valueQuantity", quantity, _number_html(t, link_id, value)
    if kind is Kind.CODE or kind is Kind.CODES:
        coding = t.coding_for(link_id, str(value))
        concept = {"coding": [coding], "text": coding.get("display", value)}
        return "valueCodeableConcept", concept, t.code_text_html(link_id, str(value))
    return "valueString", str(value), esc(str(value))


def evidence(t: Tables, answer: Answer) -> tuple[Json, str]:
    """(component, narrative label) for one triggering answer."""
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
        label = esc(link_id)
    else:
        label = t.item_html[link_id]
        if path != link_id:
            concept = {"coding": concept["coding"], "text": path}
            label = f"{label} ({esc(path)})"
    if value is None:  # an unknown screen item (RF-SCREEN-INCOMPLETE)
        component: Json = {"code": concept, "dataAbsentReason": t.data_absent_unknown}
        shown = "unknown"
    else:
        name, fhir_value, shown = _evidence_value(
            t, link_id, item.kind if item is not None else None, value
        )
        component = {"code": concept, name: fhir_value}
    result = (component, f"{label}: {shown}")
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


def rule_observation(t: Tables, rule: FiredRule, common: Common) -> tuple[Json, str]:
    """One fired rule as an Observation, and its line in the level narrative."""
    code, note, header, line_head = _rule_static(t, rule)
    components, labels = _evidence_all(t, rule.evidence)
    if labels:
        answers_html = "".join(f"<li>{label}</li>" for label in labels)
        body = f"{header}<p>Triggering answers:</p><ul>{answers_html}</ul>"
        line = f"{line_head} Triggered by: {'; '.join(labels)}.</li>"
    else:
        body = header
        line = f"{line_head}</li>"
    resource: Json = {
        "resourceType": "Observation",
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
    "<table><thead><tr><th>Points</th><th>Because</th><th>Answers</th></tr></thead><tbody>"
)


def factor_observation(t: Tables, factor: ReportedFactor, common: Common) -> tuple[Json, str]:
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
    body = (
        f"{title}: {factor.points} points, likelihood {likelihood}.</p>"
        f"<p>{kb_html(t, factor.rationale)}</p>{_FACTOR_TABLE_HEAD}{''.join(rows)}</tbody></table>"
    )
    resource: Json = {
        "resourceType": "Observation",
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


def level_observation(
    t: Tables,
    result: TriageResult,
    common: Common,
    *,
    members: list[Json],
    rule_lines: list[str],
    factor_rows: list[str],
) -> Json:
    """The one triage-level Observation: level, advice, next questions, KB version."""
    level = result.level
    components: list[Json] = []
    advice_html: list[str] = []
    for advice in result.advice:
        component, line = _advice_component(t, advice)
        components.append(component)
        advice_html.append(line)
    unanswered_html: list[str] = []
    for link_id in result.unanswered:
        component = t.unanswered_component.get(link_id)
        if component is None:
            component = {
                "code": t.unanswered_code,
                "valueCodeableConcept": {"coding": [{"system": t.intake_url, "code": link_id}]},
            }
            unanswered_html.append(f"<li>{esc(link_id)}</li>")
        else:
            unanswered_html.append(f"<li>{t.item_html[link_id]} ({link_id})</li>")
        components.append(component)
    version = result.knowledge_base_version
    components.append(t.kb_version_component(version))

    parts = [
        f"<p><b>Triage level: {t.level_html[level]}</b> ({level.code}). "
        f"{t.level_meaning_html[level]}</p>"
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
        parts.append("<p><b>Next questions</b> (red-flag screen items still unknown)</p><ul>")
        parts.extend(unanswered_html)
        parts.append("</ul>")
    parts.append(f"<p>{esc(cs.KNOWLEDGE_BASE_DISPLAY)} version {esc(version)}.</p>")

    resource: Json = {
        "resourceType": "Observation",
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
