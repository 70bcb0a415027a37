"""Static FHIR fragments, built once per deployment (canonical base).

Rendering runs on every request and must stay far below a millisecond, so every
coding, CodeableConcept, QuestionnaireResponse item and narrative row that does
not depend on the request is built here once and *shared* by every Bundle. Every
shared fragment is frozen (:mod:`api.fhir.frozen`): an in-place edit of a rendered
Bundle's shared part raises instead of corrupting later responses. The app owns
one instance (:class:`api.fhir.context.FhirContext`); nothing here is a module
global keyed by canonical base.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from markupsafe import escape

from api.fhir import codesystems as cs
from api.fhir.frozen import freeze
from triage import wording
from triage.result import LEVEL_DISPLAY, LEVEL_MEANING, Level, Likelihood
from triage.vocabulary import SECTIONS, TOP_LEVEL_ITEMS, Item, Kind, iter_items

Json = dict[str, Any]

#: The linkId of who gave the answers (PROTOCOL.md 1.1 §3; shown in every summary).
RESPONDENT = "respondent"

XHTML_OPEN = '<div xmlns="http://www.w3.org/1999/xhtml">'
XHTML_CLOSE = "</div>"

# Characters XML 1.0 forbids (control characters the request validation lets through
# are only tab, LF and CR; lone surrogates and U+FFFE/U+FFFF cannot appear in XHTML).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


#: Unicode bidi formatting characters: the embeddings and overrides (U+202A-U+202E), the
#: isolates (U+2066-U+2069) and the marks (U+200E, U+200F, U+061C). Displayed as they
#: are, they reorder the text around them ("Trojan Source"): a note could read as
#: something it does not say.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: How :func:`shown` writes a bidi control: its code point, e.g. ``[U+202E]``.
BIDI_MARKER = re.compile(r"\[U\+(061C|200E|200F|202[A-E]|206[6-9])\]")


def _marker(match: re.Match[str]) -> str:
    return f"[U+{ord(match.group()):04X}]"


def shown(text: str) -> str:
    """Free text as it is displayed: every bidi control as a visible ``[U+XXXX]`` marker.

    The one mapping of every display path (report and intake pages, FHIR narratives):
    the controls cannot act, and a reader sees that they were there. Only the display
    changes; stored and returned data stay as sent.
    """
    if _BIDI.search(text) is None:
        return text
    return _BIDI.sub(_marker, text)


def esc(text: str) -> str:
    """Escape free text for a narrative; never inject request text as markup.

    Bidi controls are shown as markers (:func:`shown`), never left to act.
    """
    if _XML_INVALID.search(text):
        text = _XML_INVALID.sub("\ufffd", text)
    return str(escape(shown(text)))


def esc_free(text: str) -> str:
    """A free-text value for a narrative: escaped, bidi controls shown, and isolated.

    FHIR R4 narratives allow HTML 4.0 elements only (no ``<bdi>``) and ``dir`` takes
    ``ltr``/``rtl`` (no ``auto``): a ``<span dir="ltr">``, which HTML5 renderers isolate
    (``unicode-bidi: isolate`` for ``[dir]``) so right-to-left text in a value never
    reorders the label or punctuation around it.
    """
    return f'<span dir="ltr">{esc(text)}</span>'


def narrative(body: str) -> Json:
    """A generated Narrative around already-escaped XHTML ``body``."""
    return {"status": "generated", "div": XHTML_OPEN + body + XHTML_CLOSE}


#: Publisher of every resource we publish under a canonical URL.
PUBLISHER = "twitch-triage"


def published(url: str, *, version: str, name: str, title: str, date: str) -> Json:
    """The metadata every resource we publish under a canonical URL shares (status active)."""
    return {
        "url": url,
        "version": version,
        "name": name,
        "title": title,
        "status": "active",
        "experimental": False,
        "date": date,
        "publisher": PUBLISHER,
    }


class Tables:
    """Every static fragment for one canonical base."""

    def __init__(self, base: str) -> None:
        self.base = base
        url = functools.partial(cs.codesystem_url, base)
        self.level_url = url(cs.TRIAGE_LEVEL)
        self.rule_url = url(cs.RED_FLAG_RULE)
        self.factor_url = url(cs.CONTRIBUTING_FACTOR)
        self.advice_url = url(cs.ADVICE)
        self.likelihood_url = url(cs.LIKELIHOOD)
        self.intake_url = url(cs.INTAKE_ITEM)
        self.observation_url = url(cs.TRIAGE_OBSERVATION)
        self.kb_url = url(cs.KNOWLEDGE_BASE)
        self.questionnaire_url = cs.questionnaire_url(base)

        self._build_observation_codes()
        self._build_levels()
        self._build_items()
        for name, value in list(vars(self).items()):
            setattr(self, name, freeze_fragments(value, _INDEX_DEPTH.get(name, 0)))
        # Caches of fragments keyed by knowledge-base content (finite by construction).
        self.kb_method: dict[str, Json] = {}
        self.kb_component: dict[str, Json] = {}
        self.rule_code: dict[tuple[Any, ...], Json] = {}
        self.factor_code: dict[tuple[Any, ...], Json] = {}
        self.advice_component: dict[tuple[str, str, str], Json] = {}
        self.evidence_static: dict[tuple[Any, ...], tuple[Json, str]] = {}
        self.decisive_static: dict[tuple[Any, ...], tuple[Json, str, str]] = {}
        self.kb_html: dict[str, str] = {}
        #: Narrative, line and components of findings whose evidence is all unknown.
        self.unknown_rule_text: dict[Any, tuple[str, str, list[Json]]] = {}
        #: QR (item, narrative row) of numeric answers, by (linkId, repr of the value).
        self.qr_number: dict[tuple[str, str], tuple[Json, str]] = {}

    # --- observation codes and categories -------------------------------------------

    def obs_coding(self, code: str) -> Json:
        return {
            "system": self.observation_url,
            "code": code,
            "display": cs.OBSERVATION_CODES[code][0],
        }

    def obs_concept(self, code: str) -> Json:
        return {"coding": [self.obs_coding(code)], "text": cs.OBSERVATION_CODES[code][0]}

    def _build_observation_codes(self) -> None:
        survey = {
            "coding": [{"system": cs.OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}]
        }
        self.category_level = [survey]
        self.category_rule = [survey, self.obs_concept("red-flag")]
        self.category_factor = [survey, self.obs_concept("contributing-factor")]
        self.level_code = {
            "coding": [
                {"system": cs.LOINC, "code": cs.LOINC_ACUITY[0], "display": cs.LOINC_ACUITY[1]},
                self.obs_coding("triage-level"),
            ],
            "text": "Triage level",
        }
        self.advice_code = self.obs_concept("advice")
        self.unanswered_code = self.obs_concept("unanswered-screen-item")
        self.decisive_coding = self.obs_coding("decisive-question")
        self.none_listed = self.obs_concept("none")
        # Rule codings a decisive question cites (the rules its answer would fire).
        self.rule_concept = {
            code: {"coding": [{"system": self.rule_url, "code": code, "display": display}]}
            for code, display in cs.rule_displays().items()
        }
        self.points_code = self.obs_concept("points")
        self.kb_version_code = self.obs_concept("knowledge-base-version")
        self.data_absent_unknown = {
            "coding": [{"system": cs.DATA_ABSENT_REASON, "code": "unknown", "display": "Unknown"}]
        }

    def _build_levels(self) -> None:
        self.level_value: dict[Level, Json] = {}
        self.level_html: dict[Level, str] = {}
        for level in Level:
            display = LEVEL_DISPLAY[level]
            self.level_value[level] = {
                "coding": [{"system": self.level_url, "code": level.code, "display": display}],
                "text": display,
            }
            self.level_html[level] = esc(display)
        self.level_meaning_html = {level: esc(LEVEL_MEANING[level]) for level in Level}
        self.likelihood_value: dict[Likelihood, Json] = {
            lik: {
                "coding": [
                    {"system": self.likelihood_url, "code": lik.value, "display": lik.value.title()}
                ],
                "text": lik.value.title(),
            }
            for lik in Likelihood
        }

    # --- intake items ---------------------------------------------------------------

    def _build_items(self) -> None:
        self.items: dict[str, Item] = {}
        # Clinician wording (triage.wording is the one place that words an item), escaped.
        self.label_html: dict[str, str] = {}
        self.question_html: dict[str, str] = {}
        self.intake_concept: dict[str, Json] = {}  # linkId coding; text = linkId
        self.unanswered_component: dict[str, Json] = {}
        self.code_coding: dict[str, dict[str, Json]] = {}
        self.code_html: dict[str, dict[str, str]] = {}
        self.code_system: dict[str, str] = {}
        self.quantity_unit: dict[str, Json] = {}
        # QR fragments: whole items for yes/no and single-code answers.
        self.qr_bool: dict[str, dict[bool, tuple[Json, str]]] = {}
        self.qr_code: dict[str, dict[str, tuple[Json, str]]] = {}
        self.qr_answer: dict[str, dict[str, Json]] = {}
        self.question: dict[str, str] = {}  # QR item text = the Questionnaire's question
        for item in iter_items():
            link_id = item.link_id
            self.items[link_id] = item
            question = self.question[link_id] = wording.question(link_id)
            self.question_html[link_id] = esc(question)
            label_html = self.label_html[link_id] = esc(wording.label(link_id))
            coding = {"system": self.intake_url, "code": link_id, "display": item.text}
            self.intake_concept[link_id] = {"coding": [coding], "text": link_id}
            self.unanswered_component[link_id] = {
                "code": self.unanswered_code,
                "valueCodeableConcept": {"coding": [coding], "text": item.text},
            }
            if item.unit is not None:
                self.quantity_unit[link_id] = {
                    "unit": item.unit.display,
                    "system": cs.UCUM,
                    "code": item.unit.code,
                }
            if item.kind is Kind.BOOLEAN:
                self.qr_bool[link_id] = {
                    value: (
                        {"linkId": link_id, "text": question, "answer": [{"valueBoolean": value}]},
                        _row(label_html, esc(wording.answer_text(link_id, value))),
                    )
                    for value in (True, False)
                }
            if item.kind in (Kind.CODE, Kind.CODES):
                system = cs.codesystem_url(self.base, cs.item_codesystem_id(link_id))
                self.code_system[link_id] = system
                codings = {
                    c.code: {"system": system, "code": c.code, "display": c.display}
                    for c in item.codes
                }
                self.code_coding[link_id] = codings
                self.code_html[link_id] = {
                    c.code: esc(wording.answer_text(link_id, c.code)) for c in item.codes
                }
                self.qr_answer[link_id] = {
                    code: {"valueCoding": coding} for code, coding in codings.items()
                }
                self.qr_code[link_id] = {
                    code: (
                        {"linkId": link_id, "text": question, "answer": [{"valueCoding": coding}]},
                        # Who answered heads the narrative instead of being a row.
                        ""
                        if link_id == RESPONDENT
                        else _row(label_html, self.code_html[link_id][code]),
                    )
                    for code, coding in codings.items()
                }

    def coding_for(self, link_id: str, code: str) -> Json:
        """The item's coding of ``code``; tolerates a code the vocabulary lacks."""
        coding = self.code_coding[link_id].get(code)
        if coding is None:
            coding = {"system": self.code_system[link_id], "code": code}
        return coding

    def respondent_html(self, respondent: str | None) -> str:
        """Who gave the answers, for a narrative: "Parent or carer", or "not recorded"."""
        if respondent is None:
            return "not recorded"
        html = self.code_html.get(RESPONDENT, {}).get(respondent)
        return html if html is not None else esc(respondent)

    def code_text_html(self, link_id: str, code: str) -> str:
        html = self.code_html[link_id].get(code)
        return html if html is not None else esc(code)

    # --- knowledge-base fragments ---------------------------------------------------

    def method(self, version: str) -> Json:
        """The KB coding carried as ``Observation.method`` on every Observation."""
        method = self.kb_method.get(version)
        if method is None:
            method = {
                "coding": [
                    {
                        "system": self.kb_url,
                        "version": version,
                        "code": cs.KNOWLEDGE_BASE_CODE,
                        "display": cs.KNOWLEDGE_BASE_DISPLAY,
                    }
                ],
                "text": f"{cs.KNOWLEDGE_BASE_DISPLAY} {version}",
            }
            method = _bounded_put(self.kb_method, version, method)
        return method

    def kb_version_component(self, version: str) -> Json:
        component = self.kb_component.get(version)
        if component is None:
            component = {"code": self.kb_version_code, "valueString": version}
            component = _bounded_put(self.kb_component, version, component)
        return component


def _row(label_html: str, answer_html: str) -> str:
    """One row of the intake-answers table (both cells already escaped)."""
    return f"<tr><td>{label_html}</td><td>{answer_html}</td></tr>"


#: Attributes that are lookup indexes (by linkId, code, level ...), with their depth.
#: The indexes stay plain dicts, because CPython specialises lookups on exact dicts
#: and rendering does hundreds per Bundle; only what they hold goes into Bundles, and
#: that is frozen. Other attributes are fragments and are frozen whole.
_INDEX_DEPTH: dict[str, int] = {
    "items": 1,
    "label_html": 1,
    "question_html": 1,
    "question": 1,
    "intake_concept": 1,
    "unanswered_component": 1,
    "quantity_unit": 1,
    "code_system": 1,
    "level_value": 1,
    "rule_concept": 1,
    "level_html": 1,
    "level_meaning_html": 1,
    "likelihood_value": 1,
    "code_coding": 2,
    "code_html": 2,
    "qr_answer": 2,
    "qr_bool": 2,
    "qr_code": 2,
}


def freeze_fragments(value: Any, depth: int) -> Any:
    """``value`` frozen below ``depth`` levels of plain index dicts."""
    if depth and type(value) is dict:
        return {key: freeze_fragments(item, depth - 1) for key, item in value.items()}
    return freeze(value)


def _bounded_put(cache: dict[Any, Any], key: Any, value: Any, limit: int = 4096) -> Any:
    """Insert a frozen fragment into a cache that can only grow with knowledge-base
    content; guard anyway."""
    if len(cache) >= limit:
        cache.clear()
    frozen = cache[key] = freeze(value)
    return frozen


#: The request layout: (section name or None, key, item) in vocabulary order.
LAYOUT: tuple[tuple[str | None, str, Item], ...] = tuple(
    [(section.name, item.name, item) for section in SECTIONS for item in section.items]
    + [(None, item.name, item) for item in TOP_LEVEL_ITEMS]
)
