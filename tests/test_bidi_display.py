"""Bidi controls in free text are shown, never obeyed ("Trojan Source", review 2026-11-28).

``notes`` and ``activity.type`` may hold the Unicode bidi controls (U+202A-U+202E,
U+2066-U+2069, U+200E, U+200F, U+061C). Displayed as they are, they reorder the text
around them, so a clinician could read a note as something it does not say. Every
display path (the report page, the FHIR narratives) goes through one mapping,
``api.fhir._tables.shown``: each control becomes a visible ``[U+XXXX]`` marker, and
each free-text value is isolated (``<bdi>`` on the page, ``<span dir="ltr">`` in a
narrative, which allows no ``<bdi>``). The data stay as sent: the QuestionnaireResponse
answers, the stored request and every read of them. In a real browser:
tests/browser/test_report_browser.py.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from cds_support import call, hook_request, intake_for
from cds_support import registered_ehr as ehr  # noqa: F401 (the ehr fixture)
from conftest import anonymous, create_app
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fhir_validator import EXPECTED_WARNING, medplum  # noqa: F401 (the validator fixture)

from api.config import EXTENSION
from api.fhir._tables import BIDI_CONTROLS, BIDI_MARKER, esc, esc_free, shown
from tests.support.conformance import iter_nodes, narrative_problems

NOTES = "take 10\u202e mg daily\u202c; left\u2067 side\u2069 only\u200f.\u061c\u200e end"
ACTIVITY = "roller\u202d skating\u202c \u202bfast\u202c \u2066x\u2069\u2068y\u2069"
REQUEST = {
    "patient": {"age_years": 15, "reference": "Patient/bidi-1"},
    "activity": {"type": ACTIVITY},
    "twitching": {"body_sites": ["calf"]},
    "notes": NOTES,
}
FHIR = "application/fhir+json"

#: Any text, with the bidi controls drawn often.
TEXT = st.text(
    alphabet=st.one_of(st.sampled_from(sorted(BIDI_CONTROLS)), st.characters(codec="utf-8")),
    max_size=60,
)


def unshown(text: str) -> str:
    """The inverse of :func:`shown`: every marker back to the control it names."""
    return BIDI_MARKER.sub(lambda m: chr(int(m[1], 16)), text)


@given(TEXT)
def test_the_displayed_form_holds_no_bidi_control_and_names_each_one(text: str) -> None:
    displayed = shown(text)
    assert not BIDI_CONTROLS & set(displayed)
    # Each control is one marker, in its place; everything else is unchanged.
    markers = [chr(int(m[1], 16)) for m in BIDI_MARKER.finditer(displayed)]
    if BIDI_MARKER.search(text) is None:  # (text that itself spells a marker is ambiguous)
        assert markers == [c for c in text if c in BIDI_CONTROLS]
        assert unshown(displayed) == text
    assert BIDI_MARKER.sub("", displayed) == BIDI_MARKER.sub(
        "", "".join(c for c in text if c not in BIDI_CONTROLS)
    )
    if not BIDI_CONTROLS & set(text):
        assert displayed == text


@given(TEXT)
def test_narrative_text_holds_no_bidi_control_and_stays_well_formed(text: str) -> None:
    for html in (esc(text), esc_free(text)):
        assert not BIDI_CONTROLS & set(html)
        div = f'<div xmlns="http://www.w3.org/1999/xhtml"><p>Notes: {html}</p></div>'
        assert narrative_problems(div) == []


@pytest.mark.parametrize("control", sorted(BIDI_CONTROLS))
def test_every_control_has_its_marker(control: str) -> None:
    assert shown(f"a{control}b") == f"a[U+{ord(control):04X}]b"


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app({"TESTING": True})


def _narratives(bundle: dict[str, Any]) -> list[str]:
    return [
        node["div"]
        for path, node in iter_nodes(bundle)
        if path.endswith("text") and isinstance(node, dict) and "div" in node
    ]


def _answers(qr: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            for answer in item.get("answer", []):
                found[item["linkId"]] = answer.get("valueString")
            walk(item.get("item", []))

    walk(qr.get("item", []))
    return found


def _check_bundle(bundle: dict[str, Any]) -> None:
    """Answers as sent; every narrative without a control, the free text marked and isolated."""
    qr = bundle["entry"][0]["resource"]
    assert qr["resourceType"] == "QuestionnaireResponse"
    answers = _answers(qr)
    assert answers["notes"] == NOTES
    assert answers["activity.type"] == ACTIVITY
    narratives = _narratives(bundle)
    assert narratives
    for div in narratives:
        assert not BIDI_CONTROLS & set(div), div[:300]
        assert narrative_problems(div) == []
    assert f'<span dir="ltr">{esc(NOTES)}</span>' in qr["text"]["div"]
    assert '<span dir="ltr">roller[U+202D] skating[U+202C]' in qr["text"]["div"]


def test_triage_keeps_the_text_and_its_narratives_show_the_markers(app):
    client = app.test_client()
    response = client.post("/v1/triage", json=REQUEST)
    assert response.status_code == 200, response.data[:300]
    _check_bundle(response.get_json())
    # Read again (the stored Bundle) and the stored request: still exactly as sent.
    bundle_id = response.get_json()["id"]
    read = client.get(f"/fhir/Bundle/{bundle_id}")
    assert read.data == response.data
    columns = app.extensions[EXTENSION].store.assessment_columns(bundle_id)
    kept = orjson.loads(columns["request_json"])
    assert kept["notes"] == NOTES
    assert kept["activity"]["type"] == ACTIVITY


def test_the_report_page_shows_markers_isolated_and_no_control(app):
    client = app.test_client()
    response = client.post("/v1/triage", json=REQUEST)
    url = re.match(r"<([^>]+)>", response.headers["Link"])[1]
    parts = urlsplit(url)
    page = anonymous(app).get(f"{parts.path}?{parts.query}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert not BIDI_CONTROLS & set(html)
    assert f"<bdi>{esc(NOTES)}</bdi>" in html
    assert f'<dd id="activity"><bdi>{esc(ACTIVITY)}</bdi></dd>' in html
    # The report's running head (printed pages) takes the reference as shown on page 1.
    assert 'data-print-patient="Patient/bidi-1"' in html
    assert '<dd id="patient-reference"><bdi>Patient/bidi-1</bdi></dd>' in html


def test_an_intake_submission_keeps_the_text_and_its_report_shows_markers(app):
    client = app.test_client()
    link = client.post("/v1/intake-links", json={"patient": {"reference": "Patient/bidi-1"}})
    assert link.status_code == 201, link.data[:300]
    # The QuestionnaireResponse a form renderer posts for the same answers.
    qr = client.post("/v1/triage", json=REQUEST).get_json()["entry"][0]["resource"]
    for key in ("id", "meta", "subject"):
        qr.pop(key, None)
    parts = urlsplit(link.get_json()["url"])
    submitted = anonymous(app).post(
        f"{parts.path}?{parts.query}", data=json.dumps(qr), content_type=FHIR,
        headers={"Accept": FHIR},
    )  # fmt: skip
    assert submitted.status_code == 303, submitted.data[:500]
    report = urlsplit(submitted.headers["Location"])
    bundle = client.get(f"/fhir/Bundle/{report.path.rsplit('/', 1)[1]}").get_json()
    _check_bundle(bundle)
    page = anonymous(app).get(f"{report.path}?{report.query}")
    html = page.get_data(as_text=True)
    assert not BIDI_CONTROLS & set(html)
    assert f"<bdi>{esc(NOTES)}</bdi>" in html


@settings(max_examples=25, deadline=None)
@given(
    st.text(
        alphabet=st.one_of(
            st.sampled_from(sorted(BIDI_CONTROLS)),
            st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_for_any_note_the_narratives_and_report_hold_no_control(app, notes):
    client = app.test_client()
    response = client.post("/v1/triage", json={**REQUEST, "notes": notes})
    assert response.status_code == 200, response.data[:300]
    bundle = response.get_json()
    assert _answers(bundle["entry"][0]["resource"])["notes"] == notes
    for div in _narratives(bundle):
        assert not BIDI_CONTROLS & set(div)
        assert narrative_problems(div) == []
    url = urlsplit(re.match(r"<([^>]+)>", response.headers["Link"])[1])
    html = anonymous(app).get(f"{url.path}?{url.query}").get_data(as_text=True)
    assert not BIDI_CONTROLS & set(html)


def test_the_bundle_with_marked_free_text_is_valid_r4(app, medplum):  # noqa: F811
    """The independent validator (medplum, as tests/test_fhir_validator.py) on the Bundle
    and each entry: ``<span dir="ltr">`` and the markers are valid narrative XHTML."""
    bundle = app.test_client().post("/v1/triage", json=REQUEST).get_json()
    items = [("bundle", bundle)] + [
        (f"entry[{i}]", entry["resource"]) for i, entry in enumerate(bundle["entry"])
    ]
    results = medplum(items)
    for label, result in results.items():
        assert result["errors"] == [], label
        warnings = [w for w in result["warnings"] if EXPECTED_WARNING not in w["details"]["text"]]
        assert warnings == [], label


@pytest.mark.parametrize(
    ("find", "put"),
    [
        ('"code": "calf"', '"code": "calf\\u202e"'),  # a code that is no code: echoed
        ('"valueString": "ok"', '"valueInteger": 3, "x": "\\u202e"'),  # a stray field
        ('"linkId": "notes"', '"linkId": "notes\\u2067"'),  # an unknown linkId
        ('"valueString": "ok"', '"valueString": "' + "\\u202e" * 2001 + '"'),  # too long
    ],
)
def test_an_intake_refusal_shows_no_bidi_control_in_its_narrative(app, find, put):
    """A refusal's narrative (display) holds no control; its ``diagnostics`` are data and
    may echo what was sent (a linkId as it came): the intake page lists them through its
    twin of ``shown`` (tests/browser/test_intake_page.py)."""
    client = app.test_client()
    link = client.post("/v1/intake-links", json={}).get_json()
    request = {"patient": {"age_years": 15}, "twitching": {"body_sites": ["calf"]}, "notes": "ok"}
    qr = client.post("/v1/triage", json=request).get_json()["entry"][0]["resource"]
    for key in ("id", "meta", "subject"):
        qr.pop(key, None)
    body = json.dumps(qr, separators=(", ", ": "))
    assert find in body
    parts = urlsplit(link["url"])
    refused = anonymous(app).post(
        f"{parts.path}?{parts.query}", data=body.replace(find, put, 1), content_type=FHIR,
        headers={"Accept": FHIR},
    )  # fmt: skip
    assert 400 <= refused.status_code < 500, refused.data[:300]
    outcome = refused.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert not BIDI_CONTROLS & set(outcome["text"]["div"])
    assert narrative_problems(outcome["text"]["div"]) == []


def test_a_cds_card_shows_the_markers_and_no_control(app, ehr):  # noqa: F811
    """The card's markdown ``detail`` (rendered by the EHR) passes free text through the
    same mapping: the clinician reads the markers there too."""
    client = app.test_client()
    intake = intake_for(client, REQUEST, "bidi-1")
    response = call(anonymous(app), ehr, hook_request("bidi-1", intake))
    assert response.status_code == 200, response.data[:500]
    detail = response.get_json()["cards"][0]["detail"]
    assert not BIDI_CONTROLS & set(detail)
    assert "\\[U\\+202E\\]" in detail  # the marker, its brackets escaped for markdown
