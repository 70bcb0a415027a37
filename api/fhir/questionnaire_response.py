"""The request as a QuestionnaireResponse, and back (PROTOCOL.md §9).

Forward: every answer given becomes one item whose ``linkId`` is its vocabulary
path, in vocabulary order; unknown answers (omitted or null) get no item. The
lists ``history.conditions`` and ``history.medications`` are preceded by the
Questionnaire's yes/no question that opens them (``….any``): given empty
(``[]``, "none") is that question answered no and no list item; a non-empty list
follows a yes. So "none" and "unknown" survive the round trip, and the response
conforms to the Questionnaire (a list is enabled only after its yes).

The yes/no answers the request cannot carry (a "yes" with nothing listed, which the
request reads as unknown; a "no" given together with listed members) come from the
reader as :attr:`MappedRequest.gates` and go to the renderer beside the request
(``gates``), so a caller's answer never vanishes from the result: the yes is an item
without its list, and the narrative words both (``wording.gate_note``).

Backward (:func:`read_questionnaire_response`) is what ``$triage`` (issue 4) runs
before the request schema: it rebuilds the request dict and remembers, for every
JSON path, the FHIRPath of the item it came from, so schema errors can name the
item. It reads every item and collects every structural problem rather than
stopping at the first (:func:`map_questionnaire_response` raises them all at
once), and it checks ``subject`` so a result is never filed under another patient.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from api.fhir import codesystems as cs
from api.fhir._tables import (
    LAYOUT,
    Json,
    Tables,
    _bounded_put,
    _row,
    esc,
    esc_free,
    narrative,
)
from api.fhir.elements import element_problems
from api.fhir.frozen import freeze
from triage import wording
from triage.vocabulary import ITEMS, SECTIONS, Kind

MEDICATIONS = "history.medications"
#: A list given empty: the person has none (distinct from an unknown list, which has no row).
NONE_HTML = "none"
_MED_CLASS = "history.medications.class"
_MED_DAYS = "history.medications.days_since_start"
_MED_DOSES = "history.medications.doses_per_day"
_SECTION_NAMES = frozenset(section.name for section in SECTIONS)
#: The first elements of the QuestionnaireResponse when the Bundle gives it no ``id``/``meta``.
QUESTIONNAIRE_RESPONSE: Json = freeze({"resourceType": "QuestionnaireResponse"})
#: Yes/no questions of the intake Questionnaire that open a list (gate → list linkId).
#: They are not vocabulary paths: they let a form say "none" (no → ``[]``), while a yes
#: with no listed member stays unknown, since a yes is not "none" (the safer reading).
GATES: dict[str, str] = {
    "history.medications.any": MEDICATIONS,
    "history.conditions.any": "history.conditions",
}

#: list linkId → the gate that opens it.
GATE_OF = {listed: gate for gate, listed in GATES.items()}
#: No gate answers given (the ``/v1/triage`` path, which has no yes/no of its own).
NO_GATES: Mapping[str, bool] = freeze({})
#: gate → {answer: its item}, built once (items are serialised, never edited).
_GATE_ITEMS: dict[str, dict[bool, Json]] = {
    gate: {
        answer: freeze(
            {"linkId": gate, "text": wording.question(gate), "answer": [{"valueBoolean": answer}]}
        )
        for answer in (False, True)
    }
    for gate in GATES
}


def _section_layout() -> tuple[tuple[str | None, tuple[tuple[str, str, Kind], ...]], ...]:
    grouped: dict[str | None, list[tuple[str, str, Kind]]] = {}
    for section, key, item in LAYOUT:
        grouped.setdefault(section, []).append((key, item.link_id, item.kind))
    return tuple((section, tuple(entries)) for section, entries in grouped.items())


#: (section or None for top level, ((key, linkId, kind), ...)) in vocabulary order.
_SECTION_LAYOUT = _section_layout()
#: Sections holding a gated list: rendered for a gate answer even when otherwise empty.
_GATED_SECTIONS = frozenset(link_id.partition(".")[0] for link_id in GATE_OF)


def _answer_html(link_id: str, value: Any) -> str:
    """The answer as a clinician reads it (``wording.answer_text``), escaped."""
    return esc(wording.answer_text(link_id, value))


def _answered(t: Tables, link_id: str, answer: Json) -> Json:
    return {"linkId": link_id, "text": t.question[link_id], "answer": [answer]}


# Renderers for the kinds without a prebuilt item: each appends its item(s) and
# returns the escaped narrative text of the answer.
Renderer = Callable[[Tables, str, Any, list[Json]], str]


def _code(t: Tables, link_id: str, value: Any, items: list[Json]) -> str:
    items.append(_answered(t, link_id, {"valueCoding": t.coding_for(link_id, value)}))
    return esc(str(value))


def _integer(t: Tables, link_id: str, value: Any, items: list[Json]) -> str:
    value = int(value)
    items.append(_answered(t, link_id, {"valueInteger": value}))
    return _answer_html(link_id, value)


def _decimal(t: Tables, link_id: str, value: Any, items: list[Json]) -> str:
    items.append(_answered(t, link_id, {"valueDecimal": value}))
    return _answer_html(link_id, value)


def _text(t: Tables, link_id: str, value: Any, items: list[Json]) -> str:
    items.append(_answered(t, link_id, {"valueString": value}))
    return esc_free(value)


def _gate_row(gate: str, given: bool | None, value: Any) -> str | None:
    """The narrative row of a gate answer the list alone does not show, if any."""
    note = wording.gate_note(gate, given, value)
    if note is None:
        return None
    return f"<tr><td>{esc(wording.label(gate))}</td><td>{esc(note)}</td></tr>"


def asked_again_texts(request: Mapping[str, Any], gates: Mapping[str, bool]) -> dict[str, str]:
    """list linkId → its gate's answer (plain text), for each list a yes left unknown.

    The screen asks for such a list again; wherever the question is shown, it says the
    person already answered yes ("Takes regular medicines: Yes — not listed").
    """
    texts: dict[str, str] = {}
    for gate, answer in gates.items():
        list_id = GATES[gate]
        section, _, key = list_id.partition(".")
        if answer is True and (request.get(section) or {}).get(key) is None:
            texts[list_id] = f"{wording.label(gate)}: {wording.gate_note(gate, True, None) or ''}"
    return texts


def asked_again_notes(request: Mapping[str, Any], gates: Mapping[str, bool]) -> dict[str, str]:
    """:func:`asked_again_texts`, escaped for a narrative."""
    return {link_id: esc(text) for link_id, text in asked_again_texts(request, gates).items()}


def _gate_given(
    gates: Mapping[str, bool], link_id: str, value: Any, items: list[Json], rows: list[str]
) -> bool:
    """Show a gate answer the list alone does not show; True if that is the whole answer.

    A yes with nothing listed is the gate item answered yes and no list item (the list
    is optional); a no beside listed members gets its row here, and the list (after the
    yes it implies) is rendered as usual.
    """
    gate = GATE_OF[link_id]
    row = _gate_row(gate, gates.get(gate), value)
    if row is None:
        return False
    rows.append(row)
    if value is None:
        items.append(_GATE_ITEMS[gate][True])
        return True
    return False


def _gate_answer(link_id: str, value: Any, items: list[Json]) -> bool:
    """Answer the yes/no question that opens a list (if it has one); True if it has.

    Given empty ("none") is a no and no list item; a non-empty list follows a yes. A
    list answered without its yes would be a disabled item with answers for the
    Questionnaire (``enableWhen``): an error to the HL7 validator.
    """
    gate = GATE_OF.get(link_id)
    if gate is None:
        return False
    items.append(_GATE_ITEMS[gate][bool(value)])
    return True


def _codes(t: Tables, link_id: str, value: Any, items: list[Json]) -> str:
    gated = _gate_answer(link_id, value, items)
    if not value and gated:
        return NONE_HTML
    item: Json = {"linkId": link_id, "text": t.question[link_id]}
    items.append(item)
    if not value:  # given and empty = none: the item without answers
        return NONE_HTML
    answers = t.qr_answer[link_id]
    item["answer"] = [
        answers.get(code) or {"valueCoding": t.coding_for(link_id, code)} for code in value
    ]
    return ", ".join(t.code_text_html(link_id, code) for code in value)


def _medication(t: Tables, med: Mapping[str, Any]) -> tuple[Json, str]:
    """One group item per medication, children in vocabulary order; and its text."""
    children: list[Json] = []
    cls = med.get("class")
    if cls is not None:
        pair = t.qr_code[_MED_CLASS].get(cls)
        children.append(
            pair[0]
            if pair is not None
            else _answered(t, _MED_CLASS, {"valueCoding": t.coding_for(_MED_CLASS, cls)})
        )
    days = med.get("days_since_start")
    if days is not None:
        children.append(_answered(t, _MED_DAYS, {"valueInteger": int(days)}))
    doses = med.get("doses_per_day")
    if doses is not None:
        children.append(_answered(t, _MED_DOSES, {"valueDecimal": doses}))
    group: Json = {"linkId": MEDICATIONS, "text": t.question[MEDICATIONS]}
    if children:
        group["item"] = children
    return group, _answer_html(MEDICATIONS, med)


def _group(t: Tables, link_id: str, value: Any, items: list[Json]) -> str:
    gated = _gate_answer(link_id, value, items)
    if not value and gated:
        return NONE_HTML
    if not value:  # given and empty = none: one group item without child items
        items.append({"linkId": link_id, "text": t.question[link_id]})
        return NONE_HTML
    meds = [_medication(t, med) for med in value]
    items.extend(group for group, _ in meds)
    return "; ".join(text for _, text in meds)


def _number_item(t: Tables, link_id: str, kind: Kind, value: Any) -> tuple[Json, str]:
    """(item, narrative row) of a numeric answer, built once per value and item.

    A few values per item recur (session minutes, ages), and wording them is the
    costly part. Keyed by ``repr``: ``1`` and ``1.0``, ``0.0`` and ``-0.0`` are
    equal as keys but written differently.
    """
    key = (link_id, repr(value))
    hit = t.qr_number.get(key)
    if hit is None:
        items: list[Json] = []
        shown = _RENDERERS[kind](t, link_id, value, items)
        hit = _bounded_put(t.qr_number, key, (items[0], _row(t.label_html[link_id], shown)))
    return hit


_NUMBERS = (Kind.INTEGER, Kind.DECIMAL)

_RENDERERS: dict[Kind, Renderer] = {
    Kind.CODE: _code,
    Kind.INTEGER: _integer,
    Kind.DECIMAL: _decimal,
    Kind.STRING: _text,
    Kind.REFERENCE: _text,
    Kind.CODES: _codes,
    Kind.GROUP: _group,
}


def render_questionnaire_response(
    request: Mapping[str, Any],
    t: Tables,
    *,
    questionnaire: str,
    authored: str,
    subject: Json | None,
    respondent_html: str,
    head: Json = QUESTIONNAIRE_RESPONSE,
    gates: Mapping[str, bool] = NO_GATES,
) -> Json:
    """The QuestionnaireResponse resource for a validated request.

    ``respondent_html`` (escaped) heads the narrative: who gave the answers. ``head``
    holds its first elements (``resourceType``, and ``id``/``meta`` when stored).
    ``gates`` are the yes/no answers that open the lists as the caller gave them
    (gate linkId → answer, :attr:`MappedRequest.gates`): a yes whose list is unknown
    becomes the gate item answered yes without a list (the list is optional), and a
    no given with listed members is recorded as the yes they imply (the list is
    enabled only after a yes), each with a narrative row that says so.
    """
    items: list[Json] = []
    rows: list[str] = []
    qr_bool = t.qr_bool
    qr_code = t.qr_code
    gated_sections = _GATED_SECTIONS if gates else frozenset()
    for section, entries in _SECTION_LAYOUT:
        source = (request.get(section) if section is not None else request) or (
            {} if section in gated_sections else None
        )
        if source is None:
            continue
        for key, link_id, kind in entries:
            value = source.get(key)
            if gates and link_id in GATE_OF and _gate_given(gates, link_id, value, items, rows):
                continue
            if value is None:
                continue
            # Fast path: yes/no and single-code answers are prebuilt, numbers cached,
            # row included.
            if kind is Kind.BOOLEAN:
                item, row = qr_bool[link_id][value]
            elif kind is Kind.CODE and value in qr_code[link_id]:
                item, row = qr_code[link_id][value]
            elif kind in _NUMBERS:
                item, row = _number_item(t, link_id, kind, value)
            else:
                shown = _RENDERERS[kind](t, link_id, value, items)
                rows.append(f"<tr><td>{t.label_html[link_id]}</td><td>{shown}</td></tr>")
                continue
            items.append(item)
            rows.append(row)

    given_by = f"<p>Answers given by: {respondent_html}.</p>"
    body = (
        (
            f"<p><b>Intake answers</b>. Questions not listed were not answered (unknown).</p>"
            f"{given_by}<table><thead><tr><th>Question</th><th>Answer</th></tr></thead><tbody>"
            + "".join(rows)
            + "</tbody></table>"
        )
        if rows
        else f"<p><b>Intake answers</b>: none given; every answer is unknown.</p>{given_by}"
    )
    resource: Json = {
        **head,
        "text": narrative(body),
        "questionnaire": questionnaire,
        "status": "completed",
    }
    if subject is not None:
        resource["subject"] = subject
    resource["authored"] = authored
    if items:  # FHIR JSON has no empty arrays
        resource["item"] = items
    return resource


# --- QuestionnaireResponse → request --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One structural problem of a QuestionnaireResponse: one OperationOutcome issue.

    ``expression`` is the FHIRPath of the offending element
    (``QuestionnaireResponse.item[3].answer[0]``); ``link_id`` names the item;
    ``code`` is the FHIR IssueType (``invalid``, ``value``, ``code-invalid``, ``required``).
    """

    message: str
    expression: str
    link_id: str | None = None
    code: str = "invalid"

    def rebased(self, root: str) -> Problem:
        """The same problem with its FHIRPath under ``root`` (a Parameters body)."""
        if root == QR or not self.expression.startswith(QR):
            return self
        return replace(self, expression=root + self.expression[len(QR) :])


class QuestionnaireResponseError(ValueError):
    """A QuestionnaireResponse that cannot be read as a request: every problem found.

    Raised with one problem by the helpers that check one element, and with all
    of them (:attr:`problems`) by :func:`map_questionnaire_response`, which reads
    every item before it gives up, so a client sees every problem at once.
    ``expression``, ``link_id`` and ``code`` are those of the first problem.
    """

    def __init__(
        self,
        message: str,
        *,
        expression: str,
        link_id: str | None = None,
        code: str = "invalid",
    ) -> None:
        super().__init__(message)
        self.problems: tuple[Problem, ...] = (Problem(message, expression, link_id, code),)

    @classmethod
    def of(cls, problems: Sequence[Problem]) -> QuestionnaireResponseError:
        """One error for several problems (at least one)."""
        first = problems[0]
        error = cls(
            first.message, expression=first.expression, link_id=first.link_id, code=first.code
        )
        error.problems = tuple(problems)
        return error

    @property
    def expression(self) -> str:
        return self.problems[0].expression

    @property
    def link_id(self) -> str | None:
        return self.problems[0].link_id

    @property
    def code(self) -> str:
        return self.problems[0].code


QR = "QuestionnaireResponse"
_INDEX = re.compile(r"\[[0-9]+\]")
_LAST_INDEX = re.compile(r"^(.*)\[([0-9]+)\]$")


@dataclass(frozen=True, slots=True)
class MappedRequest:
    """The rebuilt request plus, per JSON path, the FHIRPath it came from.

    ``gates`` are the yes/no answers that open the lists, as given (gate linkId →
    answer): the request cannot carry a yes with nothing listed (unknown) or a no
    beside listed members (the members), so they travel beside it to the renderer.
    """

    request: dict[str, Any]
    expressions: dict[str, str] = field(default_factory=dict)
    gates: dict[str, bool] = field(default_factory=dict)

    def locate(self, json_path: str, root: str = "QuestionnaireResponse") -> tuple[str, str]:
        """(FHIRPath, linkId) of the item a request-schema error at ``json_path`` is about.

        A value error names the answer (``item[3].answer[0]``; for a list member
        ``answer[i]``); a problem of a whole list, group or missing item names the
        closest item that exists, else the QuestionnaireResponse itself.
        """
        link_id = _INDEX.sub("", json_path)
        found = self.expressions.get(json_path)
        if found is not None:
            item = ITEMS.get(link_id)
            if item is not None and item.kind not in (Kind.CODES, Kind.GROUP):
                return f"{found}.answer[0]", link_id
            return found, link_id
        member = _LAST_INDEX.match(json_path)
        if member is not None and member.group(1) in self.expressions:
            return f"{self.expressions[member.group(1)]}.answer[{member.group(2)}]", link_id
        path = json_path
        while "." in path:
            path = path.rsplit(".", 1)[0]
            if path in self.expressions:
                return self.expressions[path], link_id
        return root, link_id


#: Elements of QuestionnaireResponse.item and .item.answer (FHIR R4) besides those we
#: read. Anything else is an error: a misspelt ``answer`` must not turn a symptom
#: into "unknown" (PROTOCOL.md §3 strictness), and a modifierExtension we do not
#: understand must not be ignored (FHIR extensibility rules).
_ITEM_KEYS = frozenset({"id", "extension", "linkId", "definition", "text", "answer", "item"})
_ANSWER_KEYS = frozenset({"id", "extension"})
#: Their rows in the element table, and the item elements the reader reads itself.
_ITEM = "QuestionnaireResponse.item"
_ANSWER = "QuestionnaireResponse.item.answer"
_ITEM_READ = frozenset({"linkId", "answer", "item"})


def _check_keys(
    node: Mapping[str, Any], allowed: frozenset[str], expr: str, link_id: str | None
) -> None:
    """Raise the first problem of an item or answer's own elements (names, JSON types).

    The elements the reader reads (``linkId``, ``answer``, ``item``, value[x]) are
    checked where they are read; the others against the element table.
    """
    answer = allowed is _ANSWER_KEYS
    for key in node:
        if key == "modifierExtension":
            message = f"modifierExtension on {link_id} is not understood, so it cannot be ignored"
        elif key == "item" and answer:
            message = f"answers to {link_id} take no nested items"
        else:
            continue
        raise QuestionnaireResponseError(message, expression=f"{expr}.{key}", link_id=link_id)
    values = frozenset(key for key in node if str(key).startswith("value"))
    row, read, what = (_ANSWER, values, "an answer") if answer else (_ITEM, _ITEM_READ, "an item")
    for fault in element_problems(node, row, expr, read=read, what=f"{what} of {link_id}"):
        raise QuestionnaireResponseError(
            fault.message, expression=fault.expression, link_id=link_id, code=fault.code
        )


#: A coding's code is the request schema's to check (its enum names the answer).
_CODE = frozenset({"code"})

_VALUE_KEY = {
    Kind.BOOLEAN: ("valueBoolean",),
    Kind.INTEGER: ("valueInteger",),
    Kind.DECIMAL: ("valueDecimal", "valueInteger"),
    Kind.CODE: ("valueCoding",),
    Kind.CODES: ("valueCoding",),
    Kind.STRING: ("valueString",),
    Kind.REFERENCE: ("valueString",),
}


def _answer_value(
    answer: Any, kind: Kind, link_id: str, expression: str, systems: Mapping[str, str] | None
) -> Any:
    if not isinstance(answer, Mapping):
        raise QuestionnaireResponseError(
            "answer must be an object", expression=expression, link_id=link_id, code="value"
        )
    _check_keys(answer, _ANSWER_KEYS, expression, link_id)
    keys = _VALUE_KEY[kind]
    present = [key for key in answer if key.startswith("value")]
    if len(present) != 1 or present[0] not in keys:
        raise QuestionnaireResponseError(
            f"answer to {link_id} must have exactly one of {', '.join(keys)}",
            expression=expression,
            link_id=link_id,
            code="value",
        )
    value = answer[present[0]]
    if kind is Kind.BOOLEAN:
        ok = isinstance(value, bool)
    elif present[0] == "valueInteger":
        # An integral JSON number (3.0) is an integer, as in PROTOCOL.md §3 and JSON Schema.
        ok = not isinstance(value, bool) and (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        )
    elif kind is Kind.DECIMAL:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind in (Kind.CODE, Kind.CODES):
        code = value.get("code") if isinstance(value, Mapping) else None
        ok = isinstance(code, str)
        if ok and systems is not None and value.get("system") != systems[link_id]:
            raise QuestionnaireResponseError(
                f"coding of {link_id} must use system {systems[link_id]}",
                expression=f"{expression}.valueCoding",
                link_id=link_id,
                code="code-invalid",
            )
        if ok:  # the rest of the coding: names and JSON types (a display is a string …)
            where = f"{expression}.valueCoding"
            for fault in element_problems(value, "Coding", where, read=_CODE):
                raise QuestionnaireResponseError(
                    fault.message, expression=fault.expression, link_id=link_id, code=fault.code
                )
        value = code
    else:
        ok = isinstance(value, str)
    if not ok:
        raise QuestionnaireResponseError(
            f"answer to {link_id} has the wrong type for a {kind.value} item",
            expression=f"{expression}.{present[0]}",
            link_id=link_id,
            code="value",
        )
    return value


def _item_systems(canonical_base: str) -> dict[str, str]:
    return {
        item.link_id: cs.codesystem_url(canonical_base, cs.item_codesystem_id(item.link_id))
        for item in cs.coded_items()
    }


def _read_scalar(
    node: Mapping[str, Any], kind: Kind, link_id: str, expr: str, systems: Mapping[str, str] | None
) -> tuple[bool, Any]:
    """(present, value) of a non-group item; an item without answers is unknown.

    A list item reports every bad answer; its readable answers are then dropped
    too, so request-schema errors cannot name an answer by a shifted index.
    """
    _check_keys(node, _ITEM_KEYS, expr, link_id)
    answers = node.get("answer", [])
    if not isinstance(answers, list):
        raise QuestionnaireResponseError(
            "answer must be a list", expression=f"{expr}.answer", link_id=link_id, code="value"
        )
    if "item" in node:
        raise QuestionnaireResponseError(
            f"{link_id} is a question and takes no nested items",
            expression=f"{expr}.item",
            link_id=link_id,
        )
    if kind is Kind.CODES:
        codes: list[Any] = []
        problems: list[Problem] = []
        for i, answer in enumerate(answers):
            try:
                codes.append(_answer_value(answer, kind, link_id, f"{expr}.answer[{i}]", systems))
            except QuestionnaireResponseError as exc:
                problems.extend(exc.problems)
        if problems:
            raise QuestionnaireResponseError.of(problems)
        return True, codes
    if not answers:
        return False, None
    if len(answers) > 1:
        raise QuestionnaireResponseError(
            f"{link_id} takes one answer",
            expression=f"{expr}.answer[1]",
            link_id=link_id,
            code="value",
        )
    return True, _answer_value(answers[0], kind, link_id, f"{expr}.answer[0]", systems)


def _read_medication(
    node: Mapping[str, Any],
    expr: str,
    json_path: str,
    systems: Mapping[str, str] | None,
    problems: list[Problem],
) -> tuple[dict[str, Any], dict[str, str]]:
    """One medication; a bad group raises, a bad child item is added to ``problems``."""
    _check_keys(node, _ITEM_KEYS, expr, MEDICATIONS)
    if node.get("answer", []) != []:
        raise QuestionnaireResponseError(
            f"{MEDICATIONS} is a group and takes no answers",
            expression=f"{expr}.answer",
            link_id=MEDICATIONS,
        )
    medication: dict[str, Any] = {}
    expressions: dict[str, str] = {}
    children = node.get("item", [])
    if not isinstance(children, list):
        raise QuestionnaireResponseError(
            "item must be a list", expression=f"{expr}.item", link_id=MEDICATIONS, code="value"
        )
    seen: set[str] = set()
    for j, child in enumerate(children):
        child_expr = f"{expr}.item[{j}]"
        link_id = child.get("linkId") if isinstance(child, Mapping) else None
        item = ITEMS.get(link_id) if isinstance(link_id, str) else None
        try:
            if item is None or not link_id.startswith(MEDICATIONS + "."):
                raise QuestionnaireResponseError(
                    f"unknown medication item {link_id!r}",
                    expression=child_expr,
                    link_id=link_id if isinstance(link_id, str) else None,
                )
            if item.name in seen:
                raise QuestionnaireResponseError(
                    f"{link_id} appears twice in one medication",
                    expression=child_expr,
                    link_id=link_id,
                )
            seen.add(item.name)
            present, value = _read_scalar(child, item.kind, link_id, child_expr, systems)
        except QuestionnaireResponseError as exc:
            problems.extend(exc.problems)
            continue
        if present:
            medication[item.name] = value
            expressions[f"{json_path}.{item.name}"] = child_expr
    return medication, expressions


#: The elements of a ``subject`` Reference read here; the others are checked against the
#: element table. ``identifier`` is refused on purpose (see :meth:`_Reader.subject`).
_SUBJECT_READ = frozenset({"reference", "type", "identifier"})
_PATIENT_REFERENCE = re.compile(ITEMS["patient.reference"].pattern or "")
#: ``scheme://host/.../Type/id`` with an optional ``/_history/version``.
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://.*?([A-Za-z]+)/([^/]+)(?:/_history/[^/]+)?/?$")
_RELATIVE = re.compile(r"^([A-Za-z]+)/([^/]+)")
_SEND = (
    "send subject.reference as Patient/<id> (relative to the FHIR server the result is filed on)"
)


def _unusable_reference(reference: str, answer: str | None) -> str:
    """Why a subject reference that is not ``Patient/<id>`` cannot name the patient."""
    absolute = _ABSOLUTE.match(reference)
    kind, ident = absolute.groups() if absolute else (None, None)
    if absolute is None and (relative := _RELATIVE.match(reference)) is not None:
        kind, ident = relative.groups()
    shown = repr(reference[:80])
    if reference.lower().startswith("urn:"):
        why = "points into a Bundle, and a $triage body has none to resolve it in"
    elif reference.startswith("#"):
        why = "points to a contained resource, which the result cannot carry"
    elif kind is not None and kind != "Patient":
        return f"subject {shown} names a {kind}, not a Patient: {_SEND}"
    elif absolute and answer is not None and ident != answer.removeprefix("Patient/"):
        return (
            f"subject {shown} and the patient.reference answer {answer[:80]!r} "
            "name different patients"
        )
    elif "://" in reference:
        why = (
            "is absolute, and the result can only name the patient as Patient/<id>, "
            "which resolves against whatever server it is filed on"
        )
    else:
        why = "is not Patient/<id> with an id of 1 to 64 of A-Z a-z 0-9 - ."
    return f"subject {shown} {why}: {_SEND}"


class _Reader:
    """Accumulates the request and every problem while walking the top-level items once."""

    def __init__(self, systems: Mapping[str, str] | None) -> None:
        self.systems = systems
        self.request: dict[str, Any] = {}
        self.expressions: dict[str, str] = {}
        self.seen: set[str] = set()
        self.empty_medications = False
        self.gates: dict[str, tuple[bool, str]] = {}  # list linkId → (answer, FHIRPath)
        self.problems: list[Problem] = []
        self.unreadable_sections: set[str] = set()

    def target(self, link_id: str) -> dict[str, Any]:
        head, _, rest = link_id.partition(".")
        return (
            self.request.setdefault(head, {}) if rest and head in _SECTION_NAMES else self.request
        )

    def item(self, node: Any, expr: str) -> None:
        """Read one top-level item; its problems are collected, not raised."""
        link_id = node.get("linkId") if isinstance(node, Mapping) else None
        item = ITEMS.get(link_id) if isinstance(link_id, str) else None
        try:
            if isinstance(link_id, str) and link_id in GATES:
                self.gate(node, link_id, expr)
                return
            if item is None or link_id.startswith(MEDICATIONS + "."):
                raise QuestionnaireResponseError(
                    f"unknown linkId {link_id!r}",
                    expression=expr,
                    link_id=link_id if isinstance(link_id, str) else None,
                )
            if item.kind is Kind.GROUP:
                self.group(node, link_id, expr)
            else:
                self.question(node, link_id, item.kind, expr)
        except QuestionnaireResponseError as exc:
            self.problems.extend(exc.problems)
            if item is not None:
                # Keep its section, even if now empty: the request schema then names the
                # missing required items one by one, not the section as a whole, and
                # only the unreadable item's own "missing" repeats this problem.
                self.unreadable_sections.add(link_id.partition(".")[0])

    def group(self, node: Mapping[str, Any], link_id: str, expr: str) -> None:
        meds = self.target(link_id).setdefault(link_id.rsplit(".", 1)[1], [])
        json_path = f"{link_id}[{len(meds)}]"
        medication, child_expressions = _read_medication(
            node, expr, json_path, self.systems, self.problems
        )
        # A group without child items means "none": it must be the only medications group.
        # A group with child items is a medication, even if none is answered (the
        # request schema then reports its missing class).
        listed = bool(node.get("item"))
        if (listed and self.empty_medications) or (not listed and link_id in self.seen):
            raise QuestionnaireResponseError(
                "an empty medications group (meaning none) must be the only one",
                expression=expr,
                link_id=link_id,
            )
        if listed:
            meds.append(medication)
            self.expressions[json_path] = expr
            self.expressions.update(child_expressions)
        else:
            self.empty_medications = True
        self.expressions.setdefault(link_id, expr)
        self.seen.add(link_id)

    def question(self, node: Mapping[str, Any], link_id: str, kind: Kind, expr: str) -> None:
        if link_id in self.seen:
            raise QuestionnaireResponseError(
                f"{link_id} appears twice", expression=expr, link_id=link_id
            )
        self.seen.add(link_id)
        present, value = _read_scalar(node, kind, link_id, expr, self.systems)
        if present:
            self.target(link_id)[link_id.rsplit(".", 1)[-1]] = value
            self.expressions[link_id] = expr

    def gate(self, node: Mapping[str, Any], gate: str, expr: str) -> None:
        """Remember the yes/no answer that opens a list; applied once all items are read."""
        if gate in self.seen:
            raise QuestionnaireResponseError(f"{gate} appears twice", expression=expr, link_id=gate)
        self.seen.add(gate)
        present, value = _read_scalar(node, Kind.BOOLEAN, gate, expr, self.systems)
        if present:
            self.gates[GATES[gate]] = (value, f"{expr}.answer[0]")

    def apply_gates(self) -> None:
        """No → the list is given and empty; yes → an empty list is unknown, not none.

        Listed members always count, whatever the gate says: a medication or condition
        that is named is never dropped (adding one never makes the level less urgent).
        """
        for list_id, (answer, expr) in self.gates.items():
            section = self.target(list_id)
            key = list_id.rsplit(".", 1)[1]
            if section.get(key):
                continue
            if answer:
                section.pop(key, None)
                self.expressions.pop(list_id, None)
            else:
                section[key] = []
                self.expressions.setdefault(list_id, expr)

    def subject(self, subject: Any) -> None:
        """Check ``subject`` against the ``patient.reference`` answer, or stand in for it.

        Results filed under the wrong patient are worse than a refused request,
        so a subject is used only in the one form the result carries, a relative
        ``Patient/<id>``, and only when it agrees with the answer. Every other
        form is refused, never dropped: an absolute URL (the result could
        resolve to another server's patient), ``urn:``/contained references
        (nothing to resolve them in), an ``identifier`` (cannot be carried or
        compared), a ``display`` alone, another resource type.
        """
        where = f"{QR}.subject"
        if not isinstance(subject, Mapping):
            self.problems.append(Problem("subject must be a Reference object", where, code="value"))
            return
        if "identifier" in subject:
            self.problems.append(
                Problem(
                    "a subject identifier cannot be carried into the result or checked "
                    f"against the patient.reference answer: {_SEND}, without identifier",
                    f"{where}.identifier",
                    code="value",
                )
            )
        faults = element_problems(subject, "Reference", where, read=_SUBJECT_READ, what="subject")
        self.problems += [Problem(f.message, f.expression, code=f.code) for f in faults]
        kind = subject.get("type", "Patient")
        if kind != "Patient":
            self.problems.append(
                Problem(
                    f"subject.type {str(kind)[:40]!r} is not Patient: {_SEND}",
                    f"{where}.type",
                    code="value",
                )
            )
        if "reference" not in subject:
            if "identifier" not in subject:  # already reported
                self.problems.append(
                    Problem(
                        "subject names no patient by reference (a display alone cannot "
                        f"identify one): {_SEND}, or leave subject out",
                        f"{where}.reference",
                        code="required",
                    )
                )
            return
        reference = subject["reference"]
        if not isinstance(reference, str):
            self.problems.append(
                Problem("subject.reference must be a string", f"{where}.reference", code="value")
            )
            return
        patient = self.request.setdefault("patient", {})
        given = patient.get("reference")
        answer = given if isinstance(given, str) else None
        if _PATIENT_REFERENCE.fullmatch(reference) is None:
            self.problems.append(
                Problem(
                    _unusable_reference(reference, answer),
                    f"{where}.reference",
                    "patient.reference",
                    "value",
                )
            )
        elif any(p.link_id == "patient.reference" for p in self.problems):
            return  # the answer could not be read: nothing to compare, and refused anyway
        elif given is None:
            patient["reference"] = reference
            self.expressions["patient.reference"] = f"{where}.reference"
        elif given != reference:
            self.problems.append(
                Problem(
                    f"subject {reference[:80]!r} and the patient.reference answer "
                    f"{str(given)[:80]!r} name different patients",
                    f"{where}.reference",
                    "patient.reference",
                    "value",
                )
            )


def read_questionnaire_response(
    qr: Mapping[str, Any], *, canonical_base: str | None = None
) -> tuple[MappedRequest, tuple[Problem, ...]]:
    """The request read from every item that could be read, and every problem found.

    The request is complete only without problems; with problems it is what the
    readable items say, so the request schema can still report their values.
    A body that is not a QuestionnaireResponse, or whose ``item`` is not a list,
    cannot be read at all and raises.
    """
    if not isinstance(qr, Mapping) or qr.get("resourceType") != QR:
        raise QuestionnaireResponseError("expected a QuestionnaireResponse", expression=QR)
    nodes = qr.get("item", [])
    if not isinstance(nodes, list):
        raise QuestionnaireResponseError(
            "item must be a list", expression=f"{QR}.item", code="value"
        )
    reader = _Reader(_item_systems(canonical_base) if canonical_base is not None else None)
    for i, node in enumerate(nodes):
        reader.item(node, f"{QR}.item[{i}]")
    reader.apply_gates()
    if "subject" in qr:
        reader.subject(qr["subject"])
    for section in reader.unreadable_sections & _SECTION_NAMES:
        reader.request.setdefault(section, {})
    request = {
        key: value
        for key, value in reader.request.items()
        if value != {} or key in reader.unreadable_sections
    }
    gates = {GATE_OF[list_id]: answer for list_id, (answer, _) in reader.gates.items()}
    return MappedRequest(request, reader.expressions, gates), tuple(reader.problems)


def map_questionnaire_response(
    qr: Mapping[str, Any], *, canonical_base: str | None = None
) -> MappedRequest:
    """Rebuild the request dict from a QuestionnaireResponse of our intake Questionnaire.

    Only the shape is checked here (known linkIds, answer types, no duplicates,
    the subject); ranges and enum membership are the request schema's job, and
    ``MappedRequest.expressions`` lets its errors name the item. With
    ``canonical_base`` the codings must use our item CodeSystems. Raises one
    QuestionnaireResponseError listing every problem.
    """
    mapped, problems = read_questionnaire_response(qr, canonical_base=canonical_base)
    if problems:
        raise QuestionnaireResponseError.of(problems)
    return mapped


def questionnaire_response_to_request(
    qr: Mapping[str, Any], *, canonical_base: str | None = None
) -> dict[str, Any]:
    """The request dict a QuestionnaireResponse stands for; see map_questionnaire_response."""
    return map_questionnaire_response(qr, canonical_base=canonical_base).request


def gate_answers(qr: Mapping[str, Any]) -> dict[str, bool]:
    """The yes/no answers that open the lists in one of our QuestionnaireResponses.

    For readers of a stored result (the clinician report): a yes whose list is
    unknown is in the QuestionnaireResponse only, never in the request.
    """
    found: dict[str, bool] = {}
    for node in qr.get("item", ()):
        if node.get("linkId") in GATES:
            answers = node.get("answer") or ()
            if answers and isinstance(answers[0].get("valueBoolean"), bool):
                found[node["linkId"]] = answers[0]["valueBoolean"]
    return found
