"""Narratives are written for clinicians (PROTOCOL.md §8, §9, protocol 1.1).

Every narrative of every Bundle (R4 and R5), for every shared example and for
many generated requests, is read as a clinician would read it (the parsed XHTML
text) and must carry no internal text: no internal document or section number,
no seed reference, no rule syntax (comparison operators, snake_case names,
dotted linkIds, boolean operators around brackets) and no ungrammatical count
("1 days"). Free text of the request is the requester's own words, shown as
given, so it is replaced by a neutral phrase before the check.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import requests

from api.fhir import FhirSettings, render_triage_bundle
from triage import evaluate
from triage.vocabulary import SECTIONS, TOP_LEVEL_ITEMS, Kind

PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "shared" / "protocol"
EXAMPLE_PATHS = sorted(PROTOCOL_DIR.glob("examples*/*.json"))
EXAMPLE_IDS = [f"{path.parent.name}/{path.stem}" for path in EXAMPLE_PATHS]
FHIR_VERSIONS = ("4.0", "5.0")
SETTINGS = FhirSettings()
FREE_TEXT = "Free text"
PATIENT = "Patient/p-1"

_SECTION_NAMES = "|".join(section.name for section in SECTIONS)
_COUNT_NOUNS = (
    "days|points|hours|minutes|weeks|months|years|times|sessions|falls|doses|units|drinks|"
    "episodes|items|answers|questions|factors|medicines|medications"
)
#: (pattern, what it betrays) for text no clinician should read.
INTERNAL = (
    (re.compile(r"PROTOCOL\.md|\.md\b", re.IGNORECASE), "an internal document"),
    (re.compile(r"\bseeds?\b", re.IGNORECASE), "a seed article"),
    (re.compile("§"), "a section number"),
    (re.compile("[≥≤<>=≠]"), "a comparison operator of rule syntax"),
    (re.compile(r"[A-Za-z0-9]_[A-Za-z0-9]"), "a snake_case name (linkId, enum value)"),
    (re.compile(rf"\b(?:{_SECTION_NAMES})\.[a-z]"), "a dotted linkId"),
    # Upper-case operators of rule syntax; not inside a code such as ADV-DO-NOT-DRINK-MORE.
    (re.compile(r"(?<![\w-])(?:AND|OR|NOT)(?![\w-])"), "a boolean operator"),
    # "x and (y or z)": an operator opening a bracket ("(Jacksonian march) or ..." is prose).
    (re.compile(r"\b(?:and|or|not)\s+\("), "a bracketed boolean expression"),
    (re.compile(rf"(?<![\d.,])1 (?:{_COUNT_NOUNS})\b"), "an ungrammatical count"),
)


def internal_text(text: str) -> list[str]:
    """What in ``text`` is internal or rule syntax rather than clinician wording."""
    return [
        f"{why}: {match.group(0)!r} in {text[max(0, match.start() - 40) : match.end() + 40]!r}"
        for pattern, why in INTERNAL
        for match in pattern.finditer(text)
    ]


def narrative_texts(bundle: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, the text a reader sees) of every narrative in the Bundle."""
    out = []
    for index, entry in enumerate(bundle["entry"]):
        resource = entry["resource"]
        div = ET.fromstring(resource["text"]["div"])  # noqa: S314 - our own output
        # Cells and list items are separate phrases: join with a separator.
        text = " | ".join(" ".join(t.split()) for t in div.itertext() if t.strip())
        out.append((f"entry[{index}] {resource['resourceType']}", text))
    return out


def without_free_text(request: dict[str, Any]) -> dict[str, Any]:
    """``request`` with its free-text answers replaced by a neutral phrase."""
    out = dict(request)
    free = {Kind.STRING: FREE_TEXT, Kind.REFERENCE: PATIENT}
    for section in SECTIONS:
        body = out.get(section.name)
        if not body:
            continue
        body = dict(body)
        for item in section.items:
            if item.kind in free and body.get(item.name) is not None:
                body[item.name] = free[item.kind]
        out[section.name] = body
    for item in TOP_LEVEL_ITEMS:
        if item.kind in free and out.get(item.name) is not None:
            out[item.name] = free[item.kind]
    return out


def assert_clinician_wording(request: dict[str, Any], fhir_version: str) -> None:
    request = without_free_text(request)
    bundle = render_triage_bundle(
        request, evaluate(request), settings=SETTINGS, fhir_version=fhir_version
    )
    texts = narrative_texts(bundle)
    assert len(texts) == len(bundle["entry"])
    problems = [f"{where}: {problem}" for where, text in texts for problem in internal_text(text)]
    assert problems == []


# --- the checker itself -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Source: PROTOCOL.md §5 minimum red-flag screen",
        "Shorter sessions, real breaks (seeds 000, 002)",
        "rest_minutes_per_session < 10 and session_minutes ≥ 60",
        "Confusion (symptoms.confusion)",
        "hot_or_humid with any of dizziness",
        "(head impact) and (headache)",
        "falls 3 OR more",
        "Training load: 1 points",
        "started 1 days ago",
        "1 hours after exercise",
    ],
)
def test_the_checker_finds_internal_text(text):
    assert internal_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "Source: CDC HEADS UP; NHS: muscle twitches; NICE NG127",
        "Call emergency services now and stay with the person, or drive to the ED.",
        "Session length: 120 minutes | Training load: 1 point | started 1 day ago",
        "11 days | 21 hours | 1.5 hours | 2.1 days | Blood glucose: 3.9 mmol/L | 39.2 °C",
        "If yes → Call an ambulance",
        "Exceeds 400 mg per day; proceed to assessment",
        "Jerking that spreads (Jacksonian march) or loss of awareness",
        "Do not drink more water (ADV-DO-NOT-DRINK-MORE)",
    ],
)
def test_the_checker_accepts_clinician_wording(text):
    assert internal_text(text) == []


# --- every shared example, every generated request -----------------------------------


def test_there_are_shared_examples_of_both_versions():
    assert {path.parent.name for path in EXAMPLE_PATHS} >= {"examples", "examples-1.1"}
    assert len(EXAMPLE_PATHS) >= 16


@pytest.mark.parametrize("fhir_version", FHIR_VERSIONS)
@pytest.mark.parametrize("path", EXAMPLE_PATHS, ids=EXAMPLE_IDS)
def test_example_narratives_are_clinician_wording(path, fhir_version):
    case = json.loads(path.read_text(encoding="utf-8"))
    assert_clinician_wording(case["request"], fhir_version)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_generated_narratives_are_clinician_wording_r4(request):
    assert_clinician_wording(request, "4.0")


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_generated_narratives_are_clinician_wording_r5(request):
    assert_clinician_wording(request, "5.0")
