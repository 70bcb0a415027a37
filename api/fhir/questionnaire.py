"""The intake Questionnaire (FHIR R4), generated from ``triage.vocabulary``.

Its item structure is exactly the one our QuestionnaireResponses use (PROTOCOL.md
§9): flat items whose ``linkId`` is the vocabulary path, except
``history.medications``, a repeating group with one child per medication field.
So a QuestionnaireResponse from ``POST /v1/triage`` answers this Questionnaire,
and a form renderer produces what ``$triage`` reads. Nothing here is typed twice:
kinds, codes, units, ranges, lengths and help text all come from the vocabulary,
the ``required`` flags from the §5 screen in ``triage.knowledge_base``.
"""

from __future__ import annotations

from typing import Any

from api.fhir import codesystems as cs
from api.fhir._tables import Json, esc, narrative, published
from api.fhir.questionnaire_response import GATE_OF, GATES
from triage import KNOWLEDGE_BASE_VERSION, wording
from triage.knowledge_base import SCREEN
from triage.vocabulary import SECTIONS, TOP_LEVEL_ITEMS, Item, Kind

# --- extension and code system URLs (FHIR R4 core extensions and SDC) ----------------------

EXT_UNIT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
EXT_MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
EXT_MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
EXT_REGEX = "http://hl7.org/fhir/StructureDefinition/regex"
EXT_HIDDEN = "http://hl7.org/fhir/StructureDefinition/questionnaire-hidden"
EXT_ITEM_CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"
ITEM_CONTROL = "http://hl7.org/fhir/questionnaire-item-control"

#: The only items with ``enableWhen``: questions no caller can answer without the
#: answer they depend on. Symptoms that other rules read are never hidden (issue 4).
#: Not the time since a head impact or a faint during exercise: a caller may give them
#: without the yes they detail, and every answer given is carried in our
#: QuestionnaireResponse, where an answer to a disabled item is an error to the HL7
#: validator; their help text says what they detail.
FOLLOW_UPS: dict[str, tuple[str, str, bool]] = {
    # linkId: (question, operator, answerBoolean)
    # Inside one medication group: details are asked once its class is known.
    "history.medications.days_since_start": ("history.medications.class", "exists", True),
    "history.medications.doses_per_day": ("history.medications.class", "exists", True),
    # The lists are asked only after a yes to their gating question, so "no" records
    # "none" in any SDC renderer and an empty repeating group never blocks a form.
    **{list_id: (gate, "=", True) for gate, list_id in GATES.items()},
}

#: Answers longer than this are collected as ``text`` (multi-line), shorter as ``string``.
_LONG_TEXT = 255

_TYPES: dict[Kind, str] = {
    Kind.BOOLEAN: "boolean",
    Kind.INTEGER: "integer",
    Kind.DECIMAL: "decimal",
    Kind.CODE: "choice",
    Kind.CODES: "choice",
    Kind.STRING: "string",
    # Our QuestionnaireResponses carry patient.reference as valueString (§9).
    Kind.REFERENCE: "string",
    Kind.GROUP: "group",
}


def help_link_id(link_id: str) -> str:
    """linkId of the help text item of a question (never a vocabulary path)."""
    return f"{link_id}-help"


def _screen() -> tuple[frozenset[str], dict[str, str]]:
    """(always required screen items, conditional screen item → when it is required)."""
    always = frozenset(s.link_id for s in SCREEN if s.required_when is None)
    conditional = {
        s.link_id: s.required_when.describe() for s in SCREEN if s.required_when is not None
    }
    return always, conditional


def _number(item: Item, value: float) -> Json:
    if item.kind is Kind.INTEGER:
        return {"valueInteger": int(value)}
    return {"valueDecimal": value}


def _extensions(item: Item) -> list[Json]:
    out: list[Json] = []
    if item.unit is not None:
        out.append(
            {
                "url": EXT_UNIT,
                "valueCoding": {
                    "system": cs.UCUM,
                    "code": item.unit.code,
                    "display": item.unit.display,
                },
            }
        )
    if item.minimum is not None:
        out.append({"url": EXT_MIN_VALUE, **_number(item, item.minimum)})
    if item.maximum is not None:
        out.append({"url": EXT_MAX_VALUE, **_number(item, item.maximum)})
    # No questionnaire-minOccurs/maxOccurs on the lists: ``required`` already asks for
    # one answer, the options bound the count, and the HL7 validator applies those two
    # extensions off by one (exactly the minimum, or the maximum, is an error).
    if item.kind is Kind.REFERENCE:
        # Not a question for the person: an EHR sets QuestionnaireResponse.subject.
        out.append({"url": EXT_HIDDEN, "valueBoolean": True})
    if item.pattern is not None:
        # FHIR regexes match the whole value: no anchors.
        regex = item.pattern.removeprefix("^").removesuffix("$")
        out.append({"url": EXT_REGEX, "valueString": regex})
    return out


#: ``screen_when`` of a question that is always part of the screen when it is asked.
ALWAYS = "always"
#: Screen questions are not ``required``: a form must not push someone who does not
#: know into answering no (an unknown answer is asked again; a wrong no hides a flag).
UNKNOWN_HELP = "If you do not know, leave it unanswered (unknown, not no)."
#: In plain words for a parent: the form's description names the red-flag screen.
SCREEN_HELP = "Important for safety: please answer if you can. " + UNKNOWN_HELP


def _help(link_id: str, kind: Kind | None, screen_when: str | None) -> Json | None:
    """A display child with the itemControl ``help``: the SDC way to attach help text."""
    text = wording.help_text(link_id)
    parts = [text] if text else []
    if kind is Kind.REFERENCE:
        parts.append(
            "Hidden: taken from QuestionnaireResponse.subject when not answered; "
            "when both are given they must name the same Patient."
        )
    if screen_when == ALWAYS:
        parts.append(SCREEN_HELP)
    elif screen_when is not None:
        # Which earlier answers make it so is in the description, for integrators.
        parts.append(
            "After some answers this matters for safety: please answer if you can. " + UNKNOWN_HELP
        )
    if not parts:
        return None
    return {
        "extension": [
            {
                "url": EXT_ITEM_CONTROL,
                "valueCodeableConcept": {
                    "coding": [{"system": ITEM_CONTROL, "code": "help", "display": "Help-Button"}],
                    "text": "Help",
                },
            }
        ],
        "linkId": help_link_id(link_id),
        "text": " ".join(parts),
        "type": "display",
    }


def _screen_when(link_id: str, always: frozenset[str], conditional: dict[str, str]) -> str | None:
    """:data:`ALWAYS`, when (a condition's text) or None: is the question part of the screen?

    A follow-up is asked only when its condition holds, which is when the screen needs it.
    A list opened by a yes/no question is asked about by that question (:func:`_gate`).
    """
    if link_id in GATE_OF:  # a list: its yes/no question carries the help
        return None
    if link_id in always or (link_id in FOLLOW_UPS and link_id in conditional):
        return ALWAYS
    return conditional.get(link_id)


def _item(item: Item, base: str, always: frozenset[str], conditional: dict[str, str]) -> Json:
    link_id = item.link_id
    out: Json = {}
    extensions = _extensions(item)
    if extensions:
        out["extension"] = extensions
    out["linkId"] = link_id
    out["code"] = [
        {
            "system": cs.codesystem_url(base, cs.INTAKE_ITEM),
            "code": link_id,
            "display": item.text,
        }
    ]
    out["text"] = wording.question(link_id)
    kind_type = _TYPES[item.kind]
    if item.kind is Kind.STRING and (item.max_length or 0) > _LONG_TEXT:
        kind_type = "text"
    out["type"] = kind_type
    follow_up = FOLLOW_UPS.get(link_id)
    if follow_up is not None:
        question, operator, answer = follow_up
        out["enableWhen"] = [{"question": question, "operator": operator, "answerBoolean": answer}]
    if item.required:  # what the request itself requires; never the screen (see _help)
        out["required"] = True
    if item.kind in (Kind.CODES, Kind.GROUP):
        out["repeats"] = True
    if item.max_length is not None:
        out["maxLength"] = item.max_length
    if item.codes:
        system = cs.codesystem_url(base, cs.item_codesystem_id(link_id))
        options = []
        for code in item.codes:
            option: Json = {
                "valueCoding": {"system": system, "code": code.code, "display": code.display}
            }
            if code.code == item.default:
                option["initialSelected"] = True
            options.append(option)
        out["answerOption"] = options
    children = [_item(child, base, always, conditional) for child in item.children]
    help_item = _help(link_id, item.kind, _screen_when(link_id, always, conditional))
    if help_item is not None:
        children.insert(0, help_item)
    if children:
        out["item"] = children
    return out


def _gate(gate: str, screen_when: str | None) -> Json:
    """The yes/no question that opens a list; "no" means the list is given and empty."""
    out: Json = {"linkId": gate, "text": wording.question(gate), "type": "boolean"}
    help_item = _help(gate, None, screen_when)
    if help_item is not None:
        out["item"] = [help_item]
    return out


def _description() -> str:
    """The conventions a form designer or integrator needs, as markdown."""
    _, conditional = _screen()
    conditional_list = "; ".join(f"`{link}` if {when}" for link, when in conditional.items())
    return (
        "Intake for the twitch-triage protocol (PROTOCOL.md §3): involuntary muscle "
        "twitching, tics, spasms or cramps around exercise. Post the completed "
        "QuestionnaireResponse to `QuestionnaireResponse/$triage` for a triage Bundle.\n\n"
        "Conventions:\n\n"
        "* `linkId` is the vocabulary path (`symptoms.headache`); items are flat, except "
        "`history.medications`, one repeating group per medication.\n"
        "* **Unknown**: a question without an item (or an item without answers) is unknown, "
        "never assumed absent. For yes/no questions, answer `false` explicitly to exclude "
        "a symptom.\n"
        "* **None** for medications and conditions: each list is opened by a yes/no "
        "question of its own (`history.medications.any`, `history.conditions.any`, not "
        "vocabulary paths) and enabled only after a yes (`enableWhen`), so any SDC "
        'renderer can record "none" (answer no) and no required item inside an empty '
        "repeating group blocks a form. `$triage` reads no as the empty list `[]` and a yes "
        "without any listed member as unknown (a yes is not none); listed members always "
        "count, whatever the yes/no answer. Not `questionnaire-optionExclusive`: LHC-Forms, "
        "a widely used renderer, does not support it.\n"
        "* **Empty list**: for the list questions `twitching.body_sites`, "
        "`history.conditions` and `history.medications`, an item that is present with no "
        "answer (for medications: one `history.medications` group item without child "
        'items) also means the list was given and is empty ("none"), unless its yes/no '
        "question says yes; a missing item means unknown. A given list is complete: a "
        "condition or medication class it does not contain is absent.\n"
        "* `required` marks only what the request itself needs: the age, the body sites "
        "and each listed medication's class. The minimum red-flag screen (PROTOCOL.md §5) is "
        "not `required`: a form must let someone who does not know leave a question "
        "unanswered (unknown) rather than push them to guess no, and a completed "
        "QuestionnaireResponse with unknown screen answers still conforms to this "
        "Questionnaire. Each screen question says in its help text, in plain words, that "
        "it matters for safety and that an unknown answer may stay unanswered; "
        "`$triage` treats a missing screen answer as unknown and reports it as the "
        "next question to ask (rule RF-SCREEN-INCOMPLETE), not as an error. The screen "
        f"also needs {conditional_list}.\n"
        "* `enableWhen` is used only where an answer needs the one before it (the "
        "details of one medication, after its class; the two lists, after their yes/no "
        "question). `$triage` "
        "still reads every answer it is given, "
        "enabled or not: an answer is never dropped.\n"
        "* Codings use the product CodeSystem of their item "
        "(`{canonical base}/CodeSystem/{linkId with . and _ as -}`); numbers carry their "
        "UCUM unit (questionnaire-unit) and range (minValue, maxValue); answers outside "
        "them are rejected by `$triage` with an OperationOutcome naming the item."
    )


def _narrative(items: list[Json]) -> Json:
    always, conditional = _screen()
    rows = []

    def walk(nodes: list[Json], depth: int) -> None:
        for node in nodes:
            if node["type"] == "display":
                continue
            when = _screen_when(node["linkId"], always, conditional)
            if node["linkId"] in GATES:
                when = conditional.get(GATES[node["linkId"]])
            flags = "" if when is None else "always" if when == ALWAYS else "after some answers"
            rows.append(
                f"<tr><td>{'&#160;&#160;' * depth}{esc(node['linkId'])}</td>"
                f"<td>{esc(node['text'])}</td><td>{esc(node['type'])}</td><td>{flags}</td></tr>"
            )
            walk(node.get("item", []), depth + 1)

    walk(items, 0)
    return narrative(
        "<p><b>Twitch-triage intake</b> (version "
        f"{esc(KNOWLEDGE_BASE_VERSION)}): one question per item of the request vocabulary. "
        "Unanswered questions are unknown.</p>"
        "<table><thead><tr><th>linkId</th><th>Question</th><th>Type</th><th>Screen</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def build_questionnaire(canonical_base: str, *, date: str) -> dict[str, Any]:
    """The R4 intake Questionnaire; ``url|version`` is what our QuestionnaireResponses cite."""
    always, conditional = _screen()
    vocabulary = [item for section in SECTIONS for item in section.items]
    vocabulary.extend(TOP_LEVEL_ITEMS)
    items = []
    for item in vocabulary:
        if item.link_id in GATE_OF:
            # The list is a screen item through its gate: say so where the person answers.
            items.append(_gate(GATE_OF[item.link_id], conditional.get(item.link_id)))
        items.append(_item(item, canonical_base, always, conditional))
    return {
        "resourceType": "Questionnaire",
        "id": cs.QUESTIONNAIRE_ID,
        "text": _narrative(items),
        **published(
            cs.questionnaire_url(canonical_base),
            version=KNOWLEDGE_BASE_VERSION,
            name="TwitchTriageIntake",
            title="Twitch-triage intake",
            date=date,
        ),
        "subjectType": ["Patient"],
        "description": _description(),
        "purpose": "Collects the answers the twitch-triage protocol needs to triage one person "
        "with muscle twitching around exercise. Decision support for clinicians; it does not "
        "diagnose.",
        "item": items,
    }
