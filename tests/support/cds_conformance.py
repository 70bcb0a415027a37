"""CDS Hooks 2.0 conformance checks, written from the specification text.

Each function returns the list of problems (empty = conformant), so a test shows
every problem at once. Sources (cds-hooks.hl7.org 2.0): "Null and empty JSON
elements", Discovery "Response", "CDS Service Response", "Card Attributes",
"Source", "Suggestion", "Link", "Reasons for rejecting a card".
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

INDICATORS = ("info", "warning", "critical")
SELECTION_BEHAVIORS = ("at-most-one", "any")
LINK_TYPES = ("absolute", "smart")
ACTION_TYPES = ("create", "update", "delete")
#: Prefetch query restrictions: type-level search with these parameter kinds only.
_TOKEN = re.compile(r"\{\{([^{}]*)\}\}")


def empty_values(value: Any, path: str = "$") -> list[str]:
    """Every null, "", [] or {} inside ``value`` ("JSON elements SHALL NOT be null ... empty")."""
    problems = []
    if value is None or value in ("", [], {}):
        return [f"{path} is null or empty"]
    if isinstance(value, dict):
        for key, member in value.items():
            problems += empty_values(member, f"{path}.{key}")
    elif isinstance(value, list):
        for index, member in enumerate(value):
            problems += empty_values(member, f"{path}[{index}]")
    return problems


def _absolute(url: Any) -> bool:
    parts = urlsplit(url) if isinstance(url, str) else None
    return parts is not None and parts.scheme in ("http", "https") and bool(parts.netloc)


def _coding_problems(coding: Any, path: str, *, display_required: bool) -> list[str]:
    if not isinstance(coding, dict):
        return [f"{path} is not a Coding"]
    problems = [
        f"{path}.{key} is not a string"
        for key in ("system", "code", "display")
        if key in coding and not isinstance(coding[key], str)
    ]
    if "code" not in coding:
        problems.append(f"{path}.code is missing")
    if display_required and "display" not in coding:
        problems.append(f"{path}.display is missing")
    return problems


def discovery_problems(document: Any) -> list[str]:
    """The discovery response: ``services``, each with hook, description, id (REQUIRED)."""
    if not isinstance(document, dict) or not isinstance(document.get("services"), list):
        return ["the response is not an object with a services array"]
    problems = empty_values(document["services"], "$.services") if document["services"] else []
    for index, service in enumerate(document["services"]):
        path = f"$.services[{index}]"
        for key in ("hook", "description", "id"):
            if not isinstance(service.get(key), str):
                problems.append(f"{path}.{key} is REQUIRED (a string)")
        for key in ("title", "usageRequirements"):
            if key in service and not isinstance(service[key], str):
                problems.append(f"{path}.{key} is not a string")
        prefetch = service.get("prefetch", {})
        if not isinstance(prefetch, dict):
            problems.append(f"{path}.prefetch is not an object")
            continue
        for key, template in prefetch.items():
            problems += _template_problems(template, f"{path}.prefetch.{key}")
    return problems


def _template_problems(template: Any, path: str) -> list[str]:
    """A prefetch template: a relative read or type-level search; tokens from context."""
    if not isinstance(template, str):
        return [f"{path} is not a string"]
    problems = [
        f"{path} token {{{{{token}}}}} is not a root context field"
        for token in _TOKEN.findall(template)
        if not re.fullmatch(
            r"context\.[A-Za-z]+|user(Practitioner|PractitionerRole|Patient|RelatedPerson)Id", token
        )
    ]
    resource, _, query = template.partition("?")
    if not re.fullmatch(r"[A-Z][A-Za-z]+(/\{\{context\.[A-Za-z]+\}\})?", resource):
        problems.append(f"{path} is not a relative read or type-level search")
    for name, _value in parse_qsl(query, keep_blank_values=True):
        if ":" in name and not name.endswith(":in"):
            problems.append(f"{path} uses the modifier of {name!r}")
    return problems


def card_problems(card: Any, path: str = "$") -> list[str]:
    """One card: the REQUIRED fields, their value sets, and the CONDITIONAL rules."""
    if not isinstance(card, dict):
        return [f"{path} is not an object"]
    problems = empty_values(card, path)
    summary = card.get("summary")
    if not isinstance(summary, str):
        problems.append(f"{path}.summary is REQUIRED (a string)")
    elif len(summary) >= 140:
        problems.append(f"{path}.summary has {len(summary)} characters, not <140")
    if card.get("indicator") not in INDICATORS:
        problems.append(f"{path}.indicator {card.get('indicator')!r} is not one of {INDICATORS}")
    problems += [
        f"{path}.{key} is not a string"
        for key in ("uuid", "detail")
        if key in card and not isinstance(card[key], str)
    ]
    problems += _source_problems(card.get("source"), f"{path}.source")
    problems += _suggestion_problems(card, path)
    for index, reason in enumerate(card.get("overrideReasons", [])):
        where = f"{path}.overrideReasons[{index}]"
        problems += _coding_problems(reason, where, display_required=True)
    for index, link in enumerate(card.get("links", [])):
        problems += _link_problems(link, f"{path}.links[{index}]")
    return problems


def _source_problems(source: Any, path: str) -> list[str]:
    if not isinstance(source, dict) or not isinstance(source.get("label"), str):
        return [f"{path}.label is REQUIRED (a string)"]
    problems = [
        f"{path}.{key} is not an absolute URL"
        for key in ("url", "icon")
        if key in source and not _absolute(source[key])
    ]
    if "topic" in source:
        problems += _coding_problems(source["topic"], f"{path}.topic", display_required=False)
    return problems


def _suggestion_problems(card: dict[str, Any], path: str) -> list[str]:
    """``selectionBehavior`` MUST be given whenever suggestions are (and only then)."""
    suggestions = card.get("suggestions")
    if suggestions is None:
        if "selectionBehavior" in card:
            return [f"{path}.selectionBehavior without suggestions"]
        return []
    problems = []
    if card.get("selectionBehavior") not in SELECTION_BEHAVIORS:
        problems.append(f"{path}.selectionBehavior MUST be given with suggestions")
    for index, suggestion in enumerate(suggestions):
        where = f"{path}.suggestions[{index}]"
        if not isinstance(suggestion.get("label"), str):
            problems.append(f"{where}.label is REQUIRED")
        for action in suggestion.get("actions", []):
            if action.get("type") not in ACTION_TYPES or not isinstance(
                action.get("description"), str
            ):
                problems.append(f"{where}.actions: type and description are REQUIRED")
    return problems


def _link_problems(link: Any, path: str) -> list[str]:
    if not isinstance(link, dict):
        return [f"{path} is not an object"]
    problems = []
    if not isinstance(link.get("label"), str):
        problems.append(f"{path}.label is REQUIRED")
    if link.get("type") not in LINK_TYPES:
        problems.append(f"{path}.type {link.get('type')!r} is not absolute or smart")
    if not _absolute(link.get("url")):
        problems.append(f"{path}.url is not an absolute URL")
    if "appContext" in link and link.get("type") != "smart":
        problems.append(f"{path}.appContext is only valid on smart links")
    return problems


def response_problems(body: Any) -> list[str]:
    """A service response: ``cards`` REQUIRED (an array; [] = no guidance), each a card."""
    if not isinstance(body, dict) or not isinstance(body.get("cards"), list):
        return ["the response is not an object with a cards array"]
    problems = []
    for index, card in enumerate(body["cards"]):
        problems += card_problems(card, f"$.cards[{index}]")
    if "systemActions" in body and not body["systemActions"]:
        problems.append("$.systemActions is empty")
    return problems
